"""The trio transport: listeners, the reactor that serves connections, the cron, start-up and
shutdown.

The I/O model lives here and only here.  Commands and plugins see a client through
:class:`trioredis.client.Client` and its :class:`~trioredis.client.Transport` (push a reply,
close), so serving connections differently changes this module alone.

Connections are served by one :class:`Reactor` task (every ready socket in one turn, one
persistence flush per turn, then every reply leaves); a connection whose command blocks moves
to a task of its own until it is done waiting.  For each client, everything one ``recv``
brought is parsed and executed, the persistence backends flush (and, under ``appendfsync
always``, wait for the fsync), then its replies leave in one ``send``.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket as stdsocket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from . import __version__, errors
from .acl import protected_mode_refusal
from .client import Client, Transport
from .config import LoadedConfig, output_buffer_limits
from .engine import Block, Engine
from .log import Log
from .persistence import PersistenceRegistry
from .plugin_manager import make_plugin_manager, plugin_names
from .resp import ProtocolError, Raw, RequestParser, encode
from .supervision import SystemdNotifier

RECV_SIZE = 65536
# TRIOREDIS_REACTOR=0 serves every connection from a task of its own (for measurements).
USE_REACTOR = os.environ.get("TRIOREDIS_REACTOR", "1") != "0"
EXTRA_TURNS = 16  # turns the reactor may run back to back before it yields to trio


class Connection:
    """The transport side of one client: its socket, parser and pending output.

    A connection is served by the reactor (``mode == REACTOR``) until one of its commands has
    to wait (a blocking pop, SAVE, ...); then a task of its own serves it (``TASK``) until its
    buffered commands are done, and hands it back."""

    __slots__ = ("sock", "fd", "client", "parser", "out", "mode", "cancel_scope", "sending",
                 "send_free", "closing", "want_write", "trio_sock", "parked")

    def __init__(self, sock: stdsocket.socket, client: Client, parser: RequestParser) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.client = client
        self.parser = parser
        self.out: list[bytes] = []  # encoded replies and pushes not yet handed to the kernel
        self.mode = REACTOR
        self.cancel_scope = trio.CancelScope()
        self.sending = False  # a task is in an awaiting send (TASK mode)
        self.send_free: trio.Event | None = None
        self.closing = False  # close once ``out`` has left
        self.want_write = False  # the kernel buffer was full: waiting for EPOLLOUT
        self.trio_sock: trio.socket.SocketType | None = None
        self.parked = False  # replies wait for the fsync of their writes (appendfsync always)

    async def drain(self) -> None:
        """Send everything in ``out`` from a task (TASK mode), whole and in order: replies
        and pushes may be sent from two tasks, without paying for a lock when nobody else
        sends."""
        while self.sending:
            if self.send_free is None:
                self.send_free = trio.Event()
            await self.send_free.wait()
        if self.trio_sock is None:
            self.trio_sock = trio.socket.from_stdlib_socket(self.sock)
        self.sending = True
        try:
            while self.out:
                data = b"".join(self.out)
                self.out.clear()
                view = memoryview(data)
                while view:
                    sent = await self.trio_sock.send(view)
                    view = view[sent:]
        finally:
            self.sending = False
            if self.send_free is not None:
                self.send_free.set()
                self.send_free = None


REACTOR, TASK, CLOSED = "reactor", "task", "closed"
# Connection.parked: PARKED keeps the socket registered for EPOLLIN (a client awaiting its
# reply sends nothing, so it costs no epoll_ctl); one that pipelines on while parked is
# MUTED (unregistered from EPOLLIN) the first time it shows up readable.
PARKED, MUTED = 1, 2


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
        self.to_send: dict[Connection, None] = {}  # ordered set
        self.to_close: dict[Connection, None] = {}
        self.in_turn = False
        # appendfsync always: groups of parked writers (oldest first) with their tickets.
        self.parked_groups: deque[tuple[list[Connection], list[Any]]] = deque()
        self.recheck_parked = False
        # The tickets of the newest write that may not be durable yet (None once it is).
        self.newest_tickets: list[Any] | None = None
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

    def wake(self) -> None:
        """Make the reactor run a turn soon (output or a close queued from outside a turn)."""
        if not self.in_turn:
            try:
                os.eventfd_write(self.wake_fd, 1)
            except BlockingIOError:
                pass

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        epoll_fd = self.epoll.fileno()
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
        once the writes before them were durable.)  Backends take part through the
        synchronous ``durable_or_notify``: the AOF under ``always`` does; under everysec/no
        it answers None and reads go out at once, as in Redis (even while a failed write(2)
        holds its writer's reply: MISCONF replies and reads must not wait for a full disk)."""
        tickets = self.newest_tickets
        assert tickets is not None
        if self._durable_state(tickets) is not False:
            self.newest_tickets = None
            return
        readers = [connection for connection in self.to_send
                   if connection.mode is REACTOR and not connection.parked]
        if readers:
            self._park(readers, tickets)

    def _park(self, writers: list[Connection], tickets: list[Any]) -> None:
        """Hold ``writers``' replies (and stop reading them, to keep each client's replies in
        order) until ``tickets`` are durable.

        Backends with a synchronous ``durable_or_notify`` (the AOF's fsync process) call
        :meth:`_release_durable` on the trio thread after each fsync round, which sends the
        replies of every group now durable: no task and no epoll_ctl per turn.  Others are
        awaited by a task (:meth:`_release_when_durable`)."""
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

    def _durable_state(self, tickets: list[Any]) -> bool | None:
        """True: every ticket is durable; False: not yet, and every backend concerned will
        call :meth:`_release_durable` after its next fsync round; None: ask ``wait_durable``."""
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

    async def _release_when_durable(self, writers: list[Connection], tickets: list[Any]) -> None:
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


class Server:
    """One trioredis server: ``await nursery.start(server.run)`` returns once it listens."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        handle_signals: bool = False,
        log: Log | None = None,
        ephemeral_port: bool = False,
        supervised: str = "no",
    ) -> None:
        """``ephemeral_port``: listen on a port the kernel picks (tests), since ``port 0``
        means "no TCP" in redis.conf.  ``supervised``: the service manager in charge
        (``systemd``, ``upstart``, ``no``), for INFO's process_supervised."""
        self.supervised = supervised
        self.loaded = loaded
        self.ephemeral_port = ephemeral_port
        self.config = loaded.config
        self.handle_signals = handle_signals
        self.log = log or Log(self.config.loglevel, self.config.logfile)
        self.engine: Engine | None = None
        self.ports: list[int] = []
        self.unix_path: str | None = None
        self.connections: dict[int, Connection] = {}
        self._listeners: list[trio.socket.SocketType] = []
        self._nursery: trio.Nursery | None = None
        self.reactor: Reactor | None = None
        self.ready = trio.Event()
        self.exit_code = 0
        self._output_limits: dict[str, tuple[int, int, int]] = {}
        self._output_limits_text: str | None = None
        # The output size (bytes) from which a normal client's replies are checked against its
        # limits, 0 when it has none (refreshed by config_applied): the reactor tests this
        # once per command instead of parsing the option's text.
        self._normal_output_threshold = 0
        self._output_soft_since: dict[int, float] = {}  # client id -> over the soft limit since
        self._output_overflow: set[int] = set()  # client ids closed for their output

    @property
    def port(self) -> int:
        return self.ports[0] if self.ports else 0

    # --- start-up --------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> int:
        config = self.config
        # No chdir here (servers in tests share one process): backends join config.dir with
        # their file names.  The CLI changes directory as redis-server does.
        if config.dir:
            os.makedirs(config.dir, exist_ok=True)
        manager = make_plugin_manager(config.loadplugin)
        engine = self.engine = Engine(self.loaded, manager, self.log)
        engine.server = self
        self._normal_output_threshold = self._output_threshold()
        registry = PersistenceRegistry()
        manager.hook.trioredis_register_persistence(registry=registry, config=config)
        engine.persistence.register(registry.backends)
        await self._open_listeners()
        self._banner(manager)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            engine.nursery = nursery
            if self.handle_signals:
                nursery.start_soon(self._watch_signals)
            self.reactor = Reactor(self)
            await nursery.start(self.reactor.run)
            for listener in self._listeners:
                nursery.start_soon(self._accept_loop, listener)
            task_status.started(self)
            started = time.time()
            await engine.load()
            if engine.keyspace.key_count():
                self.log.notice(
                    f"DB loaded from disk: {time.time() - started:.3f} seconds "
                    f"({engine.keyspace.key_count()} keys)"
                )
            await engine.persistence.start(nursery)
            nursery.start_soon(self._cron)
            self.ready.set()
            self.log.notice("Ready to accept connections")
            await engine.shutdown_requested.wait()
            await self._shutdown(nursery)
        return self.exit_code

    def _banner(self, manager: Any) -> None:
        config = self.config
        where = f"port={self.port}" if self.ports else "no TCP port"
        self.log.notice(
            f"trioredis version={__version__}, pid={os.getpid()}, {where}, "
            f"config={self.loaded.path or 'none (defaults)'}"
        )
        backends = ", ".join(b.name for b in self.engine.backends) if self.engine else ""
        self.log.notice(f"Persistence backends loaded: {backends}")
        self.log.verbose(f"Plugins: {', '.join(plugin_names(manager))}")
        if self.loaded.without_effect:  # accepted and shown as Redis does, used for nothing
            self.log.notice(f"Options without effect here: {', '.join(self.loaded.without_effect)}")
        if config.unixsocket:
            self.log.notice(f"The server is now ready to accept connections at {config.unixsocket}")

    async def _open_listeners(self) -> None:
        config = self.config
        if config.port or self.ephemeral_port:
            port = 0 if self.ephemeral_port else config.port
            for address in config.bind:
                optional = address.startswith("-")
                host = address.lstrip("-")
                host = {"*": "0.0.0.0", "::*": "::"}.get(host, host)
                family = stdsocket.AF_INET6 if ":" in host else stdsocket.AF_INET
                sock = trio.socket.socket(family, stdsocket.SOCK_STREAM)
                try:
                    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
                    if family == stdsocket.AF_INET6:
                        sock.setsockopt(stdsocket.IPPROTO_IPV6, stdsocket.IPV6_V6ONLY, 1)
                    await sock.bind((host, port))
                    sock.listen(config.tcp_backlog)
                except OSError as error:
                    sock.close()
                    if optional and error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                        continue
                    raise OSError(error.errno, f"Could not create server TCP listening socket {host}:{port}: {error.strerror}") from None
                port = sock.getsockname()[1]  # port 0: every address shares the first's port
                self.ports.append(port)
                self._listeners.append(sock)
        if config.unixsocket:
            path = config.unixsocket
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            sock = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
            await sock.bind(path)
            if config.unixsocketperm:
                os.chmod(path, config.unixsocketperm)
            sock.listen(config.tcp_backlog)
            self.unix_path = path
            self._listeners.append(sock)
        if not self._listeners:
            raise OSError("no listening socket: set port or unixsocket")

    # --- connections -----------------------------------------------------------------------

    async def _accept_loop(self, listener: trio.socket.SocketType) -> None:
        while True:
            try:
                sock, address = await listener.accept()
            except trio.ClosedResourceError:  # shutdown closed the listener under us
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.log.warning(f"Error accepting a client connection: {error.strerror}")
                    await trio.sleep(0.1)
                    continue
                if error.errno in (errno.EBADF, errno.EINVAL):  # listener closed at shutdown
                    return
                continue
            try:
                self._accept(sock, address)
            except OSError:
                sock.close()

    def _accept(self, sock: trio.socket.SocketType, address: Any) -> None:
        engine = self.engine
        assert engine is not None and self.reactor is not None
        if sock.family != stdsocket.AF_UNIX:
            sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY, 1)
            if self.config.tcp_keepalive:
                _set_keepalive(sock, self.config.tcp_keepalive)
            addr = _format_address(address)
            laddr = _format_address(sock.getsockname())
        else:
            addr, laddr = "/unixsocket:0", self.unix_path or ""
        raw = stdsocket.socket(sock.family, sock.type, fileno=sock.detach())
        raw.setblocking(False)
        if len(engine.clients) >= self.config.maxclients:
            engine.stats.rejected_connections += 1
            try:
                raw.send(b"-%s\r\n" % errors.MAX_CLIENTS.encode())
            except OSError:
                pass
            raw.close()
            return
        if sock.family != stdsocket.AF_UNIX:
            denied = protected_mode_refusal(engine.config.protected_mode, engine.acl, address[0])
            if denied is not None:
                engine.stats.rejected_connections += 1
                try:
                    raw.send(denied)
                except OSError:
                    pass
                raw.close()
                return
        client = engine.new_client(addr, laddr, raw.fileno())
        parser = RequestParser(self.engine.config.proto_max_bulk_len, client)
        connection = Connection(raw, client, parser)
        client.transport = Transport(
            push=lambda reply, c=connection: self._push(c, reply),
            close=lambda c=connection: self._close_soon(c),
        )
        self.connections[client.id] = connection
        if USE_REACTOR:
            self.reactor.add(connection)
        else:
            self._to_task(connection, None)

    def _read_and_run(self, connection: Connection, reactor: Reactor, now: float) -> None:
        """Reactor: one non-blocking read, then every complete command in it."""
        try:
            data = connection.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._close_now(connection)
            return
        if not data:
            self._close_now(connection)
            return
        assert self.engine is not None
        self.engine.stats.net_input_bytes += len(data)
        connection.client.last_interaction = now
        connection.parser.feed(data)
        self._run_buffered(connection, reactor, now)

    def _run_buffered(self, connection: Connection, reactor: Reactor, now: float) -> None:
        engine = self.engine
        assert engine is not None
        client, parser, out = connection.client, connection.parser, connection.out
        gets = parser.gets
        call = engine.call
        closing = False
        queued = len(out)
        # Replies are counted as they are made, so a batch of 9,000 GETs of a big value stops
        # at the hard limit instead of building them all first.
        threshold = self._normal_output_threshold
        held = sum(map(len, out)) if threshold else 0
        while True:
            try:
                argv = gets()
            except ProtocolError as error:
                out.append(self._protocol_error(connection, error))
                closing = True
                break
            if argv is None:
                break
            reply = call(client, argv)
            kind = reply.__class__
            # The common replies encoded inline (a call less per command), the rest by encode.
            if kind is Raw:
                out.append(reply)
            elif kind is bytes:
                out.append(b"$%d\r\n%b\r\n" % (len(reply), reply))
            elif kind is int:
                out.append(b":%d\r\n" % reply)
            elif kind is Block:
                self._to_task(connection, reply)
                return
            else:
                out.append(encode(reply, client.resp3))
            if client.after_reply and self._after_reply(client, out):
                closing = True
                break
            if threshold and out:
                held += len(out[-1])
                if held >= threshold:
                    held = sum(map(len, out))  # exact (a dropped reply was counted)
                    if held >= threshold:
                        if self._output_limit_reached(connection, held):
                            return
                        # Over the soft limit only: its time runs; the hard limit (if any)
                        # is still checked per command, the soft one again after the batch.
                        threshold = self._output_limits["normal"][0]
        if not closing and parser.pending() > self.config.client_query_buffer_limit:
            self._query_limit(connection)
            closing = True
        if (len(out) > queued and self._normal_output_threshold
                and self._output_limit_reached(connection, sum(map(len, out)))):
            return
        if closing:
            connection.closing = True
            reactor.to_send[connection] = None
        elif len(out) > queued:
            reactor.to_send[connection] = None

    def _after_reply(self, client: Client, out: list[bytes]) -> bool:
        """The rare work once a command's reply is queued (``client.after_reply``): CLIENT
        REPLY OFF/SKIP drop it (the last entry of ``out``: pushes made while the command ran
        came before it, and stay); True when the client is to be closed (QUIT...)."""
        if client.reply_flags and client.reply_queued():
            out.pop()
        return client.close_after_reply

    def _protocol_error(self, connection: Connection, error: ProtocolError) -> bytes:
        client = connection.client
        self.log.verbose(f"Protocol error ({error}) from client: id={client.id} addr={client.addr}")
        if client.replies_dropped:  # CLIENT REPLY OFF/SKIP silence this error too, as in Redis
            return b""
        return b"-ERR Protocol error: %s\r\n" % str(error).encode()

    # --- client-output-buffer-limit -----------------------------------------------------------
    #
    # A client that does not read its replies must not grow the server without bound.  Replies
    # to a normal client are checked once per batch (the reactor reads no more from a client
    # whose replies wait for the kernel, so its queue grows a batch at a time); pub/sub
    # messages are checked as each is queued.  Over the hard limit, or over the soft limit for
    # longer than its seconds, the client is closed at once and what it had queued is dropped,
    # as Redis's closeClientOnOutputBufferLimitReached does.

    def _output_threshold(self) -> int:
        """The smaller of the normal class's non-zero hard and soft limits (0: unlimited)."""
        limits = self._output_limits_for()
        if limits is None:
            return 0
        return min(limit for limit in limits[:2] if limit)

    def _output_limits_for(self) -> tuple[int, int, int] | None:
        """The normal class's limits, None when unlimited (the default: nothing to check)."""
        assert self.engine is not None
        text = self.engine.config.client_output_buffer_limit
        if text is not self._output_limits_text:
            self._output_limits = output_buffer_limits(text)
            self._output_limits_text = text
        normal = self._output_limits["normal"]
        return normal if normal[0] or normal[1] else None

    def _output_limit_reached(self, connection: Connection, pending: int) -> bool:
        """Close ``connection`` if ``pending`` queued bytes break its class's limits."""
        client = connection.client
        self._output_limits_for()
        kind = "pubsub" if client.in_pubsub else "normal"
        hard, soft, seconds = self._output_limits[kind]
        over = bool(hard and pending >= hard)
        if not over and soft and pending >= soft:
            now = time.monotonic()
            since = self._output_soft_since.setdefault(client.id, now)
            over = now - since > seconds
        elif self._output_soft_since:
            self._output_soft_since.pop(client.id, None)
        if not over:
            return False
        self._output_soft_since.pop(client.id, None)
        if len(self._output_overflow) > 1024:  # ids of connections closed since
            self._output_overflow &= self.connections.keys()
        self._output_overflow.add(client.id)
        self.log.warning(
            f"Client id={client.id} addr={client.addr} scheduled to be closed ASAP for "
            "overcoming of output buffer limits.")
        connection.out.clear()
        client.output_buffer = 0
        self._close_soon(connection)
        return True

    def _query_limit(self, connection: Connection) -> None:
        client = connection.client
        self.log.warning(f"Closing client that reached max query buffer length: id={client.id} addr={client.addr}")

    def _to_task(self, connection: Connection, block: Block | None) -> None:
        """Serve ``connection`` from a task of its own (its command blocks, or no reactor)."""
        assert self._nursery is not None and self.reactor is not None
        self.reactor.remove(connection)
        connection.mode = TASK
        connection.cancel_scope = trio.CancelScope()
        self._nursery.start_soon(self._serve_task, connection, block)

    async def _serve_task(self, connection: Connection, block: Block | None) -> None:
        engine = self.engine
        assert engine is not None
        client, parser = connection.client, connection.parser
        done = False
        try:
            with connection.cancel_scope:
                if block is not None:
                    await self._flush_and_drain(connection)
                    reply = await self._wait_blocked(connection, block)
                    connection.out.append(encode(reply, client.resp3))
                    if client.after_reply and self._after_reply(client, connection.out):
                        connection.closing = True
                while True:
                    closing = await self._run_buffered_in_task(connection)
                    await self._flush_and_drain(connection)
                    if closing or connection.closing:
                        done = True
                        break
                    if USE_REACTOR:
                        break  # back to the reactor
                    if connection.trio_sock is None:
                        connection.trio_sock = trio.socket.from_stdlib_socket(connection.sock)
                    data = await connection.trio_sock.recv(RECV_SIZE)
                    if not data:
                        done = True
                        break
                    engine.stats.net_input_bytes += len(data)
                    client.last_interaction = time.monotonic()
                    parser.feed(data)
        except OSError:
            done = True
        except BaseException:  # the server is stopping (cancelled): close, then let it go
            self._close_now(connection)
            raise
        if done or connection.cancel_scope.cancelled_caught or connection.closing:
            self._close_now(connection)
        elif connection.mode is TASK:
            assert self.reactor is not None
            self.reactor.add(connection)

    async def _wait_blocked(self, connection: Connection, block: Block) -> Any:
        """Wait for a blocked command's reply while still watching the socket.

        A client that disconnects while blocked must stop waiting at once, as Redis unblocks
        it: else its waiter stays queued and a later push hands an element to a closed
        connection, where it is lost.  Commands pipelined meanwhile wait in the parser."""
        engine = self.engine
        assert engine is not None
        replies: list[Any] = []

        async def watch_socket() -> None:
            while connection.parser.pending() <= self.config.client_query_buffer_limit:
                try:
                    await trio.lowlevel.wait_readable(connection.sock)
                except trio.ClosedResourceError:  # closed under us: the close path cleans up
                    return
                try:
                    data = connection.sock.recv(RECV_SIZE)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    connection.closing = True
                    connection.cancel_scope.cancel()
                    return
                engine.stats.net_input_bytes += len(data)
                connection.parser.feed(data)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_socket)
            replies.append(await engine.wait_blocked(connection.client, block))
            nursery.cancel_scope.cancel()
        return replies[0]

    async def _run_buffered_in_task(self, connection: Connection) -> bool:
        """The commands already received, blocking ones included; True to close after."""
        engine = self.engine
        assert engine is not None
        client, parser, out = connection.client, connection.parser, connection.out
        threshold = self._normal_output_threshold  # as in _run_buffered
        held = sum(map(len, out)) if threshold else 0
        while True:
            try:
                argv = parser.gets()
            except ProtocolError as error:
                out.append(self._protocol_error(connection, error))
                return True
            if argv is None:
                break
            reply = engine.call(client, argv)
            if reply.__class__ is Block:
                await self._flush_and_drain(connection)
                reply = await self._wait_blocked(connection, reply)
            out.append(encode(reply, client.resp3))
            if client.after_reply and self._after_reply(client, out):
                return True
            if threshold and out:
                held += len(out[-1])
                if held >= threshold and self._output_limit_reached(
                        connection, sum(map(len, out))):
                    return False  # closing: _output_limit_reached dropped the output
        if parser.pending() > self.config.client_query_buffer_limit:
            self._query_limit(connection)
            return True
        return False

    async def _flush_and_drain(self, connection: Connection) -> None:
        engine = self.engine
        assert engine is not None
        await engine.persistence.flush_for_reply(connection.client)
        if connection.out:
            engine.stats.net_output_bytes += sum(map(len, connection.out))
            await connection.drain()

    def _push(self, connection: Connection, reply: Any) -> None:
        """An out-of-band message for a client (pub/sub), queued behind its replies."""
        client = connection.client
        if connection.mode is CLOSED or client.id in self._output_overflow:
            return
        out = connection.out
        data = encode(reply, client.resp3)
        out.append(data)
        # Bytes queued, in O(1) per push: out[0] may be a partly sent leftover, what follows
        # it was counted as it came.
        if len(out) <= 2:
            client.output_buffer = len(out[0]) + (len(data) if len(out) == 2 else 0)
        else:
            client.output_buffer += len(data)
        if self._output_limit_reached(connection, client.output_buffer):
            return
        if connection.mode is REACTOR:
            assert self.reactor is not None
            self.reactor.to_send[connection] = None
            self.reactor.wake()
        elif not connection.sending and self._nursery is not None:
            self._nursery.start_soon(self._send_pushes, connection)

    async def _send_pushes(self, connection: Connection) -> None:
        try:
            await connection.drain()
        except (OSError, trio.ClosedResourceError):
            connection.cancel_scope.cancel()

    def _close_soon(self, connection: Connection) -> None:
        """CLIENT KILL, idle timeout: close the connection after the current command."""
        if connection.mode is TASK:
            connection.closing = True
            connection.cancel_scope.cancel()
        elif connection.mode is REACTOR:
            assert self.reactor is not None
            self.reactor.to_close[connection] = None
            self.reactor.wake()

    def _close_now(self, connection: Connection) -> None:
        if connection.mode is CLOSED:
            return
        if connection.mode is REACTOR and self.reactor is not None:
            self.reactor.remove(connection)
        connection.mode = CLOSED
        if connection.trio_sock is not None:
            trio.lowlevel.notify_closing(connection.sock)
        connection.sock.close()
        self.connections.pop(connection.client.id, None)
        assert self.engine is not None
        self.engine.drop_client(connection.client)
        # What the client sent and was sent goes now, not at the next full collection: the
        # transport's callbacks close a cycle (connection -> client -> transport ->
        # connection) that would otherwise hold a 100 MB half-read upload until then.
        connection.out.clear()
        connection.parser = RequestParser()
        connection.client.transport = Transport()

    def config_applied(self, old: Any, new: Any) -> None:
        """After CONFIG SET: proto-max-bulk-len reaches every connected client, as in Redis,
        and the reactor learns whether normal clients now have an output limit."""
        if old.proto_max_bulk_len != new.proto_max_bulk_len:
            for connection in self.connections.values():
                connection.parser.set_max_bulk_len(new.proto_max_bulk_len)
        self._normal_output_threshold = self._output_threshold()

    def client_connections(self) -> list[Connection]:
        return list(self.connections.values())


    # --- cron ------------------------------------------------------------------------------

    async def _cron(self) -> None:
        engine = self.engine
        assert engine is not None
        while True:
            await trio.sleep(1 / self.config.hz)
            if engine.active_expire_enabled:
                engine.keyspace.active_expire_cycle()
            engine.sample_ops()
            if engine.unflushed:
                engine.persistence.flush_nowait()
            timeout = self.config.timeout
            if timeout:
                limit = time.monotonic() - timeout
                for connection in list(self.connections.values()):
                    client = connection.client
                    if (client.last_interaction < limit and not client.blocked
                            and not client.in_pubsub):
                        self.log.verbose(f"Closing idle client id={client.id}")
                        self._close_soon(connection)
            self.config = engine.config

    # --- shutdown --------------------------------------------------------------------------

    async def _watch_signals(self) -> None:
        assert self.engine is not None
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
                self.log.warning(f"Received {name} scheduling shutdown...")
                self.engine.request_shutdown(None)

    async def _shutdown(self, nursery: trio.Nursery) -> None:
        engine = self.engine
        assert engine is not None
        self.log.warning("User requested shutdown..." if engine.fatal_error is None else "Stopping on a fatal error")
        for listener in self._listeners:
            listener.close()
        if self.unix_path:
            try:
                os.unlink(self.unix_path)
            except OSError:
                pass
        with trio.CancelScope(shield=True):
            engine.persistence.flush_nowait()
            if engine.fatal_error is None:
                save = (bool(engine.shutdown_save) if engine.shutdown_save is not None
                        else _default_save(engine))
                if not await engine.persistence.close(save, self.log):
                    self.exit_code = 1
            else:
                self.exit_code = 1
        self.log.warning("trioredis is now ready to exit, bye bye...")
        nursery.cancel_scope.cancel()


def _default_save(engine: Engine) -> bool:
    """SIGTERM and a bare SHUTDOWN save a snapshot when save points are configured."""
    return bool(getattr(engine.config, "save", ()))  # an option of plugins/snapshot


def _format_address(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _set_keepalive(sock: trio.socket.SocketType, interval: int) -> None:
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE, 1)
    if hasattr(stdsocket, "TCP_KEEPIDLE"):
        sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_KEEPIDLE, interval)
        sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_KEEPINTVL, max(1, interval // 3))
        sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_KEEPCNT, 3)


async def serve(loaded: LoadedConfig, *, handle_signals: bool = True, on_ready: Callable[[Server], None] | None = None,
                notifier: SystemdNotifier | None = None, supervised: str = "no") -> int:
    """Run a server until it shuts down; returns the process exit code.  ``notifier``: the
    service manager to tell when loading ends and when shutdown begins."""
    server = Server(loaded, handle_signals=handle_signals, supervised=supervised)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        if notifier is not None:
            nursery.start_soon(notifier.follow, server)
        if on_ready is not None:
            on_ready(server)
    return server.exit_code
