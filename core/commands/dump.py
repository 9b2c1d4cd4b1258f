"""DUMP and RESTORE: a value as Redis's serialized payload, and back (Redis 7.0 ``cluster.c``).

The payload is the value in RDB encoding (:mod:`trioredis.rdb`), the RDB version (10) in two
little-endian bytes and a CRC-64 of all that, so a payload DUMPed by redis-server 7.0
RESTOREs here and the other way round, and the same value DUMPs to the same bytes on both
(the compact encodings follow the ``*-max-listpack-*`` thresholds when the config has them).

RESTORE checks in Redis's order: options (``REPLACE``, ``ABSTTL``, ``IDLETIME``, ``FREQ``),
then an existing key (``BUSYKEY``), then the TTL, then version and checksum, then the body.
It is propagated with an absolute deadline (the TTL made absolute and ``ABSTTL`` appended),
so replaying the AOF later restores the same deadline; a TTL already in the past restores
nothing and, when REPLACE removed a key, propagates ``DEL``.  IDLETIME and FREQ are
validated; access times are not tracked here, so they have no other effect.  Keyspace
notification: ``restore`` (and ``del`` for the expired-on-arrival replacement).
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..errors import CommandError
from ..keyspace import now_ms
from ..rdb import Encodings, RdbError, dump_payload, load_payload, payload_is_valid
from ..resp import OK
from . import command
from .args import INT64_MIN, parse_int
from .keys import notify, read_key, type_name

BUSYKEY = "BUSYKEY Target key name already exists."
BAD_PAYLOAD = "ERR DUMP payload version or checksum are wrong"
BAD_DATA = "ERR Bad data format"
INVALID_TTL = "ERR Invalid TTL value, must be >= 0"
INVALID_IDLETIME = "ERR Invalid IDLETIME value, must be >= 0"
INVALID_FREQ = "ERR Invalid FREQ value, must be >= 0 and <= 255"
LFU_MAX = 255

# The config the thresholds were last read from, and those thresholds: the config is a
# frozen struct swapped whole by CONFIG SET, so its identity says when to read again.
_encodings_cache: list[Any] = [None, Encodings()]


def encodings(config: Any) -> Encodings:
    """The encoding thresholds and ``rdbcompression`` of the config in force."""
    if _encodings_cache[0] is not config:
        _encodings_cache[1] = Encodings.from_config(config)
        _encodings_cache[0] = config
    return _encodings_cache[1]


def dump(ctx, argv):
    value = read_key(ctx, argv[1])
    if value is None:
        return None
    try:
        return dump_payload(value, encodings(ctx.engine.config))
    except RdbError:
        raise CommandError(
            f"ERR DUMP of a value of type '{type_name(ctx, value)}' is not supported") from None


def _wrap_int64(number: int) -> int:
    """What C's int64 addition leaves of an overflowing sum (RESTORE adds without a check)."""
    return (number - INT64_MIN) % (1 << 64) + INT64_MIN


def restore(ctx, argv):
    replace = absttl = False
    idle = freq = -1
    index = 4
    while index < len(argv):
        option = argv[index].lower()
        more = len(argv) - index - 1
        if option == b"replace":
            replace = True
        elif option == b"absttl":
            absttl = True
        elif option == b"idletime" and more >= 1 and freq == -1:
            idle = parse_int(argv[index + 1])
            if idle < 0:
                raise CommandError(INVALID_IDLETIME)
            index += 1
        elif option == b"freq" and more >= 1 and idle == -1:
            freq = parse_int(argv[index + 1])
            if not 0 <= freq <= LFU_MAX:
                raise CommandError(INVALID_FREQ)
            index += 1
        else:
            raise CommandError(errors.SYNTAX)
        index += 1
    db = ctx.db
    key = argv[1]
    if not replace and db.get(key) is not None:
        raise CommandError(BUSYKEY)
    ttl = parse_int(argv[2])
    if ttl < 0:
        raise CommandError(INVALID_TTL)
    payload = argv[3]
    if not payload_is_valid(payload):
        raise CommandError(BAD_PAYLOAD)
    try:
        value = load_payload(payload)
    except RdbError:  # EmptyValue included: Redis refuses a value without elements too
        raise CommandError(BAD_DATA) from None
    deleted = db.delete(key) if replace else False
    if ttl and not absttl:
        ttl = _wrap_int64(ttl + now_ms())
    loading = ctx.client.is_loader
    if ttl and ttl <= now_ms() and not loading:
        # Already expired: nothing is created; a replaced key is gone, and that is the effect.
        if deleted:
            ctx.dirty += 1
            notify(ctx, b"del", key)
            ctx.propagate([b"DEL", key])
        else:
            ctx.propagated = True  # nothing changed: nothing to propagate
        return OK
    db.set(key, value)
    if ttl:
        db.set_expire(key, ttl)
    ctx.dirty += 1
    notify(ctx, b"restore", key)
    if ttl and not absttl:
        ctx.propagate([argv[0], key, b"%d" % ttl, *argv[3:], b"ABSTTL"])
    return OK


def register(registry):
    group = "generic"
    one = (1, 1, 1)
    registry.extend([
        command("dump", 2, "readonly", dump, one, group=group),
        command("restore", -4, "write denyoom", restore, one, group=group),
    ])


__all__ = ["dump", "encodings", "register", "restore"]
