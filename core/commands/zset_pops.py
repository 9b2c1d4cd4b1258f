"""The sorted set pops: ZPOPMIN/ZPOPMAX, ZMPOP, and the blocking BZPOPMIN/BZPOPMAX/BZMPOP.

However a pop was served (at once, or later to a blocked client), it is propagated as
``ZPOPMIN/ZPOPMAX key count``: what was taken, not the command as sent.  Registered by
:func:`trioredis.commands.zsets.register` with the group's other commands.
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..engine import Block
from ..errors import CommandError
from ..resp import NULL_ARRAY
from ..zset import ZSet
from .args import INT64_MAX, parse_timeout
from .sets import delete_emptied, notify, parse_positive, parse_range_long
from .zset_common import COUNT_POSITIVE, NUMKEYS_POSITIVE, _get, _pairs_reply


def _pop_from(ctx, key: bytes, zset: ZSet, highest: bool, count: int,
              propagate: list[bytes] | None) -> list[tuple[bytes, float]]:
    """Pop up to ``count`` pairs from ``zset`` at ``key``, deleting it when emptied;
    ``propagate`` is the effect to propagate instead of the command (None: as sent)."""
    popped = [zset.pop(highest) for _ in range(min(count, len(zset)))]
    notify(ctx, _pop_name(highest).lower(), key, "z")
    if not zset:
        delete_emptied(ctx, key)
    ctx.dirty += len(popped)
    if propagate is not None:
        ctx.propagate(propagate)
    return popped


def _pop_name(highest: bool) -> bytes:
    return b"ZPOPMAX" if highest else b"ZPOPMIN"


def _flat_pairs(pairs: list[tuple[bytes, float]]) -> list[Any]:
    flat: list[Any] = []
    for member, score in pairs:
        flat.append(member)
        flat.append(score)
    return flat


def _zpop(ctx, argv, highest: bool):
    """ZPOPMIN/ZPOPMAX key [count]: deterministic, so propagated as sent.  Without a count
    the reply is flat even under RESP3, as in Redis."""
    if len(argv) > 3:
        raise CommandError(errors.SYNTAX)
    count = parse_positive(argv[2]) if len(argv) == 3 else -1
    key = argv[1]
    zset = _get(ctx, key)
    if zset is None or count == 0:
        return []
    popped = _pop_from(ctx, key, zset, highest, 1 if count == -1 else count, None)
    if count == -1:
        return _flat_pairs(popped)
    return _pairs_reply(ctx, popped, True)


def zpopmin(ctx, argv):
    return _zpop(ctx, argv, False)


def zpopmax(ctx, argv):
    return _zpop(ctx, argv, True)


def _parse_mpop(argv: list[bytes], numkeys_index: int) -> tuple[list[bytes], bool, int]:
    """ZMPOP/BZMPOP's ``numkeys key... MIN|MAX [COUNT n]``: (keys, highest, count)."""
    numkeys = parse_range_long(argv[numkeys_index], 1, INT64_MAX, NUMKEYS_POSITIVE)
    where_index = numkeys_index + numkeys + 1
    if where_index >= len(argv):
        raise CommandError(errors.SYNTAX)
    where = argv[where_index].lower()
    if where not in (b"min", b"max"):
        raise CommandError(errors.SYNTAX)
    count = -1
    index = where_index + 1
    while index < len(argv):
        if count == -1 and argv[index].lower() == b"count" and index + 1 < len(argv):
            count = parse_range_long(argv[index + 1], 1, INT64_MAX, COUNT_POSITIVE)
            index += 2
        else:
            raise CommandError(errors.SYNTAX)
    keys = argv[numkeys_index + 1 : where_index]
    return keys, where == b"max", 1 if count == -1 else count


def _first_zset(ctx, keys: list[bytes]) -> tuple[bytes, ZSet] | None:
    """The first key holding a sorted set (WRONGTYPE for another type met before it)."""
    for key in keys:
        zset = _get(ctx, key)
        if zset is not None:
            return key, zset
    return None


def _ready_zset(ctx, keys: list[bytes]) -> tuple[bytes, ZSet] | None:
    """For a blocked client: the first key that now holds a sorted set (a key that holds
    another type is passed over: Redis serves only sorted sets to these clients)."""
    for key in keys:
        value = ctx.db.get(key)
        if value is not None and value.__class__ is ZSet:
            return key, value
    return None


def _mpop(ctx, key: bytes, zset: ZSet, highest: bool, count: int) -> list[Any]:
    """ZMPOP/BZMPOP's pop: ``[key, [[member, score], ...]]`` in both protocols, propagated
    as ``ZPOPMIN key count`` (the keys it was not taken from play no part)."""
    popped = _pop_from(ctx, key, zset, highest, count, [_pop_name(highest), key, b"%d" % count])
    return [key, [[member, score] for member, score in popped]]


def zmpop(ctx, argv):
    keys, highest, count = _parse_mpop(argv, 1)
    found = _first_zset(ctx, keys)
    if found is None:
        return NULL_ARRAY
    return _mpop(ctx, found[0], found[1], highest, count)


def bzmpop(ctx, argv):
    keys, highest, count = _parse_mpop(argv, 2)
    timeout = parse_timeout(argv[1])
    found = _first_zset(ctx, keys)
    if found is not None:
        return _mpop(ctx, found[0], found[1], highest, count)

    def attempt(ctx):
        ready = _ready_zset(ctx, keys)
        return None if ready is None else _mpop(ctx, ready[0], ready[1], highest, count)

    return Block(keys, timeout, attempt, NULL_ARRAY)


def _bzpop(ctx, argv, highest: bool):
    """BZPOPMIN/BZPOPMAX key... timeout: ``[key, member, score]``, propagated as the
    ``ZPOPMIN key`` that happened, whether served at once or after blocking."""
    timeout = parse_timeout(argv[-1])
    keys = argv[1:-1]

    def pop(ctx, key: bytes, zset: ZSet) -> list[Any]:
        (member, score), = _pop_from(ctx, key, zset, highest, 1, [_pop_name(highest), key])
        return [key, member, score]

    found = _first_zset(ctx, keys)
    if found is not None:
        return pop(ctx, *found)

    def attempt(ctx):
        ready = _ready_zset(ctx, keys)
        return None if ready is None else pop(ctx, *ready)

    return Block(keys, timeout, attempt, NULL_ARRAY)


def bzpopmin(ctx, argv):
    return _bzpop(ctx, argv, False)


def bzpopmax(ctx, argv):
    return _bzpop(ctx, argv, True)
