"""The command path of the engine: Redis's ``processCommand`` (look the command up, check
arity, authentication, ACLs, memory, refused writes, pub/sub context, loading, CLIENT PAUSE
and MULTI queueing) and ``call()`` (run the handler, count it, time it, propagate what it
did, note OBJECT ENCODING's history, signal WATCH and blocked clients, client-side caching).

Moved out of :mod:`trioredis.engine` for its size, as one job: :class:`CommandPath` is a base
class of :class:`~trioredis.engine.Engine` and owns no state; it runs on the engine's
subsystems and attributes, all built in ``Engine.__init__``.  A base class rather than a
subsystem called through an attribute because this runs for every command: a method of the
engine itself costs no extra call or lookup.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from . import errors, transactions
from .admission import CROSS_PROTOCOL_WORDS, debug_allowed, log_denial
from .blocking import Block
from .commands import BLOCKING, CommandSpec, full_command_name, subcommand_arity
from .context import CommandContext
from .encodings import NOTES as ENCODING_NOTES
from .errors import CommandError
from .latency import HIGHEST_NS, SUB_BUCKET_MAGNITUDE, SUB_BUCKET_MASK
from .resp import QUEUED, ErrorReply

if TYPE_CHECKING:
    from .client import Client

_MULTI_CONTROL = frozenset({b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"})
_SUBSCRIBED_ALLOWED = frozenset(
    {b"subscribe", b"psubscribe", b"unsubscribe", b"punsubscribe", b"ping", b"quit", b"reset",
     b"ssubscribe", b"sunsubscribe"}
)


class CommandPath:
    """``Engine.call`` and ``Engine.execute`` with their refusals and error replies (a base
    class of the engine: see the module's note)."""

    def call(self, client: Client, argv: list[bytes]) -> Any:
        """Run one command for ``client``: the reply, an ErrorReply, or a :class:`Block`."""
        entry = self._dispatch.get(argv[0])
        if entry is None:
            entry = self._lookup(argv[0])
            if entry is None:
                if argv[0].lower() in CROSS_PROTOCOL_WORDS:
                    return self._cross_protocol.refuse(client)
                client.last_command = "NULL"
                return self._reject(client, argv, errors.unknown_command(argv))
        spec, name, is_write = entry
        extras = self.extras
        if extras and self.tracking.clients:  # tracking-table-max-keys (tracking.py)
            self.tracking.limit()
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
        if spec.name == "debug" and not debug_allowed(self.config, client):  # renamed ones too
            return self._reject(client, argv, errors.DEBUG_NOT_ALLOWED, spec)
        if not client.authenticated and "noauth" not in spec.flags:
            return self._reject(client, argv, errors.NOAUTH, spec)
        if client.user in self.acl.restricted:  # empty unless ACL SETUSER restricted someone
            denied = self.acl.check(client.user, spec, argv)
            if denied is not None:
                log_denial(self, client, spec, argv, denied)
                return self._reject(client, argv, denied, spec)
        if self.config.maxmemory and not client.is_loader and self._out_of_memory(client, spec):
            return self._reject(client, argv, errors.OOM, spec)
        if is_write and self._refusal is not None and not client.is_loader:
            return self._reject(client, argv, self._refusal, spec)
        if (client.channels or client.patterns or client.shard_channels) and not client.resp3 and name not in _SUBSCRIBED_ALLOWED:
            return self._reject(
                client, argv,
                f"ERR Can't execute '{full_name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                "PING / QUIT / RESET are allowed in this context", spec
            )
        if self.refuse_stale and "stale" not in spec.flags and not client.is_loader:
            # A replica whose master link is down, with replica-serve-stale-data no.
            return self._reject(client, argv, errors.MASTERDOWN, spec)
        if self.loading and not client.is_loader and "loading" not in spec.flags:
            return self._reject(client, argv, errors.LOADING, spec)
        if extras and self.pause.mode is not None and self.pause.holds(client, spec, argv):
            return self.pause.hold(client, argv)  # CLIENT PAUSE: runs again once it ends
        if client.multi is not None and name not in _MULTI_CONTROL:
            if "no-multi" in spec.flags:
                return self._reject(client, argv, errors.NOT_ALLOWED_IN_MULTI, spec)
            client.multi.append((spec, argv))
            return QUEUED
        reply = self.execute(client, spec, argv)
        if extras and self.tracking.pending:  # invalidations for this client follow its reply
            return self.tracking.with_pending(client, reply)
        return reply

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

    # Over 60 lines on purpose: this runs for every command, so propagation, statistics,
    # latency and the executed hook are inlined here rather than called.
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
        # Client-side caching: what DEL/UNLINK will find, to invalidate only what they delete.
        tracked = self.extras and self.tracking.table is not None
        existed = self.tracking.before_command(ctx.db, spec, argv) if tracked else None
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
            note = ENCODING_NOTES.get(spec.name)  # OBJECT ENCODING's history (trioredis.encodings)
            if note is not None:
                note(db, argv, self.config)
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
        if tracked and not self.replaying:  # client-side caching
            self.tracking.after_command(client, spec, argv, ctx.dirty, ctx.db, self.in_exec,
                                        existed)
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
            if self._latency_tracking:  # latency.record, inlined
                ns = duration_ns if 0 < duration_ns <= HIGHEST_NS else (
                    1 if duration_ns < 1 else HIGHEST_NS)
                shift = (ns | SUB_BUCKET_MASK).bit_length() - SUB_BUCKET_MAGNITUDE
                bucket = ns >> shift << shift
                histogram = record[4]
                histogram[bucket] = histogram.get(bucket, 0) + 1
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
            transactions.unwatch(client)
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
