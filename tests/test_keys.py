"""Generic key commands: replies and errors as Redis 7.0 gives them, expiry and its
propagation, SCAN's guarantee, OBJECT ENCODING."""

from __future__ import annotations

import time

import parity
import pytest
import redis
from parity import RawClient, compare_scripts, require_commands
from servers import record_propagation
from trioredis import hookimpl
from trioredis.commands.keys import object_encoding
from trioredis.glob import compile_glob

reference = parity.reference  # the real Redis, a module-scoped fixture


# --- parity with the real Redis ------------------------------------------------------------

KEY_SCRIPT = [
    ("SET", "a", "1"), ("SET", "b", "2"), ("DEL", "a", "a", "b", "zz"), ("DEL", "nothing"),
    ("MSET", "a", "1", "b", "2"), ("EXISTS", "a", "a", "b", "zz"), ("UNLINK", "a", "zz"),
    ("TOUCH", "b", "b", "nope"), ("TYPE", "b"), ("TYPE", "nope"),
    ("KEYS",), ("RENAME", "nope", "x"), ("RENAME", "b", "b"), ("RENAMENX", "b", "b"),
    ("RENAME", "b", "c"), ("GET", "c"), ("EXISTS", "b"), ("SET", "d", "4"),
    ("RENAMENX", "c", "d"), ("RENAMENX", "c", "e"), ("RENAME", "e", "d"), ("GET", "d"),
    ("COPY", "d", "d"), ("COPY", "d", "f"), ("COPY", "d", "f"), ("COPY", "d", "f", "REPLACE"),
    ("COPY", "d", "f", "DB", "99"), ("COPY", "d", "f", "DB", "x"), ("COPY", "d", "f", "FOO"),
    ("COPY", "d", "f", "DB", str(2**40)), ("COPY", "d", "f", "DB"),
    ("COPY", "nope", "g"), ("COPY", "d", "d", "DB", "9"), ("COPY", "d", "d", "DB", "3"),
    ("COPY", "d", "d", "DB", "3"),
    ("MOVE", "d", "9"), ("MOVE", "d", "99"), ("MOVE", "d", "x"), ("MOVE", "d", "4"),
    ("MOVE", "d", "4"), ("MOVE", "nope", "4"), ("EXISTS", "d"), ("SELECT", "4"),
    ("GET", "d"), ("SELECT", "9"),
    ("OBJECT",), ("OBJECT", "foo"), ("OBJECT", "encoding"), ("OBJECT", "encoding", "a", "b"),
    ("OBJECT", "help", "x"), ("OBJECT", "HELP"), ("OBJECT", "encoding", "nope"),
    ("OBJECT", "refcount", "nope"), ("OBJECT", "freq", "f"), ("OBJECT", "idletime", "nope"),
    ("SET", "int", "123"), ("OBJECT", "encoding", "int"), ("OBJECT", "refcount", "int"),
    ("SET", "int", "10000"), ("OBJECT", "refcount", "int"), ("SET", "int", "-1"),
    ("OBJECT", "encoding", "int"), ("SET", "str", "x" * 44), ("OBJECT", "encoding", "str"),
    ("SET", "str", "x" * 45), ("OBJECT", "encoding", "str"), ("SET", "str", "01"),
    ("OBJECT", "encoding", "str"), ("SET", "str", "99999999999999999999"),
    ("OBJECT", "encoding", "str"),
    ("SET", "k", "v"), ("EXPIRE", "k", "100", "NX", "XX"), ("EXPIRE", "k", "100", "GT", "LT"),
    ("EXPIRE", "k", "100", "foo"), ("EXPIRE", "k", "abc"), ("EXPIRE", "k", "1.5"),
    ("EXPIRE", "k", str(2**63 - 1)), ("PEXPIRE", "k", str(2**63 - 1)),
    ("EXPIREAT", "k", str(2**63 - 1)), ("EXPIRE", "k", str(-(2**63))),
    ("EXPIRE", "nope", "10"), ("TTL", "k"), ("PTTL", "k"), ("EXPIRETIME", "k"),
    ("PEXPIRETIME", "nope"), ("TTL", "nope"), ("EXPIRE", "k", "100", "GT"),
    ("EXPIRE", "k", "100", "XX"), ("EXPIRE", "k", "100", "LT"), ("TTL", "k"),
    ("EXPIRE", "k", "50", "LT"), ("EXPIRE", "k", "200", "LT"), ("EXPIRE", "k", "10", "GT"),
    ("EXPIRE", "k", "20", "NX"), ("TTL", "k"), ("PERSIST", "k"), ("PERSIST", "k"),
    ("PERSIST", "nope"), ("TTL", "k"), ("EXPIREAT", "k", "4102444800"),
    ("EXPIRETIME", "k"), ("PEXPIRETIME", "k"), ("PEXPIREAT", "k", "4102444800123"),
    ("PEXPIRETIME", "k"), ("EXPIRETIME", "k"), ("EXPIRE", "k", "-1"), ("EXISTS", "k"),
    ("SET", "k", "v"), ("PEXPIREAT", "k", "1"), ("EXISTS", "k"), ("SET", "k", "v"),
    ("EXPIRE", "k", "0"), ("EXISTS", "k"),
    ("SCAN", "0", "COUNT", "0"), ("SCAN", "abc"), ("SCAN", "0", "TYPE"),
    ("SCAN", "0", "MATCH"), ("SCAN", "0", "FOO", "bar"), ("SCAN", "0", "COUNT", "x"),
    ("SCAN", "1.5"), ("KEYS", "a", "b"), ("RANDOMKEY", "x"),
    ("FLUSHDB",), ("RANDOMKEY",), ("KEYS", "*"), ("SCAN", "0"), ("SET", "one", "1"),
    ("RANDOMKEY",), ("KEYS", "*"), ("SCAN", "0"), ("SCAN", "0", "MATCH", "o*"),
    ("SCAN", "0", "TYPE", "list"), ("SCAN", "0", "TYPE", "string", "MATCH", "on?"),
]

# Needs the collection groups (lists, hashes, sets, zsets), which are their own issues.
COLLECTION_SCRIPT = [
    ("RPUSH", "list", "x"), ("TYPE", "list"), ("HSET", "hash", "f", "v"), ("TYPE", "hash"),
    ("SADD", "set", "1"), ("TYPE", "set"), ("ZADD", "zset", "1", "m"), ("TYPE", "zset"),
    ("COPY", "list", "list2"), ("RPUSH", "list2", "y"),
    ("LRANGE", "list", "0", "-1"), ("LRANGE", "list2", "0", "-1"),
    ("OBJECT", "encoding", "list"), ("OBJECT", "encoding", "hash"),
    ("OBJECT", "encoding", "set"), ("OBJECT", "encoding", "zset"), ("SADD", "set", "a"),
    ("OBJECT", "encoding", "set"), ("HSET", "bighash", "f", "v" * 65),
    ("OBJECT", "encoding", "bighash"), ("ZADD", "bigz", "1", "m" * 65),
    ("OBJECT", "encoding", "bigz"), ("MOVE", "zset", "2"),
    ("SELECT", "2"), ("TYPE", "zset"), ("SELECT", "9"),
    ("HSET", "h", *[x for i in range(512) for x in (f"f{i}", "v")]),
    ("OBJECT", "ENCODING", "h"), ("HSET", "h", "one", "more"), ("OBJECT", "ENCODING", "h"),
    ("SADD", "s", *range(512)), ("OBJECT", "ENCODING", "s"),
    ("SADD", "s", 512), ("OBJECT", "ENCODING", "s"),
    ("ZADD", "z", *[x for i in range(129) for x in (i, f"m{i}")]),
    ("OBJECT", "ENCODING", "z"),
    ("ZADD", "z2", *[x for i in range(128) for x in (i, f"m{i}")]),
    ("OBJECT", "ENCODING", "z2"),
]


def test_type_copy_and_encoding_of_collections_like_redis(server, reference):
    require_commands(server.port, "rpush", "lrange", "hset", "sadd", "zadd")
    assert compare_scripts(server.port, reference.port, COLLECTION_SCRIPT) == []


def test_key_commands_reply_like_redis_byte_for_byte(server, reference):
    assert compare_scripts(server.port, reference.port, KEY_SCRIPT) == []


GLOB_SUBJECTS = [b"", b"a", b"ab", b"abc", b"b", b"a*c", b"a?c", b"[", b"]", b"\\", b"a\\",
                 b"-", b"x-y", b"hello", b"hallo", b"hxllo", b"heeeello", b"a\nb"]
GLOB_PATTERNS = [b"*", b"a*", b"*c", b"a?c", b"h[ae]llo", b"h[^e]llo", b"h[a-b]llo",
                 b"h[b-a]llo", b"a\\*c", b"a\\?c", b"[", b"[]", b"[^]", b"[a", b"\\",
                 b"a\\", b"[\\]]", b"x[-]y", b"[a-]", b"h*llo", b"**", b"?", b"a[b-", b"a?b"]


def test_keys_glob_matches_like_redis(server, reference):
    """Every pattern against every name, as KEYS answers on both servers."""
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        for client in (ours, theirs):
            client.call("SELECT", 8)
            client.call("FLUSHDB")
            for subject in GLOB_SUBJECTS:
                client.call("SET", b"k" + subject, b"1")
        for pattern in GLOB_PATTERNS:
            mine = ours.call("KEYS", b"k" + pattern)
            real = theirs.call("KEYS", b"k" + pattern)
            # KEYS order is the hash table's: compare as sets of returned names.
            assert _bulk_set(mine) == _bulk_set(real), pattern


def _bulk_set(reply: bytes) -> set[bytes]:
    lines = reply.split(b"\r\n")
    return {lines[i] for i in range(2, len(lines), 2)}


def test_compile_glob_handles_escapes_and_classes():
    assert compile_glob(b"h[^e]llo").match(b"hallo")
    assert not compile_glob(b"h[^e]llo").match(b"hello")
    assert compile_glob(b"a\\*").match(b"a*")
    assert not compile_glob(b"a\\*").match(b"ab")
    assert compile_glob(b"[z-a]").match(b"m")
    assert compile_glob(b"*").match(b"line\nbreak")


# --- behaviour through redis-py ------------------------------------------------------------


def test_expire_then_key_disappears_and_counts_as_expired(r):
    r.set("k", "v")
    assert r.pexpire("k", 400) is True
    assert 0 < r.pttl("k") <= 400  # 400 ms: room for a busy machine between the two calls
    time.sleep(0.45)
    assert r.get("k") is None
    assert r.ttl("k") == -2
    assert r.info("stats")["expired_keys"] >= 1


def ttl_with_at_least(r, px: int, floor_ms: int) -> int:
    """TTL of a key set with ``px``, read while at least ``floor_ms`` remained (a PTTL after
    it proves that); a busy machine that stalled longer between the calls tries again."""
    for _ in range(20):
        r.set("k", "v", px=px)
        ttl = r.ttl("k")
        if r.pttl("k") >= floor_ms:
            return ttl
    raise AssertionError(f"never read TTL with {floor_ms} ms left of {px}")


def test_ttl_rounds_to_nearest_second(r):
    assert ttl_with_at_least(r, 1900, 1500) == 2  # 1.5 s up to 1.9 s rounds up
    assert ttl_with_at_least(r, 1100, 500) == 1  # 0.5 s up to 1.1 s rounds to 1


def test_set_without_keepttl_drops_ttl_and_rename_moves_it(r):
    r.set("k", "v", ex=100)
    r.rename("k", "k2")
    assert 0 < r.ttl("k2") <= 100
    r.set("k2", "w")
    assert r.ttl("k2") == -1


def test_move_and_copy_keep_the_ttl(r):
    r.set("k", "v", ex=100)
    assert r.copy("k", "k2") is True
    assert 0 < r.ttl("k2") <= 100
    assert r.move("k", 3) is True
    r.execute_command("SELECT", 3)
    assert 0 < r.ttl("k") <= 100


def test_copy_of_a_container_is_independent(server, r):
    require_commands(server.port, "sadd", "hset", "smembers", "hgetall")
    r.sadd("s", "a")
    r.hset("h", "f", "v")
    r.copy("s", "s2")
    r.copy("h", "h2")
    r.sadd("s2", "b")
    r.hset("h2", "g", "w")
    assert r.smembers("s") == {b"a"}
    assert r.hgetall("h") == {b"f": b"v"}


def test_scan_returns_every_key_present_for_the_whole_scan(r):
    """Keys deleted and added while scanning do not make the scan miss a stable key."""
    stable = {f"stable:{i}".encode() for i in range(300)}
    for key in stable:
        r.set(key, "1")
    for i in range(200):
        r.set(f"churn:{i}", "1")
    seen: set[bytes] = set()
    cursor = 0
    rounds = 0
    while True:
        cursor, batch = r.scan(cursor, count=25)
        seen.update(batch)
        rounds += 1
        r.delete(f"churn:{rounds}")
        r.set(f"new:{rounds}", "1")
        if cursor == 0:
            break
    assert stable <= seen
    assert rounds < 100


def test_scan_match_and_type_filter(server, r):
    require_commands(server.port, "rpush")
    for i in range(50):
        r.set(f"user:{i}", "x")
        r.rpush(f"queue:{i}", "x")
    assert set(r.scan_iter(match="user:1*", count=7)) == {
        f"user:{i}".encode() for i in range(50) if str(i).startswith("1")}
    assert set(r.scan_iter(_type="list", count=13)) == {f"queue:{i}".encode() for i in range(50)}


def test_scan_skips_expired_keys(r):
    r.set("live", "1")
    r.set("dying", "1", px=1)
    time.sleep(0.01)
    assert list(r.scan_iter()) == [b"live"]


def test_randomkey_returns_only_live_keys(r):
    r.set("gone", "1", px=1)
    r.set("here", "1")
    time.sleep(0.01)
    assert {r.randomkey() for _ in range(20)} == {b"here"}


def test_type_uses_the_plugin_hook_for_unknown_values(server, r):
    class Point:
        pass

    class PointType:
        @hookimpl
        def trioredis_value_type(self, value):
            return "point" if isinstance(value, Point) else None

    engine = server.server.engine
    engine.plugin_manager.register(PointType())
    engine.keyspace[0].data[b"p"] = Point()
    assert r.type("p") == b"point"
    assert r.exists("p") == 1


# --- propagation ---------------------------------------------------------------------------


def test_relative_expire_propagates_as_pexpireat(server, r):
    recorder = record_propagation(server)
    r.set("k", "v")
    before = int(time.time() * 1000)
    r.expire("k", 100)
    r.pexpire("k", 5000, xx=True)
    r.execute_command("EXPIREAT", "k", 4102444800)
    r.execute_command("PEXPIREAT", "k", 4102444800000)
    after = int(time.time() * 1000)
    commands = [argv for _db, argv in recorder.seen]
    assert commands[0] == [b"SET", b"k", b"v"]
    name, key, when = commands[1]
    assert (name, key) == (b"PEXPIREAT", b"k")
    assert before + 100_000 <= int(when) <= after + 100_000
    assert commands[2][0] == b"PEXPIREAT" and commands[2][3:] == [b"XX"]
    assert commands[3] == [b"PEXPIREAT", b"k", b"4102444800000"]
    assert commands[4] == [b"PEXPIREAT", b"k", b"4102444800000"]


def test_expire_in_the_past_deletes_and_propagates_del(server, r):
    recorder = record_propagation(server)
    r.set("k", "v")
    assert r.expire("k", -5) is True
    assert r.exists("k") == 0
    assert recorder.seen[-1] == (0, [b"DEL", b"k"])


def test_refused_expire_option_propagates_nothing(server, r):
    r.set("k", "v")
    recorder = record_propagation(server)
    assert r.expire("k", 100, xx=True) is False
    assert r.expire("missing", 100) is False
    assert recorder.seen == []


def test_lazy_expiry_propagates_del(server, r):
    # Without the background cycle, which could expire the key first, and with a TTL of
    # more than a millisecond: PX 1 set just before a millisecond boundary is already due
    # when SET stores it (SET then deletes it and propagates DEL itself).
    engine = server.server.engine
    engine.active_expire_enabled = False
    try:
        r.set("k", "v", px=30)
        recorder = record_propagation(server)
        time.sleep(0.08)
        assert r.get("k") is None
        assert (0, [b"DEL", b"k"]) in recorder.seen
    finally:
        engine.active_expire_enabled = True


def test_move_propagates_in_the_source_db(server, r):
    r.execute_command("SELECT", 2)
    r.set("k", "v")
    recorder = record_propagation(server)
    r.move("k", 5)
    assert recorder.seen == [(2, [b"MOVE", b"k", b"5"])]


# --- OBJECT ENCODING thresholds ------------------------------------------------------------


def test_object_encoding_thresholds_follow_redis_7_0():
    from collections import deque

    assert object_encoding(b"12") == "int"
    assert object_encoding(b"-9223372036854775808") == "int"
    assert object_encoding(b"9223372036854775808") == "embstr"
    assert object_encoding(b"x" * 44) == "embstr"
    assert object_encoding(b"x" * 45) == "raw"
    assert object_encoding(deque([b"a"])) == "quicklist"
    assert object_encoding({b"f": b"v"}) == "listpack"
    assert object_encoding({b"f%d" % i: b"v" for i in range(512)}) == "listpack"
    assert object_encoding({b"f%d" % i: b"v" for i in range(513)}) == "hashtable"
    assert object_encoding({b"f": b"v" * 65}) == "hashtable"
    assert object_encoding({b"%d" % i for i in range(512)}) == "intset"
    assert object_encoding({b"%d" % i for i in range(513)}) == "hashtable"
    assert object_encoding({b"a"}) == "hashtable"


def test_wrong_arity_and_errors_through_redis_py(r):
    with pytest.raises(redis.ResponseError, match="^no such key$"):
        r.rename("missing", "x")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'del'"):
        r.execute_command("DEL")


def test_scan_with_a_made_up_cursor_terminates(r):
    r.set("a", "1")
    cursor, _batch = r.scan(2**64 - 1)
    assert cursor == 0
    assert r.execute_command("SCAN", "-1")[0] in (0, b"0")  # redis-py may parse it


# --- differential: random key scripts against the real Redis --------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

K = st.sampled_from(["a", "b", "c"])
SECONDS = st.sampled_from(["100", "200", "300", "-1", "0", "abc"])
FLAGS = st.lists(st.sampled_from(["NX", "XX", "GT", "LT"]), max_size=2)
KEY_COMMANDS = st.one_of(
    st.tuples(st.just("SET"), K, st.sampled_from(["1", "v", ""])),
    st.tuples(st.just("SET"), K, st.just("v"), st.just("EX"), st.sampled_from(["150", "250"])),
    st.tuples(st.just("DEL"), K, K),
    st.tuples(st.just("UNLINK"), K),
    st.tuples(st.just("EXISTS"), K, K, K),
    st.tuples(st.just("TOUCH"), K, K),
    st.tuples(st.just("TYPE"), K),
    st.tuples(st.just("RENAME"), K, K),
    st.tuples(st.just("RENAMENX"), K, K),
    st.tuples(st.just("COPY"), K, K),
    st.tuples(st.just("COPY"), K, K, st.just("REPLACE")),
    st.tuples(st.just("COPY"), K, K, st.just("DB"), st.sampled_from(["3", "9"])),
    st.tuples(st.just("MOVE"), K, st.sampled_from(["3", "9", "99"])),
    st.builds(lambda k, s, f: ("EXPIRE", k, s, *f), K, SECONDS, FLAGS),
    st.builds(lambda k, s, f: ("PEXPIRE", k, s + "000", *f), K, SECONDS, FLAGS),
    st.tuples(st.just("PERSIST"), K),
    st.tuples(st.just("TTL"), K),
    st.tuples(st.just("DBSIZE")),
    st.tuples(st.just("SELECT"), st.sampled_from(["3", "9"])),
    st.tuples(st.just("GET"), K),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(script=st.lists(KEY_COMMANDS, min_size=1, max_size=25))
def test_random_key_scripts_match_redis(server, reference, script):
    assert compare_scripts(server.port, reference.port, script) == []
