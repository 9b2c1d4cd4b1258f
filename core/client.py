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

# CLIENT REPLY, as Redis's client flags: OFF drops every reply until CLIENT REPLY ON; SKIP drops
# the reply of the command being run; SKIP_NEXT (set by CLIENT REPLY SKIP) becomes SKIP when
# the next command starts.  Pub/sub messages and (un)subscribe confirmations still go out.
REPLY_OFF, REPLY_SKIP, REPLY_SKIP_NEXT = 1, 2, 4


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
        "transport", "ctx", "last_command", "lib_name", "lib_ver", "_close_after_reply",
        "reply_flags", "after_reply", "channels", "patterns", "shard_channels", "kind", "blocked",
        "no_evict", "evicted", "tracking",
        "is_loader", "query_buffer", "output_buffer", "repl", "takeover",
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
        self._close_after_reply = False
        self.reply_flags = 0  # CLIENT REPLY: REPLY_OFF | REPLY_SKIP | REPLY_SKIP_NEXT
        # Something to do once this command's reply is queued (close the client, drop the
        # reply): the one test the transport makes per command, False for almost every client.
        self.after_reply = False
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.shard_channels: set[bytes] = set()  # SSUBSCRIBE's, counted apart (CLIENT LIST ssub)
        self.kind = "normal"
        self.blocked = False
        self.no_evict = False
        self.evicted = False  # closed by maxmemory-clients, its connection not yet gone
        # CLIENT TRACKING's options while tracking is on (trioredis.tracking.ClientTracking).
        self.tracking: Any = None
        self.is_loader = False
        self.query_buffer = 0
        self.output_buffer = 0
        # Replication (trioredis.replication): what REPLCONF said, then the replica's link
        # once PSYNC made this connection a replica.
        self.repl: Any = None
        # Set by a command (PSYNC) that takes the connection over once its reply is queued:
        # an async function given the raw link; the transport then serves nothing else.
        self.takeover: Callable[[Any], Any] | None = None

    @property
    def close_after_reply(self) -> bool:
        """QUIT, CLIENT KILL of itself, ACL changes: close once the reply has left."""
        return self._close_after_reply

    @close_after_reply.setter
    def close_after_reply(self, value: bool) -> None:
        self._close_after_reply = value
        self.after_reply = value or bool(self.reply_flags)

    def set_reply_flags(self, flags: int) -> None:
        self.reply_flags = flags
        self.after_reply = bool(flags) or self._close_after_reply

    @property
    def replies_dropped(self) -> bool:
        """CLIENT REPLY OFF or SKIP drops what the command now running replies (its pub/sub
        confirmations excepted: they go out as pushes)."""
        return bool(self.reply_flags & (REPLY_OFF | REPLY_SKIP))

    def reply_queued(self) -> bool:
        """The transport queued this command's reply as the last entry of its output: whether
        to drop it (CLIENT REPLY OFF/SKIP), then a SKIP asked for by CLIENT REPLY SKIP applies
        to the next command, as Redis's ``resetClient`` does between commands.  (A blocked
        command gets here once its reply is ready, so a SKIP before it drops that reply.)"""
        flags = self.reply_flags
        drop = bool(flags & (REPLY_OFF | REPLY_SKIP))
        if flags:
            self.set_reply_flags(flags & REPLY_OFF | (REPLY_SKIP if flags & REPLY_SKIP_NEXT else 0))
        return drop

    @property
    def subscriptions(self) -> int:
        return len(self.channels) + len(self.patterns)

    @property
    def in_pubsub(self) -> bool:
        """Subscribed to anything (Redis's CLIENT_PUBSUB flag): under RESP2, only the
        subscription commands, PING, QUIT and RESET are then allowed."""
        return bool(self.channels or self.patterns or self.shard_channels)
