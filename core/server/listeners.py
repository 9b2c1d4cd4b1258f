"""Listening sockets and accepting clients: TCP on every ``bind`` address, the unix socket,
``maxclients`` and protected mode at the door, and each new connection handed to the
reactor."""

from __future__ import annotations

import errno
import os
import socket as stdsocket
from typing import Any

import trio

from .. import errors
from ..acl import protected_mode_refusal
from ..client import Transport
from ..resp import RequestParser
from .connection import Connection


class Listeners:
    """The part of :class:`trioredis.server.Server` that opens listeners and accepts."""

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
        self.reactor.add(connection)


def _format_address(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _set_keepalive(sock: trio.socket.SocketType, interval: int) -> None:
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE, 1)
    if hasattr(stdsocket, "TCP_KEEPIDLE"):
        sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_KEEPIDLE, interval)
        sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_KEEPINTVL, max(1, interval // 3))
        sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_KEEPCNT, 3)
