"""Redis's compact blobs: listpack (written and read), ziplist, intset and zipmap (read; intset
written too).

These are the byte layouts Redis keeps small values in and writes as one string inside an
RDB record.  Every reader checks each length against the blob before using it, so a hostile
DUMP payload costs at most one pass over its own bytes and ends in :class:`RdbError`.

Layouts (little-endian unless said):

* listpack: ``u32 total-bytes, u16 count, entries..., 0xFF``; an entry is an encoding byte
  (with its data) followed by "backlen", the entry's size in 1-5 bytes of 7 bits, so the list
  can be walked backwards.  Strings that read as an int64 are stored as integers.
* ziplist (before Redis 7.0): ``u32 total-bytes, u32 tail-offset, u16 count, entries...,
  0xFF``; an entry is the previous entry's size (1 or 5 bytes), an encoding, the data.
* intset: ``u32 width (2, 4 or 8), u32 count``, then the sorted integers of that width.
* zipmap (before Redis 2.6): ``u8 count``, then ``len key len free value <free bytes>``
  pairs, ``0xFF``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable

from .errors import RdbError

# First bytes of a string listpack may store as an integer.
_NUMBER_START = frozenset(b"-0123456789")

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# A string Redis stores as an integer (string2ll / lpStringToInt64): canonical decimal only,
# no sign on zero, no leading zeros, no "+", at most 20 characters; the int64 range is
# checked after.
_CANONICAL_INT = re.compile(rb"(?:0|-?[1-9][0-9]{0,19})\Z")

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_LP_HEADER = struct.Struct("<IH")
LISTPACK_HEADER_SIZE = 6
LISTPACK_EMPTY_SIZE = 7  # header and the end byte
LISTPACK_UNKNOWN_COUNT = 65535  # the header's count saturates here; then walk to count


def as_int64(raw: bytes) -> int | None:
    """The integer ``raw`` spells in Redis's strict sense, or None."""
    if len(raw) > 20 or _CANONICAL_INT.match(raw) is None:
        return None
    value = int(raw)
    return value if INT64_MIN <= value <= INT64_MAX else None


# --- listpack ------------------------------------------------------------------------------


def _backlen(size: int) -> bytes:
    """The entry size written after an entry, most significant 7 bits first; every byte but
    the first has its high bit set, so a reader walking backwards knows where it ends."""
    if size <= 127:
        return bytes((size,))
    if size < 16383:
        return bytes((size >> 7, (size & 127) | 128))
    if size < 2097151:
        return bytes((size >> 14, ((size >> 7) & 127) | 128, (size & 127) | 128))
    if size < 268435455:
        return bytes((size >> 21, ((size >> 14) & 127) | 128, ((size >> 7) & 127) | 128,
                      (size & 127) | 128))
    return bytes((size >> 28, ((size >> 21) & 127) | 128, ((size >> 14) & 127) | 128,
                  ((size >> 7) & 127) | 128, (size & 127) | 128))


def _backlen_size(size: int) -> int:
    if size <= 127:
        return 1
    if size < 16383:
        return 2
    if size < 2097151:
        return 3
    if size < 268435455:
        return 4
    return 5


def listpack_entry(item: bytes) -> bytes:
    """One listpack entry (encoding, data, backlen) as Redis's ``lpAppend`` writes it."""
    # Only a string starting with "-" or a digit may be stored as an integer: the test on its
    # first byte spares the others the parse.
    number = as_int64(item) if len(item) <= 20 and item and item[0] in _NUMBER_START else None
    if number is not None:
        if 0 <= number <= 127:
            head = bytes((number,))
        elif -4096 <= number <= 4095:
            unsigned = number & 0x1FFF
            head = bytes((0xC0 | (unsigned >> 8), unsigned & 0xFF))
        elif -32768 <= number <= 32767:
            head = b"\xf1" + number.to_bytes(2, "little", signed=True)
        elif -8388608 <= number <= 8388607:
            head = b"\xf2" + number.to_bytes(3, "little", signed=True)
        elif -2147483648 <= number <= 2147483647:
            head = b"\xf3" + number.to_bytes(4, "little", signed=True)
        else:
            head = b"\xf4" + number.to_bytes(8, "little", signed=True)
    else:
        size = len(item)
        if size < 64:
            head = bytes((0x80 | size,)) + item
        elif size < 4096:
            head = bytes((0xE0 | (size >> 8), size & 0xFF)) + item
        else:
            head = b"\xf0" + _U32.pack(size) + item
    return head + _backlen(len(head))


def listpack_from_entries(entries: list[bytes]) -> bytes:
    """A listpack from entries already made by :func:`listpack_entry`."""
    body = b"".join(entries)
    count = min(len(entries), LISTPACK_UNKNOWN_COUNT)
    return _LP_HEADER.pack(LISTPACK_HEADER_SIZE + len(body) + 1, count) + body + b"\xff"


def listpack(items: Iterable[bytes]) -> bytes:
    """A listpack holding ``items`` in order."""
    return listpack_from_entries([listpack_entry(item) for item in items])


def read_listpack(blob: bytes) -> list[bytes | int]:
    """The entries of a listpack: ``int`` for integer encodings, ``bytes`` for strings."""
    size = len(blob)
    if size < LISTPACK_EMPTY_SIZE:
        raise RdbError("listpack too short")
    total, count = _LP_HEADER.unpack_from(blob, 0)
    if total != size:
        raise RdbError("listpack size mismatch")
    end = size - 1
    if blob[end] != 0xFF:
        raise RdbError("listpack without its end byte")
    out: list[bytes | int] = []
    append = out.append
    pos = LISTPACK_HEADER_SIZE
    while pos < end:
        first = blob[pos]
        if first < 0x80:  # 7-bit unsigned integer
            append(first)
            data_end = pos + 1
        elif first < 0xC0:  # string up to 63 bytes
            data_end = pos + 1 + (first & 0x3F)
            append(blob[pos + 1:data_end])
        elif first < 0xE0:  # 13-bit signed integer
            if pos + 2 > end:
                raise RdbError("listpack entry past the end")
            unsigned = ((first & 0x1F) << 8) | blob[pos + 1]
            append(unsigned - 0x2000 if unsigned >= 0x1000 else unsigned)
            data_end = pos + 2
        elif first < 0xF0:  # string up to 4095 bytes
            if pos + 2 > end:
                raise RdbError("listpack entry past the end")
            data_end = pos + 2 + (((first & 0x0F) << 8) | blob[pos + 1])
            append(blob[pos + 2:data_end])
        elif first == 0xF0:  # 32-bit length string
            if pos + 5 > end:
                raise RdbError("listpack entry past the end")
            data_end = pos + 5 + _U32.unpack_from(blob, pos + 1)[0]
            append(blob[pos + 5:data_end])
        elif 0xF1 <= first <= 0xF4:
            width = (2, 3, 4, 8)[first - 0xF1]
            data_end = pos + 1 + width
            if data_end > end:
                raise RdbError("listpack entry past the end")
            append(int.from_bytes(blob[pos + 1:data_end], "little", signed=True))
        else:
            raise RdbError("listpack entry with an unknown encoding")
        pos = data_end + _backlen_size(data_end - pos)
        if pos > end:
            raise RdbError("listpack entry past the end")
    if pos != end:
        raise RdbError("listpack entries overrun")
    if count != LISTPACK_UNKNOWN_COUNT and count != len(out):
        raise RdbError("listpack count mismatch")
    return out


# --- ziplist -------------------------------------------------------------------------------

ZIPLIST_HEADER_SIZE = 10


def read_ziplist(blob: bytes) -> list[bytes | int]:
    """The entries of a ziplist (RDB 7 to 9 small lists, hashes and sorted sets)."""
    size = len(blob)
    if size < ZIPLIST_HEADER_SIZE + 1:
        raise RdbError("ziplist too short")
    total, _tail, count = struct.unpack_from("<IIH", blob, 0)
    if total != size or blob[size - 1] != 0xFF:
        raise RdbError("ziplist size mismatch")
    end = size - 1
    out: list[bytes | int] = []
    append = out.append
    pos = ZIPLIST_HEADER_SIZE
    while pos < end:
        pos += 1 if blob[pos] < 254 else 5  # the previous entry's size
        if pos >= end:
            raise RdbError("ziplist entry past the end")
        first = blob[pos]
        kind = first >> 6
        if kind == 0:
            start = pos + 1
            stop = start + (first & 0x3F)
        elif kind == 1:
            if pos + 2 > end:
                raise RdbError("ziplist entry past the end")
            start = pos + 2
            stop = start + (((first & 0x3F) << 8) | blob[pos + 1])
        elif kind == 2:
            if pos + 5 > end:
                raise RdbError("ziplist entry past the end")
            start = pos + 5
            stop = start + int.from_bytes(blob[pos + 1:pos + 5], "big")
        else:
            width = {0xC0: 2, 0xD0: 4, 0xE0: 8, 0xF0: 3, 0xFE: 1}.get(first)
            if width is not None:
                stop = pos + 1 + width
                if stop > end:
                    raise RdbError("ziplist entry past the end")
                append(int.from_bytes(blob[pos + 1:stop], "little", signed=True))
            elif 0xF1 <= first <= 0xFD:  # immediate 0..12
                append((first & 0x0F) - 1)
                stop = pos + 1
            else:
                raise RdbError("ziplist entry with an unknown encoding")
            pos = stop
            continue
        if stop > end:
            raise RdbError("ziplist entry past the end")
        append(blob[start:stop])
        pos = stop
    if pos != end:
        raise RdbError("ziplist entries overrun")
    if count != 0xFFFF and count != len(out):
        raise RdbError("ziplist count mismatch")
    return out


# --- intset --------------------------------------------------------------------------------

_INTSET_FORMATS = {2: "h", 4: "i", 8: "q"}


def intset(numbers: list[int]) -> bytes:
    """An intset of distinct ``numbers``: sorted, in the narrowest width that holds them all."""
    numbers = sorted(numbers)
    width = 2
    if numbers:
        low, high = numbers[0], numbers[-1]
        if low < -2147483648 or high > 2147483647:
            width = 8
        elif low < -32768 or high > 32767:
            width = 4
    return struct.pack(f"<II{len(numbers)}{_INTSET_FORMATS[width]}", width, len(numbers),
                       *numbers)


def read_intset(blob: bytes) -> list[int]:
    """The integers of an intset, checked sorted and distinct (a set must not hold one twice)."""
    if len(blob) < 8:
        raise RdbError("intset too short")
    width, count = struct.unpack_from("<II", blob, 0)
    letter = _INTSET_FORMATS.get(width)
    if letter is None or len(blob) != 8 + width * count:
        raise RdbError("intset size mismatch")
    numbers = list(struct.unpack_from(f"<{count}{letter}", blob, 8))
    if any(numbers[i] >= numbers[i + 1] for i in range(count - 1)):
        raise RdbError("intset not sorted")
    return numbers


# --- zipmap --------------------------------------------------------------------------------


def read_zipmap(blob: bytes) -> list[bytes]:
    """The alternating keys and values of a zipmap (RDB files of Redis before 2.6)."""
    size = len(blob)
    if size < 2:
        raise RdbError("zipmap too short")
    out: list[bytes] = []
    pos = 1
    while True:
        if pos >= size:
            raise RdbError("zipmap without its end byte")
        first = blob[pos]
        if first == 0xFF:
            break
        for is_value in (False, True):
            if pos >= size:
                raise RdbError("zipmap entry past the end")
            first = blob[pos]
            if first < 254:
                length, pos = first, pos + 1
            elif first == 254 and pos + 5 <= size:
                length, pos = _U32.unpack_from(blob, pos + 1)[0], pos + 5
            else:
                raise RdbError("zipmap length invalid")
            free = 0
            if is_value:
                if pos >= size:
                    raise RdbError("zipmap entry past the end")
                free, pos = blob[pos], pos + 1
            if pos + length + free > size:
                raise RdbError("zipmap entry past the end")
            out.append(blob[pos:pos + length])
            pos += length + free
    if pos != size - 1:
        raise RdbError("zipmap trailing bytes")
    return out
