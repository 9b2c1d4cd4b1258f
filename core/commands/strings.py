"""String commands."""

from __future__ import annotations

from .. import errors
from ..errors import CommandError
from ..keyspace import now_ms
from ..resp import OK
from . import command
from .args import parse_int


def get(ctx, argv):
    value = ctx.db.get(argv[1])
    if value is None:
        ctx.engine.stats.keyspace_misses += 1
        return None
    if value.__class__ is not bytes:
        raise CommandError(errors.WRONGTYPE)
    ctx.engine.stats.keyspace_hits += 1
    return value


def parse_expire_options(argv: list[bytes], index: int, command_name: str,
                         allow: frozenset[bytes]) -> tuple[int | None, bool, dict[bytes, bool]]:
    """SET/GETEX options from ``argv[index:]``: (absolute expiry ms or None, KEEPTTL/PERSIST
    given, flags seen).  Refuses conflicting options with ERR syntax error, bad times with
    ERR invalid expire time."""
    expire_at = None
    keep = False
    flags: dict[bytes, bool] = {}
    seen_expire = False
    while index < len(argv):
        option = argv[index].upper()
        if option in (b"EX", b"PX", b"EXAT", b"PXAT") and option in allow and index + 1 < len(argv):
            if seen_expire or keep:
                raise CommandError(errors.SYNTAX)
            seen_expire = True
            amount = parse_int(argv[index + 1])
            if amount <= 0:
                raise CommandError(errors.INVALID_EXPIRE.format(command_name))
            if option == b"EX":
                if amount > (2**63 - 1) // 1000 - now_ms() // 1000:
                    raise CommandError(errors.INVALID_EXPIRE.format(command_name))
                expire_at = now_ms() + amount * 1000
            elif option == b"PX":
                if amount > 2**63 - 1 - now_ms():
                    raise CommandError(errors.INVALID_EXPIRE.format(command_name))
                expire_at = now_ms() + amount
            elif option == b"EXAT":
                if amount > (2**63 - 1) // 1000:
                    raise CommandError(errors.INVALID_EXPIRE.format(command_name))
                expire_at = amount * 1000
            else:
                expire_at = amount
            index += 2
        elif option in (b"KEEPTTL", b"PERSIST") and option in allow:
            if seen_expire or keep:
                raise CommandError(errors.SYNTAX)
            keep = True
            index += 1
        elif option in allow and option not in (b"EX", b"PX", b"EXAT", b"PXAT"):
            flags[option] = True
            index += 1
        else:
            raise CommandError(errors.SYNTAX)
    return expire_at, keep, flags


_SET_OPTIONS = frozenset({b"EX", b"PX", b"EXAT", b"PXAT", b"KEEPTTL", b"NX", b"XX", b"GET"})


def set_(ctx, argv):
    key, value = argv[1], argv[2]
    if len(argv) == 3:
        ctx.db.set(key, value)
        ctx.dirty += 1
        return OK
    expire_at, keep_ttl, flags = parse_expire_options(argv, 3, "set", _SET_OPTIONS)
    if flags.get(b"NX") and flags.get(b"XX"):
        raise CommandError(errors.SYNTAX)
    db = ctx.db
    old = db.get(key)
    if flags.get(b"GET") and old is not None and old.__class__ is not bytes:
        raise CommandError(errors.WRONGTYPE)
    reply = old if flags.get(b"GET") else OK
    if (flags.get(b"NX") and old is not None) or (flags.get(b"XX") and old is None):
        return old if flags.get(b"GET") else None
    db.set(key, value, keep_ttl=keep_ttl)
    ctx.dirty += 1
    if expire_at is not None:
        if expire_at <= now_ms():
            # Already in the past (EXAT/PXAT): Redis deletes the key and propagates DEL.
            db.delete(key)
            ctx.propagate([b"DEL", key])
            return reply
        db.set_expire(key, expire_at)
        ctx.propagate([b"SET", key, value])
        ctx.propagate([b"PEXPIREAT", key, b"%d" % expire_at])
    elif keep_ttl:
        ctx.propagate([b"SET", key, value, b"KEEPTTL"])
    else:
        ctx.propagate([b"SET", key, value])
    return reply


def register(registry):
    group = "string"
    registry.extend([
        command("get", 2, "readonly fast", get, (1, 1, 1), group=group),
        command("set", -3, "write denyoom", set_, (1, 1, 1), group=group),
    ])
