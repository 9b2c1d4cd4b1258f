"""Lua scripting over real sockets: EVAL/EVALSHA/SCRIPT through redis-py and redis-cli, the
clients that depend on them (redis-py's Lock, ``limits``), and what a script's writes do to
the rest of the server (propagation, WATCH, keyspace notifications, MULTI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import redis
from servers import ServerThread, record_propagation, wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("scripting")
    with ServerThread([["save", ""], ["appendonly", "no"], ["dir", str(directory)]]) as running:
        yield running


@pytest.fixture
def r(server):
    client = server.client()
    client.flushall()
    client.script_flush()
    yield client
    client.close()


def test_eval_runs_commands_with_keys_and_args(r):
    assert r.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v") == b"OK"
    assert r.get("k") == b"v"
    assert r.eval("return {KEYS[1], ARGV[1], ARGV[2]}", 1, "a", "b", "c") == [b"a", b"b", b"c"]


def test_evalsha_after_script_load_and_noscript_before(r):
    sha = r.script_load("return redis.call('INCR', KEYS[1])")
    assert r.script_exists(sha, "0" * 40) == [True, False]
    assert r.evalsha(sha, 1, "n") == 1
    assert r.evalsha(sha.upper(), 1, "n") == 2
    r.script_flush()
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha(sha, 1, "n")


def test_register_script_falls_back_to_eval_after_flush(r):
    incr = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert incr(keys=["c"], args=[5]) == 5
    r.script_flush()
    assert incr(keys=["c"], args=[5]) == 10


def test_script_error_names_the_sha_and_line(r):
    with pytest.raises(redis.ResponseError) as info:
        r.eval("local x = 1\nreturn redis.call('nosuchcommand')", 0)
    sha = "1f4bbf27f7dbc5e1a0a6a60b2d2b2cf3a1f5c6b6"
    message = str(info.value)
    assert message.startswith("Unknown Redis command called from script script: ")
    assert message.endswith(", on @user_script:2.")
    assert len(message.split("script: ")[1].split(",")[0]) == len(sha)


def test_redis_py_lock_acquire_extend_release_reacquire(r):
    lock = r.lock("resource", timeout=10)
    assert lock.acquire(blocking=False)
    assert not r.lock("resource", timeout=10).acquire(blocking=False)
    assert lock.extend(5)
    assert 10 < r.pttl("resource") / 1000 <= 15
    assert lock.reacquire()
    assert 5 < r.pttl("resource") / 1000 <= 10
    token = lock.local.token
    lock.release()
    assert r.get("resource") is None
    lock.local.token = token  # the release script must see the lock is no longer ours
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        lock.release()
    other = r.lock("resource", timeout=10)
    assert other.acquire(blocking=False)
    other.release()


@pytest.mark.parametrize("strategy", ["FixedWindowRateLimiter", "MovingWindowRateLimiter",
                                      "SlidingWindowCounterRateLimiter"])
def test_limits_strategies_allow_then_refuse(server, r, strategy):
    limits = pytest.importorskip("limits")
    from limits import strategies

    storage = limits.storage.storage_from_string(f"redis://127.0.0.1:{server.port}")
    limiter = getattr(strategies, strategy)(storage)
    item = limits.parse("3/minute")
    assert [limiter.hit(item, "user") for _ in range(5)] == [True, True, True, False, False]
    assert not limiter.test(item, "user")
    assert limiter.hit(item, "another")
    stats = limiter.get_window_stats(item, "user")
    assert stats.remaining == 0


def test_a_script_with_one_write_propagates_that_write(server, r):
    recorder = record_propagation(server)
    r.eval("redis.call('GET', 'a'); return redis.call('SET', 'a', '1')", 0)
    assert recorder.argvs == [[b"SET", b"a", b"1"]]


def test_a_script_with_several_writes_propagates_them_in_multi_exec(server, r):
    recorder = record_propagation(server)
    r.eval("redis.call('SET', 'a', '1'); redis.call('INCR', 'n'); redis.call('DEL', 'a')", 0)
    assert recorder.argvs == [[b"MULTI"], [b"SET", b"a", b"1"], [b"INCR", b"n"],
                              [b"DEL", b"a"], [b"EXEC"]]


def test_a_script_that_writes_nothing_propagates_nothing(server, r):
    recorder = record_propagation(server)
    r.eval("return redis.call('GET', 'a')", 0)
    assert r.eval("return type(redis.pcall('INCR', 'a', 'b'))", 0) == b"table"
    assert recorder.argvs == []


def test_set_repl_none_keeps_a_write_out_of_the_aof(server, r):
    recorder = record_propagation(server)
    r.eval("redis.set_repl(redis.REPL_NONE); redis.call('SET', 'quiet', '1');"
           "redis.set_repl(redis.REPL_ALL); redis.call('SET', 'loud', '1')", 0)
    assert recorder.argvs == [[b"SET", b"loud", b"1"]]


def test_eval_inside_multi_joins_the_transaction(server, r):
    recorder = record_propagation(server)
    pipe = r.pipeline(transaction=True)
    pipe.set("x", "1")
    pipe.eval("redis.call('INCR', 'x'); return redis.call('INCR', 'x')", 0)
    assert pipe.execute() == [True, 3]
    assert recorder.argvs == [[b"MULTI"], [b"SET", b"x", b"1"], [b"INCR", b"x"],
                              [b"INCR", b"x"], [b"EXEC"]]


def test_a_script_write_aborts_a_watching_transaction(server, r):
    watcher = server.client()
    pipe = watcher.pipeline(transaction=True)
    pipe.watch("w")
    r.eval("redis.call('SET', KEYS[1], 'changed')", 1, "w")
    pipe.multi()
    pipe.set("w", "mine")
    with pytest.raises(redis.WatchError):
        pipe.execute()
    assert r.get("w") == b"changed"
    watcher.close()


def test_script_writes_send_keyspace_notifications(server, r):
    r.config_set("notify-keyspace-events", "KEA")
    try:
        pubsub = r.pubsub()
        pubsub.psubscribe("__keyevent@0__:*")
        assert pubsub.get_message(timeout=2)["type"] == "psubscribe"
        r.eval("redis.call('SET', 'note', '1'); redis.call('INCR', 'note')", 0)
        events = []
        deadline = time.monotonic() + 5
        while len(events) < 2 and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1)
            if message:
                events.append(message["channel"])
        assert events == [b"__keyevent@0__:set", b"__keyevent@0__:incrby"]
        pubsub.close()
    finally:
        r.config_set("notify-keyspace-events", "")


def test_read_only_scripts_refuse_writes(r):
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed from read-only"):
        r.eval_ro("return redis.call('SET', KEYS[1], 'v')", 1, "k")
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed from read-only"):
        r.eval("#!lua flags=no-writes\nreturn redis.call('SET', 'k', 'v')", 0)
    r.set("k", "v")
    assert r.eval_ro("return redis.call('GET', KEYS[1])", 1, "k") == b"v"


def test_scripts_run_as_the_calling_user(server, r):
    r.acl_setuser("limited", enabled=True, nopass=True, keys=["*"], commands=["+@all", "-incr"])
    try:
        limited = server.client(username="limited", password="x")
        with pytest.raises(redis.ResponseError,
                           match="The user executing the script can't run this command"):
            limited.eval("return redis.call('INCR', 'n')", 0)
        assert limited.eval("return redis.call('SET', 'n', '1')", 0) == b"OK"
        assert limited.eval("return redis.acl_check_cmd('INCR', 'n')", 0) is None
        limited.close()
    finally:
        r.acl_deluser("limited")


def test_select_inside_a_script_does_not_change_the_caller_db(r):
    r.eval("redis.call('SELECT', 5); redis.call('SET', 'in5', '1')", 0)
    assert r.get("in5") is None
    r.execute_command("SELECT", 5)
    assert r.get("in5") == b"1"
    r.execute_command("SELECT", 0)


def test_sandbox_hides_os_io_and_python(r):
    for expression in ("os", "io", "debug", "require", "python", "print", "loadfile"):
        with pytest.raises(redis.ResponseError, match="nonexistent global variable"):
            r.eval(f"return type({expression})", 0)
    with pytest.raises(redis.ResponseError, match="not allowed"):
        r.eval("return redis.call.__class__", 0)
    with pytest.raises(redis.ResponseError, match="readonly table"):
        r.eval("redis.call = function() end", 0)
    with pytest.raises(redis.ResponseError, match="readonly table"):
        r.eval("getmetatable('').__index.upper = nil", 0)
    assert r.eval("return getmetatable(redis.call) == nil and getmetatable(cjson.null) == nil",
                  0) == 1
    # Bytecode never loads: it could corrupt the interpreter.
    assert r.eval("return loadstring(string.dump(function() return 1 end)) == nil", 0) == 1
    with pytest.raises(redis.ResponseError, match="unexpected symbol near 'char\\(27\\)'"):
        r.eval("\x1bLuaQ", 0)


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
def test_redis_cli_eval_runs_a_script_file(server, r, tmp_path):
    script = tmp_path / "incr.lua"
    script.write_text("return redis.call('INCRBY', KEYS[1], ARGV[1])\n")
    done = subprocess.run(["redis-cli", "-p", str(server.port), "--eval", str(script), "counter",
                           ",", "7"], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "7"  # not a tty: redis-cli prints the bare reply
    assert r.get("counter") == b"7"


def test_monitor_shows_eval_then_the_commands_it_ran(server, r):
    with server.client().monitor() as monitor:
        r.eval("redis.call('SET', 'mon', 'v'); return redis.call('GET', 'mon')", 0)
        lines = [monitor.next_command() for _ in range(3)]
    assert [line["command"].split()[0] for line in lines] == ["EVAL", "SET", "GET"]
    assert [line["client_type"] for line in lines[1:]] == ["lua", "lua"]


def test_commandstats_count_the_commands_a_script_ran(r):
    r.config_resetstat()
    r.eval("redis.call('SET', 'a', '1'); redis.call('SET', 'b', '2'); redis.pcall('INCR', 'a', 'x')", 0)
    stats = r.info("commandstats")
    assert stats["cmdstat_set"]["calls"] == 2
    assert stats["cmdstat_eval"]["calls"] == 1


def test_plugin_commands_are_callable_from_lua_like_builtins(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), "plugins"))
    options = [["save", ""], ["appendonly", "no"], ["dir", str(tmp_path)],
               ["loadplugin", "trioredis_loadme"]]
    try:
        with ServerThread(options) as running:
            client = running.client()
            assert client.eval("return redis.call('LOADPLUGIN.ECHO', ARGV[1])", 0, "hi") == b"hi"
            assert client.eval("return redis.call('DBSIZE')", 0) == 0
            client.close()
    finally:
        sys.modules.pop("trioredis_loadme", None)


def test_info_counts_cached_scripts_functions_and_libraries(r):
    r.function_flush()
    r.script_load("return 1")
    r.script_load("return 2")
    r.function_load("#!lua name=a\nredis.register_function('f', function() return 1 end)\n"
                    "redis.register_function('g', function() return 2 end)")
    memory = r.info("memory")
    assert (memory["number_of_cached_scripts"], memory["number_of_functions"],
            memory["number_of_libraries"]) == (2, 2, 1)
    r.function_flush()


def test_hostile_scripts_cost_an_error_not_the_server(r):
    # A table nested 100,000 deep is cut (Redis cuts it at its Lua stack limit too).
    reply = r.execute_command("EVAL", "local t = {} for i = 1, 100000 do t = {t} end return t", 0)
    depth = 0
    while isinstance(reply, list):
        reply, depth = reply[0], depth + 1
    assert isinstance(reply, redis.ResponseError) and "reached lua stack limit" in str(reply)
    assert 100 < depth < 100000
    nested = "[" * 5000 + "]" * 5000
    with pytest.raises(redis.ResponseError, match="Found too many nested data structures"):
        r.eval("return cjson.decode(ARGV[1])", 0, nested)
    with pytest.raises(redis.ResponseError):  # Redis: stack overflow in mp_decode_to_lua_array
        r.eval("return cmsgpack.unpack(ARGV[1])", 0, b"\x91" * 5000 + b"\x01")
    with pytest.raises(redis.ResponseError, match="stack overflow"):
        r.eval("local function f() return 1 + f() end return f()", 0)
    with pytest.raises(redis.ResponseError, match="Number of keys can't be greater"):
        r.eval("return 1", 2**62)
    assert r.ping()


def test_a_script_push_serves_a_blocked_client_after_the_script(server, r):
    recorder = record_propagation(server)
    waiter = server.client()
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(waiter.blpop(["queue"], timeout=10)))
    thread.start()
    wait_for(lambda: r.info("clients")["blocked_clients"] == 1, 10, "the BLPOP to block")
    r.eval("redis.call('RPUSH', 'queue', 'a'); redis.call('RPUSH', 'queue', 'b')", 0)
    thread.join(10)
    assert outcome == [(b"queue", b"a")]
    assert r.lrange("queue", 0, -1) == [b"b"]
    argvs = [argv for argv in recorder.argvs if argv[0] != b"SELECT"]
    assert argvs[:4] == [[b"MULTI"], [b"RPUSH", b"queue", b"a"], [b"RPUSH", b"queue", b"b"],
                         [b"EXEC"]]
    assert argvs[4][0].upper() == b"LPOP"
    waiter.close()
