"""The reactor: one task that serves every ready client socket in one turn."""

from __future__ import annotations

import os
import select
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from .connection import MUTED, PARKED, REACTOR, Connection

if TYPE_CHECKING:
    from ..persistence import Ticket
    from . import Server

EXTRA_TURNS = 16  # turns the reactor may run back to back before it yields to trio


class Reactor:
    """Serves every ready client socket in one turn, as Redis's event loop does.

    Why: a task per connection costs a trio scheduling round-trip per read and per send for
    every client; with 50 busy clients that overhead, not the commands, was most of the
    time.  Here one task owns an epoll fd (level-triggered), waits for it with
    ``trio.lowlevel.wait_readable``, then for each ready socket reads once (non-blocking),
    runs the complete commands and queues their replies.  Once per turn the persistence
    backends write what they buffered (before any reply leaves, as Redis's ``beforeSleep``);
    under ``appendfsync always`` the clients that wrote are parked until the fsync covering
    the turn ends (one fsync for every client of the turn: group commit), while the next turn
    already runs.  Then the replies leave with one non-blocking ``send`` per client.  A
    client whose send would block waits for EPOLLOUT (and is not read meanwhile); a client
    whose command blocks is handed to a task of its own (:meth:`Server._serve_task`)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.epoll = select.epoll()
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.epoll.register(self.wake_fd, select.EPOLLIN)
        self.by_fd: dict[int, Connection] = {}
        # Descriptors that are not clients, read by a callback within a turn (watch_readable).
        self.watched: dict[int, Callable[[], None]] = {}
        self.to_send: dict[Connection, None] = {}  # ordered set
        self.to_close: dict[Connection, None] = {}
        self.in_turn = False
        # appendfsync always: groups of parked writers (oldest first) with their tickets.
        self.parked_groups: deque[tuple[list[Connection], list[Ticket]]] = deque()
        self.recheck_parked = False
        # The tickets of the newest write that may not be durable yet (None once it is).
        self.newest_tickets: list[Ticket] | None = None
        self.stats = server.engine.stats if server.engine is not None else None

    def add(self, connection: Connection) -> None:
        connection.mode = REACTOR
        self.by_fd[connection.fd] = connection
        self.epoll.register(connection.fd, select.EPOLLIN)
        if connection.out:
            self.to_send[connection] = None
            self.wake()

    def remove(self, connection: Connection) -> None:
        if self.by_fd.pop(connection.fd, None) is not None:
            try:
                self.epoll.unregister(connection.fd)
            except OSError:
                pass
        self.to_send.pop(connection, None)

    def watch_readable(self, fd: int, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` within a turn whenever ``fd`` is readable (level-triggered: it
        must read until EAGAIN), until the returned function is called.

        Why: the AOF's fsync process answers once per fdatasync under ``appendfsync always``.
        Read by a trio task, each answer cost a task wake-up, a trio epoll re-arm and a
        second pass through trio's scheduler before the reactor's next turn; read here, the
        answer is one more event of the epoll the reactor already waits on, and the replies
        it makes durable leave at the end of the same turn."""
        self.watched[fd] = callback
        self.epoll.register(fd, select.EPOLLIN)

        def unwatch() -> None:
            if self.watched.pop(fd, None) is not None:
                try:
                    self.epoll.unregister(fd)
                except (OSError, ValueError):
                    pass  # already closed (the epoll forgets a closed descriptor)
        return unwatch

    def wake(self) -> None:
        """Make the reactor run a turn soon (output or a close queued from outside a turn)."""
        if not self.in_turn:
            try:
                os.eventfd_write(self.wake_fd, 1)
            except BlockingIOError:
                pass

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        epoll_fd = self.epoll.fileno()
        assert self.server.engine is not None
        persistence = self.server.engine.persistence
        try:
            task_status.started()
            while True:
                await trio.lowlevel.wait_readable(epoll_fd)
                self.turn(self.epoll.poll(0))
                # Requests that are already there are served without a trio round trip
                # (epoll_wait, a re-arm and a task switch cost more than a turn of a few
                # clients), for a bounded number of turns so other tasks still run.  (Waiting
                # here with a timeout was measured too: no clear gain, and epoll's timeout
                # is whole milliseconds, which other tasks would wait for.)
                for _ in range(EXTRA_TURNS):
                    events = self.epoll.poll(0)
                    if not events:
                        break
                    self.turn(events)
                # Before waiting: the backends' once-per-round work, as Redis's beforeSleep
                # (under appendfsync always the AOF's fsync starts here when none runs yet, so
                # one fsync covers every turn above instead of the first one only).
                persistence.before_sleep()
        finally:
            for connection in list(self.by_fd.values()):
                self.server._close_now(connection)
            self.epoll.close()
            os.close(self.wake_fd)

    def turn(self, events: list[tuple[int, int]]) -> None:
        server = self.server
        engine = server.engine
        assert engine is not None
        by_fd = self.by_fd
        served: list[Connection] = []
        self.in_turn = True
        try:
            now = time.monotonic()
            for fd, mask in events:
                connection = by_fd.get(fd)
                if connection is None:
                    if fd == self.wake_fd:
                        try:
                            os.eventfd_read(fd)
                        except BlockingIOError:
                            pass
                    else:
                        callback = self.watched.get(fd)
                        if callback is not None:
                            callback()
                    continue
                if connection.want_write:
                    if mask & (select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP):
                        self.to_send[connection] = None
                    continue
                if connection.parked:
                    if connection.parked == PARKED:
                        connection.parked = MUTED
                        self.epoll.modify(connection.fd, 0)
                    continue
                served.append(connection)
                server._read_and_run(connection, self, now)
            # One write per turn, before any reply leaves.  Clients that wrote and whose
            # writes must be durable first (appendfsync always) are parked until the fsync
            # covering them ends; the others' replies leave now, and the next turn runs
            # while the disk syncs.  (A client handed to a task this turn flushes itself.)
            writers = []
            for connection in served:
                if connection.client.wrote and connection.mode is REACTOR:
                    connection.client.wrote = False
                    writers.append(connection)
            if writers or engine.unflushed:
                tickets = engine.persistence.flush_writes()
                if tickets:
                    self.newest_tickets = tickets
                    if writers:
                        self._park(writers, tickets)
            if self.newest_tickets is not None:
                self._park_readers()
            if self.recheck_parked:
                self.recheck_parked = False
                self._release_durable_groups()
            # Client-side caching: BCAST invalidations of this turn's changes, behind its
            # replies (Redis sends them before the event loop sleeps).
            engine.tracking.broadcast()
            to_send, self.to_send = self.to_send, {}
            for connection in to_send:
                if connection.mode is REACTOR and not connection.parked:
                    self._send_nowait(connection)
            to_close, self.to_close = self.to_close, {}
            for connection in to_close:
                if connection.mode is REACTOR:
                    server._close_now(connection)
        finally:
            self.in_turn = False

    def _park_readers(self) -> None:
        """READS AFTER WRITES (appendfsync always).  A reply made while a write is not yet
        durable may reveal it: a GET of the key, an EXEC, a pub/sub or keyspace message, a
        MONITOR line.  So every reply queued in this turn waits for the fsync that covers the
        newest write, as Redis's replies wait for ``beforeSleep``'s fsync: a power loss can
        then never erase what any client was told.  (Replies of other turns were sent only
        once the writes before them were durable.)  Backends take part through their tickets'
        synchronous ``Ticket.durable_or_notify``: the AOF's under ``always`` does; under
        everysec/no it answers None and reads go out at once, as in Redis (even while a
        failed write(2) holds its writer's reply: MISCONF replies and reads must not wait for
        a full disk)."""
        tickets = self.newest_tickets
        assert tickets is not None
        if self._durable_state(tickets) is not False:
            self.newest_tickets = None
            return
        readers = [connection for connection in self.to_send
                   if connection.mode is REACTOR and not connection.parked]
        if readers:
            self._park(readers, tickets)

    def _park(self, writers: list[Connection], tickets: list[Ticket]) -> None:
        """Hold ``writers``' replies (and stop reading them, to keep each client's replies in
        order) until ``tickets`` are durable.

        Tickets whose ``durable_or_notify`` answers False (the AOF's, with its fsync process)
        call :meth:`_release_durable` on the trio thread after each fsync round, which sends
        the replies of every group now durable: no task and no epoll_ctl per turn.  Tickets
        that answer None are awaited by a task (:meth:`_release_when_durable`)."""
        state = self._durable_state(tickets)
        if state is True:
            return  # already durable: the replies leave with this turn's
        for connection in writers:
            connection.parked = PARKED
        if state is None:
            assert self.server._nursery is not None
            self.server._nursery.start_soon(self._release_when_durable, writers, tickets)
        else:
            self.parked_groups.append((writers, tickets))

    def _durable_state(self, tickets: list[Ticket]) -> bool | None:
        """True: every ticket is durable; False: not yet, and every backend concerned will
        call :meth:`_release_durable` after its next fsync round; None: await ``Ticket.wait``."""
        return self.server.engine.persistence.durable_state(tickets, self._release_durable)

    def _release_durable(self) -> None:
        """After an fsync round: send the replies of the parked groups now durable."""
        if self.in_turn:
            self.recheck_parked = True  # at the end of this turn's flush
            return
        self._release_durable_groups()

    def _release_durable_groups(self) -> None:
        groups = self.parked_groups
        while groups:
            writers, tickets = groups[0]
            state = self._durable_state(tickets)
            if state is False:
                break  # later groups hold later tickets
            groups.popleft()
            if state is None:
                assert self.server._nursery is not None
                self.server._nursery.start_soon(self._release_when_durable, writers, tickets)
            else:
                self._unpark(writers)

    async def _release_when_durable(self, writers: list[Connection], tickets: list[Ticket]) -> None:
        engine = self.server.engine
        assert engine is not None
        await engine.persistence.wait_durable(tickets)
        self._unpark(writers)

    def _unpark(self, writers: list[Connection]) -> None:
        for connection in writers:
            if connection.mode is REACTOR and connection.parked:
                if connection.parked == MUTED and not connection.want_write:
                    self.epoll.modify(connection.fd, select.EPOLLIN)
                connection.parked = False
                self._send_nowait(connection)

    def _send_nowait(self, connection: Connection) -> None:
        out = connection.out
        if out:
            data = b"".join(out) if len(out) > 1 else out[0]
            out.clear()
            try:
                sent = connection.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.server._close_now(connection)
                return
            self.stats.net_output_bytes += sent
            if sent < len(data):
                out.append(data[sent:])
                if not connection.want_write:
                    connection.want_write = True
                    self.epoll.modify(connection.fd, select.EPOLLOUT)
                return
        if connection.want_write:
            connection.want_write = False
            self.epoll.modify(connection.fd, select.EPOLLIN)
        if connection.closing:
            self.server._close_now(connection)
