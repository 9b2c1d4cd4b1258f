"""What the stream commands share (:mod:`trioredis.commands.streams` and
:mod:`trioredis.commands.stream_groups`): Redis 7.0's error texts, stream ID and argument
parsing, and the helpers for notifications, replies and propagated effects."""

from __future__ import annotations

from .. import errors
from ..errors import CommandError
from ..keyspace import now_ms
from ..pubsub import notify_keyspace_event
from ..resp import Raw
from ..stream import (
    ID_MAX,
    SEQ_MASK,
    Consumer,
    Group,
    Nack,
    Stream,
    format_id,
    make_id,
)
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


