"""String commands: replies and errors as Redis 7.0 gives them, INCRBYFLOAT's long double
digits, the 512 MB limit, and what each write propagates."""

from __future__ import annotations

import time

import parity
import pytest
import redis
from parity import RawClient, compare_scripts
from servers import record_propagation
from trioredis.commands.args import incr_long_double

reference = parity.reference  # the real Redis, a module-scoped fixture


STRING_SCRIPT = [
    ("GET", "nope"), ("GET",), ("GET", "a", "b"), ("SET", "k"), ("SET", "k", "v", "EX"),
    ("SET", "k", "v", "EX", "0"), ("SET", "k", "v", "EX", "-1"), ("SET", "k", "v", "EX", "x"),
    ("SET", "k", "v", "PX", str(2**63 - 1)), ("SET", "k", "v", "EX", str(2**63 // 1000)),
    ("SET", "k", "v", "EX", "10", "PX", "10"), ("SET", "k", "v", "NX", "XX"),
    ("SET", "k", "v", "KEEPTTL", "EX", "1"), ("SET", "k", "v", "EX", "0", "NX", "XX"),
    ("SET", "k", "v", "FOO"), ("SET", "k", "v", "GET"), ("SET", "k", "w", "GET"),
    ("SET", "k", "x", "GET", "NX"), ("SET", "k", "y", "NX"), ("SET", "k", "y", "XX"),
    ("SET", "new", "y", "XX"), ("SET", "new", "y", "XX", "GET"), ("GET", "k"),
    ("SET", "k", "v", "EXAT", "1"), ("EXISTS", "k"), ("SET", "k", "v", "PXAT", "1", "GET"),
    ("SETNX", "k", "1"), ("SETNX", "k", "2"), ("GET", "k"), ("SETNX", "k"),
    ("SETEX", "k", "0", "v"), ("SETEX", "k", "-1", "v"), ("SETEX", "k", "abc", "v"),
    ("PSETEX", "k", "0", "v"), ("SETEX", "k", str(2**63 - 1), "v"), ("SETEX", "k", "100", "v"),
    ("TTL", "k"), ("PSETEX", "k", "100000", "w"), ("TTL", "k"), ("GET", "k"),
    ("GETSET", "k", "z"), ("TTL", "k"), ("GETSET", "nope2", "a"), ("GETDEL", "nope2"),
    ("GETDEL", "nope2"), ("GETEX", "nope"), ("GETEX", "k", "EX", "0"),
    ("GETEX", "k", "EX", "10", "PX", "10"), ("GETEX", "k", "PERSIST", "EX", "10"),
    ("GETEX", "k", "FOO"), ("GETEX", "k", "KEEPTTL"), ("GETEX", "k", "EX", "100"), ("TTL", "k"),
    ("GETEX", "k", "PERSIST"), ("TTL", "k"), ("GETEX", "k"), ("GETEX", "k", "EXAT", "1"),
    ("EXISTS", "k"), ("GETEX", "nope", "EX", "-1"), ("GETEX", "nope", "PXAT", "x"),
    ("GETEX", "nope", "EX", "x", "PX", "1"), ("GETEX", "nope", "EX", "x", "FOO"),
    ("MSET", "a"), ("MSET", "a", "1", "b"), ("MSETNX", "a", "1", "b"), ("MSET", "a", "1", "b", "2"),
    ("MGET", "a", "nope", "b"), ("MSETNX", "a", "3", "c", "4"), ("MSETNX", "c", "3", "d", "4"),
    ("MGET", "a", "b", "c", "d"), ("MGET",),
    ("APPEND", "ap", "hello"), ("APPEND", "ap", " world"), ("GET", "ap"), ("STRLEN", "ap"),
    ("STRLEN", "nope"), ("APPEND", "ap"),
    ("SETRANGE", "k", "-1", "x"), ("SETRANGE", "k", "x", "x"),
    ("SETRANGE", "sr", str(512 * 1024 * 1024), "x"), ("SETRANGE", "nk", "0", ""),
    ("EXISTS", "nk"), ("SET", "sr", "abc"), ("SETRANGE", "sr", "5", "x"), ("GET", "sr"),
    ("SETRANGE", "sr", "1", "ZZ"), ("GET", "sr"), ("SETRANGE", "sr", "100", ""),
    ("SETRANGE", "sr2", "3", "x"), ("GET", "sr2"),
    ("GETRANGE", "sr", "0", "-1"), ("GETRANGE", "sr", "-1", "-5"), ("GETRANGE", "sr", "a", "b"),
    ("GETRANGE", "nope", "0", "1"), ("GETRANGE", "sr", "-100", "1"), ("GETRANGE", "sr", "2", "1"),
    ("GETRANGE", "sr", "0", "100"), ("GETRANGE", "sr", "4", "-2"), ("SUBSTR", "sr", "1", "3"),
    ("SET", "e", ""), ("GETRANGE", "e", "0", "-1"),
    ("INCR", "sr"), ("INCR", "cnt"), ("INCRBY", "cnt", "10"), ("DECR", "cnt"),
    ("DECRBY", "cnt", "5"), ("INCRBY", "cnt", "abc"), ("INCRBY", "cnt", "1.5"),
    ("DECRBY", "cnt", str(-(2**63))), ("SET", "n", str(2**63 - 1)), ("INCR", "n"),
    ("SET", "n", str(-(2**63))), ("DECR", "n"), ("INCRBY", "n", str(2**63)),
    ("SET", "n", " 1"), ("INCR", "n"), ("SET", "n", "01"), ("INCR", "n"),
    ("SET", "n", "+1"), ("INCR", "n"), ("SET", "n", "-0"), ("INCR", "n"),
    ("SET", "n", "1"), ("EXPIRE", "n", "100"), ("INCR", "n"), ("TTL", "n"),
    ("INCRBYFLOAT", "f", "0.1"), ("INCRBYFLOAT", "f", "0.2"), ("INCRBYFLOAT", "f", "-0.3"),
    ("SET", "f", "1000"), ("INCRBYFLOAT", "f", "0.1"), ("INCRBYFLOAT", "f", "1e300"),
    ("SET", "f", "1e-20"), ("INCRBYFLOAT", "f", "0"), ("INCRBYFLOAT", "f", "abc"),
    ("INCRBYFLOAT", "f", " 1"), ("INCRBYFLOAT", "f", "nan"), ("INCRBYFLOAT", "f", "inf"),
    ("SET", "f", "1e308"), ("INCRBYFLOAT", "f", "1e308"), ("INCRBYFLOAT", "f", "5.0e3"),
    ("INCRBYFLOAT", "f", "-1.5e4000"), ("SET", "f", "3"), ("INCRBYFLOAT", "f", "-3"),
    ("INCRBYFLOAT", "f", "-2.5"), ("INCRBYFLOAT", "f", ".5"), ("INCRBYFLOAT", "f", "7."),
    ("SET", "f", "abc"), ("INCRBYFLOAT", "f", "1"), ("SET", "f", "10"), ("EXPIRE", "f", "100"),
    ("INCRBYFLOAT", "f", "1.5"), ("TTL", "f"),
    ("MSET", "k1", "ohmytext", "k2", "mynewtext"), ("LCS", "k1", "k2"),
    ("LCS", "k1", "k2", "LEN"), ("LCS", "k1", "k2", "IDX"),
    ("LCS", "k1", "k2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"),
    ("LCS", "k1", "k2", "LEN", "IDX"), ("LCS", "k1", "k2", "FOO"), ("LCS", "k1", "nope"),
    ("LCS", "nope", "nope2", "IDX"), ("SET", "k3", "abcabcxyzabc"), ("SET", "k4", "xabcyzabcab"),
    ("LCS", "k3", "k4", "IDX", "WITHMATCHLEN"), ("LCS", "k3", "k4"),
    ("LCS", "k3", "k4", "IDX", "MINMATCHLEN", "-5"),
]


def test_string_commands_reply_like_redis_byte_for_byte(server, reference):
    assert compare_scripts(server.port, reference.port, STRING_SCRIPT) == []


WRONGTYPE_SCRIPT = [
    ("RPUSH", "list", "x"), ("GET", "list"), ("SET", "list", "v", "GET"), ("GETSET", "list", "v"),
    ("GETDEL", "list"), ("GETEX", "list"), ("GETEX", "list", "EX", "-1"),
    ("GETEX", "list", "PX", "x"), ("GETEX", "list", "PX", "x", "EX", "1"), ("MGET", "list"), ("APPEND", "list", "x"),
    ("STRLEN", "list"), ("GETRANGE", "list", "0", "1"), ("SETRANGE", "list", "0", "x"),
    ("SETRANGE", "list", "0", ""), ("INCR", "list"), ("INCRBYFLOAT", "list", "1"),
    ("LCS", "list", "x"), ("SETNX", "list", "v"), ("SET", "list", "v"), ("GET", "list"),
]


def test_wrong_type_errors_like_redis(server, reference):
    parity.require_commands(server.port, "rpush")
    assert compare_scripts(server.port, reference.port, WRONGTYPE_SCRIPT) == []


@pytest.mark.parametrize(
    ("current", "increment", "expected"),
    [(b"1000", b"0.1", b"1000.09999999999999998"), (b"0.1", b"0.2", b"0.3"),
     (b"1e-20", b"0", b"0"), (b"-5", b"2.5", b"-2.5"), (b"3", b"-3", b"0"),
     (None, b"1.5e3", b"1500"), (b"10.5", b"0.1", b"10.6")],
)
def test_incrbyfloat_prints_long_double_digits(current, increment, expected):
    assert incr_long_double(current, increment) == expected


# --- behaviour and propagation -------------------------------------------------------------


def test_set_with_relative_expiry_propagates_absolute_time(server, r):
    recorder = record_propagation(server)
    before = int(time.time() * 1000)
    r.set("k", "v", ex=100)
    after = int(time.time() * 1000)
    # One command, as Redis 7.0 propagates it (a replica never holds the value without TTL).
    (name, key, value, unit, when), = recorder.argvs
    assert (name, key, value, unit) == (b"SET", b"k", b"v", b"PXAT")
    assert before + 100_000 <= int(when) <= after + 100_000


def test_set_without_expiry_propagates_as_sent_less_its_get(server, r):
    """As Redis 7.0 writes its AOF: NX, XX and KEEPTTL stay, GET goes, the case is kept."""
    recorder = record_propagation(server)
    r.execute_command("set", "k", "v", "NX", "GET")
    r.execute_command("SET", "k", "w", "xx", "get", "KEEPTTL", "GET")
    r.execute_command("SET", "k", "x", "NX")  # refused: nothing propagated
    r.execute_command("SET", "k", "y", "XX")
    assert recorder.argvs == [[b"set", b"k", b"v", b"NX"], [b"SET", b"k", b"w", b"xx", b"KEEPTTL"],
                              [b"SET", b"k", b"y", b"XX"]]


def test_setex_and_psetex_propagate_like_set(server, r):
    recorder = record_propagation(server)
    r.execute_command("SETEX", "a", 100, "1")
    r.execute_command("PSETEX", "b", 100_000, "2")
    assert [argv[::3] for argv in recorder.argvs] == [[b"SET", b"PXAT"], [b"SET", b"PXAT"]]


def test_incrbyfloat_propagates_set_keepttl_with_the_result(server, r):
    recorder = record_propagation(server)
    r.set("f", "10")
    assert r.incrbyfloat("f", 0.5) == 10.5
    assert recorder.argvs[-1] == [b"SET", b"f", b"10.5", b"KEEPTTL"]


def test_getset_propagates_set_and_getdel_propagates_del(server, r):
    recorder = record_propagation(server)
    r.getset("k", "1")
    r.getdel("k")
    r.getdel("k")
    assert recorder.argvs == [[b"SET", b"k", b"1"], [b"DEL", b"k"]]


def test_getex_propagates_its_effect_only(server, r):
    r.set("k", "v")
    recorder = record_propagation(server)
    r.getex("k")
    r.getex("k", persist=True)  # no TTL to remove: nothing changes
    r.getex("k", ex=100)
    r.getex("k", persist=True)
    r.getex("k", exat=1)
    kinds = [argv[0] for argv in recorder.argvs]
    assert kinds == [b"PEXPIREAT", b"PERSIST", b"DEL"]
    assert r.exists("k") == 0


def test_failed_set_nx_propagates_nothing(server, r):
    r.set("k", "v")
    recorder = record_propagation(server)
    assert r.set("k", "w", nx=True) is None
    assert r.setnx("k", "w") is False
    assert recorder.argvs == []


def test_string_growth_is_refused_past_proto_max_bulk_len(server, r):
    r.config_set("proto-max-bulk-len", "1mb")
    r.set("k", b"x" * 1024 * 1024)
    with pytest.raises(redis.ResponseError, match=r"string exceeds maximum allowed size \(proto-max-bulk-len\)"):
        r.append("k", "y")
    with pytest.raises(redis.ResponseError, match="string exceeds maximum allowed size"):
        r.setrange("other", 1024 * 1024, "y")
    assert r.strlen("k") == 1024 * 1024
    assert r.exists("other") == 0


def test_mset_then_mget_through_redis_py(r):
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "c") == [b"1", b"2", None]
    assert r.msetnx({"b": "3", "c": "4"}) is False
    assert r.msetnx({"c": "3", "d": "4"}) is True


def test_incr_keeps_ttl_and_set_drops_it(r):
    r.set("n", "1", ex=100)
    r.incr("n")
    r.append("n", "0")
    r.setrange("n", 0, "3")
    assert r.get("n") == b"30"
    assert 0 < r.ttl("n") <= 100
    r.set("n", "1")
    assert r.ttl("n") == -1


def test_get_counts_keyspace_hits_and_misses(r):
    r.config_resetstat()
    r.set("k", "v")
    r.get("k")
    r.get("missing")
    stats = r.info("stats")
    assert (stats["keyspace_hits"], stats["keyspace_misses"]) == (1, 1)


# --- differential: random command sequences against the real Redis -------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

KEYS = st.sampled_from(["a", "b", "c"])
VALUES = st.one_of(
    st.sampled_from(["", "0", "1", "-1", "10", "007", "3.5", "-2.25", "1e3", "abc", " 1",
                     "9223372036854775807", "-9223372036854775808", "0.1", "inf", "x" * 50]),
    st.text(alphabet="ab1.-", max_size=6),
)
NUMBERS = st.sampled_from(["0", "1", "-1", "2", "-3", "100", "abc", "1.5", "9223372036854775807",
                           "-9223372036854775808"])
OFFSETS = st.sampled_from(["0", "1", "3", "-1", "-2", "-100", "100", "x"])

INCRBYFLOAT_COMMAND = st.tuples(st.just("INCRBYFLOAT"), KEYS, st.one_of(NUMBERS, VALUES))
COMMANDS = st.one_of(
    st.tuples(st.just("SET"), KEYS, VALUES),
    st.tuples(st.just("GET"), KEYS),
    st.tuples(st.just("APPEND"), KEYS, VALUES),
    st.tuples(st.just("INCR"), KEYS),
    st.tuples(st.just("DECR"), KEYS),
    st.tuples(st.just("INCRBY"), KEYS, NUMBERS),
    st.tuples(st.just("DECRBY"), KEYS, NUMBERS),
    INCRBYFLOAT_COMMAND,
    st.tuples(st.just("GETRANGE"), KEYS, OFFSETS, OFFSETS),
    st.tuples(st.just("SETRANGE"), KEYS, st.sampled_from(["0", "1", "5", "-1"]), VALUES),
    st.tuples(st.just("STRLEN"), KEYS),
    st.tuples(st.just("MSET"), KEYS, VALUES, KEYS, VALUES),
    st.tuples(st.just("MSETNX"), KEYS, VALUES, KEYS, VALUES),
    st.tuples(st.just("MGET"), KEYS, KEYS, KEYS),
    st.tuples(st.just("GETSET"), KEYS, VALUES),
    st.tuples(st.just("GETDEL"), KEYS),
    st.tuples(st.just("GETEX"), KEYS, st.sampled_from(["EX", "PX", "EXAT", "PXAT"]), NUMBERS),
    st.tuples(st.just("SETNX"), KEYS, VALUES),
    st.tuples(st.just("DEL"), KEYS, KEYS),
    st.tuples(st.just("EXISTS"), KEYS, KEYS),
    st.tuples(st.just("RENAME"), KEYS, KEYS),
    st.tuples(st.just("RENAMENX"), KEYS, KEYS),
    st.tuples(st.just("COPY"), KEYS, KEYS),
    st.tuples(st.just("TYPE"), KEYS),
    st.tuples(st.just("LCS"), KEYS, KEYS),
    st.tuples(st.just("LCS"), KEYS, KEYS, st.just("IDX"), st.just("WITHMATCHLEN")),
    st.tuples(st.just("SET"), KEYS, VALUES, st.sampled_from(["NX", "XX", "GET", "KEEPTTL"])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(script=st.lists(COMMANDS, min_size=1, max_size=25))
def test_random_string_scripts_match_redis(server, reference, script):
    assert compare_scripts(server.port, reference.port, script) == []


# OBJECT ENCODING's history: Redis makes a string raw to edit it in place (APPEND, SETRANGE,
# SETBIT, BITFIELD's writes, BITOP's result) and it stays raw until the key gets a new value.
# INCRBYFLOAT is left out: Redis stores its result unencoded ("3" is embstr there, int here).
ENCODING_COMMANDS = st.one_of(
    *(command for command in COMMANDS.branches if command is not INCRBYFLOAT_COMMAND),
    st.tuples(st.just("OBJECT"), st.just("ENCODING"), KEYS),
    st.tuples(st.just("SETBIT"), KEYS, st.sampled_from(["0", "7", "100"]), st.sampled_from(["0", "1"])),
    st.tuples(st.just("BITFIELD"), KEYS, st.just("SET"), st.just("u8"), st.just("0"), NUMBERS),
    st.tuples(st.just("BITFIELD"), KEYS, st.just("OVERFLOW"), st.just("FAIL"), st.just("INCRBY"),
              st.just("u2"), st.just("0"), st.just("5")),
    st.tuples(st.just("BITOP"), st.sampled_from(["OR", "AND"]), KEYS, KEYS, KEYS),
    st.tuples(st.just("SETRANGE"), KEYS, st.just("0"), st.just("")),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(script=st.lists(ENCODING_COMMANDS, min_size=1, max_size=25))
def test_random_string_encodings_match_redis(server, reference, script):
    assert compare_scripts(server.port, reference.port, script) == []


RAW_SCRIPT = [
    ("SET", "k", "abc"), ("APPEND", "k", ""), ("OBJECT", "ENCODING", "k"),
    ("SET", "k", "12"), ("APPEND", "k", "3"), ("OBJECT", "ENCODING", "k"), ("INCR", "k"),
    ("OBJECT", "ENCODING", "k"), ("APPEND", "new", "5"), ("OBJECT", "ENCODING", "new"),
    ("SETRANGE", "sr", "0", "7"), ("OBJECT", "ENCODING", "sr"), ("SETRANGE", "sr", "0", ""),
    ("SET", "b", "x"), ("SETBIT", "b", "1", "1"), ("OBJECT", "ENCODING", "b"),
    ("SET", "b", "x"), ("OBJECT", "ENCODING", "b"), ("SET", "b", ""), ("OBJECT", "ENCODING", "b"),
    ("SET", "b", "x"), ("SETBIT", "b", "0", "0"), ("OBJECT", "ENCODING", "b"),
    ("BITOP", "OR", "dest", "b"), ("OBJECT", "ENCODING", "dest"), ("COPY", "dest", "copy"),
    ("OBJECT", "ENCODING", "copy"), ("RENAME", "copy", "moved"), ("OBJECT", "ENCODING", "moved"),
    ("MSET", "moved", "1", "dest", "2"), ("OBJECT", "ENCODING", "moved"),
    ("OBJECT", "ENCODING", "dest"), ("SET", "b", "x"), ("BITFIELD", "b", "GET", "u8", "0"),
    ("OBJECT", "ENCODING", "b"), ("BITFIELD", "b", "SET", "u8", "0", "120"),
    ("OBJECT", "ENCODING", "b"), ("GETSET", "b", "y"), ("OBJECT", "ENCODING", "b"),
    ("SET", "e", "abc"), ("EVAL", "return redis.call('append', KEYS[1], 'd')", "1", "e"),
    ("OBJECT", "ENCODING", "e"), ("EXPIRE", "e", "100"), ("OBJECT", "ENCODING", "e"),
]


def test_strings_edited_in_place_are_raw_as_in_redis(server, reference):
    assert compare_scripts(server.port, reference.port, RAW_SCRIPT) == []


def test_keyspace_hits_and_misses_count_like_redis(server, reference):
    """Reads count a hit or a miss (GET, MGET, EXISTS, TYPE, TTL, SET..GET...); writes that
    look at the old value (APPEND, INCR, SETRANGE) do not."""
    script = [("SET", "s", "1"), ("GET", "s"), ("GET", "nope"), ("MGET", "s", "nope", "s"),
              ("EXISTS", "s", "nope"), ("TYPE", "s"), ("TTL", "nope"), ("PTTL", "s"),
              ("STRLEN", "s"), ("GETRANGE", "nope", "0", "1"), ("APPEND", "s", "2"),
              ("INCR", "s"), ("SETRANGE", "n", "0", "x"), ("INCRBYFLOAT", "f", "1"),
              ("SET", "s", "2", "GET"), ("SET", "s", "3", "NX"), ("GETSET", "s", "4"),
              ("GETDEL", "s"), ("GETEX", "s"), ("TOUCH", "n", "s"), ("COPY", "n", "m"),
              ("OBJECT", "ENCODING", "n"), ("LCS", "n", "m"), ("RENAME", "n", "r"),
              ("MOVE", "r", "3"), ("EXPIRE", "m", "100"), ("PERSIST", "m"), ("KEYS", "*"),
              ("SCAN", "0"), ("SETNX", "m", "1"), ("MSETNX", "q", "1")]

    def counts(port):
        with RawClient(port) as raw:
            raw.call("SELECT", "9")
            raw.call("FLUSHALL")
            raw.call("CONFIG", "RESETSTAT")
            for args in script:
                raw.call(*args)
            text = raw.call("INFO", "stats").decode()
        return [line for line in text.split("\r\n") if line.startswith("keyspace_")]

    assert counts(server.port) == counts(reference.port)


def test_lcs_limits_and_errors_like_redis(server, reference):
    script = [("CONFIG", "SET", "proto-max-bulk-len", "1mb"),
              ("SET", "a", "x" * 511), ("SET", "b", "x" * 511), ("LCS", "a", "b", "LEN"),
              ("SET", "b", "x" * 512), ("LCS", "a", "b"), ("SET", "a", ""),
              ("SET", "b", "y" * 300000), ("LCS", "a", "b", "IDX"),
              ("RPUSH", "l", "x"), ("LCS", "l", "a", "FOO"), ("LCS", "a", "l", "LEN", "IDX"),
              ("LCS", "a", "nope", "LEN", "IDX")]
    try:
        assert compare_scripts(server.port, reference.port, script) == []
    finally:
        with RawClient(reference.port) as admin:
            admin.call("CONFIG", "SET", "proto-max-bulk-len", "512mb")


def test_lcs_of_long_strings_is_quick_and_right(r):
    """Two 5000-byte strings: the bit-parallel rows give the same answer as the table."""
    import random

    rng = random.Random(7)
    a = bytes(rng.choice(b"acgt") for _ in range(5000))
    b = bytes(rng.choice(b"acgt") for _ in range(5000))
    r.mset({"a": a, "b": b})
    common = r.execute_command("LCS", "a", "b")
    assert r.execute_command("LCS", "a", "b", "LEN") == len(common)
    assert _is_subsequence(common, a) and _is_subsequence(common, b)
    assert 3000 < len(common) < 3600


def _is_subsequence(small: bytes, big: bytes) -> bool:
    it = iter(big)
    return all(byte in it for byte in small)
