"""The engine: runs commands on the keyspace and propagates their effects.  No I/O here.

``Engine.call(client, argv)`` is Redis's ``processCommand`` + ``call()``: look the command up,
check arity, authentication, MULTI queueing, loading and refused writes, run the handler, and
when the handler changed data (``ctx.dirty``) propagate its deterministic effect to every
persistence backend's ``feed`` and to the ``trioredis_command_propagated`` hook.  A handler
that rewrites its effect (``SET .. EX`` -> ``SET`` + ``PEXPIREAT``) calls ``ctx.propagate``
itself; otherwise the command is propagated as the client sent it.

The engine is composed of subsystems that own their state, each built in
:meth:`Engine.__init__`: the keyspace, pub/sub, the observer (MONITOR, slow log, latency),
ACLs, scripting, the persistence backends' owner (:mod:`trioredis.backends`), the blocked
clients (:mod:`trioredis.blocking`) and the replayer of persisted commands
(:mod:`trioredis.loading`).  MULTI/EXEC and WATCH live in :mod:`trioredis.transactions`; what
a handler is handed, in :mod:`trioredis.context`; the command path itself (``call``,
``execute``, refusals), in :mod:`trioredis.dispatch`, a base class of the engine.

Blocking commands return a :class:`~trioredis.blocking.Block` instead of a reply; the
transport then awaits :meth:`Engine.wait_blocked`.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from . import client_memory, loading, transactions
from . import memory as memory_module
from .acl import AccessControl
from .admission import CrossProtocolGuard
from .backends import Backends, Services
from .blocking import Block, BlockedClients, Waiter, waiting_block
from .client import Client
from .commands import (
    CommandRegistry,
    CommandSpec,
)
from .commands.keys import ScanSnapshots
from .context import CommandContext, Stats
from .dispatch import CommandPath
from .encodings import apply_zset_thresholds
from .errors import CommandError
from .eviction import EVICT_FAIL, Evictor
from .keyspace import Database, Keyspace, KeyspaceNotifier
from .loading import Replayer
from .observability import Observer
from .pause import Pause
from .pubsub import PubSub
from .replication import Replication
from .scripting.runtime import Scripting
from .tracking import Tracking

# Re-exported: plugins and command groups import these from here (and from ``trioredis``).
__all__ = ["Block", "CommandContext", "Engine", "Stats"]

if TYPE_CHECKING:
    from .config import Config, LoadedConfig
    from .log import Log


class Engine(CommandPath):
    """One server's command execution: built from the loaded configuration, the plugin
    manager and the log; the transport hands it clients and their commands."""

    # Over 60 lines on purpose: every piece of the engine's state and every subsystem is
    # built here, in one place, so a reader sees the whole composition at once.
    def __init__(self, loaded: LoadedConfig, plugin_manager: Any, log: Log) -> None:
        self.loaded = loaded
        self.config: Config = loaded.config
        apply_zset_thresholds(self.config)  # trioredis.encodings: sorted sets read them
        self.plugin_manager = plugin_manager
        self.hook = plugin_manager.hook
        self.log = log
        # The subsystems, each owning its state, built here and nowhere else.
        self.pubsub = PubSub()
        self.observer = Observer()
        self.monitoring = self.observer.monitors  # the observer is skipped while it is empty
        # The keyspace's own events go through a notifier that holds the pub/sub hub and the
        # config, not the engine (kept current by apply_config).
        self._notifier = KeyspaceNotifier(self.pubsub, self.config)
        self.keyspace = Keyspace(self.config.databases, self.propagate, notify=self._notifier)
        self.keyspace.notifying = bool(self.config.notify_keyspace_events)
        self.keyspace.on_modified = self._on_modified
        # Memory (trioredis.memory, trioredis.eviction): the evictor follows maxmemory-policy;
        # the lazy freer runs its chunks in the server's nursery.
        self.evictor = Evictor(self)
        self.keyspace.lazyfree.spawn = self.spawn
        self._apply_lazyfree(self.config)
        self.memory_peak = 0
        # Client-side caching and CLIENT PAUSE (trioredis.tracking, trioredis.pause).
        self.tracking = Tracking(self)
        self.pause = Pause(self)
        # Whether client-side caching or CLIENT PAUSE has anything to do per command: one
        # test on the hot path instead of one per feature (refresh_extras keeps it current).
        self.extras = False
        self.keyspace.on_expired = self.tracking.invalidate_key
        self.commands = CommandRegistry()
        self.hook.trioredis_register_commands(registry=self.commands)
        for old, new in loaded.renamed_commands.items():
            self.commands.rename(old, new)
        self.acl = AccessControl(self.commands, self.config.requirepass)
        self.dirty = 0
        self.stats = Stats()
        self.clients: dict[int, Client] = {}
        self.loading = False
        self.loading_started = 0.0
        self.loading_loaded = 0
        self.loading_total = 0
        self.replaying = False
        self.in_exec = False
        self.multi_emitted = False  # inside EXEC: whether MULTI was fed yet
        # While a script runs: its effects, propagated together when it ends (scripting).
        self.capture: list[tuple[int, list[bytes]]] | None = None
        self.unflushed = False
        self._current: Client | None = None
        # The write path, handed over by the persistence owner (set_write_path).
        self._feeds: list[Callable[[int, Sequence[bytes]], None]] = []
        self._refusal: str | None = None  # MISCONF..., pushed by a backend
        # argv[0] as sent (any case) -> (spec, lowercase name, is_write): skips lower() and a lookup.
        self._dispatch: dict[bytes, tuple[CommandSpec, bytes, bool]] = {}
        # The clients blocked on keys; its ready list is tested inline after every command.
        self.blocking = BlockedClients(self._attempt)
        self._ready_keys = self.blocking.ready_keys
        self.replayer = Replayer(self)
        # The persistence backends' owner (registered by the server once plugins are known).
        self.persistence = Backends(self._services_for_backends())
        self.shutdown_requested = trio.Event()
        self.shutdown_save: bool | None = None
        self.fatal_error: str | None = None
        self.paused_until = 0.0
        self.server: Any = None  # the transport, for CLIENT LIST/KILL and INFO clients
        self.nursery: trio.Nursery | None = None  # for work commands start (set by the server)
        self.run_id = os.urandom(20).hex()
        # Replication (both sides): ids, offset, backlog, replicas, the link to a master;
        # it sets refuse_stale while a replica's link is down under replica-serve-stale-data no.
        self.refuse_stale = False
        self._backend_feeds: list[Callable[[int, Sequence[bytes]], None]] = []
        self._backend_refusal: str | None = None
        self.replication = Replication(self)
        self.active_expire_enabled = True
        # DEBUG PAUSE-CRON and SET-SKIP-CHECKSUM-VALIDATION (tests of Redis's own suite).
        self.cron_paused = False
        self.skip_checksum_validation = False
        self.total_forks = 0
        self._cross_protocol = CrossProtocolGuard(log)
        self.latest_fork_usec = 0
        self._ops_samples: deque[tuple[float, int]] = deque(maxlen=16)
        self.refresh_hooks()
        self.loader_client = Client(self.keyspace[0])
        self.loader_client.authenticated = True
        self.loader_client.is_loader = True
        self.scripting = Scripting(self)
        self.scan_snapshots = ScanSnapshots()  # SCAN's cursors

    # --- plugins ---------------------------------------------------------------------------

    @property
    def backends(self) -> list[Any]:
        return self.persistence.backends

    @property
    def fork_slot(self) -> Any:
        return self.persistence.fork_slot

    def set_write_path(self, feeds: list[Callable[[int, Sequence[bytes]], None]],
                       refusal: str | None) -> None:
        """What each write uses (from the persistence owner): the backends' ``feed``s, and
        the refusal a backend pushed (None while writes are accepted)."""
        self._backend_feeds, self._backend_refusal = feeds, refusal
        self.compose_write_path()

    def compose_write_path(self) -> None:
        """The backends' write path plus replication's: one more ``feed`` while it has a
        backlog to feed (none with no replica ever attached), and its refusal (READONLY,
        NOREPLICAS) after any backend's."""
        repl_feeds, repl_refusal = self.replication.write_path()
        self._feeds = self._backend_feeds + repl_feeds
        self._refusal = self._backend_refusal or repl_refusal

    def _services_for_backends(self) -> Services:
        """The narrow callables the persistence owner (and through it each backend's host
        and loader) gets of this engine."""
        return Services(
            config=lambda: self.config, keyspace=self.keyspace, hook=self.hook, log=self.log,
            dirty=lambda: self.dirty, rewrite_value=self.rewrite_value,
            dataset_preamble=self.dataset_preamble, record_fork=self.record_fork,
            record_latency=self.record_latency, fatal=self.fatal, replay=self.replayer.replay,
            replay_many=self.replayer.replay_many, loading_progress=self.loading_progress,
            loading_eta=self.loading_eta, set_write_path=self.set_write_path,
            unflushed=lambda: self.unflushed, mark_flushed=self._mark_flushed,
            wait_on=self.wait_on, reload_from=partial(loading.reload_from, self),
            watch_readable=lambda fd, callback: (
                self.server.watch_readable(fd, callback) if self.server is not None else None),
        )

    def _mark_flushed(self) -> None:
        self.unflushed = False

    def refresh_hooks(self) -> None:
        """Call optional hooks only when some plugin implements them."""
        self._propagated_hook = bool(self.hook.trioredis_command_propagated.get_hookimpls())
        executed = self.hook.trioredis_command_executed.get_hookimpls()
        self._executed_hook = bool(executed)
        # One observer with the spec's parameters (the built-in slow log, usually): call it
        # directly, as pluggy's dispatch costs about 1 us on every command.
        self._on_executed = (
            executed[0].function
            if len(executed) == 1 and tuple(executed[0].argnames) == ("client", "argv", "duration_us")
            else None
        )
        self._refresh_observe_from()

    def refresh_extras(self) -> None:
        """After the tracking table appears or a pause starts or ends: whether every command
        must consult them (:attr:`extras`)."""
        self.extras = self.tracking.table is not None or self.pause.mode is not None

    def command_record(self, name: str) -> list[Any]:
        """``stats.per_command``'s entry for a full command name, made on first use."""
        return self.stats.command_record(name)

    def _refresh_observe_from(self) -> None:
        """The shortest command duration the direct observer wants to see (0: every command).
        The built-in one says so through ``observe_from_us(config)`` (the slow log's and the
        latency monitor's thresholds), which saves a call per command when no threshold is
        near; MONITOR clients make every command go to it regardless (``monitoring``)."""
        observe_from = getattr(self._on_executed, "observe_from_us", None)
        self._observe_from_us = observe_from(self.config) if observe_from is not None else 0
        # latency-tracking (default yes, as Redis): every command's duration goes into its
        # histogram, so every command is timed.
        self._latency_tracking = self.config.latency_tracking
        self._timed = self._executed_hook or self._latency_tracking

    def rewrite_value(self, db: int, key: bytes, value: Any, expire_ms: int | None) -> Any:
        return self.hook.trioredis_rewrite_value(db=db, key=key, value=value, expire_ms=expire_ms)

    def dataset_preamble(self) -> list[list[bytes]]:
        """The commands that rebuild what the dataset holds outside the keyspace (function
        libraries, then plugins' ``trioredis_dataset_preamble``), for AOF rewrites and
        snapshots."""
        commands: list[list[bytes]] = []
        commands.extend(self.scripting.functions.preamble())
        for extra in self.hook.trioredis_dataset_preamble():
            if extra:
                commands.extend([list(argv) for argv in extra])
        return commands

    def wait_on(self, awaitable: Any) -> Block:
        """A Block for a command whose reply is ``awaitable``'s result (SAVE, DEBUG RELOAD):
        the client waits, not the server."""
        return waiting_block(self.spawn, awaitable)

    def record_fork(self, seconds: float) -> None:
        """After a backend's successful os.fork(): INFO's total_forks and latest_fork_usec,
        and the ``fork`` latency event."""
        usec = int(seconds * 1_000_000)
        self.total_forks += 1
        self.latest_fork_usec = usec
        self.record_latency("fork", usec // 1000)

    def record_latency(self, event: str, milliseconds: int) -> None:
        """A latency sample for LATENCY LATEST/HISTORY, kept when it reaches
        ``latency-monitor-threshold``."""
        from .observability import record_latency

        record_latency(self, event, milliseconds)

    def fatal(self, message: str) -> None:
        self.log.warning(message)
        self.fatal_error = message
        self.shutdown_save = False
        self.shutdown_requested.set()

    # --- clients ---------------------------------------------------------------------------

    def new_client(self, addr: str = "", laddr: str = "", fd: int = -1) -> Client:
        client = Client(self.keyspace[0], addr, laddr, fd)
        client.authenticated = not self.acl.default_needs_auth()
        client.ctx = CommandContext(self, client)
        self.clients[client.id] = client
        self.stats.connections_received += 1
        return client

    def drop_client(self, client: Client) -> None:
        self.clients.pop(client.id, None)
        if client.blocked:  # registered blocked but gone before its task waited
            self.blocking.drop(client)
        transactions.unwatch(client)
        if client.tracking is not None:
            self.tracking.disable(client)
        if self.pause.held:
            self.pause.drop(client)
        client.ctx = None  # ctx.client points back: no cycle left for the collector
        if client.channels or client.patterns or client.shard_channels:
            self.pubsub.drop(client)

    def flushed_all(self) -> None:
        """FLUSHALL ran: tell the backends (not while replaying a file)."""
        if not self.replaying and not self.loading:
            self.persistence.flushed_all()

    def refuse_writes(self) -> str | None:
        """The refusal every write gets now (``MISCONF ...``), or None."""
        return self._refusal

    # --- transactions ----------------------------------------------------------------------

    def exec_transaction(self, client: Client) -> Any:
        """EXEC (:func:`trioredis.transactions.exec_transaction`)."""
        return transactions.exec_transaction(self, client)

    def watch(self, client: Client, keys: Sequence[bytes]) -> None:
        transactions.watch(client, keys)

    def unwatch(self, client: Client) -> None:
        transactions.unwatch(client)

    def _on_modified(self, db: Database, key: bytes) -> None:
        watchers = db.watched.get(key)
        if watchers:
            for client in watchers:
                client.dirty_cas = True
        if key in db.blocked:
            self._ready_keys.append((db.index, key))

    # --- propagation -----------------------------------------------------------------------

    def propagate(self, db: int, argv: list[bytes]) -> None:
        """Hand one effect to the backends and the propagation hook (not while replaying)."""
        if self.replaying:
            return
        if self.capture is not None:
            self.capture.append((db, argv))
            return
        if self.in_exec and not self.multi_emitted:
            self.multi_emitted = True
            self._feed(db, [b"MULTI"])
        self._feed(db, argv)

    def _feed(self, db: int, argv: list[bytes]) -> None:
        for feed in self._feeds:
            feed(db, argv)
        if self._propagated_hook:
            self.hook.trioredis_command_propagated(db=db, argv=argv)
        self.unflushed = True
        if self._current is not None:
            self._current.wrote = True

    # --- blocking --------------------------------------------------------------------------

    def register_blocked(self, client: Client, block: Block) -> None:
        """Queue ``client`` on its block's keys now (:meth:`BlockedClients.register`)."""
        self.blocking.register(client, block)

    async def wait_blocked(self, client: Client, block: Block) -> Any:
        """Wait until ``block`` is served or times out; its reply."""
        return await self.blocking.wait(client, block)

    def unblock(self, client: Client, reply: Any) -> bool:
        """CLIENT UNBLOCK: wake ``client`` with ``reply``; False if it was not blocked."""
        return self.blocking.unblock(client, reply)

    def serve_blocked(self) -> None:
        """Serve the clients blocked on keys that became ready."""
        self.blocking.serve()

    def _attempt(self, waiter: Waiter) -> Any:
        """A blocked client's retry, run in its own context (as its command would run)."""
        client = waiter.client
        ctx = client.ctx
        assert ctx is not None
        ctx.db = client.db = waiter.block.db or client.db
        ctx.dirty = 0
        ctx.propagated = False
        previous, self._current = self._current, client
        try:
            try:
                reply = waiter.block.attempt(ctx)
            except CommandError as error:
                reply = self._error(error.message)
            if ctx.dirty:
                self.dirty += ctx.dirty
                db = ctx.db
                if db.watched or db.blocked:
                    for key in waiter.block.keys:
                        self.keyspace.signal_modified(db, key)
                if self.tracking.table is not None:  # client-side caching: the key served
                    ready = waiter.block.ready_key
                    for key in [ready] if ready is not None else waiter.block.keys:
                        self.tracking.invalidate(key, client)
        finally:
            self._current = previous
        return reply

    # --- services --------------------------------------------------------------------------

    def spawn(self, async_fn: Callable[[], Any]) -> None:
        """Start a task in the server's nursery (for commands whose work is async)."""
        if self.nursery is None:
            raise CommandError("ERR server is not running")
        self.nursery.start_soon(async_fn)

    def apply_config(self, new: Config) -> None:
        """CONFIG SET: swap the frozen config, then tell the plugins."""
        old, self.config = self.config, new
        apply_zset_thresholds(new)
        self._refresh_observe_from()
        if old.loglevel != new.loglevel:
            self.log.set_level(new.loglevel)
        if old.requirepass != new.requirepass:
            self.acl.set_requirepass(new.requirepass)
        if self.server is not None:
            self.server.config_applied(old, new)
        self.keyspace.notifying = bool(new.notify_keyspace_events)
        self._notifier.config = new
        self.evictor.configure(new)
        self._apply_lazyfree(new)
        self._memory_stamp = ()  # a policy change may drop the access times
        self.persistence.config_changed(old, new)
        self.compose_write_path()  # replica-read-only, min-replicas-to-write...
        self.hook.trioredis_config_changed(old=old, new=new)

    # --- memory ----------------------------------------------------------------------------

    _memory_stamp: tuple[int, ...] = ()
    _memory_cached = 0

    def used_memory(self, for_eviction: bool = False) -> int:
        """What ``maxmemory`` is compared with, INFO's ``used_memory``: the estimate of the
        dataset (:mod:`trioredis.memory`), values waiting for the lazy freer, and the
        clients; INFO adds the AOF buffer, which eviction does not count (as Redis's
        freeMemoryGetNotCountedMemory).

        Why a stamp: under ``maxmemory`` this runs before every command, and summing the
        databases costs microseconds; nothing it counts changes without a write (dirty), an
        expiry, an eviction, the lazy freer or a connection, so a read reuses the sum."""
        keyspace = self.keyspace
        stamp = (self.dirty, keyspace.expired_keys, self.evictor.evicted_keys,
                 keyspace.lazyfree.pending_bytes, len(self.clients))
        if stamp == self._memory_stamp:
            used = self._memory_cached
        else:
            used = (memory_module.STARTUP_BYTES + keyspace.dataset_bytes()
                    + keyspace.lazyfree.pending_bytes + memory_module.CLIENT_BASE * len(self.clients))
            self._memory_stamp = stamp
            self._memory_cached = used
        if not for_eviction:
            used += memory_module.aof_buffer(self)
            if used > self.memory_peak:
                self.memory_peak = used
        return used

    def _out_of_memory(self, client: Client, spec: CommandSpec) -> bool:
        """Redis's processCommand under ``maxmemory``: evict first (whatever the command),
        then refuse a ``denyoom`` command (or an EXEC that queued one) only when nothing
        could be evicted and used memory is still over the limit."""
        if self.evictor.perform() != EVICT_FAIL:
            return False
        return "denyoom" in spec.flags or (
            spec.name == "exec" and bool(client.multi)
            and any("denyoom" in queued.flags for queued, _ in client.multi))

    def _apply_lazyfree(self, config: Config) -> None:
        """The keyspace's copies of the lazyfree-lazy-* options it consults itself."""
        self.keyspace.lazy_server_del = config.lazyfree_lazy_server_del
        self.keyspace.lazy_expire = config.lazyfree_lazy_expire

    def memory_cron(self) -> None:
        """The server cron's share: correct drifted container estimates, go on with
        evictions a command left (tenacity), and keep the peak."""
        self.keyspace.tick()  # the LRU clock keys store on access
        if self.config.maxmemory_clients != "0":
            client_memory.evict_clients(self)
        memory_module.audit_cycle(self.keyspace)
        self._memory_stamp = ()  # the audit may have corrected estimates
        if self.config.maxmemory:
            self.evictor.perform()
        self.used_memory()

    def sample_ops(self) -> None:
        self._ops_samples.append((time.monotonic(), self.stats.commands_processed))

    def ops_per_sec(self) -> int:
        if len(self._ops_samples) < 2:
            return 0
        (t0, c0), (t1, c1) = self._ops_samples[0], self._ops_samples[-1]
        return int((c1 - c0) / max(t1 - t0, 1e-6))

    # --- loading (trioredis.loading) ----------------------------------------------------------

    async def load(self) -> None:
        """Ask backends, highest priority first, to load the dataset."""
        await loading.load(self)

    def recount_memory(self) -> None:
        """After a load (snapshots install whole dicts): count the dataset again
        (trioredis.memory)."""
        for db in self.keyspace.databases:
            memory_module.recount(db)
        self._memory_stamp = ()

    def loading_progress(self, loaded: int, total: int) -> None:
        self.loading_loaded = loaded
        self.loading_total = total

    def loading_eta(self) -> int:
        return loading.loading_eta(self)

    # --- shutdown --------------------------------------------------------------------------

    def change_replication_id(self) -> None:
        """DEBUG CHANGE-REPL-ID: a new replication id."""
        self.replication.change_id()

    @property
    def replication_id(self) -> str:
        return self.replication.replid

    def request_shutdown(self, save: bool | None = None) -> None:
        self.shutdown_save = save
        self.shutdown_requested.set()

    @property
    def pid(self) -> int:
        return os.getpid()
