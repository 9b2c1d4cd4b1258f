"""The one owner of the persistence backends inside the server.

:mod:`trioredis.persistence` is the contract a backend implements; this module is the other
side of it, and the only code in core that drives backends: registration, the write path the
engine calls per command (the feeders and the refusers, handed to the engine as plain lists
so a write costs no extra call), the flush before replies, durability waits, the order in
which backends load, their tasks and their shutdown, the operations a backend declares (SAVE,
BGSAVE, BGREWRITEAOF, DEBUG RELOAD, LASTSAVE) and the fields they add to INFO persistence.
Commands and the transport ask this owner; nothing else iterates over backends.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import trio

from . import errors
from .errors import CommandError
from .persistence import BackendHost, BaseBackend, ForkSlot, Loader, PersistenceBackend
from .resp import OK, ErrorReply

# The operations a backend may declare in ``operations``, and the commands that use them.
SAVE = "save"  # SAVE, BGSAVE, LASTSAVE
REWRITE = "rewrite"  # BGREWRITEAOF
RELOAD = "reload"  # DEBUG RELOAD

Tickets = list[tuple[PersistenceBackend, Any]]


class Owner(Protocol):
    """What the backends' owner needs of the engine holding it (named here, so that this
    module imports nothing of the engine's: no import cycle through it)."""

    unflushed: bool  # a write was fed since the last flush

    def set_write_path(self, feeds: list[Callable[[int, Sequence[bytes]], None]],
                       refusers: list[Any]) -> None: ...
    def wait_on(self, awaitable: Awaitable[Any]) -> Any: ...
    async def reload_from(self, backend: PersistenceBackend) -> None: ...
    def loader(self) -> Loader: ...
    def backend_host(self) -> BackendHost: ...


def _overrides(backend: PersistenceBackend, method: str) -> bool:
    """Whether ``backend`` does something in ``method`` (BaseBackend's is a no-op)."""
    return getattr(type(backend), method, None) is not getattr(BaseBackend, method)


class Backends:
    """The backends of one server, in registration order."""

    def __init__(self, engine: Owner) -> None:
        self._engine = engine
        self.backends: list[PersistenceBackend] = []
        self.fork_slot = ForkSlot()
        self._flushers: list[PersistenceBackend] = []

    # --- registration and the write path ---------------------------------------------------

    def register(self, backends: Sequence[PersistenceBackend]) -> None:
        self.backends = list(backends)
        # flush() runs once per turn that wrote: only for backends that write something.
        self._flushers = [backend for backend in self.backends if _overrides(backend, "flush")]
        self.refresh_write_path()

    def refresh_write_path(self) -> None:
        """Hand the engine the backends its hot path calls for each write.  One that keeps
        BaseBackend's no-op ``feed``/``refuse_writes``, or says it ``wants_writes()`` no more
        (asked again after each config change), costs nothing per command; ``refuse_writes``
        runs only while ``may_refuse_writes()`` (backends push changes through
        ``host.write_path_changed()``)."""
        wanting = [backend for backend in self.backends if backend.wants_writes()]
        self._engine.set_write_path(
            feeds=[backend.feed for backend in wanting if _overrides(backend, "feed")],
            refusers=[backend for backend in wanting
                      if _overrides(backend, "refuse_writes") and backend.may_refuse_writes()],
        )

    def config_changed(self, old: Any, new: Any) -> None:
        """CONFIG SET: each backend of this server learns of the change (no module-level
        registry of backends needed), then the write path is asked for again."""
        for backend in self.backends:
            backend.config_changed(old, new)
        self.refresh_write_path()

    def flushed_all(self) -> None:
        """FLUSHALL ran (a client's, not a replayed one): a snapshot backend stops a save
        child whose file would bring the keys back."""
        for backend in self.backends:
            backend.flushed()

    # --- flushing and durability -----------------------------------------------------------

    def flush_writes(self) -> Tickets:
        """Write what every backend buffered now; the (backend, ticket) pairs a reply to a
        write must wait for (:meth:`wait_durable`) before it leaves.  The reactor calls this
        once per turn and parks only the replies that must wait, so the next turn's commands
        run while the disk syncs (group commit that overlaps the fsync with work)."""
        self._engine.unflushed = False
        tickets = []
        for backend in self._flushers:
            ticket = backend.flush()
            if ticket is not None:
                tickets.append((backend, ticket))
        return tickets

    def flush_nowait(self) -> None:
        """Write what the backends buffered, without waiting for durability (cron, shutdown)."""
        self._engine.unflushed = False
        for backend in self._flushers:
            backend.flush()

    async def flush_for_reply(self, client: Any) -> None:
        """Before ``client``'s replies leave (a connection served by a task): write what every
        backend buffered, then wait until this client's writes are durable where the policy
        asks for it."""
        if client.wrote:
            client.wrote = False
            await self.wait_durable(self.flush_writes())
        elif self._engine.unflushed:
            self.flush_nowait()

    @staticmethod
    async def wait_durable(tickets: Tickets) -> None:
        for backend, ticket in tickets:
            await backend.wait_durable(ticket)

    @staticmethod
    def durable_state(tickets: Tickets, notify: Callable[[], None]) -> bool | None:
        """True: every ticket is durable now; False: not yet, and each backend concerned calls
        ``notify()`` after its next fsync round (ask again then); None: only
        :meth:`wait_durable` can tell."""
        state: bool | None = True
        for backend, ticket in tickets:
            durable = backend.durable_or_notify(ticket, notify)
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
            if await backend.load(self._engine.loader()):
                return

    async def start(self, nursery: trio.Nursery) -> None:
        """Start every backend's ``run`` task (each reports when it is ready)."""
        host = self._engine.backend_host()
        for backend in self.backends:
            await nursery.start(backend.run, host)

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
        return self._engine.wait_on(result)

    def debug_reload(self, in_transaction: bool) -> Any:
        """DEBUG RELOAD: the first backend declaring ``reload`` whose files can be made
        complete now rebuilds the dataset from them."""
        if not self.declaring(RELOAD):
            raise CommandError(errors.NO_PERSISTENCE)
        if in_transaction:
            raise CommandError(errors.NOT_ALLOWED_IN_MULTI)
        return self._engine.wait_on(self._reload())

    async def _reload(self) -> Any:
        engine = self._engine
        for backend in self.declaring(RELOAD):
            if await backend.reload_point():
                await engine.reload_from(backend)
                return OK
        return ErrorReply(errors.NO_PERSISTENCE.encode())


def _close(awaitable: Awaitable[Any]) -> None:
    close = getattr(awaitable, "close", None)  # a coroutine never started: no warning
    if close is not None:
        close()
