"""Transactions: MULTI EXEC DISCARD WATCH UNWATCH."""

from __future__ import annotations

from .. import errors
from ..errors import CommandError
from ..resp import OK
from . import command


def multi(ctx, argv):
    client = ctx.client
    if client.multi is not None:
        raise CommandError(errors.NESTED_MULTI)
    client.multi = []
    client.multi_error = False
    return OK


def exec_(ctx, argv):
    return ctx.engine.exec_transaction(ctx.client)


def discard(ctx, argv):
    client = ctx.client
    if client.multi is None:
        raise CommandError(errors.DISCARD_WITHOUT_MULTI)
    client.multi = None
    client.multi_error = False
    ctx.engine.unwatch(client)
    return OK


def watch(ctx, argv):
    if ctx.client.multi is not None:
        raise CommandError(errors.WATCH_IN_MULTI)
    for key in argv[1:]:
        # A key already expired when watched does not abort EXEC later (Redis records it as
        # expired at WATCH time): expire it now, so EXEC sees a key without a TTL.
        ctx.db.get(key)
    ctx.engine.watch(ctx.client, argv[1:])
    return OK


def unwatch(ctx, argv):
    ctx.engine.unwatch(ctx.client)
    return OK


def register(registry):
    group = "transactions"
    registry.extend([
        command("multi", 1, "noscript fast loading stale allow-busy", multi, group=group),
        command("exec", 1, "noscript loading stale skip-slowlog", exec_, group=group),
        command("discard", 1, "noscript fast loading stale allow-busy", discard, group=group),
        command("watch", -2, "noscript fast loading stale allow-busy", watch, group=group),
        command("unwatch", 1, "noscript fast loading stale allow-busy", unwatch, group=group),
    ])
