"""Hash commands.

A hash is a plain ``dict`` of field -> value (both bytes).  Python dicts keep insertion
order, which is also the order Redis 7.0 keeps in a small (listpack-encoded) hash, so HKEYS,
HGETALL and HSCAN list a small hash's fields exactly as Redis does.  A hash that becomes
empty is deleted.

Replies, error strings and the order in which arguments are checked follow Redis 7.0
(``t_hash.c``).  HINCRBYFLOAT adds in C ``long double`` and is propagated as ``HSET key field
<result>``, so a replay stores the same text whatever the replaying machine's floats do.
"""

from __future__ import annotations

import itertools
import random
from fractions import Fraction
from typing import Any

from .. import errors
from ..errors import CommandError
from ..pubsub import notify_keyspace_event
from ..resp import OK, Map
from . import command
from .args import (
    INT64_MAX,
    INT64_MIN,
    _round_long_double,
    format_long_double,
    parse_int,
    parse_long_double,
)
from .keys import (
    key_encoding,
    parse_cursor,
    scan_collection,
    typed_value,
)

HASH_NOT_INTEGER = "ERR hash value is not an integer"
HASH_NOT_FLOAT = "ERR hash value is not a float"
INCREMENT_NAN_OR_INF = "ERR value is NaN or Infinity"
RANGE_LONG = "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
OUT_OF_RANGE = "ERR value is out of range"


def _notify(ctx, event: bytes, key: bytes, event_class: str = "h") -> None:
    """A keyspace notification (``notify-keyspace-events``), with Redis's event names."""
    if ctx.config.notify_keyspace_events:
        notify_keyspace_event(ctx.engine, event_class, event, key, ctx.db.index)


def _hash(ctx, key: bytes, read: bool = False) -> dict | None:
    return typed_value(ctx, key, dict, read)


def _hash_or_create(ctx, key: bytes) -> dict:
    fields = _hash(ctx, key)
    if fields is None:
        fields = {}
        ctx.db.set(key, fields)
    return fields


# --- writing -------------------------------------------------------------------------------


def hset(ctx, argv, name: str = "hset"):
    """HSET key field value [field value ...]: the number of fields that were new."""
    if len(argv) % 2:
        raise CommandError(errors.wrong_arity(name))
    fields = _hash_or_create(ctx, argv[1])
    before = len(fields)
    for index in range(2, len(argv), 2):
        fields[argv[index]] = argv[index + 1]
    ctx.dirty += (len(argv) - 2) // 2
    _notify(ctx, b"hset", argv[1])
    return len(fields) - before


def hmset(ctx, argv):
    hset(ctx, argv, "hmset")
    return OK


def hsetnx(ctx, argv):
    fields = _hash_or_create(ctx, argv[1])
    if argv[2] in fields:
        return 0
    fields[argv[2]] = argv[3]
    ctx.dirty += 1
    _notify(ctx, b"hset", argv[1])
    return 1


def hdel(ctx, argv):
    key = argv[1]
    fields = _hash(ctx, key)
    if fields is None:
        return 0
    deleted = 0
    for field in argv[2:]:
        if fields.pop(field, None) is not None:
            deleted += 1
            if not fields:
                break
    if deleted:
        _notify(ctx, b"hdel", key)
    if not fields:
        ctx.db.delete(key)
        _notify(ctx, b"del", key, "g")
    ctx.dirty += deleted
    return deleted


def hincrby(ctx, argv):
    increment = parse_int(argv[3])
    fields = _hash_or_create(ctx, argv[1])
    current = fields.get(argv[2])
    value = 0 if current is None else parse_int(current, HASH_NOT_INTEGER)
    total = value + increment
    if not INT64_MIN <= total <= INT64_MAX:
        raise CommandError(errors.OVERFLOW)
    fields[argv[2]] = b"%d" % total
    ctx.dirty += 1
    _notify(ctx, b"hincrby", argv[1])
    return total


def hincrbyfloat(ctx, argv):
    """Added as C ``long double`` (64-bit mantissa) and printed with ``%.17Lf`` trimmed, as
    Redis does; propagated as HSET of the printed result."""
    key, field = argv[1], argv[2]
    increment = parse_long_double(argv[3])
    if increment is None:
        raise CommandError(INCREMENT_NAN_OR_INF)
    fields = _hash_or_create(ctx, key)
    current = fields.get(field)
    value = Fraction(0) if current is None else parse_long_double(current, HASH_NOT_FLOAT)
    total = None if value is None else _round_long_double(value + increment)
    if total is None:
        if not fields:
            ctx.db.delete(key)
        raise CommandError(errors.INCR_NAN_OR_INF)
    text = format_long_double(total)
    fields[field] = text
    ctx.dirty += 1
    _notify(ctx, b"hincrbyfloat", key)
    ctx.propagate([b"HSET", key, field, text])
    return text


# --- reading -------------------------------------------------------------------------------


def hget(ctx, argv):
    fields = _hash(ctx, argv[1], read=True)
    return None if fields is None else fields.get(argv[2])


def hmget(ctx, argv):
    fields = _hash(ctx, argv[1], read=True)
    if fields is None:
        return [None] * (len(argv) - 2)
    return [fields.get(field) for field in argv[2:]]


def hlen(ctx, argv):
    fields = _hash(ctx, argv[1], read=True)
    return 0 if fields is None else len(fields)


def hstrlen(ctx, argv):
    fields = _hash(ctx, argv[1], read=True)
    value = None if fields is None else fields.get(argv[2])
    return 0 if value is None else len(value)


def hexists(ctx, argv):
    fields = _hash(ctx, argv[1], read=True)
    return int(fields is not None and argv[2] in fields)


def hkeys(ctx, argv):
    fields = _hash(ctx, argv[1], read=True)
    return [] if fields is None else list(fields)


def hvals(ctx, argv):
    fields = _hash(ctx, argv[1], read=True)
    return [] if fields is None else list(fields.values())


def hgetall(ctx, argv):
    """A map in RESP3, field value field value ... in RESP2."""
    fields = _hash(ctx, argv[1], read=True)
    return Map() if fields is None else Map(fields)


# --- HRANDFIELD ----------------------------------------------------------------------------


def _random_field(fields: dict) -> bytes:
    """One field chosen uniformly (dicts have no random access: islice skips in C)."""
    return next(itertools.islice(iter(fields), random.randrange(len(fields)), None))


def hrandfield(ctx, argv):
    """HRANDFIELD key [count [WITHVALUES]]: a positive count gives distinct fields (the whole
    hash, in order, when count >= its size), a negative one may repeat fields."""
    if len(argv) == 2:
        fields = _hash(ctx, argv[1], read=True)
        return None if not fields else _random_field(fields)
    count = parse_int(argv[2])
    if count == INT64_MIN:
        raise CommandError(RANGE_LONG)
    if len(argv) > 4 or (len(argv) == 4 and argv[3].lower() != b"withvalues"):
        raise CommandError(errors.SYNTAX)
    with_values = len(argv) == 4
    if with_values and not -(INT64_MAX // 2) <= count <= INT64_MAX // 2:
        raise CommandError(OUT_OF_RANGE)
    fields = _hash(ctx, argv[1], read=True)
    if fields is None or count == 0:
        return []
    if count < 0 or count == 1:
        picks = -count if count < 0 else 1
        if picks > 8 or len(fields) <= 1024:
            names = list(fields)
            chosen = [random.choice(names) for _ in range(picks)]
        else:  # a few picks from a big hash: skip the copy
            chosen = [_random_field(fields) for _ in range(picks)]
    elif count >= len(fields):
        chosen = list(fields)
    else:
        chosen = random.sample(list(fields), count)
    if not with_values:
        return chosen
    if ctx.client.resp3:
        return [[field, fields[field]] for field in chosen]
    return [item for field in chosen for item in (field, fields[field])]


# --- HSCAN ---------------------------------------------------------------------------------


def hscan(ctx, argv):
    """A small hash (listpack in Redis) comes back whole with cursor 0, as Redis answers it;
    a large one walks a snapshot of its fields, COUNT at a time (see keys.ScanSnapshots)."""
    cursor = parse_cursor(argv[2])
    fields = _hash(ctx, argv[1], read=True)
    if fields is None:
        return [b"0", []]
    small = list(fields) if key_encoding(ctx, argv[1], fields) == "listpack" else None
    next_cursor, batch, match = scan_collection(ctx, argv, cursor, lambda: list(fields), small)
    found: list[Any] = []
    for field in batch:
        value = fields.get(field)
        if value is None or (match is not None and not match(field)):
            continue
        found.append(field)
        found.append(value)
    return [next_cursor, found]


def register(registry):
    group = "hash"
    registry.extend([
        command("hset", -4, "write denyoom fast", hset, group=group),
        command("hmset", -4, "write denyoom fast", hmset, group=group),
        command("hsetnx", 4, "write denyoom fast", hsetnx, group=group),
        command("hdel", -3, "write fast", hdel, group=group),
        command("hincrby", 4, "write denyoom fast", hincrby, group=group),
        command("hincrbyfloat", 4, "write denyoom fast", hincrbyfloat, group=group),
        command("hget", 3, "readonly fast", hget, group=group),
        command("hmget", -3, "readonly fast", hmget, group=group),
        command("hlen", 2, "readonly fast", hlen, group=group),
        command("hstrlen", 3, "readonly fast", hstrlen, group=group),
        command("hexists", 3, "readonly fast", hexists, group=group),
        command("hkeys", 2, "readonly", hkeys, group=group),
        command("hvals", 2, "readonly", hvals, group=group),
        command("hgetall", 2, "readonly", hgetall, group=group),
        command("hrandfield", -2, "readonly", hrandfield, group=group),
        command("hscan", -3, "readonly", hscan, group=group),
    ])
