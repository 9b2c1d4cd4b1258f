"""Differential tests of what operators read: INFO commandstats / errorstats / latencystats,
LATENCY HISTOGRAM and GRAPH, CLIENT LIST / INFO / KILL, COMMAND GETKEYS, against a real
``redis-server`` 7.0 given the same commands.  Timings differ between two servers, so those
numbers are compared by format; every count, name and field is compared exactly."""

from __future__ import annotations

import random
import re
import time

import hiredis
import parity
import pytest
from parity import RawClient, encode_command
from servers import ServerThread, wait_for

reference = parity.reference  # the real Redis, a module-scoped fixture


@pytest.fixture(scope="module")
def ours():
    server = ServerThread([["save", ""], ["appendonly", "no"]]).start()
    yield server
    server.stop()


def _both(ours, reference):
    return RawClient(ours.server.port), RawClient(reference.port)


# Commands whose statistics both servers must count alike: successes, failures (WRONGTYPE,
# syntax), refusals (arity, unknown command), subcommands of containers, a doomed MULTI.
STATS_STREAM = [
    ["SET", "a", "1"], ["GET", "a"], ["LPUSH", "a", "x"], ["NOSUCH"], ["GET"],
    ["INCR", "a", "b"], ["SET", "a", "b", "XX", "NX"], ["CONFIG", "GET", "maxmemory"],
    ["MULTI"], ["GET"], ["EXEC"], ["CLIENT", "ID"], ["CLIENT", "GETNAME"], ["OBJECT", "ENCODING", "a"],
    ["HSET", "h", "f"], ["DEL", "a", "h"], ["CONFIG", "GET"], ["SLOWLOG", "LEN"],
]


def _stat_fields(text: bytes) -> dict[str, dict[str, str]]:
    fields = {}
    for line in text.decode().split("\r\n"):
        if ":" in line and not line.startswith("#"):
            name, _, values = line.partition(":")
            fields[name] = dict(pair.split("=", 1) for pair in values.split(","))
    return fields


def _run_stats_stream(client: RawClient, commands) -> None:
    client.call("CONFIG", "RESETSTAT")
    for argv in commands:
        client.call(*argv)


def test_commandstats_and_errorstats_count_as_redis(ours, reference):
    rng = random.Random(17)
    stream = STATS_STREAM + [rng.choice(STATS_STREAM) for _ in range(200)]
    mine, theirs = _both(ours, reference)
    for client in (mine, theirs):
        _run_stats_stream(client, stream)
    ours_stats = _stat_fields(mine.call("INFO", "commandstats"))
    redis_stats = _stat_fields(theirs.call("INFO", "commandstats"))
    ours_stats.pop("cmdstat_info", None)
    redis_stats.pop("cmdstat_info", None)
    assert set(ours_stats) == set(redis_stats)
    for name, fields in redis_stats.items():
        assert list(ours_stats[name]) == list(fields)  # calls,usec,usec_per_call,rejected,failed
        for field in ("calls", "rejected_calls", "failed_calls"):
            assert ours_stats[name][field] == fields[field], (name, field)
        assert re.fullmatch(r"\d+\.\d\d", ours_stats[name]["usec_per_call"])
    # errorstats: the same prefixes and counts.
    assert _stat_fields(mine.call("INFO", "errorstats")) == _stat_fields(
        theirs.call("INFO", "errorstats"))


def test_latencystats_and_histograms_name_the_same_commands(ours, reference):
    mine, theirs = _both(ours, reference)
    for client in (mine, theirs):
        _run_stats_stream(client, STATS_STREAM)
    ours_latency = _stat_fields(mine.call("INFO", "latencystats"))
    redis_latency = _stat_fields(theirs.call("INFO", "latencystats"))
    assert set(ours_latency) == set(redis_latency)
    for fields in ours_latency.values():
        assert list(fields) == ["p50", "p99", "p99.9"]
        assert all(re.fullmatch(r"\d+\.\d{3}", value) for value in fields.values())
    # LATENCY HISTOGRAM: every command, a container by its name, an unknown name skipped.
    for names in ([], ["set", "get"], ["config"], ["nosuch", "client|id"], ["CLIENT"]):
        ours_reply = _quiet_client(ours.server.port).execute_command("LATENCY", "HISTOGRAM", *names)
        redis_reply = _quiet_client(reference.port).execute_command("LATENCY", "HISTOGRAM", *names)
        ours_map, redis_map = _pairs(ours_reply), _pairs(redis_reply)
        assert set(ours_map) == set(redis_map), names
        for name, entry in ours_map.items():
            entry, theirs_entry = _pairs(entry), _pairs(redis_map[name])
            assert list(entry) == [b"calls", b"histogram_usec"]
            # The histogram counted this call of LATENCY HISTOGRAM too, in Redis only after.
            if name != b"latency|histogram":
                assert entry[b"calls"] == theirs_entry[b"calls"], name
            buckets = _pairs(entry[b"histogram_usec"])
            assert set(buckets) <= {1, 2, 4, 8, 16, 33, 66, 132, 264, 528, 1056, 2113, 4227,
                                    8454, 16908, 33816, 67633, 135266, 270532, 541065}
            counts = list(buckets.values())
            assert counts == sorted(counts) and counts[-1] == entry[b"calls"]


class _quiet_client:  # noqa: N801  (used like redis.Redis)
    """A raw connection parsed by hiredis: no client handshake (redis-py's CLIENT SETINFO
    is Redis 7.2's) to add to the statistics being compared."""

    def __init__(self, port: int) -> None:
        self.raw = RawClient(port)

    def execute_command(self, *args):
        reader = hiredis.Reader()
        reader.feed(self.raw.call(*args))
        return reader.gets()


def _pairs(reply) -> dict:
    """A RESP2 flat map (or a RESP3 dict) as a dict."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[0::2], reply[1::2], strict=True))


def test_resetstat_empties_every_statistic(ours):
    client = RawClient(ours.server.port)
    client.call("SET", "k", "v")
    client.call("NOSUCH")
    client.call("CONFIG", "RESETSTAT")
    assert client.call("INFO", "errorstats") == b"$14\r\n# Errorstats\r\n\r\n"
    stats = _stat_fields(client.call("INFO", "commandstats"))
    assert set(stats) == {"cmdstat_config|resetstat", "cmdstat_info"}


def test_latency_graph_draws_as_redis(ours, reference):
    """A low and a high latency spike a second apart on both servers: the same chart (the
    lowest sample on the floor, the highest at the top, ages as labels below)."""
    mine, theirs = _both(ours, reference)
    for client in (mine, theirs):
        client.call("CONFIG", "SET", "latency-monitor-threshold", "10")
        client.call("LATENCY", "RESET")
    try:
        for seconds in ("0.02", "0.15"):
            mine.call("DEBUG", "SLEEP", seconds)
            theirs.call("DEBUG", "SLEEP", seconds)
            time.sleep(1.05)
        ours_graph, redis_graph = mine.call("LATENCY", "GRAPH", "command"), theirs.call(
            "LATENCY", "GRAPH", "command")
        # Milliseconds (and a label's second) measured by each server can differ: compare
        # the shape.
        assert _graph_shape(ours_graph) == _graph_shape(redis_graph), (ours_graph, redis_graph)
        assert mine.call("LATENCY", "GRAPH", "nosuch") == theirs.call("LATENCY", "GRAPH", "nosuch")
    finally:
        for client in (mine, theirs):
            client.call("CONFIG", "SET", "latency-monitor-threshold", "0")
            client.call("LATENCY", "RESET")


def _graph_shape(reply: bytes) -> bytes:
    return re.sub(rb"\d", b"N", reply)


# Arguments that steer key finding: keywords some commands search for, counts.
_KEYWORD_SAMPLES = [
    ["SET", "k", "v", "GET"], ["SET", "k", "v", "EX", "10"], ["SORT", "k", "BY", "w", "STORE", "d"],
    ["SORT", "k", "LIMIT", "0", "1", "STORE", "d", "STORE", "e"], ["SORT_RO", "k", "BY", "x"],
    ["XREAD", "COUNT", "1", "STREAMS", "a", "b", "0", "0"], ["XREAD", "STREAMS", "a", "b", "0"],
    ["XREADGROUP", "GROUP", "g", "c", "STREAMS", "a", "0"],
    ["GEORADIUS", "k", "0", "0", "1", "km", "STORE", "d"],
    ["GEORADIUS", "k", "0", "0", "1", "km", "STOREDIST", "d"],
    ["MIGRATE", "h", "1", "", "0", "5", "KEYS", "a", "b"], ["MIGRATE", "h", "1", "k", "0", "5"],
    ["BITFIELD", "k", "GET", "u8", "0"], ["BITFIELD", "k", "SET", "u8", "0", "1"],
    ["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"], ["ZUNIONSTORE", "d", "3", "a"],
    ["ZUNION", "-1", "a"], ["ZINTERCARD", "x", "a"], ["LMPOP", "2", "a", "b", "LEFT"],
    ["OBJECT", "ENCODING", "k"], ["OBJECT", "FOO", "k"], ["OBJECT"], ["CONFIG", "GET", "x"],
    ["NOSUCH", "k"], ["PING"], ["GET"], ["GET", "a", "b"], ["EVAL", "s", "0"], ["EVAL", "s", "1", "k"],
]


def _samples(name: bytes, arity: int) -> list[list[bytes]]:
    """Argument lists for one command: the fewest it takes and a few more, each with a count
    ("2") in one of the first three places, so numkeys-style commands find keys too."""
    fewest = abs(arity) - 1
    lengths = [fewest] if arity > 0 else [fewest, fewest + 1, fewest + 2, fewest + 5]
    samples = []
    for length in lengths:
        samples.append([name] + [b"a%d" % i for i in range(1, length + 1)])
        for place in range(min(length, 3)):
            args = [b"a%d" % i for i in range(1, length + 1)]
            args[place] = b"2"
            samples.append([name, *args])
    return samples


def test_command_getkeys_and_flags_for_every_command_with_keys(ours, reference):
    """COMMAND GETKEYS and GETKEYSANDFLAGS, byte for byte, for every built-in command that has
    keys (in both servers), over generated argument lists, plus keyword-steered cases."""
    mine, theirs = _both(ours, reference)
    # Redis 7.0's arity per command: a command we take in 7.2's form (ZRANK ... WITHSCORE)
    # is left out, its argument count being checked differently on purpose.
    redis_arity = {entry[0].lower(): entry[1]
                   for entry in _quiet_client(reference.port).execute_command("COMMAND")}
    compared, differences = 0, []
    for spec in ours.server.engine.commands:
        name = spec.name.encode()
        if redis_arity.get(name) != spec.arity:
            continue
        for argv in _samples(name, spec.arity):
            for sub in ("GETKEYS", "GETKEYSANDFLAGS"):
                pair = mine.call("COMMAND", sub, *argv), theirs.call("COMMAND", sub, *argv)
                if pair[0] != pair[1]:
                    differences.append((sub, argv, *pair))
                compared += 1
    ours_names = {spec.name for spec in ours.server.engine.commands} | {"nosuch"}
    for argv in _KEYWORD_SAMPLES:
        if argv[0].lower() not in ours_names:  # SORT, XREAD, EVAL...: not commands here
            continue
        for sub in ("GETKEYS", "GETKEYSANDFLAGS"):
            pair = mine.call("COMMAND", sub, *argv), theirs.call("COMMAND", sub, *argv)
            if pair[0] != pair[1]:
                differences.append((sub, argv, *pair))
    assert differences == [], "\n".join(map(repr, differences))
    assert compared > 1000
    # RESP3: the flags are a set.
    for client in (mine, theirs):
        client.call("HELLO", "3")
    argv = ["LMOVE", "a", "b", "LEFT", "RIGHT"]
    assert mine.call("COMMAND", "GETKEYSANDFLAGS", *argv) == theirs.call(
        "COMMAND", "GETKEYSANDFLAGS", *argv)


# CLIENT LIST's fields whose values the same actions make the same on both servers (the
# others are addresses, descriptors, ages and buffer sizes).
STABLE_FIELDS = ("name", "flags", "db", "sub", "psub", "ssub", "multi", "cmd", "user", "redir",
                 "resp")
REDIS_FIELDS = ["id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub", "psub",
                "ssub", "multi", "qbuf", "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp",
                "obl", "oll", "omem", "tot-mem", "events", "cmd", "user", "redir", "resp"]


def _client_lines(reply: bytes) -> dict[str, dict[str, str]]:
    """CLIENT LIST's lines by client name, each as its fields in order."""
    text = reply.split(b"\r\n", 1)[1].decode()
    clients = {}
    for line in text.strip().split("\n"):
        fields = dict(pair.split("=", 1) for pair in line.split(" "))
        clients[fields["name"]] = fields
    return clients


def _clients_in_every_state(port: int) -> list[RawClient]:
    """Five named clients: one in db 3, one subscribed three ways, one RESP3 in MULTI with a
    queued command and no-evict, one whose WATCHed key changed, one asking."""
    clients = [RawClient(port) for _ in range(5)]
    for number, client in enumerate(clients):
        assert client.call("CLIENT", "SETNAME", f"c{number}") == b"+OK\r\n"
    first, subscriber, transaction, watcher, _ = clients
    first.call("SELECT", "3")
    subscriber.call("SUBSCRIBE", "a", "b")
    subscriber.read_reply()
    subscriber.call("PSUBSCRIBE", "p*")
    subscriber.call("SSUBSCRIBE", "s")
    transaction.call("HELLO", "3")
    transaction.call("CLIENT", "NO-EVICT", "on")
    transaction.call("MULTI")
    transaction.call("SET", "k", "v")
    watcher.call("WATCH", "w")
    first.call("SELECT", "0")
    first.call("SET", "w", "changed")
    first.call("SELECT", "3")
    return clients


def test_client_list_fields_and_states_as_redis(ours, reference):
    mine, theirs = _clients_in_every_state(ours.server.port), _clients_in_every_state(reference.port)
    try:
        ours_list = _client_lines(mine[4].call("CLIENT", "LIST"))
        redis_list = _client_lines(theirs[4].call("CLIENT", "LIST"))
        names = {f"c{number}" for number in range(5)}
        assert names <= set(ours_list) and names <= set(redis_list)
        for name in sorted(names):
            # Redis 7.0's fields in its order (redis-py's lib-name and lib-ver, from 7.2's
            # CLIENT SETINFO, follow them here).
            assert list(ours_list[name])[:len(REDIS_FIELDS)] == REDIS_FIELDS
            assert list(redis_list[name]) == REDIS_FIELDS
            for field in STABLE_FIELDS:
                assert ours_list[name][field] == redis_list[name][field], (name, field)
        ours_info = mine[4].call("CLIENT", "INFO").split(b"\r\n")[1].decode().strip().split(" ")
        redis_info = theirs[4].call("CLIENT", "INFO").split(b"\r\n")[1].decode().strip().split(" ")
        assert [pair.split("=")[0] for pair in ours_info][:len(REDIS_FIELDS)] == REDIS_FIELDS
        assert [p for p in ours_info if p.split("=")[0] in STABLE_FIELDS] == [
            p for p in redis_info if p.split("=")[0] in STABLE_FIELDS]
        # Filters: by type, by id (the asking client's own id), errors.
        for argv in (["TYPE", "pubsub"], ["TYPE", "normal"], ["TYPE", "master"],
                     ["TYPE", "replica"], ["TYPE", "slave"]):
            assert sorted(_client_lines(mine[4].call("CLIENT", "LIST", *argv))) == sorted(
                _client_lines(theirs[4].call("CLIENT", "LIST", *argv))) if argv[1] in (
                "pubsub", "normal") else mine[4].call("CLIENT", "LIST", *argv) == theirs[4].call(
                "CLIENT", "LIST", *argv)
        for argv in (["TYPE", "foo"], ["ID", "x"], ["ID"], ["FOO"], ["TYPE"], ["ID", "1", "x"]):
            assert mine[4].call("CLIENT", "LIST", *argv) == theirs[4].call("CLIENT", "LIST", *argv)
        for side in (mine, theirs):
            own_id = side[4].call("CLIENT", "ID")[1:-2]
            listed = _client_lines(side[4].call("CLIENT", "LIST", "ID", own_id, b"999999"))
            assert list(listed) == ["c4"]
    finally:
        for client in mine + theirs:
            client.close()


def test_client_kill_filters_as_redis(ours, reference):
    mine, theirs = _clients_in_every_state(ours.server.port), _clients_in_every_state(reference.port)
    try:
        for argv in (["USER", "nobody"], ["SKIPME", "maybe"], ["ID", "x"], ["ID", "0"],
                     ["TYPE", "foo"], ["FOO", "bar"], ["ADDR"], ["1.2.3.4:5"],
                     ["ADDR", "1.2.3.4:5"], ["LADDR", "1.2.3.4:5"], ["TYPE", "master"],
                     ["TYPE", "pubsub", "USER", "default"]):
            assert mine[4].call("CLIENT", "KILL", *argv) == theirs[4].call("CLIENT", "KILL", *argv), argv
        for side in (mine, theirs):  # the pubsub client is gone on both
            assert "c1" not in _client_lines(side[4].call("CLIENT", "LIST"))
            # By address and by local address, taken from each server's own list.
            listed = _client_lines(side[4].call("CLIENT", "LIST"))
            assert side[4].call("CLIENT", "KILL", "ADDR", listed["c0"]["addr"]) == b":1\r\n"
            assert side[4].call("CLIENT", "KILL", listed["c2"]["addr"]) == b"+OK\r\n"
            laddr = listed["c3"]["laddr"]
            # Everyone but the asking client shares the local address; SKIPME yes spares it.
            assert side[4].call("CLIENT", "KILL", "LADDR", laddr, "SKIPME", "yes") == b":1\r\n"
            assert side[4].call("CLIENT", "KILL", "ID", side[4].call("CLIENT", "ID")[1:-2],
                                "SKIPME", "no") == b":1\r\n"
            assert side[4].read_reply() == b""  # it killed itself: closed after the reply
    finally:
        for client in mine + theirs:
            client.close()


def test_command_info_key_specs_for_every_command_as_redis(ours, reference):
    """COMMAND INFO's key specifications (its 9th element), byte for byte, for every command
    both servers have (RESP2 and RESP3), once the notes are set aside: a spec has a note here
    exactly where Redis has one, in this project's words rather than Redis's."""
    from test_server_commands import _elements, key_spec_notes, without_notes

    mine, theirs = _both(ours, reference)
    redis_names = {entry[0].lower()
                   for entry in _quiet_client(reference.port).execute_command("COMMAND")}
    compared = noted = 0
    for protocol in ("2", "3"):
        mine.call("HELLO", protocol)
        theirs.call("HELLO", protocol)
        for spec in ours.server.engine.commands:
            if spec.name.encode() not in redis_names:
                continue
            ours_specs = _elements(mine.call("COMMAND", "INFO", spec.name))[8]
            redis_specs = _elements(theirs.call("COMMAND", "INFO", spec.name))[8]
            ours_notes, redis_notes = key_spec_notes(ours_specs), key_spec_notes(redis_specs)
            assert len(ours_notes) == len(redis_notes), spec.name
            assert not set(ours_notes) & set(redis_notes), spec.name  # our own words
            assert without_notes(ours_specs) == without_notes(redis_specs), spec.name
            compared += 1
            noted += len(ours_notes)
    assert compared > 300 and noted >= 20


def test_client_unblock_and_getredir_as_redis(ours, reference):
    replies = []
    for port in (ours.server.port, reference.port):
        with RawClient(port) as blocked, RawClient(port) as other:
            blocked_id = blocked.call("CLIENT", "ID")[1:-2]
            seen = [other.call("CLIENT", "UNBLOCK", blocked_id),  # not blocked: 0
                    other.call("CLIENT", "UNBLOCK", blocked_id, "MAYBE"),
                    other.call("CLIENT", "UNBLOCK", "x"), other.call("CLIENT", "GETREDIR")]
            for mode in ("TIMEOUT", "ERROR", None):
                blocked.send(encode_command("BLPOP", "nolist", "0"))
                # Until the server shows it blocked (flags=b), then unblock it.
                wait_for(lambda who=blocked_id, by=other:
                         b"flags=b" in by.call("CLIENT", "LIST", "ID", who),
                         what="the client to block")
                args = ["CLIENT", "UNBLOCK", blocked_id] + ([mode] if mode else [])
                seen += [other.call(*args), blocked.read_reply()]
            replies.append(seen)
    assert replies[0] == replies[1]


def test_latency_tracking_options_as_redis(ours, reference):
    """latency-tracking-info-percentiles picks INFO latencystats' percentiles; with
    latency-tracking no, commands add nothing to the histograms."""
    mine, theirs = _both(ours, reference)
    try:
        for client in (mine, theirs):
            client.call("CONFIG", "RESETSTAT")
            client.call("CONFIG", "SET", "latency-tracking-info-percentiles", "0 50 99.99 100")
            client.call("SET", "k", "v")
        ours_fields = _stat_fields(mine.call("INFO", "latencystats"))["latency_percentiles_usec_set"]
        redis_fields = _stat_fields(theirs.call("INFO", "latencystats"))["latency_percentiles_usec_set"]
        assert list(ours_fields) == list(redis_fields) == ["p0", "p50", "p99.99", "p100"]
        for client in (mine, theirs):
            client.call("CONFIG", "SET", "latency-tracking", "no")
            client.call("CONFIG", "RESETSTAT")
            client.call("SET", "k", "v")
        assert mine.call("INFO", "latencystats") == theirs.call("INFO", "latencystats")
        assert mine.call("LATENCY", "HISTOGRAM") == theirs.call("LATENCY", "HISTOGRAM") == b"*0\r\n"
    finally:
        for client in (mine, theirs):
            client.call("CONFIG", "SET", "latency-tracking", "yes")
            client.call("CONFIG", "SET", "latency-tracking-info-percentiles", "50 99 99.9")
