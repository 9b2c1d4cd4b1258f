"""The one owner of the persistence backends inside the server.

:mod:`trioredis.persistence` is the contract a backend implements; this module is the other
side of it, and the only code in core that drives backends: registration, the write path
command execution uses per command (the feeders, handed over as a plain list so a write costs
no extra call, and the refusal the backends pushed), the flush before replies and its
tickets, the order in which backends load, their tasks and their shutdown, the operations a
backend declares (SAVE, BGSAVE, BGREWRITEAOF, DEBUG RELOAD, LASTSAVE), the config fan-out and
the fields they add to INFO persistence.  Commands and the transport ask this owner; nothing
else iterates over backends.

It knows the server only through :class:`Services`, a set of narrow callables the server
lends it: no import of command execution, and no import cycle through this module.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from . import errors
from .errors import CommandError
from .persistence import (
    BackendHost,
    BaseBackend,
    ForkSlot,
    Loader,
    PersistenceBackend,
    Ticket,
    WatchReadable,
)
from .resp import OK, ErrorReply

# The operations a backend may declare in ``operations``, and the commands that use them.
SAVE = "save"  # SAVE, BGSAVE, LASTSAVE
REWRITE = "rewrite"  # BGREWRITEAOF
RELOAD = "reload"  # DEBUG RELOAD

Feed = Callable[[int, Sequence[bytes]], None]


@dataclass(frozen=True, kw_only=True)
class Services:
    """What the server lends its backends' owner, each a narrow callable or object."""

    config: Callable[[], Any]  # the configuration in force
    keyspace: Any  # trioredis.keyspace.Keyspace
    hook: Any  # the plugin manager's hooks
    log: Any
    dirty: Callable[[], int]  # changes since start-up
    rewrite_value: Callable[[int, bytes, Any, int | None], Any]
    dataset_preamble: Callable[[], list[list[bytes]]]
    record_fork: Callable[[float], None]
    record_latency: Callable[[str, int], None]
    fatal: Callable[[str], None]
    replay: Callable[[list[bytes]], Any]  # run one command as the loading client
    replay_many: Callable[[Sequence[list[bytes]]], tuple[int, Any] | None]
    loading_progress: Callable[[int, int], None]
    loading_eta: Callable[[], int]
    set_write_path: Callable[[list[Feed], str | None], None]  # the per-write path
    unflushed: Callable[[], bool]  # a write was fed since the last flush
    mark_flushed: Callable[[], None]
    wait_on: Callable[[Awaitable[Any]], Any]  # a Block that waits for an awaitable
    reload_from: Callable[[PersistenceBackend], Awaitable[None]]  # DEBUG RELOAD's reload
    # The transport's event loop reads a descriptor for a backend (BackendHost.watch_readable).
    watch_readable: WatchReadable | None = None


def _overrides(backend: PersistenceBackend, method: str) -> bool:
    """Whether ``backend`` does something in ``method`` (BaseBackend's is a no-op)."""
    return getattr(type(backend), method, None) is not getattr(BaseBackend, method)


class Backends:
    """The backends of one server, in registration order."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self.backends: list[PersistenceBackend] = []
        self.fork_slot = ForkSlot()
        self._flushers: list[PersistenceBackend] = []
        self._sleepers: list[PersistenceBackend] = []  # backends with a before_sleep()
        # What each backend pushed (host.set_refusal / host.set_feeding), by name.
        self._refusals: dict[str, str | None] = {}
        self._feeding: dict[str, bool] = {}

    # --- registration and the write path ---------------------------------------------------

    def register(self, backends: Sequence[PersistenceBackend]) -> None:
        self.backends = list(backends)
        # flush() runs once per turn that wrote: only for backends that write something.
        self._flushers = [backend for backend in self.backends if _overrides(backend, "flush")]
        self._sleepers = [backend for backend in self.backends
                          if _overrides(backend, "before_sleep")]
        self._refusals = {backend.name: None for backend in self.backends}
        self._feeding = {backend.name: True for backend in self.backends}
        self._refresh_write_path()

    def host_for(self, backend: PersistenceBackend) -> BackendHost:
        """The host handed to ``backend.run()``: the server's services, and where this
        backend pushes its own refusal and feeding state."""
        s = self._services
        return BackendHost(
            config=s.config, keyspace=s.keyspace, hook=s.hook, log=s.log,
            fork_slot=self.fork_slot, dirty=s.dirty, rewrite_value=s.rewrite_value,
            dataset_preamble=s.dataset_preamble, record_fork=s.record_fork,
            record_latency=s.record_latency, fatal=s.fatal,
            set_refusal=partial(self._set_refusal, backend.name),
            set_feeding=partial(self._set_feeding, backend.name),
            watch_readable=s.watch_readable,
        )

    def loader(self) -> Loader:
        """What a backend's ``load()`` gets (start-up, DEBUG RELOAD)."""
        s = self._services
        hook = s.hook
        return Loader(
            keyspace=s.keyspace, log=s.log, execute=s.replay, execute_many=s.replay_many,
            progress=s.loading_progress, eta=s.loading_eta, rewrite_value=s.rewrite_value,
            decode_value=lambda tag, payload: hook.trioredis_snapshot_decode(
                type_tag=tag, payload=payload),
            install_rdb=partial(install_rdb, s.keyspace, s.replay),
        )

    def _set_refusal(self, name: str, text: str | None) -> None:
        if self._refusals.get(name) != text:
            self._refusals[name] = text
            self._refresh_write_path()

    def _set_feeding(self, name: str, feeding: bool) -> None:
        if self._feeding.get(name) != feeding:
            self._feeding[name] = feeding
            self._refresh_write_path()

    def _refresh_write_path(self) -> None:
        """Hand command execution what its hot path uses for each write: the ``feed`` of every
        backend that overrides it and feeds now, and the first refusal pushed (registration
        order), or None.  So a backend that is off, or keeps BaseBackend's ``feed``, costs
        nothing per command, and nothing is asked per write while nothing is wrong."""
        feeds = [backend.feed for backend in self.backends
                 if _overrides(backend, "feed") and self._feeding.get(backend.name, True)]
        self._services.set_write_path(feeds, self.refusal())

    def feeding(self, backend: PersistenceBackend) -> bool:
        """Whether ``backend`` records writes now (an AOF that is on): a replica rewrites it
        after a full sync and reports its fsyncs (FACK)."""
        return _overrides(backend, "feed") and self._feeding.get(backend.name, True)

    def refusal(self) -> str | None:
        """The write refusal in force (``MISCONF ...``), or None."""
        return next((text for text in self._refusals.values() if text is not None), None)

    def config_changed(self, old: Any, new: Any) -> None:
        """CONFIG SET: each backend of this server learns of the change (no module-level
        registry of backends needed) and pushes what it alters."""
        for backend in self.backends:
            backend.config_changed(old, new)

    def flushed_all(self) -> None:
        """FLUSHALL ran (a client's, not a replayed one): a snapshot backend stops a save
        child whose file would bring the keys back."""
        for backend in self.backends:
            backend.flushed()

    # --- flushing and durability -----------------------------------------------------------

    def flush_writes(self) -> list[Ticket]:
        """Write what every backend buffered now; the tickets a reply to a write must wait
        for before it leaves.  The reactor calls this once per turn and parks only the
        replies that must wait, so the next turn's commands run while the disk syncs (group
        commit that overlaps the fsync with work)."""
        self._services.mark_flushed()
        tickets = []
        for backend in self._flushers:
            ticket = backend.flush()
            if ticket is not None:
                tickets.append(ticket)
        return tickets

    def before_sleep(self) -> None:
        """The event loop served every ready client and is about to wait: each backend that
        has a ``before_sleep()`` starts its once-per-round work (the AOF's fsync under
        ``always``)."""
        for backend in self._sleepers:
            backend.before_sleep()

    def flush_nowait(self) -> None:
        """Write what the backends buffered, without waiting for durability (cron, shutdown)."""
        self._services.mark_flushed()
        for backend in self._flushers:
            backend.flush()

    async def flush_for_reply(self, client: Any) -> None:
        """Before ``client``'s replies leave (a connection served by a task): write what every
        backend buffered, then wait until this client's writes are durable where the policy
        asks for it."""
        if client.wrote:
            client.wrote = False
            await self.wait_durable(self.flush_writes())
        elif self._services.unflushed():
            self.flush_nowait()

    @staticmethod
    async def wait_durable(tickets: Sequence[Ticket]) -> None:
        for ticket in tickets:
            await ticket.wait()

    @staticmethod
    def durable_state(tickets: Sequence[Ticket], notify: Callable[[], None]) -> bool | None:
        """True: every ticket is durable now; False: not yet, and each ticket concerned calls
        ``notify()`` after its backend's next sync round (ask again then); None: only
        :meth:`wait_durable` can tell."""
        state: bool | None = True
        for ticket in tickets:
            durable = ticket.durable_or_notify(notify)
            if durable is None:
                return None
            if not durable:
                state = False
        return state

    # --- life cycle ------------------------------------------------------------------------

    async def load(self) -> None:
        """Ask backends, highest priority first, to load the dataset; the first that has
        something to load is the only one asked."""
        for backend in sorted(self.backends, key=lambda b: -b.load_priority()):
            if await backend.load(self.loader()):
                return

    async def start(self, nursery: trio.Nursery) -> None:
        """Start every backend's ``run`` task (each reports when it is ready)."""
        for backend in self.backends:
            await nursery.start(backend.run, self.host_for(backend))

    async def close(self, save: bool, log: Any) -> bool:
        """Shutdown: every backend's ``aclose``; False when one failed (logged)."""
        ok = True
        for backend in self.backends:
            try:
                await backend.aclose(save=save)
            except Exception as error:
                log.warning(f"Error closing persistence backend {backend.name}: {error!r}")
                ok = False
        return ok

    def statistics(self) -> dict[str, Any]:
        """The fields the backends add to INFO persistence."""
        fields: dict[str, Any] = {}
        for backend in self.backends:
            fields.update(backend.statistics())
        return fields

    # --- operations --------------------------------------------------------------------------

    def declaring(self, operation: str) -> list[PersistenceBackend]:
        return [backend for backend in self.backends if operation in backend.operations]

    def last_save_time(self) -> int | None:
        """LASTSAVE: the newest successful save of a backend that saves, None if none did."""
        times = [t for t in (b.last_save_time() for b in self.declaring(SAVE)) if t is not None]
        return max(times) if times else None

    def perform(self, operation: str, invoke: Callable[[PersistenceBackend], Any],
                in_transaction: bool) -> Any:
        """Run ``invoke`` on the first backend that declares ``operation``: its reply, or,
        when it returned an awaitable, a Block that waits for it (this client waits, not the
        server).  An operation that answers at once costs no task and no Block.  Inside EXEC
        nothing may wait: an awaitable there is refused."""
        backends = self.declaring(operation)
        if not backends:
            raise CommandError(errors.NO_PERSISTENCE)
        result = invoke(backends[0])
        if not inspect.isawaitable(result):
            return result
        if in_transaction:
            _close(result)
            raise CommandError(errors.NOT_ALLOWED_IN_MULTI)
        return self._services.wait_on(result)

    def debug_reload(self, in_transaction: bool, only: str | None = None) -> Any:
        """DEBUG RELOAD: the first backend declaring ``reload`` whose files can be made
        complete now rebuilds the dataset from them.  ``only``: that backend alone (DEBUG
        LOADAOF names the AOF's)."""
        backends = [backend for backend in self.declaring(RELOAD)
                    if only is None or backend.name == only]
        if not backends:
            raise CommandError(errors.NO_PERSISTENCE)
        if in_transaction:
            raise CommandError(errors.NOT_ALLOWED_IN_MULTI)
        return self._services.wait_on(self._reload(backends))

    async def _reload(self, backends: list[PersistenceBackend]) -> Any:
        for backend in backends:
            if await backend.reload_point():
                await self._services.reload_from(backend)
                return OK
        return ErrorReply(errors.NO_PERSISTENCE.encode())


def _close(awaitable: Awaitable[Any]) -> None:
    close = getattr(awaitable, "close", None)  # a coroutine never started: no warning
    if close is not None:
        close()


def install_rdb(keyspace: Any, replay: Callable[[list[bytes]], Any],
                databases: Any, functions: Sequence[bytes]) -> int:
    """:meth:`Loader.install_rdb`: the libraries through ``replay`` (the loading client),
    then each database's keys and expiries; the keys installed, or ValueError with why."""
    for code in functions:
        reply = replay([b"FUNCTION", b"LOAD", b"REPLACE", code])
        if isinstance(reply, ErrorReply):
            raise ValueError("loading a function library failed: "
                             f"{bytes(reply).decode('utf-8', 'replace')}")
    loaded = 0
    for index, (data, expires) in sorted(databases.items()):
        if not 0 <= index < len(keyspace):
            raise ValueError(f"it holds database {index} but this server has "
                             f"{len(keyspace)} (raise the 'databases' option)")
        db = keyspace[index]
        db.data.update(data)
        db.expires.update(expires)
        loaded += len(data)
    return loaded
