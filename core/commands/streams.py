"""Stream commands: XADD, XRANGE, XREAD, consumer groups (XGROUP, XREADGROUP, XACK, XPENDING,
XCLAIM, XAUTOCLAIM), XINFO, XSETID.

The type lives in :mod:`trioredis.stream`.  Arguments are checked in Redis 7.0's order
(``t_stream.c``) so that the same mistake gives the same error, and replies have its shapes
in RESP2 and RESP3.

Propagation is the deterministic effect, as Redis 7.0 propagates it:

- XADD with the ID it generated, and an approximate trim (``~``) as the exact trim it
  turned out to be (``MAXLEN = <length after>`` or ``MINID = <first ID after>``); XTRIM the
  same way.
- XREADGROUP (which never propagates itself) as one ``XCLAIM key group consumer 0 id TIME
  <ms> RETRYCOUNT <n> FORCE JUSTID LASTID <group last ID>`` per entry it delivered, plus
  ``XGROUP CREATECONSUMER`` and ``XGROUP SETID ... ENTRIESREAD`` under NOACK; XCLAIM and
  XAUTOCLAIM as one such XCLAIM per entry claimed (or dropped because it was deleted).
  Several effects of one command go out between MULTI and EXEC, as Redis wraps them.
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..engine import Block
from ..errors import CommandError
from ..keyspace import now_ms
from ..pubsub import notify_keyspace_event
from ..resp import NULL_ARRAY, OK, ErrorReply, Map, Raw, Status, encode
from ..stream import (
    ID_MAX,
    INVALID_ENTRIES_READ,
    SEQ_MASK,
    Consumer,
    Group,
    Nack,
    Stream,
    format_id,
    make_id,
)
from . import command
from .args import INT64_MAX, parse_int
from .keys import typed_value

INVALID_ID = "ERR Invalid stream ID specified as stream command argument"
XADD_ID_TOO_SMALL = "ERR The ID specified in XADD is equal or smaller than the target stream top item"
XADD_ID_ZERO = "ERR The ID specified in XADD must be greater than 0-0"
STREAM_EXHAUSTED = "ERR The stream has exhausted the last possible ID, unable to add more items"
ELEMENTS_TOO_LARGE = "ERR Elements are too large to be stored"
MAXLEN_AND_MINID = "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
MAXLEN_NEGATIVE = "ERR The MAXLEN argument must be >= 0."
LIMIT_NEGATIVE = "ERR The LIMIT argument must be >= 0."
LIMIT_WITHOUT_STRATEGY = "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
XTRIM_WITHOUT_STRATEGY = "ERR syntax error, XTRIM must be called with a trimming strategy"
LIMIT_WITHOUT_APPROX = "ERR syntax error, LIMIT cannot be used without the special ~ option"
INVALID_START = "ERR invalid start ID for the interval"
INVALID_END = "ERR invalid end ID for the interval"
UNBALANCED = (
    "ERR Unbalanced '{}' list of streams: for each stream key an ID or '$' must be specified."
)
GROUP_ONLY_XREADGROUP = (
    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
)
NOACK_ONLY_XREADGROUP = (
    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
)
MISSING_GROUP = "ERR Missing GROUP option for XREADGROUP"
DOLLAR_IN_XREADGROUP = (
    "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history "
    "of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ "
    "ID would just return an empty result set."
)
GT_IN_XREAD = (
    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> "
    "<consumer> option."
)
TIMEOUT_NOT_INTEGER = "ERR timeout is not an integer or out of range"
TIMEOUT_NEGATIVE = "ERR timeout is negative"
TIMEOUT_OUT_OF_RANGE = "ERR timeout is out of range"
KEY_REQUIRED = (
    "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want "
    "to use the MKSTREAM option to create an empty stream automatically."
)
BUSYGROUP = "BUSYGROUP Consumer Group name already exists"
ENTRIESREAD_INVALID = "ERR value for ENTRIESREAD must be positive or -1"
ENTRIES_ADDED_NEGATIVE = "ERR entries_added must be positive"
XSETID_BELOW_MAXDELETED_ARG = (
    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"
)
XSETID_BELOW_TOP = "ERR The ID specified in XSETID is smaller than the target stream top item"
XSETID_ADDED_BELOW_LENGTH = (
    "ERR The entries_added specified in XSETID is smaller than the target stream length"
)
NO_SUCH_KEY = "ERR no such key"
COUNT_NOT_POSITIVE = "ERR COUNT must be > 0"
UNBLOCKED_DELETED = "UNBLOCKED the stream key no longer exists"
NOGROUP_DESTROYED = "NOGROUP the consumer group this client was blocked on no longer exists"

# XREAD/XREADGROUP BLOCK without COUNT serves at most this many entries per stream.
BLOCKED_DEFAULT_COUNT = 1000
# XAUTOCLAIM looks at no more than COUNT times this many pending entries.
AUTOCLAIM_ATTEMPTS_FACTOR = 10
AUTOCLAIM_MAX_COUNT = INT64_MAX // 16
UINT64_MAX = (1 << 64) - 1
_SPACES = b" \t\n\v\f\r"

# --- IDs and arguments -----------------------------------------------------------------------


def _string2ull(raw: bytes) -> int | None:
    """Redis's string2ull: a strict integer first, else C's strtoull (leading spaces, a sign,
    leading zeros; a minus wraps around), or None."""
    if not raw:
        return None
    try:
        value = parse_int(raw)
    except CommandError:
        pass
    else:
        return value if value >= 0 else None
    text = raw.lstrip(_SPACES)
    negative = text[:1] == b"-"
    if text[:1] in (b"-", b"+"):
        text = text[1:]
    if not text or not text.isdigit():
        return None
    value = int(text)
    if value > UINT64_MAX:
        return None
    return (-value) & UINT64_MAX if negative else value


def parse_id(raw: bytes, missing_seq: int = 0, strict: bool = False,
             auto_seq: bool = False) -> tuple[int, bool]:
    """A stream ID argument as Redis's streamGenericParseIDOrReply reads it: ``ms-seq``,
    ``ms`` (the sequence is ``missing_seq``), ``-`` and ``+`` unless ``strict``, ``ms-*``
    when ``auto_seq`` (XADD).  Returns (ID, whether the sequence was given)."""
    if len(raw) > 127:
        raise CommandError(INVALID_ID)
    text = raw.split(b"\0", 1)[0]  # Redis parses the argument as a C string
    if text == b"-" or text == b"+":
        if strict:
            raise CommandError(INVALID_ID)
        return (0 if text == b"-" else ID_MAX), True
    ms_text, dash, seq_text = text.partition(b"-")
    ms = _string2ull(ms_text)
    if ms is None:
        raise CommandError(INVALID_ID)
    if not dash:
        return make_id(ms, missing_seq), True
    if auto_seq and seq_text == b"*":
        return make_id(ms, 0), False
    seq = _string2ull(seq_text)
    if seq is None:
        raise CommandError(INVALID_ID)
    return make_id(ms, seq), True


def _strict_id(raw: bytes, missing_seq: int = 0) -> int:
    return parse_id(raw, missing_seq, strict=True)[0]


def _interval_start(raw: bytes) -> int:
    """A range's start: inclusive, or exclusive with ``(`` (then the next ID)."""
    if len(raw) > 1 and raw[:1] == b"(":
        value = _strict_id(raw[1:], 0)
        if value == ID_MAX:
            raise CommandError(INVALID_START)
        return value + 1
    return parse_id(raw, 0)[0]


def _interval_end(raw: bytes) -> int:
    if len(raw) > 1 and raw[:1] == b"(":
        value = _strict_id(raw[1:], SEQ_MASK)
        if value == 0:
            raise CommandError(INVALID_END)
        return value - 1
    return parse_id(raw, SEQ_MASK)[0]


def parse_block_ms(raw: bytes) -> float:
    """XREAD/XREADGROUP's BLOCK milliseconds, with Redis 7.0's rules (an integer, not
    negative; 0 blocks forever): the timeout in seconds."""
    value = parse_int(raw, TIMEOUT_NOT_INTEGER)
    if value < 0:
        raise CommandError(TIMEOUT_NEGATIVE)
    if value > 0 and value > INT64_MAX - now_ms():
        raise CommandError(TIMEOUT_OUT_OF_RANGE)
    return value / 1000


def _count(raw: bytes) -> int:
    """A COUNT: any 64-bit integer, negative read as 0."""
    return max(parse_int(raw), 0)


# --- shared helpers --------------------------------------------------------------------------


def _stream(ctx, key: bytes, read: bool = False) -> Stream | None:
    return typed_value(ctx, key, Stream, read)


def _notify(ctx, event: bytes, key: bytes) -> None:
    if ctx.config.notify_keyspace_events:
        notify_keyspace_event(ctx.engine, "t", event, key, ctx.db.index)


def _entry(stream_id: int, items: tuple[bytes, ...]) -> Raw:
    """One entry as a reply, ``[id, [field, value, ...]]``, written out here (the same bytes
    in RESP2 and RESP3): XRANGE of 100 entries spends most of its time encoding them."""
    ident = format_id(stream_id)
    return Raw(b"*2\r\n$%d\r\n%b\r\n*%d\r\n%b" % (
        len(ident), ident, len(items),
        b"".join([b"$%d\r\n%b\r\n" % (len(part), part) for part in items])))


def _emit(ctx, effects: list[list[bytes]]) -> None:
    """Propagate a command's effects instead of the command: several between MULTI and EXEC
    (unless a transaction already wraps them); none at all when it changed nothing that
    needs replaying (Redis's preventCommandPropagation)."""
    ctx.propagated = True
    if len(effects) > 1 and not ctx.engine.in_exec:
        effects = [[b"MULTI"], *effects, [b"EXEC"]]
    for effect in effects:
        ctx.propagate(effect)


def _xclaim_effect(key: bytes, group: Group, group_name: bytes, stream_id: int,
                   nack: Nack) -> list[bytes]:
    """The XCLAIM that recreates one pending entry exactly (Redis's streamPropagateXCLAIM)."""
    assert nack.consumer is not None
    return [b"XCLAIM", key, group_name, nack.consumer.name, b"0", format_id(stream_id),
            b"TIME", b"%d" % nack.delivery_time, b"RETRYCOUNT", b"%d" % nack.delivery_count,
            b"FORCE", b"JUSTID", b"LASTID", format_id(group.last_id)]


def _setid_effect(key: bytes, group: Group, group_name: bytes) -> list[bytes]:
    return [b"XGROUP", b"SETID", key, group_name, format_id(group.last_id), b"ENTRIESREAD",
            b"%d" % group.entries_read]


def _create_consumer(ctx, group: Group, name: bytes, key: bytes) -> Consumer | None:
    """A new consumer (None when it exists): dirty and notified, as streamCreateConsumer."""
    if name in group.consumers:
        return None
    consumer = group.consumers[name] = Consumer(name, now_ms())
    ctx.dirty += 1
    _notify(ctx, b"xgroup-createconsumer", key)
    return consumer


def _lookup_or_create_consumer(ctx, group: Group, name: bytes, key: bytes) -> tuple[Consumer, bool]:
    """The consumer, its seen time refreshed, and whether it was just created."""
    consumer = group.consumers.get(name)
    if consumer is not None:
        consumer.seen_time = now_ms()
        return consumer, False
    created = _create_consumer(ctx, group, name, key)
    assert created is not None
    return created, True


def _nogroup(key: bytes, group: bytes, suffix: str = "") -> CommandError:
    return CommandError(errors.sanitize(
        f"NOGROUP No such key '{key.decode('utf-8', 'replace')}' or consumer group "
        f"'{group.decode('utf-8', 'replace')}'{suffix}"))


# --- XADD, XTRIM -----------------------------------------------------------------------------


class _TrimArgs:
    __slots__ = ("maxlen", "minid", "approx", "limit", "arg_index", "no_mkstream", "id",
                 "id_given", "seq_given", "id_index")

    def __init__(self) -> None:
        self.maxlen: int | None = None
        self.minid: int | None = None
        self.approx = False
        self.limit = 0
        self.arg_index = 0
        self.no_mkstream = False
        self.id = 0
        self.id_given = False
        self.seq_given = True
        self.id_index = 0


def _parse_add_or_trim(ctx, argv: list[bytes], xadd: bool) -> _TrimArgs:
    """XADD's and XTRIM's options, as Redis's streamParseAddOrTrimArgsOrReply."""
    args = _TrimArgs()
    limit_given = False
    index = 2
    while index < len(argv):
        more = len(argv) - 1 - index
        option = argv[index]
        lowered = option.lower()
        if xadd and option == b"*":
            break
        if lowered in (b"maxlen", b"minid") and more:
            if args.maxlen is not None or args.minid is not None:
                raise CommandError(MAXLEN_AND_MINID)
            args.approx = False
            following = argv[index + 1]
            if more >= 2 and following == b"~":
                args.approx = True
                index += 1
            elif more >= 2 and following == b"=":
                index += 1
            if lowered == b"maxlen":
                value = parse_int(argv[index + 1])
                if value < 0:
                    raise CommandError(MAXLEN_NEGATIVE)
                args.maxlen = value
            else:
                args.minid = _strict_id(argv[index + 1])
            index += 1
            args.arg_index = index
        elif lowered == b"limit" and more:
            value = parse_int(argv[index + 1])
            if value < 0:
                raise CommandError(LIMIT_NEGATIVE)
            args.limit = value
            limit_given = True
            index += 1
        elif xadd and lowered == b"nomkstream":
            args.no_mkstream = True
        elif xadd:
            args.id, args.seq_given = parse_id(option, 0, strict=True, auto_seq=True)
            args.id_given = True
            break
        else:
            raise CommandError(errors.SYNTAX)
        index += 1
    strategy = args.maxlen is not None or args.minid is not None
    if args.limit and not strategy:
        raise CommandError(LIMIT_WITHOUT_STRATEGY)
    if not xadd and not strategy:
        raise CommandError(XTRIM_WITHOUT_STRATEGY)
    if ctx.client.is_loader:
        args.limit = 0  # what an AOF holds was already made exact
    elif limit_given:
        if not args.approx:
            raise CommandError(LIMIT_WITHOUT_APPROX)
    else:
        args.limit = 100 * ctx.config.stream_node_max_entries if args.approx else 0
    args.id_index = index
    return args


def _trim(ctx, stream: Stream, args: _TrimArgs, effect: list[bytes]) -> int:
    """Trim as ``args`` say; an approximate trim is rewritten in ``effect`` as the exact
    one that happened."""
    removed = stream.trim(args.maxlen, args.minid, args.approx, args.limit)
    if args.approx:
        effect[args.arg_index - 1] = b"="
        if args.maxlen is not None:
            effect[args.arg_index] = b"%d" % stream.length
        else:
            first = stream.first_entry()
            effect[args.arg_index] = format_id(first[0] if first else ID_MAX)
    return removed


def xadd(ctx, argv):
    args = _parse_add_or_trim(ctx, argv, xadd=True)
    field_index = args.id_index + 1
    remaining = len(argv) - field_index
    if remaining < 2 or remaining % 2:
        raise CommandError(errors.wrong_arity("xadd"))
    if args.id_given and args.seq_given and args.id == 0:
        raise CommandError(XADD_ID_ZERO)
    key = argv[1]
    stream = _stream(ctx, key)
    created = stream is None
    if created:
        if args.no_mkstream:
            return None
        stream = Stream()
    if stream.last_id == ID_MAX:
        raise CommandError(STREAM_EXHAUSTED)
    pairs = argv[field_index:]
    if args.id_given:
        new_id = args.id
        if not args.seq_given:
            ms = new_id >> 64
            last_ms, last_seq = stream.last_id >> 64, stream.last_id & SEQ_MASK
            if ms == last_ms:
                if last_seq == SEQ_MASK:
                    raise CommandError(XADD_ID_TOO_SMALL)
                new_id = make_id(ms, last_seq + 1)
            elif ms < last_ms:
                raise CommandError(XADD_ID_TOO_SMALL)
        elif new_id <= stream.last_id:
            raise CommandError(XADD_ID_TOO_SMALL)
    else:
        now = now_ms()
        last_ms = stream.last_id >> 64
        if now > last_ms:
            new_id = make_id(now, 0)
        else:
            new_id = stream.last_id + 1
    if sum(map(len, pairs)) > (1 << 30):
        raise CommandError(ELEMENTS_TOO_LARGE)
    if created:
        ctx.db.set(key, stream)
    config = ctx.config
    stream.append(new_id, pairs, config.stream_node_max_bytes, config.stream_node_max_entries)
    ctx.dirty += 1
    _notify(ctx, b"xadd", key)
    effect = list(argv)
    if args.maxlen is not None or args.minid is not None:
        if _trim(ctx, stream, args, effect):
            _notify(ctx, b"xtrim", key)
    effect[args.id_index] = format_id(new_id)
    ctx.propagate(effect)
    return format_id(new_id)


def xtrim(ctx, argv):
    key = argv[1]
    args = _parse_add_or_trim(ctx, argv, xadd=False)
    stream = _stream(ctx, key)
    if stream is None:
        return 0
    effect = list(argv)
    removed = _trim(ctx, stream, args, effect)
    if removed:
        _notify(ctx, b"xtrim", key)
        ctx.dirty += removed
        ctx.propagate(effect)
    return removed


def xdel(ctx, argv):
    key = argv[1]
    stream = _stream(ctx, key)
    if stream is None:
        return 0
    ids = [_strict_id(raw) for raw in argv[2:]]
    deleted = 0
    first_deleted = False
    for stream_id in ids:
        if stream.delete(stream_id):
            if stream_id == stream.first_id:
                first_deleted = True
            if stream_id > stream.max_deleted:
                stream.max_deleted = stream_id
            deleted += 1
    if deleted:
        if not stream.length:
            stream.first_id = 0
        elif first_deleted:
            stream.refresh_first_id()
        _notify(ctx, b"xdel", key)
        ctx.dirty += deleted
    return deleted


def xlen(ctx, argv):
    stream = _stream(ctx, argv[1], read=True)
    return 0 if stream is None else stream.length


# --- XRANGE ----------------------------------------------------------------------------------


def _xrange(ctx, argv, reverse: bool):
    start_raw, end_raw = (argv[3], argv[2]) if reverse else (argv[2], argv[3])
    start = _interval_start(start_raw)
    end = _interval_end(end_raw)
    count = -1
    index = 4
    while index < len(argv):
        if argv[index].lower() == b"count" and index + 1 < len(argv):
            count = _count(argv[index + 1])
            index += 2
        else:
            raise CommandError(errors.SYNTAX)
    stream = _stream(ctx, argv[1], read=True)
    if stream is None:
        return []
    if count == 0:
        return NULL_ARRAY
    parts = []
    for node, position, stream_id in stream.positions(start, end, reverse):
        parts.append(node.encoded(position, stream_id))
        if len(parts) == count:
            break
    return Raw(b"*%d\r\n%b" % (len(parts), b"".join(parts)))


def xrange(ctx, argv):
    return _xrange(ctx, argv, reverse=False)


def xrevrange(ctx, argv):
    return _xrange(ctx, argv, reverse=True)


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


# --- XGROUP ----------------------------------------------------------------------------------

_XGROUP_HELP = [
    b"XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"CREATE <key> <groupname> <id|$> [option]",
    b"    Create a new consumer group. Options are:",
    b"    * MKSTREAM",
    b"      Create the empty stream if it does not exist.",
    b"    * ENTRIESREAD entries_read",
    b"      Set the group's entries_read counter (internal use).",
    b"CREATECONSUMER <key> <groupname> <consumer>",
    b"    Create a new consumer in the specified group.",
    b"DELCONSUMER <key> <groupname> <consumer>",
    b"    Remove the specified consumer.",
    b"DESTROY <key> <groupname>",
    b"    Remove the specified group.",
    b"SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    b"    Set the current group ID and entries_read counter.",
    b"HELP",
    b"    Prints this help.",
]

_XGROUP_ARITY = {b"create": -5, b"setid": -5, b"destroy": 4, b"createconsumer": 5,
                 b"delconsumer": 5, b"help": 2}


def _subcommand_syntax(argv: list[bytes], name: str) -> CommandError:
    return CommandError(errors.sanitize(
        f"ERR unknown subcommand or wrong number of arguments for "
        f"'{argv[1].decode('utf-8', 'replace')[:128]}'. Try {name} HELP."))


def _subcommand(argv: list[bytes], name: str, arities: dict[bytes, int]) -> bytes:
    sub = argv[1].lower()
    arity = arities.get(sub)
    if arity is None:
        raise CommandError(errors.unknown_subcommand(argv[1], name))
    if (arity > 0 and len(argv) != arity) or len(argv) < -arity:
        raise CommandError(errors.wrong_arity(f"{name.lower()}|{sub.decode()}"))
    return sub


def _entries_read(raw: bytes) -> int:
    value = parse_int(raw)
    if value < 0 and value != INVALID_ENTRIES_READ:
        raise CommandError(ENTRIESREAD_INVALID)
    return value


def xgroup(ctx, argv):
    sub = _subcommand(argv, "XGROUP", _XGROUP_ARITY)
    if sub == b"help":
        return [Status(line) for line in _XGROUP_HELP]
    mkstream = False
    entries_read = INVALID_ENTRIES_READ
    if sub in (b"create", b"setid"):
        index = 5
        while index < len(argv):
            option = argv[index].lower()
            if sub == b"create" and option == b"mkstream":
                mkstream = True
                index += 1
            elif option == b"entriesread" and index + 1 < len(argv):
                entries_read = _entries_read(argv[index + 1])
                index += 2
            else:
                raise _subcommand_syntax(argv, "XGROUP")
    key, group_name = argv[2], argv[3]
    stream = _stream(ctx, key)
    group = None
    if not mkstream:
        if stream is None:
            raise CommandError(KEY_REQUIRED)
        group = stream.groups.get(group_name)
        if group is None and sub in (b"setid", b"createconsumer", b"delconsumer"):
            raise CommandError(errors.sanitize(
                f"NOGROUP No such consumer group '{group_name.decode('utf-8', 'replace')}' "
                f"for key name '{key.decode('utf-8', 'replace')}'"))
    if sub == b"create":
        if len(argv) > 8:
            raise _subcommand_syntax(argv, "XGROUP")
        if argv[4] == b"$":
            last_id = stream.last_id if stream is not None else 0
        else:
            last_id = _strict_id(argv[4])
        if stream is None:
            stream = Stream()
            ctx.db.set(key, stream)
            ctx.touch(key)
        if group_name in stream.groups:
            raise CommandError(BUSYGROUP)
        stream.groups[group_name] = Group(group_name, last_id, entries_read)
        ctx.dirty += 1
        _notify(ctx, b"xgroup-create", key)
        return OK
    assert stream is not None
    if sub == b"setid":
        if len(argv) not in (5, 7):
            raise _subcommand_syntax(argv, "XGROUP")
        last_id = stream.last_id if argv[4] == b"$" else parse_id(argv[4])[0]
        assert group is not None
        group.last_id = last_id
        group.entries_read = entries_read
        ctx.dirty += 1
        _notify(ctx, b"xgroup-setid", key)
        return OK
    if sub == b"destroy":
        if group is None:
            return 0
        del stream.groups[group_name]
        ctx.dirty += 1
        _notify(ctx, b"xgroup-destroy", key)
        return 1
    assert group is not None
    if sub == b"createconsumer":
        return 0 if _create_consumer(ctx, group, argv[4], key) is None else 1
    # delconsumer
    consumer = group.consumers.pop(argv[4], None)
    if consumer is None:
        return 0
    for stream_id in consumer.pel:
        group.pel.pop(stream_id, None)
    ctx.dirty += 1
    _notify(ctx, b"xgroup-delconsumer", key)
    return len(consumer.pel)


# --- XACK, XPENDING --------------------------------------------------------------------------


def xack(ctx, argv):
    stream = _stream(ctx, argv[1], read=True)
    group = stream.groups.get(argv[2]) if stream is not None else None
    if group is None:
        return 0
    ids = [_strict_id(raw) for raw in argv[3:]]
    acknowledged = 0
    for stream_id in ids:
        nack = group.pel.pop(stream_id, None)
        if nack is not None:
            assert nack.consumer is not None
            nack.consumer.pel.pop(stream_id, None)
            acknowledged += 1
    ctx.dirty += acknowledged
    return acknowledged


def xpending(ctx, argv):
    summary = len(argv) == 3
    if not summary and not 6 <= len(argv) <= 9:
        raise CommandError(errors.SYNTAX)
    min_idle = 0
    consumer_name = None
    if not summary:
        start_index = 3
        if argv[3].lower() == b"idle":
            min_idle = parse_int(argv[4])
            if len(argv) < 8:
                raise CommandError(errors.SYNTAX)
            start_index = 5
        count = _count(argv[start_index + 2])
        start = _interval_start(argv[start_index])
        end = _interval_end(argv[start_index + 1])
        if start_index + 3 < len(argv):
            consumer_name = argv[start_index + 3]
    key, group_name = argv[1], argv[2]
    stream = _stream(ctx, key, read=True)
    group = stream.groups.get(group_name) if stream is not None else None
    if group is None:
        raise _nogroup(key, group_name)
    if summary:
        pel = group.pel
        if not pel:
            return [0, None, None, NULL_ARRAY]
        owners = [[consumer.name, b"%d" % len(consumer.pel)]
                  for consumer in group.sorted_consumers() if consumer.pel]
        return [len(pel), format_id(pel.keys()[0]), format_id(pel.keys()[-1]), owners]
    if consumer_name is not None:
        consumer = group.consumers.get(consumer_name)
        if consumer is None:
            return []
        pel = consumer.pel
    else:
        pel = group.pel
    now = now_ms()
    reply = []
    if count and start <= end:
        for stream_id in pel.irange(start, end):
            nack = pel[stream_id]
            idle = now - nack.delivery_time
            if min_idle and idle < min_idle:
                continue
            assert nack.consumer is not None
            reply.append([format_id(stream_id), nack.consumer.name, max(idle, 0),
                          nack.delivery_count])
            if len(reply) == count:
                break
    return reply


# --- XCLAIM, XAUTOCLAIM ----------------------------------------------------------------------


def _group_or_error(ctx, key: bytes, group_name: bytes) -> tuple[Stream, Group]:
    stream = _stream(ctx, key, read=True)
    group = stream.groups.get(group_name) if stream is not None else None
    if group is None:
        raise _nogroup(key, group_name)
    assert stream is not None
    return stream, group


def _drop_pending(group: Group, stream_id: int, nack: Nack) -> None:
    del group.pel[stream_id]
    if nack.consumer is not None:
        nack.consumer.pel.pop(stream_id, None)


def _claim(group: Group, consumer: Consumer, stream_id: int, nack: Nack) -> None:
    if nack.consumer is not consumer:
        if nack.consumer is not None:
            nack.consumer.pel.pop(stream_id, None)
        consumer.pel[stream_id] = nack
        nack.consumer = consumer


def xclaim(ctx, argv):
    key, group_name, name = argv[1], argv[2], argv[3]
    stream, group = _group_or_error(ctx, key, group_name)
    min_idle = max(parse_int(argv[4], "ERR Invalid min-idle-time argument for XCLAIM"), 0)
    index = 5
    ids = []
    while index < len(argv):
        try:
            ids.append(_strict_id(argv[index]))
        except CommandError:
            break
        index += 1
    now = now_ms()
    retry_count = -1
    delivery_time = -1
    force = justid = False
    last_id = 0
    while index < len(argv):
        more = len(argv) - 1 - index
        option = argv[index].lower()
        if option == b"force":
            force = True
        elif option == b"justid":
            justid = True
        elif option == b"idle" and more:
            index += 1
            delivery_time = now - parse_int(argv[index], "ERR Invalid IDLE option argument for XCLAIM")
        elif option == b"time" and more:
            index += 1
            delivery_time = parse_int(argv[index], "ERR Invalid TIME option argument for XCLAIM")
        elif option == b"retrycount" and more:
            index += 1
            retry_count = parse_int(argv[index], "ERR Invalid RETRYCOUNT option argument for XCLAIM")
        elif option == b"lastid" and more:
            index += 1
            last_id = _strict_id(argv[index])
        else:
            raise CommandError(errors.sanitize(
                f"ERR Unrecognized XCLAIM option '{argv[index].decode('utf-8', 'replace')}'"))
        index += 1
    propagate_last_id = False
    if last_id > group.last_id:
        group.last_id = last_id
        propagate_last_id = True
    if delivery_time == -1 or delivery_time < 0 or delivery_time > now:
        delivery_time = now
    consumer: Consumer | None = None
    reply: list[Any] = []
    effects: list[list[bytes]] = []
    for stream_id in ids:
        nack = group.pel.get(stream_id)
        if not stream.exists(stream_id):
            if nack is not None:
                effects.append(_xclaim_effect(key, group, group_name, stream_id, nack))
                propagate_last_id = False
                ctx.dirty += 1
                _drop_pending(group, stream_id, nack)
            continue
        if force and nack is None:
            nack = Nack(None, now)  # created as Redis creates one: delivered once, now
            group.pel[stream_id] = nack
        if nack is None:
            continue
        if nack.consumer is not None and min_idle and now - nack.delivery_time < min_idle:
            continue
        if consumer is None:
            consumer, _created = _lookup_or_create_consumer(ctx, group, name, key)
        nack.delivery_time = delivery_time
        if retry_count >= 0:
            nack.delivery_count = retry_count
        elif not justid:
            nack.delivery_count += 1
        _claim(group, consumer, stream_id, nack)
        if justid:
            reply.append(format_id(stream_id))
        else:
            items = stream.get(stream_id)
            reply.append(None if items is None else _entry(stream_id, items))
        effects.append(_xclaim_effect(key, group, group_name, stream_id, nack))
        propagate_last_id = False
        ctx.dirty += 1
    if propagate_last_id:
        effects.append(_setid_effect(key, group, group_name))
        ctx.dirty += 1
    _emit(ctx, effects)
    return reply


def xautoclaim(ctx, argv):
    key, group_name, name = argv[1], argv[2], argv[3]
    min_idle = max(parse_int(argv[4], "ERR Invalid min-idle-time argument for XAUTOCLAIM"), 0)
    start = _interval_start(argv[5])
    count = 100
    justid = False
    index = 6
    while index < len(argv):
        more = len(argv) - 1 - index
        option = argv[index].lower()
        if option == b"count" and more:
            count = parse_int(argv[index + 1], COUNT_NOT_POSITIVE)
            if not 1 <= count <= AUTOCLAIM_MAX_COUNT:
                raise CommandError(COUNT_NOT_POSITIVE)
            index += 1
        elif option == b"justid":
            justid = True
        else:
            raise CommandError(errors.SYNTAX)
        index += 1
    stream, group = _group_or_error(ctx, key, group_name)
    attempts = count * AUTOCLAIM_ATTEMPTS_FACTOR
    now = now_ms()
    consumer: Consumer | None = None
    claimed: list[Any] = []
    deleted: list[bytes] = []
    effects: list[list[bytes]] = []
    pel = group.pel
    cursor = start
    next_id: int | None = None
    while True:
        position = pel.bisect_left(cursor)
        if position >= len(pel):
            next_id = None
            break
        stream_id = pel.keys()[position]
        if not (attempts and count):
            next_id = stream_id
            break
        attempts -= 1
        nack = pel[stream_id]
        cursor = stream_id + 1
        if not stream.exists(stream_id):
            effects.append(_xclaim_effect(key, group, group_name, stream_id, nack))
            ctx.dirty += 1
            _drop_pending(group, stream_id, nack)
            deleted.append(format_id(stream_id))
            count -= 1
            continue
        if min_idle and now - nack.delivery_time < min_idle:
            continue
        if consumer is None:
            consumer, _created = _lookup_or_create_consumer(ctx, group, name, key)
        nack.delivery_time = now
        if not justid:
            nack.delivery_count += 1
        _claim(group, consumer, stream_id, nack)
        if justid:
            claimed.append(format_id(stream_id))
        else:
            items = stream.get(stream_id)
            assert items is not None
            claimed.append(_entry(stream_id, items))
        count -= 1
        effects.append(_xclaim_effect(key, group, group_name, stream_id, nack))
        ctx.dirty += 1
        if cursor > ID_MAX:
            next_id = None
            break
    _emit(ctx, effects)
    return [format_id(next_id or 0), claimed, deleted]


# --- XINFO -----------------------------------------------------------------------------------

_XINFO_HELP = [
    b"XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"CONSUMERS <key> <groupname>",
    b"    Show consumers of <groupname>.",
    b"GROUPS <key>",
    b"    Show the stream consumer groups.",
    b"STREAM <key> [FULL [COUNT <count>]",
    b"    Show information about the stream.",
    b"HELP",
    b"    Prints this help.",
]

_XINFO_ARITY = {b"consumers": 4, b"groups": 3, b"stream": -3, b"help": 2}


def _entries_read_reply(group: Group) -> int | None:
    return None if group.entries_read == INVALID_ENTRIES_READ else group.entries_read


def _stream_info(ctx, stream: Stream, argv: list[bytes]) -> Map:
    full = False
    count = 10
    if len(argv) > 3:
        if argv[3].lower() != b"full":
            raise CommandError(errors.SYNTAX)
        full = True
        if len(argv) > 4:
            if len(argv) != 6 or argv[4].lower() != b"count":
                raise CommandError(errors.SYNTAX)
            count = _count(argv[5])
    info = Map()
    info[b"length"] = stream.length
    info[b"radix-tree-keys"] = len(stream.nodes)
    info[b"radix-tree-nodes"] = stream.radix_tree_nodes()
    info[b"last-generated-id"] = format_id(stream.last_id)
    info[b"max-deleted-entry-id"] = format_id(stream.max_deleted)
    info[b"entries-added"] = stream.entries_added
    info[b"recorded-first-entry-id"] = format_id(stream.first_id)
    if not full:
        info[b"groups"] = len(stream.groups)
        first, last = stream.first_entry(), stream.last_entry()
        info[b"first-entry"] = None if first is None else _entry(*first)
        info[b"last-entry"] = None if last is None else _entry(*last)
        return info
    entries = []
    for stream_id, items in stream.range(0, ID_MAX):
        entries.append(_entry(stream_id, items))
        if count and len(entries) == count:
            break
    info[b"entries"] = entries
    groups = []
    for group in stream.sorted_groups():
        described = Map()
        described[b"name"] = group.name
        described[b"last-delivered-id"] = format_id(group.last_id)
        described[b"entries-read"] = _entries_read_reply(group)
        described[b"lag"] = stream.lag(group)
        described[b"pel-count"] = len(group.pel)
        pending = []
        for stream_id, nack in group.pel.items():
            if count and len(pending) == count:
                break
            assert nack.consumer is not None
            pending.append([format_id(stream_id), nack.consumer.name, nack.delivery_time,
                            nack.delivery_count])
        described[b"pending"] = pending
        consumers = []
        for consumer in group.sorted_consumers():
            about = Map()
            about[b"name"] = consumer.name
            about[b"seen-time"] = consumer.seen_time
            about[b"pel-count"] = len(consumer.pel)
            own = []
            for stream_id, nack in consumer.pel.items():
                if count and len(own) == count:
                    break
                own.append([format_id(stream_id), nack.delivery_time, nack.delivery_count])
            about[b"pending"] = own
            consumers.append(about)
        described[b"consumers"] = consumers
        groups.append(described)
    info[b"groups"] = groups
    return info


def xinfo(ctx, argv):
    sub = _subcommand(argv, "XINFO", _XINFO_ARITY)
    if sub == b"help":
        return [Status(line) for line in _XINFO_HELP]
    key = argv[2]
    stream = _stream(ctx, key, read=True)
    if stream is None:
        raise CommandError(NO_SUCH_KEY)
    if sub == b"stream":
        return _stream_info(ctx, stream, argv)
    if sub == b"groups":
        groups = []
        for group in stream.sorted_groups():
            described = Map()
            described[b"name"] = group.name
            described[b"consumers"] = len(group.consumers)
            described[b"pending"] = len(group.pel)
            described[b"last-delivered-id"] = format_id(group.last_id)
            described[b"entries-read"] = _entries_read_reply(group)
            described[b"lag"] = stream.lag(group)
            groups.append(described)
        return groups
    group = stream.groups.get(argv[3])
    if group is None:
        raise CommandError(errors.sanitize(
            f"NOGROUP No such consumer group '{argv[3].decode('utf-8', 'replace')}' "
            f"for key name '{key.decode('utf-8', 'replace')}'"))
    now = now_ms()
    consumers = []
    for consumer in group.sorted_consumers():
        about = Map()
        about[b"name"] = consumer.name
        about[b"pending"] = len(consumer.pel)
        about[b"idle"] = max(now - consumer.seen_time, 0)
        consumers.append(about)
    return consumers


# --- XSETID ----------------------------------------------------------------------------------


def xsetid(ctx, argv):
    new_id = _strict_id(argv[2])
    entries_added = -1
    max_deleted = 0
    index = 3
    while index < len(argv):
        more = len(argv) - 1 - index
        option = argv[index].lower()
        if option == b"entriesadded" and more:
            entries_added = parse_int(argv[index + 1])
            if entries_added < 0:
                raise CommandError(ENTRIES_ADDED_NEGATIVE)
        elif option == b"maxdeletedid" and more:
            max_deleted = _strict_id(argv[index + 1])
            if new_id < max_deleted:
                raise CommandError(XSETID_BELOW_MAXDELETED_ARG)
        else:
            raise CommandError(errors.SYNTAX)
        index += 2
    key = argv[1]
    stream = _stream(ctx, key)
    if stream is None:
        raise CommandError(NO_SUCH_KEY)
    if stream.length:
        if new_id < stream.last_valid_id():
            raise CommandError(XSETID_BELOW_TOP)
        if entries_added != -1 and stream.length > entries_added:
            raise CommandError(XSETID_ADDED_BELOW_LENGTH)
    stream.last_id = new_id
    if entries_added != -1:
        stream.entries_added = entries_added
    if max_deleted:
        stream.max_deleted = max_deleted
    ctx.dirty += 1
    _notify(ctx, b"xsetid", key)
    return OK


def _xread_keys(argv: list[bytes]) -> list[bytes]:
    """XREAD/XREADGROUP's keys: the first half of what follows STREAMS."""
    for index in range(1, len(argv)):
        if argv[index].lower() == b"streams":
            rest = argv[index + 1 :]
            return rest[: len(rest) // 2]
    return []


def register(registry):
    group = "stream"
    registry.extend([
        command("xadd", -5, "write denyoom fast", xadd, (1, 1, 1), group=group),
        command("xrange", -4, "readonly", xrange, (1, 1, 1), group=group),
        command("xrevrange", -4, "readonly", xrevrange, (1, 1, 1), group=group),
        command("xlen", 2, "readonly fast", xlen, (1, 1, 1), group=group),
        command("xdel", -3, "write fast", xdel, (1, 1, 1), group=group),
        command("xtrim", -4, "write", xtrim, (1, 1, 1), group=group),
        command("xread", -4, "readonly blocking movablekeys", xread, (0, 0, 0), group=group,
                key_finder=_xread_keys),
        command("xreadgroup", -7, "write blocking movablekeys", xreadgroup, (0, 0, 0),
                group=group, key_finder=_xread_keys),
        command("xgroup", -2, "write", xgroup, (2, 2, 1), group=group,
                subcommands=("create", "setid", "destroy", "createconsumer", "delconsumer",
                             "help")),
        command("xack", -4, "write fast", xack, (1, 1, 1), group=group),
        command("xpending", -3, "readonly", xpending, (1, 1, 1), group=group),
        command("xclaim", -6, "write fast", xclaim, (1, 1, 1), group=group),
        command("xautoclaim", -6, "write fast", xautoclaim, (1, 1, 1), group=group),
        command("xinfo", -2, "readonly", xinfo, (2, 2, 1), group=group,
                subcommands=("consumers", "groups", "stream", "help")),
        command("xsetid", -3, "write denyoom fast", xsetid, (1, 1, 1), group=group),
    ])


__all__ = ["ErrorReply", "parse_block_ms", "parse_id", "register"]
