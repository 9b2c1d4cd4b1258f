"""The AOF backend: append every propagated write, fsync by policy, rewrite in a forked child.

The file is one plain-RESP file, ``appendfilename`` in ``dir`` (the single-file layout Redis
used before 7.0, which ``redis-check-aof`` reads and Redis 7 upgrades on start-up).

Positions.  Every byte handed to the AOF gets a position in one logical stream that survives
rewrites: ``_fed`` (bytes produced by ``feed``), ``_written`` (bytes whose write(2) returned),
``_durable`` (bytes known to be on disk after an fdatasync).  ``_fed >= _written >= _durable``
always.  A ticket (:class:`AofTicket`, what ``flush()`` returns) holds a ``_written`` value;
after a rewrite the new file holds the same stream, so tickets stay comparable across the
switch of files.
"""

from __future__ import annotations

import enum
import errno
import gc
import os
import shlex
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
from trioredis import (
    BackendHost,
    BaseBackend,
    Config,
    ConfigError,
    ErrorReply,
    Loader,
    Status,
    Ticket,
    append_command,
    errors,
    wait_child,
)

from .fsync import Fsyncer, sync_and_close
from .loading import CHUNK_SIZE, AofCorruption, AofScanner
from .rdb_base import RdbBaseError, load_rdb_base, starts_as_rdb
from .rewrite import child_main, temp_path, write_all

TICK_SECONDS = 0.1  # write retries, the everysec timer, auto-rewrite checks
DELAY_WRITERS_AFTER = 2.0  # everysec: a fsync running this long makes writers wait for it
SMALL_TAIL = 64 * 1024  # rewrite buffer left to copy on the event loop at the switch
CATCH_UP_ROUNDS = 16  # copies of the rewrite buffer off the loop before the switch
YIELD_SECONDS = 0.01  # loading hands the event loop over at least this often


REWRITE_FAILED = (b"ERR Can't execute an AOF background rewriting. Please check the server "
                  b"logs for more information.")


class AofLoadError(Exception):
    """The AOF cannot be loaded as it is: start-up stops (the log says why and how to fix)."""


class State(enum.Enum):
    OFF = "off"  # appendonly no: nothing is appended
    PENDING = "pending"  # appendonly yes, the file is opened (or created) when run() starts
    ON = "on"  # appending to the open file
    # appendonly switched on at runtime: the stream only goes to the rewrite buffer until the
    # first rewrite has produced a file holding the whole dataset (Redis's AOF_WAIT_REWRITE).
    WAIT_REWRITE = "wait_rewrite"


_ON, _OFF, _WAIT_REWRITE = State.ON, State.OFF, State.WAIT_REWRITE  # feed()'s fast checks


@dataclass
class RewriteChild:
    pid: int
    directory: str
    started: float = field(default_factory=time.monotonic)
    killed: bool = False


class AofTicket(Ticket):
    """Durable once the AOF's stream is durable up to ``position`` (one per flush that must
    wait, shared by every reply of that turn: group commit)."""

    __slots__ = ("backend", "position")

    def __init__(self, backend: AofBackend, position: int) -> None:
        self.backend = backend
        self.position = position

    def durable_or_notify(self, callback: Callable[[], None]) -> bool | None:
        return self.backend.durable_or_notify(self.position, callback)

    async def wait(self) -> None:
        await self.backend.wait_durable(self.position)


class AofBackend(BaseBackend):
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
            # The fdatasync starts now, while the turn's replies are still being encoded.
            if self._fsyncer.running and not self._skip_fsync():
                self._fsyncer.request(self._fd, self._generation, self._written)
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

    # --- durability ------------------------------------------------------------------------

    async def wait_durable(self, ticket: int) -> None:
        """Return once the stream up to position ``ticket`` is durable (:meth:`AofTicket.wait`)."""
        # GROUP COMMIT (always).  One fdatasync runs at a time (in the AOF's fsync process once
        # run() started it, see fsync.py; else a CapacityLimiter(1) worker thread); it covers
        # every byte written before it started, so every waiter whose ticket is at or below
        # that position is released by the same fsync.  A writer that arrives while an fsync
        # runs waits for it to finish and then for the next one, which also covers every
        # other writer that arrived meanwhile (the fsync process starts that next one as soon
        # as the first returns): throughput is bounded by the disk's fsync rate, not by the
        # number of clients.
        while True:
            if self._fatal:
                await trio.sleep_forever()  # the server is stopping; this reply never leaves
            if self._written < ticket and self._buf and self._fd is not None:
                # A failed write(2) left these bytes unwritten: wait for the tick's retry.
                # (Polled too: appendonly no drops the buffer without a retry.)
                with trio.move_on_after(TICK_SECONDS):
                    await self._tail_written.wait()
                continue
            if self.config.appendfsync != "always":
                if self._syncing is not None:  # everysec, delayed: wait for the slow fsync
                    await self._syncing.wait()
                return
            if self._durable >= ticket or self._fd is None or self._skip_fsync():
                return
            if self._fsyncer.running:
                round_done = self._fsync_round
                self._fsyncer.request(self._fd, self._generation, self._written)
                await round_done.wait()
                continue
            if self._syncing is not None:
                await self._syncing.wait()
                continue
            await self._fsync(self._begin_fsync())

    def durable_or_notify(self, ticket: int, notify: Callable[[], None]) -> bool | None:
        """The synchronous fast path of :meth:`wait_durable`, for the reactor: True when
        ``ticket`` is durable now (the reply may leave); False when not yet, and then
        ``notify()`` runs on the trio thread after the next fsync round (ask again then);
        None when only ``wait_durable`` can tell (no fsync process, a stopping server, the
        everysec delay).  Why: parking a turn's writers behind an awaited event costs a task
        start and a trio wake-up per turn, on the path of every write under ``always``."""
        if self._fatal or self.config.appendfsync != "always":
            return None
        if self._durable >= ticket or self._fd is None or self._skip_fsync():
            return True
        if not self._fsyncer.running:
            # No fsync process (not started yet, or it died): a worker thread syncs, and
            # tells the listeners when it is done, as the process does.
            if self._nursery is None:
                return None
            if self._syncing is None:
                self._nursery.start_soon(self._fsync, self._begin_fsync())
            if notify not in self._round_listeners:
                self._round_listeners.append(notify)
            return False
        # The same request wait_durable makes each round: a request voided by a file change
        # (forget) is made again for the current file.
        self._fsyncer.request(self._fd, self._generation, self._written)
        if notify not in self._round_listeners:
            self._round_listeners.append(notify)
        return False

    def _begin_fsync(self) -> trio.Event:
        event = self._syncing = trio.Event()
        self._sync_started = self._last_fsync_started = time.monotonic()
        return event

    async def _fsync(self, event: trio.Event) -> None:
        """One fdatasync off the event loop; marks what it covered as durable."""
        fd, covered, generation = self._fd, self._written, self._generation
        try:
            if fd is None:
                return
            await trio.to_thread.run_sync(os.fdatasync, fd, limiter=self._io_limiter)
        except OSError as error:
            reason = error.strerror or str(error)
            if self.config.appendfsync == "always":
                self._become_fatal()
                message = (f"Can't persist AOF for fsync error when the AOF fsync policy is "
                           f"'always': {reason}. Exiting...")
                if self._host is not None:
                    self._host.fatal(message)
                return
            if self._fsync_error is None:
                self._log("warning", f"Error fsyncing the AOF file: {reason}")
            self._fsync_error = reason
        else:
            if generation == self._generation and covered > self._durable:
                self._durable = covered
            self._fsync_error = None
        finally:
            self._syncing = None
            event.set()
            self._wake_fsync_waiters()

    def _fsync_done(self, generation: int, position: int, error: OSError | None,
                    seconds: float = 0.0) -> None:
        """On the trio thread, after each fdatasync of the fsync process: what it covered is
        durable (unless the file changed meanwhile); the waiters re-check their tickets."""
        if seconds >= 0.001 and self._host is not None:
            self._host.record_latency("aof-fsync-always", int(seconds * 1000))
        if error is not None:
            reason = error.strerror or str(error)
            if self.config.appendfsync == "always" and generation == self._generation:
                if not self._fatal:
                    self._become_fatal()
                    message = (f"Can't persist AOF for fsync error when the AOF fsync policy "
                               f"is 'always': {reason}. Exiting...")
                    if self._host is not None:
                        self._host.fatal(message)
            elif self._fsync_error is None:
                self._log("warning", f"Error fsyncing the AOF file: {reason}")
                self._fsync_error = reason
        elif generation == self._generation:
            if position > self._durable:
                self._durable = position
            self._fsync_error = None
        self._wake_fsync_waiters()

    def _wake_fsync_waiters(self) -> None:
        self._fsync_round.set()
        self._fsync_round = trio.Event()
        if self._round_listeners:
            listeners, self._round_listeners = self._round_listeners, []
            for notify in listeners:
                notify()

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
            self._nursery.start_soon(self._fsyncer.run, lambda line: self._log("warning", line))

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

    def _auto_rewrite_due(self) -> bool:
        config = self.config
        percentage = config.auto_aof_rewrite_percentage
        if not percentage or self._current_size <= config.auto_aof_rewrite_min_size:
            return False
        base = max(self._base_size, 1)
        return (self._current_size * 100 // base) - 100 >= percentage

    # --- rewrite ---------------------------------------------------------------------------

    def rewrite(self) -> Any:
        """BGREWRITEAOF, with Redis's replies (at once: the child runs in the background)."""
        if self._child is not None:
            return ErrorReply(errors.BACKGROUND_REWRITE_IN_PROGRESS.encode())
        if self._host is None or self._host.fork_slot.busy:
            self._rewrite_scheduled = True
            return Status(b"Background append only file rewriting scheduled")
        try:
            self._start_rewrite()
        except OSError as error:
            self._log("warning", f"Can't rewrite append only file in background: fork: {error}")
            return ErrorReply(REWRITE_FAILED)
        return Status(b"Background append only file rewriting started")

    def _start_rewrite_logged(self) -> None:
        try:
            self._start_rewrite()
        except OSError as error:
            self._log("warning", f"Can't rewrite append only file in background: fork: {error}")
            self._rewrite_retry_at = time.monotonic() + 5

    def _start_rewrite(self) -> None:
        host, nursery = self._host, self._nursery
        assert host is not None and nursery is not None
        if not host.fork_slot.try_acquire("aof"):
            self._rewrite_scheduled = True
            return
        try:
            if self.state is State.ON and self._fd is not None and self._buf:
                self._write_pending()
            if self.state is State.WAIT_REWRITE or self._fd is None:
                self._path = self._configured_path(self.config)
            directory = os.path.dirname(self._path) or "."
            parent = os.getpid()
            host.prepare_fork()
            fork_started = time.monotonic()
            pid = os.fork()
        except BaseException:
            host.fork_child_exited()
            host.fork_slot.release("aof")
            raise
        if pid == 0:
            child_main(host, directory, parent)  # never returns
        host.record_fork(time.monotonic() - fork_started)
        # THE FORK POINT.  The child writes the dataset as it is now; every write fed from
        # now on goes to the old AOF (still the one in use: a crash during the rewrite loses
        # nothing) and to the rewrite buffer, which the switch appends to the child's file.
        # Resetting the selected database makes the rewrite buffer start with a SELECT.
        self._child = RewriteChild(pid, directory)
        self._rewrite_scheduled = False
        if self.state is not State.OFF:
            self._rewrite_buf = bytearray()
            self._selected_db = -1
        host.hook.trioredis_rewrite_started()
        self._log("notice", f"Background append only file rewriting started by pid {pid}")
        nursery.start_soon(self._finish_rewrite, self._child)

    async def _finish_rewrite(self, child: RewriteChild) -> None:
        host = self._host
        assert host is not None
        temp = temp_path(child.directory, child.pid)
        ok = False
        try:
            status = await wait_child(child.pid)
            if child.killed:
                self._log("notice", "Killed AOF rewrite child; its file is removed")
            elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                self._log("notice", "Background AOF rewrite terminated with success")
                try:
                    ok = await self._install_rewrite(child, temp)
                except OSError as error:
                    self._log("warning", f"Can't install the rewritten AOF: {error}")
            elif os.WIFSIGNALED(status):
                self._log("warning", "Background AOF rewrite terminated by signal "
                          f"{os.WTERMSIG(status)}")
            else:
                self._log("warning", "Background AOF rewrite terminated with error")
        finally:
            if self._child is child:
                self._child = None
            if not ok:
                self._rewrite_buf = None
                _remove(temp)
            host.fork_child_exited()
            host.fork_slot.release("aof")
        seconds = time.monotonic() - child.started
        if child.killed:
            return
        self._last_rewrite_seconds = int(seconds)
        self._last_rewrite_ok = ok
        if ok:
            self._rewrites += 1
            self._rewrite_failures = 0
            self._log("notice", "Background AOF rewrite finished successfully")
        else:
            self._rewrite_failures += 1
            # Back off before the next attempt (automatic or scheduled), so a child that
            # keeps failing does not turn into a fork every tick.
            self._rewrite_retry_at = time.monotonic() + min(2 ** self._rewrite_failures, 60)
            if self.state is State.WAIT_REWRITE:  # appendonly yes still needs its first file
                self._rewrite_scheduled = True
        host.hook.trioredis_rewrite_finished(ok=ok, stats={"kind": "aof", "seconds": seconds})

    # Over 60 lines on purpose: the switch's steps and what a crash loses at each read in
    # order in one place, and step 3 must run with no checkpoint in between.
    async def _install_rewrite(self, child: RewriteChild, temp: str) -> bool:
        """Make the child's file the AOF.  Returns False (the old AOF stays in use, untouched)
        on any error."""
        if self.state is State.OFF:
            return await self._install_one_time(temp)
        # WHAT A CRASH LOSES DURING THE SWITCH.  Until the rename the old AOF is the AOF and
        # it is complete (every write still goes to it), so a crash or a power loss before
        # the rename costs exactly what it would without a rewrite.  The new file holds the
        # same stream before it is renamed into place: fsynced up to ``copied`` after step 2,
        # and under ``always`` up to the end before the rename, so a power loss right after
        # the rename loses no acknowledged write either; under everysec the tail after step
        # 2 is fsynced by the next tick (~1 s), under no by the OS.  The directory is fsynced
        # after the rename so the rename itself survives a power loss.
        new_fd = os.open(temp, os.O_WRONLY | os.O_APPEND)
        try:
            # 1. Catch up with the rewrite buffer off the event loop while it is big; writers
            #    keep appending to it (and to the old AOF) meanwhile.  Bounded, so writers
            #    faster than the copy cannot keep the rewrite from finishing.
            copied = self._fed - len(self._rewrite_buf or b"")
            for _ in range(CATCH_UP_ROUNDS):
                if self._rewrite_buf is None or len(self._rewrite_buf) <= SMALL_TAIL:
                    break
                chunk = bytes(self._rewrite_buf)
                self._rewrite_buf.clear()
                await trio.to_thread.run_sync(write_all, new_fd, chunk, limiter=self._copy_limiter)
                copied += len(chunk)
            # 2. fsync the new file off the loop: it then holds the stream through ``copied``.
            if self.config.appendfsync != "no":
                await trio.to_thread.run_sync(os.fsync, new_fd, limiter=self._copy_limiter)
            if self._rewrite_buf is None or child.killed or self.state is State.OFF:
                raise OSError("rewrite cancelled (appendonly switched off)")
            # 3. THE SWITCH, with no checkpoint from here on: no command runs in between, so
            #    the new file gets exactly the rest of the stream.  Under ``always`` the small
            #    tail is fsynced right here, on the loop, so that no acknowledged write is
            #    ever only in a file that the rename has just unlinked from the namespace.
            #    Under everysec the tail is fsynced by the next tick (power loss: ~1 s).
            if self.state is State.ON and self._fd is not None and self._buf:
                self._write_pending()  # the old file stays complete until the rename
            write_all(new_fd, self._rewrite_buf)
            durable = copied
            if self.config.appendfsync == "always":
                os.fdatasync(new_fd)
                durable = self._fed
            os.rename(temp, self._path)
        except BaseException:
            os.close(new_fd)
            raise
        old_fd = self._fd
        self._fd = new_fd
        self._generation += 1
        self._selected_db = -1
        self._buf.clear()  # whatever the old file could not take is in the new one
        self._written = self._fed
        self._durable = durable if self.config.appendfsync != "no" else self._durable
        self._write_error = None
        self._rewrite_buf = None
        self._current_size = self._base_size = os.fstat(new_fd).st_size
        was_waiting = self.state is State.WAIT_REWRITE
        self._set_state(State.ON)
        self._wake_fsync_waiters()  # requests for the old file are void: re-check tickets
        assert self._nursery is not None
        if old_fd is not None:
            # Closing the last descriptor of the unlinked old file frees its blocks: that can
            # take long for a big file, so it happens in a worker thread.
            self._nursery.start_soon(self._close_in_thread, old_fd)
        self._nursery.start_soon(self._fsync_directory)
        if was_waiting:
            self._log("notice", "AOF is now enabled: the rewritten file is in use")
        return True

    async def _install_one_time(self, temp: str) -> bool:
        """appendonly no: BGREWRITEAOF still produces the file.  The old file is opened first
        so that rename() does not unlink it on the event loop; it is closed in a thread."""
        try:
            old_fd: int | None = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            old_fd = None
        try:
            os.rename(temp, self._path)
        except OSError as error:
            self._log("warning", f"Error trying to rename the temporary AOF: {error.strerror}")
            if old_fd is not None:
                os.close(old_fd)
            return False
        if old_fd is not None:
            await self._close_in_thread(old_fd)
        await self._fsync_directory()
        return True

    async def _close_in_thread(self, fd: int, sync: bool = False) -> None:
        self._fsyncer.forget(fd)
        await trio.to_thread.run_sync(sync_and_close, fd, sync, limiter=self._io_limiter)

    async def _fsync_directory(self) -> None:
        """Make the rename itself durable."""
        directory = os.path.dirname(self._path) or "."

        def sync() -> None:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        try:
            await trio.to_thread.run_sync(sync, limiter=self._io_limiter)
        except OSError as error:
            self._log("warning", f"Error fsyncing the AOF directory: {error}")

    def _kill_child(self) -> None:
        child = self._child
        if child is not None and not child.killed:
            child.killed = True
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._rewrite_buf = None

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

    # --- loading ---------------------------------------------------------------------------

    def load_priority(self) -> int:
        return 100 if self._config.appendonly else 0

    async def load(self, loader: Loader) -> bool:
        if self.state is State.OFF:
            return False
        self._log_ = self._log_ or loader.log
        reloading = self._fd is not None  # DEBUG RELOAD: the file is complete and open
        if not reloading:
            self._path = self._configured_path(self._config)
            self._remove_stale_temp_files(loader.log)
        try:
            size = os.stat(self._path).st_size
        except FileNotFoundError:
            if reloading:
                return False
            return await self._import_redis7(loader)
        started = time.monotonic()
        valid_size = await self._replay(loader, self._path, size)
        if not reloading:
            self._open_for_append()
            self._set_state(State.ON)
        self._current_size = self._base_size = valid_size
        loader.log.notice(f"DB loaded from append only file: {time.monotonic() - started:.3f} "
                          "seconds")
        return True

    def _remove_stale_temp_files(self, log: Any) -> None:
        """A server killed during a rewrite leaves its child's temp file behind (the child is
        killed with it): never a valid AOF, so it is removed at start-up."""
        directory = os.path.dirname(self._path) or "."
        try:
            names = os.listdir(directory)
        except OSError:
            return
        for name in names:
            if name.startswith("temp-rewriteaof-bg-") and name.endswith(".aof"):
                log.notice(f"Removing the temporary AOF {name} left by an interrupted rewrite")
                _remove(os.path.join(directory, name))

    async def _import_redis7(self, loader: Loader) -> bool:
        """No AOF of ours, but Redis 7's multi-part AOF (``appendonlydir/`` with a manifest)
        is in ``dir``: replay its base and incremental files, in manifest order, without
        touching them.  Our own file is then born from a rewrite of the loaded dataset (see
        :meth:`_open_after_load`).  A base in RDB format (Redis's default,
        ``aof-use-rdb-preamble yes``) is decoded by :mod:`.rdb_base`."""
        directory = os.path.join(self._config.dir, self._config.appenddirname)
        manifest = os.path.join(directory, f"{self._config.appendfilename}.manifest")
        try:
            with open(manifest, encoding="utf-8") as handle:
                lines = [shlex.split(line) for line in handle if line.strip()]
        except FileNotFoundError:
            return False
        entries = [dict(zip(words[::2], words[1::2], strict=False)) for words in lines]
        parts = ([e["file"] for e in entries if e.get("type") == "b"]
                 + [e["file"] for e in entries if e.get("type") == "i"])
        loader.log.notice(f"Importing Redis 7's multi-part AOF from {directory}: "
                          f"{', '.join(parts)}")
        for index, name in enumerate(parts):
            path = os.path.join(directory, name)
            if index == 0 and starts_as_rdb(path):  # Redis's default: the base is an RDB
                try:
                    loaded = await load_rdb_base(loader, path, self._io_limiter)
                except RdbBaseError as error:
                    loader.log.warning(f"{error}. Refusing to start on wrong data: check it "
                                       f"with: redis-check-rdb {path}")
                    raise AofLoadError(str(error)) from None
                loader.log.notice(f"RDB base {name} loaded: {loaded} keys")
                continue
            await self._replay(loader, path, os.path.getsize(path), own_file=False,
                               last=index == len(parts) - 1)
        return True

    async def _replay(self, loader: Loader, path: str, size: int, own_file: bool = True,
                      last: bool = True) -> int:
        """Execute every command of the file; handle a torn tail; the valid size."""
        scanner = AofScanner()
        last_yield = time.monotonic()
        loader.progress(0, size)
        # A big file is millions of small objects that live on (keys, values): the cyclic GC
        # would walk the growing heap again and again for nothing while they are created.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            with open(path, "rb") as handle:
                while True:
                    chunk = await trio.to_thread.run_sync(handle.read, CHUNK_SIZE)
                    if not chunk:
                        break
                    scanner.feed(chunk)
                    for batch in scanner.batches():
                        failed = loader.execute_many(batch)
                        if failed is not None:
                            index, reply = failed
                            name = batch[index][0].decode(errors="replace")
                            raise AofCorruption(scanner.offset_of(batch, index),
                                                f"Error replaying '{name}' ({reply!r})")
                        if time.monotonic() - last_yield >= YIELD_SECONDS:
                            # Serve the event loop now and then, as Redis does every 1000
                            # commands: clients connecting meanwhile get -LOADING, INFO works.
                            loader.progress(scanner.consumed, size)  # core logs percent, ETA
                            await trio.sleep(0)
                            last_yield = time.monotonic()
                    loader.progress(scanner.consumed, size)
                    await trio.sleep(0)
                    last_yield = time.monotonic()
                handle.seek(scanner.consumed)
                end = scanner.finish(handle.read())
        except AofCorruption as error:
            loader.log.warning(
                f"Bad file format reading the append only file {path} at offset "
                f"{error.offset}: {error.reason}. Make a backup of your AOF file, then use "
                f"trioredis-check-aof --fix {path}")
            raise AofLoadError(f"AOF {path} is damaged at offset {error.offset}") from None
        finally:
            if gc_was_enabled:
                gc.enable()
        if end.unfinished_multi_at is not None:
            loader.execute([b"DISCARD"])  # the unfinished transaction never runs
        if not end.torn:
            return end.total_size
        return self._load_torn_tail(loader, path, end, own_file, last)

    def _load_torn_tail(self, loader: Loader, path: str, end: Any, own_file: bool,
                        last: bool) -> int:
        """The file ends inside a command: refuse to start, or keep the whole commands (and
        cut the file back to them when it is ours); the valid size."""
        # TORN TAIL.  A crash or power loss can leave the last command (or a MULTI block
        # without its EXEC) incomplete.  With aof-load-truncated yes the whole commands are
        # loaded and the file is cut back to them (before the MULTI of an unfinished
        # transaction, so it can never be half-applied by a later restart); appends then
        # continue from a clean end.  With no, the server refuses to start.
        if not self._config.aof_load_truncated or not last:
            loader.log.warning(
                f"Unexpected end of file reading the append only file {path} (valid up to "
                f"offset {end.valid_size} of {end.total_size}). You can: 1) Make a backup of "
                f"your AOF file, then use trioredis-check-aof --fix {path}. 2) Alternatively "
                "you can set the 'aof-load-truncated' configuration option to yes and restart "
                "the server.")
            raise AofLoadError(f"AOF {path} is truncated at offset {end.valid_size}")
        loader.log.warning(f"!!! Warning: short read while loading the AOF file {path}!!!")
        if end.unfinished_multi_at is not None:
            loader.log.warning("Revert incomplete MULTI/EXEC transaction in AOF file "
                               f"(from offset {end.unfinished_multi_at})")
        if not own_file:  # Redis's file: loaded as far as it is whole, left as it is
            loader.log.warning(f"AOF loaded anyway because aof-load-truncated is enabled "
                               f"(valid up to offset {end.valid_size} of {end.total_size})")
            return end.valid_size
        loader.log.warning(
            f"AOF loaded anyway because aof-load-truncated is enabled: truncating {path} from "
            f"{end.total_size} to {end.valid_size} bytes")
        os.truncate(path, end.valid_size)
        return end.valid_size

    async def reload_point(self) -> bool:
        """DEBUG RELOAD: everything written and fsynced, so load() rebuilds the dataset."""
        if self.state is not State.ON or self._fd is None:
            return False
        if self._buf and not self._write_pending():
            return False
        while self._durable < self._written:
            if self._syncing is not None:
                await self._syncing.wait()
            else:
                await self._fsync(self._begin_fsync())
            if self._fsync_error is not None:
                return False
        return True

    # --- shutdown and INFO -----------------------------------------------------------------

    async def aclose(self, save: bool) -> None:
        """Shutdown: kill a rewrite child, write and fsync what is buffered, close."""
        child = self._child
        if child is not None:
            self._kill_child()
            _remove(temp_path(child.directory, child.pid))
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

    # --- WAITAOF ---------------------------------------------------------------------------

    async def wait_fsynced(self, position: int, timeout: float) -> bool:
        """WAITAOF: until everything written up to ``position`` is fsynced (or timeout)."""
        with trio.move_on_after(timeout if timeout > 0 else float("inf")):
            while self._durable < position and self.state is State.ON:
                if self._syncing is not None:
                    await self._syncing.wait()
                elif self._nursery is not None:
                    await self._fsync(self._begin_fsync())
                else:
                    return False
        return self._durable >= position

    @property
    def fed_position(self) -> int:
        return self._fed

    @property
    def durable_position(self) -> int:
        return self._durable


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

