"""DUMP, RESTORE and MIGRATE: a value as Redis's serialized payload, back, and over to another
server (Redis 7.0 ``cluster.c``).

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

MIGRATE sends ``AUTH``/``SELECT`` and one ``RESTORE`` per key (remaining TTL, ``REPLACE``
when asked) in one write to the target, then reads the replies; keys the target accepted are
deleted here unless ``COPY``, notified as ``del`` and propagated as one ``DEL``.  As in
Redis, it blocks the server until the target answered or the timeout passed (every socket
operation is bounded by it); unlike Redis, it opens a new connection each time instead of
keeping one cached for 10 seconds, so it sends ``SELECT`` every time.
"""

from __future__ import annotations

import dataclasses
import re
import socket
from typing import Any

from .. import errors
from ..errors import CommandError
from ..keyspace import now_ms
from ..rdb import Encodings, RdbError, dump_payload, load_payload, payload_is_valid
from ..resp import OK, Status
from . import command
from .args import INT64_MIN, parse_int
from .keys import is_promoted, notify, read_key, type_name

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
        return dump_payload(value, encodings(ctx.engine.config), is_promoted(ctx.db, argv[1]))
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
    if not payload_is_valid(payload, not ctx.engine.skip_checksum_validation):
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


# --- MIGRATE -------------------------------------------------------------------------------

MIGRATE_KEYS_NOT_EMPTY = (
    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string")
MIGRATE_CONNECT_ERROR = "IOERR error or timeout connecting to the client"
MIGRATE_IO_ERROR = "IOERR error or timeout {} to target instance"
MIGRATE_TARGET_ERROR = "ERR Target instance replied with error: {}"
# A timeout of 0 or less means this many ms, as in Redis.
MIGRATE_DEFAULT_TIMEOUT_MS = 1000
# Requests go out in pieces of this size, as Redis writes them.
MIGRATE_WRITE_CHUNK = 64 * 1024
# The longest reply line read back (Redis reads each reply into a 1 KB buffer).
MIGRATE_REPLY_LINE = 1024


def _resp_command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


class _TargetError(Exception):
    """The connection to the target failed: ``writing`` or ``reading``."""

    def __init__(self, when: str) -> None:
        super().__init__(when)
        self.when = when


class _Target:
    """A blocking connection to the target instance, every operation bounded by the timeout
    (MIGRATE blocks the server while it runs, as it does in Redis)."""

    def __init__(self, host: str, port: int, timeout_ms: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_ms / 1000)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        try:
            for start in range(0, len(data), MIGRATE_WRITE_CHUNK):
                self.sock.sendall(data[start:start + MIGRATE_WRITE_CHUNK])
        except OSError:
            raise _TargetError("writing") from None

    def read_line(self) -> bytes:
        """One reply line without its CRLF (a status or an error: RESTORE, AUTH and SELECT
        answer nothing else)."""
        try:
            while b"\n" not in self.buffer:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise _TargetError("reading")
                self.buffer += chunk
                if len(self.buffer) > MIGRATE_REPLY_LINE and b"\n" not in self.buffer:
                    raise _TargetError("reading")
        except OSError:
            raise _TargetError("reading") from None
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.rstrip(b"\r")


def _atoi_port(raw: bytes) -> int:
    """The port as Redis reads it (C's atoi, then a 16-bit port): leading digits, else 0."""
    match = re.match(rb"\s*([+-]?\d+)", raw)
    return int(match.group(1)) & 0xFFFF if match else 0


def migrate(ctx, argv):
    copy = replace = False
    username = password = None
    first_key, count = 3, 1
    index = 6
    while index < len(argv):
        option = argv[index].lower()
        more = len(argv) - 1 - index
        if option == b"copy":
            copy = True
        elif option == b"replace":
            replace = True
        elif option == b"auth":
            if not more:
                raise CommandError(errors.SYNTAX)
            index += 1
            password = argv[index]
        elif option == b"auth2":
            if more < 2:
                raise CommandError(errors.SYNTAX)
            username, password = argv[index + 1], argv[index + 2]
            index += 2
        elif option == b"keys":
            if argv[3]:
                raise CommandError(MIGRATE_KEYS_NOT_EMPTY)
            first_key, count = index + 1, len(argv) - index - 1
            break
        else:
            raise CommandError(errors.SYNTAX)
        index += 1
    timeout = parse_int(argv[5])
    db_index = parse_int(argv[4])
    if timeout <= 0:
        timeout = MIGRATE_DEFAULT_TIMEOUT_MS
    found = []
    for key in argv[first_key:first_key + count]:
        value = read_key(ctx, key)
        if value is not None:
            found.append((key, value))
    if not found:
        return Status(b"NOKEY")
    try:
        target = _Target(argv[1].decode("utf-8", "replace"), _atoi_port(argv[2]), timeout)
    except ConnectionRefusedError:
        # Redis connects without blocking and learns of the refusal only when it writes.
        raise CommandError(MIGRATE_IO_ERROR.format("writing")) from None
    except (OSError, CommandError, ValueError, OverflowError):
        raise CommandError(MIGRATE_CONNECT_ERROR) from None
    try:
        return _migrate_over(ctx, target, found, db_index, copy, replace, username, password)
    except _TargetError as error:
        raise CommandError(MIGRATE_IO_ERROR.format(error.when)) from None
    finally:
        target.close()


def _migrate_over(ctx, target: _Target, found: list[tuple[bytes, Any]], db_index: int,
                  copy: bool, replace: bool, username: bytes | None,
                  password: bytes | None) -> Any:
    """Send AUTH, SELECT and one RESTORE per key in one write, then read the replies; keys
    the target took are deleted here unless COPY, and that is propagated as one DEL."""
    requests = []
    if password is not None:
        auth = (b"AUTH", username, password) if username is not None else (b"AUTH", password)
        requests.append(_resp_command(*auth))
    requests.append(_resp_command(b"SELECT", b"%d" % db_index))
    enc = encodings(ctx.engine.config)
    db = ctx.db
    sent = []
    current = now_ms()
    for key, value in found:
        ttl = 0
        when = db.expires.get(key)
        if when is not None:
            ttl = when - current
            if ttl < 0:
                continue
            ttl = max(ttl, 1)
        try:
            payload = dump_payload(value, enc)
        except RdbError:
            raise CommandError(
                f"ERR MIGRATE of a value of type '{type_name(ctx, value)}' is not supported"
            ) from None
        restore_args = [b"RESTORE", key, b"%d" % ttl, payload] + ([b"REPLACE"] if replace else [])
        requests.append(_resp_command(*restore_args))
        sent.append(key)
    target.send(b"".join(requests))
    auth_reply = target.read_line() if password is not None else b"+OK"
    select_reply = target.read_line()
    target_error = None
    moved = []
    for key in sent:
        reply = target.read_line()
        if auth_reply[:1] == b"-" or select_reply[:1] == b"-" or reply[:1] == b"-":
            if target_error is None:
                bad = (auth_reply if auth_reply[:1] == b"-"
                       else select_reply if select_reply[:1] == b"-" else reply)
                target_error = bad[1:].decode("utf-8", "replace")
        elif not copy:
            db.delete(key)
            ctx.touch(key)
            notify(ctx, b"del", key)
            ctx.dirty += 1
            moved.append(key)
    if moved:
        ctx.propagate([b"DEL", *moved])
    else:
        ctx.propagated = True  # nothing changed here: nothing to propagate
    if target_error is not None:
        raise CommandError(MIGRATE_TARGET_ERROR.format(target_error))
    return OK


def _dangerous(spec):
    """Redis puts RESTORE and MIGRATE in @dangerous without the admin flag."""
    return dataclasses.replace(spec, categories=spec.categories | {"dangerous"})


def register(registry):
    group = "generic"
    registry.extend([
        command("dump", 2, "readonly", dump, group=group),
        _dangerous(command("restore", -4, "write denyoom", restore, group=group)),
        _dangerous(command("migrate", -6, "write movablekeys", migrate, group=group)),
    ])


__all__ = ["dump", "encodings", "migrate", "register", "restore"]
