"""Bitmaps over real sockets: the bytes survive the AOF (replayed, rewritten, loaded past a
smaller proto-max-bulk-len), what is propagated, and the speed on 100 M bits.  Replies are
checked against redis-server in ``tests/compat/test_differential_bitmaps_sort.py``."""

from __future__ import annotations

import time

import listhash_recorder
import pytest
import redis
from servers import ServerThread, wait_rewrite_done


def aof_options(directory, *extra):
    return [["appendonly", "yes"], ["save", ""], ["dir", str(directory)], *extra]


def write_bitmaps(r: redis.Redis, prefix: str) -> None:
    """Bitmaps whose bytes include NUL, CR, LF and 0xff, built by every writing command."""
    for offset in (0, 7, 13, 14, 21, 22, 28, 29, 30, 31, 1000, 65535):
        r.setbit(f"{prefix}:a", offset, 1)
    r.setbit(f"{prefix}:a", 7, 0)
    r.bitfield(f"{prefix}:f").set("u8", 0, 13).set("u8", 8, 10).set("i64", "#3", -1) \
        .incrby("u7", 100, 200, overflow="WRAP").execute()
    r.bitop("XOR", f"{prefix}:x", f"{prefix}:a", f"{prefix}:f")
    r.bitop("NOT", f"{prefix}:n", f"{prefix}:x")
    r.setbit(f"{prefix}:ttl", 3, 1)
    r.pexpire(f"{prefix}:ttl", 10_000_000)
    r.setbit(f"{prefix}:ttl", 40, 1)  # keeps its TTL


def snapshot(r: redis.Redis) -> dict[bytes, tuple[bytes, bool]]:
    return {key: (r.get(key), r.pttl(key) > 0) for key in sorted(r.keys("*"))}


def test_bitmap_bytes_survive_aof_replay_rewrite_and_restart(tmp_path):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        write_bitmaps(r, "before")
        assert r.bgrewriteaof()
        wait_rewrite_done(r)
        write_bitmaps(r, "after")  # replayed from the AOF's tail
        expected = snapshot(r)
        assert expected[b"before:a"][0][:4] == b"\x80\x06\x06\x0f"
        assert expected[b"before:ttl"][1] and expected[b"after:n"][0]
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        assert snapshot(server.client()) == expected


def test_aof_written_under_the_default_limit_loads_with_a_smaller_proto_max_bulk_len(tmp_path):
    """The offset limit is proto-max-bulk-len, and like Redis the loader is not held to it:
    a file the server wrote always loads back."""
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        r.setbit("far", 8 * 2 * 1024 * 1024, 1)  # a 2 MB string
        r.bitfield("far2").set("u8", "#2500000", 255).execute()
    small = aof_options(tmp_path, ["proto-max-bulk-len", "1mb"])
    with ServerThread(small) as server:
        server.wait_ready()
        r = server.client()
        assert r.strlen("far") == 2 * 1024 * 1024 + 1
        assert r.getrange("far", -1, -1) == b"\x80" and r.bitcount("far") == 1
        assert r.strlen("far2") == 2500001
        with pytest.raises(redis.ResponseError, match="bit offset is not an integer or out of range"):
            r.setbit("far", 8 * 1024 * 1024, 1)


def test_writes_propagate_only_when_they_change_the_bitmap(recorded):
    r = recorded.client()
    listhash_recorder.PROPAGATED.clear()
    r.setbit("b", 9, 1)
    r.setbit("b", 9, 1)  # unchanged
    r.setbit("b", 3, 0)  # unchanged, inside the string
    r.setbit("b", 40, 0)  # grows the string: a change
    r.bitfield("b").get("u8", 0).execute()  # read only
    r.bitfield("b").set("u8", 0, 0).execute()  # unchanged
    r.bitfield("c").incrby("u2", 0, 9, overflow="FAIL").execute()  # failed, but created "c"
    r.bitop("AND", "d", "nokey")  # nothing to delete
    r.bitop("OR", "d", "b")
    r.bitop("AND", "d", "nokey")  # deletes d
    assert listhash_recorder.propagated() == [
        [b"SETBIT", b"b", b"9", b"1"], [b"SETBIT", b"b", b"40", b"0"],
        [b"BITFIELD", b"c", b"OVERFLOW", b"FAIL", b"INCRBY", b"u2", b"0", b"9"],
        [b"BITOP", b"OR", b"d", b"b"], [b"BITOP", b"AND", b"d", b"nokey"],
    ]
    assert r.get("c") == b"\x00"


def test_bitcount_bitpos_and_bitop_on_100_million_bits_run_at_c_speed(r):
    bits = 100_000_000
    r.setbit("big", bits - 1, 1)
    r.setbit("big", 5, 1)
    r.bitfield("big").set("u8", 8 * 6_000_000, 255).execute()
    r.setbit("other", bits - 1, 1)
    timings = {}
    started = time.monotonic()
    assert r.bitcount("big") == 10
    timings["bitcount"] = time.monotonic() - started
    started = time.monotonic()
    assert r.bitcount("big", 1, -2, "BIT") == 9
    assert r.bitpos("big", 1, 6) == 8 * 6_000_000
    assert r.bitpos("big", 0) == 0
    assert r.bitpos("other", 1) == bits - 1
    timings["bitpos"] = time.monotonic() - started
    started = time.monotonic()
    assert r.bitop("AND", "both", "big", "other") == bits // 8
    assert r.bitop("XOR", "either", "big", "other", "nokey") == bits // 8
    assert r.bitop("NOT", "inverse", "big") == bits // 8
    timings["bitop"] = time.monotonic() - started
    assert r.bitcount("both") == 1 and r.bitcount("either") == 9
    assert r.bitcount("inverse") == bits - 10
    # A byte-by-byte Python loop takes minutes here; C-level work takes well under a second
    # each (generous bounds: the machine is shared).
    assert timings["bitcount"] < 2 and timings["bitpos"] < 4 and timings["bitop"] < 6, timings


def test_bitfield_with_many_operations_is_checked_before_any_write(r):
    """Every operation is parsed before the first one runs: a bad one at the end leaves the
    key untouched, as in Redis."""
    ops = ["SET", "u8", "0", "1"] * 5000 + ["GET", "u64", "0"]
    with pytest.raises(redis.ResponseError, match="Invalid bitfield type"):
        r.execute_command("BITFIELD", "k", *ops)
    assert r.exists("k") == 0
    assert r.execute_command("BITFIELD", "k", *ops[:-3]) == [0] + [1] * 4999


def test_bitmap_commands_work_inside_multi(r):
    with r.pipeline(transaction=True) as pipe:
        pipe.setbit("m", 1, 1).getbit("m", 1).bitcount("m").bitpos("m", 1)
        pipe.bitop("NOT", "m2", "m").execute_command("BITFIELD_RO", "m2", "GET", "u8", "0")
        assert pipe.execute() == [0, 1, 1, 1, 1, [0xBF]]
