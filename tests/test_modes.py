"""The persistence modes, each started from its sample file in config/ (with --dir and --port
overridden), written, restarted after SIGTERM and after kill -9, and holding exactly what its
promise says (the promise is written at the top of each config file):

- snapshot: SIGTERM saves a final snapshot; kill -9 loses what was written since the last one;
- aof: every acknowledged write survives both;
- both: every acknowledged write survives both (the AOF is loaded when it exists), and the
  snapshot is loaded when the AOF is gone;
- none: every restart starts empty, and nothing is written to dir.
"""

from __future__ import annotations

import os
import signal

from servers import REPO, ServerProcess


def server_for(mode: str, directory) -> ServerProcess:
    return ServerProcess(str(directory), [], config_path=os.path.join(REPO, "config", f"{mode}.conf"))


def write(server: ServerProcess, prefix: str, count: int = 200) -> None:
    """Strings, a TTL, a list and a hash in two databases."""
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"{prefix}:{i}", f"value {i}")
    pipe.set(f"{prefix}:ttl", "x", ex=3600)
    pipe.rpush(f"{prefix}:list", *[str(i) for i in range(50)])
    pipe.hset(f"{prefix}:hash", mapping={f"f{i}": i for i in range(20)})
    pipe.execute()
    client.close()
    second = server.client(db=3)
    second.set(f"{prefix}:in-db-3", "3")
    second.close()


def digest(client) -> bytes:
    return client.execute_command("DEBUG", "DIGEST")


def restart(server: ServerProcess, how: str) -> None:
    if how == "SIGTERM":
        assert server.stop() == 0
    else:
        server.kill(signal.SIGKILL)
    server.start()


def shut_down(server: ServerProcess, client, **how: bool) -> int:
    """SHUTDOWN NOSAVE/SAVE (``nosave=True``, ``save=True``): the server's exit code."""
    try:
        client.shutdown(**how)
    except Exception:  # noqa: BLE001 - the connection closes under redis-py
        pass
    return server.process.wait(30)


def files(directory) -> set[str]:
    return {name for name in os.listdir(directory) if name != "server.log"}


def test_snapshot_mode_saves_on_sigterm_and_loses_unsaved_writes_on_kill(tmp_path):
    with server_for("snapshot", tmp_path) as server:
        client = server.client()
        write(server, "a")
        saved = digest(client)
        restart(server, "SIGTERM")  # the final save: save points are configured
        client = server.client()
        assert digest(client) == saved
        assert files(tmp_path) == {"dump.trdb"}
        write(server, "b")  # below every save point: stays in memory only
        assert digest(client) != saved
        restart(server, "kill -9")
        client = server.client()
        assert digest(client) == saved
        assert client.get("b:0") is None and client.get("a:0") == b"value 0"


def test_snapshot_mode_shutdown_nosave_keeps_the_last_snapshot(tmp_path):
    with server_for("snapshot", tmp_path) as server:
        client = server.client()
        write(server, "a")
        assert client.save() is True
        saved = digest(client)
        write(server, "b")
        shut_down(server, client, nosave=True)
        server.start()
        assert digest(server.client()) == saved


def test_aof_mode_keeps_every_acknowledged_write(tmp_path):
    with server_for("aof", tmp_path) as server:
        client = server.client()
        write(server, "a")
        expected = digest(client)
        restart(server, "SIGTERM")
        client = server.client()
        assert digest(client) == expected
        write(server, "b")
        expected = digest(client)
        restart(server, "kill -9")
        assert digest(server.client()) == expected
        assert "dump.trdb" not in files(tmp_path)
        assert "appendonly.aof" in files(tmp_path)


def test_both_mode_loads_the_aof_when_it_exists_else_the_snapshot(tmp_path):
    with server_for("both", tmp_path) as server:
        client = server.client()
        write(server, "a")
        first = digest(client)
        restart(server, "SIGTERM")  # AOF up to date and a final snapshot of the same data
        client = server.client()
        assert digest(client) == first
        assert {"dump.trdb", "appendonly.aof"} <= files(tmp_path)
        write(server, "b")  # only the AOF has these
        second = digest(client)
        restart(server, "kill -9")
        assert digest(server.client()) == second  # the AOF was loaded, not the snapshot
        server.kill(signal.SIGKILL)
        os.unlink(tmp_path / "appendonly.aof")
        server.start()
        assert digest(server.client()) == first  # no AOF: the snapshot was loaded


def test_none_mode_starts_empty_and_writes_nothing(tmp_path):
    with server_for("none", tmp_path) as server:
        client = server.client()
        write(server, "a")
        assert client.dbsize() > 0
        restart(server, "SIGTERM")
        client = server.client()
        assert client.dbsize() == 0
        write(server, "b")
        restart(server, "kill -9")
        assert server.client().dbsize() == 0
        assert files(tmp_path) == set()


def test_none_mode_still_saves_when_asked_and_loads_that_snapshot(tmp_path):
    """As in Redis: SAVE works with save "", and a snapshot found at start-up is loaded."""
    with server_for("none", tmp_path) as server:
        client = server.client()
        write(server, "a")
        assert client.save() is True
        saved = digest(client)
        write(server, "b")
        restart(server, "SIGTERM")  # no save points: no final save
        assert digest(server.client()) == saved


def test_none_mode_shutdown_save_writes_a_final_snapshot(tmp_path):
    with server_for("none", tmp_path) as server:
        client = server.client()
        write(server, "a")
        expected = digest(client)
        assert shut_down(server, client, save=True) == 0
        assert files(tmp_path) == {"dump.rdb"}
        server.start()
        assert digest(server.client()) == expected
