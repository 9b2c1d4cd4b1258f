"""One value in RDB encoding: written as Redis 7.0 writes it, read in every encoding Redis 7.0
reads (RDB versions 1 to 10).

Writing picks the encoding Redis would hold the value in, from the value's shape and the
``*-max-listpack-*`` / ``set-max-intset-entries`` thresholds (:class:`Encodings`), because a
DUMP payload carries the in-memory encoding: small hashes and sorted sets as a listpack, small
integer sets as an intset, lists as a quicklist of listpacks of at most 8 KB.  Redis decides
some encodings from a value's history (a hash that outgrew its listpack stays a hash table
after it shrinks; a sorted set's history is kept in :attr:`ZSet.compact`); for hashes, sets
and lists we derive it from the current shape, which matches Redis for a value built by
adding elements (and, for lists, by pushing at the tail).

Reading accepts every type byte of Redis 7.0 except modules (refused with a clear
:class:`RdbError`; streams are :mod:`.streams`), rejects duplicates, NaN scores and malformed blobs, and raises
:class:`EmptyValue` for a value with no elements.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..stream import Stream
from ..zset import ZSet
from .checksum import LZF_MIN_LENGTH, lzf_compress, lzf_decompress
from .compact import (
    LISTPACK_EMPTY_SIZE,
    as_int64,
    intset,
    listpack,
    listpack_entry,
    listpack_from_entries,
    read_intset,
    read_listpack,
    read_ziplist,
    read_zipmap,
)
from .errors import EmptyValue, RdbError
from .streams import decode_stream, encode_stream

# Value types (the byte before the key).
TYPE_STRING = 0
TYPE_LIST = 1
TYPE_SET = 2
TYPE_ZSET = 3
TYPE_HASH = 4
TYPE_ZSET_2 = 5
TYPE_MODULE = 6
TYPE_MODULE_2 = 7
TYPE_HASH_ZIPMAP = 9
TYPE_LIST_ZIPLIST = 10
TYPE_SET_INTSET = 11
TYPE_ZSET_ZIPLIST = 12
TYPE_HASH_ZIPLIST = 13
TYPE_LIST_QUICKLIST = 14
TYPE_STREAM_LISTPACKS = 15
TYPE_HASH_LISTPACK = 16
TYPE_ZSET_LISTPACK = 17
TYPE_LIST_QUICKLIST_2 = 18
TYPE_STREAM_LISTPACKS_2 = 19
TYPE_STREAM_LISTPACKS_3 = 21  # Redis 7.2 (RDB 11): consumers gain an active time

# Length prefixes: the top two bits of the first byte say how the length is stored.
LEN_6BIT, LEN_14BIT, LEN_32BIT, LEN_64BIT = 0, 1, 0x80, 0x81
ENC_INT8, ENC_INT16, ENC_INT32, ENC_LZF = 0, 1, 2, 3

# Quicklist v2 node containers.
NODE_PLAIN, NODE_PACKED = 1, 2
# A list element this large gets a node of its own, unpacked (quicklist packed_threshold).
PLAIN_ELEMENT_SIZE = 1 << 30
# list-max-listpack-size N < 0: a node's listpack may hold this many bytes (-1 .. -5).
NODE_SIZE_LEVELS = (4096, 8192, 16384, 32768, 65536)
# With a positive list-max-listpack-size (an element count), a node still stops at 8 KB.
NODE_SAFETY_LIMIT = 8192
# What Redis adds to an element's length to guess its listpack entry's size (on the high
# side: a node stops up to a few bytes short of its limit rather than past it).
ENTRY_OVERHEAD_ESTIMATE = 8

# Old sorted-set scores as text: these lengths stand for the three non-finite values.
_SCORE_NAN, _SCORE_POS_INF, _SCORE_NEG_INF = 253, 254, 255

_DOUBLE = struct.Struct("<d")
_SHORT_LENGTHS = [bytes((n,)) for n in range(64)]
_NUMBER_START = frozenset(b"-0123456789")
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class Encodings:
    """The thresholds that decide a value's compact encoding, with Redis 7.0.15's defaults
    (as ``CONFIG GET`` answers on a server started without a config file), and
    ``rdbcompression``."""

    hash_max_listpack_entries: int = 512
    hash_max_listpack_value: int = 64
    set_max_intset_entries: int = 512
    zset_max_listpack_entries: int = 128
    zset_max_listpack_value: int = 64
    list_max_listpack_size: int = -2
    rdbcompression: bool = True

    @classmethod
    def from_config(cls, config: Any) -> Encodings:
        """The thresholds from a config, each option read when the config has it (with its
        Redis name in snake case), else Redis's default."""
        defaults = cls()
        values = {}
        for name in cls.__dataclass_fields__:
            found = getattr(config, name, None)
            values[name] = getattr(defaults, name) if found is None else found
        values["rdbcompression"] = bool(values["rdbcompression"]) and values["rdbcompression"] != "no"
        return cls(**values)


DEFAULT_ENCODINGS = Encodings()
# For a set known to be compact: only its members decide (an intset holds integers only).
_NO_LIMITS = Encodings(set_max_intset_entries=1 << 62)


# --- writing -------------------------------------------------------------------------------


def length(n: int) -> bytes:
    """A length in RDB's variable encoding (6, 14, 32 or 64 bits, big-endian past 14)."""
    if n < 0x40:
        return bytes((n,))
    if n < 0x4000:
        return bytes((0x40 | (n >> 8), n & 0xFF))
    if n <= 0xFFFFFFFF:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def string(raw: bytes, compress: bool = True) -> bytes:
    """A string as Redis's ``rdbSaveRawString`` writes it: a short canonical integer that
    fits 32 bits as an integer, a string over 20 bytes LZF-compressed when that saves 4
    bytes (and ``compress``), anything else as length + bytes."""
    size = len(raw)
    if size <= LZF_MIN_LENGTH:
        # The common case, a short string: a one-byte length unless it reads as an integer.
        if size <= 11 and size and raw[0] in _NUMBER_START:
            number = as_int64(raw)
            if number is not None and _INT32_MIN <= number <= _INT32_MAX:
                if -128 <= number <= 127:
                    return b"\xc0" + number.to_bytes(1, "little", signed=True)
                if -32768 <= number <= 32767:
                    return b"\xc1" + number.to_bytes(2, "little", signed=True)
                return b"\xc2" + number.to_bytes(4, "little", signed=True)
        return _SHORT_LENGTHS[size] + raw
    if compress:
        packed = lzf_compress(raw)
        if packed is not None:
            return b"\xc3" + length(len(packed)) + length(size) + packed
    return length(size) + raw


def _score_entry(score: float) -> bytes:
    """A score inside a sorted set's listpack: Redis prints it with ``d2string`` (an integral
    value within 2^52 as an integer, else ``%.17g``) and the listpack then stores an
    integer-looking text as an integer."""
    if math.isinf(score):
        return listpack_entry(b"inf" if score > 0 else b"-inf")
    if score == 0:
        return listpack_entry(b"-0" if math.copysign(1.0, score) < 0 else b"0")
    if -4503599627370495.0 < score < 4503599627370496.0 and score == int(score):
        return listpack_entry(b"%d" % int(score))
    return listpack_entry(b"%.17g" % score)


def quicklist_nodes(items: deque, fill: int) -> list[tuple[int, bytes]]:
    """A list cut into quicklist nodes as Redis 7.0 fills them pushing at the tail: an
    element joins the last node while the node's listpack, grown by the element's length
    and :data:`ENTRY_OVERHEAD_ESTIMATE`, stays within the size limit (and, for a positive
    fill, the count limit) (``_quicklistNodeAllowInsert``)."""
    fill = max(fill, -len(NODE_SIZE_LEVELS))
    size_limit = NODE_SIZE_LEVELS[-fill - 1] if fill < 0 else NODE_SAFETY_LIMIT
    nodes: list[tuple[int, bytes]] = []
    entries: list[bytes] = []
    node_size = LISTPACK_EMPTY_SIZE
    for item in items:
        size = len(item)
        if size >= PLAIN_ELEMENT_SIZE:
            if entries:
                nodes.append((NODE_PACKED, listpack_from_entries(entries)))
                entries, node_size = [], LISTPACK_EMPTY_SIZE
            nodes.append((NODE_PLAIN, item))
            continue
        if entries:
            allowed = node_size + size + ENTRY_OVERHEAD_ESTIMATE <= size_limit
            if fill >= 0:
                allowed = allowed and len(entries) < max(fill, 1)
            if not allowed:
                nodes.append((NODE_PACKED, listpack_from_entries(entries)))
                entries, node_size = [], LISTPACK_EMPTY_SIZE
        entry = listpack_entry(item)
        entries.append(entry)
        node_size += len(entry)
    if entries:
        nodes.append((NODE_PACKED, listpack_from_entries(entries)))
    return nodes


def _hash_is_compact(value: dict, enc: Encodings) -> bool:
    if len(value) > enc.hash_max_listpack_entries:
        return False
    limit = enc.hash_max_listpack_value
    return all(len(field) <= limit and len(item) <= limit for field, item in value.items())


def _set_as_ints(value: set, enc: Encodings) -> list[int] | None:
    if len(value) > enc.set_max_intset_entries:
        return None
    numbers = []
    for member in value:
        number = as_int64(member)
        if number is None:
            return None
        numbers.append(number)
    return numbers


def encode_value(value: Any, enc: Encodings = DEFAULT_ENCODINGS,
                 promoted: bool | None = None) -> tuple[int, bytes]:
    """(type byte, value bytes) for a value of a built-in type; RdbError for another type.
    ``promoted`` is a hash's or set's encoding when its key's history is known
    (:mod:`trioredis.encodings`): True a hash table, False compact (a listpack; an intset
    when every member is an integer), None: judged by its shape and ``enc``."""
    compress = enc.rdbcompression
    kind = value.__class__
    if kind is bytes:
        return TYPE_STRING, string(value, compress)
    if kind is deque:
        parts = [length(0)]
        count = 0
        for container, blob in quicklist_nodes(value, enc.list_max_listpack_size):
            parts.append(length(container))
            parts.append(string(blob, compress))
            count += 1
        parts[0] = length(count)
        return TYPE_LIST_QUICKLIST_2, b"".join(parts)
    if kind is dict:
        if promoted is False or (promoted is None and _hash_is_compact(value, enc)):
            flat = [part for pair in value.items() for part in pair]
            return TYPE_HASH_LISTPACK, string(listpack(flat), compress)
        parts = [length(len(value))]
        for field, item in value.items():
            parts.append(string(field, compress))
            parts.append(string(item, compress))
        return TYPE_HASH, b"".join(parts)
    if kind is set:
        numbers = None if promoted else _set_as_ints(
            value, enc if promoted is None else _NO_LIMITS)
        if numbers is not None:
            return TYPE_SET_INTSET, string(intset(numbers), compress)
        parts = [length(len(value))]
        parts.extend(string(member, compress) for member in value)
        return TYPE_SET, b"".join(parts)
    if kind is ZSet:
        if value.compact:
            entries = []
            for member, score in value.items():
                entries.append(listpack_entry(member))
                entries.append(_score_entry(score))
            return TYPE_ZSET_LISTPACK, string(listpack_from_entries(entries), compress)
        # Highest score first: Redis walks its skiplist from the tail, so that loading
        # inserts every element at the head.
        pack = _DOUBLE.pack
        body = b"".join([string(member, compress) + pack(score)
                         for score, member in reversed(value.ordered)])
        return TYPE_ZSET_2, length(len(value)) + body
    if kind is Stream:
        return TYPE_STREAM_LISTPACKS_2, encode_stream(
            value, length, lambda raw: string(raw, compress))
    raise RdbError(f"no RDB encoding for a value of type {kind.__name__}")


# --- reading -------------------------------------------------------------------------------


class Reader:
    """A cursor over RDB bytes; every read checks the bytes are there first."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, count: int) -> bytes:
        start = self.pos
        stop = start + count
        if stop > self.end:
            raise RdbError("unexpected end of data")
        self.pos = stop
        return self.data[start:stop]

    def byte(self) -> int:
        pos = self.pos
        if pos >= self.end:
            raise RdbError("unexpected end of data")
        self.pos = pos + 1
        return self.data[pos]

    def length_or_encoding(self) -> tuple[int, bool]:
        """(length, False), or (special encoding number, True) for an encoded string."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first, False
        if kind == 1:
            return ((first & 0x3F) << 8) | self.byte(), False
        if kind == 3:
            return first & 0x3F, True
        if first == LEN_32BIT:
            return int.from_bytes(self.take(4), "big"), False
        if first == LEN_64BIT:
            return int.from_bytes(self.take(8), "big"), False
        raise RdbError(f"unknown length encoding {first:#x}")

    def length(self) -> int:
        value, encoded = self.length_or_encoding()
        if encoded:
            raise RdbError("an encoded string where a length was expected")
        return value

    def string(self) -> bytes:
        size, encoded = self.length_or_encoding()
        if not encoded:
            return self.take(size)
        if size == ENC_INT8:
            return b"%d" % int.from_bytes(self.take(1), "little", signed=True)
        if size == ENC_INT16:
            return b"%d" % int.from_bytes(self.take(2), "little", signed=True)
        if size == ENC_INT32:
            return b"%d" % int.from_bytes(self.take(4), "little", signed=True)
        if size == ENC_LZF:
            packed_size = self.length()
            plain_size = self.length()
            return lzf_decompress(self.take(packed_size), plain_size)
        raise RdbError(f"unknown string encoding {size}")

    def strings(self, count: int) -> list[bytes]:
        """``count`` strings; plain short ones (most members and fields) read inline."""
        data, end = self.data, self.end
        out: list[bytes] = []
        append = out.append
        pos = self.pos
        for _ in range(count):
            if pos < end and data[pos] < 0x40:
                stop = pos + 1 + data[pos]
                if stop > end:
                    raise RdbError("unexpected end of data")
                append(data[pos + 1:stop])
                pos = stop
            else:
                self.pos = pos
                append(self.string())
                pos = self.pos
        self.pos = pos
        return out

    def members_and_binary_scores(self, count: int) -> list[tuple[bytes, float]]:
        """``count`` (member, 8-byte little-endian double) pairs of a ZSET_2 value; NaN
        refused."""
        data, end = self.data, self.end
        unpack = _DOUBLE.unpack_from
        out: list[tuple[bytes, float]] = []
        append = out.append
        pos = self.pos
        for _ in range(count):
            if pos < end and data[pos] < 0x40:
                stop = pos + 1 + data[pos]
                member = data[pos + 1:stop]
            else:
                self.pos = pos
                member = self.string()
                stop = self.pos
            pos = stop + 8
            if pos > end:
                raise RdbError("unexpected end of data")
            score = unpack(data, stop)[0]
            if score != score:
                raise RdbError("sorted set with a NaN score")
            append((member, score))
        self.pos = pos
        return out

    def text_double(self) -> float:
        size = self.byte()
        if size == _SCORE_NAN:
            return math.nan
        if size == _SCORE_POS_INF:
            return math.inf
        if size == _SCORE_NEG_INF:
            return -math.inf
        return parse_score(self.take(size))


def parse_score(text: bytes) -> float:
    """A score written as text (strtod's syntax; Python's extras like ``_`` refused)."""
    if not text or b"_" in text or text != text.strip():
        raise RdbError("invalid score")
    try:
        return float(text)
    except ValueError:
        raise RdbError("invalid score") from None


def _as_bytes(item: bytes | int) -> bytes:
    return item if item.__class__ is bytes else b"%d" % item


def _score_of(item: bytes | int) -> float:
    return float(item) if item.__class__ is int else parse_score(item)


def _pairs(flat: list[bytes | int]) -> list[tuple[bytes | int, bytes | int]]:
    if len(flat) % 2:
        raise RdbError("odd number of elements in a pair blob")
    return list(zip(flat[0::2], flat[1::2], strict=True))


def _hash(pairs: list[tuple[bytes, bytes]]) -> dict:
    if not pairs:
        raise EmptyValue("empty hash")
    value = dict(pairs)
    if len(value) != len(pairs):
        raise RdbError("duplicate hash fields")
    return value


def _set(members: list[bytes]) -> set:
    if not members:
        raise EmptyValue("empty set")
    value = set(members)
    if len(value) != len(members):
        raise RdbError("duplicate set members")
    return value


def _zset(pairs: list[tuple[bytes, float]]) -> ZSet:
    if not pairs:
        raise EmptyValue("empty sorted set")
    if any(score != score for _member, score in pairs):
        raise RdbError("sorted set with a NaN score")
    value = ZSet(pairs)
    if len(value) != len(pairs):
        raise RdbError("duplicate sorted set members")
    return value


def _list(items: deque) -> deque:
    if not items:
        raise EmptyValue("empty list")
    return items


def decode_value(kind: int, reader: Reader) -> Any:
    """Read one value of RDB type ``kind`` at the reader's position."""
    if kind == TYPE_STRING:
        return reader.string()
    if kind == TYPE_LIST:
        return _list(deque(reader.strings(reader.length())))
    if kind == TYPE_SET:
        return _set(reader.strings(reader.length()))
    if kind == TYPE_ZSET_2:
        return _zset(reader.members_and_binary_scores(reader.length()))
    if kind == TYPE_ZSET:
        count = reader.length()
        pairs = []
        for _ in range(count):
            member = reader.string()
            pairs.append((member, reader.text_double()))
        return _zset(pairs)
    if kind == TYPE_HASH:
        flat = reader.strings(reader.length() * 2)
        return _hash(list(zip(flat[0::2], flat[1::2], strict=True)))
    if kind == TYPE_LIST_QUICKLIST_2:
        count = reader.length()
        items: deque = deque()
        for _ in range(count):
            container = reader.length()
            blob = reader.string()
            if container == NODE_PLAIN:
                items.append(blob)
            elif container == NODE_PACKED:
                items.extend(_as_bytes(item) for item in read_listpack(blob))
            else:
                raise RdbError(f"unknown quicklist node container {container}")
        return _list(items)
    if kind == TYPE_LIST_QUICKLIST:
        count = reader.length()
        items = deque()
        for _ in range(count):
            items.extend(_as_bytes(item) for item in read_ziplist(reader.string()))
        return _list(items)
    if kind == TYPE_LIST_ZIPLIST:
        return _list(deque(_as_bytes(item) for item in read_ziplist(reader.string())))
    if kind == TYPE_SET_INTSET:
        return _set([b"%d" % number for number in read_intset(reader.string())])
    if kind in (TYPE_HASH_LISTPACK, TYPE_HASH_ZIPLIST):
        read = read_listpack if kind == TYPE_HASH_LISTPACK else read_ziplist
        flat = read(reader.string())
        return _hash([(_as_bytes(field), _as_bytes(item)) for field, item in _pairs(flat)])
    if kind in (TYPE_ZSET_LISTPACK, TYPE_ZSET_ZIPLIST):
        read = read_listpack if kind == TYPE_ZSET_LISTPACK else read_ziplist
        flat = read(reader.string())
        return _zset([(_as_bytes(member), _score_of(score)) for member, score in _pairs(flat)])
    if kind == TYPE_HASH_ZIPMAP:
        flat = read_zipmap(reader.string())
        return _hash(list(zip(flat[0::2], flat[1::2], strict=True)))
    if kind == TYPE_STREAM_LISTPACKS_2:
        return decode_stream(2, reader)
    if kind == TYPE_STREAM_LISTPACKS:
        return decode_stream(1, reader)
    if kind == TYPE_STREAM_LISTPACKS_3:
        return decode_stream(3, reader)
    if kind in (TYPE_MODULE, TYPE_MODULE_2):
        raise RdbError("module values in RDB are not supported")
    raise RdbError(f"unknown value type {kind}")


__all__ = [
    "DEFAULT_ENCODINGS",
    "Encodings",
    "Reader",
    "decode_value",
    "encode_value",
    "length",
    "string",
]
