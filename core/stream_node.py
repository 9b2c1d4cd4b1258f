"""A stream's node: a run of entries stored as Redis 7.0 keeps them in one listpack of its
radix tree (see :mod:`trioredis.stream` for why the nodes are emulated), and the listpack
size rules that decide where a node ends.

An ID is one int, ``ms << SEQ_BITS | seq``; a node stores its entries' IDs as deltas from
its master entry's.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

SEQ_BITS = 64
SEQ_MASK = (1 << SEQ_BITS) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


# --- listpack sizes -------------------------------------------------------------------------


def int_size(value: int) -> int:
    """Bytes of an integer element in a listpack, its back-length byte included."""
    if 0 <= value <= 127:
        return 2
    if -4096 <= value <= 4095:
        return 3
    if -32768 <= value <= 32767:
        return 4
    if -8388608 <= value <= 8388607:
        return 5
    if -2147483648 <= value <= 2147483647:
        return 6
    return 10


def _looks_like_int64(raw: bytes) -> bool:
    """Whether listpack stores ``raw`` as an integer (Redis's string2ll rules)."""
    if not raw or len(raw) > 20:
        return False
    digits = raw[1:] if raw[:1] == b"-" else raw
    if not digits.isdigit() or (digits[:1] == b"0" and (len(digits) > 1 or raw[:1] == b"-")):
        return False
    return INT64_MIN <= int(raw) <= INT64_MAX


# First bytes of a string that may be stored as an integer ("-" and the digits).
_INT_START = frozenset(b"-0123456789")


def element_size(raw: bytes) -> int:
    """Bytes of a string element in a listpack (header, data, back-length)."""
    length = len(raw)
    if length <= 20 and raw and raw[0] in _INT_START and _looks_like_int64(raw):
        return int_size(int(raw))
    if length < 64:
        return length + 2  # the common case: one header byte, one back-length byte
    encoded = length + (1 if length < 64 else 2 if length < 4096 else 5)
    if encoded <= 127:
        return encoded + 1
    if encoded < 16383:
        return encoded + 2
    if encoded < 2097151:
        return encoded + 3
    if encoded < 268435455:
        return encoded + 4
    return encoded + 5


def signed64(value: int) -> int:
    """A difference of unsigned 64-bit numbers as C stores it in an int64."""
    value &= SEQ_MASK
    return value - (1 << 64) if value >> 63 else value


# A listpack's header (total bytes, element count) and end byte.
_LISTPACK_OVERHEAD = 7
FLAG_SIZE = 2  # the flags element: 0..3, one byte plus its back-length


class Node:
    """One radix-tree node: a listpack of entries keyed by its master entry's ID.

    Kept compact, as memory per entry is what a long stream costs: the live entries' IDs as
    two arrays of unsigned 64-bit numbers (16 bytes an entry, against 48 for a list of
    128-bit ints), and per entry only what differs from the master entry: the value alone
    (one field, the master's), a tuple of values (the master's fields), or a list of
    field/value pairs (other fields)."""

    __slots__ = ("master", "fields", "ms", "seq", "values", "live", "deleted", "body", "last",
                 "tombstones")

    def __init__(self, master: int, fields: tuple[bytes, ...]) -> None:
        self.master = master
        self.fields = fields
        self.ms = array("Q")
        self.seq = array("Q")
        self.values: list[bytes | tuple[bytes, ...] | list[bytes]] = []
        self.live = 0
        self.deleted = 0
        # Bytes of everything but the two counters: the master fields and every entry
        # appended, deleted ones included (Redis only flags them).
        self.body = int_size(len(fields)) + sum(map(element_size, fields)) + int_size(0)
        self.last = master  # the last ID appended, deleted or not (trimming by MINID reads it)
        # Deleted entries as (ID, stored value), in ID order: Redis keeps them, flagged, in
        # the node's listpack, and DUMP/RDB write them (trioredis.rdb.streams).  A node read
        # from a snapshot of an older format may have fewer than ``deleted``.
        self.tombstones: list[tuple[int, bytes | tuple[bytes, ...] | list[bytes]]] = []

    def listpack_bytes(self) -> int:
        return _LISTPACK_OVERHEAD + int_size(self.live) + int_size(self.deleted) + self.body

    def id_at(self, position: int) -> int:
        return (self.ms[position] << SEQ_BITS) | self.seq[position]

    def position(self, stream_id: int) -> int:
        """Where ``stream_id`` is or would go among the live entries."""
        return bisect_left(range(len(self.values)), stream_id, key=self.id_at)

    def entry(self, position: int) -> tuple[bytes, ...]:
        """The field/value pairs of the entry at ``position``, flat."""
        stored = self.values[position]
        kind = stored.__class__
        if kind is bytes:
            return (self.fields[0], stored)  # type: ignore[return-value]
        if kind is tuple:
            flat: list[bytes] = [b""] * (2 * len(stored))
            flat[0::2] = self.fields
            flat[1::2] = stored  # type: ignore[assignment]
            return tuple(flat)
        return tuple(stored)

    def encoded(self, position: int, stream_id: int) -> bytes:
        """The entry at ``position`` as a RESP reply, ``[id, [field, value, ...]]``."""
        ident = b"%d-%d" % (stream_id >> SEQ_BITS, stream_id & SEQ_MASK)
        stored = self.values[position]
        if stored.__class__ is bytes:  # the common case, one field (the master's)
            field = self.fields[0]
            return b"*2\r\n$%d\r\n%b\r\n*2\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (
                len(ident), ident, len(field), field, len(stored), stored)  # type: ignore[arg-type]
        items = self.entry(position)
        return b"*2\r\n$%d\r\n%b\r\n*%d\r\n%b" % (
            len(ident), ident, len(items),
            b"".join([b"$%d\r\n%b\r\n" % (len(part), part) for part in items]))

    def add(self, stream_id: int, pairs: list[bytes], same: bool) -> None:
        self.ms.append(stream_id >> SEQ_BITS)
        self.seq.append(stream_id & SEQ_MASK)
        if not same:
            self.values.append(list(pairs))
        elif len(pairs) == 2:
            self.values.append(pairs[1])
        else:
            self.values.append(tuple(pairs[1::2]))

    def drop(self, start: int, stop: int) -> None:
        """Delete the live entries at positions [start, stop): they become tombstones."""
        dropped = [(self.id_at(position), self.values[position]) for position in range(start, stop)]
        if self.tombstones and dropped[0][0] < self.tombstones[-1][0]:
            self.tombstones = sorted(self.tombstones + dropped, key=_first)
        else:
            self.tombstones.extend(dropped)
        del self.ms[start:stop]
        del self.seq[start:stop]
        del self.values[start:stop]


def _first(item: tuple[int, object]) -> int:
    return item[0]
