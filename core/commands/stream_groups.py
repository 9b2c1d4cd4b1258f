"""Consumer-group commands: XGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM, and XINFO.

XREADGROUP, which reads through a group, lives with XREAD in
:mod:`trioredis.commands.streams`, whose docstring says how each effect is propagated."""

from __future__ import annotations

from typing import Any

from .. import errors
from ..errors import CommandError
from ..keyspace import now_ms
from ..resp import NULL_ARRAY, OK, Map, Status
from ..stream import (
    ID_MAX,
    INVALID_ENTRIES_READ,
    Consumer,
    Group,
    Nack,
    Stream,
    format_id,
)
from .args import parse_int
from .stream_args import (
    AUTOCLAIM_ATTEMPTS_FACTOR,
    AUTOCLAIM_MAX_COUNT,
    BUSYGROUP,
    COUNT_NOT_POSITIVE,
    ENTRIESREAD_INVALID,
    KEY_REQUIRED,
    _count,
    _create_consumer,
    _emit,
    _entry,
    _interval_end,
    _interval_start,
    _lookup_or_create_consumer,
    _nogroup,
    _notify,
    _setid_effect,
    _stream,
    _strict_id,
    _xclaim_effect,
    parse_id,
)

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


def _xclaim_options(argv: list[bytes], index: int,
                    now: int) -> tuple[int, int, bool, bool, int]:
    """XCLAIM's options after the IDs: (RETRYCOUNT or -1, delivery time or -1, FORCE,
    JUSTID, LASTID or 0)."""
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
    return retry_count, delivery_time, force, justid, last_id


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
    retry_count, delivery_time, force, justid, last_id = _xclaim_options(argv, index, now)
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
        raise CommandError(errors.NO_SUCH_KEY)
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


