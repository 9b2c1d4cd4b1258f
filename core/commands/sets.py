"""Set commands.  A set is a Python ``set`` of bytes; a set that becomes empty is deleted.

Replies that Redis sends as a RESP3 set (SMEMBERS, SINTER, SUNION, SDIFF, SPOP with a count)
are :class:`SetReply`; SRANDMEMBER with a count is a plain array, as in Redis.  SPOP is
propagated as the SREM of what it popped (or DEL when it took everything), so a replayed AOF
ends with the same set whatever the random choice was.

A small set of integers replies in ascending order, as Redis's intset encoding does; a large
set's random members come from :data:`SAMPLER` in O(1).

Also here, shared with the sorted set commands: Redis's parsing of positive and bounded
integer arguments, keyspace notifications, and the deletion of an emptied collection.
"""

from __future__ import annotations

import itertools
import random
import weakref
from typing import Any

from .. import errors
from ..errors import CommandError
from ..pubsub import notify_keyspace_event
from ..resp import SetReply
from . import command
from .args import INT64_MAX, parse_int
from .keys import (
    key_encoding,
    object_encoding,
    parse_cursor,
    scan_collection,
    typed_value,
)

NUMKEYS_POSITIVE = "ERR numkeys should be greater than 0"
NUMKEYS_TOO_MANY = "ERR Number of keys can't be greater than number of args"
LIMIT_NEGATIVE = "ERR LIMIT can't be negative"
MUST_BE_POSITIVE = "ERR value is out of range, must be positive"
SREM_BATCH = 1024  # members per propagated SREM, as Redis batches SPOP's effect


# --- shared argument helpers ---------------------------------------------------------------


def parse_positive(raw: bytes, error: str = MUST_BE_POSITIVE) -> int:
    """Redis's getPositiveLongFromObjectOrReply: a non-integer and a negative number give the
    same error."""
    try:
        value = parse_int(raw)
    except CommandError:
        raise CommandError(error) from None
    if value < 0:
        raise CommandError(error)
    return value


def parse_range_long(raw: bytes, low: int, high: int, error: str | None = None) -> int:
    """Redis's getRangeLongFromObjectOrReply: ``error`` (when given) replaces both the
    not-an-integer and the out-of-range messages."""
    try:
        value = parse_int(raw)
    except CommandError:
        raise CommandError(error or errors.NOT_INTEGER) from None
    if not low <= value <= high:
        raise CommandError(
            error or f"ERR value is out of range, value must between {low} and {high}"
        )
    return value




def random_member(collection: Any) -> Any:
    """One uniformly random element of a small set or dict without copying it (islice skips
    in C: fine for small collections, a large set goes through :data:`SAMPLER`)."""
    return next(itertools.islice(iter(collection), random.randrange(len(collection)), None))


class _LargeSetSampler:
    """Random members of large sets in O(1), for SPOP and SRANDMEMBER.

    A Python set has no random access, so a large set gets a list snapshot of its members,
    kept in step with the removals SPOP makes through :meth:`pop` (swap with the last, then
    shrink) and rebuilt when the set's size shows another command changed it.  A pick is
    checked against the set, so a stale snapshot can never return a non-member.  A few
    snapshots are kept (least recently used dropped) and each dies with its set."""

    THRESHOLD = 1024
    MAX_SNAPSHOTS = 8

    def __init__(self) -> None:
        self._snapshots: dict[int, tuple[weakref.ref, list[bytes]]] = {}

    def _snapshot(self, members: set[bytes], fresh: bool = False) -> list[bytes]:
        key = id(members)
        entry = self._snapshots.pop(key, None)
        if not fresh and entry is not None and entry[0]() is members and len(entry[1]) == len(members):
            self._snapshots[key] = entry  # most recently used last
            return entry[1]
        snapshot = list(members)

        def forget(ref: weakref.ref, key: int = key) -> None:
            current = self._snapshots.get(key)
            if current is not None and current[0] is ref:
                del self._snapshots[key]

        self._snapshots[key] = (weakref.ref(members, forget), snapshot)
        while len(self._snapshots) > self.MAX_SNAPSHOTS:
            del self._snapshots[next(iter(self._snapshots))]
        return snapshot

    def forget(self, members: set[bytes]) -> None:
        """``members`` changed (SADD, SREM, SMOVE): its snapshot is out of date."""
        if self._snapshots:
            self._snapshots.pop(id(members), None)

    def _pick(self, members: set[bytes]) -> tuple[list[bytes], int]:
        snapshot = self._snapshot(members)
        index = random.randrange(len(snapshot))
        if snapshot[index] not in members:  # changed behind our back: start again
            snapshot = self._snapshot(members, fresh=True)
            index = random.randrange(len(snapshot))
        return snapshot, index

    def choice(self, members: set[bytes]) -> bytes:
        if len(members) < self.THRESHOLD:
            return random_member(members)
        snapshot, index = self._pick(members)
        return snapshot[index]

    def sample(self, members: set[bytes], count: int) -> list[bytes]:
        """``count`` distinct random members (``count`` below the size)."""
        if len(members) < self.THRESHOLD:
            return random.sample(list(members), count)
        return random.sample(self._snapshot(members), count)

    def choices(self, members: set[bytes], count: int) -> list[bytes]:
        """``count`` random members, repetitions allowed (SRANDMEMBER's negative count)."""
        if len(members) < self.THRESHOLD:
            return random.choices(list(members), k=count)
        return random.choices(self._snapshot(members), k=count)

    def pop(self, members: set[bytes]) -> bytes:
        """Remove and return a random member."""
        if len(members) < self.THRESHOLD:
            member = random_member(members)
            members.discard(member)
            return member
        snapshot, index = self._pick(members)
        member = snapshot[index]
        snapshot[index] = snapshot[-1]
        snapshot.pop()
        members.discard(member)
        return member


SAMPLER = _LargeSetSampler()


# --- helpers -------------------------------------------------------------------------------


def notify(ctx, event: bytes, key: bytes, event_class: str = "s") -> None:
    """A keyspace notification (``notify-keyspace-events``), with Redis's event names."""
    if ctx.config.notify_keyspace_events:
        notify_keyspace_event(ctx.engine, event_class, event, key, ctx.db.index)


def delete_emptied(ctx, key: bytes) -> None:
    """A collection became empty: the key goes, with Redis's generic ``del`` event."""
    ctx.db.delete(key)
    notify(ctx, b"del", key, "g")


def members_reply(members: Any) -> SetReply:
    """A whole set as a reply.  Redis keeps a small set of integers as a sorted intset and
    replies in that order (``SADD s 3 1 2`` then ``SMEMBERS s`` is 1 2 3); any other set's
    order is its hash table's, which no client can rely on."""
    if members and object_encoding(members) == "intset":
        return SetReply(sorted(members, key=int))
    return SetReply(members)


def _get_set(ctx, key: bytes, read: bool = False) -> set[bytes] | None:
    return typed_value(ctx, key, set, read)


def _store(ctx, key: bytes, result: set[bytes], event: bytes) -> int:
    """SINTERSTORE & co: replace ``key`` by ``result`` (dropping its TTL), or delete it when
    the result is empty.  The reply is the size."""
    if result:
        ctx.db.set(key, result)
        ctx.dirty += 1
        notify(ctx, event, key)
        return len(result)
    if ctx.db.delete(key):
        ctx.dirty += 1
        notify(ctx, b"del", key, "g")
    return 0


# --- commands ------------------------------------------------------------------------------


def sadd(ctx, argv):
    key = argv[1]
    value = _get_set(ctx, key)
    if value is None:
        value = set()
        ctx.db.set(key, value)
    before = len(value)
    value.update(argv[2:])
    added = len(value) - before
    if added:
        SAMPLER.forget(value)
        notify(ctx, b"sadd", key)
    ctx.dirty += added
    return added


def srem(ctx, argv):
    key = argv[1]
    value = _get_set(ctx, key)
    if value is None:
        return 0
    removed = 0
    for member in argv[2:]:
        if member in value:
            value.discard(member)
            removed += 1
            if not value:
                break
    if removed:
        SAMPLER.forget(value)
        notify(ctx, b"srem", key)
        if not value:
            delete_emptied(ctx, key)
    ctx.dirty += removed
    return removed


def smove(ctx, argv):
    source, destination, member = argv[1], argv[2], argv[3]
    src = _get_set(ctx, source)
    dst = ctx.db.get(destination)
    if src is None:
        return 0
    if dst is not None and dst.__class__ is not set:
        raise CommandError(errors.WRONGTYPE)
    if src is dst:
        return 1 if member in src else 0
    if member not in src:
        return 0
    src.discard(member)
    SAMPLER.forget(src)
    notify(ctx, b"srem", source)
    if not src:
        delete_emptied(ctx, source)
    if dst is None:
        dst = set()
        ctx.db.set(destination, dst)
    ctx.dirty += 1
    if member not in dst:
        dst.add(member)
        SAMPLER.forget(dst)
        ctx.dirty += 1
        notify(ctx, b"sadd", destination)
    return 1


def sismember(ctx, argv):
    value = _get_set(ctx, argv[1], read=True)
    return 1 if value is not None and argv[2] in value else 0


def smismember(ctx, argv):
    value = _get_set(ctx, argv[1], read=True) or ()
    return [1 if member in value else 0 for member in argv[2:]]


def scard(ctx, argv):
    value = _get_set(ctx, argv[1], read=True)
    return 0 if value is None else len(value)


def smembers(ctx, argv):
    value = _get_set(ctx, argv[1], read=True)
    return members_reply(value or ())


def spop(ctx, argv):
    key = argv[1]
    if len(argv) > 3:
        raise CommandError(errors.SYNTAX)
    if len(argv) == 3:
        count = parse_positive(argv[2])
        value = _get_set(ctx, key)
        if value is None or count == 0:
            return SetReply()
        if count >= len(value):
            ctx.dirty += 1
            notify(ctx, b"spop", key)
            delete_emptied(ctx, key)
            ctx.propagate([b"DEL", key])
            return members_reply(value)
        if count * 4 < len(value):  # a few from a large set: O(count), not a copy
            popped = [SAMPLER.pop(value) for _ in range(count)]
        else:
            popped = random.sample(list(value), count)
            value.difference_update(popped)
            SAMPLER.forget(value)
        ctx.dirty += count
        notify(ctx, b"spop", key)
        for start in range(0, count, SREM_BATCH):
            ctx.propagate([b"SREM", key, *popped[start : start + SREM_BATCH]])
        return SetReply(popped)
    value = _get_set(ctx, key)
    if value is None:
        return None
    member = SAMPLER.pop(value)
    notify(ctx, b"spop", key)
    if not value:
        delete_emptied(ctx, key)
    ctx.dirty += 1
    ctx.propagate([b"SREM", key, member])
    return member


def srandmember(ctx, argv):
    key = argv[1]
    if len(argv) > 3:
        raise CommandError(errors.SYNTAX)
    if len(argv) == 2:
        value = _get_set(ctx, key, read=True)
        return None if value is None else SAMPLER.choice(value)
    count = parse_range_long(argv[2], -INT64_MAX, INT64_MAX)
    value = _get_set(ctx, key, read=True)
    if value is None or count == 0:
        return []
    if count < 0:
        return SAMPLER.choices(value, -count)
    if count >= len(value):
        return list(members_reply(value))  # the whole set, in its intset order if it has one
    return SAMPLER.sample(value, count)


def _load_sets(ctx, keys: list[bytes]) -> list[set[bytes] | None]:
    """Every key's set (None when missing); WRONGTYPE if any key holds another type.  Read
    lookups (hits and misses counted), the STORE variants' sources included, as in 7.0."""
    return [_get_set(ctx, key, read=True) for key in keys]


def _intersection(sets: list[set[bytes] | None], limit: int = 0) -> set[bytes]:
    if any(s is None for s in sets):
        return set()
    ordered = sorted(sets, key=len)  # type: ignore[arg-type]
    smallest, others = ordered[0], ordered[1:]
    result: set[bytes] = set()
    for member in smallest:  # type: ignore[union-attr]
        if all(member in other for other in others):  # type: ignore[operator]
            result.add(member)
            if limit and len(result) >= limit:
                break
    return result


def _union(sets: list[set[bytes] | None]) -> set[bytes]:
    result: set[bytes] = set()
    for s in sets:
        if s:
            result.update(s)
    return result


def _difference(sets: list[set[bytes] | None]) -> set[bytes]:
    first = sets[0]
    if not first:
        return set()
    result = set(first)
    for s in sets[1:]:
        if s:
            result.difference_update(s)
            if not result:
                break
    return result


def sinter(ctx, argv):
    return members_reply(_intersection(_load_sets(ctx, argv[1:])))


def sunion(ctx, argv):
    return members_reply(_union(_load_sets(ctx, argv[1:])))


def sdiff(ctx, argv):
    return members_reply(_difference(_load_sets(ctx, argv[1:])))


def sinterstore(ctx, argv):
    return _store(ctx, argv[1], _intersection(_load_sets(ctx, argv[2:])), b"sinterstore")


def sunionstore(ctx, argv):
    return _store(ctx, argv[1], _union(_load_sets(ctx, argv[2:])), b"sunionstore")


def sdiffstore(ctx, argv):
    return _store(ctx, argv[1], _difference(_load_sets(ctx, argv[2:])), b"sdiffstore")


def sintercard(ctx, argv):
    numkeys = parse_range_long(argv[1], 1, INT64_MAX, NUMKEYS_POSITIVE)
    if numkeys > len(argv) - 2:
        raise CommandError(NUMKEYS_TOO_MANY)
    limit = 0
    index = 2 + numkeys
    while index < len(argv):
        if argv[index].lower() == b"limit" and index + 1 < len(argv):
            limit = parse_positive(argv[index + 1], LIMIT_NEGATIVE)
            index += 2
        else:
            raise CommandError(errors.SYNTAX)
    return len(_intersection(_load_sets(ctx, argv[2 : 2 + numkeys]), limit))


def sscan(ctx, argv):
    """A small set (intset in Redis) comes back whole with cursor 0, as Redis answers it; a
    large one walks a snapshot of its members, COUNT at a time (see keys.ScanSnapshots)."""
    cursor = parse_cursor(argv[2])
    value = _get_set(ctx, argv[1], read=True)
    if value is None:
        return [b"0", []]  # Redis answers a missing key before it reads the options
    small = sorted(value, key=int) if key_encoding(ctx, argv[1], value) == "intset" else None
    next_cursor, batch, match = scan_collection(ctx, argv, cursor, lambda: list(value), small)
    found = [
        member for member in batch
        if member in value and (match is None or match(member))
    ]
    return [next_cursor, found]


def register(registry):
    group = "set"
    registry.extend([
        command("sadd", -3, "write denyoom fast", sadd, group=group),
        command("srem", -3, "write fast", srem, group=group),
        command("smove", 4, "write fast", smove, group=group),
        command("sismember", 3, "readonly fast", sismember, group=group),
        command("smismember", -3, "readonly fast", smismember, group=group),
        command("scard", 2, "readonly fast", scard, group=group),
        command("smembers", 2, "readonly", smembers, group=group),
        command("spop", -2, "write fast", spop, group=group),
        command("srandmember", -2, "readonly", srandmember, group=group),
        command("sinter", -2, "readonly", sinter, group=group),
        command("sintercard", -3, "readonly movablekeys", sintercard, group=group),
        # The STORE variants name their sources too, as Redis does (ACL key checks, COMMAND
        # GETKEYS); so a WATCH on a source is also invalidated by them, where Redis's key
        # specs would signal only the destination.
        command("sinterstore", -3, "write denyoom", sinterstore, group=group),
        command("sunion", -2, "readonly", sunion, group=group),
        command("sunionstore", -3, "write denyoom", sunionstore, group=group),
        command("sdiff", -2, "readonly", sdiff, group=group),
        command("sdiffstore", -3, "write denyoom", sdiffstore, group=group),
        command("sscan", -3, "readonly", sscan, group=group),
    ])
