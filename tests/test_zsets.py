"""Sorted set commands through redis-py, with Redis 7.0's replies for the edge cases: score
parsing (``nan`` refused, ``inf``, overflow), exclusive and infinite bounds, lex ranges,
WITHSCORES formatting in RESP2 and RESP3, negative ranks, LIMIT, wrong types, a sorted set
deleted once empty, blocking pops and what every write propagates."""

from __future__ import annotations

import socket
import threading
import time

import listhash_recorder
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from listhash_recorder import propagated
from servers import ServerThread
from trioredis.zset import LexRange, ScoreRange, ZSet

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def error_of(call, *args):
    with pytest.raises(redis.ResponseError) as info:
        call(*args)
    return str(info.value)


def raw(server, *argv: bytes | str, resp3: bool = False) -> bytes:
    """The exact bytes of one reply (RESP2, or RESP3 after HELLO 3)."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        if resp3:
            sock.sendall(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n")
            _read_until_idle(sock)
        parts = [a.encode() if isinstance(a, str) else a for a in argv]
        sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in parts))
        return _read_until_idle(sock)


def _read_until_idle(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    sock.settimeout(0.05)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, BlockingIOError):
        pass
    sock.settimeout(10)
    return data


def cmd(r, *args):
    """A command's reply as redis-py's parser reads it, without the per-command callbacks
    that would reshape it (ZADD INCR's score read as an int, say)."""
    connection = r.connection_pool.get_connection()
    try:
        connection.send_command(*args)
        return connection.read_response()
    finally:
        r.connection_pool.release(connection)


@pytest.fixture
def z(r):
    """z: a=1 b=2 c=3 d=4 e=5."""
    r.zadd("z", {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
    return r


@pytest.fixture
def lex(r):
    """lex: members a..g, all with score 0."""
    r.zadd("lex", dict.fromkeys("abcdefg", 0))
    return r


# --- the value class -----------------------------------------------------------------------


def test_zset_orders_by_score_then_member_bytes():
    zset = ZSet([(b"b", 1.0), (b"a", 1.0), (b"c", 0.5), (b"\xff", 1.0)])
    assert list(zset.items()) == [(b"c", 0.5), (b"a", 1.0), (b"b", 1.0), (b"\xff", 1.0)]
    assert len(zset) == 4
    assert zset.rank(b"b") == 2 and zset.rank(b"b", reverse=True) == 1
    assert zset.add(b"c", 9.0) is False and zset.rank(b"c") == 3
    assert zset.copy() == zset and zset.copy() is not zset


def test_zset_stores_negative_zero_as_zero_like_a_redis_listpack():
    zset = ZSet([(b"m", -0.0)])
    assert str(zset.score(b"m")) == "0.0"


def test_score_range_bisects_exclusive_and_infinite_bounds():
    zset = ZSet((bytes([97 + i]), float(i)) for i in range(10))
    assert zset.score_span(ScoreRange.parse(b"(2", b"5")) == (3, 6)
    assert zset.score_span(ScoreRange.parse(b"-inf", b"(2")) == (0, 2)
    assert zset.score_span(ScoreRange.parse(b"(9", b"+inf")) == (10, 10)
    assert ScoreRange.parse(b"(1", b"1").is_empty()


def test_lex_range_on_equal_scores_uses_member_order():
    zset = ZSet((member, 0.0) for member in (b"a", b"b", b"c", b"d"))
    spec = LexRange(b"(a", b"[c")
    first = zset.lex_first(spec)
    assert (first, zset.lex_forward_stop(spec, first)) == (1, 3)
    assert zset.lex_last(LexRange(b"-", b"(c")) == 1


# --- ZADD ----------------------------------------------------------------------------------


def test_zadd_adds_and_updates_and_counts_only_new_members(r):
    assert r.zadd("z", {"a": 1, "b": 2}) == 2
    assert r.zadd("z", {"a": 5, "c": 3}) == 1
    assert r.zrange("z", 0, -1, withscores=True) == [(b"b", 2.0), (b"c", 3.0), (b"a", 5.0)]


def test_zadd_ch_counts_changed_members_too(z):
    assert z.zadd("z", {"a": 10, "b": 2, "x": 1}, ch=True) == 2


def test_zadd_nx_only_adds_and_xx_only_updates(z):
    assert z.zadd("z", {"a": 100, "new": 1}, nx=True) == 1
    assert z.zscore("z", "a") == 1.0
    assert z.zadd("z", {"a": 100, "other": 1}, xx=True) == 0
    assert z.zscore("z", "a") == 100.0 and z.zscore("z", "other") is None
    assert z.zadd("nokey", {"a": 1}, xx=True) == 0
    assert z.exists("nokey") == 0


def test_zadd_gt_and_lt_update_only_in_their_direction_but_always_add(z):
    assert z.zadd("z", {"a": 0, "b": 20, "new": 7}, gt=True, ch=True) == 2
    assert z.zmscore("z", ["a", "b", "new"]) == [1.0, 20.0, 7.0]
    assert z.zadd("z", {"c": 30, "d": -4}, lt=True, ch=True) == 1
    assert z.zmscore("z", ["c", "d"]) == [3.0, -4.0]


def test_zadd_incr_returns_the_new_score_or_null_when_not_applied(z):
    assert cmd(z, "ZADD", "z", "INCR", "2.5", "a") == b"3.5"
    assert cmd(z, "ZADD", "z", "INCR", "1", "fresh") == b"1"
    assert cmd(z, "ZADD", "z", "NX", "INCR", "1", "a") is None
    assert cmd(z, "ZADD", "z", "XX", "INCR", "1", "missing") is None
    assert cmd(z, "ZADD", "z", "GT", "INCR", "-1", "a") is None
    assert z.zscore("z", "a") == 3.5


@pytest.mark.parametrize(("args", "message"), [
    (["XX", "NX", "1", "a"], "XX and NX options at the same time are not compatible"),
    (["GT", "LT", "1", "a"], "GT, LT, and/or NX options at the same time are not compatible"),
    (["GT", "NX", "1", "a"], "GT, LT, and/or NX options at the same time are not compatible"),
    (["INCR", "1", "a", "2", "b"], "INCR option supports a single increment-element pair"),
    (["1", "a", "2"], "syntax error"),
    (["nan", "a"], "value is not a valid float"),
    (["abc", "a"], "value is not a valid float"),
    (["1e400", "a"], "value is not a valid float"),
    (["1e-400", "a"], "value is not a valid float"),
    ([" 1", "a"], "value is not a valid float"),
    (["", "a"], "value is not a valid float"),
    (["1", "a", "nan", "b"], "value is not a valid float"),
])
def test_zadd_errors_match_redis(r, args, message):
    assert error_of(cmd, r, "ZADD", "z", *args) == message
    assert r.exists("z") == 0  # nothing applied


def test_zadd_accepts_what_strtod_accepts(r):
    assert cmd(r, "ZADD", "z", "inf", "a", "-Infinity", "b", "0x10", "c", "+1.5", "d", ".5", "e",
               "5.", "f", "4.9e-324", "g") == 7
    assert r.zrange("z", 0, -1, withscores=True) == [
        (b"b", float("-inf")), (b"g", 5e-324), (b"e", 0.5), (b"d", 1.5), (b"f", 5.0),
        (b"c", 16.0), (b"a", float("inf"))]


def test_zadd_on_wrong_type(r):
    r.set("s", "x")
    assert error_of(r.zadd, "s", {"a": 1}) == WRONGTYPE


def test_zincrby_adds_to_the_score_and_refuses_nan_results(r):
    assert cmd(r, "ZINCRBY", "z", "1.5", "a") == b"1.5"
    assert cmd(r, "ZINCRBY", "z", "0.1", "a") == b"1.6000000000000001"
    assert cmd(r, "ZINCRBY", "z", "inf", "b") == b"inf"
    assert error_of(cmd, r, "ZINCRBY", "z", "-inf", "b") == "resulting score is not a number (NaN)"
    assert error_of(cmd, r, "ZINCRBY", "z", "nan", "a") == "value is not a valid float"
    # ZINCRBY reads ZADD's options: an option word where the increment goes is a syntax error.
    assert error_of(cmd, r, "ZINCRBY", "z", "xx", "a") == "syntax error"


# --- score formatting ----------------------------------------------------------------------


@pytest.mark.parametrize(("score", "printed"), [
    ("1.1", b"1.1000000000000001"),
    ("0.30000000000000004", b"0.30000000000000004"),
    ("1e20", b"1e+20"),
    ("1e17", b"1e+17"),
    ("1e16", b"10000000000000000"),
    ("3", b"3"),
    ("-2.5", b"-2.5"),
    ("inf", b"inf"),
    ("-inf", b"-inf"),
    ("-0", b"0"),
    ("5e-324", b"4.9406564584124654e-324"),
])
def test_scores_print_like_redis_7_0(r, score, printed):
    cmd(r, "ZADD", "z", score, "m")
    assert cmd(r, "ZSCORE", "z", "m") == printed
    assert cmd(r, "ZRANGE", "z", "0", "-1", "WITHSCORES") == [b"m", printed]


def test_scores_are_doubles_under_resp3(server, z):
    assert raw(server, "ZSCORE", "z", "c", resp3=True) == b",3\r\n"
    z.zadd("z", {"f": 1.1})
    assert raw(server, "ZRANGE", "z", "0", "1", "WITHSCORES", resp3=True) == (
        b"*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nf\r\n,1.1000000000000001\r\n")
    assert raw(server, "ZRANGE", "z", "0", "1", "WITHSCORES") == (
        b"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nf\r\n$18\r\n1.1000000000000001\r\n")
    assert raw(server, "ZMSCORE", "z", "a", "nope", resp3=True) == b"*2\r\n,1\r\n_\r\n"


def test_a_computed_negative_zero_prints_as_minus_zero(r):
    assert cmd(r, "ZINCRBY", "z", "-0", "m") == b"-0"
    assert cmd(r, "ZSCORE", "z", "m") == b"0"


# --- ZREM ZCARD ZSCORE ZMSCORE ZRANK -------------------------------------------------------


def test_zrem_counts_removed_and_deletes_the_empty_key(z):
    assert z.zrem("z", "a", "nope", "a") == 1
    assert z.zrem("z", "b", "c", "d", "e") == 4
    assert z.exists("z") == 0
    assert z.zrem("z", "a") == 0


def test_zcard_zscore_zmscore_on_missing_keys(r):
    assert r.zcard("nokey") == 0
    assert r.zscore("nokey", "a") is None
    assert r.zmscore("nokey", ["a", "b"]) == [None, None]


def test_zrank_and_zrevrank(z):
    assert z.zrank("z", "a") == 0 and z.zrank("z", "e") == 4
    assert z.zrevrank("z", "a") == 4
    assert z.zrank("z", "nope") is None and z.zrank("nokey", "a") is None


def test_zrank_withscore_replies_rank_and_score_or_a_null_array(server, z):
    assert cmd(z, "ZRANK", "z", "c", "WITHSCORE") == [2, b"3"]
    assert cmd(z, "ZREVRANK", "z", "c", "withscore") == [2, b"3"]
    assert raw(server, "ZRANK", "z", "nope", "WITHSCORE") == b"*-1\r\n"
    assert raw(server, "ZRANK", "z", "nope") == b"$-1\r\n"
    assert error_of(cmd, z, "ZRANK", "z", "c", "WITHSCORES") == "syntax error"
    assert error_of(cmd, z, "ZRANK", "z", "c", "WITHSCORE", "x") == (
        "wrong number of arguments for 'zrank' command")


def test_read_commands_on_wrong_type(r):
    r.set("s", "x")
    for call, args in [(r.zcard, ("s",)), (r.zscore, ("s", "a")), (r.zrank, ("s", "a")),
                       (r.zrange, ("s", 0, -1)), (r.zcount, ("s", 0, 1)),
                       (r.zlexcount, ("s", "-", "+")), (r.zrandmember, ("s",))]:
        assert error_of(call, *args) == WRONGTYPE


# --- ZCOUNT ZLEXCOUNT ----------------------------------------------------------------------


@pytest.mark.parametrize(("low", "high", "count"), [
    ("-inf", "+inf", 5), ("2", "4", 3), ("(2", "4", 2), ("(2", "(4", 1), ("4", "2", 0),
    ("(3", "3", 0), ("3", "3", 1), ("(", "+inf", 5), ("inf", "inf", 0), ("-inf", "(-inf", 0),
])
def test_zcount_bounds(z, low, high, count):
    assert z.zcount("z", low, high) == count


def test_zcount_refuses_bad_bounds(z):
    for low, high in [("nan", "1"), ("x", "1"), ("1", "(x"), ("1 ", "2")]:
        assert error_of(z.zcount, "z", low, high) == "min or max is not a float"


@pytest.mark.parametrize(("low", "high", "count"), [
    ("-", "+", 7), ("[b", "[d", 3), ("(b", "[d", 2), ("(b", "(d", 1), ("[d", "[b", 0),
    ("+", "-", 0), ("-", "-", 0), ("[", "+", 7), ("(a", "+", 6), ("[h", "+", 0),
])
def test_zlexcount_bounds(lex, low, high, count):
    assert lex.zlexcount("lex", low, high) == count


def test_lex_bounds_must_start_with_a_bracket(lex):
    for low, high in [("a", "+"), ("-", "c"), ("--", "+"), ("-", "++")]:
        assert error_of(lex.zlexcount, "lex", low, high) == "min or max not valid string range item"


# --- ZRANGE and friends --------------------------------------------------------------------


@pytest.mark.parametrize(("start", "stop", "members"), [
    (0, -1, b"abcde"), (1, 2, b"bc"), (-2, -1, b"de"), (-100, 1, b"ab"), (3, 100, b"de"),
    (4, 2, b""), (5, 10, b""), (-1, -2, b""),
])
def test_zrange_by_rank_with_negative_and_out_of_range_indexes(z, start, stop, members):
    assert z.zrange("z", start, stop) == [bytes([m]) for m in members]


def test_zrevrange_counts_ranks_from_the_top(z):
    assert z.zrevrange("z", 0, 1) == [b"e", b"d"]
    assert z.zrevrange("z", -2, -1, withscores=True) == [(b"b", 2.0), (b"a", 1.0)]
    assert cmd(z, "ZRANGE", "z", "0", "1", "REV") == [b"e", b"d"]


def test_zrange_byscore_with_exclusive_bounds_rev_and_limit(z):
    assert cmd(z, "ZRANGE", "z", "(1", "4", "BYSCORE") == [b"b", b"c", b"d"]
    assert cmd(z, "ZRANGE", "z", "(4", "(1", "BYSCORE", "REV") == [b"c", b"b"]
    assert cmd(z, "ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "2") == [b"b", b"c"]
    assert cmd(z, "ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2") == [b"d", b"c"]
    assert cmd(z, "ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "3", "-1") == [b"d", b"e"]
    assert cmd(z, "ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "-1", "2") == []
    assert cmd(z, "ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "0") == []
    assert cmd(z, "ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "5", "1") == []


def test_zrangebyscore_and_zrevrangebyscore(z):
    assert z.zrangebyscore("z", 2, "(4", withscores=True) == [(b"b", 2.0), (b"c", 3.0)]
    assert z.zrevrangebyscore("z", "+inf", 4) == [b"e", b"d"]
    assert z.zrangebyscore("z", "-inf", "+inf", start=1, num=1) == [b"b"]


def test_zrange_bylex_and_the_legacy_lex_commands(lex):
    assert cmd(lex, "ZRANGE", "lex", "[b", "(e", "BYLEX") == [b"b", b"c", b"d"]
    assert cmd(lex, "ZRANGE", "lex", "+", "[e", "BYLEX", "REV", "LIMIT", "1", "2") == [b"f", b"e"]
    assert lex.zrangebylex("lex", "-", "[c") == [b"a", b"b", b"c"]
    assert lex.zrevrangebylex("lex", "(c", "-") == [b"b", b"a"]
    assert lex.zrangebylex("lex", "-", "+", start=5, num=10) == [b"f", b"g"]


def test_lex_range_with_mixed_scores_walks_like_a_redis_listpack(r):
    # Redis assumes equal scores; with mixed ones it walks from the first member >= min and
    # stops at the first member past max (this is what Redis 7.0 answers for a small set).
    # (the replies below are Redis 7.0.15's).
    r.zadd("mixed", {"c": 1, "a": 2, "d": 3, "b": 4})
    assert r.zrangebylex("mixed", "[b", "[c") == [b"c", b"a"]
    assert r.zlexcount("mixed", "-", "[c") == 2
    assert r.zrevrangebylex("mixed", "[c", "[b") == [b"b", b"d"]
    assert r.zrevrangebylex("mixed", "+", "[b", start=1, num=1) == [b"d"]
    assert r.zrangebylex("mixed", "-", "+", start=1, num=2) == [b"a", b"d"]
    assert r.zremrangebylex("mixed", "[b", "[c") == 2
    assert r.zrange("mixed", 0, -1) == [b"d", b"b"]


@pytest.mark.parametrize(("args", "message"), [
    (["0", "-1", "LIMIT", "0", "1"],
     "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"),
    (["-", "+", "BYLEX", "WITHSCORES"],
     "syntax error, WITHSCORES not supported in combination with BYLEX"),
    (["0", "1", "BYSCORE", "BYLEX"], "syntax error"),
    (["0", "1", "REV", "REV"], "syntax error"),
    (["0", "1", "BYSCORE", "LIMIT", "1"], "syntax error"),
    (["0", "1", "BYSCORE", "LIMIT", "x", "1"], "value is not an integer or out of range"),
    (["a", "1"], "value is not an integer or out of range"),
    (["nan", "1", "BYSCORE"], "min or max is not a float"),
    (["a", "b", "BYLEX"], "min or max not valid string range item"),
])
def test_zrange_errors(z, args, message):
    assert error_of(cmd, z, "ZRANGE", "z", *args) == message


def test_zrange_limit_minus_one_is_no_limit_even_by_rank(z):
    assert cmd(z, "ZRANGE", "z", "0", "1", "LIMIT", "0", "-1") == [b"a", b"b"]


def test_zrange_of_a_missing_key_is_empty(r):
    assert r.zrange("nokey", 0, -1) == []
    assert cmd(r, "ZRANGE", "nokey", "-", "+", "BYLEX") == []


def test_zrangestore_stores_the_range_and_deletes_the_destination_when_empty(z):
    z.set("dst", "old")
    assert cmd(z, "ZRANGESTORE", "dst", "z", "1", "3") == 3
    assert z.zrange("dst", 0, -1, withscores=True) == [(b"b", 2.0), (b"c", 3.0), (b"d", 4.0)]
    z.expire("dst", 100)
    assert cmd(z, "ZRANGESTORE", "dst", "z", "(4", "+inf", "BYSCORE") == 1
    assert z.ttl("dst") == -1
    assert cmd(z, "ZRANGESTORE", "dst", "z", "10", "20") == 0
    assert z.exists("dst") == 0
    assert cmd(z, "ZRANGESTORE", "dst", "nokey", "0", "-1") == 0
    assert error_of(cmd, z, "ZRANGESTORE", "dst", "z", "0", "1", "WITHSCORES") == "syntax error"
    z.set("s", "x")
    assert error_of(cmd, z, "ZRANGESTORE", "dst", "s", "0", "1") == WRONGTYPE


# --- ZREMRANGEBY* --------------------------------------------------------------------------


def test_zremrangebyrank_with_negative_indexes(z):
    assert z.zremrangebyrank("z", -2, -1) == 2
    assert z.zrange("z", 0, -1) == [b"a", b"b", b"c"]
    assert z.zremrangebyrank("z", 5, 10) == 0
    assert z.zremrangebyrank("z", 0, -1) == 3
    assert z.exists("z") == 0


def test_zremrangebyscore_and_bylex(z, lex):
    assert z.zremrangebyscore("z", "(1", "3") == 2
    assert z.zrange("z", 0, -1) == [b"a", b"d", b"e"]
    assert lex.zremrangebylex("lex", "[b", "(f") == 4
    assert lex.zrange("lex", 0, -1) == [b"a", b"f", b"g"]
    assert lex.zremrangebylex("lex", "-", "+") == 3
    assert lex.exists("lex") == 0
    assert error_of(z.zremrangebyscore, "z", "x", 1) == "min or max is not a float"
    assert z.zremrangebyrank("nokey", 0, -1) == 0


# --- pops ----------------------------------------------------------------------------------


def test_zpopmin_and_zpopmax(z, server):
    assert z.zpopmin("z") == [(b"a", 1.0)]
    assert z.zpopmax("z", 2) == [(b"e", 5.0), (b"d", 4.0)]
    assert z.zpopmin("z", 10) == [(b"b", 2.0), (b"c", 3.0)]
    assert z.exists("z") == 0
    assert raw(server, "ZPOPMIN", "z") == b"*0\r\n"
    assert error_of(cmd, z, "ZPOPMIN", "z", "-1") == "value is out of range, must be positive"
    assert error_of(cmd, z, "ZPOPMIN", "z", "1", "2") == "syntax error"


def test_zpopmin_shapes_under_resp3(server, z):
    # Without a count the pair is flat even under RESP3; with one, pairs nest.
    assert raw(server, "ZPOPMIN", "z", resp3=True) == b"*2\r\n$1\r\na\r\n,1\r\n"
    assert raw(server, "ZPOPMIN", "z", "1", resp3=True) == b"*1\r\n*2\r\n$1\r\nb\r\n,2\r\n"
    assert raw(server, "ZPOPMAX", "z", "0", resp3=True) == b"*0\r\n"


def test_zmpop_takes_from_the_first_non_empty_key(z, server):
    assert cmd(z, "ZMPOP", "2", "nokey", "z", "MIN") == [b"z", [[b"a", b"1"]]]
    assert cmd(z, "ZMPOP", "1", "z", "MAX", "COUNT", "10") == [
        b"z", [[b"e", b"5"], [b"d", b"4"], [b"c", b"3"], [b"b", b"2"]]]
    assert raw(server, "ZMPOP", "1", "z", "MIN") == b"*-1\r\n"


@pytest.mark.parametrize(("args", "message"), [
    (["0", "z", "MIN"], "numkeys should be greater than 0"),
    (["x", "z", "MIN"], "numkeys should be greater than 0"),
    (["3", "z", "MIN"], "syntax error"),
    (["1", "z", "LEFT"], "syntax error"),
    (["1", "z", "MIN", "COUNT", "0"], "count should be greater than 0"),
    (["1", "z", "MIN", "COUNT", "1", "COUNT", "1"], "syntax error"),
])
def test_zmpop_errors(r, args, message):
    assert error_of(cmd, r, "ZMPOP", *args) == message


# --- blocking pops -------------------------------------------------------------------------


class InThread:
    """A blocking call in a thread; ``result()`` joins it."""

    def __init__(self, call, *args) -> None:
        self.outcome: list = []
        self.thread = threading.Thread(target=lambda: self.outcome.append(call(*args)), daemon=True)
        self.thread.start()

    def result(self, timeout: float = 10):
        self.thread.join(timeout)
        assert self.outcome, "the blocked call never returned"
        return self.outcome[0]


def wait_blocked_clients(r, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while r.info("clients")["blocked_clients"] != count:
        assert time.monotonic() < deadline, f"blocked_clients never reached {count}"
        time.sleep(0.005)


@pytest.fixture
def other(server):
    client = server.client()
    yield client
    client.close()


def test_bzpopmin_is_served_by_a_zadd_from_another_client(r, other):
    waiting = InThread(other.bzpopmin, ["z1", "z2"], 5)
    wait_blocked_clients(r, 1)
    r.zadd("z2", {"b": 2, "a": 1})
    assert waiting.result() == (b"z2", b"a", 1.0)
    assert r.zrange("z2", 0, -1) == [b"b"]


def test_bzpopmax_returns_at_once_when_a_set_has_members(z):
    assert cmd(z, "BZPOPMAX", "nokey", "z", "0") == [b"z", b"e", b"5"]


def test_bzpop_times_out_with_a_null_array(server, r):
    assert raw(server, "BZPOPMIN", "nokey", "0.01") == b"*-1\r\n"
    assert raw(server, "BZMPOP", "0.01", "1", "nokey", "MIN") == b"*-1\r\n"


def test_blocked_clients_are_served_in_the_order_they_blocked(r, server):
    first, second = server.client(), server.client()
    one = InThread(first.bzpopmin, ["z"], 5)
    wait_blocked_clients(r, 1)
    two = InThread(second.bzpopmin, ["z"], 5)
    wait_blocked_clients(r, 2)
    r.zadd("z", {"a": 1})
    assert one.result() == (b"z", b"a", 1.0)
    r.zadd("z", {"b": 2})
    assert two.result() == (b"z", b"b", 2.0)
    first.close()
    second.close()


def test_a_zadd_inside_multi_exec_serves_the_blocked_client(r, other):
    waiting = InThread(lambda: other.bzmpop(5, 1, ["z"], min=True, count=2))
    wait_blocked_clients(r, 1)
    pipe = r.pipeline(transaction=True)
    pipe.zadd("z", {"a": 1, "b": 2, "c": 3})
    pipe.zcard("z")
    assert pipe.execute() == [3, 3]
    assert waiting.result() == [b"z", [[b"a", b"1"], [b"b", b"2"]]]
    assert r.zrange("z", 0, -1) == [b"c"]


def test_a_blocked_client_waits_past_a_key_of_another_type(r, other):
    waiting = InThread(other.bzpopmax, ["z"], 5)
    wait_blocked_clients(r, 1)
    r.set("z", "a string")  # not a sorted set: the client stays blocked
    r.delete("z")
    r.zadd("src", {"a": 1, "b": 2})
    assert r.zunionstore("z", ["src"]) == 2  # a STORE into the key serves it
    assert waiting.result() == (b"z", b"b", 2.0)
    assert r.zrange("z", 0, -1) == [b"a"]


def test_bzpopmin_inside_multi_does_not_block(r):
    pipe = r.pipeline(transaction=True)
    pipe.bzpopmin(["nokey"], 0)
    assert pipe.execute() == [None]


def test_bzpop_errors(r):
    assert error_of(cmd, r, "BZPOPMIN", "z", "-1") == "timeout is negative"
    assert error_of(cmd, r, "BZPOPMIN", "z", "x") == "timeout is not a float or out of range"
    r.set("s", "x")
    assert error_of(cmd, r, "BZPOPMIN", "s", "0") == WRONGTYPE
    assert error_of(cmd, r, "BZMPOP", "0", "0", "z", "MIN") == "numkeys should be greater than 0"


def test_client_disconnect_while_blocked_leaves_no_waiter(r, server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"*3\r\n$8\r\nBZPOPMIN\r\n$1\r\nz\r\n$1\r\n0\r\n")
    wait_blocked_clients(r, 1)
    sock.close()
    wait_blocked_clients(r, 0)
    r.zadd("z", {"a": 1})
    assert r.zcard("z") == 1


# --- ZRANDMEMBER ZSCAN ---------------------------------------------------------------------


def test_zrandmember_counts(z):
    assert z.zrandmember("z") in (b"a", b"b", b"c", b"d", b"e")
    assert len(set(z.zrandmember("z", 3))) == 3
    assert sorted(z.zrandmember("z", 10)) == [b"a", b"b", b"c", b"d", b"e"]
    assert len(z.zrandmember("z", -8)) == 8
    assert z.zrandmember("z", 0) == []
    assert z.zrandmember("nokey") is None and z.zrandmember("nokey", 3) == []
    pairs = cmd(z, "ZRANDMEMBER", "z", "-3", "WITHSCORES")
    assert len(pairs) == 6
    assert all(z.zscore("z", m) == float(s) for m, s in zip(pairs[::2], pairs[1::2], strict=True))
    assert error_of(cmd, z, "ZRANDMEMBER", "z", "1", "x") == "syntax error"
    assert error_of(cmd, z, "ZRANDMEMBER", "z", "-9223372036854775807", "WITHSCORES") == (
        "value is out of range")


def test_zscan_returns_a_small_set_whole_and_walks_a_large_one(r):
    r.zadd("small", {"a": 1.5, "b": 2})
    assert cmd(r, "ZSCAN", "small", "0") == [b"0", [b"a", b"1.5", b"b", b"2"]]
    assert cmd(r, "ZSCAN", "small", "0", "MATCH", "b*") == [b"0", [b"b", b"2"]]
    r.zadd("big", {f"m{i}": i for i in range(300)})
    seen = dict(r.zscan_iter("big", count=17))
    assert seen == {f"m{i}".encode(): float(i) for i in range(300)}
    assert cmd(r, "ZSCAN", "nokey", "0") == [b"0", []]
    assert error_of(cmd, r, "ZSCAN", "big", "x") == "invalid cursor"


# --- set operations ------------------------------------------------------------------------


@pytest.fixture
def two(r):
    r.zadd("z1", {"a": 1, "b": 2, "c": 3})
    r.zadd("z2", {"b": 10, "c": 20, "d": 30})
    r.sadd("plain", "c", "d", "e")
    return r


def test_zunion_sums_weights_and_aggregates(two):
    assert two.zunion(["z1", "z2"], withscores=True) == [
        (b"a", 1.0), (b"b", 12.0), (b"c", 23.0), (b"d", 30.0)]
    assert cmd(two, "ZUNION", "2", "z1", "z2", "WEIGHTS", "2", "0.5", "AGGREGATE", "MAX",
               "WITHSCORES") == [b"a", b"2", b"b", b"5", b"c", b"10", b"d", b"15"]
    assert two.zunion(["z1", "plain"], aggregate="MIN", withscores=True) == [
        (b"a", 1.0), (b"c", 1.0), (b"d", 1.0), (b"e", 1.0), (b"b", 2.0)]


def test_zinter_and_zdiff(two):
    assert two.zinter(["z1", "z2"], withscores=True) == [(b"b", 12.0), (b"c", 23.0)]
    assert two.zinter(["z1", "z2", "plain"], withscores=True) == [(b"c", 24.0)]
    assert cmd(two, "ZDIFF", "2", "z1", "z2", "WITHSCORES") == [b"a", b"1"]
    assert two.zdiff(["z1", "z1"]) == []
    assert two.zinter(["z1", "nokey"]) == []


def test_inf_times_zero_weight_and_inf_minus_inf_are_zero(r):
    r.zadd("p", {"m": float("inf")})
    r.zadd("n", {"m": float("-inf")})
    assert cmd(r, "ZUNION", "2", "p", "n", "WITHSCORES") == [b"m", b"0"]
    assert cmd(r, "ZUNION", "1", "p", "WEIGHTS", "0", "WITHSCORES") == [b"m", b"0"]


def test_store_variants_replace_or_delete_the_destination(two):
    assert two.zunionstore("dst", ["z1", "z2"]) == 4
    assert two.zinterstore("dst", {"z1": 1, "z2": 2}, aggregate="MIN") == 2
    assert two.zrange("dst", 0, -1, withscores=True) == [(b"b", 2.0), (b"c", 3.0)]
    assert two.zdiffstore("dst", ["z1", "z2"]) == 1
    assert two.zinterstore("dst", ["z1", "nokey"]) == 0
    assert two.exists("dst") == 0


def test_zintercard_with_limit(two):
    assert two.zintercard(2, ["z1", "z2"]) == 2
    assert two.zintercard(2, ["z1", "z2"], limit=1) == 1
    assert error_of(cmd, two, "ZINTERCARD", "1", "z1", "LIMIT", "-1") == "LIMIT can't be negative"


@pytest.mark.parametrize(("args", "message"), [
    (["ZUNIONSTORE", "d", "0", "z1"], "at least 1 input key is needed for 'zunionstore' command"),
    (["ZINTER", "0", "z1"], "at least 1 input key is needed for 'zinter' command"),
    (["ZUNIONSTORE", "d", "x", "z1"], "value is not an integer or out of range"),
    (["ZUNIONSTORE", "d", "3", "z1"], "syntax error"),
    (["ZUNIONSTORE", "d", "1", "z1", "WEIGHTS", "x"], "weight value is not a float"),
    (["ZUNIONSTORE", "d", "1", "z1", "AGGREGATE", "AVG"], "syntax error"),
    (["ZUNIONSTORE", "d", "1", "z1", "WITHSCORES"], "syntax error"),
    (["ZDIFF", "1", "z1", "WEIGHTS", "1"], "syntax error"),
    (["ZUNION", "2", "z1", "str"], WRONGTYPE),
])
def test_set_operation_errors(two, args, message):
    two.set("str", "x")
    assert error_of(cmd, two, *args) == message


# --- propagation ---------------------------------------------------------------------------


def test_pops_are_propagated_as_the_pop_that_happened(recorded):
    client = recorded.client()
    client.zadd("z", {"a": 1, "b": 2, "c": 3, "d": 4})
    listhash_recorder.PROPAGATED.clear()
    client.bzpopmin(["nokey", "z"], 0)
    client.bzpopmax(["z"], 0)
    client.zmpop(2, ["nokey", "z"], min=True, count=5)
    client.zmpop(1, ["z"], min=True)  # nothing left: nothing propagated
    client.zadd("z", {"x": 1}, nx=True)
    client.zadd("z", {"x": 1}, nx=True)  # no change: nothing propagated
    assert propagated() == [
        [b"ZPOPMIN", b"z"], [b"ZPOPMAX", b"z"], [b"ZPOPMIN", b"z", b"5"],
        [b"ZADD", b"z", b"NX", b"1", b"x"]]


def test_a_served_bzpopmin_is_propagated_right_after_the_zadd(recorded):
    client, other = recorded.client(), recorded.client()
    waiting = InThread(lambda: other.bzmpop(5, 1, ["z"], max=True))
    wait_blocked_clients(client, 1)
    client.zadd("z", {"a": 1, "b": 2})
    assert waiting.result() == [b"z", [[b"b", b"2"]]]
    assert propagated() == [[b"ZADD", b"z", b"1", b"a", b"2", b"b"], [b"ZPOPMAX", b"z", b"1"]]


# --- rewrite and restart -------------------------------------------------------------------


def _aof_options(directory):
    return [["appendonly", "yes"], ["save", ""], ["dir", str(directory)]]


def _rewrite(r) -> None:
    r.bgrewriteaof()
    deadline = time.monotonic() + 60
    while True:
        info = r.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info.get("aof_rewrite_scheduled"):
            return
        assert time.monotonic() < deadline, "BGREWRITEAOF never finished"
        time.sleep(0.02)


def _aof_commands(directory) -> list[list[bytes]]:
    import hiredis

    reader = hiredis.Reader()
    reader.feed((directory / "appendonly.aof").read_bytes())
    commands = []
    while (argv := reader.gets()) is not False:
        commands.append(argv)
    return commands


def test_rewrite_and_restart_rebuild_the_same_sorted_sets(tmp_path):
    members = 100_000
    with ServerThread(_aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        r.zadd("big", {f"m{i}": i / 7 for i in range(members)})
        r.zadd("odd", {"inf": float("inf"), "-inf": float("-inf"), "tenth": 0.1, "huge": 1e20,
                       "tiny": 5e-324, "zero": -0.0, "third": 1 / 3})
        r.zadd("expiring", {"x": 1})
        r.expire("expiring", 1000)
        before = r.execute_command("DEBUG", "DIGEST")
        _rewrite(r)
        commands = _aof_commands(tmp_path)
    big = [argv for argv in commands if argv[0].upper() == b"ZADD" and argv[1] == b"big"]
    assert len(big) == -(-members // 64)  # ceil(n / 64): at most 64 pairs per ZADD
    assert any(argv[0].upper() == b"PEXPIREAT" and argv[1] == b"expiring" for argv in commands)
    with ServerThread(_aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        assert r.execute_command("DEBUG", "DIGEST") == before
        assert r.zscore("odd", "third") == 1 / 3 and r.zscore("odd", "tiny") == 5e-324
        assert r.zscore("big", "m99999") == 99999 / 7
        assert 0 < r.ttl("expiring") <= 1000


# --- the value class against a brute-force model -------------------------------------------


_members = st.text(alphabet="abc", max_size=2).map(str.encode)
_scores = st.sampled_from([0.0, 0.0, 0.0, 1.0, 1.5, -2.0, float("inf"), float("-inf")])
_lex_items = st.one_of(st.sampled_from([b"-", b"+"]),
                       st.builds(lambda p, m: p + m, st.sampled_from([b"[", b"("]), _members))
_score_items = st.builds(lambda ex, s: (b"(" if ex else b"") + repr(s).encode(),
                         st.booleans(), _scores)


def _walk_first(pairs, spec):
    """Redis's zzlFirstInLexRange, literally: the listpack walk from the head."""
    if spec.is_empty() or not pairs or not spec.gte_min(pairs[-1][0]) or not spec.lte_max(pairs[0][0]):
        return None
    for index, (member, _) in enumerate(pairs):
        if spec.gte_min(member):
            return index if spec.lte_max(member) else None
    return None


def _walk_last(pairs, spec):
    if spec.is_empty() or not pairs or not spec.gte_min(pairs[-1][0]) or not spec.lte_max(pairs[0][0]):
        return None
    for index in range(len(pairs) - 1, -1, -1):
        if spec.lte_max(pairs[index][0]):
            return index if spec.gte_min(pairs[index][0]) else None
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_members, _scores), max_size=12), _lex_items, _lex_items,
       _score_items, _score_items, st.booleans())
def test_zset_ranges_match_a_brute_force_model(entries, low, high, score_low, score_high, same):
    if same:
        entries = [(member, 0.0) for member, _ in entries]
    zset = ZSet(entries)
    model = dict(entries)
    pairs = sorted(model.items(), key=lambda pair: (pair[1], pair[0]))
    assert list(zset.items()) == pairs
    assert [zset.rank(member) for member, _ in pairs] == list(range(len(pairs)))
    spec = LexRange(low, high)
    first, last = zset.lex_first(spec), zset.lex_last(spec)
    assert first == _walk_first(pairs, spec)
    assert last == _walk_last(pairs, spec)
    if first is not None:
        stop = first
        while stop < len(pairs) and spec.lte_max(pairs[stop][0]):
            stop += 1
        assert zset.lex_forward_stop(spec, first) == stop
    if last is not None:
        lowest = last
        while lowest >= 0 and spec.gte_min(pairs[lowest][0]):
            lowest -= 1
        assert zset.lex_backward_stop(spec, last) == lowest + 1
    scores = ScoreRange.parse(score_low, score_high)
    start, stop = zset.score_span(scores)
    inside = [index for index, (_, score) in enumerate(pairs)
              if scores.gte_min(score) and scores.lte_max(score)]
    assert list(range(start, stop)) == inside
