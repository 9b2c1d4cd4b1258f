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

from .. import errors
from ..errors import CommandError
from ..keyspace import now_ms
from ..resp import NULL_ARRAY, OK, ErrorReply, Raw
from ..stream import (
    ID_MAX,
    SEQ_MASK,
    Stream,
    format_id,
    make_id,
)
from . import command
from .args import parse_int
from .stream_args import (
    ELEMENTS_TOO_LARGE,
    ENTRIES_ADDED_NEGATIVE,
    LIMIT_NEGATIVE,
    LIMIT_WITHOUT_APPROX,
    LIMIT_WITHOUT_STRATEGY,
    MAXLEN_AND_MINID,
    MAXLEN_NEGATIVE,
    STREAM_EXHAUSTED,
    XADD_ID_TOO_SMALL,
    XADD_ID_ZERO,
    XSETID_ADDED_BELOW_LENGTH,
    XSETID_BELOW_MAXDELETED_ARG,
    XSETID_BELOW_TOP,
    XTRIM_WITHOUT_STRATEGY,
    _count,
    _interval_end,
    _interval_start,
    _notify,
    _stream,
    _strict_id,
    parse_block_ms,
    parse_id,
)
from .stream_groups import (
    xack,
    xautoclaim,
    xclaim,
    xgroup,
    xinfo,
    xpending,
)
from .stream_read import xread, xreadgroup

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
        raise CommandError(errors.NO_SUCH_KEY)
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


def register(registry):
    group = "stream"
    registry.extend([
        command("xadd", -5, "write denyoom fast", xadd, group=group),
        command("xrange", -4, "readonly", xrange, group=group),
        command("xrevrange", -4, "readonly", xrevrange, group=group),
        command("xlen", 2, "readonly fast", xlen, group=group),
        command("xdel", -3, "write fast", xdel, group=group),
        command("xtrim", -4, "write", xtrim, group=group),
        command("xread", -4, "readonly blocking movablekeys", xread, group=group),
        command("xreadgroup", -7, "write blocking movablekeys", xreadgroup, group=group),
        command("xgroup", -2, "write", xgroup, group=group,
                subcommands=("create", "setid", "destroy", "createconsumer", "delconsumer",
                             "help")),
        command("xack", -4, "write fast", xack, group=group),
        command("xpending", -3, "readonly", xpending, group=group),
        command("xclaim", -6, "write fast", xclaim, group=group),
        command("xautoclaim", -6, "write fast", xautoclaim, group=group),
        command("xinfo", -2, "readonly", xinfo, group=group,
                subcommands=("consumers", "groups", "stream", "help")),
        command("xsetid", -3, "write denyoom fast", xsetid, group=group),
    ])


__all__ = ["ErrorReply", "parse_block_ms", "parse_id", "register"]
