"""The engine: runs commands on the keyspace and propagates their effects.  No I/O here.

``Engine.call(client, argv)`` is Redis's ``processCommand`` + ``call()``: look the command up,
check arity, authentication, MULTI queueing, loading and refused writes, run the handler, and
when the handler changed data (``ctx.dirty``) propagate its deterministic effect to every
persistence backend's ``feed`` and to the ``trioredis_command_propagated`` hook.  A handler
that rewrites its effect (``SET .. EX`` -> ``SET`` + ``PEXPIREAT``) calls ``ctx.propagate``
itself; otherwise the command is propagated as the client sent it.

Blocking commands return a :class:`Block` instead of a reply; the transport then awaits
:meth:`Engine.wait_blocked`.  When a write touches a key that clients wait on, the waiting
clients are served right after that command, in the order they blocked, by running their
``attempt`` in their own context, so what they pop is propagated right after the push.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

import trio

from . import errors, latency
from . import memory as memory_module
from .acl import AccessControl, acl_changed_in_multi, is_local_client
from .backends import Backends
from .client import REPLY_OFF, Client
from .commands import (
    BLOCKING,
    CommandRegistry,
    CommandSpec,
    full_command_name,
    subcommand_arity,
)
from .config import protected_action_allowed
from .errors import CommandError
from .eviction import EVICT_FAIL, Evictor
from .keyspace import Database, Keyspace, now_ms
from .observability import Observer
from .persistence import BackendHost, Loader
from .pubsub import PubSub, notify_keyspace_event
from .resp import NULL_ARRAY, QUEUED, ErrorReply

if TYPE_CHECKING:
    from .config import Config, LoadedConfig
    from .log import Log

# The first words of an HTTP request's lines, which Redis treats as an attack.
_CROSS_PROTOCOL_WORDS = frozenset({b"post", b"host:"})
CROSS_PROTOCOL_WARNING = (
    "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: "
    "commands to Redis. This is likely due to an attacker attempting to use Cross Protocol "
    "Scripting to compromise your Redis instance. Connection aborted.")
CROSS_PROTOCOL_LOG_INTERVAL = 60.0  # seconds: one line per attack wave, not per request
_MULTI_CONTROL = frozenset({b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"})
_SUBSCRIBED_ALLOWED = frozenset(
    {b"subscribe", b"psubscribe", b"unsubscribe", b"punsubscribe", b"ping", b"quit", b"reset",
     b"ssubscribe", b"sunsubscribe"}
)




class Block:
    """Returned by a blocking command's handler when it has to wait.

    ``attempt(ctx)`` retries the command's effect and returns the reply, or None while there
    is still nothing to take; ``timeout`` is in seconds (0: forever); ``timeout_reply`` is sent
    when it runs out."""

    __slots__ = ("db", "keys", "timeout", "attempt", "timeout_reply", "event", "result",
                 "ready_key", "unflagged", "waiter")

    def __init__(
        self,
        keys: Sequence[bytes],
        timeout: float,
        attempt: Callable[[CommandContext], Any],
        timeout_reply: Any = NULL_ARRAY,
        unflagged: bool = False,
    ) -> None:
        self.db: Database | None = None
        # Blocks although its command is not flagged "blocking" (WAIT: Redis flags it
        # noscript only); otherwise a Block from an unflagged command answers at once.
        self.unflagged = unflagged
        self.keys = list(keys)
        self.timeout = timeout
        self.attempt = attempt
        self.timeout_reply = timeout_reply
        self.event: trio.Event | None = None
        self.result: dict[str, Any] | None = None
        # The key whose change woke the client, set before each retry by serve_blocked (None
        # on the first try): Redis serves a client blocked on several keys from the key that
        # became ready, not from the first of its keys that has something.
        self.ready_key: bytes | None = None
        # Set by Engine.register_blocked: the client is queued on its keys from the moment
        # its command blocked, not from when its task starts waiting (see there).
        self.waiter: _Waiter | None = None

    def waiting_on(self, event: trio.Event, result: dict[str, Any]) -> Block:
        """A block that ends when ``event`` is set, with ``result["reply"]`` as the reply
        (commands that await a backend: SAVE, BGREWRITEAOF, WAITAOF)."""
        self.event = event
        self.result = result
        return self


class _Waiter:
    __slots__ = ("client", "block", "event", "reply")

    def __init__(self, client: Client, block: Block) -> None:
        self.client = client
        self.block = block
        self.event = trio.Event()
        self.reply: Any = None


class CommandContext:
    """What a handler sees: ``ctx.db`` (the client's database), ``ctx.keyspace``,
    ``ctx.client``, ``ctx.config``; ``ctx.dirty += n`` to say it changed n things;
    ``ctx.propagate(argv)`` to propagate a different effect than the command as sent;
    ``ctx.in_transaction``, ``ctx.spawn(fn)``, ``ctx.wait_on(awaitable)`` and
    ``ctx.backend(name)`` for commands that wait on a backend.  (``ctx.engine`` is core's own: plugins use the members above.)"""

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

    def backend(self, name: str) -> Any:
        """The persistence backend registered under ``name`` on this server, or None."""
        for backend in self.engine.persistence.backends:
            if backend.name == name:
                return backend
        return None

    def touch(self, key: bytes, db: Database | None = None) -> None:
        """Signal that ``key`` changed (WATCH, blocked clients), for a key the command's key
        positions do not name (MOVE's target database, say)."""
        target = db or self.db
        if target.sizes:
            target.stale.add(key)
        self.keyspace.signal_modified(target, key)


class Stats:
    __slots__ = (
        "commands_processed", "connections_received", "rejected_connections", "keyspace_hits",
        "keyspace_misses", "net_input_bytes", "net_output_bytes", "errors", "started",
        "per_command", "error_counts",
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
        # INFO commandstats and latencystats: full name (``config|get``) -> [calls, usec,
        # failed calls, rejected calls, latency histogram]; one lookup per command.
        self.per_command: dict[str, list[Any]] = {}
        self.error_counts: dict[str, int] = {}


class Engine:
    def __init__(self, loaded: LoadedConfig, plugin_manager: Any, log: Log) -> None:
        self.loaded = loaded
        self.config: Config = loaded.config
        self.plugin_manager = plugin_manager
        self.hook = plugin_manager.hook
        self.log = log
        # The subsystems, each owning its state, built here and nowhere else.
        self.pubsub = PubSub()
        self.observer = Observer()
        self.monitoring = self.observer.monitors  # the observer is skipped while it is empty
        self.keyspace = Keyspace(self.config.databases, self.propagate,
                                 notify=partial(notify_keyspace_event, self))
        self.keyspace.notifying = bool(self.config.notify_keyspace_events)
        self.keyspace.on_modified = self._on_modified
        # Memory (trioredis.memory, trioredis.eviction): the evictor follows maxmemory-policy;
        # the lazy freer runs its chunks in the server's nursery.
        self.evictor = Evictor(self)
        self.keyspace.lazyfree.spawn = self.spawn
        self._apply_lazyfree(self.config)
        self.memory_peak = 0
        self.commands = CommandRegistry()
        self.hook.trioredis_register_commands(registry=self.commands)
        for old, new in loaded.renamed_commands.items():
            self.commands.rename(old, new)
        self.acl = AccessControl(self.commands, self.config.requirepass)
        # The persistence backends' owner (registered by the server once plugins are known).
        self.persistence = Backends(self)
        self.dirty = 0
        self.stats = Stats()
        self.clients: dict[int, Client] = {}
        self.loading = False
        self.loading_started = 0.0
        self.loading_loaded = 0
        self.loading_total = 0
        self.replaying = False
        self.in_exec = False
        self._multi_emitted = False
        # While a script runs: its effects, propagated together when it ends (scripting).
        self.capture: list[tuple[int, list[bytes]]] | None = None
        self.unflushed = False
        self._current: Client | None = None
        # The write path, handed over by the persistence owner (set_write_path).
        self._feeds: list[Callable[[int, Sequence[bytes]], None]] = []
        self._refusers: list[Any] = []
        # argv[0] as sent (any case) -> (spec, lowercase name, is_write): skips lower() and a lookup.
        self._dispatch: dict[bytes, tuple[CommandSpec, bytes, bool]] = {}
        self._waiters: dict[tuple[int, bytes], deque[_Waiter]] = {}
        self._ready_keys: list[tuple[int, bytes]] = []
        self.shutdown_requested = trio.Event()
        self.shutdown_save: bool | None = None
        self.fatal_error: str | None = None
        self.paused_until = 0.0
        self.server: Any = None  # the transport, for CLIENT LIST/KILL and INFO clients
        self.nursery: trio.Nursery | None = None  # for work commands start (set by the server)
        self.run_id = os.urandom(20).hex()
        # INFO replication's master_replid: the run id until DEBUG CHANGE-REPL-ID makes a new
        # one (Redis's shiftReplicationId without a previous id to keep).
        self.replication_id = self.run_id
        self.active_expire_enabled = True
        self.total_forks = 0
        self._cross_protocol_logged = -CROSS_PROTOCOL_LOG_INTERVAL
        self.latest_fork_usec = 0
        self._ops_samples: deque[tuple[float, int]] = deque(maxlen=16)
        self.refresh_hooks()
        self.loader_client = Client(self.keyspace[0])
        self.loader_client.authenticated = True
        self.loader_client.is_loader = True

    # --- plugins ---------------------------------------------------------------------------

    @property
    def backends(self) -> list[Any]:
        return self.persistence.backends

    @property
    def fork_slot(self) -> Any:
        return self.persistence.fork_slot

    def set_write_path(self, feeds: list[Callable[[int, Sequence[bytes]], None]],
                       refusers: list[Any]) -> None:
        """What each write calls (from the persistence owner): the backends' ``feed``s, and
        the backends whose ``refuse_writes`` may refuse now."""
        self._feeds = feeds
        self._refusers = refusers

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

    def command_record(self, name: str) -> list[Any]:
        """``stats.per_command``'s entry for a full command name, made on first use."""
        record = self.stats.per_command.get(name)
        if record is None:
            record = self.stats.per_command[name] = [0, 0, 0, 0, {}]
        return record

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
        functions = getattr(getattr(self, "scripting", None), "functions", None)
        if functions is not None:
            commands.extend(functions.preamble())
        for extra in self.hook.trioredis_dataset_preamble():
            if extra:
                commands.extend([list(argv) for argv in extra])
        return commands

    def prepare_fork(self) -> None:
        gc.collect(0)
        gc.freeze()

    def fork_child_exited(self) -> None:
        """The parent side of :meth:`prepare_fork`, once the child is gone: objects frozen for
        it are the collector's again (garbage among them would otherwise never be freed)."""
        gc.unfreeze()

    def loader(self) -> Loader:
        return Loader(self)

    def backend_host(self) -> BackendHost:
        return BackendHost(self)

    def wait_on(self, awaitable: Any) -> Block:
        """A Block for a command whose reply is ``awaitable``'s result (SAVE, DEBUG RELOAD):
        the client waits, not the server; a CommandError becomes the error reply."""
        result: dict[str, Any] = {}
        done = trio.Event()

        async def runner() -> None:
            try:
                result["reply"] = await awaitable
            except CommandError as error:
                result["reply"] = ErrorReply(error.message.encode())
            finally:
                done.set()

        self.spawn(runner)
        return Block([], 0, lambda _ctx: None, None).waiting_on(done, result)

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
            for queue in list(self._waiters.values()):
                for waiter in list(queue):
                    if waiter.client is client:
                        self._unregister(waiter)
        self._unwatch(client)
        client.ctx = None  # ctx.client points back: no cycle left for the collector
        if client.channels or client.patterns or client.shard_channels:
            self.pubsub.drop(client)

    # --- executing -------------------------------------------------------------------------

    def call(self, client: Client, argv: list[bytes]) -> Any:
        """Run one command for ``client``: the reply, an ErrorReply, or a :class:`Block`."""
        entry = self._dispatch.get(argv[0])
        if entry is None:
            entry = self._lookup(argv[0])
            if entry is None:
                if argv[0].lower() in _CROSS_PROTOCOL_WORDS:
                    return self._cross_protocol_attack(client)
                client.last_command = "NULL"
                return self._reject(client, argv, errors.unknown_command(argv))
        spec, name, is_write = entry
        # CLIENT LIST's cmd: the command as looked up, before any check refuses it or MULTI
        # queues it, as Redis records it (EXEC's queued commands leave "exec").
        client.last_command = spec.name
        arity = spec.arity
        if (arity > 0 and len(argv) != arity) or len(argv) < -arity:
            return self._reject(client, argv, errors.wrong_arity(spec.name), spec)
        full_name = spec.name
        if spec.subcommands and len(argv) > 1:
            full_name = client.last_command = full_command_name(spec, argv[1])
            if full_name is spec.name:
                client.last_command = "NULL"
                # A container's unknown subcommand is no command at all, as in Redis:
                # refused here, counted in errorstats only.
                return self._reject(client, argv, errors.unknown_subcommand(argv[1], spec.name))
            arity = subcommand_arity(spec, argv[1])
            if arity is not None and ((arity > 0 and len(argv) != arity) or len(argv) < -arity):
                return self._reject(client, argv, errors.wrong_arity(full_name), spec)
        if spec.name == "debug" and not self._debug_allowed(client):  # renamed ones too
            return self._reject(client, argv, errors.DEBUG_NOT_ALLOWED, spec)
        if not client.authenticated and "noauth" not in spec.flags:
            return self._reject(client, argv, errors.NOAUTH, spec)
        if client.user in self.acl.restricted:  # empty unless ACL SETUSER restricted someone
            denied = self.acl.check(client.user, spec, argv)
            if denied is not None:
                self._log_denial(client, spec, argv, denied)
                return self._reject(client, argv, denied, spec)
        if self.config.maxmemory and not client.is_loader and self._out_of_memory(client, spec):
            return self._reject(client, argv, errors.OOM, spec)
        if is_write and self._refusers and not client.is_loader:
            for backend in self._refusers:  # refuse_writes() inlined: every write runs this
                refusal = backend.refuse_writes()
                if refusal is not None:
                    return self._reject(client, argv, refusal, spec)
        if (client.channels or client.patterns or client.shard_channels) and not client.resp3 and name not in _SUBSCRIBED_ALLOWED:
            return self._reject(
                client, argv,
                f"ERR Can't execute '{full_name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                "PING / QUIT / RESET are allowed in this context", spec
            )
        if self.loading and not client.is_loader and "loading" not in spec.flags:
            return self._reject(client, argv, errors.LOADING, spec)
        if client.multi is not None and name not in _MULTI_CONTROL:
            if "no-multi" in spec.flags:
                return self._reject(client, argv, errors.NOT_ALLOWED_IN_MULTI, spec)
            client.multi.append((spec, argv))
            return QUEUED
        return self.execute(client, spec, argv)

    def _log_denial(self, client: Client, spec: CommandSpec, argv: list[bytes], denied: str) -> None:
        """ACL LOG: what ``client`` was refused, with its CLIENT LIST line."""
        from .commands.connection import client_info_line

        user = self.acl.users.get(client.user)
        if user is None:
            reason, object_ = "command", spec.name.encode()
        else:
            reason, object_ = user.denied_object(spec, argv, denied)
        self.acl.log.add(reason, object_, client.user.encode(),
                         lambda: client_info_line(self, client),
                         self.config.acllog_max_len,
                         "multi" if client.multi is not None else "toplevel")

    def _debug_allowed(self, client: Client) -> bool:
        """``enable-debug-command``: DEBUG for everyone (yes), local clients (local) or
        nobody (no, the default), as Redis 7 checks it before running the command."""
        return protected_action_allowed(self.config.enable_debug_command,
                                        is_local_client(client))

    def _cross_protocol_attack(self, client: Client) -> None:
        """An HTTP request (a browser page posting to the port): close the connection with no
        reply, before anything after it runs, and log it at most once a minute, as Redis's
        ``securityWarningCommand``.  Checked before authentication, unlike Redis: with a
        password set, Redis answers NOAUTH and reads on."""
        now = time.monotonic()
        if now - self._cross_protocol_logged > CROSS_PROTOCOL_LOG_INTERVAL:
            self._cross_protocol_logged = now
            self.log.warning(CROSS_PROTOCOL_WARNING)
        client.set_reply_flags(REPLY_OFF)
        client.close_after_reply = True
        return None

    def _lookup(self, sent: bytes) -> tuple[CommandSpec, bytes, bool] | None:
        """The command table entry for a name as sent; remembered (a bounded number of
        spellings) so the common case is one dict lookup."""
        name = sent.lower()
        spec = self.commands.by_name.get(name)
        if spec is None:
            return None
        entry = (spec, name, spec.is_write)
        if len(self._dispatch) < 4096:
            self._dispatch[sent] = entry
        return entry

    def execute(self, client: Client, spec: CommandSpec, argv: list[bytes]) -> Any:
        """Run a looked-up, checked command (also used by EXEC for each queued command)."""
        ctx = client.ctx
        if ctx is None:
            ctx = client.ctx = CommandContext(self, client)
        ctx.db = client.db
        ctx.dirty = 0
        ctx.propagated = False
        previous = self._current
        self._current = client
        name = spec.name
        if spec.subcommands and len(argv) > 1:
            name = full_command_name(spec, argv[1])
        started = perf_counter_ns() if self._timed else 0
        try:
            reply = spec.handler(ctx, argv)
        except CommandError as error:
            reply = self._error(error.message, name)
        except Exception as error:  # a bug must cost one reply, not the connection
            self.log.warning(f"Internal error running {spec.name}: {error!r}")
            reply = self._error(f"ERR internal error running '{spec.name}': {error!r}", name)
        finally:
            self._current = previous
        stats = self.stats
        stats.commands_processed += 1
        record = stats.per_command.get(name)
        if record is None:
            record = self.command_record(name)
        record[0] += 1
        if ctx.dirty:
            self.dirty += ctx.dirty
            db = ctx.db
            if not ctx.propagated and not self.replaying:
                if self.in_exec:
                    self._current = client
                    self.propagate(db.index, argv)
                    self._current = previous
                else:  # propagate() and _feed() inlined: this runs for every write
                    for feed in self._feeds:
                        feed(db.index, argv)
                    if self._propagated_hook:
                        self.hook.trioredis_command_propagated(db=db.index, argv=argv)
                    self.unflushed = True
                    client.wrote = True
            if db.watched or db.blocked:
                for key in (spec.write_keys or spec.keys)(argv):
                    self.keyspace.signal_modified(db, key)
        if self._ready_keys and not self.in_exec:
            self.serve_blocked()
        if reply.__class__ is Block:
            reply.db = ctx.db
            if reply.event is None and (client.multi is not None or self.in_exec or (
                    BLOCKING not in spec.flags and not reply.unflagged)):
                # Inside a transaction a blocking command does not block.
                reply = reply.timeout_reply
        if self._timed:
            duration_ns = perf_counter_ns() - started
            duration_us = duration_ns // 1000
            record[1] += duration_us
            if self._latency_tracking:
                latency.record(record[4], duration_ns)
        if self._executed_hook:
            if self._on_executed is not None:
                if duration_us >= self._observe_from_us or self.monitoring:
                    self._on_executed(client, argv, duration_us)
            else:
                self.hook.trioredis_command_executed(client=client, argv=argv, duration_us=duration_us)
        return reply

    def _reject(self, client: Client, argv: list[bytes], message: str,
                spec: CommandSpec | None = None) -> ErrorReply:
        """A command refused before it ran (Redis's ``rejectCommand``): inside MULTI it dooms
        the transaction (EXEC answers EXECABORT); a refused EXEC itself discards the
        transaction and says why.  A known command counts it in its ``rejected_calls``."""
        if spec is not None:
            name = full_command_name(spec, argv[1]) if spec.subcommands and len(argv) > 1 else spec.name
            self.command_record(name)[3] += 1
        if argv[0].lower() == b"exec":
            client.multi = None
            client.multi_error = False
            self._unwatch(client)
            reason = message[4:] if message.startswith("ERR ") else message
            return self._error(f"EXECABORT Transaction discarded because of: {reason}")
        if client.multi is not None:
            client.multi_error = True
        return self._error(message)

    def _error(self, message: str, command: str | None = None) -> ErrorReply:
        self.stats.errors += 1
        prefix = message.split(" ", 1)[0]
        self.stats.error_counts[prefix] = self.stats.error_counts.get(prefix, 0) + 1
        if command is not None:
            self.command_record(command)[2] += 1
        return ErrorReply(message.encode())

    def flushed_all(self) -> None:
        """FLUSHALL ran: tell the backends (not while replaying a file)."""
        if not self.replaying and not self.loading:
            self.persistence.flushed_all()

    def refuse_writes(self) -> str | None:
        for backend in self._refusers:
            refusal = backend.refuse_writes()
            if refusal is not None:
                return refusal
        return None

    # --- transactions ----------------------------------------------------------------------

    def exec_transaction(self, client: Client) -> Any:
        queued = client.multi
        if queued is None:
            raise CommandError(errors.EXEC_WITHOUT_MULTI)
        client.multi = None
        if client.multi_error:
            client.multi_error = False
            self._unwatch(client)
            raise CommandError(errors.EXECABORT)
        if client.dirty_cas or self._watched_key_expired(client):
            self._unwatch(client)
            return NULL_ARRAY
        self._unwatch(client)
        self.in_exec = True
        self.fork_slot.in_transaction = True
        self._multi_emitted = False
        replies = []
        try:
            restricted = client.user in self.acl.restricted
            for spec, argv in queued:
                if restricted:
                    # ACL rules may have changed since the command was queued: Redis checks
                    # again and refuses that one command, the others still run.
                    denied = self.acl.check(client.user, spec, argv)
                    if denied is not None:
                        replies.append(self._error(acl_changed_in_multi(denied)))
                        continue
                refusal = self.refuse_writes() if spec.is_write else None
                if refusal is not None:
                    replies.append(self._error(refusal))
                    continue
                replies.append(self.execute(client, spec, argv))
        finally:
            if self._multi_emitted:
                self._feed(client.db.index, [b"EXEC"])
            self.in_exec = False
            self.fork_slot.in_transaction = False
            self._multi_emitted = False
            # EXEC shares the client's context with the commands it ran: clear their dirty
            # count so EXEC itself is not propagated a second time after the block.
            if client.ctx is not None:
                client.ctx.dirty = 0
        if self._ready_keys:
            self.serve_blocked()
        return replies

    def _watched_key_expired(self, client: Client) -> bool:
        """A WATCHed key whose TTL ran out before EXEC counts as changed, as in Redis
        (``isWatchedKeyExpired``), even when nothing has deleted it yet."""
        if not client.watched:
            return False
        now = now_ms()
        for db, key in client.watched:
            when = db.expires.get(key)
            if when is not None and when <= now:
                return True
        return False

    def watch(self, client: Client, keys: Sequence[bytes]) -> None:
        db = client.db
        for key in keys:
            if any(d is db and k == key for d, k in client.watched):
                continue
            client.watched.append((db, key))
            db.watched.setdefault(key, set()).add(client)

    def _unwatch(self, client: Client) -> None:
        for db, key in client.watched:
            watchers = db.watched.get(key)
            if watchers is not None:
                watchers.discard(client)
                if not watchers:
                    del db.watched[key]
        client.watched = []
        client.dirty_cas = False

    def unwatch(self, client: Client) -> None:
        self._unwatch(client)

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
        if self.in_exec and not self._multi_emitted:
            self._multi_emitted = True
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
        """Queue ``client`` on its keys now, in the same turn its command blocked.

        Why not when :meth:`wait_blocked` starts: the transport first flushes the client's
        earlier replies (under ``appendfsync always``, after an fsync), and a write from
        another client in that gap would find nobody waiting: the entry or element goes to
        a client that blocked later, or to nobody (XREAD ``$`` then misses it).  Redis
        queues a blocked client before it runs the next command; so do we.  A client that
        disconnects before waiting is dequeued by :meth:`drop_client`."""
        if block.event is not None or block.waiter is not None:
            return
        db = block.db or client.db
        waiter = _Waiter(client, block)
        for key in dict.fromkeys(block.keys):
            self._waiters.setdefault((db.index, key), deque()).append(waiter)
            db.blocked[key] = db.blocked.get(key, 0) + 1
        block.waiter = waiter
        client.blocked = True

    def _unregister(self, waiter: _Waiter) -> None:
        block = waiter.block
        db = block.db or waiter.client.db
        waiter.client.blocked = False
        if block.waiter is None:
            return
        block.waiter = None
        for key in dict.fromkeys(block.keys):
            queue = self._waiters.get((db.index, key))
            if queue is not None:
                try:
                    queue.remove(waiter)
                except ValueError:
                    pass
                if not queue:
                    del self._waiters[(db.index, key)]
            count = db.blocked.get(key, 0) - 1
            if count <= 0:
                db.blocked.pop(key, None)
            else:
                db.blocked[key] = count

    async def wait_blocked(self, client: Client, block: Block) -> Any:
        """Wait until ``block.attempt`` succeeds (served by :meth:`serve_blocked`) or the
        timeout runs out."""
        if block.event is not None:
            client.blocked = True
            try:
                await block.event.wait()
            finally:
                client.blocked = False
            assert block.result is not None
            return block.result.get("reply")
        self.register_blocked(client, block)
        waiter = block.waiter
        assert waiter is not None
        try:
            if waiter.event.is_set():
                pass  # served between blocking and this wait
            elif block.timeout > 0:
                with trio.move_on_after(block.timeout):
                    await waiter.event.wait()
            else:
                await waiter.event.wait()
        finally:
            self._unregister(waiter)
        if waiter.event.is_set():
            return waiter.reply
        return block.timeout_reply

    def unblock(self, client: Client, reply: Any) -> bool:
        """CLIENT UNBLOCK: wake ``client`` with ``reply``; False if it was not blocked."""
        for queue in self._waiters.values():
            for waiter in queue:
                if waiter.client is client and not waiter.event.is_set():
                    waiter.reply = reply
                    waiter.event.set()
                    return True
        return False

    def serve_blocked(self) -> None:
        """Serve clients blocked on keys that became ready, oldest first, each in its own
        context, until a key has nothing left to give."""
        while self._ready_keys:
            ready, self._ready_keys = self._ready_keys, []
            for db_index, key in dict.fromkeys(ready):
                queue = self._waiters.get((db_index, key))
                while queue:
                    waiter = queue[0]
                    if waiter.event.is_set():
                        queue.popleft()
                        continue
                    waiter.block.ready_key = key
                    reply = self._attempt(waiter)
                    if reply is None:
                        break
                    waiter.reply = reply
                    waiter.event.set()
                    queue.popleft()

    def _attempt(self, waiter: _Waiter) -> Any:
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
        self._refresh_observe_from()
        if old.loglevel != new.loglevel:
            self.log.set_level(new.loglevel)
        if old.requirepass != new.requirepass:
            self.acl.set_requirepass(new.requirepass)
        if self.server is not None:
            self.server.config_applied(old, new)
        self.keyspace.notifying = bool(new.notify_keyspace_events)
        self.evictor.configure(new)
        self._apply_lazyfree(new)
        self._memory_stamp = ()  # a policy change may drop the access times
        self.persistence.config_changed(old, new)
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

    async def reload_from(self, backend: Any) -> None:
        """DEBUG RELOAD, once ``backend``'s files are complete: empty the dataset and load it
        back from them."""
        self.keyspace.flush_all()
        functions = getattr(getattr(self, "scripting", None), "functions", None)
        if functions is not None:  # libraries are part of the dataset: reloaded too
            functions.flush()
        self.loading = self.keyspace.loading = True
        self.loader_client.db = self.keyspace[0]
        try:
            await backend.load(Loader(self))
        finally:
            self.loading = self.keyspace.loading = False
            self._recount()

    # --- loading ---------------------------------------------------------------------------

    def replay(self, argv: list[bytes]) -> Any:
        """Run a command from a persistence file: no reply is sent, nothing is propagated."""
        self.replaying = True
        try:
            reply = self.call(self.loader_client, argv)
        finally:
            self.replaying = False
        if reply.__class__ is Block:
            return reply.timeout_reply
        return reply

    def replay_many(self, argvs: Sequence[list[bytes]]) -> tuple[int, Any] | None:
        """Run a batch of commands from a persistence file, as :meth:`replay` runs each one;
        None when all succeeded, else ``(index, reply)`` of the first that failed (an
        ErrorReply, or an EXEC reply holding one), whose followers are not run.

        Why not :meth:`call` per command: loading a big AOF is millions of commands, and most
        of what ``call``/``execute`` do per command is for live clients (ACL, OOM, refused
        writes, pub/sub mode, commandstats, latency and the executed hook, propagation).  Like
        Redis's loader (``cmd->proc`` on a fake client, not ``call()``), a plain command here
        is the arity check and the handler; the engine's dirty count, WATCH and blocked
        clients are kept as ``execute`` keeps them.  Transactions, blocking commands,
        unknown names and wrong arity take the full ``call`` path, as does everything while
        a MULTI is open."""
        client = self.loader_client
        ctx = client.ctx
        if ctx is None:
            ctx = client.ctx = CommandContext(self, client)
        # name as sent -> (handler, fewest args, most args, spec), or False for the full path
        fast = self.__dict__.get("_replay_table")
        if fast is None:
            fast = self._replay_table = {}
        in_multi = client.multi is not None
        # Nobody WATCHes or waits during a start-up load: then a command's keys need no
        # signal and the dirty count is summed once (DEBUG RELOAD keeps the per-command way).
        signal = self._ready_keys or any(
            db.watched or db.blocked for db in self.keyspace.databases)
        previous = self._current
        dirty = 0
        self.replaying = True
        self._current = client
        ctx.dirty = 0
        try:
            for index, argv in enumerate(argvs):
                entry = fast.get(argv[0])
                if entry is None:
                    entry = self._replay_entry(argv[0])
                if entry and not in_multi and entry[1] <= len(argv) <= entry[2]:
                    ctx.db = client.db
                    try:
                        reply = entry[0](ctx, argv)
                    except CommandError as error:
                        reply = self._error(error.message, entry[3].name)
                    except Exception as error:  # a bug: the load stops with this error
                        name = entry[3].name
                        self.log.warning(f"Internal error running {name}: {error!r}")
                        reply = self._error(f"ERR internal error running '{name}': {error!r}",
                                            name)
                    if signal and ctx.dirty:
                        dirty += ctx.dirty
                        ctx.dirty = 0
                        db = ctx.db
                        if db.watched or db.blocked:
                            for key in entry[3].keys(argv):
                                self.keyspace.signal_modified(db, key)
                        if self._ready_keys:
                            self.serve_blocked()
                            self._current = client
                    if isinstance(reply, ErrorReply):
                        return index, reply
                    continue
                # Transactions, blocking commands, unknown names, wrong arity: the full path
                # (``execute`` counts its own dirty changes).
                dirty += ctx.dirty
                reply = self.call(client, argv)
                ctx.dirty = 0
                self._current = client
                in_multi = client.multi is not None
                if reply.__class__ is Block:
                    reply = reply.timeout_reply
                if isinstance(reply, ErrorReply) or (
                        reply.__class__ is list and argv[0].lower() == b"exec"
                        and any(isinstance(item, ErrorReply) for item in reply)):
                    return index, reply
            return None
        finally:
            self.dirty += dirty + ctx.dirty
            ctx.dirty = 0
            self.replaying = False
            self._current = previous

    def _replay_entry(self, sent: bytes) -> tuple[Callable[..., Any], int, int, CommandSpec] | bool:
        """``replay_many``'s table entry for a command name as sent (remembered)."""
        found = self._dispatch.get(sent) or self._lookup(sent)
        if found is None or found[1] in _MULTI_CONTROL or BLOCKING in found[0].flags:
            entry: Any = False
        else:
            spec = found[0]
            fewest, most = (spec.arity, spec.arity) if spec.arity > 0 else (-spec.arity, 1 << 62)
            entry = (spec.handler, fewest, most, spec)
        if len(self._replay_table) < 4096:
            self._replay_table[sent] = entry
        return entry

    async def load(self) -> None:
        """Ask backends, highest priority first, to load the dataset."""
        self.loading = True
        self.keyspace.loading = True
        self.loading_started = time.time()
        self.loading_loaded = self.loading_total = 0
        self.loader_client.db = self.keyspace[0]
        self.loader_client.multi = None
        try:
            await self.persistence.load()
        finally:
            self.loading = False
            self.keyspace.loading = False
            self._recount()
            gc.collect()

    def _recount(self) -> None:
        """After a load (snapshots install whole dicts): count the dataset again."""
        for db in self.keyspace.databases:
            memory_module.recount(db)
        self._memory_stamp = ()

    def loading_progress(self, loaded: int, total: int) -> None:
        self.loading_loaded = loaded
        self.loading_total = total

    def loading_eta(self) -> int:
        if not self.loading or not self.loading_loaded or not self.loading_total:
            return 1
        elapsed = time.time() - self.loading_started
        rate = self.loading_loaded / max(elapsed, 1e-6)
        return math.ceil((self.loading_total - self.loading_loaded) / max(rate, 1e-6))

    # --- shutdown --------------------------------------------------------------------------

    def change_replication_id(self) -> None:
        """DEBUG CHANGE-REPL-ID: a new replication id."""
        self.replication_id = os.urandom(20).hex()

    def request_shutdown(self, save: bool | None = None) -> None:
        self.shutdown_save = save
        self.shutdown_requested.set()

    @property
    def pid(self) -> int:
        return os.getpid()
