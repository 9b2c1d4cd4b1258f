"""Loading the dataset: replaying persisted commands, the start-up load, DEBUG RELOAD, and
the progress INFO reports.  Split from :mod:`trioredis.engine`; the engine keeps the
``loading`` flag its command checks read."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .blocking import Block
from .commands import BLOCKING, CommandSpec
from .context import CommandContext
from .encodings import WRITERS as ENCODING_WRITERS
from .encodings import mark_by_shape
from .encodings import note_write as note_encoding_write
from .errors import CommandError
from .resp import ErrorReply

if TYPE_CHECKING:
    from .engine import Engine

# Commands that change how the following ones run: the full path, never the fast table.
_MULTI_CONTROL = frozenset({b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"})
_TABLE_LIMIT = 4096  # spellings remembered; more (hostile files) take the lookup each time


class Replayer:
    """Runs commands from persistence files for one engine, as a client that gets no
    replies and propagates nothing."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # name as sent -> (handler, fewest args, most args, spec), or False for the full path
        self._table: dict[bytes, tuple[Callable[..., Any], int, int, CommandSpec] | bool] = {}

    def replay(self, argv: list[bytes]) -> Any:
        """Run one command: no reply is sent, nothing is propagated."""
        engine = self.engine
        engine.replaying = True
        try:
            reply = engine.call(engine.loader_client, argv)
        finally:
            engine.replaying = False
        if reply.__class__ is Block:
            return reply.timeout_reply
        return reply

    # Over 60 lines on purpose: this is the loader's inner loop (millions of commands for a
    # big AOF), kept in one frame so each command costs a dict lookup and the handler call.
    def replay_many(self, argvs: Sequence[list[bytes]]) -> tuple[int, Any] | None:
        """Run a batch of commands as :meth:`replay` runs each one; None when all succeeded,
        else ``(index, reply)`` of the first that failed (an ErrorReply, or an EXEC reply
        holding one), whose followers are not run.

        Why not ``Engine.call`` per command: loading a big AOF is millions of commands, and
        most of what ``call``/``execute`` do per command is for live clients (ACL, OOM,
        refused writes, pub/sub mode, commandstats, latency and the executed hook,
        propagation).  Like Redis's loader (``cmd->proc`` on a fake client, not ``call()``),
        a plain command here is the arity check and the handler; the engine's dirty count,
        WATCH and blocked clients are kept as ``execute`` keeps them.  Transactions, blocking
        commands, unknown names and wrong arity take the full ``call`` path, as does
        everything while a MULTI is open."""
        engine = self.engine
        client = engine.loader_client
        ctx = client.ctx
        if ctx is None:
            ctx = client.ctx = CommandContext(engine, client)
        fast = self._table
        in_multi = client.multi is not None
        blocking = engine.blocking
        # Nobody WATCHes or waits during a start-up load: then a command's keys need no
        # signal and the dirty count is summed once (DEBUG RELOAD keeps the per-command way).
        signal = blocking.ready_keys or any(
            db.watched or db.blocked for db in engine.keyspace.databases)
        previous = engine._current
        dirty = 0
        engine.replaying = True
        engine._current = client
        ctx.dirty = 0
        try:
            for index, argv in enumerate(argvs):
                entry = fast.get(argv[0])
                if entry is None:
                    entry = self._entry(argv[0])
                if entry and not in_multi and entry[1] <= len(argv) <= entry[2]:
                    ctx.db = client.db
                    before = ctx.dirty
                    try:
                        reply = entry[0](ctx, argv)
                    except CommandError as error:
                        reply = engine._error(error.message, entry[3].name)
                    except Exception as error:  # a bug: the load stops with this error
                        name = entry[3].name
                        engine.log.warning(f"Internal error running {name}: {error!r}")
                        reply = engine._error(
                            f"ERR internal error running '{name}': {error!r}", name)
                    if ctx.dirty != before and entry[3].name in ENCODING_WRITERS:
                        note_encoding_write(ctx.db, entry[3].name, argv, engine.config)
                    if signal and ctx.dirty:
                        dirty += ctx.dirty
                        ctx.dirty = 0
                        db = ctx.db
                        if db.watched or db.blocked:
                            for key in entry[3].keys(argv):
                                engine.keyspace.signal_modified(db, key)
                        if blocking.ready_keys:
                            blocking.serve()
                            engine._current = client
                    if isinstance(reply, ErrorReply):
                        return index, reply
                    continue
                # Transactions, blocking commands, unknown names, wrong arity: the full path
                # (``execute`` counts its own dirty changes).
                dirty += ctx.dirty
                reply = engine.call(client, argv)
                ctx.dirty = 0
                engine._current = client
                in_multi = client.multi is not None
                if reply.__class__ is Block:
                    reply = reply.timeout_reply
                if isinstance(reply, ErrorReply) or (
                        reply.__class__ is list and argv[0].lower() == b"exec"
                        and any(isinstance(item, ErrorReply) for item in reply)):
                    return index, reply
            return None
        finally:
            engine.dirty += dirty + ctx.dirty
            ctx.dirty = 0
            engine.replaying = False
            engine._current = previous

    def _entry(self, sent: bytes) -> tuple[Callable[..., Any], int, int, CommandSpec] | bool:
        """The fast table's entry for a command name as sent (remembered)."""
        engine = self.engine
        found = engine._dispatch.get(sent) or engine._lookup(sent)
        entry: tuple[Callable[..., Any], int, int, CommandSpec] | bool
        if found is None or found[1] in _MULTI_CONTROL or BLOCKING in found[0].flags:
            entry = False
        else:
            spec = found[0]
            fewest, most = (spec.arity, spec.arity) if spec.arity > 0 else (-spec.arity, 1 << 62)
            entry = (spec.handler, fewest, most, spec)
        if len(self._table) < _TABLE_LIMIT:
            self._table[sent] = entry
        return entry


async def load(engine: Engine) -> None:
    """Start-up: ask backends, highest priority first, to load the dataset."""
    engine.loading = True
    engine.keyspace.loading = True
    engine.loading_started = time.time()
    engine.loading_loaded = engine.loading_total = 0
    engine.loader_client.db = engine.keyspace[0]
    engine.loader_client.multi = None
    try:
        await engine.persistence.load()
    finally:
        engine.loading = False
        engine.keyspace.loading = False
        engine.recount_memory()  # trioredis.memory: snapshots install whole dicts
        gc.collect()
    mark_by_shape(engine.keyspace.databases, engine.config)  # trioredis.encodings


async def reload_from(engine: Engine, backend: Any) -> None:
    """DEBUG RELOAD, once ``backend``'s files are complete: empty the dataset and load it
    back from them."""
    engine.keyspace.flush_all()
    engine.scripting.functions.flush()  # libraries are part of the dataset: reloaded too
    engine.loading = engine.keyspace.loading = True
    engine.loader_client.db = engine.keyspace[0]
    try:
        await backend.load(engine.persistence.loader())
    finally:
        engine.loading = engine.keyspace.loading = False
        engine.recount_memory()  # trioredis.memory
    mark_by_shape(engine.keyspace.databases, engine.config)  # trioredis.encodings


def loading_eta(engine: Engine) -> int:
    """INFO's loading_eta_seconds: the remaining bytes at the rate seen so far."""
    if not engine.loading or not engine.loading_loaded or not engine.loading_total:
        return 1
    elapsed = time.time() - engine.loading_started
    rate = engine.loading_loaded / max(elapsed, 1e-6)
    return math.ceil((engine.loading_total - engine.loading_loaded) / max(rate, 1e-6))
