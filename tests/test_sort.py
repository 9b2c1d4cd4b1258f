"""SORT over real sockets: what STORE propagates (the resulting list, never the SORT), the
stored list surviving a restart, MULTI, and the cost of large sorts.  Replies are checked
against redis-server in ``tests/compat/test_differential_bitmaps_sort.py``."""

from __future__ import annotations

import random
import time

import listhash_recorder
import pytest
import redis
from servers import ServerThread


def test_store_propagates_del_then_rpush_batches_of_the_result(recorded):
    r = recorded.client()
    numbers = [str(n).encode() for n in random.Random(7).sample(range(-5000, 5000), 3000)]
    r.sadd("s", *numbers)
    r.set("dst", "old")
    listhash_recorder.PROPAGATED.clear()
    assert r.sort("s", store="dst") == 3000
    assert r.sort("s") == sorted(numbers, key=int)  # not stored: nothing propagated
    propagated = listhash_recorder.propagated()
    assert propagated[0] == [b"DEL", b"dst"]
    assert [len(argv) - 2 for argv in propagated[1:]] == [1024, 1024, 952]
    assert all(argv[:2] == [b"RPUSH", b"dst"] for argv in propagated[1:])
    stored = [element for argv in propagated[1:] for element in argv[2:]]
    assert stored == sorted(numbers, key=int) == r.lrange("dst", 0, -1)


def test_empty_result_propagates_del_only_when_the_destination_existed(recorded):
    r = recorded.client()
    listhash_recorder.PROPAGATED.clear()
    assert r.sort("nokey", store="dst") == 0
    r.rpush("dst", "x")
    assert r.sort("nokey", store="dst") == 0
    assert listhash_recorder.propagated() == [[b"RPUSH", b"dst", b"x"], [b"DEL", b"dst"]]


def test_a_set_sorted_by_a_constant_is_stored_in_byte_order(recorded):
    """The stored list must not depend on a set's iteration order (Redis sorts it ALPHA)."""
    r = recorded.client()
    r.sadd("s", "b", "10", "a", "2")
    listhash_recorder.PROPAGATED.clear()
    assert r.sort("s", by="nosort", store="dst") == 4
    assert r.lrange("dst", 0, -1) == [b"10", b"2", b"a", b"b"]
    assert listhash_recorder.propagated()[-1] == [b"RPUSH", b"dst", b"10", b"2", b"a", b"b"]


def test_store_inside_multi_is_propagated_inside_the_transaction(recorded):
    r = recorded.client()
    r.rpush("l", 3, 1, 2)
    listhash_recorder.PROPAGATED.clear()
    with r.pipeline(transaction=True) as pipe:
        pipe.sort("l", store="dst").sort("l", desc=True, get="#").lrange("dst", 0, -1)
        assert pipe.execute() == [3, [b"3", b"2", b"1"], [b"1", b"2", b"3"]]
    assert listhash_recorder.propagated() == [
        [b"MULTI"], [b"DEL", b"dst"], [b"RPUSH", b"dst", b"1", b"2", b"3"], [b"EXEC"]]


def test_stored_lists_survive_restart_from_the_aof(tmp_path):
    options = [["appendonly", "yes"], ["save", ""], ["dir", str(tmp_path)]]
    with ServerThread(options) as server:
        server.wait_ready()
        r = server.client()
        r.rpush("l", *range(20, 0, -1))
        r.mset({f"w_{n}": -n for n in range(1, 21)})
        r.sort("l", by="w_*", get=["#", "w_*"], store="by_weight")
        r.sort("l", start=2, num=5, alpha=True, store="alpha")
        expected = {key: r.lrange(key, 0, -1) for key in ("by_weight", "alpha")}
        assert expected["alpha"] == [b"11", b"12", b"13", b"14", b"15"]
        # The patterns' keys change afterwards: the AOF holds the result, not the SORT.
        r.mset({f"w_{n}": n for n in range(1, 21)})
    with ServerThread(options) as server:
        server.wait_ready()
        r = server.client()
        assert {key: r.lrange(key, 0, -1) for key in expected} == expected


def test_sort_of_100000_numbers_with_patterns_is_quick(r):
    count = 100_000
    r.rpush("big", *random.Random(1).sample(range(10 * count), count))
    started = time.monotonic()
    result = r.sort("big", start=0, num=10)
    elapsed = time.monotonic() - started
    assert [int(x) for x in result] == sorted(int(x) for x in r.lrange("big", 0, -1))[:10]
    assert elapsed < 5, elapsed  # a Python sort with a C key: well under a second here
    r.mset({f"w_{n}": n % 7 for n in range(0, 10 * count, 97)})
    started = time.monotonic()
    assert r.sort("big", by="w_*", store="dst") == count
    assert time.monotonic() - started < 15


def test_limit_arguments_are_clamped_before_any_work(r):
    r.rpush("l", 1, 2, 3)
    huge = str(2**63 - 1)
    assert r.execute_command("SORT", "l", "LIMIT", huge, huge) == []
    assert r.execute_command("SORT", "l", "LIMIT", "-" + huge, huge) == [b"1", b"2", b"3"]
    assert r.execute_command("SORT", "l", "LIMIT", "1", "-" + huge) == [b"2", b"3"]
    with pytest.raises(redis.ResponseError, match="value is not an integer"):
        r.execute_command("SORT", "l", "LIMIT", "1", str(2**63))


def test_native_order_of_a_long_list_is_read_in_one_pass(r):
    """BY nosort reads a list with iterators: indexing into the middle of a deque walks it,
    which made this quadratic."""
    count = 200_000
    r.rpush("long", *range(count))
    started = time.monotonic()
    assert r.sort("long", by="nosort", store="copy") == count
    assert r.sort("long", by="nosort", desc=True, start=count // 2, num=3) == [
        b"99999", b"99998", b"99997"]
    assert time.monotonic() - started < 10
    assert r.lrange("copy", -2, -1) == [b"199998", b"199999"]
    r.zadd("z", {f"m{n}": n for n in range(1000)})
    assert r.sort("z", by="nosort", desc=True, start=10, num=2) == [b"m989", b"m988"]
