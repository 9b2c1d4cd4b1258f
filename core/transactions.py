"""MULTI/EXEC and WATCH: running a queued transaction, and the watched keys of a client.

Split from :mod:`trioredis.engine`, which calls these for EXEC, WATCH and UNWATCH; the
engine keeps the state they share with every command (``in_exec``, the fan-out point)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import errors
from .acl import acl_changed_in_multi
from .errors import CommandError
from .keyspace import now_ms
from .resp import NULL_ARRAY

if TYPE_CHECKING:
    from .client import Client
    from .engine import Engine


def exec_transaction(engine: Engine, client: Client) -> Any:
    """EXEC: run ``client``'s queued commands as one unit, their effects propagated between
    one MULTI and one EXEC (only when one of them wrote)."""
    queued = client.multi
    if queued is None:
        raise CommandError(errors.EXEC_WITHOUT_MULTI)
    client.multi = None
    if client.multi_error:
        client.multi_error = False
        unwatch(client)
        raise CommandError(errors.EXECABORT)
    if client.dirty_cas or watched_key_expired(client):
        unwatch(client)
        return NULL_ARRAY
    unwatch(client)
    engine.in_exec = True
    engine.fork_slot.in_transaction = True
    engine.multi_emitted = False
    replies = []
    try:
        restricted = client.user in engine.acl.restricted
        for spec, argv in queued:
            if restricted:
                # ACL rules may have changed since the command was queued: Redis checks
                # again and refuses that one command, the others still run.
                denied = engine.acl.check(client.user, spec, argv)
                if denied is not None:
                    replies.append(engine._error(acl_changed_in_multi(denied)))
                    continue
            refusal = engine.refuse_writes() if spec.is_write else None
            if refusal is not None:
                replies.append(engine._error(refusal))
                continue
            replies.append(engine.execute(client, spec, argv))
    finally:
        if engine.multi_emitted:
            engine._feed(client.db.index, [b"EXEC"])
        engine.in_exec = False
        engine.fork_slot.in_transaction = False
        engine.multi_emitted = False
        # EXEC shares the client's context with the commands it ran: clear their dirty
        # count so EXEC itself is not propagated a second time after the block.
        if client.ctx is not None:
            client.ctx.dirty = 0
    if engine.blocking.ready_keys:
        engine.blocking.serve()
    return replies


def watched_key_expired(client: Client) -> bool:
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


def watch(client: Client, keys: Sequence[bytes]) -> None:
    """WATCH ``keys`` in the client's database (each once)."""
    db = client.db
    for key in keys:
        if any(d is db and k == key for d, k in client.watched):
            continue
        client.watched.append((db, key))
        db.watched.setdefault(key, set()).add(client)


def unwatch(client: Client) -> None:
    """Forget every key ``client`` watches (UNWATCH, EXEC, DISCARD, disconnect)."""
    for db, key in client.watched:
        watchers = db.watched.get(key)
        if watchers is not None:
            watchers.discard(client)
            if not watchers:
                del db.watched[key]
    client.watched = []
    client.dirty_cas = False
