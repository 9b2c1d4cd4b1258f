"""HyperLogLog: the representation without I/O (Redis's bytes for known inputs, the fast
paths against the plain walks they replace), then over real sockets: TTLs, the cached count
as a propagated write, AOF rewrite and restart byte for byte, and HLLs moving between Redis
and us."""

from __future__ import annotations

import random

import parity
import pytest
from parity import RawClient
from servers import ServerProcess, record_propagation, wait_rewrite_done
from trioredis import hyperloglog as hll

reference = parity.reference

# What Redis 7.0 stores after ``PFADD k2 a b c d e f g`` (its GET, byte for byte).
REDIS_SEVEN_ELEMENTS = bytes.fromhex(
    "48594c4c010000000000000000000080466d80560c80443c84388050b184498c80426d80425a")


def _add_all(elements, max_bytes: int = hll.SPARSE_MAX_BYTES) -> bytearray:
    data = hll.new_sparse()
    for element in elements:
        _changed, data = hll.add(data, element, max_bytes)
    return data


def test_a_new_hll_is_the_sparse_string_redis_creates():
    assert bytes(hll.new_sparse()) == b"HYLL\x01\x00\x00\x00" + bytes(8) + b"\x7f\xff"


def test_elements_land_in_the_registers_redis_picks():
    # PFDEBUG DECODE in Redis 7.0: "a" -> Z:12711 v:2,1 Z:3672; "hello" -> Z:9216 v:1,1 ...
    assert hll.pattern(b"a") == (12711, 2)
    assert hll.pattern(b"hello") == (9216, 1)
    data = _add_all([b"a", b"b", b"c", b"d", b"e", b"f", b"g"])
    hll.invalidate(data)
    assert bytes(data) == REDIS_SEVEN_ELEMENTS
    assert hll.estimate(hll.histogram(data)) == 7


def test_murmurhash_reads_every_tail_length():
    # Lengths 0..17 cover the 8-byte blocks and every tail; equal inputs hash equally and
    # one changed byte anywhere changes the hash.
    base = bytes(range(1, 18))
    for length in range(18):
        value = hll.murmurhash64a(base[:length])
        assert 0 <= value < 1 << 64
        for position in range(length):
            changed = bytearray(base[:length])
            changed[position] ^= 0x40
            assert hll.murmurhash64a(bytes(changed)) != value


def test_dense_registers_round_trip_and_single_register_access_agree():
    rng = random.Random(3)
    raw = bytes(rng.randrange(64) for _ in range(hll.REGISTERS))
    dense = bytearray(hll.MAGIC + bytes(12)) + hll.raw_to_dense_registers(raw)
    assert len(dense) == hll.DENSE_SIZE
    assert hll.dense_to_raw(dense) == raw
    for index in rng.sample(range(hll.REGISTERS), 500) + [0, hll.REGISTERS - 1]:
        assert hll.dense_get(dense, index) == raw[index]
    for index in rng.sample(range(hll.REGISTERS), 500) + [hll.REGISTERS - 1]:
        before = hll.dense_get(dense, index)
        assert hll.dense_set(dense, index, before) == 0
        if before < 63:
            assert hll.dense_set(dense, index, 63) == 1
            assert hll.dense_get(dense, index) == 63
    # Neighbours untouched: only the registers set above changed.
    after = hll.dense_to_raw(dense)
    assert sum(1 for a, b in zip(after, raw, strict=True) if a != b) <= 501


def test_registerwise_max_of_two_register_strings():
    rng = random.Random(4)
    first = bytes(rng.randrange(64) for _ in range(hll.REGISTERS))
    second = bytes(rng.randrange(64) for _ in range(hll.REGISTERS))
    expected = bytes(max(a, b) for a, b in zip(first, second, strict=True))
    assert hll.raw_max(first, second) == expected


def test_the_located_walk_changes_a_sparse_hll_exactly_as_a_walk_from_the_start():
    rng = random.Random(5)
    for trial in range(60):
        data = _add_all([b"%d" % rng.randrange(10**9) for _ in range(rng.randrange(1, 1500))])
        if data[4] != hll.SPARSE:
            continue
        for _ in range(20):
            index = rng.randrange(hll.REGISTERS)
            count = rng.randrange(1, 34)
            plain = hll.sparse_set(bytearray(data), index, count, hll.SPARSE_MAX_BYTES)
            located = hll.sparse_set(bytearray(data), index, count, hll.SPARSE_MAX_BYTES,
                                     hll.locate(data, index))
            assert plain == located, (trial, index, count)


def test_sparse_histogram_counts_what_the_opcode_walk_counts_and_spots_corruption():
    rng = random.Random(6)
    for size in (0, 1, 10, 300, 1200):
        data = _add_all([b"%d" % rng.randrange(10**9) for _ in range(size)])
        if data[4] == hll.SPARSE:
            assert hll.sparse_histogram(data) == hll._walked_histogram(data)
    data = _add_all([b"x", b"y"])
    for broken in (data[:-1], data + b"\x00", data + b"\x80"):
        with pytest.raises(hll.CorruptHLL):
            hll.sparse_histogram(broken)
        with pytest.raises(hll.CorruptHLL):
            hll.sparse_to_raw(broken)


def test_checks_refuse_what_redis_refuses():
    good = bytes(_add_all([b"a"]))
    assert hll.check(good) is None
    for bad in (b"", good[:15], b"HYLX" + good[4:], good[:4] + b"\x02" + good[5:],
                good[:4] + b"\x00" + good[5:]):
        assert hll.check(bad) == hll.NOT_HLL


def test_the_estimate_of_nothing_is_zero_and_of_a_few_is_exact():
    assert hll.estimate([hll.REGISTERS] + [0] * 63) == 0
    data = _add_all([b"%d" % i for i in range(100)])
    assert hll.estimate(hll.histogram(data)) == 100  # Redis answers 100 too (differential)


# --- over sockets --------------------------------------------------------------------------


def test_pfadd_keeps_the_ttl_and_a_refreshed_count_is_propagated(server):
    r = server.client()
    assert r.pfadd("h", "a", "b") == 1
    r.expire("h", 1000)
    recorder = record_propagation(server)
    assert r.pfadd("h", "c") == 1
    assert 0 < r.ttl("h") <= 1000
    assert r.pfcount("h") == 3  # refreshes the cache: a change to propagate
    assert r.pfcount("h") == 3  # cached: nothing to propagate
    assert r.pfadd("h", "a") == 0  # no register changed: nothing either
    assert recorder.argvs == [[b"PFADD", b"h", b"c"], [b"PFCOUNT", b"h"]]
    assert r.ttl("h") > 0


def test_pfcount_of_several_keys_changes_nothing(server):
    recorder = record_propagation(server)
    r = server.client()
    r.pfadd("a", *range(100))
    r.pfadd("b", *range(50, 300))
    before = r.get("a"), r.get("b")
    assert 295 <= r.pfcount("a", "b", "missing") <= 305
    assert (r.get("a"), r.get("b")) == before
    assert [argv[0] for argv in recorder.argvs] == [b"PFADD", b"PFADD"]


def test_pfselftest_passes(server):
    assert server.client().execute_command("PFSELFTEST") == b"OK"


def _hll_keys(client) -> dict[bytes, bytes]:
    client.pfadd("sparse", *[f"s{i}" for i in range(200)])
    client.pfadd("dense", *[f"d{i}" for i in range(20000)])
    client.pfcount("dense")  # a valid cached count in the header
    client.pfmerge("merged", "sparse", "dense")
    return {key: client.get(key) for key in (b"sparse", b"dense", b"merged")}


def test_hlls_survive_an_aof_rewrite_and_a_restart_byte_for_byte(tmp_path):
    options = [["appendonly", "yes"], ["save", ""]]
    with ServerProcess(str(tmp_path), options) as running:
        client = running.client()
        stored = _hll_keys(client)
        client.pfadd("sparse", "one more")
        stored[b"sparse"] = client.get("sparse")
        assert client.bgrewriteaof()
        wait_rewrite_done(client)
        client.pfadd("dense", "after the rewrite")
        stored[b"dense"] = client.get("dense")
    with ServerProcess(str(tmp_path), options) as restarted:
        client = restarted.client()
        assert {key: client.get(key) for key in stored} == stored
        assert client.execute_command("PFDEBUG", "ENCODING", "sparse") == b"sparse"


def test_hlls_move_between_redis_and_us_unchanged(server, reference):
    ours = server.client()
    theirs = reference.client()
    theirs.flushall()
    from_redis = _hll_keys(theirs)
    for key, value in from_redis.items():
        ours.set(key, value)
        assert ours.pfcount(key) == theirs.pfcount(key)
        assert ours.pfadd(key, "new element") == theirs.pfadd(key, "new element")
        assert ours.get(key) == theirs.get(key)
    theirs.flushall()
    for key, value in _hll_keys(ours).items():
        theirs.set(key, value)
        assert theirs.pfcount(key) == ours.pfcount(key)
        assert ours.get(key) == theirs.get(key)
    theirs.flushall()


def test_sparse_limit_comes_from_the_config_when_it_has_the_directive(server):
    """``hll-sparse-max-bytes`` (Redis's default 3000) decides when PFADD turns dense."""
    r = server.client()
    config = server.server.engine.config
    limit = getattr(config, "hll_sparse_max_bytes", hll.SPARSE_MAX_BYTES)
    added = 0
    while True:
        r.pfadd("h", f"e{added}")
        added += 1
        if r.execute_command("PFDEBUG", "ENCODING", "h") == b"dense":
            break
        assert r.strlen("h") <= limit
    assert added > 100


def test_wrong_values_get_redis_errors_over_raw_sockets(server):
    with RawClient(server.port) as client:
        client.call("SET", "s", "not an hll at all")
        assert client.call("PFADD", "s", "a") == (
            b"-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n")
        client.call("SET", "cut", bytes(_add_all([b"a"]))[:-1])
        assert client.call("PFCOUNT", "cut") == b"-INVALIDOBJ Corrupted HLL object detected\r\n"
        client.call("RPUSH", "list", "x")
        assert client.call("PFCOUNT", "list").startswith(b"-WRONGTYPE Operation against")
