"""XREAD and XREADGROUP: reading entries after IDs, from a group with delivery and the
pending entries list, and blocking until entries arrive.

XREADGROUP propagates what it delivered (see :mod:`trioredis.commands.streams`).  Registered
by :func:`trioredis.commands.streams.register` with the group's other commands.
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..engine import Block
from ..errors import CommandError
from ..keyspace import now_ms
from ..resp import NULL_ARRAY, Raw, encode
from ..stream import (
    ID_MAX,
    Consumer,
    Group,
    Nack,
    Stream,
    format_id,
)
from .keys import typed_value
from .stream_args import (
    BLOCKED_DEFAULT_COUNT,
    DOLLAR_IN_XREADGROUP,
    GROUP_ONLY_XREADGROUP,
    GT_IN_XREAD,
    MISSING_GROUP,
    NOACK_ONLY_XREADGROUP,
    NOGROUP_DESTROYED,
    UNBALANCED,
    UNBLOCKED_DELETED,
    _count,
    _emit,
    _entry,
    _lookup_or_create_consumer,
    _nogroup,
    _setid_effect,
    _strict_id,
    _xclaim_effect,
    parse_block_ms,
)

# --- XREAD, XREADGROUP -----------------------------------------------------------------------


class _ReadRequest:
    __slots__ = ("keys", "ids", "count", "timeout", "group", "consumer", "noack", "name")

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.ids: list[int | None] = []  # None: ">" (new entries for the group)
        self.count = 0
        self.timeout: float | None = None
        self.group: bytes | None = None
        self.consumer = b""
        self.noack = False
        self.name = ""


def _parse_read(ctx, argv: list[bytes], readgroup: bool) -> _ReadRequest:
    request = _ReadRequest()
    request.name = "xreadgroup" if readgroup else "xread"
    streams_at = 0
    index = 1
    while index < len(argv):
        more = len(argv) - index - 1
        option = argv[index].lower()
        if option == b"block" and more:
            index += 1
            request.timeout = parse_block_ms(argv[index])
        elif option == b"count" and more:
            index += 1
            request.count = _count(argv[index])
        elif option == b"streams" and more:
            streams_at = index + 1
            if (len(argv) - streams_at) % 2:
                raise CommandError(UNBALANCED.format(request.name))
            break
        elif option == b"group" and more >= 2:
            if not readgroup:
                raise CommandError(GROUP_ONLY_XREADGROUP)
            request.group = argv[index + 1]
            request.consumer = argv[index + 2]
            index += 2
        elif option == b"noack":
            if not readgroup:
                raise CommandError(NOACK_ONLY_XREADGROUP)
            request.noack = True
        else:
            raise CommandError(errors.SYNTAX)
        index += 1
    if not streams_at:
        raise CommandError(errors.SYNTAX)
    if readgroup and request.group is None:
        raise CommandError(MISSING_GROUP)
    half = (len(argv) - streams_at) // 2
    request.keys = argv[streams_at : streams_at + half]
    for key, raw in zip(request.keys, argv[streams_at + half :], strict=True):
        stream = typed_value(ctx, key, Stream, read=True)
        if request.group is not None:
            if stream is None or request.group not in stream.groups:
                raise _nogroup(key, request.group, " in XREADGROUP with GROUP option")
        if raw == b"$":
            if readgroup:
                raise CommandError(DOLLAR_IN_XREADGROUP)
            request.ids.append(stream.last_id if stream is not None else 0)
        elif raw == b">":
            if not readgroup:
                raise CommandError(GT_IN_XREAD)
            request.ids.append(None)
        else:
            request.ids.append(_strict_id(raw))
    return request


def _deliver(ctx, key: bytes, stream: Stream, group: Group, consumer: Consumer,
             after: int, count: int, noack: bool, effects: list[list[bytes]]) -> list[Any]:
    """New entries for a group (Redis's streamReplyWithRange with a group): each moves the
    group's last ID and, without NOACK, becomes pending for ``consumer`` (taken from
    another consumer if it was pending there)."""
    reply: list[Any] = []
    if after >= ID_MAX:
        return reply
    now = now_ms()
    advanced = False
    group_name = group.name
    for node, position, stream_id in stream.positions(after + 1, ID_MAX):
        if stream_id > group.last_id:
            stream.advance_group(group, stream_id)
            advanced = True
        reply.append(Raw(node.encoded(position, stream_id)))
        if not noack:
            nack = group.pel.get(stream_id)
            if nack is None:
                nack = Nack(consumer, now)
                group.pel[stream_id] = nack
            else:
                assert nack.consumer is not None
                nack.consumer.pel.pop(stream_id, None)
                nack.consumer = consumer
                nack.delivery_time = now
                nack.delivery_count = 1
            consumer.pel[stream_id] = nack
            effects.append(_xclaim_effect(key, group, group_name, stream_id, nack))
        if count and len(reply) == count:
            break
    if advanced and noack:
        effects.append(_setid_effect(key, group, group_name))
    return reply


def _history(stream: Stream, consumer: Consumer, after: int, count: int) -> list[Any]:
    """A consumer's own pending entries from ``after`` on (XREADGROUP with an ID): a
    deleted entry shows as its ID with a null; each delivery is counted."""
    reply: list[Any] = []
    if after == ID_MAX:
        return reply
    now = now_ms()
    pel = consumer.pel
    for stream_id in pel.irange(after + 1):
        if count and len(reply) >= count:
            break
        items = stream.get(stream_id)
        if items is None:
            reply.append([format_id(stream_id), NULL_ARRAY])
        else:
            nack = pel[stream_id]
            nack.delivery_time = now
            nack.delivery_count += 1
            reply.append(_entry(stream_id, items))
    return reply


def _serve(ctx, request: _ReadRequest, keys: list[int], after_ids: list[int | None],
           count: int, blocked: bool) -> Any:
    """What XREAD/XREADGROUP can answer now for the streams at ``keys`` (indexes into the
    request): the reply, or None when nothing is there."""
    served: list[tuple[bytes, list[Any]]] = []
    effects: list[list[bytes]] = []
    for index in keys:
        key = request.keys[index]
        value = ctx.db.get(key)
        if request.group is not None and (value is None or value.__class__ is not Stream):
            if blocked:
                raise CommandError(UNBLOCKED_DELETED)
            continue
        if value is None or value.__class__ is not Stream:
            continue
        stream: Stream = value
        after = after_ids[index]
        if request.group is None:
            assert after is not None
            if blocked:
                if stream.last_id > after:
                    served.append((key, _take(stream, after, count)))
            elif stream.length and stream.last_valid_id() > after:
                served.append((key, _take(stream, after, count)))
            continue
        group = stream.groups.get(request.group)
        if group is None:
            if blocked:
                raise CommandError(NOGROUP_DESTROYED)
            continue
        history = after is not None
        if history:
            serve_now = True
        elif blocked:
            serve_now = stream.last_id > group.last_id
        else:
            serve_now = bool(stream.length) and stream.last_valid_id() > group.last_id
        if not serve_now:
            continue
        # Redis 7.0 creates the consumer only when it serves it (not when it blocks).
        consumer, created = _lookup_or_create_consumer(ctx, group, request.consumer, key)
        if created and request.noack:
            effects.append([b"XGROUP", b"CREATECONSUMER", key, request.group, request.consumer])
        if history:
            assert after is not None
            entries = _history(stream, consumer, after, count)
        else:
            entries = _deliver(ctx, key, stream, group, consumer, group.last_id, count,
                               request.noack, effects)
        ctx.dirty += 1
        served.append((key, entries))
        if blocked:
            break
    if request.group is not None:
        _emit(ctx, effects)
    if not served:
        return None
    if ctx.client.resp3:
        # A map, written out here: the same key may be asked twice and answered twice.
        return Raw(b"%%%d\r\n" % len(served) + b"".join(
            encode(key, True) + encode(entries, True) for key, entries in served))
    return [[key, entries] for key, entries in served]


def _take(stream: Stream, after: int, count: int) -> list[Raw]:
    """XREAD's entries after ``after`` (at most ``count``, 0: all), as replies."""
    taken: list[Raw] = []
    if after == ID_MAX:
        return taken
    for node, position, stream_id in stream.positions(after + 1, ID_MAX):
        taken.append(Raw(node.encoded(position, stream_id)))
        if len(taken) == count:
            break
    return taken


def _read(ctx, argv, readgroup: bool):
    request = _parse_read(ctx, argv, readgroup)
    everything = list(range(len(request.keys)))
    reply = _serve(ctx, request, everything, request.ids, request.count, blocked=False)
    if reply is not None:
        return reply
    if request.timeout is None:
        return NULL_ARRAY
    count = request.count or BLOCKED_DEFAULT_COUNT
    after_ids = list(request.ids)
    # Once blocked, "$" means the last ID seen now, and a group's ">" its last ID then.
    positions: dict[bytes, int] = {}
    for index, key in enumerate(request.keys):
        positions.setdefault(key, index)

    def attempt(c):
        ready = block.ready_key
        indexes = [positions[ready]] if ready in positions else everything
        return _serve(c, request, indexes, after_ids, count, blocked=True)

    block = Block(request.keys, request.timeout, attempt)
    return block


def xread(ctx, argv):
    return _read(ctx, argv, readgroup=False)


def xreadgroup(ctx, argv):
    return _read(ctx, argv, readgroup=True)
