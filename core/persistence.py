"""The persistence interface: what a backend implements and how core drives it.

Core knows backends only through :class:`PersistenceBackend`.  The order core relies on, for one
batch of commands from one client (shared/DESIGN.md section 1):

1. each command that changed data is handed to every backend's ``feed(db, argv)`` (buffering);
2. before the batch's replies are sent, ``flush()`` is called on each backend: it writes what it
   buffered (write(2)) and returns a ticket when the reply must also wait for durability;
3. core awaits ``wait_durable(ticket)`` for each ticket, then sends the replies.

So a reply never leaves before the write(2) of its change returned, under every policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import trio

PROGRESS_LOG_SECONDS = 1.0  # the loading progress line: at most once a second


@runtime_checkable
class PersistenceBackend(Protocol):
    """What a persistence backend implements.  Subclass :class:`BaseBackend` to inherit
    do-nothing defaults and implement only what the backend does."""

    name: str
    # The optional operations this backend does, each with its method: "save" (``save``
    # and ``last_save_time``: SAVE, BGSAVE, LASTSAVE), "rewrite" (``rewrite``: BGREWRITEAOF),
    # "reload" (``reload_point``: DEBUG RELOAD).  Core asks only backends that declare one.
    operations: frozenset[str]

    def feed(self, db: int, argv: Sequence[bytes]) -> None:
        """Buffer one propagated command (sync, cheap, never blocks)."""

    def flush(self) -> int | None:
        """Write what was buffered; return a ticket for :meth:`wait_durable` when replies must
        also wait for it to be durable (``appendfsync always``), else None.  Sync: called
        before every batch of replies, so a short write(2) to the page cache is fine here."""

    async def wait_durable(self, ticket: int) -> None:
        """Return once everything up to ``ticket`` is durable (fsynced)."""

    def durable_or_notify(self, ticket: int, notify: Callable[[], None]) -> bool | None:
        """The synchronous twin of :meth:`wait_durable`, which lets a backend take part in
        group commit at no cost per turn: True when ``ticket`` is durable now; False when
        not yet, and then the backend calls ``notify()`` on the trio thread after its next
        fsync round (core asks again then); None when only ``wait_durable`` can tell."""

    async def run(self, host: BackendHost, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The backend's own tasks for the server's lifetime (fsync timer, save points,
        children).  Call ``task_status.started()`` once ready.  Cancelled at shutdown, after
        :meth:`aclose`."""

    async def load(self, loader: Loader) -> bool:
        """Load the dataset at start-up; True if this backend loaded it (later backends are
        then not asked), False when it has nothing to load."""

    def load_priority(self) -> int:
        """Backends are asked to load in decreasing priority order (AOF before snapshot)."""

    def refuse_writes(self) -> str | None:
        """An error reply text (``MISCONF ...``) while writes must be refused, else None."""

    def wants_writes(self) -> bool:
        """Whether ``feed`` and ``refuse_writes`` must run for each write now.  Asked at
        start-up and again after every configuration change: a backend the config switched
        off (the AOF with ``appendonly no``) then costs nothing per command."""

    def may_refuse_writes(self) -> bool:
        """Whether ``refuse_writes`` can refuse now (a write error is pending, say).  Asked
        at start-up, after every configuration change and whenever the backend calls
        ``host.write_path_changed()``: while False, ``refuse_writes`` is not called."""

    def flushed(self) -> None:
        """FLUSHALL just emptied every database (a client's, not a replayed one): a snapshot
        backend stops a running save child, whose file would bring the keys back."""

    def save(self, background: bool, schedule: bool = False) -> Any:
        """SAVE / BGSAVE (operation "save"): the reply, or an awaitable of it when the
        client must wait (SAVE); the client waits, not the server.  Inside EXEC an awaitable
        is refused, so a background start there answers at once ("scheduled")."""

    def rewrite(self) -> Any:
        """BGREWRITEAOF (operation "rewrite"): the reply, or an awaitable of it."""

    def last_save_time(self) -> int | None:
        """Unix time of the last successful save (LASTSAVE; operation "save"), None if none."""

    async def reload_point(self) -> bool:
        """DEBUG RELOAD (operation "reload"): make the files complete now (save, or flush
        and fsync); True when ``load()`` can then rebuild the whole dataset from them."""

    async def aclose(self, save: bool) -> None:
        """Shutdown: flush and fsync; with ``save`` also write a final snapshot."""

    def statistics(self) -> Mapping[str, Any]:
        """A frozen view of counters: INFO persistence prints these fields."""

    def config_changed(self, old: Any, new: Any) -> None:
        """CONFIG SET changed the configuration of this backend's server (``new`` is in force
        from now on): react without awaiting (hand async work to ``run()``'s task)."""


class BaseBackend:
    """Do-nothing defaults for every :class:`PersistenceBackend` method."""

    name = "base"
    operations: frozenset[str] = frozenset()

    def feed(self, db: int, argv: Sequence[bytes]) -> None:
        pass

    def flush(self) -> int | None:
        return None

    async def wait_durable(self, ticket: int) -> None:
        pass

    def durable_or_notify(self, ticket: int, notify: Callable[[], None]) -> bool | None:
        return None

    async def run(self, host: BackendHost, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def load(self, loader: Loader) -> bool:
        return False

    def load_priority(self) -> int:
        return 0

    def refuse_writes(self) -> str | None:
        return None

    def wants_writes(self) -> bool:
        return True

    def may_refuse_writes(self) -> bool:
        return True

    def flushed(self) -> None:
        pass

    def last_save_time(self) -> int | None:
        return None

    async def reload_point(self) -> bool:
        return False

    async def aclose(self, save: bool) -> None:
        pass

    def statistics(self) -> Mapping[str, Any]:
        return {}

    def config_changed(self, old: Any, new: Any) -> None:
        pass


class PersistenceRegistry:
    """Collects backends during ``trioredis_register_persistence``."""

    def __init__(self) -> None:
        self.backends: list[PersistenceBackend] = []

    def add(self, backend: PersistenceBackend) -> None:
        if any(existing.name == backend.name for existing in self.backends):
            raise ValueError(f"persistence backend {backend.name!r} is registered twice")
        self.backends.append(backend)


class ForkSlot:
    """Only one persistence child (AOF rewrite or snapshot) runs at a time, as in Redis: a
    backend checks :attr:`busy` to answer "scheduled", and holds the slot while its child
    runs.  The slot is also busy while EXEC runs a transaction (``in_transaction``): Redis
    never forks there, so BGSAVE and BGREWRITEAOF inside MULTI are scheduled."""

    def __init__(self) -> None:
        self.owner: str | None = None
        self.in_transaction = False
        self._freed = trio.Event()

    @property
    def busy(self) -> bool:
        return self.owner is not None or self.in_transaction

    def try_acquire(self, owner: str) -> bool:
        if self.owner is not None or self.in_transaction:
            return False
        self.owner = owner
        self._freed = trio.Event()
        return True

    async def acquire(self, owner: str) -> None:
        while not self.try_acquire(owner):
            await self._freed.wait()

    def release(self, owner: str) -> None:
        if self.owner == owner:
            self.owner = None
            self._freed.set()


class ServerSide(Protocol):
    """What :class:`Loader` and :class:`BackendHost` use of the server (the engine), named
    here so this contract imports nothing of core's (no import cycle through it)."""

    keyspace: Any  # a trioredis.keyspace.Keyspace
    config: Any
    hook: Any
    log: Any
    dirty: int
    fork_slot: ForkSlot
    persistence: Any  # trioredis.backends.Backends (refresh_write_path)

    def replay(self, argv: list[bytes]) -> Any: ...
    def replay_many(self, argvs: Sequence[list[bytes]]) -> tuple[int, Any] | None: ...
    def loading_progress(self, loaded: int, total: int) -> None: ...
    def loading_eta(self) -> int: ...
    def rewrite_value(self, db: int, key: bytes, value: Any, expire_ms: int | None) -> Any: ...
    def prepare_fork(self) -> None: ...
    def fork_child_exited(self) -> None: ...
    def record_fork(self, seconds: float) -> None: ...
    def record_latency(self, event: str, milliseconds: int) -> None: ...
    def fatal(self, message: str) -> None: ...


class Loader:
    """What a backend gets to load a dataset at start-up (or DEBUG RELOAD)."""

    def __init__(self, engine: ServerSide) -> None:
        self._engine = engine
        self.keyspace = engine.keyspace
        self.log = engine.log  # the server log, for the loader's own lines (loaded, refused)
        self.total_bytes = 0
        self.loaded_bytes = 0
        self._last_progress_log = time.monotonic()  # a load shorter than a second logs none

    def execute(self, argv: list[bytes]) -> Any:
        """Run one command (``SELECT`` included) as a client that gets no replies and
        propagates nothing; returns the reply (an ErrorReply for a failed command, which a
        loader should treat as corruption).  MULTI/EXEC work as for any client."""
        return self._engine.replay(argv)

    def execute_many(self, argvs: Sequence[list[bytes]]) -> tuple[int, Any] | None:
        """Run commands in order as :meth:`execute` runs each, much faster per command (what
        a big file needs): None when all succeeded, else ``(index, reply)`` of the first
        that failed (an ErrorReply, or an EXEC reply holding one); later ones did not run."""
        return self._engine.replay_many(argvs)

    def progress(self, loaded_bytes: int, total_bytes: int) -> None:
        """Report progress: INFO's loading_* fields and the log line use it."""
        self.loaded_bytes = loaded_bytes
        self.total_bytes = total_bytes
        self._engine.loading_progress(loaded_bytes, total_bytes)
        # An operator (or a supervisor's log) watching a long start-up sees how far it is and
        # when it ends, at most once a second whatever the backend's reporting rate.
        now = time.monotonic()
        if now - self._last_progress_log >= PROGRESS_LOG_SECONDS and 0 < loaded_bytes < total_bytes:
            self._last_progress_log = now
            self.log.notice(f"Loading: {100 * loaded_bytes / total_bytes:.1f}% "
                            f"(ETA {self._engine.loading_eta()}s)")

    def rewrite_value(self, db: int, key: bytes, value: Any, expire_ms: int | None) -> Any:
        return self._engine.rewrite_value(db, key, value, expire_ms)

    def decode_value(self, type_tag: str, payload: Any) -> Any:
        return self._engine.hook.trioredis_snapshot_decode(type_tag=type_tag, payload=payload)


class BackendHost:
    """What a backend's ``run()`` task may use: the keyspace, the configuration in force, the
    plugin hooks, the fork slot, and the server's log.  This is the whole public surface a
    backend sees of the server."""

    def __init__(self, engine: ServerSide) -> None:
        self._engine = engine
        self.fork_slot: ForkSlot = engine.fork_slot
        self.log = engine.log

    @property
    def config(self) -> Any:
        return self._engine.config

    @property
    def keyspace(self) -> Any:
        return self._engine.keyspace

    @property
    def hook(self) -> Any:
        return self._engine.hook

    @property
    def dirty(self) -> int:
        """Changes to the dataset since start-up (save points count against this)."""
        return self._engine.dirty

    def rewrite_value(self, db: int, key: bytes, value: Any, expire_ms: int | None) -> Any:
        """The commands that rebuild one key (through ``trioredis_rewrite_value``)."""
        return self._engine.rewrite_value(db, key, value, expire_ms)

    def dataset_preamble(self) -> list[list[bytes]]:
        """Commands that rebuild state kept outside the keyspace (function libraries), to
        write before the keys (:meth:`Engine.dataset_preamble`)."""
        return self._engine.dataset_preamble()

    def encode_value(self, value: Any) -> tuple[str, Any] | None:
        """A plugin value for a snapshot (``trioredis_snapshot_encode``)."""
        return self._engine.hook.trioredis_snapshot_encode(value=value)

    def prepare_fork(self) -> None:
        """Call just before os.fork(): freezes the GC so the child shares pages longer."""
        self._engine.prepare_fork()

    def fork_child_exited(self) -> None:
        """Call in the parent once a child forked after :meth:`prepare_fork` has exited (or
        the fork failed): undoes the freeze, so garbage made meanwhile can be collected."""
        self._engine.fork_child_exited()

    def fatal(self, message: str) -> None:
        """Stop the server now with ``message`` in the log (a durability promise is broken)."""
        self._engine.fatal(message)

    def write_path_changed(self) -> None:
        """Call when ``wants_writes()`` or ``may_refuse_writes()`` would answer differently
        (a write error appeared or went away): the engine asks again."""
        self._engine.persistence.refresh_write_path()

    def record_fork(self, seconds: float) -> None:
        """Call in the parent right after a successful os.fork(): INFO's total_forks and
        latest_fork_usec, and the ``fork`` latency event."""
        self._engine.record_fork(seconds)

    def record_latency(self, event: str, milliseconds: int) -> None:
        """A latency sample for LATENCY LATEST/HISTORY (``aof-write``, ``aof-fsync-always``,
        ``fork``...): kept when it reaches ``latency-monitor-threshold``."""
        self._engine.record_latency(event, milliseconds)
