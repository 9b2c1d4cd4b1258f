"""BGREWRITEAOF and auto-rewrite over real sockets: the forked child, the rewrite buffer, the
switch of files, and what happens when the child fails or is killed."""

from __future__ import annotations

import os
import socket
import threading

import redis
import trio
from servers import ServerThread, wait_for

AOF = "appendonly.aof"


def aof_options(directory, *extra):
    return [["appendonly", "yes"], ["save", ""], ["dir", str(directory)], *extra]


def digest(client) -> bytes:
    return client.execute_command("DEBUG", "DIGEST")


def rewrites(client) -> int:
    return client.info("persistence")["aof_rewrites"]


def rewrite_idle(client) -> bool:
    info = client.info("persistence")
    return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]


def populate(client, keys, prefix="key"):
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, keys, 1000):
            end = min(start + 1000, keys)
            pipe.mset({f"{prefix}:{i}": f"value:{i}" for i in range(start, end)})
        pipe.execute()


def temp_files(directory):
    return [name for name in os.listdir(directory) if name.startswith("temp-rewriteaof-bg-")]


def test_rewrite_under_concurrent_writes_restarts_with_the_same_digest_and_a_smaller_file(tmp_path):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        # An overwrite-heavy history: 40 versions of 2,000 keys.
        for version in range(40):
            with r.pipeline(transaction=False) as pipe:
                for i in range(0, 2000, 500):
                    pipe.mset({f"k:{j}": f"v{version}:{j}" for j in range(i, i + 500)})
                pipe.execute()
        size_before = os.path.getsize(tmp_path / AOF)
        stop = threading.Event()
        errors = []
        done = [0, 0, 0]  # operations each writer has finished

        def writer(name, index):
            client = server.client()
            n = 0
            try:
                while not stop.is_set():
                    client.set(f"{name}:last", n)
                    client.incr(f"{name}:count")
                    client.rpush(f"{name}:list", n)
                    with client.pipeline(transaction=True) as pipe:
                        pipe.set(f"k:{n % 2000}", f"{name}-{n}").incr(f"{name}:tx")
                        pipe.execute()
                    n += 1
                    done[index] = n
            except Exception as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=writer, args=(f"w{i}", i)) for i in range(3)]
        for thread in threads:
            thread.start()
        wait_for(lambda: errors or min(done) >= 20)  # every writer under way
        assert r.bgrewriteaof()
        wait_for(lambda: errors or (rewrites(r) >= 1 and rewrite_idle(r)))
        after_switch = list(done)
        # Writes keep landing in the new file after the switch.
        wait_for(lambda: errors or all(done[i] >= after_switch[i] + 20 for i in range(3)))
        stop.set()
        for thread in threads:
            thread.join(30)
        assert not errors
        info = r.info("persistence")
        assert info["aof_last_bgrewrite_status"] == "ok"
        before = digest(r)
        assert temp_files(tmp_path) == []
    # The file as the switch left it (the rewrite plus what was written during it): how much
    # the writers add afterwards depends on the machine's speed, not on the rewrite.
    assert info["aof_base_size"] < size_before / 5
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        assert digest(server.client()) == before


def test_a_second_bgrewriteaof_while_one_runs_is_refused(tmp_path):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        populate(r, 60_000)
        with r.pipeline(transaction=False) as pipe:
            pipe.bgrewriteaof().bgrewriteaof()
            first, second = pipe.execute(raise_on_error=False)
        assert first in (True, b"Background append only file rewriting started")
        assert isinstance(second, redis.ResponseError)
        assert str(second) == "Background append only file rewriting already in progress"
        wait_for(lambda: rewrite_idle(r))
        assert rewrites(r) == 1


def test_bgrewriteaof_during_a_snapshot_child_is_scheduled_then_runs(tmp_path):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        populate(r, 60_000)
        # One batch on a raw socket (redis-py turns status replies into True).
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"BGSAVE\r\nBGREWRITEAOF\r\n")
            replies = b""
            while replies.count(b"\r\n") < 2:
                replies += sock.recv(4096)
        assert replies == (b"+Background saving started\r\n"
                           b"+Background append only file rewriting scheduled\r\n")
        wait_for(lambda: rewrites(r) == 1 and rewrite_idle(r))
        before = digest(r)
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        assert digest(server.client()) == before


class Unrewritable:
    """A value no plugin knows how to rewrite: the child fails on it."""


def test_a_failed_child_leaves_the_old_aof_untouched_and_reports_err(tmp_path, capsys):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        populate(r, 100)
        trio.from_thread.run_sync(
            lambda: server.server.engine.keyspace[0].data.__setitem__(b"alien", Unrewritable()),
            trio_token=server._token)
        old = (tmp_path / AOF).read_bytes()
        assert r.bgrewriteaof()
        wait_for(lambda: rewrite_idle(r))
        info = r.info("persistence")
        assert info["aof_last_bgrewrite_status"] == "err"
        assert info["aof_rewrites_consecutive_failures"] == 1
        assert (tmp_path / AOF).read_bytes() == old
        # The child's reason came through its pipe into the server's log.
        assert ("Background AOF rewrite terminated with error: TypeError: no plugin rewrites "
                "the value of key b'alien'") in capsys.readouterr().out
        assert temp_files(tmp_path) == []
        r.set("still", "appending")
        assert (tmp_path / AOF).read_bytes().startswith(old)
        assert b"still" in (tmp_path / AOF).read_bytes()


def test_appendonly_no_during_a_rewrite_kills_the_child(tmp_path):
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        populate(r, 60_000)
        with r.pipeline(transaction=False) as pipe:
            pipe.bgrewriteaof().config_set("appendonly", "no")
            pipe.execute()
        wait_for(lambda: not r.info("persistence")["aof_rewrite_in_progress"])
        wait_for(lambda: temp_files(tmp_path) == [])
        assert r.info("persistence")["aof_enabled"] == 0
        assert rewrites(r) == 0


def test_auto_rewrite_triggers_on_growth(tmp_path):
    options = aof_options(tmp_path, ["auto-aof-rewrite-min-size", "32kb"],
                          ["auto-aof-rewrite-percentage", "0"])
    with ServerThread(options) as server:
        server.wait_ready()
        r = server.client()
        for i in range(1000):
            r.set("same-key", "x" * 100 + str(i))
        assert rewrites(r) == 0  # percentage 0: no automatic rewrite
        assert r.info("persistence")["aof_current_size"] > 64 * 1024
        r.config_set("auto-aof-rewrite-percentage", 100)
        wait_for(lambda: rewrites(r) == 1 and rewrite_idle(r))
        info = r.info("persistence")
        assert info["aof_base_size"] < 32 * 1024
        assert r.get("same-key") == b"x" * 100 + b"999"
        before = digest(r)
    assert os.path.getsize(tmp_path / AOF) < 32 * 1024
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        assert digest(server.client()) == before


def test_bgrewriteaof_with_appendonly_no_writes_a_loadable_file(tmp_path):
    with ServerThread([["appendonly", "no"], ["save", ""], ["dir", str(tmp_path)]]) as server:
        server.wait_ready()
        r = server.client()
        populate(r, 500)
        r.set("ttl", "x", ex=500)
        r.rpush("list", *range(200))
        assert r.bgrewriteaof()
        wait_for(lambda: rewrites(r) == 1 and rewrite_idle(r))
        before = digest(r)
        r.set("not-in-the-file", "1")
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        assert digest(server.client()) == before


def test_switching_from_snapshot_to_aof_writes_the_loaded_dataset_into_a_new_aof(tmp_path):
    snapshot_only = [["appendonly", "no"], ["save", "3600", "1"], ["dir", str(tmp_path)]]
    with ServerThread(snapshot_only) as server:
        server.wait_ready()
        r = server.client()
        populate(r, 300)
        r.rpush("list", *range(100))
        assert r.save()
        before = digest(r)
    assert not (tmp_path / AOF).exists()
    # No AOF yet: the snapshot loads, then the AOF is born from a rewrite of that dataset.
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        assert digest(r) == before
        wait_for(lambda: rewrites(r) == 1 and rewrite_idle(r))
        r.set("written-after", "1")
        after = digest(r)
    os.unlink(tmp_path / "dump.rdb")  # the AOF alone must now hold everything
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        assert digest(server.client()) == after


def test_save_during_a_rewrite_waits_for_the_child_and_answers_ok(tmp_path):
    """Only one persistence child at a time: SAVE while BGREWRITEAOF's child runs waits for
    it, then saves (Redis answers OK here too), instead of refusing."""
    with ServerThread(aof_options(tmp_path)) as server:
        server.wait_ready()
        r = server.client()
        with r.pipeline(transaction=False) as pipe:
            for i in range(20000):
                pipe.set(f"k:{i}", i)
            pipe.execute()
        assert r.bgrewriteaof()
        assert r.save() is True
        assert (tmp_path / "dump.rdb").exists()
        wait_for(lambda: rewrite_idle(r))
        assert r.info("persistence")["aof_last_bgrewrite_status"] == "ok"
