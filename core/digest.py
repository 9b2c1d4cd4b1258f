"""DEBUG DIGEST and DEBUG DIGEST-VALUE with Redis 7.0's algorithm, so a digest taken here
equals redis-server's for the same data (a replica of either kind, a migration, a restore
can be checked with one command on each side).

Two SHA-1 mixers: *xor* (``state ^= sha1(data)``: order does not matter, for the members of
sets, hashes and sorted sets and for the keys of a database) and *mix* (``state =
sha1(state ^ sha1(data))``: order matters, for list elements and stream entries).  Each key
starts from zero bytes, mixes its name, its type number, then its value; an expiry adds the
fixed text ``!!expire!!`` (its time is left out).  The dataset's digest mixes each non-empty
database's number, then xors each key's digest into it by its SHA-1.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from typing import Any

from .resp import format_double as format_score
from .stream import ID_MAX, Stream

# Redis's object type numbers (OBJ_STRING ... OBJ_STREAM).
_STRING, _LIST, _SET, _ZSET, _HASH, _MODULE, _STREAM = 0, 1, 2, 3, 4, 5, 6
_TYPE_BYTES = {kind: struct.pack(">I", kind) for kind in range(7)}
_EXPIRE_MARK = b"!!expire!!"
_ZERO = bytes(20)
_sha1 = hashlib.sha1


def _xor_into(state: bytearray, data: bytes) -> None:
    for index, byte in enumerate(_sha1(data).digest()):
        state[index] ^= byte


def _mix(state: bytearray, data: bytes) -> None:
    _xor_into(state, data)
    state[:] = _sha1(state).digest()


def _mixed(*parts: bytes) -> bytes:
    """A fresh 20-byte state with ``parts`` mixed in order (an element of a hash or zset)."""
    state = bytearray(_ZERO)
    for part in parts:
        _mix(state, part)
    return bytes(state)


def _value_into(state: bytearray, value: Any, plugin_commands: Any) -> None:
    kind = value.__class__
    if kind is bytes:
        _mix(state, _TYPE_BYTES[_STRING])
        _mix(state, value)
    elif kind is deque:
        _mix(state, _TYPE_BYTES[_LIST])
        for element in value:
            _mix(state, element)
    elif kind is set:
        _mix(state, _TYPE_BYTES[_SET])
        for member in value:
            _xor_into(state, member)
    elif kind is dict:
        _mix(state, _TYPE_BYTES[_HASH])
        for field, field_value in value.items():
            _xor_into(state, _mixed(field, field_value))
    elif kind is Stream:
        _mix(state, _TYPE_BYTES[_STREAM])
        for stream_id, fields in value.range(0, ID_MAX):
            _mix(state, b"%d.%d" % (stream_id >> 64, stream_id & 0xFFFFFFFFFFFFFFFF))
            for part in fields:
                _mix(state, part)
    elif kind.__name__ == "ZSet":
        _mix(state, _TYPE_BYTES[_ZSET])
        for member, score in value.items():
            _xor_into(state, _mixed(member, format_score(score)))
    else:  # a plugin's type (Redis's module types digest through their own callback)
        _mix(state, _TYPE_BYTES[_MODULE])
        module = bytearray(_ZERO)
        for argv in plugin_commands(value) or []:
            for argument in argv:
                _mix(module, argument)
        _xor_into(state, bytes(module))


def key_digest(key: bytes, value: Any, has_expire: bool, plugin_commands: Any) -> bytes:
    """The 20-byte digest of one key as DEBUG DIGEST folds it in (name, type, value,
    expiry)."""
    state = bytearray(_ZERO)
    _mix(state, key)
    _value_into(state, value, plugin_commands)
    if has_expire:
        _xor_into(state, _EXPIRE_MARK)
    return bytes(state)


def value_digest(value: Any, has_expire: bool, plugin_commands: Any) -> bytes:
    """DEBUG DIGEST-VALUE's 20 bytes for one value (the key's name left out, as Redis)."""
    state = bytearray(_ZERO)
    _value_into(state, value, plugin_commands)
    if has_expire:
        _xor_into(state, _EXPIRE_MARK)
    return bytes(state)


def dataset_digest(databases: Any, plugin_commands: Any) -> bytes:
    """DEBUG DIGEST's 20 bytes: zeros for an empty dataset."""
    final = bytearray(_ZERO)
    for db in databases:
        if not db.data:
            continue
        _mix(final, struct.pack(">I", db.index))
        expires = db.expires
        for key, value in list(db.data.items()):
            _xor_into(final, key_digest(key, value, key in expires, plugin_commands))
    return bytes(final)
