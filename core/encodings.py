"""The compact encodings of hashes and sets as Redis 7.0 decides them: from the live
``hash-max-listpack-*`` / ``set-max-intset-entries`` (CONFIG SET changes them), and with the
history Redis has, since it converts one way only: a hash that outgrew its listpack stays a
hash table after it shrinks, a set that held a non-integer (or too many members) stays a hash
table after the culprits are removed.

That history is one set per database of *promoted* keys (:attr:`Database.promoted`): a key
joins it when a write adds to its hash or set what Redis would convert on
(:func:`note_write`, called by the engine after HSET, HMSET, HSETNX, HINCRBY, HINCRBYFLOAT,
SADD and SMOVE), and leaves it when the key is deleted, expires or gets a new value;
RENAME, MOVE and COPY carry it (:func:`carry`), as Redis moves or duplicates the object with
its encoding.  RESTORE and the set STORE commands build a value by shape, as Redis does, and
one born a hash table joins the set at once.  So the set is the truth: a hash or set whose
key is outside it is compact (``keys.key_encoding``, DUMP and dump.rdb read it so), even past
a threshold lowered since, until a write converts it, as in Redis.

What Redis checks when adding, and so what marks a key here: HSET/HMSET/HSETNX, HINCRBY and
HINCRBYFLOAT compare their field and value (or increment) arguments with
``hash-max-listpack-value`` (``hashTypeTryConversion``: the arguments, not the result), every
hash write compares the field count with ``hash-max-listpack-entries``.  SADD and SMOVE convert on a
member that is not an integer or on a member count past ``set-max-intset-entries``.

Strings share the set: a string key in it is ``raw`` whatever its bytes (:func:`mark_raw`).
Redis edits a string in place only after making it a private raw copy (APPEND and SETRANGE
on an existing key, SETRANGE creating one, SETBIT, BITFIELD with a write, BITOP's result),
so "abc" APPENDed to stays raw, not embstr, and "12" is raw, not int, until the key gets a new
value (SET, INCR... replace the object).  Not kept: INCRBYFLOAT's result, which Redis stores
unencoded (embstr, so "3" is not int there); reads by content here.

Sorted sets keep their history in the value (:attr:`ZSet.compact`); their thresholds are
set module-wide by :func:`apply_zset_thresholds`.

Loading: an AOF replays its writes through :func:`note_write` as Redis replays them; after a
snapshot load (RDB or native), which builds values by shape as Redis's loader does, the
values born hash tables are marked (:func:`mark_by_shape`).

A way of building a hash table that did not mark its key would show as a compact encoding:
the differential tests (tests/compat/test_differential_encodings.py) run every writer above
against redis-server to catch one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import zset
from .rdb import DEFAULT_ENCODINGS, Encodings
from .rdb.compact import as_int64

if TYPE_CHECKING:
    from .keyspace import Database

# The config the thresholds were last read from, and those thresholds: the config is a
# frozen struct swapped whole by CONFIG SET, so its identity says when to read again.
_cache: list[Any] = [None, DEFAULT_ENCODINGS]

# Hash writers: the index of the first argument Redis compares with hash-max-listpack-value.
_HASH_WRITERS: dict[str, int] = {
    "hset": 2, "hmset": 2, "hsetnx": 2, "hincrbyfloat": 2, "hincrby": 2,
}
# Set writers: (the key that receives members, the index of the first member).
_SET_WRITERS: dict[str, tuple[int, int]] = {"sadd": (1, 2), "smove": (2, 3)}
# Commands that build a whole new value at argv[1] (by shape, as Redis builds it): a value
# that is born a hash table is promoted from birth, as it stays one when it shrinks.
_BUILDERS = frozenset(("sinterstore", "sunionstore", "sdiffstore", "restore", "restore-asking"))
# Every command :func:`note_write` wants to see (the engine's one membership test).
WRITERS = frozenset(_HASH_WRITERS) | frozenset(_SET_WRITERS) | _BUILDERS

Note = Callable[["Database", list[bytes], Any], None]


def thresholds(config: Any) -> Encodings:
    """The encoding thresholds (and ``rdbcompression``) of the config in force."""
    if _cache[0] is not config:
        _cache[1] = Encodings.from_config(config)
        _cache[0] = config
    return _cache[1]


def apply_zset_thresholds(config: Any) -> None:
    """Make new sorted-set writes follow ``zset-max-listpack-*`` of ``config``.  A sorted set
    keeps its own history (:attr:`ZSet.compact`, converted as members are added), so the
    thresholds are read by :mod:`trioredis.zset` as it adds: they are module-wide, which
    is one server per process (tests that start several in one process share them)."""
    enc = thresholds(config)
    zset.LISTPACK_ENTRIES = enc.zset_max_listpack_entries
    zset.LISTPACK_VALUE = enc.zset_max_listpack_value


def hash_is_compact(value: dict, enc: Encodings) -> bool:
    """Whether a hash of this shape is a listpack (ignoring history)."""
    if len(value) > enc.hash_max_listpack_entries:
        return False
    limit = enc.hash_max_listpack_value
    return all(len(field) <= limit and len(item) <= limit for field, item in value.items())


def set_is_intset(value: set, enc: Encodings) -> bool:
    """Whether a set of this shape is an intset (ignoring history)."""
    return len(value) <= enc.set_max_intset_entries and all(
        as_int64(member) is not None for member in value)


def _note_built(db: Database, argv: list[bytes], config: Any) -> None:
    """A value built whole at argv[1]: promoted when born a hash table."""
    enc = _cache[1] if _cache[0] is config else thresholds(config)
    key = argv[1]
    value = db.data.get(key)
    kind = value.__class__
    if (kind is dict and not hash_is_compact(value, enc)) or (
            kind is set and not set_is_intset(value, enc)):
        db.promoted.add(key)


def _hash_note(start: int, every: bool) -> Note:
    """The note of a hash writer whose compared arguments start at ``start``: all those
    after it (``every``: HSET, HMSET) or the two there (field and value or increment)."""

    def note(db: Database, argv: list[bytes], config: Any) -> None:
        key = argv[1]
        if key in db.promoted:
            return
        value = db.data.get(key)
        if value.__class__ is not dict:
            return
        enc = _cache[1] if _cache[0] is config else thresholds(config)
        if len(value) > enc.hash_max_listpack_entries:
            db.promoted.add(key)
            return
        limit = enc.hash_max_listpack_value
        if len(argv) == start + 2:  # one field and its value (or increment): no slice
            if len(argv[start]) > limit or len(argv[start + 1]) > limit:
                db.promoted.add(key)
        elif max(map(len, argv[start:] if every else argv[start:start + 2])) > limit:
            db.promoted.add(key)

    return note


def _set_note(key_index: int, start: int) -> Note:
    """The note of a set writer: the key receiving members at ``key_index``, the members
    from ``start``."""

    def note(db: Database, argv: list[bytes], config: Any) -> None:
        key = argv[key_index]
        if key in db.promoted:
            return
        value = db.data.get(key)
        if value.__class__ is not set:
            return
        enc = _cache[1] if _cache[0] is config else thresholds(config)
        if len(value) > enc.set_max_intset_entries:
            db.promoted.add(key)
            return
        if any(as_int64(member) is None for member in argv[start:]):
            db.promoted.add(key)

    return note


# What each writer does after a write that changed the dataset, by command name: the
# engine's one lookup per write (a specialised function each, so the hot HSET and SADD
# paths do no dispatch on the name).
NOTES: dict[str, Note] = {
    **{name: _hash_note(start, name in ("hset", "hmset")) for name, start in _HASH_WRITERS.items()},
    **{name: _set_note(*where) for name, where in _SET_WRITERS.items()},
    **dict.fromkeys(_BUILDERS, _note_built),
}


def note_write(db: Database, name: str, argv: list[bytes], config: Any) -> None:
    """After a write of ``name`` that changed the dataset: mark its key promoted when what
    it added makes Redis convert the value to a hash table (a no-op for other commands)."""
    note = NOTES.get(name)
    if note is not None:
        note(db, argv, config)


def mark_by_shape(databases: Iterable[Database], config: Any) -> int:
    """After a snapshot load: every hash or set that loaded as a hash table (Redis loads by
    shape too) is promoted from birth, so it stays one when it shrinks.  Returns how many
    keys were marked."""
    enc = thresholds(config)
    marked = 0
    for db in databases:
        promoted = db.promoted
        for key, value in db.data.items():
            kind = value.__class__
            if (kind is dict and not hash_is_compact(value, enc)) or (
                    kind is set and not set_is_intset(value, enc)):
                promoted.add(key)
                marked += 1
    return marked


def carry(target_db: Database, target: bytes, promoted: bool) -> None:
    """RENAME, MOVE and COPY: the target keeps the source's encoding history (``promoted``:
    whether the source was promoted, read before it was deleted)."""
    if promoted:
        target_db.promoted.add(target)


def mark_raw(db: Database, key: bytes) -> None:
    """A string Redis edited in place (made a raw copy of): OBJECT ENCODING ``raw`` until the
    key gets a new value."""
    db.promoted.add(key)


def is_promoted(db: Database, key: bytes) -> bool:
    return key in db.promoted


__all__ = ["NOTES", "WRITERS", "apply_zset_thresholds", "carry", "hash_is_compact", "is_promoted",
           "mark_by_shape", "mark_raw", "note_write",
           "set_is_intset", "thresholds"]
