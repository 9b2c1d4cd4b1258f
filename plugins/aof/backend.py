"""The AOF backend: append every propagated write, fsync by policy, rewrite in a forked child.

The file is one plain-RESP file, ``appendfilename`` in ``dir`` (the single-file layout Redis
used before 7.0, which ``redis-check-aof`` reads and Redis 7 upgrades on start-up).

Positions.  Every byte handed to the AOF gets a position in one logical stream that survives
rewrites: ``_fed`` (bytes produced by ``feed``), ``_written`` (bytes whose write(2) returned),
``_durable`` (bytes known to be on disk after an fdatasync).  ``_fed >= _written >= _durable``
always.  A ticket (:class:`AofTicket`, what ``flush()`` returns) holds a ``_written`` value;
after a rewrite the new file holds the same stream, so tickets stay comparable across the
switch of files.

The backend is one class made of mixins, one job each: this module holds the write path (feed,
flush, write errors, the pushed refusal state), the backend's task and timer, runtime
configuration, shutdown and INFO; :mod:`.durability` the tickets, group commit, fsyncs and
WAITAOF; :mod:`.rewriting` the parent's side of a rewrite; :mod:`.replay` loading at start-up;
:mod:`.state` what they share.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio
from trioredis import (
    BackendHost,
    BaseBackend,
    Config,
    ConfigError,
    Ticket,
    append_command,
)

from .durability import AofTicket, Durability
from .fsync import Fsyncer
from .replay import Replay
from .rewrite import temp_path
from .rewriting import Rewriting
from .state import (  # AofLoadError and State are imported from here by the package
    _OFF,
    _ON,
    _WAIT_REWRITE,
    DELAY_WRITERS_AFTER,
    TICK_SECONDS,
    AofLoadError,
    RewriteChild,
    State,
    remove_file,
)

__all__ = ["AofBackend", "AofLoadError", "AofTicket", "State"]


class AofBackend(Durability, Rewriting, Replay, BaseBackend):
    name = "aof"
    operations = frozenset({"rewrite", "reload"})

    def __init__(self, config: Config) -> None:
        self._config = config
        self._host: BackendHost | None = None
        self._log_: Any = None
        self._nursery: trio.Nursery | None = None
        self.state = State.PENDING if config.appendonly else State.OFF
        self._path = self._configured_path(config)
        self._fd: int | None = None
        self._buf = bytearray()  # fed, not yet written
        self._selected_db = -1  # the database the stream last SELECTed (-1: force SELECT)
        self._fed = 0
        self._written = 0
        self._durable = 0
        self._generation = 0  # bumped whenever the fd changes: an old fsync proves nothing
        self._current_size = 0
        self._base_size = 0
        self._fatal = False
        self._write_error_reason: str | None = None
        self._fsync_error_reason: str | None = None
        self._syncing: trio.Event | None = None
        self._sync_started = 0.0
        self._last_fsync_started = 0.0
        self._delayed_fsync = 0
        self._io_limiter = trio.CapacityLimiter(1)  # fsync, close: one at a time, in order
        self._copy_limiter = trio.CapacityLimiter(1)  # copying the rewrite buffer
        # appendfsync always: fdatasyncs in a process of our own (fsync.py), started by run()
        # once the policy is ``always``.
        self._fsyncer = Fsyncer(self._fsync_done)
        self._fsync_round = trio.Event()  # set (and replaced) after each of its fdatasyncs
        # Set (and replaced) when a retry writes a tail that a failed write(2) left behind.
        self._tail_written = trio.Event()
        self._round_listeners: list[Callable[[], None]] = []  # durable_or_notify callers
        self._sync_at_sleep = False  # always: an fdatasync to request in before_sleep()
        self._child: RewriteChild | None = None
        self._rewrite_buf: bytearray | None = None
        self._rewrite_scheduled = False
        self._rewrite_retry_at = 0.0
        self._last_rewrite_seconds = -1
        self._last_rewrite_ok = True
        self._rewrites = 0
        self._rewrite_failures = 0

    # --- small helpers ---------------------------------------------------------------------

    @property
    def config(self) -> Config:
        return self._host.config if self._host is not None else self._config

    @staticmethod
    def _configured_path(config: Config) -> str:
        return os.path.join(config.dir, config.appendfilename)

    def _log(self, level: str, message: str) -> None:
        log = self._log_
        if log is not None:
            getattr(log, level)(message)

    def _skip_fsync(self) -> bool:
        """``no-appendfsync-on-rewrite yes``: no fsync while a rewrite or snapshot child runs
        (the disk is busy with the child's writes).  Under ``always`` this means replies are
        sent after write(2) only: a power loss then costs the writes since the last fsync."""
        if not self.config.no_appendfsync_on_rewrite:
            return False
        return self._child is not None or (self._host is not None and self._host.fork_slot.busy)

    # --- appending -------------------------------------------------------------------------

    def feed(self, db: int, argv: Sequence[bytes]) -> None:
        # Buffering only (the engine calls this inside command execution).  A command is
        # preceded by SELECT whenever its database differs from the last one the stream
        # selected, so the file replays into the right databases from any starting point a
        # rewrite leaves (the rewrite resets ``_selected_db``).  The same bytes go to the
        # rewrite buffer while a child runs, so the new file ends with exactly what the old
        # one received after the fork.
        state = self.state
        if state is _ON:
            target = self._buf
        elif state is _OFF:
            return
        else:
            target = self._rewrite_buf if state is _WAIT_REWRITE else self._buf
            if target is None:
                return  # WAIT_REWRITE before the fork: the child's dataset will include it
        if self._fatal:
            return
        # Encoded straight into the buffer by core's one command encoder, through its per-write
        # fast path (append_command: no intermediate objects, this runs for every write).
        start = len(target)
        if db != self._selected_db:
            append_command(target, [b"SELECT", b"%d" % db])
            self._selected_db = db
        append_command(target, argv)
        self._fed += len(target) - start
        if self._rewrite_buf is not None and target is not self._rewrite_buf:
            self._rewrite_buf += target[start:]

    def flush(self) -> Ticket | None:
        # WRITE BEFORE REPLY.  Core calls flush() before any reply of a batch that wrote
        # leaves, and this write(2)s the whole buffer first, under every policy.  So a killed
        # process (kill -9, a crash) loses no acknowledged write under any policy: the page
        # cache has the bytes and the kernel writes them out.  What a *power loss* costs
        # depends on the policy, through the ticket returned here:
        #   always:   a ticket for every batch; the reply waits for an fdatasync covering it
        #             (group commit in wait_durable).  A power loss loses no acknowledged
        #             write.
        #   everysec: no ticket (run() fsyncs once a second), except while an fsync has been
        #             running for more than 2 s: then writers wait for it, so a power loss
        #             loses at most about 2 s of acknowledged writes.
        #   no:       no ticket; the kernel flushes when it likes (typically within 30 s).
        # In the WAIT_REWRITE state (appendonly switched on at runtime) nothing is written
        # until the first rewrite finishes, as in Redis: those writes are in memory only.
        if self._fatal:
            return AofTicket(self, self._written + 1)  # never durable: the reply is parked
        if self._fd is None or self.state is not State.ON:
            return None
        if self._buf:
            self._write_pending()
            if self._fatal:
                return AofTicket(self, self._written + 1)
            if self._buf:
                # The write failed (everysec/no; always is fatal above): these replies wait
                # until a retry writes them (wait_durable), so a kill -9 before the disk has
                # room again loses no acknowledged write.  Redis replies at once here.
                return AofTicket(self, self._written + len(self._buf))
        policy = self._config.appendfsync  # kept current by run() and config_changed()
        if policy == "always":
            # WHEN THE FDATASYNC STARTS.  If one is running, the request queues behind it at
            # once (the fsync process starts the next one, for the highest position queued,
            # as soon as the running one returns).  If none runs, it starts in before_sleep(),
            # once the event loop has served every client that was ready: an fsync started
            # by the first turn of a round covered that turn only, and the round's other
            # clients waited for a second one.  Either way this turn's replies wait for an
            # fdatasync that starts after this write(2) returned: the guarantee is unchanged,
            # only the batching (commands per fsync) differs.
            if self._fsyncer.running and not self._skip_fsync():
                if self._fsyncer.busy:
                    self._fsyncer.request(self._fd, self._generation, self._written)
                else:
                    self._sync_at_sleep = True
            return AofTicket(self, self._written)
        if (policy == "everysec" and self._syncing is not None
                and time.monotonic() - self._sync_started > DELAY_WRITERS_AFTER):
            self._delayed_fsync += 1
            return AofTicket(self, self._written)
        return None

    def _write_pending(self) -> bool:
        """write(2) the buffer until it is empty; a short write is retried.  On an error the
        unwritten tail stays buffered (retried every tick) and, under ``always``, the server
        stops.  True when everything is written."""
        buf = self._buf
        fd = self._fd
        assert fd is not None
        started = time.monotonic()
        while buf:
            try:
                written = os.write(fd, buf)
            except InterruptedError:
                continue
            except OSError as error:
                self._write_failed(error)
                return False
            if written <= 0:
                self._write_failed(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
                return False
            del buf[:written]
            self._written += written
            self._current_size += written
        elapsed = time.monotonic() - started
        if elapsed >= 0.001 and self._host is not None:
            self._host.record_latency("aof-write", int(elapsed * 1000))
        if self._write_error is not None:
            self._log("warning", "AOF write error looks solved, Redis can write again.")
            self._write_error = None
            self._tail_written.set()
            self._tail_written = trio.Event()
        return True

    def _write_failed(self, error: OSError) -> None:
        # WRITE ERRORS.  Under ``always`` a reply may never claim durability the file does
        # not have, and the failed batch's replies are already promised to wait: the server
        # stops (Redis exits too).  Under everysec/no the tail stays buffered and is retried
        # each tick, new writes are refused with MISCONF until a retry succeeds, and the
        # replies of the failed batch wait for that retry (flush() returns a ticket past the
        # written position): a kill before it loses only writes nobody was told of.  (Redis
        # replies at once, so a kill -9 then loses acknowledged writes.)
        reason = error.strerror or str(error)
        if self.config.appendfsync == "always":
            if not self._fatal:
                self._become_fatal()
                message = (f"Error writing to the AOF file: {reason}. Can't recover from AOF "
                           "write error when the AOF fsync policy is 'always'. Exiting...")
                if self._host is not None:
                    self._host.fatal(message)
                else:
                    self._log("warning", message)
            return
        if self._write_error is None:
            self._log("warning", f"Error writing to the AOF file: {reason}")
        self._write_error = reason

    # PUSHED STATE.  Whether feed() must run and the refusal of writes (MISCONF) depend on
    # the state, the fatal flag and the pending write/fsync errors: each change of one of
    # them pushes both to the host (cheap when unchanged), so the engine asks nothing per
    # write.  Before run() there is no host: the engine feeds every backend until told not
    # to, and feed() returns at once while OFF.
    def _set_state(self, state: State) -> None:
        self.state = state
        self._push_state()

    def _push_state(self) -> None:
        if self._host is not None:
            self._host.set_feeding(self.state is not State.OFF and not self._fatal)
            self._host.set_refusal(self._refusal())

    @property
    def _write_error(self) -> str | None:
        return self._write_error_reason

    @_write_error.setter
    def _write_error(self, reason: str | None) -> None:
        changed = (reason is None) != (self._write_error_reason is None)
        self._write_error_reason = reason
        if changed:
            self._refusal_changed()

    @property
    def _fsync_error(self) -> str | None:
        return self._fsync_error_reason

    @_fsync_error.setter
    def _fsync_error(self, reason: str | None) -> None:
        changed = (reason is None) != (self._fsync_error_reason is None)
        self._fsync_error_reason = reason
        if changed:
            self._refusal_changed()

    def _become_fatal(self) -> None:
        self._fatal = True
        self._refusal_changed()

    def _refusal_changed(self) -> None:
        self._push_state()

    def _refusal(self) -> str | None:
        if self._fatal:
            return "MISCONF Errors writing to the AOF file: the server is stopping"
        if self.state is not State.ON:
            return None
        reason = self._write_error or self._fsync_error
        if reason is None:
            return None
        return f"MISCONF Errors writing to the AOF file: {reason}"

    # --- the backend's task ----------------------------------------------------------------

    async def run(self, host: BackendHost, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._host = host
        self._log_ = host.log
        self._config = host.config
        self._push_state()  # the engine fed this backend until now: say whether it should
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.state is State.PENDING:
                    self._open_after_load()
                if self._fatal:
                    host.fatal("Error writing to the AOF file before start-up completed")
                self._start_fsyncer_if_always()
                task_status.started()
                while True:
                    await trio.sleep(TICK_SECONDS)
                    self._tick()
        finally:
            self._wake_fsync_waiters()

    def _start_fsyncer_if_always(self) -> None:
        """The fsync process exists only under ``appendfsync always`` (started at run() or at
        the first tick after CONFIG SET made it so); until it answers, fsyncs go through a
        worker thread."""
        if (not self._fsyncer.started and self.config.appendfsync == "always"
                and self.state is not State.OFF and self._nursery is not None):
            # The reactor reads the helper's answers within its turns (host.watch_readable).
            watch = self._host.watch_readable if self._host is not None else None
            self._nursery.start_soon(self._fsyncer.run, lambda line: self._log("warning", line),
                                     watch)

    def _open_after_load(self) -> None:
        """appendonly yes and no AOF was found at load: create it.  When another backend
        loaded a dataset (a snapshot), the new AOF must hold it first: rewrite."""
        host = self._host
        assert host is not None
        self._path = self._configured_path(self.config)
        if host.keyspace.key_count() == 0:
            self._open_for_append()
            self._log("notice", f"Creating AOF file {self._path}")
            self._set_state(State.ON)
            if self._buf:
                self._write_pending()
        else:
            self._buf.clear()  # those writes are in the dataset the child will write
            self._set_state(State.WAIT_REWRITE)
            self._rewrite_scheduled = True
            self._log("notice", "Creating AOF file from the loaded dataset (rewrite)")

    def _open_for_append(self) -> None:
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._generation += 1
        self._selected_db = -1
        self._current_size = os.fstat(self._fd).st_size

    def _tick(self) -> None:
        now = time.monotonic()
        self._start_fsyncer_if_always()
        if self.state is State.ON and self._fd is not None and not self._fatal:
            if self._buf:
                self._write_pending()  # the cron's flush, and the retry after a write error
            # EVERYSEC.  At most one fdatasync per second, in a worker thread; the event loop
            # keeps serving (replies wait for write(2) only).  A power loss costs what was
            # written since the last fsync that completed: normally up to ~1 s, bounded at
            # ~2 s because flush() makes writers wait once an fsync takes longer than 2 s.
            if (self.config.appendfsync == "everysec" and self._syncing is None
                    and self._written > self._durable
                    and now - self._last_fsync_started >= 1.0 and not self._skip_fsync()):
                assert self._nursery is not None
                self._nursery.start_soon(self._fsync, self._begin_fsync())
        if self._child is None and self._host is not None and not self._host.fork_slot.busy:
            if self._rewrite_scheduled and now >= self._rewrite_retry_at:
                self._start_rewrite_logged()
            elif (self.state is State.ON and now >= self._rewrite_retry_at
                    and self._auto_rewrite_due()):
                growth = self._current_size * 100 // max(self._base_size, 1) - 100
                self._log("notice", f"Starting automatic rewriting of AOF on {growth}% growth")
                self._start_rewrite_logged()

    # --- runtime configuration -------------------------------------------------------------

    def config_changed(self, old: Config, new: Config) -> None:
        # Against the config this backend works with: on a rollback (apply of ``old`` again
        # after a refusal) it never took ``new`` on, and nothing is refused.
        current = self._config
        if current.appendonly and new.appendonly and current.dir != new.dir:
            # The next start would look for the AOF in the new dir and start empty: refused,
            # and CONFIG SET rolls every option back (appendonly no, then dir, is fine).
            raise ConfigError("CONFIG SET failed (possibly related to argument 'dir') - can't "
                              "change dir while appendonly is yes: the next start would not "
                              "find the append only file")
        self._config = new
        if old.appendonly == new.appendonly:
            return
        if new.appendonly:
            # appendonly yes: the new AOF must start with the whole dataset, so it is born
            # from a rewrite; until then nothing is appended (WAIT_REWRITE).
            if self.state in (State.ON, State.WAIT_REWRITE):
                return
            self._kill_child()  # a one-time rewrite of the old file is of no use now
            self._buf.clear()
            self._set_state(State.WAIT_REWRITE)
            self._path = self._configured_path(new)
            self._rewrite_scheduled = True
            self._rewrite_retry_at = 0.0
            if self._child is None and self._host is not None and not self._host.fork_slot.busy:
                self._start_rewrite_logged()
            return
        # appendonly no: stop appending, write and fsync what is buffered, close the file,
        # kill a running rewrite child (its file is removed when it is reaped).
        self._kill_child()
        self._rewrite_scheduled = False
        fd = self._fd
        if fd is not None and self._buf:
            self._write_pending()
        self._buf.clear()
        self._fd = None
        self._generation += 1
        self._set_state(State.OFF)
        self._write_error = self._fsync_error = None
        self._wake_fsync_waiters()
        if fd is not None and self._nursery is not None:
            self._nursery.start_soon(self._sync_and_close, fd)

    async def _sync_and_close(self, fd: int) -> None:
        await self._close_in_thread(fd, sync=True)

    # --- shutdown and INFO -----------------------------------------------------------------

    async def aclose(self, save: bool) -> None:
        """Shutdown: kill a rewrite child, write and fsync what is buffered, close."""
        child = self._child
        if child is not None:
            self._kill_child()
            remove_file(temp_path(child.directory, child.pid))
        fd = self._fd
        if fd is None or self._fatal:
            return
        if self._buf:
            self._write_pending()
        self._fd = None
        self._generation += 1
        self._wake_fsync_waiters()
        await self._close_in_thread(fd, sync=True)

    def statistics(self) -> dict[str, Any]:
        child = self._child
        fields: dict[str, Any] = {
            "aof_enabled": 0 if self.state is State.OFF else 1,
            "aof_rewrite_in_progress": 1 if child is not None else 0,
            "aof_rewrite_scheduled": 1 if self._rewrite_scheduled else 0,
            "aof_last_rewrite_time_sec": self._last_rewrite_seconds,
            "aof_current_rewrite_time_sec":
                int(time.monotonic() - child.started) if child is not None else -1,
            "aof_last_bgrewrite_status": "ok" if self._last_rewrite_ok else "err",
            "aof_rewrites": self._rewrites,
            "aof_rewrites_consecutive_failures": self._rewrite_failures,
            "aof_last_write_status": "ok" if self._write_error is None else "err",
            "aof_last_cow_size": 0,
        }
        if self.state is not State.OFF:
            fields.update({
                "aof_current_size": self._current_size,
                "aof_base_size": self._base_size,
                "aof_pending_rewrite": 1 if self._rewrite_scheduled else 0,
                "aof_buffer_length": len(self._buf),
                "aof_rewrite_buffer_length": len(self._rewrite_buf or b""),
                "aof_pending_bio_fsync":
                    1 if self._syncing is not None or self._fsyncer.busy else 0,
                "aof_delayed_fsync": self._delayed_fsync,
            })
        return fields
