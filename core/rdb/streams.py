"""Streams in RDB: written as Redis 7.0 writes ``RDB_TYPE_STREAM_LISTPACKS_2``, read in the
three stream types (``STREAM_LISTPACKS`` of Redis 5/6, ``_2`` of 7.0, ``_3`` of 7.2).

A stream value is, in order:

* the radix tree of nodes: a count, then per node its key (the master entry's ID as 16
  big-endian bytes, a string) and its listpack (a string);
* length, last ID (ms, seq); with ``_2``/``_3`` also the first ID, the largest deleted ID and
  entries-added (all RDB lengths);
* the consumer groups in name order: name, last ID, (``_2``/``_3``) entries-read (an RDB
  length, so an unknown -1 is 2^64-1), the group's pending list (count, then per entry the
  raw 16-byte ID, delivery time as 8 little-endian bytes, delivery count), and the consumers
  in name order: name, seen time (8 bytes; ``_3`` adds an active time), and the IDs they own
  (count, then raw 16-byte IDs, each one of the group's pending entries).

A node's listpack opens with its master entry ``count, deleted, N, field_1..field_N, 0`` and
then holds each entry as ``flags, ms - master ms, seq - master seq``, then either the values
alone (flag SAMEFIELDS: the master's fields) or ``n, field, value, ...``, and last the
number of listpack elements the entry took (so it can be walked backwards).

Deleted entries stay in their node as Redis keeps them (``Node.tombstones``), so a node
is written with the same bytes as Redis's.  A node read from a native snapshot written before
tombstones were kept lacks them: it is written with the tombstones it has (plus, when the
node's last ID belongs to a lost one, one flagged placeholder with that ID and empty values,
so MINID trimming, which reads a node's last ID, decides the same after a reload); its bytes
then differ from Redis's, its data and every reply do not.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from ..stream import (
    ID_MAX,
    SEQ_BITS,
    SEQ_MASK,
    Consumer,
    Group,
    Nack,
    Node,
    Stream,
)
from .compact import as_int64, listpack_entry, listpack_from_entries, read_listpack
from .errors import RdbError

if TYPE_CHECKING:
    from .values import Reader

# Entry flags inside a node's listpack.
FLAG_DELETED = 1
FLAG_SAMEFIELDS = 2
# RDB lengths are unsigned 64-bit: an unknown entries-read (-1) is written as this.
UINT64_MAX = (1 << 64) - 1
# Listpack header and end byte, and what a counter at the start of the master entry takes.
_LISTPACK_OVERHEAD = 7

_I64 = struct.Struct("<q")


def _wrap(value: int) -> int:
    """An unsigned 64-bit difference as C keeps it in an int64."""
    value &= UINT64_MAX
    return value - (1 << 64) if value >> 63 else value


@lru_cache(maxsize=4096)
def _int_entry(number: int) -> bytes:
    """An integer's listpack entry: cached, as the flags, counts and ID deltas of a node's
    entries are mostly the same few small numbers."""
    return listpack_entry(b"%d" % number)


# --- writing -------------------------------------------------------------------------------


def _entry(entries: list[bytes], flags: int, ms_diff: bytes, seq_diff: bytes,
           stored: bytes | tuple[bytes, ...] | list[bytes], same_count: bytes) -> None:
    """Append one entry's listpack elements (``flags`` without SAMEFIELDS: it is added here
    when ``stored`` holds the master's fields)."""
    kind = stored.__class__
    if kind is bytes:
        entries += (_int_entry(flags | FLAG_SAMEFIELDS), ms_diff, seq_diff,
                    listpack_entry(stored), same_count)  # type: ignore[arg-type]
    elif kind is tuple:
        entries += (_int_entry(flags | FLAG_SAMEFIELDS), ms_diff, seq_diff)
        entries.extend(listpack_entry(value) for value in stored)
        entries.append(same_count)
    else:
        count = len(stored) // 2
        entries += (_int_entry(flags), ms_diff, seq_diff, _int_entry(count))
        entries.extend(listpack_entry(part) for part in stored)
        entries.append(_int_entry(2 * count + 4))


def node_listpack(node: Node) -> bytes:
    """The listpack Redis holds for ``node``: its live entries and its tombstones in ID
    order (see the module notes for a node that lacks some tombstones)."""
    master_ms, master_seq = node.master >> SEQ_BITS, node.master & SEQ_MASK
    fields = node.fields
    live = len(node.values)
    tombstones = node.tombstones
    last_kept = max(node.id_at(live - 1) if live else -1,
                    tombstones[-1][0] if tombstones else -1)
    placeholder = node.last if node.last > last_kept else None
    deleted = len(tombstones) + (placeholder is not None)
    entries = [_int_entry(live), _int_entry(deleted), _int_entry(len(fields))]
    entries.extend(listpack_entry(field) for field in fields)
    entries.append(_int_entry(0))
    same_count = _int_entry(len(fields) + 3)
    ms_array, seq_array = node.ms, node.seq
    next_tombstone = 0
    for position, stored in enumerate(node.values):
        ms, seq = ms_array[position], seq_array[position]
        stream_id = (ms << SEQ_BITS) | seq
        while next_tombstone < len(tombstones) and tombstones[next_tombstone][0] < stream_id:
            _tombstone(entries, node, tombstones[next_tombstone], same_count)
            next_tombstone += 1
        _entry(entries, 0, _int_entry(_wrap(ms - master_ms)), _int_entry(_wrap(seq - master_seq)),
               stored, same_count)
    for tombstone in tombstones[next_tombstone:]:
        _tombstone(entries, node, tombstone, same_count)
    if placeholder is not None:
        _tombstone(entries, node, (placeholder, tuple(b"" for _ in fields)), same_count)
    return listpack_from_entries(entries)


def _tombstone(entries: list[bytes], node: Node,
               tombstone: tuple[int, bytes | tuple[bytes, ...] | list[bytes]],
               same_count: bytes) -> None:
    stream_id, stored = tombstone
    if stored.__class__ is tuple and len(stored) == 1:
        stored = stored[0]
    _entry(entries, FLAG_DELETED,
           _int_entry(_wrap((stream_id >> SEQ_BITS) - (node.master >> SEQ_BITS))),
           _int_entry(_wrap((stream_id & SEQ_MASK) - (node.master & SEQ_MASK))),
           stored, same_count)


def encode_stream(stream: Stream, length: Callable[[int], bytes],
                  string: Callable[[bytes], bytes]) -> bytes:
    """A stream's value bytes for ``RDB_TYPE_STREAM_LISTPACKS_2``; ``length`` and ``string``
    are the RDB length and string writers (``string`` compresses as configured)."""
    parts = [length(len(stream.nodes))]
    for node in stream.nodes:
        parts.append(string(node.master.to_bytes(16, "big")))
        parts.append(string(node_listpack(node)))
    parts.append(length(stream.length))
    for stream_id in (stream.last_id, stream.first_id, stream.max_deleted):
        parts.append(length(stream_id >> SEQ_BITS))
        parts.append(length(stream_id & SEQ_MASK))
    parts.append(length(stream.entries_added))
    groups = stream.sorted_groups()
    parts.append(length(len(groups)))
    pack_time = _I64.pack
    for group in groups:
        parts.append(string(group.name))
        parts.append(length(group.last_id >> SEQ_BITS))
        parts.append(length(group.last_id & SEQ_MASK))
        parts.append(length(group.entries_read & UINT64_MAX))
        parts.append(length(len(group.pel)))
        for stream_id, nack in group.pel.items():
            parts.append(stream_id.to_bytes(16, "big"))
            parts.append(pack_time(nack.delivery_time))
            parts.append(length(nack.delivery_count))
        consumers = group.sorted_consumers()
        parts.append(length(len(consumers)))
        for consumer in consumers:
            parts.append(string(consumer.name))
            parts.append(pack_time(consumer.seen_time))
            parts.append(length(len(consumer.pel)))
            parts.extend(stream_id.to_bytes(16, "big") for stream_id in consumer.pel)
    return b"".join(parts)


# --- reading -------------------------------------------------------------------------------


def _number(item: bytes | int) -> int:
    """A listpack element read as an integer (Redis's lpGetInteger accepts integer text)."""
    if item.__class__ is int:
        return item  # type: ignore[return-value]
    number = as_int64(item)  # type: ignore[arg-type]
    if number is None:
        raise RdbError("stream listpack: an integer was expected")
    return number


def _as_bytes(item: bytes | int) -> bytes:
    return item if item.__class__ is bytes else b"%d" % item  # type: ignore[return-value]


def _read_node(master: int, blob: bytes) -> Node:
    """A node from its key and listpack, every count and ID checked."""
    items = read_listpack(blob)
    if len(items) < 5:
        raise RdbError("stream listpack without a master entry")
    count, deleted, nfields = _number(items[0]), _number(items[1]), _number(items[2])
    if count < 0 or deleted < 0 or nfields < 1 or len(items) < 4 + nfields:
        raise RdbError("stream listpack master entry is invalid")
    fields = tuple(_as_bytes(item) for item in items[3:3 + nfields])
    if _number(items[3 + nfields]) != 0:
        raise RdbError("stream listpack master entry is not terminated")
    node = Node(master, fields)
    master_ms, master_seq = master >> SEQ_BITS, master & SEQ_MASK
    pos, end = 4 + nfields, len(items)
    seen_live = seen_deleted = 0
    previous = -1
    # Appended to directly (what Node.add does, without building field/value pairs): loading
    # a stream is a loop over every entry.
    ms_array, seq_array, values, tombstones = node.ms, node.seq, node.values, node.tombstones
    same_count = nfields + 3
    while pos < end:
        if pos + 3 > end:
            raise RdbError("stream listpack entry truncated")
        flags, ms_diff, seq_diff = items[pos], items[pos + 1], items[pos + 2]
        if flags.__class__ is not int:
            flags = _number(flags)
        if not 0 <= flags <= FLAG_DELETED | FLAG_SAMEFIELDS:
            raise RdbError("stream listpack entry with unknown flags")
        ms = (master_ms + (ms_diff if ms_diff.__class__ is int else _number(ms_diff))) & UINT64_MAX
        seq = (master_seq + (seq_diff if seq_diff.__class__ is int else _number(seq_diff))
               ) & UINT64_MAX
        stream_id = (ms << SEQ_BITS) | seq
        if stream_id < master or stream_id <= previous:
            raise RdbError("stream listpack entries out of order")
        previous = stream_id
        pos += 3
        stored: bytes | tuple[bytes, ...] | list[bytes]
        if flags & FLAG_SAMEFIELDS:
            stop = pos + nfields
            if stop + 1 > end:
                raise RdbError("stream listpack entry truncated")
            if nfields == 1:
                item = items[pos]
                stored = item if item.__class__ is bytes else b"%d" % item
            else:
                stored = tuple([_as_bytes(item) for item in items[pos:stop]])
            expected = same_count
        else:
            count_here = _number(items[pos])
            if count_here < 1:
                raise RdbError("stream listpack entry without fields")
            stop = pos + 1 + 2 * count_here
            if stop + 1 > end:
                raise RdbError("stream listpack entry truncated")
            stored = [_as_bytes(item) for item in items[pos + 1:stop]]
            expected = 2 * count_here + 4
        if _number(items[stop]) != expected:
            raise RdbError("stream listpack entry with a wrong element count")
        pos = stop + 1
        if flags & FLAG_DELETED:
            seen_deleted += 1
            tombstones.append((stream_id, stored))
            continue
        ms_array.append(ms)
        seq_array.append(seq)
        values.append(stored)
        seen_live += 1
    node.last = previous
    if seen_live != count or seen_deleted != deleted or not seen_live + seen_deleted:
        raise RdbError("stream listpack counts do not match its entries")
    node.live, node.deleted = count, deleted
    # The node's byte size drives where the next XADD opens a new node: take it as loaded.
    node.body = len(blob) - (_LISTPACK_OVERHEAD + _counter_size(count) + _counter_size(deleted))
    return node


def _counter_size(number: int) -> int:
    return len(_int_entry(number))


def _raw_id(reader: Reader) -> int:
    return int.from_bytes(reader.take(16), "big")


def decode_stream(version: int, reader: Reader) -> Stream:
    """A stream of RDB stream type ``version`` (1, 2 or 3) at the reader's position."""
    stream = Stream()
    previous = -1
    for _ in range(reader.length()):
        key = reader.string()
        if len(key) != 16:
            raise RdbError("stream node key is not 16 bytes")
        master = int.from_bytes(key, "big")
        if master <= previous or (stream.nodes and master <= stream.nodes[-1].last):
            raise RdbError("stream nodes out of order")
        previous = master
        node = _read_node(master, reader.string())
        stream.nodes.append(node)
        stream.keys.append(master)
    stream.length = reader.length()
    if stream.length != sum(node.live for node in stream.nodes):
        raise RdbError("stream length does not match its entries")
    stream.last_id = (reader.length() << SEQ_BITS) | reader.length()
    if stream.last_id > ID_MAX or (stream.nodes and stream.nodes[-1].last > stream.last_id):
        raise RdbError("stream entry above the stream's last ID")
    if version >= 2:
        stream.first_id = (reader.length() << SEQ_BITS) | reader.length()
        stream.max_deleted = (reader.length() << SEQ_BITS) | reader.length()
        stream.entries_added = reader.length()
    else:
        # Redis 5/6 kept neither: Redis starts entries-added at the length and the first ID
        # at the first live entry (the largest ID when there is none).
        stream.entries_added = stream.length
        first = stream.first_entry()
        stream.first_id = first[0] if first is not None else ID_MAX
    if max(stream.first_id, stream.max_deleted) > ID_MAX:
        raise RdbError("stream ID out of range")
    for _ in range(reader.length()):
        _read_group(stream, version, reader)
    return stream


def _read_group(stream: Stream, version: int, reader: Reader) -> None:
    """One consumer group with its pending list and consumers, each checked: a consumer's
    entry must be one of the group's, owned once; every pending entry must have an owner."""
    name = reader.string()
    if name in stream.groups:
        raise RdbError("duplicate consumer group")
    last_id = (reader.length() << SEQ_BITS) | reader.length()
    if last_id > ID_MAX:
        raise RdbError("consumer group ID out of range")
    if version >= 2:
        entries_read = reader.length()
        if entries_read == UINT64_MAX:
            entries_read = -1
        elif entries_read >> 63:
            raise RdbError("consumer group entries-read out of range")
    else:
        entries_read = stream.estimate_distance(last_id)
    group = Group(name, last_id, entries_read)
    stream.groups[name] = group
    previous = -1
    for _ in range(reader.length()):
        stream_id = _raw_id(reader)
        if stream_id <= previous:
            raise RdbError("consumer group pending entries out of order")
        previous = stream_id
        delivery_time = _I64.unpack(reader.take(8))[0]
        group.pel[stream_id] = Nack(None, delivery_time, reader.length())
    for _ in range(reader.length()):
        consumer_name = reader.string()
        if consumer_name in group.consumers:
            raise RdbError("duplicate stream consumer")
        consumer = Consumer(consumer_name, _I64.unpack(reader.take(8))[0])
        if version >= 3:
            reader.take(8)  # 7.2's active time: 7.0 keeps the seen time only
        group.consumers[consumer_name] = consumer
        for _ in range(reader.length()):
            stream_id = _raw_id(reader)
            nack = group.pel.get(stream_id)
            if nack is None or nack.consumer is not None:
                raise RdbError("consumer pending entry not in its group's pending list")
            nack.consumer = consumer
            consumer.pel[stream_id] = nack
    if any(nack.consumer is None for nack in group.pel.values()):
        raise RdbError("pending entry without a consumer")


__all__ = ["decode_stream", "encode_stream", "node_listpack"]
