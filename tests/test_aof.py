"""The AOF backend over real sockets: what is appended, what a restart rebuilds, torn tails,
write errors for real (a file-size rlimit), and interop with Debian's redis-server."""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import time

import pytest
import redis
from parity import ReferenceRedis
from redis.backoff import NoBackoff
from redis.retry import Retry
from servers import ServerProcess, ServerThread, wait_for, wait_rewrite_done
from test_check_aof import check_aof_command
from trioredis import encode_command

AOF = "appendonly.aof"


def aof_options(directory, *extra):
    return [["appendonly", "yes"], ["save", ""], ["dir", str(directory)], *extra]


def digest(client) -> bytes:
    return client.execute_command("DEBUG", "DIGEST")


def aof_bytes(directory) -> bytes:
    with open(os.path.join(directory, AOF), "rb") as handle:
        return handle.read()


def commands_in(data: bytes) -> list[list[bytes]]:
    """Parse an AOF into its commands (hiredis, as the loader does)."""
    import hiredis

    reader = hiredis.Reader()
    reader.feed(data)
    commands = []
    while (argv := reader.gets()) is not False:
        commands.append(argv)
    return commands


def test_appended_writes_survive_a_restart_with_the_same_digest(tmp_path):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        for i in range(200):
            r.set(f"key:{i}", f"value:{i}")
        r.incr("counter")
        r.incrby("counter", 41)
        r.append("key:1", "-more")
        r.set("temporary", "x", ex=1000)
        r.delete("key:2")
        r.execute_command("SELECT", 5)
        r.set("in-five", "yes")
        before = digest(r)
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        assert digest(r) == before
        assert r.get("counter") == b"42"
        assert r.get("key:2") is None
        assert 0 < r.ttl("temporary") <= 1000
        r.execute_command("SELECT", 5)
        assert r.get("in-five") == b"yes"


def test_select_is_written_only_when_the_database_changes(tmp_path):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        r.set("a", "1")
        r.set("b", "2")
        r.execute_command("SELECT", 3)
        r.set("c", "3")
        r.set("d", "4")
        other = server.client(db=0)
        other.set("e", "5")
    names = [argv[:2] if argv[0] == b"SELECT" else argv[0]
             for argv in commands_in(aof_bytes(tmp_path))]
    assert names == [[b"SELECT", b"0"], b"SET", b"SET", [b"SELECT", b"3"], b"SET", b"SET",
                     [b"SELECT", b"0"], b"SET"]


def test_relative_expiry_is_written_as_absolute_pexpireat_and_expiry_as_del(tmp_path):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        before_ms = int(time.time() * 1000)
        r.set("session", "token", ex=100)
        r.set("short", "lived", px=50)
        time.sleep(0.2)
        assert r.get("short") is None  # lazy expiry: propagated as DEL
    commands = commands_in(aof_bytes(tmp_path))
    session = [argv for argv in commands if argv[:2] == [b"SET", b"session"]]
    assert len(session) == 1 and session[0][2:4] == [b"token", b"PXAT"]  # as Redis 7.0 writes it
    assert before_ms + 100_000 <= int(session[0][4]) <= int(time.time() * 1000) + 100_000
    assert [b"DEL", b"short"] in commands
    assert not any(b"EX" in argv[3:] or b"PX" in argv[3:] for argv in commands if argv[0] == b"SET")


def test_multi_exec_is_written_as_one_block(tmp_path):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        r.set("before", "1")
        with r.pipeline(transaction=True) as pipe:
            pipe.set("t1", "a").incr("t2").get("t1").set("t3", "c", ex=50)
            pipe.execute()
        r.set("after", "1")
    commands = commands_in(aof_bytes(tmp_path))
    start = commands.index([b"MULTI"])
    end = commands.index([b"EXEC"])
    block = [argv[0] for argv in commands[start + 1:end]]
    assert block == [b"SET", b"INCRBY", b"SET"]
    assert commands[end + 1][:2] == [b"SET", b"after"]


def test_info_persistence_reports_the_aof_fields(tmp_path):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        r.set("k", "v")
        info = r.info("persistence")
        for field in ("aof_enabled", "aof_rewrite_in_progress", "aof_rewrite_scheduled",
                      "aof_last_rewrite_time_sec", "aof_current_rewrite_time_sec",
                      "aof_last_bgrewrite_status", "aof_last_write_status", "aof_current_size",
                      "aof_base_size", "aof_buffer_length", "aof_rewrite_buffer_length",
                      "aof_pending_bio_fsync", "aof_delayed_fsync", "loading"):
            assert field in info, field
        assert info["aof_enabled"] == 1
        assert info["aof_current_size"] == os.path.getsize(tmp_path / AOF)
        assert info["aof_last_write_status"] == "ok"


@pytest.mark.parametrize("policy", ["always", "everysec", "no"])
def test_every_policy_appends_before_replying(tmp_path, policy):
    with ServerThread(aof_options(tmp_path, ["appendfsync", policy])) as server:
        server.wait_ready()
        r = server.client()
        for i in range(20):
            r.set(f"k{i}", i)
            # The reply came back: the write(2) already happened.
            assert f"k{i}".encode() in aof_bytes(tmp_path)


def test_always_group_commit_across_clients_and_a_file_switch_keeps_every_write(tmp_path):
    """``always`` fsyncs in the AOF's own fsync process: many clients writing at once, a
    rewrite switching files under them and a policy change all leave every acknowledged write
    in the AOF, and stopping the server stops the process."""
    import threading

    with ServerThread(aof_options(tmp_path, ["appendfsync", "always"])) as server:
        server.wait_ready()
        r = server.client()
        failures = []

        def writer(number):
            try:
                client = server.client()
                for i in range(150):
                    client.set(f"w{number}:{i}", i)
                    client.rpush(f"list{number}", i)
            except Exception as error:  # pragma: no cover - reported below
                failures.append(error)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        r.bgrewriteaof()
        for thread in threads:
            thread.join()
        wait_rewrite_done(r, timeout=30)
        r.config_set("appendfsync", "everysec")
        r.set("after-everysec", 1)
        r.config_set("appendfsync", "always")
        r.set("after-always", 1)
        assert not failures
        before = digest(r)
        helper = next(b for b in server.server.engine.backends if b.name == "aof")._fsyncer
        assert helper.running and helper.helper_pid
        assert "fsync_helper.py" in open(f"/proc/{helper.helper_pid}/cmdline").read()
    assert not os.path.exists(f"/proc/{helper.helper_pid}")
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        assert digest(r) == before
        assert r.llen("list7") == 150 and r.get("w3:149") == b"149"


def test_waitaof_answers_once_the_writes_are_fsynced(tmp_path):
    with ServerThread(aof_options(tmp_path, ["appendfsync", "everysec"])) as server:
        server.wait_ready()
        r = server.client()
        r.set("k", "v")
        assert r.execute_command("WAITAOF", 1, 0, 0) == [1, 0]
        assert r.execute_command("WAITAOF", 0, 0, 0) == [1, 0]
        with r.pipeline(transaction=True) as pipe:
            pipe.set("k2", "v").execute_command("WAITAOF", 1, 0, 0)
            assert pipe.execute()[1][1] == 0  # answered at once inside EXEC
    with ServerThread([["appendonly", "no"], ["save", ""], ["dir", str(tmp_path)]]) as server:
        server.wait_ready()
        with pytest.raises(redis.ResponseError, match="appendonly is disabled"):
            server.client().execute_command("WAITAOF", 1, 0, 0)


def fsync_process(server):
    return next(b for b in server.server.engine.backends if b.name == "aof")._fsyncer


def test_config_set_appendfsync_always_at_runtime_starts_the_fsync_process(tmp_path):
    with ServerThread(aof_options(tmp_path, ["appendfsync", "everysec"])) as server:
        server.wait_ready()
        r = server.client()
        helper = fsync_process(server)
        assert not helper.started
        r.config_set("appendfsync", "always")
        r.set("first", "1")  # before the process answers, a worker thread fsyncs
        wait_for(lambda: helper.running, timeout=10, what="the fsync process to start")
        for i in range(200):
            r.set(f"k{i}", i)
        assert helper.requested > 0 and not helper.busy
        assert b"k199" in aof_bytes(tmp_path)


def test_a_killed_fsync_process_falls_back_to_a_worker_thread_and_loses_nothing(tmp_path):
    """The fsync process dies (OOM killer, an operator's kill): replies under ``always`` keep
    coming, fsynced by a worker thread, and every acknowledged write is in the AOF."""
    with ServerThread(aof_options(tmp_path, ["appendfsync", "always"])) as server:
        server.wait_ready()
        r = server.client(socket_timeout=20)
        helper = fsync_process(server)
        wait_for(lambda: helper.running, timeout=10, what="the fsync process to start")
        r.set("before", "1")
        os.kill(helper.helper_pid, signal.SIGKILL)
        wait_for(lambda: not helper.running, timeout=10,
                 what="the server to notice the fsync process died")
        for i in range(100):
            r.set(f"after{i}", i)
        before = digest(r)
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        assert digest(server.client()) == before


def test_config_set_appendonly_at_runtime_writes_the_dataset_then_stops(tmp_path):
    with ServerThread([["appendonly", "no"], ["save", ""], ["dir", str(tmp_path)]]) as server:
        server.wait_ready()
        r = server.client()
        for i in range(50):
            r.set(f"k{i}", i)
        assert not (tmp_path / AOF).exists()
        r.config_set("appendonly", "yes")
        deadline = time.monotonic() + 20
        while r.info("persistence")["aof_rewrites"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r.set("after-on", "1")
        before = digest(r)
        r.config_set("appendonly", "no")
        r.set("after-off", "1")
        size = os.path.getsize(tmp_path / AOF)
        r.set("after-off-2", "1")
        assert os.path.getsize(tmp_path / AOF) == size
    assert b"after-off" not in aof_bytes(tmp_path)
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        assert digest(server.client()) == before


def test_debug_reload_rebuilds_the_dataset_from_the_aof(tmp_path):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        for i in range(100):
            r.set(f"k{i}", i)
        before = digest(r)
        assert r.execute_command("DEBUG", "RELOAD") in (b"OK", True)
        assert digest(r) == before


def test_debug_loadaof_reloads_the_aof_like_redis(tmp_path):
    """DEBUG LOADAOF against a Redis with appendonly yes: the same replies and the same
    dataset (DEBUG DIGEST) after it.  DEBUG POPULATE's keys are never written to the AOF, so
    they are gone after a real reload from the file."""
    script = [("SET", "a", "1"), ("RPUSH", "l", "x", "y"), ("HSET", "h", "f", "v"),
              ("DEBUG", "POPULATE", "5"), ("DBSIZE",), ("DEBUG", "LOADAOF"), ("DBSIZE",),
              ("GET", "a"), ("LRANGE", "l", "0", "-1"),
              ("INCR", "a"), ("DEBUG", "LOADAOF", "extra"), ("GET", "a"), ("DBSIZE",),
              ("DEBUG", "DIGEST")]
    (tmp_path / "ours").mkdir()
    with ServerThread(aof_options(tmp_path / "ours")) as server, ReferenceRedis(
            "--appendonly", "yes") as reference:
        server.wait_ready()
        mine, theirs = server.client(), reference.client()
        for argv in script:
            assert mine.execute_command(*argv) == theirs.execute_command(*argv), argv


def test_debug_loadaof_with_the_aof_off_is_an_error_not_an_exit(tmp_path):
    """Redis 7.0.15 exits when DEBUG LOADAOF finds no AOF; here it is an error reply and the
    dataset stays."""
    with ServerThread([["appendonly", "no"], ["save", ""], ["dir", str(tmp_path)]]) as server:
        r = server.client()
        r.set("kept", "1")
        with pytest.raises(redis.ResponseError, match="no persistence backend"):
            r.execute_command("DEBUG", "LOADAOF")
        assert r.get("kept") == b"1"


# --- torn tails and damage ---------------------------------------------------------------


def _write_file(path, commands):
    with open(path, "wb") as handle:
        for argv in commands:
            handle.write(encode_command(argv))


def test_torn_last_command_loads_the_rest_and_truncates_at_random_offsets(tmp_path):
    rng = random.Random(1234)
    whole = [[b"SELECT", b"0"]] + [[b"SET", b"k%d" % i, b"v%d" % i] for i in range(20)]
    last = [b"SET", b"torn", b"x" * 100]
    prefix = b"".join(encode_command(argv) for argv in whole)
    tail = encode_command(last)
    for cut in sorted(rng.sample(range(1, len(tail)), 5)):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / AOF).write_bytes(prefix + tail[:cut])
        with ServerThread(aof_options(directory)) as server:
            server.wait_ready()
            r = server.client()
            assert r.dbsize() == 20
            assert r.get("torn") is None
            assert (directory / AOF).read_bytes() == prefix
            r.set("after", "recovery")
        with ServerThread(aof_options(directory)) as server:
            server.wait_ready()
            r = server.client()
            assert r.get("after") == b"recovery"
            assert r.dbsize() == 21


def test_cut_inside_multi_drops_the_whole_transaction_and_later_writes_survive(tmp_path):
    rng = random.Random(99)
    whole = [[b"SELECT", b"0"], [b"SET", b"base", b"1"]]
    block = [[b"MULTI"], [b"SET", b"t1", b"a"], [b"INCR", b"t2"], [b"SET", b"t3", b"c"],
             [b"EXEC"]]
    prefix = b"".join(encode_command(argv) for argv in whole)
    block_bytes = b"".join(encode_command(argv) for argv in block)
    for cut in sorted(rng.sample(range(1, len(block_bytes)), 6)):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / AOF).write_bytes(prefix + block_bytes[:cut])
        with ServerThread(aof_options(directory)) as server:
            server.wait_ready()
            r = server.client()
            assert r.keys("t*") == []
            assert r.get("base") == b"1"
            assert (directory / AOF).read_bytes() == prefix  # cut before MULTI
            r.set("after", "recovery")
        with ServerThread(aof_options(directory)) as server:
            server.wait_ready()
            r = server.client()
            assert r.keys("t*") == []
            assert r.get("after") == b"recovery"


def test_writes_after_a_torn_multi_recovery_survive_a_kill(tmp_path, spawned):
    whole = encode_command([b"SELECT", b"0"]) + encode_command([b"SET", b"base", b"1"])
    block = b"".join(encode_command(argv) for argv in ([b"MULTI"], [b"SET", b"t1", b"a"],
                                                       [b"SET", b"t2", b"b"], [b"EXEC"]))
    (tmp_path / AOF).write_bytes(whole + block[:len(block) - 3])
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""]])
    spawned.append(server)
    server.start()
    try:
        r = server.client()
        assert r.get("base") == b"1"
        r.set("after", "recovery")
        with r.pipeline(transaction=True) as pipe:
            pipe.set("t1", "new").set("t2", "new")
            pipe.execute()
        server.kill()
        server.start()
        r = server.client()
        assert r.mget("base", "after", "t1", "t2") == [b"1", b"recovery", b"new", b"new"]
    finally:
        server.stop()


def test_aof_load_truncated_no_refuses_and_check_aof_fix_repairs_to_the_same_cut(tmp_path, spawned):
    commands = [[b"SELECT", b"0"]] + [[b"SET", b"k%d" % i, b"v"] for i in range(10)]
    whole = b"".join(encode_command(argv) for argv in commands)
    torn = whole + encode_command([b"SET", b"half", b"written"])[:17]
    (tmp_path / AOF).write_bytes(torn)
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""],
                                           ["aof-load-truncated", "no"]])
    spawned.append(server)
    server.start(wait=False)
    assert server.process.wait(30) != 0
    log = server.log()
    assert "Unexpected end of file reading the append only file" in log
    assert "trioredis-check-aof --fix" in log
    assert (tmp_path / AOF).read_bytes() == torn  # refused: untouched
    fixed = subprocess.run([*check_aof_command(), "--fix", "-y", str(tmp_path / AOF)],
                           capture_output=True, text=True, timeout=30)
    assert fixed.returncode == 0, fixed.stdout
    assert f"removed {len(torn) - len(whole)} bytes" in fixed.stdout
    assert (tmp_path / AOF).read_bytes() == whole
    server.start()
    try:
        r = server.client()
        assert r.dbsize() == 10
    finally:
        server.stop()


def test_damage_in_the_middle_refuses_to_start_naming_the_offset_and_the_fix(tmp_path, spawned):
    good = encode_command([b"SELECT", b"0"]) + encode_command([b"SET", b"a", b"1"])
    bad = good + b"GARBAGE\r\n" + encode_command([b"SET", b"b", b"2"])
    (tmp_path / AOF).write_bytes(bad)
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""]])
    spawned.append(server)
    server.start(wait=False)
    assert server.process.wait(30) != 0
    log = server.log()
    assert f"at offset {len(good)}" in log
    assert f"trioredis-check-aof --fix {tmp_path / AOF}" in log
    assert (tmp_path / AOF).read_bytes() == bad


def test_clients_connecting_during_a_long_load_get_loading(tmp_path, spawned):
    keys = 200_000
    with open(tmp_path / AOF, "wb") as handle:
        handle.write(encode_command([b"SELECT", b"0"]))
        handle.write(b"".join(encode_command([b"SET", b"key:%d" % i, b"value:%d" % i])
                              for i in range(keys)))
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""]])
    spawned.append(server)
    server.start(wait=False)
    try:
        # A raw socket: redis-py retries LOADING replies by itself (they are a ConnectionError).
        replies = []
        info_during_load = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                    sock.sendall(b"GET key:0\r\n")
                    reply = sock.recv(4096)
            except OSError:
                time.sleep(0.005)
                continue
            replies.append(reply)
            if not reply.startswith(b"-LOADING"):
                break
            if not info_during_load:
                with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                    sock.sendall(b"INFO persistence\r\n")
                    info_during_load = sock.recv(65536)
        assert replies[0] == b"-LOADING Redis is loading the dataset in memory\r\n"
        assert info_during_load and b"loading:1\r\n" in info_during_load
        assert b"loading_loaded_perc:" in info_during_load
        assert b"loading_eta_seconds:" in info_during_load
        assert replies[-1] == b"$7\r\nvalue:0\r\n"
        assert server.client().dbsize() == keys
    finally:
        server.stop()


# --- write errors, for real --------------------------------------------------------------


def _limit_file_size(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return preexec


def test_write_error_under_everysec_refuses_writes_with_misconf_until_a_retry_succeeds(
        tmp_path, spawned):
    limit = 64 * 1024
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""],
                                           ["appendfsync", "everysec"]],
                           preexec_fn=_limit_file_size(limit))
    spawned.append(server)
    server.start()
    try:
        r = server.client()
        value = "x" * 1000
        # The write that fails is not acknowledged: its reply waits for the retry (better
        # than Redis, which acknowledges it and loses it on a kill -9 before the retry).
        writer = server.client(socket_timeout=1, retry=Retry(NoBackoff(), 0),
                               retry_on_error=[])  # a timed-out SET is not sent again
        held = None
        for i in range(200):
            try:
                writer.set(f"k{i}", value)
            except redis.TimeoutError:
                held = i
                break
        assert held is not None
        with pytest.raises(redis.ResponseError) as refused:
            r.set("refused", value)
        misconf = str(refused.value)
        assert misconf.startswith("MISCONF Errors writing to the AOF file: ")
        assert "File too large" in misconf
        assert r.info("persistence")["aof_last_write_status"] == "err"
        assert r.get("k0") == value.encode()  # reads still work
        # Lift the limit: the next retry writes the buffered tail and writes are accepted.
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        deadline = time.monotonic() + 10
        while r.info("persistence")["aof_last_write_status"] != "ok":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert r.get(f"k{held}") == value.encode()
        assert not r.exists("refused")
        r.set("after", "ok")
        before = digest(r)
    finally:
        server.kill()
    server.start()
    try:
        assert digest(server.client()) == before
    finally:
        server.stop()


def test_write_error_under_always_stops_the_server(tmp_path, spawned):
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""],
                                           ["appendfsync", "always"]],
                           preexec_fn=_limit_file_size(16 * 1024))
    spawned.append(server)
    server.start()
    r = server.client(socket_timeout=10)
    value = "x" * 1000
    acked = 0
    with pytest.raises(redis.ConnectionError):
        for i in range(100):
            r.set(f"k{i}", value)
            acked += 1
    assert server.process.wait(30) != 0
    assert ("Can't recover from AOF write error when the AOF fsync policy is 'always'"
            in server.log())
    # Every acknowledged write is in the file.
    keys = {argv[1] for argv in commands_in(aof_bytes(tmp_path)) if argv[0] == b"SET"}
    assert {b"k%d" % i for i in range(acked)} <= keys


# --- interop with Debian's redis --------------------------------------------------------


def _redis_server():
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("redis-server is not installed")
    return path


def _populate(r):
    r.set("string", "hello")
    r.set("expiring", "soon", ex=3000)
    r.incr("counter")
    r.rpush("list", "a", "b", "c", *[f"item{i}" for i in range(100)])
    r.hset("hash", mapping={"f1": "v1", "f2": "v2"})
    r.sadd("set", "x", "y", "z")
    r.zadd("zset", {"m1": 1.5, "m2": -2})
    with r.pipeline(transaction=True) as pipe:
        pipe.set("in-tx", "1").incrby("counter", 10)
        pipe.execute()
    r.execute_command("SELECT", 2)
    r.set("db2-key", "v")
    r.execute_command("SELECT", 0)


def _dump(r) -> dict:
    """Every key of databases 0-3: type, value, expiry (EXPIRETIME: absolute, so two servers
    read at different moments agree)."""
    result = {}
    for db in range(4):
        r.execute_command("SELECT", db)
        for key in r.keys("*"):
            kind = r.type(key)
            if kind == b"string":
                value = r.get(key)
            elif kind == b"list":
                value = r.lrange(key, 0, -1)
            elif kind == b"hash":
                value = r.hgetall(key)
            elif kind == b"set":
                value = sorted(r.smembers(key))
            elif kind == b"zset":
                value = r.zrange(key, 0, -1, withscores=True)
            else:
                value = None
            result[(db, key)] = (kind, value, r.execute_command("EXPIRETIME", key))
    r.execute_command("SELECT", 0)
    return result


def debian_redis(directory, *options: str) -> ReferenceRedis:
    """Debian's redis-server on ``directory`` (skips when it is not installed)."""
    _redis_server()
    return ReferenceRedis(*options, directory=directory)


def test_debian_redis_check_aof_accepts_our_file(tmp_path):
    if shutil.which("redis-check-aof") is None:
        pytest.skip("redis-check-aof is not installed")
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        _populate(server.client())
    result = subprocess.run(["redis-check-aof", str(tmp_path / AOF)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stdout
    assert "is valid" in result.stdout


def test_debian_redis_server_loads_our_aof_with_the_same_data(tmp_path):
    ours = tmp_path / "ours"
    ours.mkdir()
    with ServerThread(aof_options(ours)) as server:
        server.wait_ready()
        r = server.client()
        _populate(r)
        expected = _dump(r)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    shutil.copy(ours / AOF, theirs / "ours.aof")
    # Redis 7 finds an old-style single AOF named appendfilename in dir and upgrades it to
    # its multi-part layout (appenddirname/ with a manifest) on start-up.
    redis_server = debian_redis(theirs, "--appendonly", "yes", "--appendfilename", "ours.aof")
    try:
        assert _dump(redis_server.client()) == expected
    finally:
        redis_server.stop()
    assert (theirs / "appendonlydir").is_dir()


def test_we_load_an_aof_written_by_debian_redis_server(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    redis_server = debian_redis(theirs, "--appendonly", "yes", "--aof-use-rdb-preamble", "no",
                               "--appendfsync", "always")
    try:
        r = redis_server.client()
        r.set("seed", "before-rewrite")
        r.bgrewriteaof()
        wait_rewrite_done(r, timeout=20)
        _populate(r)
        expected = _dump(r)
    finally:
        redis_server.stop()
    # Redis 7's multi-part AOF: the base file then the incremental files, in manifest order.
    aof_dir = theirs / "appendonlydir"
    manifest = (aof_dir / "appendonly.aof.manifest").read_text().split("\n")
    parts = [line.split()[1] for line in manifest if line.strip()]
    base = [p for p, line in zip(parts, manifest, strict=False) if " type b" in line]
    incr = [p for p, line in zip(parts, manifest, strict=False) if " type i" in line]
    ours = tmp_path / "ours"
    ours.mkdir()
    with open(ours / AOF, "wb") as out:
        for name in base + incr:
            out.write((aof_dir / name).read_bytes())
    with ServerThread(aof_options(ours)) as server:
        server.wait_ready()
        assert _dump(server.client()) == expected


def test_we_import_a_redis7_multi_part_aof_directory_then_keep_our_own_file(tmp_path):
    redis_server = debian_redis(tmp_path, "--appendonly", "yes", "--aof-use-rdb-preamble", "no")
    try:
        r = redis_server.client()
        r.set("seed", "in-the-base")
        r.bgrewriteaof()
        wait_rewrite_done(r, timeout=20)
        _populate(r)  # these land in the incremental file
        expected = _dump(r)
    finally:
        redis_server.stop()
    assert not (tmp_path / AOF).exists()
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        assert _dump(r) == expected
        deadline = time.monotonic() + 20
        while r.info("persistence")["aof_rewrites"] < 1:  # our own file, from the dataset
            assert time.monotonic() < deadline
            time.sleep(0.05)
    shutil.rmtree(tmp_path / "appendonlydir")
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        assert _dump(server.client()) == expected


@pytest.mark.parametrize("dirname", ["appendonlydir", "custom-aof-dir"])
def test_we_import_a_redis7_aof_whose_base_is_an_rdb(tmp_path, dirname):
    """Redis 7's default (aof-use-rdb-preamble yes): the base file is an RDB; the keys of
    every type, expiries, a function library and the writes after the rewrite (in the
    incremental file) all arrive."""
    redis_server = debian_redis(tmp_path, "--appendonly", "yes", "--appenddirname", dirname)
    try:
        r = redis_server.client()
        _populate(r)
        r.xadd("stream", {"f": "v"}, id="1-1")
        r.pfadd("hll", "a", "b", "c")
        r.set("gone", "x", px=1)  # expired by the time we load: not loaded
        r.function_load("#!lua name=lib\nredis.register_function('one', function() return 1 end)")
        r.bgrewriteaof()
        wait_rewrite_done(r, timeout=20)
        r.set("after-rewrite", "in-the-incremental-file")
        r.hset("hash", "f3", "v3")
        expected = _dump(r)
    finally:
        redis_server.stop()
    directory = tmp_path / dirname
    base = [p.name for p in directory.iterdir() if ".base." in p.name]
    assert base and base[0].endswith(".rdb")  # the case this test is about
    with ServerThread(aof_options(tmp_path, ["appenddirname", dirname])) as server:
        server.wait_ready()
        r = server.client()
        assert _dump(r) == expected
        assert r.fcall("one", 0) == 1
        assert r.xrange("stream") == [(b"1-1", {b"f": b"v"})]
        assert r.pfcount("hll") == 3
        assert r.exists("gone") == 0


def test_a_damaged_redis7_rdb_base_stops_start_up_and_names_the_checker(tmp_path, spawned):
    redis_server = debian_redis(tmp_path, "--appendonly", "yes")  # preamble yes: the default
    try:
        client = redis_server.client()
        client.set("k", "v" * 100)
        client.bgrewriteaof()
        wait_rewrite_done(client, timeout=20)
    finally:
        redis_server.stop()
    base = next(p for p in (tmp_path / "appendonlydir").iterdir() if ".base." in p.name)
    data = bytearray(base.read_bytes())
    data[len(data) // 2] ^= 0xFF
    base.write_bytes(bytes(data))
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""]])
    spawned.append(server)
    server.start(wait=False)
    assert server.process.wait(30) != 0
    assert "redis-check-rdb" in server.log()


# --- Redis 4-6's single AOF with an RDB preamble -------------------------------------------


def _redis6_style_aof(directory, before, after) -> tuple[bytes, dict, dict[bytes, bytes]]:
    """A single-file AOF laid out byte for byte as Redis 4-6 write it with
    ``aof-use-rdb-preamble yes`` (an RDB, then commands), made by Debian's redis-server 7.0.15:
    ``before(r)`` runs, a rewrite makes the RDB base, ``after(r)`` lands in the incremental
    file, and the base and incremental files are concatenated (Redis 7 only split the single
    file in two).  Returns (the file, the dataset as :func:`_dump` reads it, the DUMP payload
    of every key of database 0: byte for byte, streams and their groups included)."""
    redis_server = debian_redis(directory, "--appendonly", "yes", "--aof-use-rdb-preamble",
                                "yes")
    try:
        r = redis_server.client()
        before(r)
        r.bgrewriteaof()
        wait_rewrite_done(r, timeout=20)
        after(r)
        expected = _dump(r)
        digests = _payloads(r, sorted(r.keys("*")))
    finally:
        redis_server.stop()
    aof_dir = directory / "appendonlydir"
    entries = [line.split() for line in
               (aof_dir / "appendonly.aof.manifest").read_text().splitlines() if line.strip()]
    names = ([e[1] for e in entries if e[5] == "b"] + [e[1] for e in entries if e[5] == "i"])
    assert names[0].endswith(".rdb")  # the case these tests are about
    data = b"".join((aof_dir / name).read_bytes() for name in names)
    shutil.rmtree(aof_dir)
    return data, expected, digests


def _rich_dataset(r) -> None:
    _populate(r)
    r.xadd("stream", {"f": "v"}, id="1-1")
    r.xadd("stream", {"g": "w"}, id="2-5")
    r.xgroup_create("stream", "group", id="0")
    r.xreadgroup("group", "consumer", {"stream": ">"}, count=1)
    r.pfadd("hll", "a", "b", "c")
    r.set("gone", "x", px=1)  # expired by the time we load: not loaded
    r.function_load("#!lua name=lib\nredis.register_function('one', function() return 1 end)")


def _writes_after_the_rewrite(r) -> None:
    r.set("after-rewrite", "in-the-command-tail")
    r.hset("hash", "f3", "v3")
    r.xadd("stream", {"h": "x"}, id="3-0")
    r.expire("string", 5000)


def _payloads(r, keys) -> dict[bytes, bytes]:
    """DUMP of each key but sets (a set of strings is a hash table: its members' order is
    each server's own; :func:`_dump` compares them sorted).  Not DEBUG DIGEST-VALUE:
    trioredis's digests are its own, not Redis's; DUMP's RDB payloads are byte-exact."""
    return {key: r.dump(key) for key in keys if r.type(key) != b"set"}


def test_we_load_a_redis6_single_aof_with_an_rdb_preamble_then_append_and_rewrite(tmp_path):
    """Every type (streams with a consumer group), expiries, a function library and the
    commands after the preamble arrive, each key's DUMP equal to redis-server's; appends
    continue on that file, and the next rewrite makes it plain commands."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    data, expected, digests = _redis6_style_aof(theirs, _rich_dataset, _writes_after_the_rewrite)
    assert data.startswith(b"REDIS00") and b"*3\r\n$3\r\nSET\r\n" in data
    (tmp_path / AOF).write_bytes(data)
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        assert _dump(r) == expected
        assert _payloads(r, sorted(digests)) == digests
        assert r.fcall("one", 0) == 1
        assert r.exists("gone") == 0
        assert r.xinfo_groups("stream")[0]["pending"] == 1
        r.set("appended", "after-load")
    appended = aof_bytes(tmp_path)
    assert appended.startswith(data)  # appended to, as Redis 4-6 do
    last = commands_in(appended[len(data):])[-1]
    assert [last[0].lower(), *last[1:]] == [b"set", b"appended", b"after-load"]
    expected[(0, b"appended")] = (b"string", b"after-load", -1)
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        assert _dump(r) == expected
        r.bgrewriteaof()
        wait_rewrite_done(r)
    assert not aof_bytes(tmp_path).startswith(b"REDIS")  # plain commands from now on
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        assert _dump(r) == expected
        # The stream is rebuilt by commands now: its consumer's seen-time is the load's, as
        # after Redis's own rewrite; everything else is compared byte for byte.
        stream = digests.pop(b"stream")
        assert _payloads(r, sorted(digests)) == digests
        assert r.dump("stream")[:-40] == stream[:-40]
        assert r.xpending("stream", "group")["pending"] == 1


def test_a_preamble_alone_loads_and_debug_reload_reads_it_again(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    data, expected, _ = _redis6_style_aof(theirs, _populate, lambda r: None)
    (tmp_path / AOF).write_bytes(data)
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        assert _dump(r) == expected
        r.set("appended", "1")
        expected[(0, b"appended")] = (b"string", b"1", -1)
        assert r.execute_command("DEBUG", "RELOAD") == b"OK"
        assert _dump(r) == expected


def test_a_torn_tail_after_a_preamble_is_cut_at_the_right_byte(tmp_path, spawned):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    data, expected, _ = _redis6_style_aof(theirs, _populate, _writes_after_the_rewrite)
    torn = encode_command([b"SET", b"torn", b"never-acknowledged"])
    for cut in (1, len(torn) // 2, len(torn) - 1):
        (tmp_path / AOF).write_bytes(data + torn[:cut])
        with ServerThread(aof_options(tmp_path)) as server:
            server.wait_ready()
            assert _dump(server.client()) == expected
        assert aof_bytes(tmp_path) == data
    # aof-load-truncated no: refused, and the file is left as it is.
    (tmp_path / AOF).write_bytes(data + torn[:5])
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""],
                                           ["aof-load-truncated", "no"]])
    spawned.append(server)
    server.start(wait=False)
    assert server.process.wait(30) != 0
    assert f"valid up to offset {len(data)} of {len(data) + 5}" in server.log()
    assert aof_bytes(tmp_path) == data + torn[:5]


def test_damage_in_the_tail_after_a_preamble_names_the_file_offset(tmp_path, spawned):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    data, _, _ = _redis6_style_aof(theirs, _populate, _writes_after_the_rewrite)
    (tmp_path / AOF).write_bytes(data + b"*1\r\n$4\r\nPING\r\n" + b"garbage\r\n")
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""]])
    spawned.append(server)
    server.start(wait=False)
    assert server.process.wait(30) != 0
    assert f"at offset {len(data) + 14}" in server.log()


@pytest.mark.parametrize("where", ["crc", "record", "truncated"])
def test_a_damaged_preamble_stops_start_up_and_names_the_checkers(tmp_path, spawned, where):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    data, _, _ = _redis6_style_aof(theirs, _populate, _writes_after_the_rewrite)
    preamble = data.index(b"*2\r\n$6\r\nSELECT")  # the first command after the RDB
    damaged = bytearray(data)
    if where == "crc":
        damaged[preamble - 3] ^= 0xFF  # inside the CRC-64 itself
    elif where == "record":
        damaged[preamble // 2] ^= 0xFF
    else:
        damaged = damaged[:preamble // 2]
    (tmp_path / AOF).write_bytes(bytes(damaged))
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""]])
    spawned.append(server)
    server.start(wait=False)
    assert server.process.wait(30) != 0
    log = server.log()
    assert "redis-check-rdb" in log and "redis-check-aof" in log
    assert aof_bytes(tmp_path) == bytes(damaged)  # never "repaired" by start-up


def _random_writes(rng: random.Random, count: int) -> list[list[bytes]]:
    """A seeded stream of writes over a few keys of each type (no MULTI: Redis 7.0 cuts a torn
    transaction where we drop it whole, see loading.py)."""
    commands: list[list[bytes]] = [[b"SELECT", b"0"]]
    for _ in range(count):
        key = b"%d" % rng.randrange(8)
        value = b"v" * rng.randrange(0, 70)
        commands.append(rng.choice([
            [b"SET", b"s" + key, value],
            [b"APPEND", b"s" + key, value],
            [b"INCRBY", b"n" + key, b"%d" % rng.randrange(-50, 50)],
            [b"RPUSH", b"l" + key, value, b"x"],
            [b"HSET", b"h" + key, b"f%d" % rng.randrange(5), value],
            [b"SADD", b"z" + key, b"m%d" % rng.randrange(9)],
            [b"DEL", b"s" + key],
            [b"SELECT", b"%d" % rng.randrange(3)],
        ]))
    return commands


def test_differential_random_tails_after_a_preamble_cut_anywhere_load_as_redis_loads_them(
        tmp_path):
    """Same file to both servers: a preamble by redis-server, a seeded random command tail, cut
    at a random byte (aof-load-truncated yes); redis-server 7.0.15 and trioredis then hold the
    same dataset."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    preamble, _, _ = _redis6_style_aof(theirs, _populate, lambda r: None)
    rounds = 12
    for seed in range(rounds):
        rng = random.Random(seed)
        tail = b"".join(encode_command(argv) for argv in _random_writes(rng, 200))
        data = preamble + tail[:rng.randrange(len(tail) + 1)]
        for side in ("ref", "ours"):
            shutil.rmtree(tmp_path / side, ignore_errors=True)
            (tmp_path / side).mkdir()
            (tmp_path / side / AOF).write_bytes(data)
        reference = debian_redis(tmp_path / "ref", "--appendonly", "yes",
                                 "--aof-load-truncated", "yes")
        try:
            expected = _dump(reference.client())
        finally:
            reference.stop()
        assert (0, b"string") in expected  # redis-server did load the preamble
        with ServerThread(aof_options(tmp_path / "ours")) as server:
            server.wait_ready()
            assert _dump(server.client()) == expected, f"seed {seed}"
