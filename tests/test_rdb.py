"""The RDB codec (``trioredis.rdb``) against the real redis-server 7.0.15 and redis-check-rdb.

Both directions: files written here pass ``redis-check-rdb`` and load in redis-server with
the same dataset (type, value, TTL of every key); files redis-server writes (every encoding,
``rdbcompression`` on and off) load here identically.  Legacy encodings (ziplist, zipmap,
intset, linked lists, text scores, quicklist v1, RDB versions 1 to 9) come from files built
here by an independent test-side writer, and redis-server reading the same file is the
oracle.  Damaged and hostile input ends in ``RdbError``, never in a crash or a huge
allocation.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import time
import tomllib
from collections import deque
from pathlib import Path

import pytest
import redis
from parity import ReferenceRedis
from rdb_helpers import (
    databases_of,
    dataset_of_records,
    dataset_of_server,
    expected_dataset,
    random_dataset,
)
from servers import ServerProcess, wait_for
from trioredis.rdb import (
    DEFAULT_ENCODINGS,
    Encodings,
    RdbError,
    dump_payload,
    load_payload,
    payload_is_valid,
    read_rdb,
    write_rdb,
)
from trioredis.rdb.checksum import crc64, lzf_compress, lzf_decompress
from trioredis.rdb.compact import listpack, read_listpack
from trioredis.zset import ZSet

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")


def test_every_core_subpackage_is_listed_in_pyproject():
    """An editable install finds an unlisted subpackage anyway; a wheel would not."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    for init in (ROOT / "core").rglob("__init__.py"):
        parts = init.parent.relative_to(ROOT / "core").parts
        assert ".".join(("trioredis", *parts)) in listed


def test_crc64_is_redis_jones_crc():
    # The check value of CRC-64/REDIS in the CRC catalogue, and Redis's own crc64 test.
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA
    assert crc64(b"56789", crc64(b"1234")) == 0xE9C6D914C4B8D9CA


def test_lzf_round_trip_and_hostile_lengths():
    data = b"abcabcabcabc" * 100 + bytes(range(256))
    packed = lzf_compress(data)
    assert packed is not None and len(packed) < len(data) - 4
    assert lzf_decompress(packed, len(data)) == data
    assert lzf_compress(bytes(range(30))) is None  # incompressible: stored plain
    with pytest.raises(RdbError):
        lzf_decompress(packed, len(data) + 1)
    with pytest.raises(RdbError):
        lzf_decompress(packed, 1 << 32)  # refused before a 4 GB buffer is asked for
    with pytest.raises(RdbError):
        lzf_decompress(b"\xe0\x00\x10", 10)


def _write(path: Path, values, enc: Encodings = DEFAULT_ENCODINGS, checksum: bool = True) -> None:
    with open(path, "wb") as file:
        write_rdb(file.write, databases_of(values), enc, checksum=checksum)


def _check_rdb(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["redis-check-rdb", str(path)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("compression", [True, False])
def test_file_written_here_passes_redis_check_rdb_and_loads_in_redis(tmp_path, compression):
    values = random_dataset(seed=7 + compression)
    path = tmp_path / "dump.rdb"
    _write(path, values, Encodings(rdbcompression=compression))
    checked = _check_rdb(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "RDB looks OK" in checked.stdout
    with ReferenceRedis(directory=str(tmp_path)) as ref:
        loaded = dataset_of_server(ref.port)
    assert loaded == expected_dataset(values)
    assert dataset_of_records(read_rdb(path.read_bytes())) == expected_dataset(values)


def test_file_without_checksum_loads_in_redis(tmp_path):
    values = {(0, b"a"): (b"1", None), (0, b"l"): (deque([b"x", b"y"]), None)}
    path = tmp_path / "dump.rdb"
    _write(path, values, checksum=False)
    assert path.read_bytes()[-8:] == bytes(8)
    with ReferenceRedis(directory=str(tmp_path)) as ref:
        assert dataset_of_server(ref.port) == expected_dataset(values)
    assert dataset_of_records(read_rdb(path.read_bytes())) == expected_dataset(values)


def _fill_reference(client: redis.Redis, seed: int) -> None:
    """Every type in every encoding Redis 7.0 has for it, through Redis's own commands."""
    rng = random.Random(seed)
    pipe = client.pipeline(transaction=False)
    for db in (0, 5):
        pipe.select(db)
        pipe.set("str:short", "hello")
        pipe.set("str:int", 12345)
        pipe.set("str:bigint", 2**62)
        pipe.set("str:long", "abc" * 1000)
        pipe.set("str:random", bytes(rng.randrange(256) for _ in range(300)))
        pipe.set("str:ttl", "v", px=10**8)
        pipe.rpush("list:small", "a", "1", "-3", "70000", "x" * 100)
        pipe.rpush("list:large", *[b"e%d" % i for i in range(5000)], *["y" * 700] * 30)
        pipe.hset("hash:small", mapping={"f": "v", "1": "2", "n": "-70000"})
        pipe.hset("hash:large", mapping={b"f%d" % i: b"v%d" % i for i in range(1000)})
        pipe.hset("hash:wide", mapping={"f": "w" * 100})
        pipe.sadd("set:intset", 1, 2, -3, 2**40)
        pipe.sadd("set:large-ints", *range(1000))
        pipe.sadd("set:strings", "a", "b", "c")
        pipe.zadd("zset:small", {"a": 1, "b": 2.5, "c": -1e20, "d": float("inf")})
        pipe.zadd("zset:large", {b"m%d" % i: rng.random() for i in range(1000)})
        pipe.zadd("zset:wide", {"m" * 100: 1})
        pipe.pexpire("zset:wide", 10**9)
    pipe.execute()


@pytest.mark.parametrize("compression", ["yes", "no"])
def test_file_written_by_redis_loads_here_identically(compression):
    with ReferenceRedis("--rdbcompression", compression) as ref:
        client = ref.client()
        _fill_reference(client, seed=3)
        expected = dataset_of_server(ref.port)
        client.save()
        data = (Path(ref.directory) / "dump.rdb").read_bytes()
    aux: dict[bytes, bytes] = {}
    assert dataset_of_records(read_rdb(data, aux)) == expected
    assert aux[b"redis-ver"] == b"7.0.15"


def test_damaged_file_is_refused_before_any_key_loads(tmp_path):
    path = tmp_path / "dump.rdb"
    _write(path, random_dataset(seed=1, databases=(0,)))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    with pytest.raises(RdbError, match="checksum"):
        read_rdb(bytes(data))
    with pytest.raises(RdbError):
        read_rdb(bytes(data[:20]))
    with pytest.raises(RdbError, match="signature"):
        read_rdb(b"RODIS0010" + bytes(data[9:]))
    with pytest.raises(RdbError, match="version"):
        read_rdb(b"REDIS0011" + bytes(data[9:]))


# --- legacy encodings: files built here, read by redis-server and by us ------------------


def _len(n: int) -> bytes:
    if n < 64:
        return bytes((n,))
    if n < 16384:
        return bytes((0x40 | (n >> 8), n & 0xFF))
    return b"\x80" + n.to_bytes(4, "big")


def _str(raw: bytes) -> bytes:
    return _len(len(raw)) + raw


def _ziplist(items: list) -> bytes:
    """A ziplist, written independently of the codec (every string and integer encoding)."""
    entries = []
    previous = 0
    for item in items:
        prev = bytes((previous,)) if previous < 254 else b"\xfe" + struct.pack("<I", previous)
        if isinstance(item, int):
            if 0 <= item <= 12:
                body = bytes((0xF1 + item,))
            elif -128 <= item <= 127:
                body = b"\xfe" + struct.pack("<b", item)
            elif -32768 <= item <= 32767:
                body = b"\xc0" + struct.pack("<h", item)
            elif -(1 << 23) <= item < (1 << 23):
                body = b"\xf0" + item.to_bytes(3, "little", signed=True)
            elif -(1 << 31) <= item < (1 << 31):
                body = b"\xd0" + struct.pack("<i", item)
            else:
                body = b"\xe0" + struct.pack("<q", item)
        else:
            n = len(item)
            if n < 64:
                body = bytes((n,)) + item
            elif n < 16384:
                body = bytes((0x40 | (n >> 8), n & 0xFF)) + item
            else:
                body = b"\x80" + n.to_bytes(4, "big") + item
        entries.append(prev + body)
        previous = len(prev + body)
    body = b"".join(entries)
    tail = 10 + len(body) - len(entries[-1]) if entries else 10
    return struct.pack("<IIH", 10 + len(body) + 1, tail, len(entries)) + body + b"\xff"


def _zipmap(pairs: list[tuple[bytes, bytes]]) -> bytes:
    out = bytes((len(pairs),))
    for key, value in pairs:
        out += bytes((len(key),)) + key + bytes((len(value),)) + b"\x00" + value
    return out + b"\xff"


def _intset(numbers: list[int], width: int) -> bytes:
    letter = {2: "h", 4: "i", 8: "q"}[width]
    numbers = sorted(numbers)
    return struct.pack(f"<II{len(numbers)}{letter}", width, len(numbers), *numbers)


def _legacy_file(version: int, records: list[bytes]) -> bytes:
    body = b"REDIS%04d" % version + b"\xfe\x00" + b"".join(records) + b"\xff"
    if version >= 5:
        body += struct.pack("<Q", crc64(body))
    return body


def _legacy_records() -> dict[int, list[bytes]]:
    """Records per RDB version, in the encodings that version's Redis wrote."""
    wide = [b"x" * 70, b"y" * 300, 5, 300, -200, 70000, -(1 << 30), 1 << 40, b"", b"12a"]
    zipmap = [(b"f1", b"v1"), (b"f2", b"1234"), (b"", b"empty-field")]
    text_scores = [(b"a", b"\x031.5"), (b"b", b"\xfe"), (b"c", b"\xff"), (b"d", b"\x02-3")]
    return {
        1: [
            b"\x00" + _str(b"s") + _str(b"plain"),
            b"\x00" + _str(b"i8") + b"\xc0\x7f",
            b"\x00" + _str(b"i16") + b"\xc1" + struct.pack("<h", -1234),
            b"\x00" + _str(b"i32") + b"\xc2" + struct.pack("<i", 123456789),
            b"\x01" + _str(b"list") + _len(3) + _str(b"a") + _str(b"b") + b"\xc0\x05",
            b"\x02" + _str(b"set") + _len(2) + _str(b"m1") + _str(b"m2"),
            b"\x03" + _str(b"zset") + _len(4) + b"".join(_str(m) + s for m, s in text_scores),
            b"\x04" + _str(b"hash") + _len(2) + _str(b"f") + _str(b"v") + _str(b"g") + _str(b"w"),
        ],
        3: [
            b"\x09" + _str(b"zipmap") + _str(_zipmap(zipmap)),
            b"\xfd" + struct.pack("<i", 2000000000) + b"\x00" + _str(b"secs") + _str(b"ttl"),
        ],
        6: [
            b"\x0a" + _str(b"zl-list") + _str(_ziplist(wide)),
            b"\x0b" + _str(b"intset16") + _str(_intset([1, -2, 300], 2)),
            b"\x0b" + _str(b"intset32") + _str(_intset([1, 70000], 4)),
            b"\x0b" + _str(b"intset64") + _str(_intset([1, 1 << 40], 8)),
            b"\x0c" + _str(b"zl-zset") + _str(_ziplist([b"c", b"-inf", b"a", 1, b"b", b"2.5"])),
            b"\x0d" + _str(b"zl-hash") + _str(_ziplist([b"f", b"v", b"n", 7, b"w", b"x" * 64])),
            b"\x00" + _str(b"lzf") + b"\xc3" + _len(len(lzf_compress(b"q" * 100)))
            + _len(100) + lzf_compress(b"q" * 100),
        ],
        8: [
            b"\x0e" + _str(b"quicklist") + _len(2) + _str(_ziplist([b"a", 1]))
            + _str(_ziplist(wide)),
            b"\x05" + _str(b"zset2") + _len(2) + _str(b"m") + struct.pack("<d", 2.5)
            + _str(b"n") + struct.pack("<d", float("-inf")),
            b"\xfc" + struct.pack("<Q", 4102444800123) + b"\x00" + _str(b"ms") + _str(b"ttl"),
        ],
    }


@pytest.mark.parametrize("version", [1, 3, 6, 8, 9])
def test_legacy_encodings_load_as_redis_loads_them(tmp_path, version):
    records = _legacy_records()
    chosen = [record for v, group in records.items() if v <= version for record in group]
    data = _legacy_file(version, chosen)
    (tmp_path / "dump.rdb").write_bytes(data)
    with ReferenceRedis(directory=str(tmp_path)) as ref:
        expected = dataset_of_server(ref.port)
    assert len(expected) == len(chosen)
    assert dataset_of_records(read_rdb(data)) == expected


# --- DUMP payloads -------------------------------------------------------------------------


def test_payload_round_trip_of_every_type():
    for value in random_dataset(seed=11, databases=(0,)).values():
        payload = dump_payload(value[0])
        assert payload_is_valid(payload)
        loaded = load_payload(payload)
        if isinstance(loaded, ZSet):
            assert list(loaded.items()) == list(value[0].items())
        else:
            assert loaded == value[0]


def test_listpack_entries_read_back():
    items = [b"", b"0", b"127", b"128", b"-4096", b"4095", b"-32768", b"8388607", b"-2147483648",
             b"9223372036854775807", b"-9223372036854775808", b"9223372036854775808", b"01",
             b"x" * 63, b"x" * 64, b"y" * 4095, b"z" * 4096, b"-0", b"+1"]
    assert [item if isinstance(item, bytes) else b"%d" % item
            for item in read_listpack(listpack(items))] == items


def test_hostile_payload_bodies_end_in_an_error_not_a_crash():
    rng = random.Random(99)
    good = [dump_payload(value) for value, _ in random_dataset(seed=5, databases=(0,)).values()]
    for _ in range(3000):
        body = bytearray(rng.choice(good)[:-10])
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(body))
            body[position] = rng.randrange(256)
        if rng.random() < 0.3:
            del body[rng.randrange(len(body)):]
        if rng.random() < 0.1:
            body[1:1] = b"\x81" + rng.randbytes(8)  # a 64-bit length
        head = bytes(body) + b"\x0a\x00"
        payload = head + struct.pack("<Q", crc64(head))
        try:
            load_payload(payload)
        except RdbError:
            pass


# --- the snapshot backend with dbfilename dump.rdb ------------------------------------------


def _restore_all(client: redis.Redis, values) -> None:
    """Put a dataset into a server through RESTORE (with absolute deadlines)."""
    for (db, key), (value, expire) in values.items():
        client.execute_command("SELECT", db)
        client.restore(key, expire or 0, dump_payload(value), absttl=True)
    client.execute_command("SELECT", 0)


def test_save_with_dbfilename_rdb_writes_a_file_redis_loads(tmp_path):
    values = random_dataset(seed=31)
    server = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"],
                                           ["dbfilename", "dump.rdb"]]).start()
    try:
        client = server.client()
        _restore_all(client, values)
        assert client.save()
        client.bgsave()
        wait_for(lambda: client.info("persistence")["rdb_bgsave_in_progress"] == 0,
                 what="the background save")
        assert client.info("persistence")["rdb_last_bgsave_status"] == "ok"
    finally:
        server.stop()
    path = tmp_path / "dump.rdb"
    assert path.read_bytes()[:9] == b"REDIS0010"
    checked = _check_rdb(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with ReferenceRedis(directory=str(tmp_path)) as ref:
        assert dataset_of_server(ref.port) == expected_dataset(values)


def test_start_up_loads_a_dump_rdb_written_by_redis(tmp_path):
    with ReferenceRedis(directory=str(tmp_path)) as ref:
        _fill_reference(ref.client(), seed=9)
        ref.client().set("expiring", "v", px=500)
        expected = dataset_of_server(ref.port)
        ref.client().save()
    del expected[(0, b"expiring")]
    time.sleep(0.6)  # now expired: Redis would not load it either
    server = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"],
                                           ["dbfilename", "dump.rdb"]]).start()
    try:
        assert dataset_of_server(server.port) == expected
        persistence = server.client().info("persistence")
        assert persistence["rdb_last_load_keys_loaded"] == len(expected)
        assert persistence["rdb_last_load_keys_expired"] == 1
        # DEBUG RELOAD saves and loads the same file: the dataset survives the round trip.
        server.client().execute_command("DEBUG", "RELOAD")
        assert dataset_of_server(server.port) == expected
    finally:
        server.stop()


def test_a_damaged_dump_rdb_stops_the_start_up(tmp_path):
    path = tmp_path / "dump.rdb"
    _write(path, random_dataset(seed=2, databases=(0,)))
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    server = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"],
                                           ["dbfilename", "dump.rdb"]])
    with pytest.raises(RuntimeError):
        server.start()
    assert "checksum" in server.log()


LIBRARY = "#!lua name=rdblib\nredis.register_function('rdbf', function(keys, args) return 42 end)"


def test_function_libraries_travel_in_dump_rdb_both_ways(tmp_path):
    with ReferenceRedis(directory=str(tmp_path)) as ref:
        ref.client().function_load(LIBRARY)
        ref.client().set("k", "v")
        ref.client().save()
    with pytest.raises(RdbError, match="function"):
        list(read_rdb((tmp_path / "dump.rdb").read_bytes()))  # not silently dropped
    server = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"],
                                           ["dbfilename", "dump.rdb"]]).start()
    try:
        client = server.client()
        assert client.fcall("rdbf", 0) == 42
        assert client.get("k") == b"v"
        assert client.save()
    finally:
        server.stop()
    functions: list[bytes] = []
    list(read_rdb((tmp_path / "dump.rdb").read_bytes(), functions=functions))
    assert functions == [LIBRARY.encode()]
    with ReferenceRedis(directory=str(tmp_path)) as ref:
        assert ref.client().fcall("rdbf", 0) == 42
        assert ref.client().get("k") == b"v"
