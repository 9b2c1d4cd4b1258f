"""DEBUG OBJECT's line, with Redis 7.0's fields: the value's RDB length (``serializedlength``,
what a save or DUMP writes for it), its LRU word and idle seconds, the shared-integer
refcount, and a list's quicklist shape (nodes as Redis fills them, listpack bytes)."""

from __future__ import annotations

from collections import deque
from typing import Any

from .encodings import is_promoted, thresholds
from .eviction import lru_idle_ms
from .rdb import RdbError, encode_value
from .rdb.values import quicklist_nodes

# Redis keeps one object for each integer below 10000 (OBJ_SHARED_INTEGERS) and shows it
# with OBJ_SHARED_REFCOUNT, unless an LRU/LFU policy needs a word of its own per key.
_SHARED_INTEGERS = 10000
_SHARED_REFCOUNT = 2147483647
_PER_KEY_ACCESS_POLICIES = ("allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-lfu")


def _shared_integer(value: Any, config: Any) -> bool:
    if value.__class__ is not bytes or not value.isdigit() or len(value) > 4:
        return False
    if value[:1] == b"0" and len(value) > 1:
        return False
    return not (config.maxmemory and config.maxmemory_policy in _PER_KEY_ACCESS_POLICIES)


def _quicklist_fields(value: deque, config: Any) -> str:
    nodes = quicklist_nodes(value, config.list_max_listpack_size)
    used = sum(len(blob) for _kind, blob in nodes)
    return (f" ql_nodes:{len(nodes)} ql_avg_node:{len(value) / len(nodes):.2f}"
            f" ql_listpack_max:{config.list_max_listpack_size}"
            f" ql_compressed:{int(config.list_compress_depth != 0)} ql_uncompressed_size:{used}")


def describe(db: Any, key: bytes, value: Any, encoding: str, config: Any, evictor: Any) -> bytes:
    """The status line of DEBUG OBJECT for ``value`` at ``key``."""
    try:
        _type, payload = encode_value(value, thresholds(config), is_promoted(db, key))
        length = len(payload)
    except RdbError:  # a plugin's type has no RDB encoding
        length = 0
    word = db.access.get(key)
    if word is None:
        word = evictor.tracking_since
    idle = lru_idle_ms(word, evictor.keyspace.clock) // 1000
    refcount = _SHARED_REFCOUNT if _shared_integer(value, config) else 1
    extra = _quicklist_fields(value, config) if value.__class__ is deque and value else ""
    return (f"Value at:{id(value):#x} refcount:{refcount} encoding:{encoding} "
            f"serializedlength:{length} lru:{word} lru_seconds_idle:{idle}{extra}").encode()
