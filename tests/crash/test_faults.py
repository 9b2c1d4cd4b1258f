"""Faults beyond a plain kill -9 during writes (issue 6, point 4): a kill during loading, a kill
of the rewrite child, a kill during BGSAVE with both backends on, the AOF deleted or made
read-only under a running server, and a file-size limit (EFBIG) imposed on a running server in
the middle of a write load and then lifted.

After each fault the server restarts on the same directory and the workload's rule holds: no
acknowledged write is lost (the writers run under ``appendfsync always``, or ``everysec`` for
the EFBIG case, where a kill -9 still loses nothing because write(2) precedes every reply), and
nothing that was never sent appears.  Each test prints one summary line, like test_kill.py.

What the AOF backend does when its file is removed or made read-only under it (the same as
Redis 7 with a single-file AOF):

- removed (unlink): the server keeps its descriptor and keeps appending to the unlinked inode,
  so writes are acknowledged and INFO says aof_last_write_status:ok, but they are on disk only
  as long as the process lives.  A BGREWRITEAOF writes the whole dataset into a new file under
  the configured name, so after it a restart holds everything again.  Nothing detects the
  unlink by itself: an operator who deletes the AOF must run BGREWRITEAOF (or restart loses
  what only the unlinked inode held).
- chmod 444: permissions are checked at open(2), not at write(2), so the open descriptor keeps
  writing (as root or not); the next rewrite renames a fresh 0644 file over it.
"""

from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import redis
from servers import ServerProcess, wait_for
from workload import Verdict, Writer, no_retry_client, preload, verify, wait_loaded

AOF = "appendonly.aof"
WRITERS = 4


def summary(capsys, name: str, **figures) -> None:
    with capsys.disabled():
        print(f"\nfaults[{name}] " + " ".join(f"{key}={value}" for key, value in figures.items()))


def children_of(pid: int) -> list[int]:
    """The server's forked children (a rewrite or save child), not its fsync process."""
    found: list[int] = []
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(task) as handle:
                found += [int(word) for word in handle.read().split()]
        except OSError:
            pass
    return [child for child in found if not _is_fsync_helper(child)]


def _is_fsync_helper(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"fsync_helper.py" in handle.read()
    except OSError:
        return False


def raw_info(port: int, section: str = "persistence") -> dict[str, str]:
    """INFO over a raw socket: redis-py would retry a -LOADING reply by itself."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"INFO %s\r\n" % section.encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            header, _, body = data.partition(b"\r\n")
            if header.startswith(b"-") or (header.startswith(b"$") and _
                                           and len(body) >= int(header[1:]) + 2):
                break
    fields = {}
    for line in data.decode(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value
    return fields


def run_writers(port: int, prefix: str, seconds: float) -> list[Writer]:
    stop = threading.Event()
    writers = [Writer(port, f"{prefix}:w{w}", stop) for w in range(WRITERS)]
    for writer in writers:
        writer.start()
    time.sleep(seconds)
    return writers


def stop_writers(writers: list[Writer]) -> None:
    writers[0].stop.set()
    for writer in writers:
        writer.join(30)
        assert writer.error is None, writer.error


def verify_all(port: int, writers: list[Writer]) -> Verdict:
    client = no_retry_client(port)
    total = Verdict(mismatches=[])
    try:
        for writer in writers:
            total.add(verify(client, writer.prefix, writer.acked, writer.sent)[0])
    finally:
        client.close()
    return total


def restart(server: ServerProcess) -> None:
    server.kill()
    server.start(wait=False)
    wait_loaded(server)


# --- kill -9 while loading ----------------------------------------------------------------


def write_big_aof(path: str, keys: int) -> None:
    with open(path, "wb") as handle:
        handle.write(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n")
        handle.write(b"".join(
            b"*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$%d\r\nvalue:%d\r\n"
            % (len(b"key:%d" % i), i, len(b"value:%d" % i), i) for i in range(keys)))


def test_kill_9_during_loading_then_the_restart_loads_everything(tmp_path, capsys, spawned):
    keys = 200_000
    write_big_aof(str(tmp_path / AOF), keys)
    original = (tmp_path / AOF).read_bytes()
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["appendfsync", "always"],
                                           ["save", ""]])
    spawned.append(server)
    kills_while_loading = 0
    percents = []
    for attempt in range(2):  # once early in the load, once past the middle
        server.start(wait=False)
        threshold = 0.0 if attempt == 0 else 40.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                info = raw_info(server.port)
            except OSError:
                time.sleep(0.005)
                continue
            if info.get("loading") == "0":
                break
            if float(info.get("loading_loaded_perc", 0)) >= threshold:
                percents.append(info.get("loading_loaded_perc"))
                server.kill()
                kills_while_loading += 1
                break
            time.sleep(0.005)
        server.kill()
        # Loading reads the file; it must never cut or rewrite it.
        assert (tmp_path / AOF).read_bytes() == original
    server.start(wait=False)
    wait_loaded(server)
    client = server.client()
    try:
        size = client.dbsize()
        assert client.get("key:0") == b"value:0"
        assert client.get(f"key:{keys - 1}") == f"value:{keys - 1}".encode()
        assert client.get(f"key:{keys}") is None
    finally:
        server.stop()
    summary(capsys, "kill-during-loading", keys=keys, kills_while_loading=kills_while_loading,
            killed_at_perc="/".join(percents), loaded_after_restart=size, failed_restarts=0)
    assert kills_while_loading >= 1
    assert size == keys


# --- kill -9 of the rewrite child -----------------------------------------------------------


def test_kill_9_of_the_rewrite_child_keeps_the_old_aof_and_loses_nothing(tmp_path, capsys,
                                                                        spawned):
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["appendfsync", "always"],
                                           ["save", ""], ["auto-aof-rewrite-percentage", "0"]])
    spawned.append(server)
    server.start(wait=False)
    wait_loaded(server)
    preload(server.port, 200_000)
    control = no_retry_client(server.port)
    writers = run_writers(server.port, "child", 0.2)
    size_before = os.path.getsize(tmp_path / AOF)
    inode_before = os.stat(tmp_path / AOF).st_ino
    control.bgrewriteaof()
    deadline = time.monotonic() + 20
    child: list[int] = []
    while not child and time.monotonic() < deadline:
        child = children_of(server.process.pid)
    assert child, "no rewrite child appeared"
    killed_in_progress = control.info("persistence")["aof_rewrite_in_progress"]
    os.kill(child[0], signal.SIGKILL)
    wait_for(lambda: control.info("persistence")["aof_rewrite_in_progress"] == 0,
             what="the rewrite to end")
    info = control.info("persistence")
    acked_at_failure = sum(writer.acked for writer in writers)
    size_at_failure = os.path.getsize(tmp_path / AOF)
    # Writers go on appending to the old file after the failed rewrite.
    wait_for(lambda: sum(writer.acked for writer in writers) > acked_at_failure
             and os.path.getsize(tmp_path / AOF) > size_at_failure,
             what="writes after the failed rewrite")
    stop_writers(writers)
    status = info["aof_last_bgrewrite_status"]
    # The old file is still the one in use, and it grew with the writes made meanwhile.
    assert os.stat(tmp_path / AOF).st_ino == inode_before
    assert os.path.getsize(tmp_path / AOF) > size_before
    assert glob.glob(str(tmp_path / "temp-*")) == []
    assert "terminated by signal" in server.log()
    dbsize = control.dbsize()
    control.close()
    restart(server)
    verdict = verify_all(server.port, writers)
    assert no_retry_client(server.port).dbsize() == dbsize
    server.stop()
    summary(capsys, "kill-rewrite-child", killed_in_progress=killed_in_progress,
            bgrewrite_status=status, acked=verdict.acked, acked_at_failure=acked_at_failure,
            lost=verdict.lost, phantom=verdict.phantom, failed_restarts=0)
    assert status == "err"
    assert verdict.mismatches == [] and verdict.lost == 0 and verdict.phantom == 0


# --- kill -9 during BGSAVE with both backends --------------------------------------------------


def test_kill_9_during_bgsave_with_aof_and_snapshot_loses_no_acknowledged_write(
        tmp_path, capsys, spawned):
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["appendfsync", "always"],
                                           ["save", "3600", "1"]])
    spawned.append(server)
    server.start(wait=False)
    wait_loaded(server)
    preload(server.port, 200_000)
    total = Verdict(mismatches=[])
    killed_during_save = 0
    for round_number in range(2):
        writers = run_writers(server.port, f"save{round_number}", 0.2)
        control = no_retry_client(server.port)
        try:
            control.bgsave()
        except redis.ResponseError:
            pass  # one already running (a save point fired)
        # Kill as soon as the save child exists, then a little later into the save.
        wait_for(lambda: children_of(server.process.pid), what="the save child")
        time.sleep(0.01 * round_number)
        control.close()
        killed_during_save += bool(children_of(server.process.pid))
        server.kill()
        stop_writers(writers)
        server.start(wait=False)
        wait_loaded(server)
        verdict = verify_all(server.port, writers)
        total.add(verdict)
        # The interrupted save left no temp file behind once the server started again.
        assert glob.glob(str(tmp_path / "temp-*")) == []
    server.stop()
    summary(capsys, "kill-during-bgsave-both", rounds=2, killed_during_save=killed_during_save,
            acked=total.acked, lost=total.lost, phantom=total.phantom, failed_restarts=0)
    assert total.mismatches == [] and total.lost == 0 and total.phantom == 0


# --- the AOF removed or made read-only under a running server ---------------------------------


def test_aof_deleted_under_a_running_server_then_a_rewrite_recreates_it(tmp_path, capsys,
                                                                        spawned):
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["appendfsync", "always"],
                                           ["save", ""]])
    spawned.append(server)
    server.start(wait=False)
    wait_loaded(server)
    preload(server.port, 5_000)
    wait_for(lambda: os.path.exists(tmp_path / AOF), what="the AOF to be created")
    before = run_writers(server.port, "before", 0.2)
    stop_writers(before)
    os.unlink(tmp_path / AOF)
    during = run_writers(server.port, "unlinked", 0.2)
    stop_writers(during)
    control = no_retry_client(server.port)
    assert control.ping() is True
    assert control.info("persistence")["aof_last_write_status"] == "ok"
    assert not os.path.exists(tmp_path / AOF)  # still appended to, but only to the lost inode
    control.bgrewriteaof()
    wait_for(lambda: control.info("persistence")["aof_rewrite_in_progress"] == 0
             and os.path.exists(tmp_path / AOF), what="the rewrite")
    assert control.info("persistence")["aof_last_bgrewrite_status"] == "ok"
    after = run_writers(server.port, "after", 0.2)
    stop_writers(after)
    control.close()
    restart(server)
    verdict = verify_all(server.port, before + during + after)
    server.stop()
    summary(capsys, "aof-deleted", acked=verdict.acked, lost=verdict.lost,
            phantom=verdict.phantom, failed_restarts=0)
    assert verdict.mismatches == [] and verdict.lost == 0 and verdict.phantom == 0


def test_aof_made_read_only_under_a_running_server_keeps_writing(tmp_path, capsys, spawned):
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["appendfsync", "always"],
                                           ["save", ""]])
    spawned.append(server)
    server.start(wait=False)
    wait_loaded(server)
    # INFO can say loading:0 a moment before the new empty AOF is created.
    wait_for(lambda: os.path.exists(tmp_path / AOF), what="the AOF to be created")
    os.chmod(tmp_path / AOF, 0o444)
    during = run_writers(server.port, "readonly", 0.3)
    stop_writers(during)
    control = no_retry_client(server.port)
    # Permissions are checked when a file is opened: the open descriptor still writes.
    assert control.info("persistence")["aof_last_write_status"] == "ok"
    control.bgrewriteaof()
    wait_for(lambda: control.info("persistence")["aof_rewrite_in_progress"] == 0,
             what="the rewrite")
    status = control.info("persistence")["aof_last_bgrewrite_status"]
    mode = oct(os.stat(tmp_path / AOF).st_mode & 0o777)
    after = run_writers(server.port, "renamed", 0.2)
    stop_writers(after)
    control.close()
    restart(server)
    verdict = verify_all(server.port, during + after)
    server.stop()
    summary(capsys, "aof-read-only", acked=verdict.acked, lost=verdict.lost,
            phantom=verdict.phantom, rewrite_status=status, mode_after_rewrite=mode,
            failed_restarts=0)
    assert status == "ok"  # the rename replaces a read-only file: only the directory matters
    assert verdict.mismatches == [] and verdict.lost == 0 and verdict.phantom == 0


# --- EFBIG imposed on a running server mid-load ------------------------------------------------


def test_file_size_limit_imposed_mid_load_refuses_then_recovers_without_loss(tmp_path, capsys,
                                                                            spawned):
    """test_aof.py starts a server under a limit; here the limit drops on a running server
    while 4 writers run, then `prlimit --pid` lifts it: writes answered MISCONF meanwhile were
    never applied, every acknowledged one survives a kill -9."""
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["appendfsync", "everysec"],
                                           ["save", ""]],
                           preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN))
    spawned.append(server)
    server.start(wait=False)
    wait_loaded(server)
    stop = threading.Event()
    acked: list[set[int]] = [set() for _ in range(WRITERS)]
    refused: list[set[int]] = [set() for _ in range(WRITERS)]
    errors: list[str] = []

    def write(index: int) -> None:
        client = no_retry_client(server.port)
        n = 0
        try:
            while not stop.is_set():
                try:
                    client.set(f"efbig:{index}:{n}", "x" * 200)
                    acked[index].add(n)
                except redis.ResponseError as error:
                    if not str(error).startswith("MISCONF"):
                        errors.append(str(error))
                    refused[index].add(n)
                    time.sleep(0.01)
                n += 1
        finally:
            client.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    # The limit drops while every writer is writing.
    wait_for(lambda: all(len(done) >= 20 for done in acked), what="every writer under way")
    limit = os.path.getsize(tmp_path / AOF) + 64 * 1024
    subprocess.run(["prlimit", "--pid", str(server.process.pid), f"--fsize={limit}:unlimited"],
                   check=True)
    control = no_retry_client(server.port)
    # The writers whose write(2) failed wait for their replies (they are not acknowledged
    # until a retry writes them), so MISCONF is seen by whoever writes next: maybe none of
    # the four, when all were in the failing batch.  The control client writes next.
    wait_for(lambda: control.info("persistence")["aof_last_write_status"] == "err",
             what="a failed write")
    status_during = control.info("persistence")["aof_last_write_status"]
    with pytest.raises(redis.ResponseError, match="^MISCONF"):
        control.set("efbig:probe", "refused")
    subprocess.run(["prlimit", "--pid", str(server.process.pid), "--fsize=unlimited"],
                   check=True)
    wait_for(lambda: control.info("persistence")["aof_last_write_status"] == "ok",
             what="the write status to recover")
    refused_count = sum(map(len, refused))
    acked_before = sum(map(len, acked))
    wait_for(lambda: sum(map(len, acked)) > acked_before, what="writes accepted again")
    stop.set()
    for thread in threads:
        thread.join(30)
    control.close()
    restart(server)
    client = no_retry_client(server.port)
    present = {key.decode() for key in client.scan_iter("efbig:*", count=10_000)}
    server.stop()
    lost = sum(f"efbig:{i}:{n}" not in present for i in range(WRITERS) for n in acked[i])
    phantom = sum(f"efbig:{i}:{n}" in present for i in range(WRITERS) for n in refused[i])
    phantom += "efbig:probe" in present
    summary(capsys, "efbig-mid-load", acked=sum(map(len, acked)), refused=refused_count,
            status_during=status_during, lost=lost, phantom=phantom, failed_restarts=0)
    assert errors == []
    assert status_during == "err"
    assert lost == 0 and phantom == 0
