"""The trio transport: listeners, one task per connection, the cron, start-up and shutdown.

The I/O model lives here and only here.  Commands and plugins see a client through
:class:`trioredis.client.Client` and its :class:`~trioredis.client.Transport` (push a reply,
close), so serving connections differently (a reactor over every ready socket, say) changes
this module alone.

One batch at a time per connection: everything one ``recv`` brought is parsed and executed,
the persistence backends flush (and, under ``appendfsync always``, the batch waits for its
fsync), then all replies leave in one ``send``.
"""

from __future__ import annotations

import errno
import os
import signal
import socket as stdsocket
import time
from collections.abc import Callable
from typing import Any

import trio

from . import __version__, errors
from .client import Client, Transport
from .config import LoadedConfig
from .engine import Block, Engine
from .log import Log
from .persistence import PersistenceRegistry
from .plugin_manager import make_plugin_manager, plugin_names
from .resp import ProtocolError, RequestParser, encode

RECV_SIZE = 65536


class Connection:
    """The transport side of one client: its socket and the send exclusion."""

    __slots__ = ("sock", "client", "cancel_scope", "sending", "send_free", "pushes", "pushing")

    def __init__(self, sock: trio.socket.SocketType, client: Client) -> None:
        self.sock = sock
        self.client = client
        self.cancel_scope = trio.CancelScope()
        self.sending = False
        self.send_free: trio.Event | None = None
        self.pushes: list[bytes] = []
        self.pushing = False

    async def send(self, data: bytes) -> None:
        # Replies and pushes (pub/sub) may be sent from two tasks; keep them whole and ordered
        # without paying for a lock's checkpoint when nobody else sends.
        while self.sending:
            if self.send_free is None:
                self.send_free = trio.Event()
            await self.send_free.wait()
        self.sending = True
        try:
            view = memoryview(data)
            while view:
                sent = await self.sock.send(view)
                view = view[sent:]
        finally:
            self.sending = False
            if self.send_free is not None:
                self.send_free.set()
                self.send_free = None


class Server:
    """One trioredis server: ``await nursery.start(server.run)`` returns once it listens."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        handle_signals: bool = False,
        log: Log | None = None,
        ephemeral_port: bool = False,
    ) -> None:
        """``ephemeral_port``: listen on a port the kernel picks (tests), since ``port 0``
        means "no TCP" in redis.conf."""
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
        self.ready = trio.Event()
        self.exit_code = 0

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
        registry = PersistenceRegistry()
        manager.hook.trioredis_register_persistence(registry=registry, config=config)
        engine.add_backends(registry.backends)
        await self._open_listeners()
        self._banner(manager)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            engine.nursery = nursery
            if self.handle_signals:
                nursery.start_soon(self._watch_signals)
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
            host = engine.backend_host()
            for backend in engine.backends:
                await nursery.start(backend.run, host)
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
        assert self._nursery is not None
        while True:
            try:
                sock, address = await listener.accept()
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.log.warning(f"Error accepting a client connection: {error.strerror}")
                    await trio.sleep(0.1)
                    continue
                if error.errno in (errno.EBADF, errno.EINVAL):  # listener closed at shutdown
                    return
                continue
            self._nursery.start_soon(self._serve_connection, sock, address)

    async def _serve_connection(self, sock: trio.socket.SocketType, address: Any) -> None:
        engine = self.engine
        assert engine is not None
        with sock:
            if sock.family != stdsocket.AF_UNIX:
                sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY, 1)
                if self.config.tcp_keepalive:
                    _set_keepalive(sock, self.config.tcp_keepalive)
                addr = _format_address(address)
                laddr = _format_address(sock.getsockname())
            else:
                addr, laddr = "/unixsocket:0", self.unix_path or ""
            if len(engine.clients) >= self.config.maxclients:
                engine.stats.rejected_connections += 1
                try:
                    await sock.send(b"-%s\r\n" % errors.MAX_CLIENTS.encode())
                except OSError:
                    pass
                return
            client = engine.new_client(addr, laddr, sock.fileno())
            connection = Connection(sock, client)
            client.transport = Transport(
                push=lambda reply, c=connection: self._push(c, reply),
                close=connection.cancel_scope.cancel,
            )
            self.connections[client.id] = connection
            try:
                with connection.cancel_scope:
                    await self._serve_requests(connection)
            except OSError:
                pass
            finally:
                self.connections.pop(client.id, None)
                engine.drop_client(client)

    async def _serve_requests(self, connection: Connection) -> None:
        engine = self.engine
        assert engine is not None
        sock, client = connection.sock, connection.client
        parser = RequestParser(self.config.proto_max_bulk_len)
        stats = engine.stats
        call = engine.call
        query_limit = self.config.client_query_buffer_limit
        while True:
            data = await sock.recv(RECV_SIZE)
            if not data:
                return
            stats.net_input_bytes += len(data)
            client.last_interaction = time.monotonic()
            parser.feed(data)
            out: list[bytes] = []
            closing = False
            while True:
                try:
                    argv = parser.gets()
                except ProtocolError as error:
                    out.append(b"-ERR Protocol error: %s\r\n" % str(error).encode())
                    self.log.verbose(f"Protocol error ({error}) from client: id={client.id} addr={client.addr}")
                    closing = True
                    break
                if argv is None:
                    break
                reply = call(client, argv)
                if reply.__class__ is Block:
                    await self._flush_and_send(connection, out)
                    out = []
                    reply = await engine.wait_blocked(client, reply)
                out.append(encode(reply, client.resp3))
                if client.close_after_reply:
                    closing = True
                    break
            if not closing and parser.pending() > query_limit:
                self.log.warning(f"Closing client that reached max query buffer length: id={client.id} addr={client.addr}")
                closing = True
            await self._flush_and_send(connection, out)
            if closing:
                return

    async def _flush_and_send(self, connection: Connection, out: list[bytes]) -> None:
        engine = self.engine
        assert engine is not None
        await engine.flush_for_reply(connection.client)
        if out:
            data = b"".join(out) if len(out) > 1 else out[0]
            engine.stats.net_output_bytes += len(data)
            await connection.send(data)

    def _push(self, connection: Connection, reply: Any) -> None:
        """An out-of-band message for a client (pub/sub): sent by a task of its own, in order."""
        connection.pushes.append(encode(reply, connection.client.resp3))
        if not connection.pushing and self._nursery is not None:
            connection.pushing = True
            self._nursery.start_soon(self._send_pushes, connection)

    async def _send_pushes(self, connection: Connection) -> None:
        try:
            while connection.pushes:
                data = b"".join(connection.pushes)
                connection.pushes.clear()
                try:
                    await connection.send(data)
                except (OSError, trio.ClosedResourceError):
                    connection.cancel_scope.cancel()
                    return
        finally:
            connection.pushing = False

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
                engine.flush_nowait()
            timeout = self.config.timeout
            if timeout:
                limit = time.monotonic() - timeout
                for connection in list(self.connections.values()):
                    client = connection.client
                    if (client.last_interaction < limit and not client.blocked
                            and not client.channels and not client.patterns):
                        self.log.verbose(f"Closing idle client id={client.id}")
                        connection.cancel_scope.cancel()
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
            engine.flush_nowait()
            if engine.fatal_error is None:
                for backend in engine.backends:
                    try:
                        await backend.aclose(save=bool(engine.shutdown_save) if engine.shutdown_save is not None else _default_save(engine))
                    except Exception as error:
                        self.log.warning(f"Error closing persistence backend {backend.name}: {error!r}")
                        self.exit_code = 1
            else:
                self.exit_code = 1
        self.log.warning("trioredis is now ready to exit, bye bye...")
        nursery.cancel_scope.cancel()


def _default_save(engine: Engine) -> bool:
    """SIGTERM and a bare SHUTDOWN save a snapshot when save points are configured."""
    return bool(engine.config.save)


def _format_address(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _set_keepalive(sock: trio.socket.SocketType, interval: int) -> None:
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE, 1)
    if hasattr(stdsocket, "TCP_KEEPIDLE"):
        sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_KEEPIDLE, interval)
        sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_KEEPINTVL, max(1, interval // 3))
        sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_KEEPCNT, 3)


async def serve(loaded: LoadedConfig, *, handle_signals: bool = True, on_ready: Callable[[Server], None] | None = None) -> int:
    """Run a server until it shuts down; returns the process exit code."""
    server = Server(loaded, handle_signals=handle_signals)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        if on_ready is not None:
            on_ready(server)
    return server.exit_code
