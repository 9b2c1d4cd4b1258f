"""Scripts and functions across restarts: the AOF holds a script's effects (never EVAL), a
script is all-or-none after kill -9, and function libraries survive a restart, an AOF
rewrite, a snapshot and DEBUG RELOAD, in every mode."""

from __future__ import annotations

import os
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from servers import ServerProcess, wait_for, wait_rewrite_done

LIBRARY = (
    "#!lua name=counters\n"
    "redis.register_function('bump', function(keys, args)\n"
    "  return redis.call('INCRBY', keys[1], args[1])\n"
    "end)\n"
    "redis.register_function{function_name='peek', callback=function(keys)\n"
    "  return redis.call('GET', keys[1])\n"
    "end, flags={'no-writes'}}\n"
)


def _files(directory) -> bytes:
    """Every persistence file of a server directory, concatenated."""
    data = b""
    for root, _dirs, names in os.walk(directory):
        for name in names:
            if name != "server.log":
                with open(os.path.join(root, name), "rb") as handle:
                    data += handle.read()
    return data


def test_functions_and_script_effects_survive_a_restart_with_the_aof_only(tmp_path):
    options = [["appendonly", "yes"], ["save", ""], ["appendfsync", "always"]]
    with ServerProcess(str(tmp_path), options) as server:
        client = server.client()
        assert client.function_load(LIBRARY) == b"counters"
        assert client.fcall("bump", 1, "n", 5) == 5
        client.eval("redis.call('SET', 'a', '1'); redis.call('RPUSH', 'l', 'x', 'y')", 0)
        files = _files(tmp_path)
        assert b"FUNCTION" in files and b"EVAL" not in files and b"FCALL" not in files
        server.kill()
        server.start()
        client = server.client()
        assert client.get("n") == b"5" and client.get("a") == b"1"
        assert client.lrange("l", 0, -1) == [b"x", b"y"]
        assert client.fcall("bump", 1, "n", 1) == 6
        # After a rewrite the base file carries the library.
        client.bgrewriteaof()
        wait_rewrite_done(client)
        server.kill()
        server.start()
        client = server.client()
        assert client.fcall_ro("peek", 1, "n") == b"6"
        assert client.function_delete("counters")
        server.kill()
        server.start()
        assert server.client().function_list() == []


def test_functions_survive_a_restart_with_the_snapshot_only(tmp_path):
    options = [["appendonly", "no"], ["save", ""]]
    with ServerProcess(str(tmp_path), options) as server:
        client = server.client()
        client.function_load(LIBRARY)
        client.set("n", "41")
        client.save()
        server.stop()
        server.start()
        client = server.client()
        assert client.fcall("bump", 1, "n", 1) == 42
        assert [entry[1] for entry in client.function_list()] == [b"counters"]


@pytest.mark.parametrize("mode", ["aof", "snapshot"])
def test_debug_reload_keeps_the_libraries(tmp_path, mode):
    options = ([["appendonly", "yes"], ["save", ""]] if mode == "aof"
               else [["appendonly", "no"], ["save", ""]])
    with ServerProcess(str(tmp_path), options) as server:
        client = server.client()
        client.function_load(LIBRARY)
        client.function_load("#!lua name=other\nredis.register_function('hello', function() return 'hi' end)")
        client.function_delete("other")
        client.fcall("bump", 1, "n", 3)
        assert client.execute_command("DEBUG", "RELOAD") == b"OK"
        assert client.fcall("bump", 1, "n", 1) == 4
        assert [entry[1] for entry in client.function_list()] == [b"counters"]


def test_function_dump_and_restore_round_trip(tmp_path):
    with ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""]]) as server:
        client = server.client()
        client.function_load(LIBRARY)
        payload = client.function_dump()
        client.function_flush()
        assert client.function_list() == []
        assert client.function_restore(payload)
        with pytest.raises(redis.ResponseError, match="already exists"):
            client.function_restore(payload)
        assert client.function_restore(payload, "REPLACE")
        assert client.function_restore(payload, "FLUSH")
        server.kill()
        server.start()
        assert server.client().fcall("bump", 1, "m", 7) == 7


def test_a_script_killed_mid_way_by_kill_9_leaves_none_of_its_writes(tmp_path):
    options = [["appendonly", "yes"], ["save", ""], ["appendfsync", "always"],
               ["busy-reply-threshold", "100"]]
    with ServerProcess(str(tmp_path), options) as server:
        client = server.client()
        client.set("before", "1")
        # No retry: redis-py would send the endless script again to the restarted server.
        runner = server.client(retry=Retry(NoBackoff(), 0))
        thread = threading.Thread(target=lambda: _ignore(lambda: runner.eval(
            "for i = 1, 500 do redis.call('SET', 'k' .. i, i) end while true do end", 0)),
            daemon=True)
        thread.start()

        def busy() -> bool:
            try:
                client.ping()
            except redis.ResponseError:
                return True
            return False

        wait_for(busy, 10, "the script to be busy")
        server.kill()
        server.start()
        client = server.client()
        assert client.get("before") == b"1"
        assert client.dbsize() == 1  # none of the script's 500 writes
        # A script that ends is all there after kill -9.
        client.eval("for i = 1, 500 do redis.call('SET', 'k' .. i, i) end", 0)
        server.kill()
        server.start()
        assert server.client().dbsize() == 501
        thread.join(5)


def _ignore(call) -> None:
    try:
        call()
    except (redis.ConnectionError, redis.ResponseError):
        pass


def test_the_aof_wraps_a_multi_write_script_in_multi_exec(tmp_path):
    with ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""]]) as server:
        client = server.client()
        client.eval("redis.call('SET', 'x', '1'); redis.call('SET', 'y', '2')", 0)
        client.eval("redis.call('SET', 'z', '3')", 0)
        time.sleep(1.5)  # everysec
        files = _files(tmp_path)
        assert b"*1\r\n$5\r\nMULTI\r\n" in files
        assert files.index(b"MULTI") < files.index(b"$1\r\ny\r\n") < files.index(b"EXEC")
        assert files.count(b"MULTI") == 1


def test_scripts_and_function_loads_are_refused_writes_after_a_failed_save(tmp_path):
    """MISCONF (a BGSAVE failed: a directory sits where the snapshot goes): a script's write
    is refused inside it, a script declared writing is refused before it runs, FUNCTION LOAD
    is refused; reads, no-writes scripts and FCALL_RO still run."""
    with ServerProcess(str(tmp_path), [["save", "3600 1"], ["appendonly", "no"]]) as server:
        client = server.client()
        client.function_load(LIBRARY)
        client.set("n", "1")
        os.mkdir(tmp_path / "dump.rdb")
        client.bgsave()
        wait_for(lambda: client.info("persistence")["rdb_last_bgsave_status"] == "err", 30,
                 "the BGSAVE to fail")
        with pytest.raises(redis.ResponseError, match=r"^MISCONF .* script: \w{40}, on @user_script:1\.$"):
            client.eval("return redis.call('SET', 'a', '1')", 0)
        with pytest.raises(redis.ResponseError, match="^MISCONF"):
            client.eval("#!lua\nreturn 1", 0)
        with pytest.raises(redis.ResponseError, match="^MISCONF"):
            client.function_load(LIBRARY.replace("counters", "other").replace("bump", "b2")
                                 .replace("peek", "p2"))
        assert client.eval("return redis.call('GET', 'n')", 0) == b"1"
        assert client.eval("#!lua flags=no-writes\nreturn redis.call('GET', 'n')", 0) == b"1"
        assert client.fcall_ro("peek", 1, "n") == b"1"
        assert client.get("a") is None
