"""One client connection as the transport holds it: its socket, parser and pending output,
and the modes it moves through (served by the reactor, by a task of its own, closed)."""

from __future__ import annotations

import socket as stdsocket

import trio

from ..client import Client
from ..resp import RequestParser

RECV_SIZE = 65536


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
