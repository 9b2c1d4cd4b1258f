"""List commands, blocking pops included.

A list is a ``collections.deque``: O(1) pushes and pops at both ends, which is what LPUSH,
RPOP and the blocking pops need; positional commands (LINDEX, LSET, LRANGE) are O(n) from the
nearer end, as Redis's quicklist is.  A list that becomes empty is deleted.

Replies, error strings and the order in which arguments are checked follow Redis 7.0
(``t_list.c``): clients and the differential test see the same error for the same mistake.

Propagation: a pop that blocked (or could have) is propagated as the non-blocking command
that happened, as Redis does: BLPOP -> ``LPOP key``, BLMPOP/LMPOP -> ``LPOP key n`` with the
number actually popped, BLMOVE -> ``LMOVE``, BRPOPLPUSH -> ``RPOPLPUSH``.  A replica or an AOF
replay then never blocks and takes exactly what the original took.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from .. import errors
from ..engine import Block
from ..errors import CommandError
from ..pubsub import notify_keyspace_event
from ..resp import NULL_ARRAY, OK
from . import command
from .args import INT64_MAX, INT64_MIN, parse_int, parse_timeout
from .keys import typed_value

LEFT, RIGHT = b"left", b"right"

POSITIVE_COUNT = "ERR value is out of range, must be positive"
NUMKEYS_NOT_POSITIVE = "ERR numkeys should be greater than 0"
COUNT_NOT_POSITIVE = "ERR count should be greater than 0"
RANK_ZERO = (
    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or "
    "use negative to start from the end of the list"
)
COUNT_NEGATIVE = "ERR COUNT can't be negative"
MAXLEN_NEGATIVE = "ERR MAXLEN can't be negative"


# --- argument parsing ----------------------------------------------------------------------


def _parse_end(raw: bytes) -> bytes:
    """LEFT or RIGHT (any case), else a syntax error."""
    where = raw.lower()
    if where != LEFT and where != RIGHT:
        raise CommandError(errors.SYNTAX)
    return where


def _parse_range(raw: bytes, low: int, high: int, error: str | None) -> int:
    """Redis's ``getRangeLongFromObjectOrReply``: a non-integer replies ``error`` (or the
    generic one), an integer outside [low, high] too (or the "must between" message)."""
    value = parse_int(raw, error or errors.NOT_INTEGER)
    if not low <= value <= high:
        if error is not None:
            raise CommandError(error)
        raise CommandError(f"ERR value is out of range, value must between {low} and {high}")
    return value


def _list(ctx, key: bytes, read: bool = False) -> deque | None:
    return typed_value(ctx, key, deque, read)


def _pop_n(items: deque, where: bytes, count: int) -> list[bytes]:
    pop = items.popleft if where == LEFT else items.pop
    return [pop() for _ in range(min(count, len(items)))]


def _notify(ctx, event: bytes, key: bytes, event_class: str = "l") -> None:
    """A keyspace notification (``notify-keyspace-events``), with Redis's event names."""
    if ctx.config.notify_keyspace_events:
        notify_keyspace_event(ctx.engine, event_class, event, key, ctx.db.index)


def _changed(ctx, event: bytes, key: bytes, items: deque) -> None:
    """After a change to the list at ``key``: its notification, then deletion (and ``del``)
    when it is empty, in Redis's order."""
    _notify(ctx, event, key)
    if not items:
        ctx.db.delete(key)
        _notify(ctx, b"del", key, "g")


# --- pushes --------------------------------------------------------------------------------


def _push(ctx, argv: list[bytes], where: bytes, only_existing: bool) -> int:
    key = argv[1]
    items = _list(ctx, key)
    if items is None:
        if only_existing:
            return 0
        items = deque()
        ctx.db.set(key, items)
    if where == LEFT:
        items.extendleft(argv[2:])
    else:
        items.extend(argv[2:])
    ctx.dirty += len(argv) - 2
    _notify(ctx, b"lpush" if where == LEFT else b"rpush", key)
    return len(items)


def lpush(ctx, argv):
    return _push(ctx, argv, LEFT, False)


def rpush(ctx, argv):
    return _push(ctx, argv, RIGHT, False)


def lpushx(ctx, argv):
    return _push(ctx, argv, LEFT, True)


def rpushx(ctx, argv):
    return _push(ctx, argv, RIGHT, True)


# --- pops ----------------------------------------------------------------------------------


def _pop(ctx, argv: list[bytes], where: bytes) -> Any:
    if len(argv) > 3:
        raise CommandError(errors.wrong_arity("lpop" if where == LEFT else "rpop"))
    has_count = len(argv) == 3
    count = _parse_range(argv[2], 0, INT64_MAX, POSITIVE_COUNT) if has_count else 1
    key = argv[1]
    items = _list(ctx, key)
    if items is None:
        # Redis 7.0: a missing key with a count is a null *array*, without one a null bulk.
        return NULL_ARRAY if has_count else None
    if has_count and count == 0:
        return []
    popped = _pop_n(items, where, count)
    _changed(ctx, b"lpop" if where == LEFT else b"rpop", key, items)
    ctx.dirty += len(popped)
    return popped if has_count else popped[0]


def lpop(ctx, argv):
    return _pop(ctx, argv, LEFT)


def rpop(ctx, argv):
    return _pop(ctx, argv, RIGHT)


# --- reading -------------------------------------------------------------------------------


def llen(ctx, argv):
    items = _list(ctx, argv[1], read=True)
    return 0 if items is None else len(items)


def _clamp_range(start: int, end: int, length: int) -> tuple[int, int] | None:
    """Redis's index arithmetic for LRANGE/LTRIM: negative counts from the end, then
    clamped; None for an empty range."""
    if start < 0:
        start += length
    if end < 0:
        end += length
    if start < 0:
        start = 0
    if start > end or start >= length:
        return None
    return start, min(end, length - 1)


def _slice(items: deque, start: int, end: int) -> list[bytes]:
    """items[start:end+1], walking from the nearer end (deques index in O(distance))."""
    length = len(items)
    if start > length - 1 - end:
        tail = list(itertools.islice(reversed(items), length - 1 - end, length - start))
        tail.reverse()
        return tail
    return list(itertools.islice(items, start, end + 1))


def lrange(ctx, argv):
    start, end = parse_int(argv[2]), parse_int(argv[3])
    items = _list(ctx, argv[1], read=True)
    if items is None:
        return []
    bounds = _clamp_range(start, end, len(items))
    if bounds is None:
        return []
    return _slice(items, *bounds)


def lindex(ctx, argv):
    items = _list(ctx, argv[1], read=True)
    if items is None:
        return None
    index = parse_int(argv[2])
    if index < 0:
        index += len(items)
    if not 0 <= index < len(items):
        return None
    return items[index]


def lpos(ctx, argv):
    element = argv[2]
    rank, count, maxlen = 1, -1, 0  # count -1: no COUNT option given
    index = 3
    while index < len(argv):
        option = argv[index].lower()
        if index + 1 >= len(argv):
            raise CommandError(errors.SYNTAX)
        value = argv[index + 1]
        if option == b"rank":
            rank = parse_int(value)
            if rank == 0:
                raise CommandError(RANK_ZERO)
        elif option == b"count":
            count = _parse_range(value, 0, INT64_MAX, COUNT_NEGATIVE)
        elif option == b"maxlen":
            maxlen = _parse_range(value, 0, INT64_MAX, MAXLEN_NEGATIVE)
        else:
            raise CommandError(errors.SYNTAX)
        index += 2
    items = _list(ctx, argv[1], read=True)
    if items is None:
        return [] if count != -1 else None
    length = len(items)
    from_tail = rank < 0
    # Matches to pass over before reporting.  Redis 7.0 negates RANK in a C long, so
    # -2**63 stays negative there and counts as "from the tail, first match".
    skip = 0 if rank == INT64_MIN else abs(rank) - 1
    wanted = count if count > 0 else (length if count == 0 else 1)
    found: list[int] = []
    walk = reversed(items) if from_tail else iter(items)
    limit = maxlen if maxlen else length
    for position, item in enumerate(itertools.islice(walk, limit)):
        if item == element:
            if skip:
                skip -= 1
                continue
            found.append(length - 1 - position if from_tail else position)
            if len(found) >= wanted:
                break
    if count == -1:
        return found[0] if found else None
    return found


# --- changing in place ---------------------------------------------------------------------


def lset(ctx, argv):
    key = argv[1]
    items = _list(ctx, key)
    if items is None:
        raise CommandError(errors.NO_SUCH_KEY)
    index = parse_int(argv[2])
    if index < 0:
        index += len(items)
    if not 0 <= index < len(items):
        raise CommandError(errors.INDEX_OUT_OF_RANGE)
    items[index] = argv[3]
    ctx.dirty += 1
    _notify(ctx, b"lset", key)
    return OK


def linsert(ctx, argv):
    where = argv[2].lower()
    if where != b"before" and where != b"after":
        raise CommandError(errors.SYNTAX)
    items = _list(ctx, argv[1])
    if items is None:
        return 0
    try:
        position = items.index(argv[3])
    except ValueError:
        return -1
    items.insert(position if where == b"before" else position + 1, argv[4])
    ctx.dirty += 1
    _notify(ctx, b"linsert", argv[1])
    return len(items)


def lrem(ctx, argv):
    count = parse_int(argv[2])
    key, element = argv[1], argv[3]
    items = _list(ctx, key)
    if items is None:
        return 0
    limit = abs(count) if count else len(items)
    removed = 0
    kept: list[bytes] = []
    walk = reversed(items) if count < 0 else iter(items)
    for item in walk:
        if removed < limit and item == element:
            removed += 1
        else:
            kept.append(item)
    if removed:
        if count < 0:
            kept.reverse()
        items.clear()
        items.extend(kept)
        _changed(ctx, b"lrem", key, items)
        ctx.dirty += removed
    return removed


def ltrim(ctx, argv):
    start, end = parse_int(argv[2]), parse_int(argv[3])
    key = argv[1]
    items = _list(ctx, key)
    if items is None:
        return OK
    length = len(items)
    bounds = _clamp_range(start, end, length)
    if bounds is None:
        left, right = length, 0
    else:
        left, right = bounds[0], length - 1 - bounds[1]
    if left == length:
        items.clear()
    else:
        for _ in range(left):
            items.popleft()
        for _ in range(right):
            items.pop()
    _changed(ctx, b"ltrim", key, items)
    if left + right:
        ctx.dirty += left + right
    else:
        ctx.touch(key)  # Redis signals the key (WATCH) even when nothing was trimmed
    return OK


# --- moving between lists ------------------------------------------------------------------


def _move(ctx, source: bytes, destination: bytes, wherefrom: bytes, whereto: bytes) -> Any:
    """Pop from ``source`` and push to ``destination``: the element, or None when the source
    is empty.  Checks the destination's type before taking anything."""
    items = _list(ctx, source)
    if not items:
        return None
    target = _list(ctx, destination)
    element = items.popleft() if wherefrom == LEFT else items.pop()
    if target is None:
        target = deque()
        ctx.db.set(destination, target)
    if whereto == LEFT:
        target.appendleft(element)
    else:
        target.append(element)
    _notify(ctx, b"lpush" if whereto == LEFT else b"rpush", destination)
    _changed(ctx, b"lpop" if wherefrom == LEFT else b"rpop", source, items)
    ctx.dirty += 1
    ctx.touch(destination)  # wakes clients blocked on the destination when served from a Block
    return element


def lmove(ctx, argv):
    wherefrom, whereto = _parse_end(argv[3]), _parse_end(argv[4])
    return _move(ctx, argv[1], argv[2], wherefrom, whereto)


def rpoplpush(ctx, argv):
    return _move(ctx, argv[1], argv[2], RIGHT, LEFT)


def _parse_mpop(argv: list[bytes], numkeys_index: int) -> tuple[list[bytes], bytes, int]:
    """LMPOP/BLMPOP's ``numkeys key... LEFT|RIGHT [COUNT n]``: (keys, where, count)."""
    numkeys = _parse_range(argv[numkeys_index], 1, INT64_MAX, NUMKEYS_NOT_POSITIVE)
    where_index = numkeys_index + numkeys + 1
    if where_index >= len(argv):
        raise CommandError(errors.SYNTAX)
    where = _parse_end(argv[where_index])
    count = -1
    index = where_index + 1
    while index < len(argv):
        if count == -1 and argv[index].lower() == b"count" and index + 1 < len(argv):
            count = _parse_range(argv[index + 1], 1, INT64_MAX, COUNT_NOT_POSITIVE)
            index += 2
        else:
            raise CommandError(errors.SYNTAX)
    keys = argv[numkeys_index + 1 : where_index]
    return keys, where, 1 if count == -1 else count


def _serving_keys(block: Block | None, keys: list[bytes]) -> list[bytes]:
    """The keys a retry for a blocked client may take from: only the one that became ready,
    as Redis serves it (BLPOP a b woken by a push to b takes from b even if a has some)."""
    if block is not None and block.ready_key is not None:
        return [block.ready_key]
    return keys


def _first_list(ctx, keys: list[bytes], serving: bool) -> tuple[bytes, deque] | None:
    """The first of ``keys`` holding a list, and that list; None when none does.
    ``serving``: retried for a blocked client, where a key of another type is passed over
    (Redis serves only lists that became ready) instead of failing with WRONGTYPE."""
    for key in keys:
        value = ctx.db.get(key)
        if value is None:
            continue
        if value.__class__ is not deque:
            if serving:
                continue
            raise CommandError(errors.WRONGTYPE)
        return key, value
    return None


def _mpop_nowait(ctx, keys: list[bytes], where: bytes, count: int, serving: bool) -> Any:
    """Pop up to ``count`` from the first non-empty list: ``[key, [elements]]`` or None.
    Propagated as ``LPOP/RPOP key n`` with the number taken (``serving``: see
    :func:`_first_list`)."""
    found = _first_list(ctx, keys, serving)
    if found is None:
        return None
    key, value = found
    popped = _pop_n(value, where, count)
    _changed(ctx, b"lpop" if where == LEFT else b"rpop", key, value)
    ctx.dirty += len(popped)
    ctx.touch(key)
    ctx.propagate([b"LPOP" if where == LEFT else b"RPOP", key, b"%d" % len(popped)])
    return [key, popped]


def lmpop(ctx, argv):
    keys, where, count = _parse_mpop(argv, 1)
    reply = _mpop_nowait(ctx, keys, where, count, serving=False)
    return NULL_ARRAY if reply is None else reply


# --- blocking ------------------------------------------------------------------------------


def _blocks(ctx) -> bool:
    """Whether a command may block here: not inside MULTI/EXEC (the engine would turn the
    Block into its timeout reply, but BLMOVE's null there differs from its timeout's)."""
    return not ctx.engine.in_exec and ctx.client.multi is None


def _bpop_nowait(ctx, keys: list[bytes], where: bytes, serving: bool) -> Any:
    """BLPOP/BRPOP's pop: ``[key, element]`` from the first non-empty list, or None;
    propagated as ``LPOP key``/``RPOP key``."""
    found = _first_list(ctx, keys, serving)
    if found is None:
        return None
    key, value = found
    element = value.popleft() if where == LEFT else value.pop()
    _changed(ctx, b"lpop" if where == LEFT else b"rpop", key, value)
    ctx.dirty += 1
    ctx.propagate([b"LPOP" if where == LEFT else b"RPOP", key])
    return [key, element]


def _bpop(ctx, argv: list[bytes], where: bytes) -> Any:
    timeout = parse_timeout(argv[-1])
    keys = argv[1:-1]
    reply = _bpop_nowait(ctx, keys, where, serving=False)
    if reply is not None:
        return reply
    block = Block(keys, timeout, lambda c: _bpop_nowait(
        c, _serving_keys(block, keys), where, serving=True))
    return block


def blpop(ctx, argv):
    return _bpop(ctx, argv, LEFT)


def brpop(ctx, argv):
    return _bpop(ctx, argv, RIGHT)


def _bmove(ctx, source: bytes, destination: bytes, wherefrom: bytes, whereto: bytes,
           timeout: float, effect: list[bytes]) -> Any:
    """BLMOVE/BRPOPLPUSH: move now, else block; ``effect`` is what a move propagates."""

    def attempt(c):
        element = _move(c, source, destination, wherefrom, whereto)
        if element is not None:
            c.propagate(effect)
        return element

    element = attempt(ctx)
    if element is not None:
        return element
    if not _blocks(ctx):
        return None  # Redis: a null bulk inside MULTI, a null array on timeout
    return Block([source], timeout, attempt)


def blmove(ctx, argv):
    wherefrom, whereto = _parse_end(argv[3]), _parse_end(argv[4])
    timeout = parse_timeout(argv[5])
    effect = [b"LMOVE", argv[1], argv[2], argv[3], argv[4]]
    return _bmove(ctx, argv[1], argv[2], wherefrom, whereto, timeout, effect)


def brpoplpush(ctx, argv):
    timeout = parse_timeout(argv[3])
    effect = [b"RPOPLPUSH", argv[1], argv[2]]
    return _bmove(ctx, argv[1], argv[2], RIGHT, LEFT, timeout, effect)


def blmpop(ctx, argv):
    keys, where, count = _parse_mpop(argv, 2)
    timeout = parse_timeout(argv[1])
    reply = _mpop_nowait(ctx, keys, where, count, serving=False)
    if reply is not None:
        return reply
    block = Block(keys, timeout, lambda c: _mpop_nowait(
        c, _serving_keys(block, keys), where, count, serving=True))
    return block


def register(registry):
    group = "list"
    registry.extend([
        command("lpush", -3, "write denyoom fast", lpush, group=group),
        command("rpush", -3, "write denyoom fast", rpush, group=group),
        command("lpushx", -3, "write denyoom fast", lpushx, group=group),
        command("rpushx", -3, "write denyoom fast", rpushx, group=group),
        command("lpop", -2, "write fast", lpop, group=group),
        command("rpop", -2, "write fast", rpop, group=group),
        command("llen", 2, "readonly fast", llen, group=group),
        command("lrange", 4, "readonly", lrange, group=group),
        command("lindex", 3, "readonly", lindex, group=group),
        command("lpos", -3, "readonly", lpos, group=group),
        command("lset", 4, "write denyoom", lset, group=group),
        command("linsert", 5, "write denyoom", linsert, group=group),
        command("lrem", 4, "write", lrem, group=group),
        command("ltrim", 4, "write", ltrim, group=group),
        command("lmove", 5, "write denyoom", lmove, group=group),
        command("rpoplpush", 3, "write denyoom", rpoplpush, group=group),
        command("lmpop", -4, "write movablekeys", lmpop, group=group),
        command("blpop", -3, "write noscript blocking", blpop, group=group),
        command("brpop", -3, "write noscript blocking", brpop, group=group),
        command("blmove", 6, "write denyoom noscript blocking", blmove, group=group),
        command("brpoplpush", 4, "write denyoom noscript blocking", brpoplpush, group=group),
        command("blmpop", -5, "write blocking movablekeys", blmpop, group=group),
    ])
