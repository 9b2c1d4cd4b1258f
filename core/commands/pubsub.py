"""Pub/Sub commands: SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB, and the
sharded ones (SSUBSCRIBE SUNSUBSCRIBE SPUBLISH), whose channels are counted apart.

Replies follow Redis 7 byte for byte.  A (un)subscribe command answers once per channel, so
its handler returns the confirmations already encoded (:class:`Raw`) for the client's protocol:
arrays under RESP2, pushes under RESP3.  Once subscribed, a RESP2 client may only send the
commands the engine lets through (``_SUBSCRIBED_ALLOWED``); a RESP3 client may send anything.
"""

from __future__ import annotations

from .. import errors
from ..errors import CommandError
from ..pubsub import of
from ..resp import Push, Raw, Status, encode
from . import command


def _confirm_each(client, kind: bytes, names, action, shard: bool = False) -> Raw:
    """Apply ``action(client, name)`` to each name and confirm each with Redis's
    ``[kind, name, subscription count]`` push, the count as it is right after that name
    (shard channels count only themselves; channels and patterns count together).
    A None name (UNSUBSCRIBE with nothing to leave) is confirmed without an action."""
    out = []
    for name in names:
        if name is not None:
            action(client, name)
        count = len(client.shard_channels) if shard else client.subscriptions
        out.append(encode(Push([kind, name, count]), client.resp3))
    confirmations = Raw(b"".join(out))
    if client.replies_dropped:
        # CLIENT REPLY OFF/SKIP silence replies, not pushes: Redis still sends these.
        client.transport.push(confirmations)
        return None
    return confirmations


def subscribe(ctx, argv):
    return _confirm_each(ctx.client, b"subscribe", argv[1:], of(ctx.engine).subscribe)


def psubscribe(ctx, argv):
    return _confirm_each(ctx.client, b"psubscribe", argv[1:], of(ctx.engine).psubscribe)


def unsubscribe(ctx, argv):
    # Nothing to leave: one confirmation with a null channel.
    channels = argv[1:] or list(ctx.client.channels) or [None]
    return _confirm_each(ctx.client, b"unsubscribe", channels, of(ctx.engine).unsubscribe)


def punsubscribe(ctx, argv):
    patterns = argv[1:] or list(ctx.client.patterns) or [None]
    return _confirm_each(ctx.client, b"punsubscribe", patterns, of(ctx.engine).punsubscribe)


def ssubscribe(ctx, argv):
    if ctx.engine.in_exec:
        # Redis 7.0 refuses it inside a transaction (SUBSCRIBE is let through there).
        raise CommandError("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client")
    return _confirm_each(ctx.client, b"ssubscribe", argv[1:], of(ctx.engine).ssubscribe, True)


def sunsubscribe(ctx, argv):
    channels = argv[1:] or list(ctx.client.shard_channels) or [None]
    return _confirm_each(ctx.client, b"sunsubscribe", channels, of(ctx.engine).sunsubscribe,
                         True)


def publish(ctx, argv):
    return _published(ctx, *ctx.engine.pubsub.publish(argv[1], argv[2], ctx.client))


def spublish(ctx, argv):
    """SPUBLISH: like PUBLISH, to the shard channel's subscribers only.  Like PUBLISH, nothing
    reaches the AOF: a message is no change to the dataset."""
    return _published(ctx, *ctx.engine.pubsub.spublish(argv[1], argv[2], ctx.client))


def _published(ctx, receivers: int, own: list):
    """The reply to (S)PUBLISH: the receiver count, after the sender's own messages."""
    if not own:
        return receivers
    # The publisher listens too (RESP3): its messages come before the reply, as in Redis.
    if ctx.client.replies_dropped:  # CLIENT REPLY OFF/SKIP: the messages alone
        for message in own:
            ctx.client.transport.push(message)
        return receivers
    resp3 = ctx.client.resp3
    return Raw(b"".join(encode(message, resp3) for message in own) + encode(receivers, resp3))


_PUBSUB_HELP = [
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
]


def pubsub_(ctx, argv):
    pubsub = of(ctx.engine)
    sub = argv[1].lower()
    if sub == b"channels" and len(argv) in (2, 3):
        return pubsub.matching_channels(argv[2] if len(argv) == 3 else None)
    if sub == b"numsub":
        reply = []
        for channel in argv[2:]:
            reply += [channel, len(pubsub.channels.get(channel, ()))]
        return reply
    if sub == b"numpat" and len(argv) == 2:
        return len(pubsub.patterns)
    if sub == b"shardchannels" and len(argv) in (2, 3):
        return pubsub.matching_shard_channels(argv[2] if len(argv) == 3 else None)
    if sub == b"shardnumsub":
        reply = []
        for channel in argv[2:]:
            reply += [channel, len(pubsub.shard_channels.get(channel, ()))]
        return reply
    if sub == b"help" and len(argv) == 2:
        return [Status(line.encode()) for line in _PUBSUB_HELP]
    if sub in (b"numpat", b"help"):
        raise CommandError(errors.wrong_arity(f"pubsub|{sub.decode()}"))
    if sub in (b"channels", b"shardchannels"):
        raise CommandError(errors.sanitize(
            "ERR unknown subcommand or wrong number of arguments for "
            f"'{argv[1].decode('utf-8', 'replace')}'. Try PUBSUB HELP."))
    raise CommandError(errors.unknown_subcommand(argv[1], "PUBSUB"))


def register(registry):
    group = "pubsub"
    registry.extend([
        command("subscribe", -2, "pubsub noscript loading stale", subscribe, group=group),
        command("psubscribe", -2, "pubsub noscript loading stale", psubscribe, group=group),
        command("unsubscribe", -1, "pubsub noscript loading stale", unsubscribe, group=group),
        command("punsubscribe", -1, "pubsub noscript loading stale", punsubscribe, group=group),
        command("publish", 3, "pubsub loading stale fast", publish, group=group),
        # Redis declares the shard channels as keys (flagged not_key, for cluster routing);
        # here they are channels only, so ACL key patterns never apply to them.
        command("ssubscribe", -2, "pubsub noscript loading stale", ssubscribe, group=group),
        command("sunsubscribe", -1, "pubsub noscript loading stale", sunsubscribe, group=group),
        command("spublish", 3, "pubsub loading stale fast", spublish, group=group),
        command("pubsub", -2, "pubsub loading stale", pubsub_, group=group,
                subcommands={"channels": -2, "numsub": -2, "numpat": 2, "shardchannels": -2,
                             "shardnumsub": -2, "help": 2}),
    ])
