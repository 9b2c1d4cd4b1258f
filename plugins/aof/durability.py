"""The AOF's durability: tickets, group commit under ``appendfsync always``, fsyncs through a
worker thread or the fsync process, ``DEBUG RELOAD``'s sync point and WAITAOF.

A mixin of :class:`~trioredis.plugins.aof.backend.AofBackend`: the state it reads (``_fd``,
``_written``, ``_durable``, ``_generation``, ``_fsyncer``...) is created in that class's
constructor; positions are explained in ``backend.py``'s docstring.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio
from trioredis import Ticket

from .state import TICK_SECONDS, State

if TYPE_CHECKING:
    from .backend import AofBackend


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


class Durability:
    """Waiting for, and making, fsyncs (mixed into ``AofBackend``)."""

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
        # (forget) is made again for the current file.  Not while a request waits for
        # before_sleep() for this file: the reactor asks here within its round, and the
        # round ends there (earlier rounds' requests are already made).
        if not self._sync_at_sleep or self._fsyncer.requested_generation != self._generation:
            self._fsyncer.request(self._fd, self._generation, self._written)
        if notify not in self._round_listeners:
            self._round_listeners.append(notify)
        return False

    def before_sleep(self) -> None:
        """The event loop served every ready client: start the fdatasync that flush()
        deferred (appendfsync always, no fdatasync running), covering every write so far."""
        if self._sync_at_sleep:
            self._sync_at_sleep = False
            if self._fd is not None and self._fsyncer.running and not self._skip_fsync():
                self._fsyncer.request(self._fd, self._generation, self._written)

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
