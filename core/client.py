"""A connected client as commands and plugins see it: its state, not its socket.

The transport (``server.py``) owns the socket and fills :attr:`Client.transport` with the
narrow interface commands need (push a message, close); nothing else touches I/O, so the
I/O model can change without touching commands.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import CommandContext
    from .keyspace import Database

_ids = itertools.count(1)


class Transport:
    """What the I/O layer offers to commands: push an out-of-band reply, close the client."""

    def __init__(
        self,
        push: Callable[[Any], None] = lambda reply: None,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self.push = push
        self.close = close


class Client:
    __slots__ = (
        "id", "name", "db", "resp3", "authenticated", "user", "multi", "multi_error",
        "watched", "dirty_cas", "wrote", "addr", "laddr", "fd", "created", "last_interaction",
        "transport", "ctx", "last_command", "lib_name", "lib_ver", "close_after_reply",
        "channels", "patterns", "kind", "blocked", "no_evict", "is_loader", "query_buffer",
        "output_buffer",
    )

    def __init__(self, db: Database, addr: str = "", laddr: str = "", fd: int = -1) -> None:
        self.id = next(_ids)
        self.name = b""
        self.db = db
        self.resp3 = False
        self.authenticated = False
        self.user = "default"
        self.multi: list[tuple[Any, list[bytes]]] | None = None
        self.multi_error = False  # a command failed to queue: EXEC answers EXECABORT
        self.watched: list[tuple[Database, bytes]] = []
        self.dirty_cas = False  # a WATCHed key changed: EXEC answers null
        self.wrote = False  # propagated a change since its replies were last flushed
        self.addr = addr
        self.laddr = laddr
        self.fd = fd
        self.created = time.monotonic()
        self.last_interaction = self.created
        self.transport = Transport()
        self.ctx: CommandContext | None = None
        self.last_command = "NULL"  # a command's name as declared (str)
        self.lib_name = b""
        self.lib_ver = b""
        self.close_after_reply = False
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.kind = "normal"
        self.blocked = False
        self.no_evict = False
        self.is_loader = False
        self.query_buffer = 0
        self.output_buffer = 0

    @property
    def subscriptions(self) -> int:
        return len(self.channels) + len(self.patterns)
