"""The snapshot backend: SAVE, BGSAVE, save points, the final save, and loading dump.trdb.

What a snapshot promises: after a successful save, ``dump.trdb`` holds exactly the dataset as
it was at the fork, and it is on disk (the temp file was fsynced before the rename, the
directory after it).  Between saves, writes live only in memory: a crash loses everything
since the last successful save, never more, and never damages the previous snapshot, because
the old file is replaced only by ``rename()`` of a complete, fsynced new one.

The order of one save, and why:

1. take the fork slot (one persistence child at a time: an AOF rewrite and a save never fork
   together, the later one waits or is scheduled);
2. ``trioredis.fork_child()`` (GC frozen so the child shares pages longer, a pipe, ``fork()``):
   the child sees the dataset of this instant, copy-on-write, while the parent keeps serving;
3. the child writes ``temp-<pid>.trdb``, fsyncs it and exits 0; it touches no trio object and
   reports a failure's reason through a pipe, not the log stream (whose lock another thread
   may have held at the fork);
4. the parent reaps the child without blocking the event loop (``ForkedChild.wait()``: a pidfd
   is readable when the child exits), then in a worker thread renames the temp file over ``dbfilename`` and fsyncs
   the directory so the rename itself survives a power loss;
5. a failed or killed child leaves ``dump.trdb`` untouched; its temp file is removed (and a
   temp file left by a server killed mid-save is removed at the next start).
"""

from __future__ import annotations

import glob
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import trio
from trioredis import (
    CHILD_FAILED,
    CHILD_OK,
    OK,
    BaseBackend,
    CommandError,
    ErrorReply,
    ForkedChild,
    Status,
    ZSet,
    errors,
    fork_child,
)

from .format import SnapshotError, SnapshotFile, drop_expired, materialize, write_snapshot_file
from .rdbfile import RdbError, is_rdb_file, read_rdb_file, wants_rdb, write_rdb_file

DEFAULT_DBFILENAME = "dump.rdb"  # Redis's default, and ours
FORMER_DEFAULT_DBFILENAME = "dump.trdb"  # the native format's name, our default until 2026-12

if TYPE_CHECKING:
    from trioredis import BackendHost, Config, Loader

# Redis's replies, verbatim.
NOT_STARTED = "ERR the snapshot backend is not running yet"
BGSAVE_OTHER_CHILD = (
    "ERR Another child process is active (AOF?): can't BGSAVE right now. "
    "Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."
)
MISCONF = (
    "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist "
    "to disk. Commands that may modify the data set are disabled, because this instance is "
    "configured to report errors during writes if RDB snapshotting fails "
    "(stop-writes-on-bgsave-error option). Please check the Redis logs for details about the "
    "RDB error."
)
# After a failed background save, save points retry only after this delay (Redis's
# CONFIG_BGSAVE_RETRY_DELAY), so a full disk is not hammered by a fork every cron tick.
RETRY_DELAY = 5
# How often save points and scheduled saves are checked.
CRON_SECONDS = 0.1
# The signal that stops a child on purpose (shutdown, FLUSHALL in Redis): not an error.  A
# forked child's handler for it is the default one (trioredis.CHILD_DEFAULT_SIGNALS): it ends.
KILL_SIGNAL = signal.SIGUSR1


def zset_class() -> type:
    """The sorted set class the snapshot format encodes (the public ``trioredis.ZSet``)."""
    return ZSet


def _write_in_child(path: str, databases: list[Any], host: BackendHost, zset: type | None,
                    report_fd: int) -> int:
    """The forked child's work (see ``trioredis.fork_child``): write the snapshot, then report
    through the pipe, as text, the copy-on-write bytes (success) or the error; the exit code."""
    try:
        if wants_rdb(host.config.dbfilename):
            write_rdb_file(path, databases, host.config, host.dataset_preamble())
        else:
            write_snapshot_file(path, databases, host.encode_value, zset, host.dataset_preamble())
    except BaseException as error:  # noqa: BLE001 - the reason goes to the parent
        os.write(report_fd, f"{type(error).__name__}: {error}".encode()[:4000])
        return CHILD_FAILED
    os.write(report_fd, b"%d" % _private_dirty_bytes())
    return CHILD_OK


def _private_dirty_bytes() -> int:
    """This process's copy-on-write cost so far: the pages it no longer shares."""
    try:
        with open("/proc/self/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Private_Dirty:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _install(temp: str, final: str, directory: str) -> None:
    """Rename the complete, fsynced temp file over the snapshot, then fsync the directory so
    the rename is durable too.  Runs in a worker thread."""
    os.replace(temp, final)
    fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class SnapshotBackend(BaseBackend):
    """Point-in-time snapshots in ``dir/dbfilename``; see the module docstring."""

    name = "snapshot"
    operations = frozenset({"save", "reload"})

    def __init__(self, config: Config) -> None:
        self._initial_config = config
        self._host: BackendHost | None = None
        self._nursery: trio.Nursery | None = None
        self._io_limiter = trio.CapacityLimiter(1)
        self._child_pid: int | None = None
        self._child_started = 0.0
        self._child_background = False
        self._child_done = trio.Event()
        self._child_done.set()
        self._scheduled = False
        self._dirty_at_save = 0
        self._dirty_at_fork = 0
        self._last_save = int(time.time())
        self._last_try = 0.0
        self._bgsave_ok = True
        self._last_bgsave_seconds = -1
        self._saves = 0
        self._last_cow_size = 0
        self._loaded_keys = 0
        self._expired_on_load = 0
        self._wakeup = trio.Event()

    # --- helpers ---------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        return self._host.config if self._host is not None else self._initial_config

    def path(self) -> str:
        config = self.config
        return os.path.join(config.dir, config.dbfilename)

    def _log(self) -> Any:
        return self._host.log if self._host is not None else None

    def _remove_leftovers(self) -> None:
        """A temp file left by a save that never finished (the server was killed) is garbage:
        it was never renamed, so nothing refers to it."""
        for leftover in glob.glob(os.path.join(glob.escape(self.config.dir), "temp-*.trdb")):
            try:
                os.unlink(leftover)
                if self._host is not None:
                    self._host.log.notice(f"Removed the unfinished snapshot file {leftover}")
            except OSError:
                pass

    # --- the backend's task ----------------------------------------------------------------

    async def run(self, host: BackendHost, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._host = host
        self._push_refusal()
        # Changes counted from now on: loading the dataset is not a change to save.
        self._dirty_at_save = host.dirty
        if self._child_pid is None:
            self._remove_leftovers()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                with trio.move_on_after(CRON_SECONDS):
                    await self._wakeup.wait()
                self._wakeup = trio.Event()
                try:
                    self._cron()
                except CommandError:
                    pass  # the fork failed: logged, counted as a failed save, retried later

    def _cron(self) -> None:
        """Start a scheduled save, or a save whose save point is reached."""
        host = self._host
        if host is None or self._child_pid is not None or host.fork_slot.busy:
            return
        if self._scheduled:
            self._scheduled = False
            self._start_background()
            return
        now = time.time()
        changes = host.dirty - self._dirty_at_save
        if not self._last_bgsave_ok and now - self._last_try <= RETRY_DELAY:
            return
        for seconds, wanted in self.config.save:
            if changes >= wanted and now - self._last_save > seconds:
                host.log.notice(f"{changes} changes in {seconds} seconds. Saving...")
                self._start_background()
                return

    def flushed(self) -> None:
        """After FLUSHALL, as Redis does: kill a running save child (its snapshot would bring
        the flushed keys back) and, with save points, save the empty dataset at once, so a
        crash after FLUSHALL does not resurrect them."""
        if self._host is not None:
            if self._child_pid is not None and self._child_background:
                try:
                    os.kill(self._child_pid, KILL_SIGNAL)
                except ProcessLookupError:
                    pass
            if self.config.save:
                self._scheduled = True
                self._wakeup.set()

    def config_changed(self, old: Config, new: Config) -> None:
        """CONFIG SET: save points are read live by the cron; say what changed and let the
        cron look at them now."""
        self._push_refusal()  # stop-writes-on-bgsave-error and save decide the refusal
        if old.save != new.save and self._host is not None:
            points = " ".join(f"{s} {c}" for s, c in new.save) or '""'
            self._host.log.notice(f"Save points are now: {points}")
            self._wakeup.set()
        old_path = os.path.join(old.dir, old.dbfilename)
        new_path = os.path.join(new.dir, new.dbfilename)
        if old_path != new_path and self._host is not None and os.path.exists(old_path):
            # The next start loads new_path: save the dataset there now rather than leave it
            # only in a file that start-up will no longer read.
            self._host.log.notice(f"The snapshot file is now {new_path}: saving there")
            self._scheduled = True
            self._wakeup.set()

    # --- saving ----------------------------------------------------------------------------

    def _fork(self) -> ForkedChild:
        """Fork the writing child (the fork slot is held); it writes ``temp-<pid>.trdb`` and
        reports through its pipe."""
        host = self._host
        assert host is not None
        config = self.config
        zset = zset_class()
        databases = host.keyspace.databases
        self._dirty_at_fork = host.dirty
        self._last_try = time.time()

        def body(report_fd: int) -> int:
            temp = os.path.join(config.dir, f"temp-{os.getpid()}.trdb")
            return _write_in_child(temp, databases, host, zset, report_fd)

        child = fork_child(body, record_fork=host.record_fork)
        self._child_pid = child.pid
        self._child_started = time.time()
        self._child_done = trio.Event()
        return child

    async def _finish(self, child: ForkedChild, background: bool) -> bool:
        """Reap the child and install its file; True when the snapshot is now on disk.
        Releases the fork slot whatever happens."""
        host = self._host
        assert host is not None
        config = self.config
        temp = os.path.join(config.dir, f"temp-{child.pid}.trdb")
        final = self.path()
        ok = False
        killed_on_purpose = False
        try:
            code = await child.wait()
            report = child.report.decode("utf-8", "replace")
            if code == CHILD_OK:
                if report.isdigit():
                    self._last_cow_size = int(report)
                    host.log.notice(f"RDB: {self._last_cow_size // (1024 * 1024)} MB of memory "
                                    "used by copy-on-write")
                try:
                    await trio.to_thread.run_sync(_install, temp, final, config.dir,
                                                  limiter=self._io_limiter)
                    ok = True
                except OSError as error:
                    host.log.warning(f"Error moving temp DB file {temp} on the final "
                                     f"destination {final}: {error.strerror or error}")
            elif code < 0:  # ended by a signal
                signum = -code
                killed_on_purpose = signum == KILL_SIGNAL
                host.log.warning(f"Background saving terminated by signal {signum}")
            else:
                host.log.warning(f"Background saving error: {report or 'the child failed'}"
                                 if background else f"Error saving DB on disk: {report}")
        finally:
            if not ok:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(_remove, temp, limiter=self._io_limiter)
            elapsed = time.time() - self._child_started
            self._child_pid = None
            host.fork_slot.release("snapshot")
            self._child_done.set()
        if ok:
            self._dirty_at_save = self._dirty_at_fork
            self._last_save = int(time.time())
            self._last_bgsave_ok = True
            self._saves += 1
            host.log.notice("Background saving terminated with success" if background
                            else "DB saved on disk")
        elif background and not killed_on_purpose:
            self._last_bgsave_ok = False
        if background:
            self._last_bgsave_seconds = int(round(elapsed))
        return ok

    def _start_background(self) -> None:
        """Fork now (the slot must be free) and reap the child in the backend's nursery."""
        host = self._host
        assert host is not None and self._nursery is not None
        if not host.fork_slot.try_acquire("snapshot"):
            raise CommandError(BGSAVE_OTHER_CHILD)
        try:
            child = self._fork()
        except OSError as error:
            host.fork_slot.release("snapshot")
            self._last_bgsave_ok = False
            host.log.warning(f"Can't save in background: fork: {error.strerror}")
            raise CommandError(f"ERR Background save failed: fork: {error.strerror}") from None
        self._child_background = True
        host.log.notice(f"Background saving started by pid {child.pid}")
        self._nursery.start_soon(self._finish, child, True)

    async def _save_now(self) -> bool:
        """A save the caller waits for (SAVE, DEBUG RELOAD, the final save): still written by
        a forked child, so the event loop keeps serving while it runs."""
        host = self._host
        assert host is not None
        await host.fork_slot.acquire("snapshot")
        try:
            child = self._fork()
            self._child_background = False
        except OSError as error:
            host.fork_slot.release("snapshot")
            host.log.warning(f"Can't save: fork: {error.strerror}")
            return False
        return await self._finish(child, False)

    def save(self, background: bool, schedule: bool = False) -> Any:
        if self._host is None:
            raise CommandError(NOT_STARTED)
        if self._child_pid is not None:
            raise CommandError(errors.BACKGROUND_SAVE_IN_PROGRESS)
        if background:
            if self._host.fork_slot.busy:
                if schedule:
                    self._scheduled = True
                    return Status(b"Background saving scheduled")
                raise CommandError(BGSAVE_OTHER_CHILD)
            self._start_background()
            return Status(b"Background saving started")
        return self._save_in_foreground()

    async def _save_in_foreground(self) -> Any:
        if not await self._save_now():
            raise CommandError("ERR")
        return OK

    def last_save_time(self) -> int | None:
        return self._last_save

    async def reload_point(self) -> bool:
        if self._host is None:
            return False
        if self._child_pid is not None:
            raise CommandError(errors.BACKGROUND_SAVE_IN_PROGRESS)
        await self._save_in_foreground()
        return True

    @property
    def _last_bgsave_ok(self) -> bool:
        return self._bgsave_ok

    @_last_bgsave_ok.setter
    def _last_bgsave_ok(self, ok: bool) -> None:
        changed = ok != self._bgsave_ok
        self._bgsave_ok = ok
        if changed:
            self._push_refusal()

    def _push_refusal(self) -> None:
        """Writes are refused (MISCONF) while the last background save failed, as long as
        ``stop-writes-on-bgsave-error`` and save points are on: pushed to the host whenever
        the result or the config changes, so the engine asks nothing per write."""
        if self._host is None:
            return
        config = self.config
        refuse = not self._bgsave_ok and config.stop_writes_on_bgsave_error and config.save
        self._host.set_refusal(MISCONF if refuse else None)

    async def kill_child(self) -> None:
        """Stop a running save child (shutdown) and wait until it is reaped."""
        pid = self._child_pid
        if pid is not None:
            try:
                os.kill(pid, KILL_SIGNAL)
            except ProcessLookupError:
                pass
            await self._child_done.wait()

    async def aclose(self, save: bool) -> None:
        self._scheduled = False
        if self._child_pid is not None and self._host is not None:
            self._host.log.warning("There is a child saving a snapshot. Killing it!")
            await self.kill_child()
        if save and self._host is not None:
            self._host.log.notice("Saving the final snapshot before exiting.")
            if not await self._save_now():
                raise RuntimeError("Error trying to save the DB, can't exit.")

    def statistics(self) -> dict[str, Any]:
        dirty = self._host.dirty if self._host is not None else 0
        running = self._child_pid is not None and self._child_background  # SAVE is not "bg"
        return {
            "rdb_changes_since_last_save": dirty - self._dirty_at_save,
            "rdb_bgsave_in_progress": 1 if running else 0,
            "rdb_last_save_time": self._last_save,
            "rdb_last_bgsave_status": "ok" if self._last_bgsave_ok else "err",
            "rdb_last_bgsave_time_sec": self._last_bgsave_seconds,
            "rdb_current_bgsave_time_sec": int(time.time() - self._child_started) if running else -1,
            "rdb_saves": self._saves,
            "rdb_last_cow_size": self._last_cow_size,
            "rdb_last_load_keys_expired": self._expired_on_load,
            "rdb_last_load_keys_loaded": self._loaded_keys,
        }

    # --- loading ---------------------------------------------------------------------------

    def load_priority(self) -> int:
        # Below the AOF's (100 when appendonly yes): with both on, the AOF is the fuller
        # record and wins when it exists; the snapshot loads otherwise.
        return 10

    async def load(self, loader: Loader) -> bool:
        path = self._path_to_load()
        log = loader_log(loader, self)
        started = time.time()
        try:
            rdb = is_rdb_file(path)
            snapshot = None if rdb else SnapshotFile(path)
        except FileNotFoundError:
            return False
        try:
            if snapshot is None:
                loaded, expired = await self._load_rdb(loader, path)
            else:
                with snapshot:
                    loaded, expired = await self._load_databases(loader, snapshot)
        except SnapshotError as error:
            if log is not None:
                checker = "redis-check-rdb" if snapshot is None else "trioredis-check-snapshot"
                log.warning(f"{error}. Refusing to start on wrong data: move the file away or "
                            f"check it with: {checker} {path}")
            raise
        self._loaded_keys, self._expired_on_load = loaded, expired
        if log is not None:
            log.notice(f"Snapshot {path} loaded: {loaded} keys ({expired} expired, not "
                       f"loaded) in {time.time() - started:.3f} seconds")
        return True

    def _path_to_load(self) -> str:
        """``dir/dbfilename``; but when that is Redis's default ``dump.rdb`` and absent while
        ``dump.trdb`` (this server's default before it followed Redis's) is there, that file:
        an upgrade must not start empty next to the data.  Saves go to ``dump.rdb``."""
        path = self.path()
        config = self.config
        if config.dbfilename == DEFAULT_DBFILENAME and not os.path.exists(path):
            former = os.path.join(config.dir, FORMER_DEFAULT_DBFILENAME)
            if os.path.exists(former):
                return former
        return path

    async def _load_rdb(self, loader: Loader, path: str) -> tuple[int, int]:
        """A Redis ``dump.rdb``: verified (checksum) then decoded whole in a worker thread,
        then installed database by database."""
        try:
            databases, expired, functions = await trio.to_thread.run_sync(
                read_rdb_file, path, limiter=self._io_limiter)
        except RdbError as error:
            raise SnapshotError(f"Bad RDB file {path}: {error}") from None
        try:
            loaded = loader.install_rdb(databases, functions)
        except ValueError as error:
            raise SnapshotError(f"Bad RDB file {path}: {error}") from None
        return loaded, expired

    @staticmethod
    def _replay_preamble(loader: Loader, snapshot: SnapshotFile) -> None:
        """The commands stored before the keys (function libraries): a failure is damage."""
        preamble = snapshot.metadata.get("preamble") or []
        for argv in preamble:
            reply = loader.execute([bytes(arg) for arg in argv])
            if isinstance(reply, ErrorReply):
                raise SnapshotError(f"Bad snapshot file {snapshot.path}: replaying "
                                    f"{bytes(argv[0]).decode('utf-8', 'replace')} failed: "
                                    f"{bytes(reply).decode('utf-8', 'replace')}")

    async def _load_databases(self, loader: Loader, snapshot: SnapshotFile) -> tuple[int, int]:
        """Verify the whole file first (nothing reaches the keyspace from a damaged one),
        then decode each database in a worker thread (the event loop keeps answering
        -LOADING meanwhile) and install it."""
        keyspace = loader.keyspace
        size = snapshot.size
        loader.progress(0, size)
        await trio.to_thread.run_sync(snapshot.verify, limiter=self._io_limiter)
        self._replay_preamble(loader, snapshot)
        zset = zset_class()
        loaded = expired = 0
        for offset, start, end in snapshot.database_records():
            index, data, expires = await trio.to_thread.run_sync(
                snapshot.decode_database, offset, start, end, limiter=self._io_limiter)
            if not 0 <= index < len(keyspace):
                raise SnapshotError(
                    f"Bad snapshot file {snapshot.path}: it holds database {index} but this "
                    f"server has {len(keyspace)} (raise the 'databases' option)")
            try:
                materialize(data, zset, loader.decode_value)
            except Exception as error:  # noqa: BLE001 - a value that cannot be built is damage
                raise SnapshotError(f"Bad snapshot file {snapshot.path} at offset {offset}: "
                                    f"{error}") from None
            expired += drop_expired(data, expires, int(time.time() * 1000))
            db = keyspace[index]
            if db.data:  # keys already there (a database in two records): merge
                db.data.update(data)
                db.expires.update(expires)
            else:
                db.data, db.expires = data, expires
            loaded += len(data)
            loader.progress(end, size)
            await trio.sleep(0)
        return loaded, expired


def loader_log(loader: Loader, backend: SnapshotBackend) -> Any:
    """The server log while loading (run() has not given us the host yet at start-up)."""
    log = backend._log()
    return log if log is not None else getattr(loader, "log", None)

