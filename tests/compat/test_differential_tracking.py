"""Differential tests of client-side caching and CLIENT PAUSE against a real ``redis-server``
7.0: the same commands on the same set of connections to both servers, and every byte each
connection receives (replies and invalidation pushes, in order) compared, step by step,
including a seeded random stream of reads and writes with tracking on in every mode.

After each step every connection is synchronised with a command of its own (PING for the
RESP2 subscriber, CLIENT GETNAME elsewhere: a CLIENT subcommand, so it does not end a CLIENT
CACHING), and the bytes before that command's reply are the step's output for that
connection; BCAST messages, sent once per event-loop turn, are all out by then on both."""

from __future__ import annotations

import random
import time

import parity
import pytest
from parity import RawClient, encode_command, reply_end
from parity import held as held_for
from servers import ServerThread

reference = parity.reference  # the real Redis, a module-scoped fixture


@pytest.fixture(scope="module")
def ours():
    server = ServerThread([["save", ""], ["appendonly", "no"]]).start()
    yield server
    server.stop()


def _is_push(element: bytes) -> bool:
    """An out-of-band element: a RESP3 push, or a Pub/Sub message on a RESP2 subscriber."""
    return element.startswith(b">") or element.startswith(b"*3\r\n$7\r\nmessage\r\n")


class Session:
    """Named connections to one server; ``step`` runs commands on one of them and returns
    what every connection received because of it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections: dict[str, RawClient] = {}
        self.subscribed: set[str] = set()
        self.ids: dict[str, bytes] = {}

    def open(self, name: str, resp3: bool = False) -> None:
        client = self.connections[name] = RawClient(self.port)
        self.ids[name] = client.call("CLIENT", "ID")[1:-2]
        if resp3:
            client.call("HELLO", "3")

    def close(self) -> None:
        for client in self.connections.values():
            client.close()

    def _elements(self, client: RawClient, replies: int) -> list[bytes]:
        """Elements received until ``replies`` non-push replies have come."""
        found: list[bytes] = []
        while replies:
            end = reply_end(client.buffer, 0) if client.buffer else None
            if end is None:
                if not client._fill():
                    raise ConnectionError("closed")
                continue
            element, client.buffer = client.buffer[:end], client.buffer[end:]
            found.append(element)
            if not _is_push(element):
                replies -= 1
        return found

    def step(self, name: str, *commands: list[str | bytes]) -> list[tuple[str, bytes]]:
        """Send ``commands`` on connection ``name`` (one pipelined batch), then synchronise
        every connection; each connection's bytes before its sync reply, by name."""
        client = self.connections[name]
        client.send(b"".join(encode_command(*argv) for argv in commands))
        received = {name: self._elements(client, len(commands))}
        for other, connection in self.connections.items():
            sync = ["PING"] if other in self.subscribed else ["CLIENT", "GETNAME"]
            connection.send(encode_command(*sync))
            elements = self._elements(connection, 1)[:-1]
            received.setdefault(other, []).extend(elements)
        # Client ids (which differ between the servers) replaced by the connections' names,
        # where a reply is one (CLIENT GETREDIR) or a push names one (a broken redirection).
        names = {b":%b\r\n" % client_id: b":{id:%b}\r\n" % name.encode()
                 for name, client_id in self.ids.items()}
        naming = ["CLIENT", "GETREDIR"] in commands

        def named(part: bytes) -> bytes:
            if part.startswith(b">2\r\n$21\r\ntracking-redir-broken\r\n"):
                head, _, tail = part.rpartition(b":")
                return head + names.get(b":" + tail, b":" + tail)
            return names.get(part, part) if naming else part

        return [(other, b"".join(map(named, parts)))
                for other, parts in sorted(received.items()) if parts]

    def subscribe(self, name: str) -> None:
        self.connections[name].call("SUBSCRIBE", "__redis__:invalidate")
        self.subscribed.add(name)


def _sessions(ours, reference) -> tuple[Session, Session]:
    ours.client().flushall()
    reference.client().flushall()
    return Session(ours.port), Session(reference.port)


def _run_both(ours, reference, setup, steps) -> int:
    """Run ``setup(session)`` then each (connection, commands...) step on both servers and
    compare every step's bytes; the number of invalidation messages compared.  ``{id:x}`` in
    an argument is connection x's client id."""
    mine, theirs = _sessions(ours, reference)
    messages = 0
    try:
        for session in (mine, theirs):
            setup(session)
        for index, (name, *commands) in enumerate(steps):
            outputs = []
            for session in (mine, theirs):
                resolved = [[session.ids[arg[4:-1]] if isinstance(arg, str)
                             and arg.startswith("{id:") else arg for arg in argv]
                            for argv in commands]
                outputs.append(session.step(name, *resolved))
            assert outputs[0] == outputs[1], (index, name, commands)
            messages += sum(data.count(b"invalidate\r\n") for _, data in outputs[0])
    finally:
        mine.close()
        theirs.close()
    return messages


def test_a_resp3_tracker_redirected_to_a_resp2_subscriber_as_redis(ours, reference):
    """The flush null is in the tracking client's protocol, even inside a RESP2 message."""
    def setup(session: Session) -> None:
        session.open("l")
        session.subscribe("l")
        session.open("t", resp3=True)
        session.open("w")

    steps = [("t", ["CLIENT", "TRACKING", "ON", "REDIRECT", "{id:l}"]), ("t", ["GET", "k"]),
             ("w", ["SET", "k", "1"]), ("t", ["GET", "k"]), ("t", ["SET", "k", "2"]),
             ("w", ["FLUSHALL"]), ("t", ["FLUSHALL"])]
    assert _run_both(ours, reference, setup, steps) == 4  # messages on __redis__:invalidate


def _standard_setup(session: Session) -> None:
    session.open("t", resp3=True)  # default mode
    session.open("n", resp3=True)  # default mode, NOLOOP
    session.open("b", resp3=True)  # BCAST with prefixes
    session.open("l")  # RESP2 subscriber receiving r's invalidations
    session.open("r")  # RESP2, redirected to l
    session.open("w")  # a plain writer
    session.subscribe("l")


SCRIPTED = [
    ("t", ["CLIENT", "TRACKING", "ON"]),
    ("n", ["CLIENT", "TRACKING", "ON", "NOLOOP"]),
    ("b", ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a:", "PREFIX", "b:"]),
    ("r", ["CLIENT", "TRACKING", "ON", "REDIRECT", "{id:l}"]),
    ("r", ["CLIENT", "GETREDIR"]),
    ("t", ["CLIENT", "TRACKINGINFO"]),
    ("b", ["CLIENT", "TRACKINGINFO"]),
    ("t", ["GET", "a:1"]), ("n", ["GET", "a:1"]), ("r", ["MGET", "a:1", "c:1"]),
    ("w", ["SET", "a:1", "x"]),
    ("n", ["GET", "a:1"]), ("n", ["SET", "a:1", "y"]),
    ("t", ["GET", "k"]), ("t", ["SET", "k", "1"]),
    ("w", ["MSET", "b:2", "1", "b:1", "2", "c:1", "3"], ["SET", "a:9", "z"]),
    ("b", ["SET", "a:5", "own"]),
    ("t", ["HGET", "h", "f"]), ("w", ["HSET", "h", "f", "v"]),
    ("t", ["GET", "m"]), ("t", ["MULTI"], ["SET", "m", "1"], ["GET", "m"], ["EXEC"]),
    ("t", ["GET", "s1"]), ("t", ["EVAL", "return redis.call('GET', KEYS[1])", "1", "s2"]),
    ("t", ["EVAL", "return redis.call('GET', 's3')", "0"]),
    ("t", ["EVAL_RO", "return redis.call('GET', 's4')", "1", "s5"]),
    ("w", ["MSET", "s1", "1", "s2", "2", "s3", "3", "s4", "4", "s5", "5"]),
    ("t", ["GET", "e1"]), ("w", ["EVAL", "redis.call('SET', 'e1', 'v')", "0"]),
    ("t", ["GET", "x"]), ("r", ["GET", "x"]), ("w", ["FLUSHDB"]),
    ("t", ["FLUSHALL"]),
    ("t", ["CLIENT", "TRACKING", "OFF"]),
    ("t", ["CLIENT", "TRACKING", "ON", "OPTIN"]),
    ("t", ["GET", "o1"]), ("t", ["CLIENT", "CACHING", "YES"]), ("t", ["GET", "o2"]),
    ("t", ["GET", "o3"]), ("t", ["CLIENT", "CACHING", "YES"]), ("t", ["CLIENT", "TRACKINGINFO"]),
    ("t", ["MULTI"], ["GET", "o4"], ["GET", "o5"], ["EXEC"]),
    ("w", ["MSET", "o1", "1", "o2", "2", "o3", "3", "o4", "4", "o5", "5"]),
    ("t", ["CLIENT", "CACHING", "NO"]), ("t", ["CLIENT", "TRACKING", "OFF"]),
    ("t", ["CLIENT", "TRACKING", "ON", "OPTOUT"]),
    ("t", ["CLIENT", "CACHING", "NO"]), ("t", ["GET", "z1"]), ("t", ["GET", "z2"]),
    ("w", ["MSET", "z1", "1", "z2", "2"]),
    ("t", ["CLIENT", "TRACKING", "ON", "BCAST"]),
    ("t", ["CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"]),
    ("t", ["CLIENT", "TRACKING", "ON", "PREFIX", "a"]),
    ("t", ["CLIENT", "TRACKING", "ON", "REDIRECT", "999999"]),
    ("t", ["CLIENT", "TRACKING", "ON", "REDIRECT", "x"]),
    ("t", ["CLIENT", "TRACKING", "MAYBE"]), ("t", ["CLIENT", "TRACKING", "ON", "FOO"]),
    ("t", ["CLIENT", "TRACKING"]), ("t", ["CLIENT", "CACHING", "MAYBE"]),
    ("b", ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "bx"]),
    ("b", ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "c", "PREFIX", "d", "PREFIX", "c:"]),
    ("b", ["CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"]),
    ("b", ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "q", "NOLOOP"]),
    ("b", ["SET", "q1", "1"]), ("w", ["SET", "q2", "1"]), ("b", ["CLIENT", "TRACKINGINFO"]),
    ("r", ["CLIENT", "TRACKING", "OFF"]), ("r", ["CLIENT", "TRACKINGINFO"]),
    ("b", ["RESET"]), ("b", ["CLIENT", "TRACKINGINFO"]),
]


def test_scripted_tracking_session_as_redis(ours, reference):
    assert _run_both(ours, reference, _standard_setup, SCRIPTED) > 20


def test_tracking_info_fields_as_redis(ours, reference):
    steps = [
        ("t", ["CLIENT", "TRACKING", "ON"]), ("t", ["MGET", "k1", "k2", "k3"]),
        ("n", ["CLIENT", "TRACKING", "ON"]), ("n", ["MGET", "k2", "k3", "k4"]),
        ("b", ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "x", "PREFIX", "y"]),
        ("w", ["SET", "k2", "1"]),
    ]
    mine, theirs = _sessions(ours, reference)
    try:
        fields = []
        for session in (mine, theirs):
            _standard_setup(session)
            for name, *commands in steps:
                session.step(name, *commands)
            info = session.connections["w"].call("INFO", "everything").decode()
            fields.append({line for line in info.split("\r\n")
                           if line.startswith("tracking_")})
        assert fields[0] == fields[1]
        assert "tracking_total_keys:3" in fields[0]
    finally:
        mine.close()
        theirs.close()


def test_client_list_tracking_flags_and_redir_as_redis(ours, reference):
    lines = []
    for port in (ours.port, reference.port):
        listener, tracker, bcast = RawClient(port), RawClient(port), RawClient(port)
        listener_id = listener.call("CLIENT", "ID")[1:-2]
        tracker.call("CLIENT", "TRACKING", "ON", "REDIRECT", listener_id)
        bcast.call("CLIENT", "TRACKING", "ON", "BCAST")
        listener.close()
        time.sleep(0.1)
        tracker.call("GET", "k")
        bcast.call("SET", "k", "1")  # the redirection is found broken here: flag R
        time.sleep(0.05)
        found = []
        for client in (tracker, bcast):
            info = client.call("CLIENT", "INFO").decode()
            fields = dict(part.split("=", 1) for part in info.split()[1:] if "=" in part)
            redir = fields["redir"]
            found.append((fields["flags"], redir == listener_id.decode() or redir))
        lines.append(found)
        tracker.close()
        bcast.close()
    assert lines[0] == lines[1] == [("tR", True), ("tB", "0")]


# --- which keys each write command invalidates -----------------------------------------------

_FIXTURE = [["SET", "k1", "v"], ["SADD", "s1", "a", "b"], ["SADD", "s2", "b"],
            ["RPUSH", "l1", "a", "b"], ["ZADD", "z1", "1", "a"], ["HSET", "h1", "f", "v"],
            ["XADD", "x1", "1-0", "f", "v"], ["SET", "b1", "ab"], ["PFADD", "p1", "a"]]
_TRACKED = ["k1", "k2", "k3", "k5", "k9", "s1", "s2", "s3", "l1", "l2", "z1", "z2", "z3", "h1",
            "x1", "b1", "p1", "p2"]
# Only the keys a command changes are invalidated (a store command's sources, DEL's missing
# keys are not), in Redis's order (LMOVE: destination first); LTRIM signals even when it
# kept everything; reads (TOUCH, LPOS...) invalidate nothing.
_WRITE_COMMANDS = [
    ["DEL", "k1", "k2"], ["DEL", "k1", "k1"], ["UNLINK", "k1", "k3"], ["COPY", "k1", "k2"],
    ["SMOVE", "s1", "s2", "zz"], ["SMOVE", "s1", "s2", "a"], ["SINTERSTORE", "s3", "s1", "s2"],
    ["LMOVE", "l1", "l2", "LEFT", "RIGHT"], ["RPOPLPUSH", "l1", "l2"], ["RENAME", "k1", "k3"],
    ["GETDEL", "k1"], ["GETEX", "k1", "EX", "100"], ["GETEX", "k1"],
    ["SORT", "l1", "ALPHA", "STORE", "k2"], ["BITOP", "OR", "k3", "b1", "k1"],
    ["ZUNIONSTORE", "z2", "2", "z1", "z3"], ["PFMERGE", "p2", "p1"],
    ["MSETNX", "k1", "1", "k2", "2"], ["SET", "k1", "x", "NX"], ["EXPIRE", "k2", "10"],
    ["HDEL", "h1", "nof"], ["LREM", "l1", "0", "zz"], ["SREM", "s1", "zz"],
    ["XTRIM", "x1", "MAXLEN", "0"], ["TOUCH", "k1", "k2"], ["LPOS", "l1", "a"],
    ["ZRANGESTORE", "z2", "z1", "0", "-1"], ["MOVE", "k1", "1"], ["SETRANGE", "k1", "0", ""],
    ["SPOP", "s1", "0"], ["LTRIM", "l1", "0", "-1"], ["LTRIM", "k1", "0", "-1"],
    ["HINCRBY", "h1", "f2", "0"], ["INCRBY", "k5", "0"], ["PERSIST", "k1"],
    ["EXPIRE", "k1", "-1"], ["FLUSHDB"],
]


def test_each_write_command_invalidates_what_redis_invalidates(ours, reference):
    steps = []
    for argv in _WRITE_COMMANDS:
        steps += [("w", *_FIXTURE), ("t", ["MGET", *_TRACKED]), ("w", argv), ("w", ["FLUSHALL"])]

    def setup(session: Session) -> None:
        session.open("t", resp3=True)
        session.open("w")
        session.connections["t"].call("CLIENT", "TRACKING", "ON")

    assert _run_both(ours, reference, setup, steps) > len(_WRITE_COMMANDS)


# --- a seeded random stream -------------------------------------------------------------------

_KEYS = ["a:1", "a:2", "b:1", "c:1", "c:2"]
_READS = [
    lambda rng, k: ["GET", k], lambda rng, k: ["MGET", k, rng.choice(_KEYS)],
    lambda rng, k: ["EXISTS", k], lambda rng, k: ["STRLEN", k], lambda rng, k: ["TYPE", k],
    lambda rng, k: ["HGET", k, "f"], lambda rng, k: ["LRANGE", k, "0", "-1"],
    lambda rng, k: ["TTL", k],
]
_WRITES = [
    lambda rng, k: ["SET", k, str(rng.randint(0, 9))], lambda rng, k: ["DEL", k],
    lambda rng, k: ["APPEND", k, "x"], lambda rng, k: ["INCR", k],
    lambda rng, k: ["HSET", k, "f", "v"], lambda rng, k: ["LPUSH", k, "e"],
    lambda rng, k: ["EXPIRE", k, "100"], lambda rng, k: ["PERSIST", k],
    lambda rng, k: ["SET", k, "v", "NX"], lambda rng, k: ["RENAME", k, rng.choice(_KEYS)],
    lambda rng, k: ["MSET", k, "1", rng.choice(_KEYS), "2"],
    lambda rng, k: ["EVAL", "return redis.call('SET', KEYS[1], 'lua')", "1", k],
    lambda rng, k: ["DEL", k, rng.choice(_KEYS)], lambda rng, k: ["COPY", k, rng.choice(_KEYS)],
    lambda rng, k: ["LMOVE", k, rng.choice(_KEYS), "LEFT", "LEFT"],
    lambda rng, k: ["SUNIONSTORE", k, rng.choice(_KEYS)],
]


def _random_steps(seed: int, count: int) -> list[tuple]:
    rng = random.Random(seed)
    steps: list[tuple] = [
        ("t", ["CLIENT", "TRACKING", "ON"]),
        ("n", ["CLIENT", "TRACKING", "ON", "NOLOOP"]),
        ("b", ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a:", "PREFIX", "c:"]),
        ("r", ["CLIENT", "TRACKING", "ON", "REDIRECT", "{id:l}"]),
    ]
    for _ in range(count):
        name = rng.choice("tnbrw")
        key = rng.choice(_KEYS)
        roll = rng.random()
        if roll < 0.45:
            steps.append((name, rng.choice(_READS)(rng, key)))
        elif roll < 0.85:
            steps.append((name, rng.choice(_WRITES)(rng, key)))
        elif roll < 0.93:  # a transaction mixing reads and writes, pipelined
            inner = [rng.choice(_READS + _WRITES)(rng, rng.choice(_KEYS)) for _ in range(3)]
            steps.append((name, ["MULTI"], *inner, ["EXEC"]))
        elif roll < 0.96:
            steps.append((name, ["FLUSHDB"]))
        elif roll < 0.98 and name in "tn":  # tracking off and on again
            steps.append((name, ["CLIENT", "TRACKING", "OFF"]))
            steps.append((name, ["CLIENT", "TRACKING", "ON"] + (["NOLOOP"] if name == "n" else [])))
        else:  # a few writes in one pipelined batch (one event-loop turn)
            steps.append((name, *[rng.choice(_WRITES)(rng, rng.choice(_KEYS)) for _ in range(3)]))
    return steps


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_reads_and_writes_push_the_same_bytes_as_redis(ours, reference, seed):
    messages = _run_both(ours, reference, _standard_setup, _random_steps(seed, 250))
    assert messages > 50  # the stream does exercise invalidation


# --- CLIENT PAUSE ------------------------------------------------------------------------------


_PAUSE_CASES = [
    # Before SCRIPT FLUSH below: the scripts _pause_outcomes loads.
    ["EVALSHA", "77f21361171213377cb083e2ffc2ae24ffdff8fb", "0"],  # a no-writes script
    ["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],  # return 1
    ["FCALL", "ro", "0"], ["FCALL", "rw", "0"], ["FCALL_RO", "ro", "0"],
    ["PUBLISH", "ch", "x"], ["EVAL", "return 1", "0"],
    ["EVAL", "#!lua flags=no-writes\nreturn 1", "0"], ["EVAL_RO", "return 1", "0"],
    ["PFCOUNT", "h"], ["SPUBLISH", "ch", "x"], ["SET", "k", "1"], ["GET", "k"], ["PING"],
    ["EXPIRE", "k", "10"], ["DEL", "nokey"], ["CLIENT", "UNPAUSE"], ["MULTI"], ["EXEC"],
    ["SCRIPT", "FLUSH"], ["FLUSHALL"], ["SELECT", "1"], ["WAIT", "0", "0"],
    ["FCALL_RO", "f", "0"], ["FCALL", "f", "0"], ["EVALSHA", "abc", "0"],
]
_LIBRARY = ("#!lua name=pauselib\n"
            "redis.register_function{function_name='ro', callback=function() return 1 end, "
            "flags={'no-writes'}}\n"
            "redis.register_function('rw', function() return 2 end)")


def _pause_outcomes(port: int) -> list:
    admin = RawClient(port)
    outcomes = [admin.call("FUNCTION", "LOAD", "REPLACE", _LIBRARY),
                admin.call("SCRIPT", "LOAD", "#!lua flags=no-writes\nreturn 1"),
                admin.call("SCRIPT", "LOAD", "return 1")]
    # ALL holds the admin's UNPAUSE too: its pauses are short, and end by themselves.
    for mode, milliseconds, cases in (("WRITE", "5000", _PAUSE_CASES),
                                      ("ALL", "300", _PAUSE_CASES[::4])):
        for argv in cases:
            admin.call("CLIENT", "PAUSE", milliseconds, mode)
            client = RawClient(port)
            client.send(encode_command(*argv))
            held = held_for(client, 0.1)
            admin.call("CLIENT", "UNPAUSE")
            outcomes.append((mode, argv[0], held, client.read_reply()))
            client.close()
    for argv in (["CLIENT", "PAUSE", "abc"], ["CLIENT", "PAUSE", "-1"],
                 ["CLIENT", "PAUSE", "100", "foo"], ["CLIENT", "PAUSE"],
                 ["CLIENT", "PAUSE", "1", "WRITE", "x"], ["CLIENT", "PAUSE", "abc", "foo"],
                 ["CLIENT", "PAUSE", "-0"], ["CLIENT", "PAUSE", "1.5"],
                 ["CLIENT", "UNPAUSE", "x"], ["CLIENT", "PAUSE", "9223372036854775807"],
                 ["PING"]):
        outcomes.append(admin.call(*argv))
    admin.close()
    return outcomes


def test_what_each_pause_mode_holds_as_redis(ours, reference):
    ours.client().flushall()
    reference.client().flushall()
    assert _pause_outcomes(ours.port) == _pause_outcomes(reference.port)


def _ordered_after_unpause(port: int) -> list:
    admin = RawClient(port)
    admin.call("FLUSHALL")
    admin.call("SET", "e", "1", "PX", "100")
    admin.call("CLIENT", "PAUSE", "5000", "WRITE")
    writers = [RawClient(port) for _ in range(5)]
    for index, writer in enumerate(writers):
        writer.send(encode_command("RPUSH", "l", str(index)))
        time.sleep(0.02)
    time.sleep(0.2)
    during = [admin.call("GET", "e"), admin.call("DBSIZE"), admin.call("TTL", "e"),
              admin.call("EXISTS", "e"), admin.call("LRANGE", "l", "0", "-1")]
    transaction = RawClient(port)
    queued = [transaction.call("MULTI"), transaction.call("GET", "l")]
    transaction.send(encode_command("SET", "k", "1"))
    held = held_for(transaction, 0.1)
    admin.call("CLIENT", "UNPAUSE")
    replies = [writer.read_reply() for writer in writers]
    # Not DBSIZE: once unpaused, "e" goes whenever the expiry cron next runs, in either
    # server, so counting it raced with the machine's load.
    after = [transaction.read_reply(), transaction.call("EXEC"),
             admin.call("LRANGE", "l", "0", "-1"), admin.call("EXISTS", "l", "k")]
    for client in writers + [transaction, admin]:
        client.close()
    return [during, queued, held, replies, after]


def test_held_commands_run_in_order_and_keys_stay_while_paused_as_redis(ours, reference):
    assert _ordered_after_unpause(ours.port) == _ordered_after_unpause(reference.port)
