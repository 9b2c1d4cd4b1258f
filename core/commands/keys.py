"""Generic key commands: DEL UNLINK EXISTS TYPE KEYS SCAN RANDOMKEY RENAME RENAMENX COPY TOUCH
MOVE OBJECT and the expiry family (EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME
PEXPIRETIME PERSIST).

Replies and error strings follow Redis 7.0 (``db.c``, ``expire.c``, ``object.c``).  Expiry
commands propagate what they did, not what was typed: a relative expiry becomes ``PEXPIREAT``
with the absolute time, so replaying the AOF later sets the same deadline; an expiry already
in the past deletes the key and propagates ``DEL``.  Keyspace notifications (generic class)
are Redis 7.0's: ``del``, ``rename_from``/``rename_to``, ``copy_to``, ``move_from``/``move_to``
(in each database), ``expire``, ``persist``; ``new`` comes from ``Database.set``.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from .. import errors
from ..encodings import carry, hash_is_compact, is_promoted, set_is_intset, thresholds
from ..errors import CommandError
from ..glob import compile_glob
from ..keyspace import TYPE_NAMES, now_ms
from ..pubsub import notify_keyspace_event
from ..resp import OK, Status
from . import command
from .args import INT64_MAX, INT64_MIN, help_reply, parse_c_int, parse_int

# --- value types and encodings -------------------------------------------------------------


def type_name(ctx, value: Any) -> str:
    """TYPE's answer: built-in types by class, anything else asks the plugins."""
    name = TYPE_NAMES.get(value.__class__)
    if name is not None:
        return name
    if value.__class__.__name__ == "ZSet":
        return "zset"
    return ctx.engine.hook.trioredis_value_type(value=value) or "none"


EMBSTR_LIMIT = 44
SHARED_INTEGERS = 10000


def _as_long(raw: bytes) -> int | None:
    """The integer a string encodes in Redis's ``string2ll`` sense, or None."""
    if not raw or len(raw) > 20:
        return None
    digits = raw[1:] if raw[:1] == b"-" else raw
    if not digits.isdigit() or (digits[:1] == b"0" and len(digits) > 1) or raw == b"-0":
        return None
    value = int(raw)
    return value if INT64_MIN <= value <= INT64_MAX else None


def object_encoding(value: Any, config: Any = None, promoted: bool = False) -> str:
    """What OBJECT ENCODING would answer for this value in Redis 7.0, with the thresholds of
    ``config`` (Redis's defaults without one) and, for a hash or set, ``promoted``: whether
    its key's history made Redis convert it for good (:mod:`trioredis.encodings`).

    Strings are judged by their bytes (:func:`key_encoding` knows the ones Redis edited in
    place); a sorted set carries its own history (:attr:`ZSet.compact`)."""
    kind = value.__class__
    if kind is bytes:
        if _as_long(value) is not None:
            return "int"
        if value[:4] == b"HYLL" and len(value) >= 16:
            return "raw"  # an HLL: the PF commands make their string raw whatever its size
        return "embstr" if len(value) <= EMBSTR_LIMIT else "raw"
    if kind is deque:
        return "quicklist"  # 7.0 encodes every list as a quicklist (listpack lists are 7.2)
    if kind is dict:
        if not promoted and hash_is_compact(value, thresholds(config)):
            return "listpack"
        return "hashtable"
    if kind is set:
        if not promoted and set_is_intset(value, thresholds(config)):
            return "intset"
        return "hashtable"  # 7.0 has no listpack sets (7.2 does)
    if kind.__name__ == "ZSet":
        return "listpack" if value.compact else "skiplist"
    if kind.__name__ == "Stream":
        return "stream"
    return "raw"


def key_encoding(ctx, key: bytes, value: Any) -> str:
    """OBJECT ENCODING of ``value``, found at ``key``: a hash or set is a hash table exactly
    when its key is promoted, as every way a key gets a hash table marks it
    (:mod:`trioredis.encodings`), so a compact value stays compact after a threshold is
    lowered, until a write converts it, as in Redis; a string is ``raw`` when its key is
    promoted (edited in place); other types as :func:`object_encoding`."""
    kind = value.__class__
    if kind is dict:
        return "hashtable" if is_promoted(ctx.db, key) else "listpack"
    if kind is set:
        # An intset holds integers only, whatever the thresholds: checked, not assumed.
        if is_promoted(ctx.db, key) or any(_as_long(member) is None for member in value):
            return "hashtable"
        return "intset"
    if kind is bytes and is_promoted(ctx.db, key):
        return "raw"  # edited in place (APPEND, SETRANGE, SETBIT...): trioredis.encodings
    return object_encoding(value, ctx.config)


def typed_value(ctx, key: bytes, kind: type, read: bool = False) -> Any:
    """The value of class ``kind`` at ``key`` (None when missing; WRONGTYPE for another
    type).  ``read`` is Redis's lookupKeyRead (:func:`read_key`): a keyspace hit or miss for
    INFO and, on a miss, the ``keymiss`` event, which the lookups of writing commands do not
    make."""
    value = read_key(ctx, key) if read else ctx.db.get(key)
    if value is not None and value.__class__ is not kind:
        raise CommandError(errors.WRONGTYPE)
    return value


def read_key(ctx, key: bytes, touch: bool = True) -> Any:
    """The value at ``key`` for a command that reads it (Redis's ``lookupKeyRead``): counts a
    keyspace hit or miss for INFO, as Redis does for reads and not for writes, and a miss
    publishes the ``keymiss`` event (class ``m``).  ``touch=False`` is Redis's
    LOOKUP_NOTOUCH: the key's LRU/LFU access time stays."""
    value = ctx.db.get(key) if touch else ctx.db.peek(key)
    stats = ctx.engine.stats
    if value is None:
        stats.keyspace_misses += 1
        if ctx.engine.config.notify_keyspace_events:
            notify_key_miss(ctx, key)
    else:
        stats.keyspace_hits += 1
    return value


def notify_key_miss(ctx, key: bytes) -> None:
    """``keymiss`` on ``__keyspace@<db>__:<key>`` / ``__keyevent@<db>__:keymiss`` (class
    ``m``, which ``A`` does not include), for a read that found no key."""
    notify_keyspace_event(ctx.engine, "m", b"keymiss", key, ctx.db.index)


def copy_value(value: Any) -> Any:
    """An independent copy of a value (COPY): containers are copied, members shared (they
    are immutable bytes)."""
    kind = value.__class__
    if kind is bytes:
        return value
    if kind is deque:
        return deque(value)
    if kind is dict:
        return dict(value)
    if kind is set:
        return set(value)
    if hasattr(value, "copy"):
        return value.copy()
    return copy.deepcopy(value)


def notify(ctx, event: bytes, key: bytes, db=None) -> None:
    """A generic-class keyspace notification (``del``, ``rename_from``, ``expire``...) for
    ``key`` in ``db`` (the client's database by default); one attribute test when
    ``notify-keyspace-events`` is off."""
    if ctx.engine.config.notify_keyspace_events:
        index = ctx.db.index if db is None else db.index
        notify_keyspace_event(ctx.engine, "g", event, key, index)


# --- DEL UNLINK EXISTS TOUCH TYPE RANDOMKEY --------------------------------------------------


def _delete_keys(ctx, argv, lazy: bool):
    db = ctx.db
    deleted = 0
    keyspace = ctx.keyspace
    keyspace.lazy_del = lazy  # big values go to the lazy freer (trioredis.memory.LazyFree)
    try:
        for key in argv[1:]:
            if db.delete(key):
                deleted += 1
                notify(ctx, b"del", key)
    finally:
        keyspace.lazy_del = None
    ctx.dirty += deleted
    return deleted


def del_(ctx, argv):
    return _delete_keys(ctx, argv, ctx.config.lazyfree_lazy_user_del)


def unlink(ctx, argv):
    return _delete_keys(ctx, argv, True)


def exists(ctx, argv):
    return sum(1 for key in argv[1:] if read_key(ctx, key, touch=False) is not None)


def type_(ctx, argv):
    value = read_key(ctx, argv[1], touch=False)
    if value is None:
        return Status(b"none")
    return Status(type_name(ctx, value).encode())


def randomkey(ctx, argv):
    return ctx.db.random_key()


# --- KEYS and SCAN -----------------------------------------------------------------------


def keys(ctx, argv):
    pattern = argv[1]
    db = ctx.db
    current = now_ms()
    expires = db.expires
    live = [k for k in db.data if (when := expires.get(k)) is None or when > current]
    if pattern == b"*":
        return live
    match = compile_glob(pattern).matches
    return [key for key in live if match(key)]


class ScanSnapshots:
    """Cursors for SCAN: a cursor names a snapshot of the keys taken when the scan started
    (cursor 0) and a position in it.

    This gives Redis's guarantee (every key present from the start to the end of a scan is
    returned at least once) without Redis's reverse-binary walk of hash buckets, which a
    Python dict does not expose.  Keys added during the scan may be missed; deleted ones are
    skipped.  The cursor is ``snapshot_id << 32 | position``; a small LRU bounds memory; a
    cursor whose snapshot was evicted (or a made-up cursor) continues over a fresh snapshot,
    so a scan always terminates."""

    MAX_SNAPSHOTS = 16

    def __init__(self) -> None:
        self.snapshots: OrderedDict[int, list[Any]] = OrderedDict()
        self._ids = itertools.count(1)

    def step(self, cursor: int, take_snapshot, count: int) -> tuple[int, list[Any]]:
        """Advance a scan: (next cursor, up to ``count`` snapshot entries to consider)."""
        snapshot_id, position = cursor >> 32, cursor & 0xFFFFFFFF
        snapshot = self.snapshots.get(snapshot_id) if cursor else None
        if snapshot is None:
            snapshot = take_snapshot()
            snapshot_id = next(self._ids) % 0x7FFFFFFF + 1  # 1..2**31-1: cursor fits 63 bits
            self.snapshots[snapshot_id] = snapshot
            while len(self.snapshots) > self.MAX_SNAPSHOTS:
                self.snapshots.popitem(last=False)
        else:
            self.snapshots.move_to_end(snapshot_id)
        end = position + count
        batch = snapshot[position:end]
        if end >= len(snapshot):
            self.snapshots.pop(snapshot_id, None)
            return 0, batch
        return snapshot_id << 32 | end, batch


def scan_snapshots(ctx) -> ScanSnapshots:
    """The server's SCAN cursors (built with the engine)."""
    return ctx.engine.scan_snapshots


def parse_cursor(raw: bytes) -> int:
    """A SCAN cursor as ``strtoul`` reads it: digits, or a negative number wrapping around."""
    try:
        value = int(raw)
    except ValueError:
        raise CommandError("ERR invalid cursor") from None
    if not raw or raw[:1] in (b" ", b"+") or raw[-1:].isspace() or b"_" in raw:
        raise CommandError("ERR invalid cursor")
    if value < 0:
        value += 2**64
    if not 0 <= value < 2**64:
        raise CommandError("ERR invalid cursor")
    return value


def parse_scan_options(argv: list[bytes], index: int, allow_type: bool = False):
    """SCAN/HSCAN/SSCAN/ZSCAN options from ``argv[index:]``: (pattern or None, count, type or
    None), with Redis's errors."""
    pattern = None
    count = 10
    kind = None
    while index < len(argv):
        option = argv[index].lower()
        remaining = len(argv) - index - 1
        if option == b"count" and remaining >= 1:
            count = parse_int(argv[index + 1])
            if count < 1:
                raise CommandError(errors.SYNTAX)
        elif option == b"match" and remaining >= 1:
            pattern = argv[index + 1]
            if pattern == b"*":
                pattern = None
        elif option == b"type" and remaining >= 1 and allow_type:
            kind = argv[index + 1].decode("utf-8", "replace").lower()
        else:
            raise CommandError(errors.SYNTAX)
        index += 2
    return pattern, count, kind


def scan_collection(ctx, argv: list[bytes], cursor: int, members: Callable[[], list],
                    small: list | None) -> tuple[bytes, list, Callable | None]:
    """HSCAN/SSCAN/ZSCAN once the key is found: the next cursor, the batch of members to
    answer from, and the MATCH test (None without MATCH).  ``small`` is the whole collection
    when Redis keeps it in a small encoding and answers it in one go with cursor 0; else a
    snapshot of ``members()`` is walked COUNT at a time (see ScanSnapshots)."""
    pattern, count, _ = parse_scan_options(argv, 3)
    if small is not None:
        next_cursor, batch = 0, small
    else:
        next_cursor, batch = scan_snapshots(ctx).step(cursor, members, count)
    match = compile_glob(pattern).matches if pattern is not None else None
    return b"%d" % next_cursor, batch, match


def scan(ctx, argv):
    cursor = parse_cursor(argv[1])
    pattern, count, kind = parse_scan_options(argv, 2, allow_type=True)
    db = ctx.db
    next_cursor, batch = scan_snapshots(ctx).step(cursor, lambda: list(db.data), count)
    match = compile_glob(pattern).matches if pattern is not None else None
    found = []
    for key in batch:
        value = db.get(key)
        if value is None:
            continue
        if match is not None and not match(key):
            continue
        if kind is not None and type_name(ctx, value) != kind:
            continue
        found.append(key)
    return [b"%d" % next_cursor, found]


# --- RENAME COPY MOVE ----------------------------------------------------------------------


def _move_key(db, source: bytes, target_db, target: bytes, value: Any) -> None:
    """RENAME and MOVE: ``value``, found at ``source`` in ``db``, goes to ``target`` in
    ``target_db`` with its TTL."""
    expire = db.expires.get(source)
    promoted = is_promoted(db, source)
    db.delete(source)
    target_db.set(target, value)
    carry(target_db, target, promoted)
    if expire is not None:
        target_db.set_expire(target, expire)


def _rename(ctx, argv, only_if_absent: bool):
    db = ctx.db
    source, target = argv[1], argv[2]
    value = db.get(source)
    if value is None:
        raise CommandError(errors.NO_SUCH_KEY)
    if source == target:
        return 0 if only_if_absent else OK
    if db.get(target) is not None:
        if only_if_absent:
            return 0
        db.delete(target)
    _move_key(db, source, db, target, value)
    ctx.dirty += 1
    notify(ctx, b"rename_from", source)
    notify(ctx, b"rename_to", target)
    return 1 if only_if_absent else OK


def rename(ctx, argv):
    return _rename(ctx, argv, False)


def renamenx(ctx, argv):
    return _rename(ctx, argv, True)


def _db_index(ctx, raw: bytes):
    """A database argument (COPY DB, MOVE): Redis reads it as a C int."""
    index = parse_c_int(raw)
    if not 0 <= index < len(ctx.keyspace):
        raise CommandError(errors.INVALID_DB_INDEX)
    return ctx.keyspace[index]


def copy_(ctx, argv):
    source_key, target_key = argv[1], argv[2]
    target_db = ctx.db
    replace = False
    index = 3
    while index < len(argv):
        option = argv[index].lower()
        if option == b"replace":
            replace = True
            index += 1
        elif option == b"db" and index + 1 < len(argv):
            target_db = _db_index(ctx, argv[index + 1])
            index += 2
        else:
            raise CommandError(errors.SYNTAX)
    if target_db is ctx.db and source_key == target_key:
        raise CommandError(errors.SAME_OBJECT)
    value = read_key(ctx, source_key)
    if value is None:
        return 0
    if target_db.get(target_key) is not None:
        if not replace:
            return 0
        target_db.delete(target_key)
    target_db.set(target_key, copy_value(value))
    carry(target_db, target_key, is_promoted(ctx.db, source_key))
    expire = ctx.db.expires.get(source_key)
    if expire is not None:
        target_db.set_expire(target_key, expire)
    ctx.dirty += 1
    notify(ctx, b"copy_to", target_key, target_db)
    ctx.touch(target_key, target_db)
    return 1


def move(ctx, argv):
    target_db = _db_index(ctx, argv[2])
    db = ctx.db
    if target_db is db:
        raise CommandError(errors.SAME_OBJECT)
    key = argv[1]
    value = db.get(key)
    if value is None or target_db.get(key) is not None:
        return 0
    _move_key(db, key, target_db, key, value)
    ctx.dirty += 1
    notify(ctx, b"move_from", key)
    notify(ctx, b"move_to", key, target_db)
    ctx.touch(key, target_db)
    return 1


def touch(ctx, argv):
    """TOUCH: EXISTS that counts an access (LRU/LFU), as Redis's lookupKeyRead."""
    return sum(1 for key in argv[1:] if read_key(ctx, key) is not None)


# --- OBJECT --------------------------------------------------------------------------------

_OBJECT_HELP = [
    b"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"ENCODING <key>",
    b"    Return the kind of internal representation used in order to store the value",
    b"    associated with a <key>.",
    b"FREQ <key>",
    b"    Return the access frequency index of the <key>. The returned integer is",
    b"    proportional to the logarithm of the recent access frequency of the key.",
    b"IDLETIME <key>",
    b"    Return the idle time of the <key>, that is the approximated number of",
    b"    seconds elapsed since the last access to the key.",
    b"REFCOUNT <key>",
    b"    Return the number of references of the value associated with the specified",
    b"    <key>.",
    b"HELP",
    b"    Prints this help.",
]

_LFU_SELECTED = (
    "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when "
    "switching between policies at runtime LRU and LFU data will take some time to adjust."
)
_LFU_NOT_SELECTED = (
    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
    "that when switching between policies at runtime LRU and LFU data will take some time "
    "to adjust."
)


def object_(ctx, argv):
    sub = argv[1].lower()
    if sub == b"help":
        if len(argv) != 2:
            raise CommandError(errors.wrong_arity("object|help"))
        return help_reply(_OBJECT_HELP)
    if sub not in (b"encoding", b"refcount", b"idletime", b"freq"):
        raise CommandError(errors.unknown_subcommand(argv[1], "OBJECT"))
    if len(argv) != 3:
        raise CommandError(errors.wrong_arity(f"object|{sub.decode()}"))
    # Counted as a read, but no keymiss event and no access: Redis looks up with
    # LOOKUP_NONOTIFY | LOOKUP_NOTOUCH here.
    value = ctx.db.peek(argv[2])
    if value is None:
        ctx.engine.stats.keyspace_misses += 1
        return None
    ctx.engine.stats.keyspace_hits += 1
    lfu = ctx.config.maxmemory_policy.endswith("lfu")
    if sub == b"encoding":
        return key_encoding(ctx, argv[2], value).encode()
    if sub == b"refcount":
        if value.__class__ is bytes:
            number = _as_long(value)
            if number is not None and 0 <= number < SHARED_INTEGERS:
                return 2147483647  # Redis's shared integers are never freed
        return 1
    evictor = ctx.engine.evictor  # access times: trioredis.eviction
    if sub == b"idletime":
        if lfu:
            raise CommandError(_LFU_SELECTED)
        return evictor.idle_ms(ctx.db, argv[2]) // 1000
    if not lfu:
        raise CommandError(_LFU_NOT_SELECTED)
    return evictor.frequency(ctx.db, argv[2])


def register(registry):
    # The expiry commands live in their own module; they are generic key commands all the same.
    from .expiry import (
        expire,
        expireat,
        expiretime,
        persist,
        pexpire,
        pexpireat,
        pexpiretime,
        pttl,
        ttl,
    )

    group = "generic"
    registry.extend([
        command("del", -2, "write", del_, group=group),
        command("unlink", -2, "write fast", unlink, group=group),
        command("exists", -2, "readonly fast", exists, group=group),
        command("touch", -2, "readonly fast", touch, group=group),
        command("type", 2, "readonly fast", type_, group=group),
        dataclasses.replace(command("keys", 2, "readonly", keys, group=group),
                            categories=frozenset({"keyspace", "read", "slow", "dangerous"})),
        command("scan", -2, "readonly", scan, group=group),
        command("randomkey", 1, "readonly", randomkey, group=group),
        command("rename", 3, "write", rename, group=group),
        command("renamenx", 3, "write fast", renamenx, group=group),
        command("copy", -3, "write denyoom", copy_, group=group),
        command("move", 3, "write fast", move, group=group),
        command("object", -2, "readonly", object_, group=group,
                subcommands={"encoding": 3, "refcount": 3, "idletime": 3, "freq": 3, "help": 2}),
        command("expire", -3, "write fast", expire, group=group),
        command("pexpire", -3, "write fast", pexpire, group=group),
        command("expireat", -3, "write fast", expireat, group=group),
        command("pexpireat", -3, "write fast", pexpireat, group=group),
        command("ttl", 2, "readonly fast", ttl, group=group),
        command("pttl", 2, "readonly fast", pttl, group=group),
        command("expiretime", 2, "readonly fast", expiretime, group=group),
        command("pexpiretime", 2, "readonly fast", pexpiretime, group=group),
        command("persist", 2, "write fast", persist, group=group),
    ])
