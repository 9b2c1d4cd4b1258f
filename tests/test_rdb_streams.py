"""Streams in the RDB codec against redis-server 7.0.15: DUMP payloads byte for byte (node
layout and XDEL's tombstones as Redis's), RESTORE both ways with consumer groups, pending entries
and consumers (compared through the raw bytes of ``XINFO STREAM FULL``), ``dump.rdb`` files
both ways (``redis-check-rdb`` accepts ours), DEBUG RELOAD, the Redis 5/6 stream type, and
hostile stream payloads answered with an error."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
import redis
from parity import RawClient, ReferenceRedis
from servers import ServerProcess
from trioredis.rdb import RdbError, dump_payload, load_payload, payload_is_valid, read_rdb
from trioredis.rdb.checksum import crc64
from trioredis.rdb.values import (
    TYPE_STREAM_LISTPACKS,
    TYPE_STREAM_LISTPACKS_2,
    TYPE_STREAM_LISTPACKS_3,
    Reader,
    decode_value,
)
from trioredis.stream import ID_MAX, Consumer, Group, Nack, Stream, format_id

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")

SEEDS = [1, 2, 3, 20261202]
FIELD_SETS = [[b"f"], [b"f"], [b"a", b"b"], [b"name", b"1", b"x"], [b"-12"]]
VALUES = [b"v", b"1", b"-7", b"127", b"128", b"4095", b"-4096", b"70000", b"-9000000",
          b"2147483648", b"9223372036854775807", b"9223372036854775808", b"01", b"",
          b"x" * 63, b"y" * 64, b"z" * 300, b"w" * 5000]


@pytest.fixture(scope="module")
def reference():
    with ReferenceRedis() as ref:
        yield ref


def _script(seed: int, groups: bool, deletions: bool) -> list[list[bytes]]:
    """A seeded stream of commands building streams ``s0`` and ``s1``: explicit IDs (ms gaps,
    sequence jumps, IDs past 2^32 and 2^63), field sets that repeat the master's or not,
    values around every listpack integer and string width, node limits that change, whole
    node trimming; with ``groups`` consumer groups and deliveries, with ``deletions`` XDEL
    and exact trims (tombstones)."""
    rng = random.Random(seed)
    ids = {b"s0": [0, 0], b"s1": [1 << 40, 0]}
    commands: list[list[bytes]] = [
        [b"CONFIG", b"SET", b"stream-node-max-entries", rng.choice([b"0", b"3", b"7", b"100"])],
        [b"CONFIG", b"SET", b"stream-node-max-bytes", rng.choice([b"0", b"90", b"300", b"4096"])],
    ]
    fields = FIELD_SETS[0]
    for step in range(rng.randrange(50, 400)):
        key = rng.choice([b"s0", b"s1"])
        roll = rng.random()
        if roll < 0.7:
            last = ids[key]
            if rng.random() < 0.5:
                last[1] += rng.choice([1, 1, 2, 1000, (1 << 63) + 5])
            else:
                last[0] += rng.choice([1, 1, 3, 1 << 33, 1 << 62])
                last[1] = rng.choice([0, 0, 5])
            if rng.random() < 0.3:
                fields = rng.choice(FIELD_SETS)
            pairs = [part for field in fields for part in (field, rng.choice(VALUES))]
            commands.append([b"XADD", key, b"%d-%d" % (last[0], last[1]), *pairs])
        elif roll < 0.75:
            commands.append([b"XTRIM", key, b"MAXLEN", b"~", b"%d" % rng.randrange(0, 60)])
        elif roll < 0.8 and step % 7 == 0:
            commands.append([b"CONFIG", b"SET", b"stream-node-max-entries",
                             rng.choice([b"2", b"5", b"100"])])
        elif groups and roll < 0.88:
            group = rng.choice([b"g1", b"g2"])
            commands.append([b"XGROUP", b"CREATE", key, group, rng.choice([b"0", b"$"])])
            commands.append([b"XREADGROUP", b"GROUP", group, rng.choice([b"alice", b"bob"]),
                             b"COUNT", b"%d" % rng.randrange(1, 6), b"STREAMS", key, b">"])
        elif groups and roll < 0.92:
            commands.append([b"XGROUP", b"CREATECONSUMER", key, b"g1", rng.choice([b"carol", b"dan"])])
            commands.append([b"XAUTOCLAIM", key, b"g1", b"carol", b"0", b"0", b"COUNT", b"2"])
        elif groups and roll < 0.95:
            commands.append([b"XACK", key, b"g1", b"%d-%d" % tuple(ids[key])])
        elif deletions and roll < 0.98:
            commands.append([b"XDEL", key, b"%d-%d" % tuple(ids[key])])
        elif deletions:
            commands.append([b"XTRIM", key, b"MAXLEN", b"%d" % rng.randrange(0, 30)])
    return commands


def _run(client: redis.Redis, commands: list[list[bytes]]) -> None:
    client.flushall()
    for argv in commands:
        try:
            client.execute_command(*argv)
        except redis.ResponseError:
            pass  # BUSYGROUP, or a group on a missing key: the same on both servers


def _xinfo_full(port: int, key: bytes) -> bytes:
    with RawClient(port) as raw:
        return raw.call(b"XINFO", b"STREAM", key, b"FULL", b"COUNT", b"0")


@pytest.mark.parametrize("deletions", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_stream_dump_equals_redis_byte_for_byte(r, reference, seed, deletions):
    """Redis's node layout follows from the commands alone, XDEL's tombstones included: the
    same bytes."""
    ref = reference.client()
    commands = _script(seed, groups=False, deletions=deletions)
    _run(r, commands)
    _run(ref, commands)
    compared = 0
    for key in (b"s0", b"s1"):
        ours, theirs = r.dump(key), ref.dump(key)
        assert theirs is not None
        assert ours == theirs, key
        assert _xinfo_full(r.connection_pool.connection_kwargs["port"], key) == \
            _xinfo_full(reference.port, key)
        compared += 1
    assert compared == 2


@pytest.mark.parametrize("seed", SEEDS)
def test_streams_with_groups_restore_both_ways_with_identical_xinfo_full(r, reference, seed):
    ref = reference.client()
    port = r.connection_pool.connection_kwargs["port"]
    commands = _script(seed, groups=True, deletions=True)
    _run(r, commands)
    _run(ref, commands)
    for key in (b"s0", b"s1"):
        theirs = ref.dump(key)
        r.restore(key + b":from-redis", 0, theirs)
        assert _xinfo_full(port, key + b":from-redis") == _xinfo_full(reference.port, key)
        ours = r.dump(key)
        ref.restore(key + b":from-us", 0, ours)
        assert _xinfo_full(reference.port, key + b":from-us") == _xinfo_full(port, key)
        # Our payload of what Redis sent, back in Redis: still the same stream.
        ref.restore(key + b":round-trip", 0, r.dump(key + b":from-redis"))
        assert _xinfo_full(reference.port, key + b":round-trip") == \
            _xinfo_full(reference.port, key)


def test_stream_with_groups_round_trips_redis_payload_byte_for_byte(r, reference):
    """A payload Redis made (times and tombstones included) comes back from DUMP here
    unchanged."""
    ref = reference.client()
    _run(ref, _script(5, groups=True, deletions=True))
    for key in (b"s0", b"s1"):
        theirs = ref.dump(key)
        r.restore(key, 0, theirs, replace=True)
        assert r.dump(key) == theirs
        assert ref.xinfo_groups(key)


def test_empty_stream_and_stream_emptied_by_xdel_travel_both_ways(r, reference):
    ref = reference.client()
    port = r.connection_pool.connection_kwargs["port"]
    for client in (r, ref):
        client.flushall()
        client.xgroup_create("made", "g", id="$", mkstream=True)
        client.xadd("emptied", {"f": "v"}, id="5-1")
        client.xadd("emptied", {"f": "w"}, id="5-2")
        client.xdel("emptied", "5-1", "5-2")
    assert r.dump("made") == ref.dump("made")
    for key in (b"made", b"emptied"):
        r.restore(key + b":r", 0, ref.dump(key))
        ref.restore(key + b":o", 0, r.dump(key))
        assert _xinfo_full(port, key + b":r") == _xinfo_full(reference.port, key)
        assert _xinfo_full(reference.port, key + b":o") == _xinfo_full(port, key)
    # XADD after the reload continues from the loaded last ID and entries-added.
    assert r.xadd("emptied:r", {"f": "x"}) != b"5-2"
    assert r.xinfo_stream("emptied:r")["entries-added"] == 3


def _check_rdb(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["redis-check-rdb", str(path)], capture_output=True, text=True,
                          timeout=60)


def test_dump_rdb_with_streams_loads_in_redis_and_back(tmp_path):
    commands = _script(11, groups=True, deletions=True)
    server = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"],
                                           ["dbfilename", "dump.rdb"]]).start()
    try:
        _run(server.client(), commands)
        expected = {key: _xinfo_full(server.port, key) for key in (b"s0", b"s1")}
        assert server.client().save()
        # DEBUG RELOAD writes and reads the same dump.rdb: the streams survive it.
        server.client().execute_command("DEBUG", "RELOAD")
        assert {key: _xinfo_full(server.port, key) for key in expected} == expected
    finally:
        server.stop()
    checked = _check_rdb(tmp_path / "dump.rdb")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with ReferenceRedis(directory=str(tmp_path)) as ref:
        assert {key: _xinfo_full(ref.port, key) for key in expected} == expected
        ref.client().config_set("stream-node-max-entries", "4")
        _run(ref.client(), _script(12, groups=True, deletions=True))
        theirs = {key: _xinfo_full(ref.port, key) for key in (b"s0", b"s1")}
        ref.client().save()
    server = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"],
                                           ["dbfilename", "dump.rdb"]]).start()
    try:
        assert {key: _xinfo_full(server.port, key) for key in theirs} == theirs
    finally:
        server.stop()


def test_native_snapshot_and_debug_reload_keep_streams(tmp_path):
    server = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"]]).start()
    try:
        _run(server.client(), _script(13, groups=True, deletions=True))
        expected = {key: _xinfo_full(server.port, key) for key in (b"s0", b"s1")}
        server.client().execute_command("DEBUG", "RELOAD")
        assert {key: _xinfo_full(server.port, key) for key in expected} == expected
    finally:
        server.stop()


# --- the codec alone ------------------------------------------------------------------------


def _sample_stream() -> Stream:
    stream = Stream()
    for seq in range(1, 30):
        pairs = [b"f", b"%d" % seq] if seq % 5 else [b"f", b"x", b"g", b"y"]
        stream.append((7 << 64) | seq, pairs, 4096, 10)
    return stream


def _v1_payload(stream: Stream) -> bytes:
    """The Redis 5/6 layout of a stream (no first ID, tombstone ID, entries-added or group
    entries-read): made from the 7.0 one, which holds the same fields in the same order."""
    body = dump_payload(stream)[1:-10]
    reader = Reader(body)
    for _ in range(reader.length()):
        reader.string()
        reader.string()
    for _ in range(3):  # length, last ID
        reader.length()
    start = reader.pos
    for _ in range(5):  # first ID, max deleted ID, entries-added: dropped
        reader.length()
    head = bytes((TYPE_STREAM_LISTPACKS,)) + body[:start] + body[reader.pos:]
    head += b"\x0a\x00"
    return head + crc64(head).to_bytes(8, "little")


def test_redis_5_stream_type_loads_with_derived_counters():
    stream = _sample_stream()
    loaded = load_payload(_v1_payload(stream))
    assert list(loaded.range(0, ID_MAX)) == list(stream.range(0, ID_MAX))
    assert loaded.entries_added == loaded.length == 29
    assert format_id(loaded.first_id) == b"7-1"
    assert loaded.max_deleted == 0
    # As Redis does, the payload it writes next is the 7.0 type.
    assert dump_payload(loaded) == dump_payload(stream)


def _with_group(stream: Stream) -> Stream:
    group = Group(b"g", (7 << 64) | 3, 3)
    for name, ids in ((b"alice", (1, 2)), (b"bob", (3,)), (b"idle", ())):
        consumer = group.consumers[name] = Consumer(name, 1700000000000 + len(name))
        for seq in ids:
            nack = Nack(consumer, 1700000000500 + seq, seq)
            group.pel[(7 << 64) | seq] = consumer.pel[(7 << 64) | seq] = nack
    stream.groups[b"g"] = group
    return stream


def _v3_body(stream: Stream) -> bytes:
    """Redis 7.2's layout (STREAM_LISTPACKS_3): the 7.0 one with an 8-byte active time after
    each consumer's seen time, made by walking the 7.0 body."""
    body = dump_payload(stream)[1:-10]
    reader = Reader(body)
    for _ in range(reader.length()):
        reader.string()
        reader.string()
    for _ in range(8):
        reader.length()
    parts, start = [], 0
    for _ in range(reader.length()):
        reader.string()
        for _ in range(3):
            reader.length()
        for _ in range(reader.length()):
            reader.take(24)
            reader.length()
        for _ in range(reader.length()):
            reader.string()
            reader.take(8)
            parts.append(body[start:reader.pos] + (123).to_bytes(8, "little"))
            start = reader.pos
            for _ in range(reader.length()):
                reader.take(16)
    parts.append(body[start:])
    return b"".join(parts)


def test_redis_7_2_stream_type_loads_without_its_active_times():
    stream = _with_group(_sample_stream())
    loaded = decode_value(TYPE_STREAM_LISTPACKS_3, Reader(_v3_body(stream)))
    assert dump_payload(loaded) == dump_payload(stream)
    group = loaded.groups[b"g"]
    assert [(name, sorted(consumer.pel)) for name, consumer in group.consumers.items()] == [
        (b"alice", [(7 << 64) | 1, (7 << 64) | 2]), (b"bob", [(7 << 64) | 3]), (b"idle", [])]
    assert group.pel[(7 << 64) | 2].consumer is group.consumers[b"alice"]


def test_node_without_its_tombstones_keeps_its_last_id_through_a_payload():
    """A node from an older native snapshot has no tombstones: its last ID (what MINID
    trimming reads) still survives DUMP and RESTORE, through one flagged placeholder."""
    stream = _sample_stream()
    for seq in (9, 10):
        stream.delete((7 << 64) | seq)
    node = stream.nodes[0]
    assert [stream_id & 0xFFFF for stream_id, _ in node.tombstones] == [9, 10]
    node.tombstones = []  # as loaded from a snapshot written before tombstones were kept
    loaded = load_payload(dump_payload(stream))
    assert loaded.nodes[0].last == node.last == (7 << 64) | 10
    assert list(loaded.range(0, ID_MAX)) == list(stream.range(0, ID_MAX))


def test_hostile_stream_payloads_end_in_an_error_not_a_crash():
    good = dump_payload(_with_group(_sample_stream()))
    body = good[1:-10]
    rng = random.Random(4)
    refused = 0
    for _ in range(3000):
        mutated = bytearray(body)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        if rng.random() < 0.2:
            del mutated[rng.randrange(len(mutated)):]
        try:
            decode_value(TYPE_STREAM_LISTPACKS_2, Reader(bytes(mutated)))
        except RdbError:
            refused += 1
    assert refused > 1000
    with pytest.raises(RdbError):  # a length that claims far more nodes than there are bytes
        decode_value(TYPE_STREAM_LISTPACKS_2, Reader(b"\x81" + (1 << 62).to_bytes(8, "big")))
    assert payload_is_valid(good)


def test_redis_file_with_streams_reads_here(tmp_path):
    with ReferenceRedis(directory=str(tmp_path)) as ref:
        ref.client().xadd("s", {"f": "v"}, id="1-1")
        ref.client().xgroup_create("s", "g", id="0")
        ref.client().xreadgroup("g", "c", {"s": ">"})
        ref.client().save()
    records = list(read_rdb((tmp_path / "dump.rdb").read_bytes()))
    assert [(db, key, len(value)) for db, key, value, _ in records] == [(0, b"s", 1)]
    group = records[0][2].groups[b"g"]
    assert list(group.consumers) == [b"c"] and len(group.pel) == 1
