"""Differential test for streams: seeded random streams of X* commands, error cases included,
sent to trioredis and to Debian's ``redis-server``; every reply must be the same bytes.

IDs are explicit (``<ms>-<seq>`` or ``<ms>-*`` from a counter both servers see), so the two
servers agree on every entry.  What depends on the clock is replaced before comparing, in
the replies that carry it: XPENDING's idle times, XINFO CONSUMERS' idle, XINFO STREAM FULL's
delivery and seen times.  XCLAIM/XAUTOCLAIM/XPENDING use a min-idle of 0 or of hours, so what
they select does not depend on timing.  Entry sizes vary around the listpack thresholds and
``stream-node-max-*`` change now and then, so approximate trimming and XINFO's node counts
check the node emulation.  Half of the streams go over RESP3.

Then scripted scenarios of blocked XREAD/XREADGROUP clients (FIFO service, ``$`` and ``>``,
MULTI/EXEC feeding them, XGROUP DESTROY and DEL waking them with errors, timeouts, CLIENT
UNBLOCK), compared the same way.
"""

from __future__ import annotations

import random
import shutil
import time

import pytest
from parity import RawClient, ReferenceRedis

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)

SEEDS = [20261202, 7, 1234]
COMMANDS = 2500

KEYS = [b"s1", b"s1", b"s2", b"str", b"missing"]
GROUPS = [b"g1", b"g1", b"g2", b"nogroup"]
CONSUMERS = [b"c1", b"c2", b"c3"]
FIELDS = [b"f", b"f", b"g", b"name", b"1"]
SIZES = [1, 3, 10, 63, 64, 100, 127, 128, 500, 1000, 3000, 4090, 4096, 5000]
SMALL_VALUES = [b"v", b"1", b"-7", b"123", b"01", b"-0", b"9223372036854775808", b"",
                b"12345678901234567890123"]
COUNTS = [b"0", b"1", b"2", b"3", b"10", b"-1", b"x"]


# --- a RESP reader that keeps the structure, for the replies with clock-dependent parts ---


def parse(raw: bytes, pos: int = 0):
    """(value, next position) of the RESP2/RESP3 reply at ``pos``."""
    end = raw.index(b"\r\n", pos)
    kind, rest = raw[pos : pos + 1], raw[pos + 1 : end]
    after = end + 2
    if kind in (b"$", b"=", b"!"):
        if rest == b"-1":
            return None, after
        size = int(rest)
        return raw[after : after + size], after + size + 2
    if kind in (b"*", b"~", b">", b"%"):
        if rest == b"-1":
            return None, after
        count = int(rest) * (2 if kind == b"%" else 1)
        items = []
        for _ in range(count):
            item, after = parse(raw, after)
            items.append(item)
        return [kind, *items], after
    if kind == b":":
        return int(rest), after
    return kind + rest, after


def _pairs(value: list):
    """(position of each key, key) in a parsed map (RESP3 ``%``) or flat array (RESP2)."""
    return [(index, value[index]) for index in range(1, len(value) - 1, 2)]


def _zero_after(value: list, name: bytes) -> None:
    for index, key in _pairs(value):
        if key == name:
            value[index + 1] = 0


def normalize(argv: list[bytes], raw: bytes):
    """The reply with clock-dependent values replaced; the raw bytes for other commands."""
    name = argv[0].upper()
    sub = argv[1].upper() if len(argv) > 1 else b""
    if raw[:1] == b"-":
        return raw
    if name == b"XPENDING" and len(argv) > 3:
        value, _ = parse(raw)
        for entry in value[1:]:
            entry[3] = 0
        return value
    if name == b"XINFO" and sub == b"CONSUMERS":
        value, _ = parse(raw)
        for consumer in value[1:]:
            _zero_after(consumer, b"idle")
        return value
    if name == b"XINFO" and sub == b"STREAM" and len(argv) > 3:
        value, _ = parse(raw)
        for index, key in _pairs(value):
            if key != b"groups":
                continue
            for group in value[index + 1][1:]:
                for at, field in _pairs(group):
                    if field == b"pending":
                        for pending in group[at + 1][1:]:
                            pending[3] = 0
                    if field == b"consumers":
                        for consumer in group[at + 1][1:]:
                            _zero_after(consumer, b"seen-time")
                            for spot, name in _pairs(consumer):
                                if name == b"pending":
                                    for pending in consumer[spot + 1][1:]:
                                        pending[2] = 0
        return value
    return raw


# --- the random commands -----------------------------------------------------------------


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ms = 1

    def value(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.5:
            return rng.choice(SMALL_VALUES)
        return b"x" * rng.choice(SIZES)

    def some_id(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.05:
            return rng.choice([b"abc", b"-1", b"1-x", b"18446744073709551616", b"+", b"-"])
        ms = rng.randint(max(1, self.ms - 40), self.ms + 2)
        if roll < 0.3:
            return b"%d" % ms
        return b"%d-%d" % (ms, rng.randint(0, 3))

    def bound(self, low: bool) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            return b"-" if low else b"+"
        if roll < 0.3:
            return b"+" if low else b"-"
        identifier = self.some_id()
        if rng.random() < 0.2:
            return b"(" + identifier
        return identifier

    def xadd(self, key: bytes) -> list[bytes]:
        rng = self.rng
        self.ms += rng.choice([0, 0, 1, 1, 2, 7, 1000, 100000])
        argv = [b"XADD", key]
        if rng.random() < 0.05:
            argv.append(b"NOMKSTREAM")
        roll = rng.random()
        if roll < 0.08:
            argv += [b"MAXLEN", rng.choice([b"~", b"~", b"=", b""]), b"%d" % rng.randint(0, 250)]
        elif roll < 0.12:
            argv += [b"MINID", rng.choice([b"~", b"="]), b"%d" % max(0, self.ms - rng.randint(0, 60))]
        elif roll < 0.13:
            argv += [b"MAXLEN", b"~", b"10", b"LIMIT", rng.choice([b"0", b"50", b"150", b"-1"])]
        argv = [part for part in argv if part]
        roll = rng.random()
        if roll < 0.55:
            argv.append(b"%d-*" % self.ms)
        elif roll < 0.95:
            argv.append(b"%d-%d" % (self.ms, rng.randint(0, 5)))
        else:
            argv.append(rng.choice([b"0-0", b"1-1", b"abc", b"%d" % (self.ms - 1)]))
        fields = rng.choice([1, 1, 1, 2, 3])
        for _ in range(fields):
            argv += [rng.choice(FIELDS) if rng.random() < 0.9 else self.value(), self.value()]
        if rng.random() < 0.02:
            argv.pop()
        return argv

    def command(self) -> list[bytes]:
        rng = self.rng
        key = rng.choice(KEYS)
        group = rng.choice(GROUPS)
        consumer = rng.choice(CONSUMERS)
        name = rng.choice([
            "XADD", "XADD", "XADD", "XADD", "XADD", "XADD", "XRANGE", "XREVRANGE", "XLEN",
            "XDEL", "XTRIM", "XREAD", "XREADGROUP", "XREADGROUP", "XACK", "XCLAIM",
            "XAUTOCLAIM", "XPENDING", "XPENDING", "XSETID", "XINFO", "XINFO", "XGROUP",
            "XGROUP", "CONFIG",
        ])
        if name == "XADD":
            return self.xadd(key)
        if name in ("XRANGE", "XREVRANGE"):
            argv = [name.encode(), key, self.bound(name == "XRANGE"), self.bound(name != "XRANGE")]
            if rng.random() < 0.5:
                argv += [b"COUNT", rng.choice(COUNTS)]
            return argv
        if name == "XLEN":
            return [b"XLEN", key]
        if name == "XDEL":
            return [b"XDEL", key, *[self.some_id() for _ in range(rng.randint(1, 4))]]
        if name == "XTRIM":
            strategy = rng.choice([b"MAXLEN", b"MINID", b"maxlen", b"FOO"])
            argv = [b"XTRIM", key, strategy]
            if rng.random() < 0.7:
                argv.append(rng.choice([b"~", b"="]))
            argv.append(b"%d" % rng.randint(0, 200) if strategy.upper() != b"MINID"
                        else b"%d" % max(0, self.ms - rng.randint(0, 80)))
            if rng.random() < 0.2:
                argv += [b"LIMIT", rng.choice([b"0", b"10", b"100"])]
            return argv
        if name == "XREAD":
            argv = [b"XREAD"]
            if rng.random() < 0.5:
                argv += [b"COUNT", rng.choice(COUNTS)]
            keys = [rng.choice(KEYS) for _ in range(rng.randint(1, 2))]
            ids = [rng.choice([b"0", b"$", self.some_id(), b">"]) for _ in keys]
            return argv + [b"STREAMS", *keys, *ids]
        if name == "XREADGROUP":
            argv = [b"XREADGROUP", b"GROUP", group, consumer]
            if rng.random() < 0.6:
                argv += [b"COUNT", rng.choice(COUNTS[:5])]
            if rng.random() < 0.15:
                argv.append(b"NOACK")
            keys = [rng.choice([b"s1", b"s1", b"s2", b"str"]) for _ in range(rng.randint(1, 2))]
            ids = [rng.choice([b">", b">", b">", b"0", self.some_id(), b"$"]) for _ in keys]
            return argv + [b"STREAMS", *keys, *ids]
        if name == "XACK":
            return [b"XACK", key, group, *[self.some_id() for _ in range(rng.randint(1, 3))]]
        if name == "XCLAIM":
            argv = [b"XCLAIM", key, group, consumer, rng.choice([b"0", b"0", b"36000000", b"x"])]
            argv += [self.some_id() for _ in range(rng.randint(1, 3))]
            for _ in range(rng.randint(0, 2)):
                argv += rng.choice([[b"JUSTID"], [b"FORCE"], [b"RETRYCOUNT", b"5"],
                                    [b"TIME", b"1000"], [b"LASTID", self.some_id()],
                                    [b"IDLE", b"x"], [b"BOGUS"]])
            return argv
        if name == "XAUTOCLAIM":
            argv = [b"XAUTOCLAIM", key, group, consumer, rng.choice([b"0", b"36000000"]),
                    self.bound(True)]
            if rng.random() < 0.6:
                argv += [b"COUNT", rng.choice([b"1", b"2", b"5", b"0"])]
            if rng.random() < 0.3:
                argv.append(b"JUSTID")
            return argv
        if name == "XPENDING":
            argv = [b"XPENDING", key, group]
            if rng.random() < 0.6:
                if rng.random() < 0.3:
                    argv += [b"IDLE", rng.choice([b"0", b"36000000"])]
                argv += [self.bound(True), self.bound(False), rng.choice(COUNTS)]
                if rng.random() < 0.4:
                    argv.append(consumer)
            return argv
        if name == "XSETID":
            argv = [b"XSETID", key, rng.choice([self.some_id(), b"%d-9" % self.ms])]
            if rng.random() < 0.3:
                argv += [b"ENTRIESADDED", rng.choice([b"0", b"5", b"1000", b"-1"])]
            if rng.random() < 0.3:
                argv += [b"MAXDELETEDID", self.some_id()]
            return argv
        if name == "XINFO":
            sub = rng.choice([b"STREAM", b"STREAM", b"GROUPS", b"CONSUMERS", b"HELP"])
            if sub == b"HELP":
                return [b"XINFO", b"HELP"]
            if sub == b"CONSUMERS":
                return [b"XINFO", sub, key, group]
            argv = [b"XINFO", sub, key]
            if sub == b"STREAM" and rng.random() < 0.5:
                argv.append(b"FULL")
                if rng.random() < 0.5:
                    argv += [b"COUNT", rng.choice([b"0", b"2", b"5"])]
            return argv
        if name == "XGROUP":
            sub = rng.choice([b"CREATE", b"CREATE", b"SETID", b"DESTROY", b"CREATECONSUMER",
                              b"DELCONSUMER"])
            if sub == b"CREATE":
                argv = [b"XGROUP", sub, key, group, rng.choice([b"0", b"$", self.some_id()])]
                if rng.random() < 0.3:
                    argv.append(b"MKSTREAM")
                if rng.random() < 0.2:
                    argv += [b"ENTRIESREAD", rng.choice([b"0", b"3", b"-1", b"-5"])]
                return argv
            if sub == b"SETID":
                argv = [b"XGROUP", sub, key, group, rng.choice([b"0", b"$", self.some_id()])]
                if rng.random() < 0.3:
                    argv += [b"ENTRIESREAD", rng.choice([b"0", b"3", b"-1"])]
                return argv
            if sub == b"DESTROY":
                return [b"XGROUP", sub, key, group]
            return [b"XGROUP", sub, key, group, consumer]
        option = rng.choice([b"stream-node-max-entries", b"stream-node-max-bytes"])
        values = ([b"100", b"100", b"3", b"0", b"10"] if option.endswith(b"entries")
                  else [b"4096", b"4096", b"200", b"0", b"8000"])
        return [b"CONFIG", b"SET", option, rng.choice(values)]


@pytest.fixture
def reference():
    with ReferenceRedis() as redis_server:
        yield redis_server


@pytest.mark.parametrize("seed", SEEDS)
def test_random_stream_commands_reply_as_redis(server, reference, seed):
    generator = Generator(seed)
    compared = 0
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs, \
            RawClient(server.port) as ours3, RawClient(reference.port) as theirs3:
        for client in (ours3, theirs3):
            client.call("HELLO", "3")
        ours.call("SET", "str", "x")
        theirs.call("SET", "str", "x")
        for index in range(COMMANDS):
            argv = generator.command()
            pair = (ours3, theirs3) if index % 2 else (ours, theirs)
            in_multi = generator.rng.random() < 0.02
            if in_multi and argv[0] not in (b"XINFO", b"XPENDING"):
                for client in pair:
                    client.call("MULTI")
                    client.call(*argv)
                second = generator.command()
                while second[0] in (b"XINFO", b"XPENDING"):  # clock-dependent: not in EXEC
                    second = generator.command()
                mine, real = (client.call(*second) for client in pair)
                assert mine == real, (second, mine, real)
                mine, real = (client.call("EXEC") for client in pair)
                assert mine == real, ("EXEC", argv, second, mine, real)
                continue
            mine, real = pair[0].call(*argv), pair[1].call(*argv)
            assert normalize(argv, mine) == normalize(argv, real), (index, argv, mine, real)
            compared += 1
        # The end state, fully.
        for key in (b"s1", b"s2"):
            argv = [b"XINFO", b"STREAM", key, b"FULL", b"COUNT", b"0"]
            mine, real = ours.call(*argv), theirs.call(*argv)
            assert normalize(argv, mine) == normalize(argv, real)
            assert ours.call("XRANGE", key, "-", "+") == theirs.call("XRANGE", key, "-", "+")
    assert compared > COMMANDS * 0.9


def test_long_streams_trim_at_the_same_node_boundaries(server, reference):
    """Thousands of entries of mixed sizes, then approximate trims: XLEN and XINFO (node and
    radix-tree counts) agree at every step."""
    rng = random.Random(99)
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        ms = 1
        for step in range(6000):
            ms += rng.choice([0, 1, 3, 1000])
            size = rng.choice([1, 5, 20, 70, 200, 900])
            argv = [b"XADD", b"long", b"%d-*" % ms, b"f", b"v" * size]
            if rng.random() < 0.3:
                argv += [b"g", b"%d" % rng.randint(-10**6, 10**6)]
            if step % 97 == 0:
                argv[2:2] = [b"MAXLEN", b"~", b"%d" % rng.randint(100, 3000)]
            if step % 89 == 0:
                argv = [b"XDEL", b"long", b"%d-0" % rng.randint(1, ms)]
            assert ours.call(*argv) == theirs.call(*argv), argv
            if step % 250 == 0:
                for check in ([b"XINFO", b"STREAM", b"long"], [b"XLEN", b"long"]):
                    assert ours.call(*check) == theirs.call(*check), check
        for threshold in (5000, 4000, 2500, 1000, 10):
            for argv in ([b"XTRIM", b"long", b"MAXLEN", b"~", b"%d" % threshold],
                         [b"XINFO", b"STREAM", b"long"]):
                assert ours.call(*argv) == theirs.call(*argv), argv


# --- blocking --------------------------------------------------------------------------


def _blocked(client: RawClient, port: int, name: bytes, timeout: float = 5) -> None:
    """Wait until a client runs ``name`` blocked on the server at ``port``."""
    deadline = time.monotonic() + timeout
    with RawClient(port) as admin:
        while time.monotonic() < deadline:
            listing = admin.call("CLIENT", "LIST")
            if b"cmd=" + name in listing and b"flags=b" in listing:
                return
            time.sleep(0.01)
    raise TimeoutError(f"no client blocked in {name!r}")


SCENARIOS = {
    "xread_dollar_gets_the_next_entry": [
        ("w1", ["XREAD", "BLOCK", "0", "STREAMS", "s", "$"], "xread"),
        ("p", ["XADD", "s", "5-1", "a", "1"]),
        ("p", ["XADD", "s", "6-1", "a", "2"]),
    ],
    "two_readers_served_in_arrival_order": [
        ("p", ["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]),
        ("w1", ["XREADGROUP", "GROUP", "g", "c1", "COUNT", "1", "BLOCK", "0", "STREAMS", "s", ">"],
         "xreadgroup"),
        ("w2", ["XREADGROUP", "GROUP", "g", "c2", "COUNT", "1", "BLOCK", "0", "STREAMS", "s", ">"],
         "xreadgroup"),
        ("p", ["XADD", "s", "1-1", "a", "1"]),
        ("p", ["XADD", "s", "2-1", "a", "2"]),
        ("p", ["XPENDING", "s", "g"]),
    ],
    "xread_on_two_keys_gets_the_key_that_changed": [
        ("p", ["XADD", "a", "1-1", "x", "1"]),
        ("w1", ["XREAD", "COUNT", "5", "BLOCK", "0", "STREAMS", "a", "b", "$", "$"], "xread"),
        ("p", ["XADD", "b", "2-1", "y", "1"]),
    ],
    "multi_exec_feeds_a_blocked_reader_after_exec": [
        ("w1", ["XREAD", "BLOCK", "0", "STREAMS", "s", "0"], "xread"),
        ("p", ["MULTI"]),
        ("p", ["XADD", "s", "1-1", "a", "1"]),
        ("p", ["XADD", "s", "1-2", "a", "2"]),
        ("p", ["EXEC"]),
    ],
    "group_destroy_wakes_readers_with_nogroup": [
        ("p", ["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]),
        ("w1", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"], "xreadgroup"),
        ("p", ["XGROUP", "DESTROY", "s", "g"]),
    ],
    "deleting_the_key_wakes_group_readers": [
        ("p", ["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]),
        ("w1", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"], "xreadgroup"),
        ("p", ["DEL", "s"]),
    ],
    "noack_reader_served_and_group_advanced": [
        ("p", ["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]),
        ("w1", ["XREADGROUP", "GROUP", "g", "c", "NOACK", "BLOCK", "0", "STREAMS", "s", ">"],
         "xreadgroup"),
        ("p", ["XADD", "s", "3-3", "k", "v"]),
        ("p", ["XINFO", "GROUPS", "s"]),
        ("p", ["XPENDING", "s", "g"]),
    ],
    "timeouts_answer_null": [
        ("w1", ["XREAD", "BLOCK", "30", "STREAMS", "s", "$"], None),
        ("w2", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "30", "STREAMS", "s", ">"], None),
    ],
}


def _run_scenario(port: int, steps: list, resp3: bool) -> list[bytes]:
    """Replies in the order they are read: each producer reply, then each waiter's."""
    replies = []
    clients: dict[str, RawClient] = {}
    try:
        for name in ("p", "w1", "w2"):
            clients[name] = RawClient(port)
            clients[name].call("SELECT", "9")
            if resp3:
                replies.append(clients[name].call("HELLO", "3")[:1])
        clients["p"].call("FLUSHDB")
        waiting = []
        for step in steps:
            who, argv = step[0], step[1]
            if who == "p":
                replies.append(clients["p"].call(*argv))
                continue
            from parity import encode_command

            clients[who].send(encode_command(*argv))
            waiting.append(who)
            if step[2] is not None:
                _blocked(clients[who], port, step[2].encode())
        for who in waiting:
            replies.append(clients[who].read_reply())
        replies.append(clients["p"].call("XINFO", "STREAM", "s")[:1])
    finally:
        for client in clients.values():
            client.close()
    return replies


@pytest.mark.parametrize("resp3", [False, True])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_blocked_readers_are_served_as_redis_serves_them(server, reference, scenario, resp3):
    steps = SCENARIOS[scenario]
    mine = _run_scenario(server.port, steps, resp3)
    real = _run_scenario(reference.port, steps, resp3)
    assert mine == real


@pytest.mark.parametrize("how", [[], ["ERROR"], ["TIMEOUT"]])
def test_client_unblock_ends_a_blocked_xread_as_redis(server, reference, how):
    results = []
    for port in (server.port, reference.port):
        with RawClient(port) as waiter, RawClient(port) as admin:
            waiter_id = waiter.call("CLIENT", "ID")[1:-2]
            from parity import encode_command

            waiter.send(encode_command("XREAD", "BLOCK", "0", "STREAMS", "nothing", "$"))
            _blocked(waiter, port, b"xread")
            results.append((admin.call("CLIENT", "UNBLOCK", waiter_id, *how), waiter.read_reply()))
    assert results[0] == results[1]
