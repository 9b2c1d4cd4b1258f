"""The persistence contract: what a backend implements, and what the server lends it.

This module is the contract only; :mod:`trioredis.backends` is core's side of it (the one
owner that drives backends).  The order core relies on, for one batch of commands from one
client:

1. each command that changed data is handed to every feeding backend's ``feed(db, argv)``
   (buffering; a backend says whether it is feeding with ``host.set_feeding``);
2. before the batch's replies are sent, ``flush()`` is called on each backend: it writes what
   it buffered (write(2)) and returns a :class:`Ticket` when the replies must also wait for
   durability, else None;
3. core holds the replies until every ticket is durable (``durable_or_notify``, or ``wait``),
   then sends them.  One ticket may cover the writes of many clients: group commit.

So a reply never leaves before the write(2) of its change returned, under every policy.
A backend pushes its state to the server instead of being polled: ``host.set_refusal(text)``
while writes must be refused (MISCONF), ``host.set_feeding(False)`` while ``feed`` need not run.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import trio

PROGRESS_LOG_SECONDS = 1.0  # the loading progress line: at most once a second

# watch_readable(fd, callback) -> unwatch: the transport's event loop reads ``fd`` for a backend
WatchReadable = Callable[[int, Callable[[], None]], "Callable[[], None] | None"]


class Ticket:
    """What ``flush()`` returns when the replies of the writes it flushed must wait until
    they are durable.  Subclass it: implement :meth:`wait`, and :meth:`durable_or_notify` to
    take part in group commit at no cost per turn.  One ticket per flush, not per command."""

    __slots__ = ()

    def durable_or_notify(self, callback: Callable[[], None]) -> bool | None:
        """Synchronous, called by the transport before it parks replies (and again after each
        ``callback``).  True: durable now, the replies leave.  False: not yet; the backend
        calls ``callback()`` once, on the trio thread, after its next sync round (core asks
        again then).  None (this default): only :meth:`wait` can tell; core awaits it in a
        task for the replies of the clients whose writes it covers, and does not hold other
        clients' replies for it (with True/False, a reply of the same turn that could reveal
        the write, a GET of the key, waits too).  The AOF answers None under everysec, where
        reads must not wait for a slow disk."""
        return None

    async def wait(self) -> None:
        """Return once every write this ticket covers is durable."""
        raise NotImplementedError


class EventTicket(Ticket):
    """A ticket that is durable once :meth:`set` is called: enough for a backend whose sync
    round ends with one event (a third-party backend's fsync task, a replica's ack)."""

    __slots__ = ("_done", "_callbacks")

    def __init__(self) -> None:
        self._done = trio.Event()
        self._callbacks: list[Callable[[], None]] = []

    def set(self) -> None:
        """The covered writes are durable: wake whoever waits (on the trio thread)."""
        self._done.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def durable_or_notify(self, callback: Callable[[], None]) -> bool:
        if self._done.is_set():
            return True
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return False

    async def wait(self) -> None:
        await self._done.wait()


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

    def flush(self) -> Ticket | None:
        """Write what was buffered; a :class:`Ticket` when replies must also wait for it to
        be durable (``appendfsync always``), else None.  Sync: called before every batch of
        replies, so a short write(2) to the page cache is fine here."""

    def before_sleep(self) -> None:
        """The event loop has served every client that was ready and is about to wait for
        more: start work that is best done once per such round rather than per ``flush()``
        (the AOF under ``appendfsync always`` starts an fsync here when none is running, so
        that it covers every command of the round).  Sync and cheap; never makes a reply
        leave earlier (replies wait for their tickets whatever this does)."""

    async def run(self, host: BackendHost, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The backend's own tasks for the server's lifetime (fsync timer, save points,
        children).  Call ``task_status.started()`` once ready.  Cancelled at shutdown, after
        :meth:`aclose`."""

    async def load(self, loader: Loader) -> bool:
        """Load the dataset at start-up; True if this backend loaded it (later backends are
        then not asked), False when it has nothing to load."""

    def load_priority(self) -> int:
        """Backends are asked to load in decreasing priority order (AOF before snapshot)."""

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
        from now on): react without awaiting (hand async work to ``run()``'s task), and push
        any state the change alters (``host.set_feeding``, ``host.set_refusal``)."""


class BaseBackend:
    """Do-nothing defaults for every :class:`PersistenceBackend` method.  A backend that
    keeps the default ``feed`` or ``flush`` costs nothing per write or per turn."""

    name = "base"
    operations: frozenset[str] = frozenset()

    def feed(self, db: int, argv: Sequence[bytes]) -> None:
        pass

    def flush(self) -> Ticket | None:
        return None

    def before_sleep(self) -> None:
        pass

    async def run(self, host: BackendHost, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def load(self, loader: Loader) -> bool:
        return False

    def load_priority(self) -> int:
        return 0

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


class Loader:
    """What a backend gets to load a dataset at start-up (or DEBUG RELOAD).  Built by the
    server from narrow callables: running a command as the loading client, progress, and the
    value hooks."""

    def __init__(
        self,
        *,
        keyspace: Any,
        log: Any,
        execute: Callable[[list[bytes]], Any],
        execute_many: Callable[[Sequence[list[bytes]]], tuple[int, Any] | None],
        progress: Callable[[int, int], None],
        eta: Callable[[], int],
        rewrite_value: Callable[[int, bytes, Any, int | None], Any],
        decode_value: Callable[[str, Any], Any],
        install_rdb: Callable[[Mapping[int, Any], Sequence[bytes]], int],
    ) -> None:
        self.keyspace = keyspace  # a trioredis.keyspace.Keyspace
        self.log = log  # the server log, for the loader's own lines (loaded, refused)
        self._execute = execute
        self._execute_many = execute_many
        self._progress = progress
        self._eta = eta
        self._rewrite_value = rewrite_value
        self._decode_value = decode_value
        self._install_rdb = install_rdb
        self.total_bytes = 0
        self.loaded_bytes = 0
        self._last_progress_log = time.monotonic()  # a load shorter than a second logs none

    def execute(self, argv: list[bytes]) -> Any:
        """Run one command (``SELECT`` included) as a client that gets no replies and
        propagates nothing; returns the reply (an ErrorReply for a failed command, which a
        loader should treat as corruption).  MULTI/EXEC work as for any client."""
        return self._execute(argv)

    def execute_many(self, argvs: Sequence[list[bytes]]) -> tuple[int, Any] | None:
        """Run commands in order as :meth:`execute` runs each, much faster per command (what
        a big file needs): None when all succeeded, else ``(index, reply)`` of the first
        that failed (an ErrorReply, or an EXEC reply holding one); later ones did not run."""
        return self._execute_many(argvs)

    def progress(self, loaded_bytes: int, total_bytes: int) -> None:
        """Report progress: INFO's loading_* fields and the log line use it."""
        self.loaded_bytes = loaded_bytes
        self.total_bytes = total_bytes
        self._progress(loaded_bytes, total_bytes)
        # An operator (or a supervisor's log) watching a long start-up sees how far it is and
        # when it ends, at most once a second whatever the backend's reporting rate.
        now = time.monotonic()
        if now - self._last_progress_log >= PROGRESS_LOG_SECONDS and 0 < loaded_bytes < total_bytes:
            self._last_progress_log = now
            self.log.notice(f"Loading: {100 * loaded_bytes / total_bytes:.1f}% "
                            f"(ETA {self._eta()}s)")

    def rewrite_value(self, db: int, key: bytes, value: Any, expire_ms: int | None) -> Any:
        """The commands that rebuild one key (through ``trioredis_rewrite_value``)."""
        return self._rewrite_value(db, key, value, expire_ms)

    def decode_value(self, type_tag: str, payload: Any) -> Any:
        """A plugin value from a snapshot (``trioredis_snapshot_decode``)."""
        return self._decode_value(type_tag, payload)

    def install_rdb(self, databases: Mapping[int, tuple[dict[bytes, Any], dict[bytes, int]]],
                    functions: Sequence[bytes]) -> int:
        """Put a decoded RDB file (``trioredis.rdb.read_rdb_databases``) into the keyspace:
        its function libraries first (``FUNCTION LOAD REPLACE``), then each database's keys
        and expiries; the number of keys installed.  ValueError with the reason when a
        library does not load or the file holds a database this server does not have."""
        return self._install_rdb(databases, functions)


class BackendHost:
    """What a backend's ``run()`` task may use of the server: the keyspace, the configuration
    in force, the plugin hooks, the fork slot, the log, and where it pushes its state.  Each
    backend gets a host of its own (its refusal and feeding are its own).  Built by the
    server from narrow callables; this is the whole surface a backend sees of the server."""

    def __init__(
        self,
        *,
        config: Callable[[], Any],
        keyspace: Any,
        hook: Any,
        log: Any,
        fork_slot: ForkSlot,
        dirty: Callable[[], int],
        rewrite_value: Callable[[int, bytes, Any, int | None], Any],
        dataset_preamble: Callable[[], list[list[bytes]]],
        record_fork: Callable[[float], None],
        record_latency: Callable[[str, int], None],
        fatal: Callable[[str], None],
        set_refusal: Callable[[str | None], None],
        set_feeding: Callable[[bool], None],
        watch_readable: WatchReadable | None = None,
    ) -> None:
        self._config = config
        self.keyspace = keyspace  # a trioredis.keyspace.Keyspace
        self.hook = hook  # the plugin manager's hooks (trioredis_rewrite_started, ...)
        self.log = log
        self.fork_slot = fork_slot
        self._dirty = dirty
        self._rewrite_value = rewrite_value
        self._dataset_preamble = dataset_preamble
        self._record_fork = record_fork
        self._record_latency = record_latency
        self._fatal = fatal
        self._set_refusal = set_refusal
        self._set_feeding = set_feeding
        self._watch_readable = watch_readable

    @property
    def config(self) -> Any:
        """The configuration in force now (CONFIG SET replaces it)."""
        return self._config()

    @property
    def dirty(self) -> int:
        """Changes to the dataset since start-up (save points count against this)."""
        return self._dirty()

    def set_refusal(self, text: str | None) -> None:
        """Push the write refusal: ``text`` (``MISCONF ...``) is every write command's reply
        from now on, until ``set_refusal(None)``.  Cheap to call with an unchanged value."""
        self._set_refusal(text)

    def set_feeding(self, feeding: bool) -> None:
        """Push whether ``feed`` must run for each write (False: the AOF with ``appendonly
        no``, which then costs nothing per command).  A backend feeds until it says not."""
        self._set_feeding(feeding)

    def rewrite_value(self, db: int, key: bytes, value: Any, expire_ms: int | None) -> Any:
        """The commands that rebuild one key (through ``trioredis_rewrite_value``)."""
        return self._rewrite_value(db, key, value, expire_ms)

    def dataset_preamble(self) -> list[list[bytes]]:
        """Commands that rebuild state kept outside the keyspace (function libraries), to
        write before the keys."""
        return self._dataset_preamble()

    def encode_value(self, value: Any) -> tuple[str, Any] | None:
        """A plugin value for a snapshot (``trioredis_snapshot_encode``)."""
        return self.hook.trioredis_snapshot_encode(value=value)

    def prepare_fork(self) -> None:
        """Call just before os.fork(): freezes the GC so the child shares pages longer."""
        prepare_fork()

    def fork_child_exited(self) -> None:
        """Call in the parent once a child forked after :meth:`prepare_fork` has exited (or
        the fork failed): undoes the freeze, so garbage made meanwhile can be collected."""
        fork_child_exited()

    def fatal(self, message: str) -> None:
        """Stop the server now with ``message`` in the log (a durability promise is broken)."""
        self._fatal(message)

    def record_fork(self, seconds: float) -> None:
        """Call in the parent right after a successful os.fork(): INFO's total_forks and
        latest_fork_usec, and the ``fork`` latency event."""
        self._record_fork(seconds)

    def watch_readable(self, fd: int, callback: Callable[[], None]) -> Callable[[], None] | None:
        """Have the event loop call ``callback()`` (sync, on the trio thread, within a round
        of serving clients) whenever ``fd`` is readable, until the returned function is
        called; ``callback`` must read ``fd`` until it would block (level-triggered).  Call
        the returned function before closing ``fd``.  None when the transport cannot (then
        wait with ``trio.lowlevel.wait_readable`` in a task).  Why: a descriptor that answers
        once per round (the AOF's fsync process) costs a task wake-up per answer otherwise."""
        if self._watch_readable is None:
            return None
        return self._watch_readable(fd, callback)

    def record_latency(self, event: str, milliseconds: int) -> None:
        """A latency sample for LATENCY LATEST/HISTORY (``aof-write``, ``aof-fsync-always``,
        ``fork``...): kept when it reaches ``latency-monitor-threshold``."""
        self._record_latency(event, milliseconds)


def prepare_fork() -> None:
    """Before os.fork(): collect the youngest garbage and freeze the rest, so the child does
    not touch (and copy) pages the collector would otherwise walk."""
    gc.collect(0)
    gc.freeze()


def fork_child_exited() -> None:
    """The parent side of :func:`prepare_fork`, once the child is gone: objects frozen for it
    are the collector's again (garbage among them would otherwise never be freed)."""
    gc.unfreeze()

