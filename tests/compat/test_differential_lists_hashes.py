"""Differential test: one seeded random stream of list and hash commands, error cases
included, sent to trioredis and to Debian's ``redis-server``; every reply must be the same
bytes.

Half the stream goes over a RESP3 connection (maps, pairs, nulls differ there).  Commands
that answer at random (HRANDFIELD with a count smaller than the hash, negative counts) are
compared by reply shape only; everything else byte for byte.  Hashes stay small (few fields,
short values) so Redis keeps them listpack-encoded, whose field order is insertion order, as
a Python dict's is; for bigger hashes Redis's hashtable order is its own and not part of the
contract.

Then scripted scenarios of blocked clients being served (which key wins, FIFO, a BLMOVE
feeding a BLPOP, a wrong-type destination, timeouts in RESP2 and RESP3), compared the same
way: every reply the waiters and the pushing client get, and the lists afterwards.
"""

from __future__ import annotations

import random
import shutil
import socket
import time

import pytest
from parity import ReferenceRedis

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)

SEED = 20261122
COMMANDS = 3000


class RawConnection:
    """Sends commands and reads exactly one reply as raw RESP bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buffer += data

    def _exact(self, size: int) -> bytes:
        while len(self.buffer) < size + 2:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
        return data

    def read_reply(self) -> bytes:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"$", b"=", b"!") and rest != b"-1":
            return line + b"\r\n" + self._exact(int(rest)) + b"\r\n"
        if kind in (b"*", b"~", b">") and rest != b"-1":
            return line + b"\r\n" + b"".join(self.read_reply() for _ in range(int(rest)))
        if kind == b"%":
            return line + b"\r\n" + b"".join(self.read_reply() for _ in range(2 * int(rest)))
        return line + b"\r\n"

    def send(self, argv: list[bytes]) -> None:
        self.sock.sendall(b"*%d\r\n" % len(argv) + b"".join(
            b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in argv))

    def call(self, argv: list[bytes]) -> bytes:
        self.send(argv)
        return self.read_reply()


@pytest.fixture
def redis_port():
    with ReferenceRedis() as redis_server:
        yield redis_server.port


# --- the stream ----------------------------------------------------------------------------

LISTS = [b"list:a", b"list:b", b"list:c"]
HASHES = [b"hash:a", b"hash:b"]
OTHER = [b"string", b"missing"]
ELEMENTS = [b"a", b"b", b"c", b"1", b"2", b"-1", b"10", b"x y", b""]
FIELDS = [b"f1", b"f2", b"f3", b"f4", b"n", b"x"]
HASH_VALUES = [b"v", b"1", b"-7", b"10", b"1.5", b"0.1", b"abc", b"9223372036854775806", b""]
INDEXES = [b"0", b"1", b"2", b"-1", b"-2", b"-100", b"100", b"3", b"x", b"1.5",
           b"9223372036854775807", b"-9223372036854775808"]
COUNTS = [b"0", b"1", b"2", b"5", b"-1", b"x", b"100"]
INCREMENTS = [b"1", b"-3", b"100", b"x", b"9223372036854775807", b"1.5"]
FLOAT_INCREMENTS = [b"0.1", b"0.2", b"-2.5", b"1e3", b"1e20", b"3", b"inf", b"nan", b"x",
                    b"0x10", b" 1", b"1.0e-5"]
PATTERNS = [b"*", b"f*", b"f[12]", b"?", b"x", b"n*"]
ENDS = [b"LEFT", b"RIGHT", b"left", b"right", b"up"]
TIMEOUTS_NOW = [b"0", b"0.01", b"x", b"-1", b"inf", b"nan"]


def _list_key(rng: random.Random) -> bytes:
    return rng.choice(LISTS + LISTS + OTHER + [rng.choice(HASHES)])


def _hash_key(rng: random.Random) -> bytes:
    return rng.choice(HASHES + HASHES + OTHER + [rng.choice(LISTS)])


def _some(rng: random.Random, pool: list[bytes], low: int = 1, high: int = 4) -> list[bytes]:
    return [rng.choice(pool) for _ in range(rng.randint(low, high))]


def _list_command(rng: random.Random, may_block: bool = True) -> list[bytes]:
    """A list command; ``may_block`` False keeps blocking ones from waiting forever (timeout
    0 becomes 0.01) outside MULTI, where they would block on an empty list."""
    argv = _list_command_forever(rng)
    if not may_block and argv[0].startswith(b"B"):
        timeout_at = 1 if argv[0] == b"BLMPOP" else len(argv) - 1
        if argv[timeout_at] == b"0":
            argv[timeout_at] = b"0.01"
    return argv


def _list_command_forever(rng: random.Random) -> list[bytes]:
    key = _list_key(rng)
    name = rng.choice([
        "LPUSH", "RPUSH", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "LPOP", "RPOP", "LLEN", "LRANGE",
        "LRANGE", "LINDEX", "LSET", "LINSERT", "LREM", "LTRIM", "LPOS", "LMOVE", "RPOPLPUSH",
        "LMPOP", "BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BLMPOP",
    ])
    if name in ("LPUSH", "RPUSH", "LPUSHX", "RPUSHX"):
        return [name.encode(), key, *_some(rng, ELEMENTS, 0 if rng.random() < 0.05 else 1)]
    if name in ("LPOP", "RPOP"):
        extra = [rng.choice(COUNTS)] if rng.random() < 0.6 else []
        if rng.random() < 0.03:
            extra.append(b"1")
        return [name.encode(), key, *extra]
    if name == "LLEN":
        return [b"LLEN", key]
    if name in ("LRANGE", "LTRIM"):
        return [name.encode(), key, rng.choice(INDEXES), rng.choice(INDEXES)]
    if name == "LINDEX":
        return [b"LINDEX", key, rng.choice(INDEXES)]
    if name == "LSET":
        return [b"LSET", key, rng.choice(INDEXES), rng.choice(ELEMENTS)]
    if name == "LINSERT":
        where = rng.choice([b"BEFORE", b"AFTER", b"after", b"middle"])
        return [b"LINSERT", key, where, rng.choice(ELEMENTS), rng.choice(ELEMENTS)]
    if name == "LREM":
        return [b"LREM", key, rng.choice(COUNTS + [b"-2"]), rng.choice(ELEMENTS)]
    if name == "LPOS":
        argv = [b"LPOS", key, rng.choice(ELEMENTS)]
        for _ in range(rng.randint(0, 3)):
            option = rng.choice([b"RANK", b"COUNT", b"MAXLEN", b"rank", b"FOO"])
            value = rng.choice([b"1", b"2", b"-1", b"-2", b"0", b"3", b"x", b"-9223372036854775808"])
            argv += [option, value] if rng.random() > 0.05 else [option]
        return argv
    if name in ("LMOVE", "BLMOVE"):
        argv = [name.encode(), key, _list_key(rng), rng.choice(ENDS), rng.choice(ENDS)]
        if name == "BLMOVE":
            argv.append(rng.choice(TIMEOUTS_NOW))
        return argv
    if name in ("RPOPLPUSH", "BRPOPLPUSH"):
        argv = [name.encode(), key, _list_key(rng)]
        if name == "BRPOPLPUSH":
            argv.append(rng.choice(TIMEOUTS_NOW))
        return argv
    if name in ("BLPOP", "BRPOP"):
        return [name.encode(), *[_list_key(rng) for _ in range(rng.randint(1, 3))],
                rng.choice(TIMEOUTS_NOW)]
    # LMPOP / BLMPOP
    keys = [_list_key(rng) for _ in range(rng.randint(1, 3))]
    numkeys = str(len(keys)).encode() if rng.random() < 0.85 else rng.choice([b"0", b"5", b"x"])
    argv = [numkeys, *keys, rng.choice(ENDS)]
    if rng.random() < 0.5:
        argv += [b"COUNT", rng.choice(COUNTS)]
    if name == "BLMPOP":
        return [b"BLMPOP", rng.choice(TIMEOUTS_NOW), *argv]
    return [b"LMPOP", *argv]


def _hash_command(rng: random.Random) -> list[bytes]:
    key = _hash_key(rng)
    name = rng.choice([
        "HSET", "HSET", "HSETNX", "HMSET", "HGET", "HMGET", "HDEL", "HLEN", "HSTRLEN",
        "HEXISTS", "HKEYS", "HVALS", "HGETALL", "HINCRBY", "HINCRBYFLOAT", "HINCRBYFLOAT",
        "HRANDFIELD", "HSCAN",
    ])
    if name in ("HSET", "HMSET"):
        argv = [name.encode(), key]
        for _ in range(rng.randint(1, 3)):
            argv += [rng.choice(FIELDS), rng.choice(HASH_VALUES)]
        if rng.random() < 0.05:
            argv.pop()
        return argv
    if name == "HSETNX":
        return [b"HSETNX", key, rng.choice(FIELDS), rng.choice(HASH_VALUES)]
    if name in ("HGET", "HSTRLEN", "HEXISTS"):
        return [name.encode(), key, rng.choice(FIELDS)]
    if name in ("HMGET", "HDEL"):
        return [name.encode(), key, *_some(rng, FIELDS)]
    if name in ("HLEN", "HKEYS", "HVALS", "HGETALL"):
        return [name.encode(), key]
    if name == "HINCRBY":
        return [b"HINCRBY", key, rng.choice(FIELDS), rng.choice(INCREMENTS)]
    if name == "HINCRBYFLOAT":
        return [b"HINCRBYFLOAT", key, rng.choice(FIELDS), rng.choice(FLOAT_INCREMENTS)]
    if name == "HRANDFIELD":
        form = rng.randint(0, 5)
        if form == 0:
            return [b"HRANDFIELD", key]  # random: compared by shape
        if form == 1:
            return [b"HRANDFIELD", key, b"100"]
        if form == 2:
            return [b"HRANDFIELD", key, b"100", rng.choice([b"WITHVALUES", b"withvalues"])]
        if form == 3:
            return [b"HRANDFIELD", key, rng.choice([b"0", b"x", b"-9223372036854775808"])]
        if form == 4:
            return [b"HRANDFIELD", key, b"1", rng.choice([b"foo", b"WITHVALUES"])]
        return [b"HRANDFIELD", key, rng.choice([b"-3", b"2"]), b"WITHVALUES"]
    argv = [b"HSCAN", key, rng.choice([b"0", b"0", b"x", b"7"])]
    for _ in range(rng.randint(0, 2)):
        option = rng.choice([b"MATCH", b"COUNT", b"TYPE"])
        value = rng.choice(PATTERNS) if option == b"MATCH" else rng.choice([b"1", b"10", b"0", b"x"])
        argv += [option, value]
    return argv


def _random_reply(argv: list[bytes]) -> bool:
    """Replies that Redis picks at random: compared by shape only."""
    return argv[0] == b"HRANDFIELD" and (len(argv) == 2 or argv[2] in (b"-3", b"2", b"1"))


def _shape(reply: bytes) -> bytes:
    """A reply's type, and its length for an aggregate (a bulk's length is the random
    field's)."""
    first = reply.split(b"\r\n", 1)[0]
    return first[:1] if first[:1] == b"$" else first


def _stream(rng: random.Random, total: int):
    """Commands, with MULTI ... EXEC groups (where blocking commands never block) and the
    odd key reset, DEL or SET to make a key of the wrong type."""
    produced = 0
    while produced < total:
        roll = rng.random()
        if roll < 0.04:
            group = [[b"MULTI"]]
            while len(group) <= rng.randint(1, 5):
                argv = _list_command(rng) if rng.random() < 0.6 else _hash_command(rng)
                if not _random_reply(argv):  # EXEC's reply is compared whole
                    group.append(argv)
            group.append([b"EXEC"])
            yield from group
            produced += len(group)
            continue
        if roll < 0.06:
            yield [b"DEL", rng.choice(LISTS + HASHES)]
        elif roll < 0.065:
            yield [b"SET", b"string", b"1"]
        elif roll < 0.55:
            yield _list_command(rng, may_block=False)
        else:
            yield _hash_command(rng)
        produced += 1


def _final_state() -> list[list[bytes]]:
    reads = [[b"EXISTS", key] for key in LISTS + HASHES + OTHER]
    reads += [[b"LRANGE", key, b"0", b"-1"] for key in LISTS]
    reads += [[b"HGETALL", key] for key in HASHES]
    return reads


@pytest.mark.parametrize("seed", [SEED, SEED + 1])
def test_list_and_hash_replies_equal_redis(server, redis_port, seed):
    ours = [RawConnection(server.port), RawConnection(server.port)]
    theirs = [RawConnection(redis_port), RawConnection(redis_port)]
    try:
        for connections in (ours, theirs):
            assert connections[1].call([b"HELLO", b"3"]).startswith(b"%")
        rng = random.Random(seed)
        in_multi: int | None = None
        mismatches = []
        for number, argv in enumerate(_stream(rng, COMMANDS)):
            # A transaction stays on one connection; otherwise pick RESP2 or RESP3 at random.
            if in_multi is None:
                side = rng.randint(0, 1)
                if argv[0] == b"MULTI":
                    in_multi = side
            else:
                side = in_multi
                if argv[0] == b"EXEC":
                    in_multi = None
            mine, reference = ours[side].call(argv), theirs[side].call(argv)
            if _random_reply(argv) and not reference.startswith(b"-"):
                equal = _shape(mine) == _shape(reference)
            else:
                equal = mine == reference
            if not equal:
                mismatches.append((number, side, argv, mine, reference))
        for argv in _final_state():
            mine, reference = ours[0].call(argv), theirs[0].call(argv)
            if mine != reference:
                mismatches.append(("final", 0, argv, mine, reference))
        assert not mismatches, "\n".join(
            f"#{n} resp{3 if side else 2} {b' '.join(argv)!r}:\n  ours  {mine!r}\n  redis {ref!r}"
            for n, side, argv, mine, ref in mismatches[:20]
        )
    finally:
        for connection in ours + theirs:
            connection.close()


def test_stream_covers_every_command():
    """The generator keeps exercising each command (a refactor must not drop one)."""
    rng = random.Random(SEED)
    seen = {argv[0].upper() for argv in _stream(rng, COMMANDS)}
    expected = {
        b"LPUSH", b"RPUSH", b"LPUSHX", b"RPUSHX", b"LPOP", b"RPOP", b"LLEN", b"LRANGE",
        b"LINDEX", b"LSET", b"LINSERT", b"LREM", b"LTRIM", b"LPOS", b"LMOVE", b"RPOPLPUSH",
        b"LMPOP", b"BLPOP", b"BRPOP", b"BLMOVE", b"BRPOPLPUSH", b"BLMPOP", b"HSET", b"HSETNX",
        b"HMSET", b"HGET", b"HMGET", b"HDEL", b"HLEN", b"HSTRLEN", b"HEXISTS", b"HKEYS",
        b"HVALS", b"HGETALL", b"HINCRBY", b"HINCRBYFLOAT", b"HRANDFIELD", b"HSCAN", b"MULTI",
        b"EXEC",
    }
    assert expected <= seen


# --- blocked clients served ----------------------------------------------------------------

# (waiters: commands sent by clients that block, in this order; trigger: commands another
# client then runs; reads: the state afterwards).  Waiters marked "3" speak RESP3.
SERVED_SCENARIOS = {
    "woken key wins": (
        [(2, "BLPOP a b 0")], ["MULTI", "RPUSH b x", "RPUSH a y", "EXEC"],
        ["LRANGE a 0 -1", "LRANGE b 0 -1"]),
    "blmove feeds a blpop": (
        [(2, "BLMOVE s d LEFT RIGHT 0"), (3, "BLPOP d 0")], ["RPUSH s 1 2"],
        ["LRANGE s 0 -1", "EXISTS d"]),
    "blmpop count": (
        [(3, "BLMPOP 0 2 a b RIGHT COUNT 2")], ["RPUSH b 1 2 3"], ["LRANGE b 0 -1"]),
    "brpoplpush": ([(2, "BRPOPLPUSH s d 0")], ["LPUSH s q"], ["LRANGE d 0 -1"]),
    "fifo": (
        [(2, "BLPOP k 0"), (3, "BLPOP k 0"), (2, "BRPOP k 0")], ["RPUSH k 1 2 3 4"],
        ["LRANGE k 0 -1"]),
    "pushed and popped in one transaction": (
        [(2, "BLPOP k 0")], ["MULTI", "RPUSH k a", "LPOP k", "EXEC", "RPUSH k b"],
        ["EXISTS k"]),
    "a hash at the key does not serve": (
        [(2, "BLPOP k 0")], ["HSET k f v", "DEL k", "RPUSH k 1"], ["EXISTS k"]),
    "destination of the wrong type": (
        [(2, "BLMOVE s d LEFT LEFT 0")], ["SET d x", "RPUSH s 1"], ["LRANGE s 0 -1", "GET d"]),
    "timeouts": ([(3, "BLPOP k 0.05"), (2, "BLMOVE k d LEFT LEFT 0.05")], [], []),
}


def _blocked_clients(control: RawConnection) -> int:
    info = control.call([b"INFO", b"clients"])
    for line in info.split(b"\r\n"):
        if line.startswith(b"blocked_clients:"):
            return int(line.split(b":")[1])
    raise AssertionError("INFO clients has no blocked_clients")


def _run_served(port: int, waiters, trigger, reads) -> list[bytes]:
    control = RawConnection(port)
    control.call([b"FLUSHALL"])
    connections = []
    replies = []
    try:
        for protocol, line in waiters:
            connection = RawConnection(port)
            connections.append(connection)
            if protocol == 3:
                connection.call([b"HELLO", b"3"])
            connection.send(line.encode().split())
            if not line.endswith("0.05"):
                deadline = time.monotonic() + 10
                while _blocked_clients(control) < len(connections):
                    assert time.monotonic() < deadline, f"{line} did not block"
                    time.sleep(0.005)
        replies += [control.call(line.encode().split()) for line in trigger]
        replies += [connection.read_reply() for connection in connections]
        replies += [control.call(line.encode().split()) for line in reads]
    finally:
        for connection in [control, *connections]:
            connection.close()
    return replies


@pytest.mark.parametrize("name", sorted(SERVED_SCENARIOS))
def test_served_blocked_clients_get_what_redis_gives(server, redis_port, name):
    waiters, trigger, reads = SERVED_SCENARIOS[name]
    assert _run_served(server.port, waiters, trigger, reads) == _run_served(
        redis_port, waiters, trigger, reads)
