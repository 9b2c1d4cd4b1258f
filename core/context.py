"""What a command handler is handed (:class:`CommandContext`) and the engine's counters
(:class:`Stats`).  Split from :mod:`trioredis.engine`: a plugin author reads this module to
learn the members a handler may use, without reading the command dispatch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client
    from .config import Config
    from .engine import Engine
    from .keyspace import Database


class CommandContext:
    """What a handler sees: ``ctx.db`` (the client's database), ``ctx.keyspace``,
    ``ctx.client``, ``ctx.config``; ``ctx.dirty += n`` to say it changed n things;
    ``ctx.propagate(argv)`` to propagate a different effect than the command as sent;
    ``ctx.in_transaction``, ``ctx.spawn(fn)``, ``ctx.wait_on(awaitable)`` and
    ``ctx.backend(name)`` for commands that wait on a backend.  (``ctx.engine`` is core's
    own: plugins use the members above.)"""

    __slots__ = ("engine", "client", "db", "keyspace", "dirty", "propagated")

    def __init__(self, engine: Engine, client: Client) -> None:
        self.engine = engine
        self.client = client
        self.db: Database = client.db
        self.keyspace = engine.keyspace
        self.dirty = 0
        self.propagated = False

    @property
    def config(self) -> Config:
        return self.engine.config

    def propagate(self, argv: list[bytes], db: int | None = None) -> None:
        """Propagate ``argv`` as (part of) this command's effect, instead of the command."""
        self.propagated = True
        self.engine.propagate(self.db.index if db is None else db, argv)

    def select(self, index: int) -> None:
        self.db = self.keyspace[index]
        self.client.db = self.db

    @property
    def in_transaction(self) -> bool:
        """Whether the command runs inside EXEC (where nothing may wait)."""
        return self.engine.in_exec

    def spawn(self, async_fn: Callable[[], Any]) -> None:
        """Run ``async_fn()`` in the server's nursery."""
        self.engine.spawn(async_fn)

    def wait_on(self, awaitable: Any) -> Any:
        """The reply of a command that waits (WAITAOF): a Block whose reply is
        ``awaitable``'s result; this client waits, not the server."""
        return self.engine.wait_on(awaitable)

    @property
    def replication(self) -> Any:
        """The server's replication state (:class:`trioredis.replication.Replication`), for
        commands that count replicas (WAITAOF)."""
        return self.engine.replication

    def backend(self, name: str) -> Any:
        """The persistence backend registered under ``name`` on this server, or None."""
        for backend in self.engine.persistence.backends:
            if backend.name == name:
                return backend
        return None

    def touch(self, key: bytes, db: Database | None = None) -> None:
        """Signal that ``key`` changed (WATCH, blocked clients), for a key the command's key
        positions do not name (MOVE's target database, say)."""
        self.keyspace.signal_modified(db or self.db, key)
        tracking = self.engine.tracking
        if tracking.table is not None:  # client-side caching (a served BLMOVE's destination)
            tracking.invalidate(key, self.client, tracking.running())


class Stats:
    """INFO stats' counters, commandstats and errorstats (CONFIG RESETSTAT empties them)."""

    __slots__ = (
        "commands_processed", "connections_received", "rejected_connections", "keyspace_hits",
        "keyspace_misses", "net_input_bytes", "net_output_bytes", "errors", "started",
        "per_command", "error_counts", "evicted_clients",
    )

    def __init__(self) -> None:
        self.started = time.time()
        self.reset()

    def reset(self) -> None:
        self.commands_processed = 0
        self.connections_received = 0
        self.rejected_connections = 0
        self.keyspace_hits = 0
        self.keyspace_misses = 0
        self.net_input_bytes = 0
        self.net_output_bytes = 0
        self.errors = 0
        self.evicted_clients = 0  # maxmemory-clients (trioredis.client_memory)
        # INFO commandstats and latencystats: full name (``config|get``) -> [calls, usec,
        # failed calls, rejected calls, latency histogram]; one lookup per command.
        self.per_command: dict[str, list[Any]] = {}
        self.error_counts: dict[str, int] = {}

    def command_record(self, name: str) -> list[Any]:
        """``per_command``'s entry for a full command name, made on first use."""
        record = self.per_command.get(name)
        if record is None:
            record = self.per_command[name] = [0, 0, 0, 0, {}]
        return record
