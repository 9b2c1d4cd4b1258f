"""The snapshot backend (plugins/snapshot): SAVE/BGSAVE/LASTSAVE, save points, MISCONF,
DEBUG RELOAD, crash safety of dump.trdb, and refusal of damaged files.

In-process servers (ServerThread) where the test only talks to the server; subprocesses
(ServerProcess) where it kills one, limits its file size, or watches it refuse to start.
"""

from __future__ import annotations

import glob
import io
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque

import pytest
import redis
from parity import ReferenceRedis
from servers import ServerProcess, ServerThread, console_script
from trioredis.plugins.snapshot.backend import zset_class
from trioredis.plugins.snapshot.format import (
    FORMAT_VERSION,
    SnapshotError,
    SnapshotFile,
    drop_expired,
    materialize,
    write_snapshot,
    write_snapshot_file,
)

BIG = 10_017  # items in the big collections of the round-trip datasets

MISCONF = (
    "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist "
    "to disk. Commands that may modify the data set are disabled, because this instance is "
    "configured to report errors during writes if RDB snapshotting fails "
    "(stop-writes-on-bgsave-error option). Please check the Redis logs for details about the "
    "RDB error."
)

# A plugin for these tests only, loaded with `loadplugin`: a value type of its own (BOXSET),
# so a third-party type's round trip through the snapshot hooks is proven, and commands that
# hold the fork slot the way a running AOF rewrite does (BGSAVE SCHEDULE needs that).
TEST_PLUGIN = '''
from trioredis import OK, CommandError, command, hookimpl


class Box:
    def __init__(self, number):
        self.number = number


def boxset(ctx, argv):
    ctx.db.set(argv[1], Box(int(argv[2])))
    ctx.dirty += 1
    return OK


def boxget(ctx, argv):
    value = ctx.db.get(argv[1])
    return None if value is None else value.number


def holdfork(ctx, argv):
    if not ctx.engine.fork_slot.try_acquire("test"):
        raise CommandError("ERR fork slot busy")
    return OK


def releasefork(ctx, argv):
    ctx.engine.fork_slot.release("test")
    return OK


@hookimpl
def trioredis_register_commands(registry):
    registry.extend([
        command("boxset", 3, "write", boxset, (1, 1, 1)),
        command("boxget", 2, "readonly", boxget, (1, 1, 1)),
        command("holdfork", 1, "admin", holdfork),
        command("releasefork", 1, "admin", releasefork),
    ])


@hookimpl
def trioredis_value_type(value):
    return "box" if isinstance(value, Box) else None


@hookimpl
def trioredis_snapshot_encode(value):
    return ("box", value.number) if isinstance(value, Box) else None


@hookimpl
def trioredis_snapshot_decode(type_tag, payload):
    return Box(payload) if type_tag == "box" else None


@hookimpl
def trioredis_rewrite_value(db, key, value, expire_ms):
    if not isinstance(value, Box):
        return None
    commands = [[b"BOXSET", key, b"%d" % value.number]]
    if expire_ms is not None:
        commands.append([b"PEXPIREAT", key, b"%d" % expire_ms])
    return commands
'''


@pytest.fixture(scope="module")
def box_plugin(tmp_path_factory):
    """The module name of the test plugin, importable from now on."""
    directory = tmp_path_factory.mktemp("snapshot_plugin")
    (directory / "snapshot_test_plugin.py").write_text(TEST_PLUGIN)
    sys.path.insert(0, str(directory))
    yield "snapshot_test_plugin"
    sys.path.remove(str(directory))


# Most tests here are about the native format, which is no longer the default (dump.rdb).
NATIVE = ["dbfilename", "dump.trdb"]


def start(tmp_path, *options, plugin=None):
    lines = [["dir", str(tmp_path)], ["appendonly", "no"], ["save", ""], NATIVE, *options]
    if plugin:
        lines.append(["loadplugin", plugin])
    server = ServerThread(lines).start()
    server.wait_ready()
    return server


def persistence(client):
    return client.info("persistence")


def raw(port, *argv):
    """The exact reply bytes of one command (redis-py turns status replies into True)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv))
        return sock.recv(65536)


def bgsave(client):
    """BGSAVE without SCHEDULE (redis-py's bgsave() adds SCHEDULE by default); True for
    +Background saving started."""
    return client.execute_command("BGSAVE")


def wait_bgsave_done(client, timeout=30):
    deadline = time.monotonic() + timeout
    while persistence(client)["rdb_bgsave_in_progress"]:
        if time.monotonic() > deadline:
            raise TimeoutError("BGSAVE did not finish")
        time.sleep(0.01)


def mset_many(client, count, prefix=b"key:", value=b"value:%d", batch=10_000):
    for begin in range(0, count, batch):
        pairs = []
        for i in range(begin, min(count, begin + batch)):
            pairs += (prefix + b"%d" % i, value % i if b"%" in value else value)
        client.execute_command("MSET", *pairs)


def populate_strings(server, databases=16):
    """Strings, binary data, empty values and TTLs in every database."""
    for index in range(databases):
        client = server.client(db=index)
        pipe = client.pipeline(transaction=False)
        for j in range(20):
            pipe.set(b"s:%d:%d" % (index, j), b"v\x00\xff\r\n%d" % j)
        pipe.set(b"", b"empty key %d" % index)
        pipe.set(b"empty:%d" % index, b"")
        pipe.set(b"ttl:%d" % index, b"x", px=3_600_000 + index)
        pipe.set(b"ttl2:%d" % index, b"y")
        pipe.pexpireat(b"ttl2:%d" % index, int(time.time() * 1000) + 7_200_000)
        pipe.execute()
        client.close()


def populate_collections(server, databases=16):
    """Lists, hashes, sets and sorted sets in every database, with big ones (several parts
    in the file) in db 0 and 15, and TTLs on some."""
    for index in range(databases):
        client = server.client(db=index)
        big = BIG if index in (0, databases - 1) else 0
        client.rpush(b"list:%d" % index, *[b"item%d" % i for i in range(50)], b"", b"\x00")
        client.hset(b"hash:%d" % index, mapping={b"f%d" % i: b"v%d" % i for i in range(40)})
        client.sadd(b"set:%d" % index, *[b"m%d" % i for i in range(30)])
        client.zadd(b"zset:%d" % index, {b"a": 1.5, b"b": -2.25, b"c": 0.1, b"inf": float("inf"),
                                         b"-inf": float("-inf"), b"big": 1e300})
        client.pexpire(b"hash:%d" % index, 5_000_000)
        if big:
            for start_at in range(0, big, 1000):
                chunk = range(start_at, min(big, start_at + 1000))
                client.rpush(b"biglist", *[b"%d" % i for i in chunk])
                client.hset(b"bighash", mapping={b"%d" % i: b"%d" % (i * 2) for i in chunk})
                client.sadd(b"bigset", *[b"%d" % i for i in chunk])
                client.zadd(b"bigzset", {b"%d" % i: i / 7 for i in chunk})
            client.pexpire(b"bigset", 9_000_000)
        client.close()


def digest(client):
    return client.execute_command("DEBUG", "DIGEST")


# --- the file format, without a server --------------------------------------------------


class _Db:
    def __init__(self, index, data, expires):
        self.index, self.data, self.expires = index, data, expires


FAR = 4_102_444_800_000  # 2100-01-01, in ms


def _sample_databases():
    zset = zset_class()
    assert zset is not None, "trioredis exports no ZSet: sorted sets would go untested"
    data0 = {
        b"s": b"string", b"bin": bytes(range(256)), b"": b"empty key", b"l": deque([b"a", b""]),
        b"bigl": deque(b"%d" % i for i in range(BIG)),
        b"h": {b"f": b"v"}, b"bigh": {b"%d" % i: b"x" for i in range(BIG)},
        b"set": {b"1", b"2"}, b"bigset": {b"%d" % i for i in range(BIG)},
        b"gone": b"expired already",
    }
    data0[b"z"] = zset([(b"m%d" % i, i * 0.5) for i in range(BIG)] + [(b"inf", float("inf"))])
    return [_Db(0, data0, {b"s": FAR, b"bigl": FAR, b"gone": 1}), _Db(3, {b"k": b"v"}, {})]


def _read_all(path, decode_plugin=None):
    """Every database of a snapshot as the server would install it."""
    result = {}
    with SnapshotFile(str(path)) as snapshot:
        snapshot.verify()
        for offset, start, end in snapshot.database_records():
            index, data, expires = snapshot.decode_database(offset, start, end)
            materialize(data, zset_class(), decode_plugin)
            drop_expired(data, expires, int(time.time() * 1000))
            result[index] = (data, expires)
    return result


def test_format_round_trips_every_type(tmp_path):
    path = tmp_path / "dump.trdb"
    keys = write_snapshot_file(str(path), _sample_databases(), lambda value: None, zset_class())
    assert keys == sum(len(db.data) for db in _sample_databases())
    assert path.read_bytes().startswith(b"TRDB%04d" % FORMAT_VERSION)
    loaded = _read_all(path)
    assert set(loaded) == {0, 3}
    data, expires = loaded[0]
    original = _sample_databases()[0].data
    del original[b"gone"]
    assert data.keys() == original.keys()
    for key, value in original.items():
        if value.__class__.__name__ == "ZSet":
            assert list(data[key].items()) == list(value.items())
        else:
            assert data[key] == value and data[key].__class__ is value.__class__, key
    assert expires == {b"s": FAR, b"bigl": FAR}
    assert loaded[3] == ({b"k": b"v"}, {})


def test_format_refuses_a_value_no_plugin_encodes(tmp_path):
    class Opaque:
        pass

    with pytest.raises(TypeError, match="no plugin can snapshot"):
        write_snapshot(io.BytesIO(), [_Db(0, {b"k": Opaque()}, {})], lambda value: None, None)


def test_format_detects_every_single_bit_flip(tmp_path):
    """Whatever bit flips (header, length, payload, end marker, checksum), the file is
    refused with SnapshotError before anything is decoded into a database."""
    out = io.BytesIO()
    databases = [_Db(0, {b"a": b"1", b"l": deque([b"x", b"y"]), b"h": {b"f": b"v"},
                         b"s": {b"m"}}, {b"a": FAR}),
                 _Db(1, {b"b": b"2"}, {})]
    write_snapshot(out, databases, lambda value: None, None)
    good = out.getvalue()
    path = tmp_path / "flipped.trdb"
    for position in range(len(good)):
        for bit in range(8):
            damaged = bytearray(good)
            damaged[position] ^= 1 << bit
            path.write_bytes(bytes(damaged))
            with SnapshotFile(str(path)) as snapshot, pytest.raises(SnapshotError):
                snapshot.verify()
    for cut in (0, 5, len(good) // 2, len(good) - 1):
        path.write_bytes(good[:cut])
        with SnapshotFile(str(path)) as snapshot, pytest.raises(SnapshotError):
            snapshot.verify()
    path.write_bytes(good + b"\0")
    with SnapshotFile(str(path)) as snapshot, pytest.raises(SnapshotError):
        snapshot.verify()


def test_format_refuses_a_newer_version(tmp_path):
    path = tmp_path / "new.trdb"
    write_snapshot_file(str(path), [_Db(0, {b"k": b"v"}, {})], lambda value: None, None)
    data = bytearray(path.read_bytes())
    data[4:8] = b"%04d" % (FORMAT_VERSION + 1)
    path.write_bytes(bytes(data))
    with SnapshotFile(str(path)) as snapshot, pytest.raises(SnapshotError, match="newer than this server reads"):
        snapshot.verify()


# --- SAVE, BGSAVE, LASTSAVE, DEBUG RELOAD ---------------------------------------------------


def test_save_restart_round_trips_strings_ttls_and_16_databases(tmp_path):
    server = start(tmp_path)
    try:
        populate_strings(server)
        client = server.client()
        before = digest(client)
        assert client.save() is True
        assert os.path.exists(tmp_path / "dump.trdb")
    finally:
        server.stop()
    server = start(tmp_path)
    try:
        client = server.client()
        assert digest(client) == before
        assert server.client(db=15).get(b"s:15:3") == b"v\x00\xff\r\n3"
        assert 3_500_000 < server.client(db=7).pttl(b"ttl:7") <= 3_600_007
        info = persistence(client)
        assert info["rdb_last_load_keys_loaded"] == 16 * 24
    finally:
        server.stop()


def test_save_restart_round_trips_every_type(tmp_path, box_plugin):
    server = start(tmp_path, plugin=box_plugin)
    try:
        populate_strings(server)
        populate_collections(server)
        client = server.client()
        client.execute_command("BOXSET", "box", 42)
        client.pexpire("box", 8_000_000)
        before = digest(client)
        assert client.save() is True
    finally:
        server.stop()
    server = start(tmp_path, plugin=box_plugin)
    try:
        client = server.client()
        assert digest(client) == before
        assert client.execute_command("BOXGET", "box") == 42
        assert client.llen(b"biglist") == BIG
        assert server.client(db=3).zscore(b"zset:3", b"inf") == float("inf")
    finally:
        server.stop()


def test_debug_reload_keeps_the_dataset(tmp_path, box_plugin):
    server = start(tmp_path, plugin=box_plugin)
    try:
        populate_strings(server, databases=4)
        client = server.client()
        client.execute_command("BOXSET", "box", 7)
        before, size = digest(client), client.dbsize()
        assert client.execute_command("DEBUG", "RELOAD") == b"OK"
        assert digest(client) == before
        assert client.dbsize() == size
        assert client.execute_command("BOXGET", "box") == 7
    finally:
        server.stop()


def test_bgsave_snapshot_is_the_dataset_at_the_fork(tmp_path):
    """Keys are written in order by one connection while BGSAVE runs; the snapshot must hold
    a prefix of that sequence with no gap, and the counter written with each key must name
    the last key of the prefix: exactly a state the dataset passed through."""
    server = start(tmp_path)
    written = [0]
    stop = threading.Event()
    try:
        client = server.client()
        initial = 100_000
        mset_many(client, initial, prefix=b"seq:", value=b"%d")
        client.set(b"counter", initial - 1)

        def writer():
            connection = server.client()
            i = initial
            while not stop.is_set():
                pipe = connection.pipeline(transaction=True)
                pipe.set(b"seq:%d" % i, i)
                pipe.set(b"counter", i)
                pipe.execute()
                written[0] = i
                i += 1
            connection.close()

        thread = threading.Thread(target=writer)
        thread.start()
        while written[0] < initial + 50:
            time.sleep(0.001)
        assert bgsave(client) is True
        wait_bgsave_done(client)
        stop.set()
        thread.join()
        assert persistence(client)["rdb_last_bgsave_status"] == "ok"
        last_written = written[0]
    finally:
        stop.set()
        server.stop()
    server = start(tmp_path)
    try:
        client = server.client()
        counter = int(client.get(b"counter"))
        assert initial + 50 <= counter <= last_written
        assert client.dbsize() == counter + 2  # seq:0..counter and the counter
        assert client.get(b"seq:%d" % counter) == b"%d" % counter
        assert client.get(b"seq:%d" % (counter + 1)) is None
    finally:
        server.stop()


def test_bgsave_replies_and_statistics(tmp_path, box_plugin):
    server = start(tmp_path, plugin=box_plugin)
    try:
        client = server.client()
        assert raw(server.port, b"BGSAVE") == b"+Background saving started\r\n"
        wait_bgsave_done(client)
        mset_many(client, 200_000)
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("BGSAVE")
        pipe.execute_command("BGSAVE")
        pipe.execute_command("SAVE")
        first, second, save = pipe.execute(raise_on_error=False)
        assert first is True  # +Background saving started
        assert str(second) == "Background save already in progress"
        assert str(save) == "Background save already in progress"
        wait_bgsave_done(client)
        info = persistence(client)
        assert info["rdb_last_bgsave_status"] == "ok"
        assert info["rdb_saves"] == 2
        assert info["rdb_changes_since_last_save"] == 0
        assert info["rdb_last_bgsave_time_sec"] >= 0
        assert info["rdb_current_bgsave_time_sec"] == -1
        assert info["rdb_last_cow_size"] > 0  # what the child stopped sharing, as it measured
        client.set("one", "more")
        assert persistence(client)["rdb_changes_since_last_save"] == 1

        # Another child (an AOF rewrite) holds the fork slot: BGSAVE is refused, BGSAVE
        # SCHEDULE runs it once the slot is free.
        assert client.execute_command("HOLDFORK") == b"OK"
        with pytest.raises(redis.ResponseError, match="Another child process is active"):
            bgsave(client)
        assert raw(server.port, b"BGSAVE", b"SCHEDULE") == b"+Background saving scheduled\r\n"
        time.sleep(0.3)
        assert persistence(client)["rdb_saves"] == 2
        assert client.execute_command("RELEASEFORK") == b"OK"
        deadline = time.monotonic() + 10
        while persistence(client)["rdb_saves"] < 3:
            assert time.monotonic() < deadline, "the scheduled BGSAVE never ran"
            time.sleep(0.02)
    finally:
        server.stop()


def test_lastsave_moves_with_each_save(tmp_path):
    server = start(tmp_path)
    try:
        client = server.client()
        started = client.lastsave()
        time.sleep(1.1)
        client.set("k", "v")
        assert client.save() is True
        after = client.lastsave()
        assert after > started
        assert int(after.timestamp()) == persistence(client)["rdb_last_save_time"]
    finally:
        server.stop()


def test_save_point_triggers_a_background_save_and_config_set_switches_it(tmp_path):
    server = start(tmp_path)  # save ""
    try:
        client = server.client()
        client.set("a", "1")
        client.config_set("save", "1 1")
        assert client.config_get("save") == {"save": "1 1"}
        deadline = time.monotonic() + 15
        while persistence(client)["rdb_saves"] < 1:
            assert time.monotonic() < deadline, "the save point never saved"
            time.sleep(0.05)
        assert os.path.exists(tmp_path / "dump.trdb")
        assert persistence(client)["rdb_changes_since_last_save"] == 0
        client.config_set("save", "")
        client.set("b", "2")
        assert persistence(client)["rdb_changes_since_last_save"] == 1
    finally:
        server.stop()


# --- failures: MISCONF --------------------------------------------------------------------


def test_misconf_after_a_failed_bgsave_until_a_save_succeeds(tmp_path):
    """The rename of the finished temp file fails (a directory sits where dump.trdb goes):
    the save failed, writes are refused with Redis's MISCONF, reads still work."""
    server = start(tmp_path, ["save", "3600", "1"])
    try:
        client = server.client()
        client.set("k", "v")
        os.mkdir(tmp_path / "dump.trdb")
        assert bgsave(client) is True
        wait_bgsave_done(client)
        assert persistence(client)["rdb_last_bgsave_status"] == "err"
        with pytest.raises(redis.ResponseError) as refused:
            client.set("k2", "v")
        assert str(refused.value) == MISCONF
        assert client.get("k") == b"v"
        assert glob.glob(str(tmp_path / "temp-*.trdb")) == []
        client.config_set("save", "")  # no save points: Redis does not refuse writes then
        assert client.set("k2", "v") is True
        client.config_set("save", "3600 1")
        with pytest.raises(redis.ResponseError, match="^MISCONF"):
            client.set("k2", "v")
        os.rmdir(tmp_path / "dump.trdb")
        assert bgsave(client) is True
        wait_bgsave_done(client)
        assert client.set("k2", "v") is True
    finally:
        server.stop()


def test_misconf_when_the_child_hits_the_file_size_limit(tmp_path):
    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    server = ServerProcess(str(tmp_path), [["save", "3600", "1"], ["appendonly", "no"], NATIVE],
                           preexec_fn=limit_file_size).start()
    try:
        client = server.client()
        mset_many(client, 5000, value=b"x" * 100)
        assert bgsave(client) is True
        wait_bgsave_done(client)
        assert persistence(client)["rdb_last_bgsave_status"] == "err"
        with pytest.raises(redis.ResponseError) as refused:
            client.set("k", "v")
        assert str(refused.value) == MISCONF
        with pytest.raises(redis.ResponseError):  # Redis replies a bare -ERR
            client.save()
        assert not os.path.exists(tmp_path / "dump.trdb")
        client.config_set("stop-writes-on-bgsave-error", "no")
        assert client.set("k", "v") is True
        assert "Background saving error" in server.log()
    finally:
        server.kill()


# --- crashes and damaged files ------------------------------------------------------------


def test_kill_9_during_bgsave_leaves_the_previous_snapshot_intact(tmp_path):
    server = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"], NATIVE]).start()
    try:
        client = server.client()
        client.set("generation", "1")
        assert client.save() is True
        # A save that finished before its temp file was seen is the new "previous snapshot":
        # try again with twice the data until the kill lands while the child writes.
        for attempt in range(4):
            good = (tmp_path / "dump.trdb").read_bytes()
            saved_digest = digest(client)
            generation = client.get("generation")
            saves = persistence(client)["rdb_saves"]
            mset_many(client, 300_000 << attempt, prefix=b"round%d:" % attempt)
            client.set("generation", b"%d" % (attempt + 2))
            assert bgsave(client) is True
            deadline = time.monotonic() + 20
            while not glob.glob(str(tmp_path / "temp-*.trdb")):
                assert time.monotonic() < deadline, "the child never created its temp file"
                if persistence(client)["rdb_saves"] > saves:
                    break  # done already: wait for the next one's temp file
                time.sleep(0.001)
            else:
                server.kill(signal.SIGKILL)
                break
            wait_bgsave_done(client)
        else:
            raise AssertionError("every save finished before its temp file was seen")
    finally:
        server.kill()
    assert (tmp_path / "dump.trdb").read_bytes() == good
    server = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"], NATIVE]).start()
    try:
        client = server.client()
        assert digest(client) == saved_digest
        assert client.get("generation") == generation
        assert glob.glob(str(tmp_path / "temp-*.trdb")) == []
    finally:
        server.stop()


def test_damaged_snapshot_stops_the_server_with_a_clear_log_line(tmp_path):
    server = start(tmp_path)
    try:
        populate_strings(server, databases=2)
        assert server.client().save() is True
    finally:
        server.stop()
    path = tmp_path / "dump.trdb"
    good = path.read_bytes()
    for position in (5, len(good) // 2, len(good) - 3):
        damaged = bytearray(good)
        damaged[position] ^= 0x10
        path.write_bytes(bytes(damaged))
        (tmp_path / "server.log").unlink(missing_ok=True)
        process = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"], NATIVE])
        with pytest.raises(RuntimeError, match="server exited"):
            process.start(timeout=30)
        assert process.process.returncode != 0
        assert "Bad snapshot file" in process.log()
        assert "Refusing to start on wrong data" in process.log()
        checked = subprocess.run([console_script("trioredis-check-snapshot"), str(path)], capture_output=True,
                                 text=True)
        assert checked.returncode == 1
        assert "Bad snapshot file" in checked.stdout
    path.write_bytes(good)
    checked = subprocess.run([console_script("trioredis-check-snapshot"), str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    assert "48 keys" in checked.stdout


def test_flushall_with_save_points_saves_the_empty_dataset(tmp_path):
    """As Redis does: a crash after FLUSHALL must not bring the flushed keys back."""
    server = start(tmp_path, ["save", "3600", "1"])
    try:
        client = server.client()
        client.set("k", "v")
        assert client.save() is True
        assert client.flushall() is True
        deadline = time.monotonic() + 10
        while persistence(client)["rdb_saves"] < 2:
            assert time.monotonic() < deadline, "FLUSHALL did not save the empty dataset"
            time.sleep(0.02)
    finally:
        server.stop()
    server = start(tmp_path)
    try:
        assert server.client().dbsize() == 0
    finally:
        server.stop()


def test_flushall_during_bgsave_kills_the_child_so_its_snapshot_never_lands(tmp_path):
    """No save points: FLUSHALL stops a running save child (as Redis's rdbKillChild does), so
    a crash afterwards cannot load the flushed keys from the child's file."""
    server = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"], NATIVE]).start()
    try:
        client = server.client()
        mset_many(client, 600_000)
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("BGSAVE")
        pipe.info("persistence")
        pipe.flushall()
        _, info, _ = pipe.execute()
        assert info["rdb_bgsave_in_progress"] == 1
        wait_bgsave_done(client)
        assert not (tmp_path / "dump.trdb").exists()
        server.kill()
        server.start()
        assert server.client().dbsize() == 0
    finally:
        server.kill()


def test_sigterm_during_bgsave_kills_the_child_and_saves_the_final_snapshot(tmp_path):
    options = [["save", "3600", "1"], ["appendonly", "no"], NATIVE]
    server = ServerProcess(str(tmp_path), options).start()
    try:
        client = server.client()
        mset_many(client, 300_000)
        assert bgsave(client) is True
        client.set("last", "write")
        assert server.stop() == 0
        assert "DB saved on disk" in server.log()
        assert glob.glob(str(tmp_path / "temp-*.trdb")) == []
        server.start()
        client = server.client()
        assert client.dbsize() == 300_001
        assert client.get("last") == b"write"
    finally:
        server.kill()


def test_dir_and_dbfilename_apply_to_the_next_save(tmp_path):
    # dir and dbfilename are protected configs: CONFIG SET needs enable-protected-configs.
    server = start(tmp_path, ["enable-protected-configs", "yes"])
    try:
        client = server.client()
        client.set("k", "v")
        other = tmp_path / "elsewhere"
        other.mkdir()
        client.config_set("dir", str(other))
        client.config_set("dbfilename", "other.trdb")
        assert client.save() is True
        assert os.path.exists(other / "other.trdb")
        assert not os.path.exists(tmp_path / "dump.trdb")
    finally:
        server.stop()


def test_a_save_child_killed_by_sigkill_fails_the_save_and_keeps_the_old_file(tmp_path):
    server = ServerProcess(str(tmp_path), [["save", "3600", "1"], ["appendonly", "no"], NATIVE]).start()
    try:
        client = server.client()
        client.set("generation", "1")
        assert client.save() is True
        pid = server.process.pid
        # A child that finished before the kill landed proves nothing: try again with twice
        # the data until the kill lands while the child writes.
        for attempt in range(4):
            mset_many(client, 300_000 << attempt, prefix=b"round%d:" % attempt)
            good = (tmp_path / "dump.trdb").read_bytes()
            saves = persistence(client)["rdb_saves"]
            assert bgsave(client) is True
            deadline = time.monotonic() + 20
            children: list[str] = []
            while not children:
                assert time.monotonic() < deadline, "no save child appeared"
                with open(f"/proc/{pid}/task/{pid}/children") as handle:
                    children = handle.read().split()
            os.kill(int(children[0]), signal.SIGKILL)
            wait_bgsave_done(client)
            info = persistence(client)
            if info["rdb_saves"] == saves:
                break
        else:
            raise AssertionError("every save child finished before the kill landed")
        assert info["rdb_last_bgsave_status"] == "err"
        assert (tmp_path / "dump.trdb").read_bytes() == good
        assert "terminated by signal 9" in server.log()
        with pytest.raises(redis.ResponseError, match="^MISCONF"):
            client.set("k", "v")
        assert glob.glob(str(tmp_path / "temp-*.trdb")) == []
    finally:
        server.kill()


def test_clients_see_loading_or_the_whole_dataset_never_a_part(tmp_path):
    """While a snapshot loads, every command that needs the data is answered -LOADING; the
    first real answer already counts every key."""
    count = 300_000
    data = {b"key:%d" % i: b"value:%d" % i for i in range(count)}
    write_snapshot_file(str(tmp_path / "dump.trdb"), [_Db(0, data, {})], lambda value: None, None)
    del data
    server = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"], NATIVE])
    server.start(wait=False)
    try:
        replies = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                reply = raw(server.port, b"DBSIZE")
            except OSError:
                time.sleep(0.005)
                continue
            replies.add(reply)
            if reply.startswith(b":"):
                break
        assert replies <= {b"-LOADING Redis is loading the dataset in memory\r\n",
                           b":%d\r\n" % count}
        assert b":%d\r\n" % count in replies
    finally:
        server.kill()


def test_the_default_snapshot_is_redis_dump_rdb_and_redis_server_loads_it(tmp_path):
    """No dbfilename given: Redis's default name and format, so a backup taken by BGSAVE
    (or SHUTDOWN SAVE) restores into redis-server unchanged."""
    server = ServerThread([["dir", str(tmp_path)], ["appendonly", "no"], ["save", ""]]).start()
    try:
        server.wait_ready()
        client = server.client()
        assert client.config_get("dbfilename") == {"dbfilename": "dump.rdb"}
        client.set("k", "v")
        client.hset("h", mapping={"a": "1"})
        assert client.save() is True
    finally:
        server.stop()
    assert sorted(os.listdir(tmp_path)) == ["dump.rdb"]
    with ReferenceRedis(directory=str(tmp_path)) as ref:
        theirs = redis.Redis(port=ref.port)
        assert theirs.get("k") == b"v" and theirs.hgetall("h") == {b"a": b"1"}


def test_an_old_default_dump_trdb_is_loaded_when_no_dump_rdb_is_there(tmp_path):
    """Upgrading a server that saved under the former default name must not start empty."""
    server = start(tmp_path)  # dump.trdb, the native format
    try:
        server.client().set("kept", "1")
        assert server.client().save() is True
    finally:
        server.stop()
    server = ServerThread([["dir", str(tmp_path)], ["appendonly", "no"], ["save", ""]]).start()
    try:
        server.wait_ready()
        client = server.client()
        assert client.get("kept") == b"1"
        assert client.save() is True  # saves go to the name in force
    finally:
        server.stop()
    assert sorted(os.listdir(tmp_path)) == ["dump.rdb", "dump.trdb"]
