"""The expiry commands: EXPIRE and its three siblings (relative or absolute, seconds or
milliseconds, with NX/XX/GT/LT), TTL and its siblings, and PERSIST.

Registered with the other generic key commands by :func:`trioredis.commands.keys.register`.
"""

from __future__ import annotations

from .. import errors
from ..errors import CommandError
from ..keyspace import now_ms
from .args import INT64_MAX, parse_int
from .keys import notify, read_key


def _expire_generic(ctx, argv, base_ms: int, unit_ms: int):
    """EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT (expire.c ``expireGenericCommand``)."""
    name = argv[0].decode("utf-8", "replace").lower()
    nx = xx = gt = lt = False
    for raw in argv[3:]:
        option = raw.lower()
        if option == b"nx":
            nx = True
        elif option == b"xx":
            xx = True
        elif option == b"gt":
            gt = True
        elif option == b"lt":
            lt = True
        else:
            raise CommandError(errors.sanitize(f"ERR Unsupported option {raw.decode('utf-8', 'replace')}"))
    if nx and (xx or gt or lt):
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if gt and lt:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    when = parse_int(argv[2])
    invalid = errors.INVALID_EXPIRE.format(name)
    if unit_ms == 1000:
        if when > INT64_MAX // 1000 or when < -(INT64_MAX // 1000):
            raise CommandError(invalid)
        when *= 1000
    if when > INT64_MAX - base_ms:
        raise CommandError(invalid)
    when += base_ms
    db = ctx.db
    key = argv[1]
    if db.get(key) is None:
        return 0
    current = db.expires.get(key)
    if nx and current is not None:
        return 0
    if xx and current is None:
        return 0
    if gt and (current is None or when <= current):
        return 0  # a key without a TTL counts as an infinite TTL
    if lt and current is not None and when >= current:
        return 0
    ctx.dirty += 1
    if when <= now_ms() and not ctx.client.is_loader:
        # Not while loading: the file goes on to say what happened to the key.
        db.delete(key)
        notify(ctx, b"del", key)
        ctx.propagate([b"DEL", key])
        return 1
    db.set_expire(key, when)
    notify(ctx, b"expire", key)
    if argv[0].lower() != b"pexpireat":
        ctx.propagate([b"PEXPIREAT", key, b"%d" % when, *argv[3:]])
    return 1


def expire(ctx, argv):
    return _expire_generic(ctx, argv, now_ms(), 1000)


def pexpire(ctx, argv):
    return _expire_generic(ctx, argv, now_ms(), 1)


def expireat(ctx, argv):
    return _expire_generic(ctx, argv, 0, 1000)


def pexpireat(ctx, argv):
    return _expire_generic(ctx, argv, 0, 1)


def _ttl_generic(ctx, key: bytes, in_ms: bool, absolute: bool) -> int:
    db = ctx.db
    if read_key(ctx, key, touch=False) is None:
        return -2
    when = db.expires.get(key)
    if when is None:
        return -1
    remaining = max(0, when if absolute else when - now_ms())
    return remaining if in_ms else (remaining + 500) // 1000


def ttl(ctx, argv):
    return _ttl_generic(ctx, argv[1], False, False)


def pttl(ctx, argv):
    return _ttl_generic(ctx, argv[1], True, False)


def expiretime(ctx, argv):
    return _ttl_generic(ctx, argv[1], False, True)


def pexpiretime(ctx, argv):
    return _ttl_generic(ctx, argv[1], True, True)


def persist(ctx, argv):
    db = ctx.db
    if db.get(argv[1]) is None:
        return 0
    if db.persist(argv[1]):
        ctx.dirty += 1
        notify(ctx, b"persist", argv[1])
        return 1
    return 0
