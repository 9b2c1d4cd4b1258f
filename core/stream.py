"""The stream type: entries with ``ms-seq`` IDs, consumer groups and their pending lists.

An ID is one Python int, ``ms << 64 | seq``: it compares as Redis compares IDs, sorts
without tuples, and costs one object per entry.

Entries live in nodes the way Redis 7.0 keeps them in its radix tree of listpacks
(``t_stream.c``): a node is opened by the entry that becomes its *master* (its ID is the node's
key, its field names the node's master fields) and takes entries until it holds
``stream-node-max-entries`` (deleted ones count) or its listpack would reach
``stream-node-max-bytes``.  The nodes are emulated, not decoration: approximate trimming
(``MAXLEN ~``, ``MINID ~``) only drops whole nodes, so XLEN after it depends on where nodes
end, and XINFO STREAM reports the node count (``radix-tree-keys``) and the radix tree's size
(``radix-tree-nodes``).  To place the boundaries where Redis does, each node keeps the byte
size its listpack would have (:func:`element_size` is listpack's encoding rule); deleted
entries keep their bytes, as Redis only flags them.

A node holds its live entries compactly (see :class:`Node`): XADD appends to the last node,
XRANGE bisects the node keys then the node, trimming drops nodes from the front.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator

from sortedcontainers import SortedDict

from .stream_node import (  # SEQ_BITS, SEQ_MASK and Node stay importable from here
    FLAG_SIZE,
    INT64_MAX,
    SEQ_BITS,
    SEQ_MASK,
    Node,
    element_size,
    int_size,
    signed64,
)

ID_MAX = (1 << 128) - 1
# A listpack is at most 1 GB (Redis's STREAM_LISTPACK_MAX_SIZE): also the node size used when
# stream-node-max-bytes is 0 (no limit).
LISTPACK_MAX_SIZE = 1 << 30
# The group's entries-read counter when it is unknown (Redis's SCG_INVALID_ENTRIES_READ).
INVALID_ENTRIES_READ = -1



def make_id(ms: int, seq: int) -> int:
    return (ms << SEQ_BITS) | seq


def format_id(stream_id: int) -> bytes:
    return b"%d-%d" % (stream_id >> SEQ_BITS, stream_id & SEQ_MASK)


class Nack:
    """A pending entry: who has it, when it was last delivered, how many times."""

    __slots__ = ("consumer", "delivery_time", "delivery_count")

    def __init__(self, consumer: Consumer | None, delivery_time: int, delivery_count: int = 1) -> None:
        self.consumer = consumer
        self.delivery_time = delivery_time
        self.delivery_count = delivery_count


class Consumer:
    __slots__ = ("name", "seen_time", "pel")

    def __init__(self, name: bytes, seen_time: int) -> None:
        self.name = name
        self.seen_time = seen_time
        self.pel: SortedDict = SortedDict()  # ID -> Nack (the same objects as the group's)


class Group:
    __slots__ = ("name", "last_id", "entries_read", "pel", "consumers")

    def __init__(self, name: bytes, last_id: int, entries_read: int) -> None:
        self.name = name
        self.last_id = last_id
        self.entries_read = entries_read
        self.pel: SortedDict = SortedDict()  # ID -> Nack
        self.consumers: dict[bytes, Consumer] = {}

    def sorted_consumers(self) -> list[Consumer]:
        """In Redis's order (its radix tree's: by name, bytewise)."""
        return [self.consumers[name] for name in sorted(self.consumers)]


class Stream:
    """A stream value in the keyspace."""

    __slots__ = ("nodes", "keys", "length", "last_id", "max_deleted", "entries_added",
                 "first_id", "groups")

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.keys: list[int] = []  # each node's master ID, for bisecting
        self.length = 0
        self.last_id = 0
        self.max_deleted = 0
        self.entries_added = 0
        self.first_id = 0
        self.groups: dict[bytes, Group] = {}

    def __len__(self) -> int:
        return self.length

    # --- adding ---------------------------------------------------------------------------

    def append(self, stream_id: int, pairs: list[bytes], max_bytes: int, max_entries: int) -> None:
        """Add an entry (the caller checked that ``stream_id`` is above ``last_id``), in the
        last node unless it is full as Redis decides (the listpack's bytes plus the new
        strings' raw lengths would reach ``max_bytes``; or ``max_entries`` live and deleted
        entries)."""
        tail = self.nodes[-1] if self.nodes else None
        if tail is not None:
            limit = max_bytes if 0 < max_bytes <= LISTPACK_MAX_SIZE else LISTPACK_MAX_SIZE
            if tail.listpack_bytes() + sum(map(len, pairs)) >= limit:
                tail = None
            elif max_entries and tail.live + tail.deleted >= max_entries:
                tail = None
        fields = tuple(pairs[0::2])
        if tail is None:
            tail = Node(stream_id, fields)
            self.nodes.append(tail)
            self.keys.append(stream_id)
        values = pairs[1::2]
        same = fields == tail.fields
        numfields = len(fields)
        master = tail.master
        seq_delta = (stream_id & SEQ_MASK) - (master & SEQ_MASK)
        size = (FLAG_SIZE + int_size((stream_id >> SEQ_BITS) - (master >> SEQ_BITS))
                + int_size(seq_delta if 0 <= seq_delta <= INT64_MAX else signed64(seq_delta))
                + sum(map(element_size, values)))
        if same:
            size += int_size(numfields + 3)
        else:
            size += int_size(numfields) + sum(map(element_size, fields))
            size += int_size(2 * numfields + 4)
        tail.body += size
        tail.add(stream_id, pairs, same)
        tail.live += 1
        tail.last = stream_id
        if not self.length:
            self.first_id = stream_id
        self.length += 1
        self.last_id = stream_id
        self.entries_added += 1

    # --- reading --------------------------------------------------------------------------

    def _node_index(self, stream_id: int) -> int:
        """The index of the node that would hold ``stream_id`` (0 when before all)."""
        return max(bisect_right(self.keys, stream_id) - 1, 0)

    def range(self, start: int, end: int, reverse: bool = False) -> Iterator[tuple[int, tuple[bytes, ...]]]:
        """Entries with start <= ID <= end, in ID order (or reversed)."""
        for node, position, stream_id in self.positions(start, end, reverse):
            yield stream_id, node.entry(position)

    def positions(self, start: int, end: int, reverse: bool = False) -> Iterator[tuple[Node, int, int]]:
        """(node, position in it, ID) of the entries with start <= ID <= end, in ID order
        (or reversed): what XRANGE walks."""
        nodes = self.nodes
        if start > end or not nodes:
            return
        if not reverse:
            for index in range(self._node_index(start), len(nodes)):
                node = nodes[index]
                if node.master > end:
                    return
                ms, seq = node.ms, node.seq
                first = node.position(start) if node.master < start else 0
                for position in range(first, len(ms)):
                    stream_id = (ms[position] << SEQ_BITS) | seq[position]
                    if stream_id > end:
                        return
                    yield node, position, stream_id
        else:
            for index in range(self._node_index(end), -1, -1):
                node = nodes[index]
                ms, seq = node.ms, node.seq
                position = bisect_right(range(len(ms)), end, key=node.id_at) - 1
                while position >= 0:
                    stream_id = (ms[position] << SEQ_BITS) | seq[position]
                    if stream_id < start:
                        return
                    yield node, position, stream_id
                    position -= 1
                if node.master < start:
                    return

    def get(self, stream_id: int) -> tuple[bytes, ...] | None:
        if not self.nodes:
            return None
        node = self.nodes[self._node_index(stream_id)]
        position = node.position(stream_id)
        if position < len(node.values) and node.id_at(position) == stream_id:
            return node.entry(position)
        return None

    def exists(self, stream_id: int) -> bool:
        return self.get(stream_id) is not None

    def first_entry(self) -> tuple[int, tuple[bytes, ...]] | None:
        return next(self.range(0, ID_MAX), None)

    def last_entry(self) -> tuple[int, tuple[bytes, ...]] | None:
        return next(self.range(0, ID_MAX, reverse=True), None)

    def last_valid_id(self) -> int:
        """The ID of the last live entry (0 when empty): Redis's streamLastValidID.  Nodes
        hold live entries only, and a node left without any only by a MINID trim."""
        for node in reversed(self.nodes):
            if node.values:
                return node.id_at(len(node.values) - 1)
        return 0

    # --- deleting -------------------------------------------------------------------------

    def delete(self, stream_id: int) -> bool:
        """XDEL one entry: flagged deleted in its node, the node dropped when it was the
        node's last live entry.  The caller updates ``max_deleted`` and ``first_id``."""
        if not self.nodes:
            return False
        index = self._node_index(stream_id)
        node = self.nodes[index]
        position = node.position(stream_id)
        if position >= len(node.values) or node.id_at(position) != stream_id:
            return False
        if node.live == 1:
            del self.nodes[index]
            del self.keys[index]
        else:
            node.drop(position, position + 1)
            node.live -= 1
            node.deleted += 1
        self.length -= 1
        return True

    def refresh_first_id(self) -> None:
        for node in self.nodes:
            if node.values:
                self.first_id = node.id_at(0)
                return
        self.first_id = 0

    def trim(self, maxlen: int | None, minid: int | None, approx: bool, limit: int) -> int:
        """Redis 7.0's streamTrim: drop whole nodes from the head while the length stays at
        least ``maxlen`` (or the node's last ID is below ``minid``) and ``limit`` (0: none)
        allows; then, unless ``approx``, delete single entries of the next node.  Returns
        the number of entries removed."""
        removed = 0
        nodes_dropped = 0
        nodes = self.nodes
        for node in nodes:
            if maxlen is not None and self.length <= maxlen:
                break
            entries = node.live
            if limit and removed + entries > limit:
                break
            if maxlen is not None:
                drop = self.length - entries >= maxlen
            else:
                drop = node.last < minid  # type: ignore[operator]
            if drop:
                nodes_dropped += 1
                self.length -= entries
                removed += entries
                continue
            if approx:
                break
            if maxlen is not None:
                count = self.length - maxlen
            else:
                count = node.position(minid)  # type: ignore[arg-type]
            if count:
                node.drop(0, count)
                node.live -= count
                node.deleted += count
                self.length -= count
                removed += count
            break
        if nodes_dropped:
            del nodes[:nodes_dropped]
            del self.keys[:nodes_dropped]
        if removed:
            self.refresh_first_id()
        return removed

    # --- shape ----------------------------------------------------------------------------

    def radix_tree_nodes(self) -> int:
        """How many nodes Redis's radix tree has for these node keys (XINFO's
        ``radix-tree-nodes``): each key is 16 big-endian bytes; a run of bytes shared by
        every key below a point is one compressed node, each point where keys part is one
        node, and each key ends in a leaf."""
        if not self.keys:
            return 1
        encoded = [key.to_bytes(16, "big") for key in self.keys]
        return _rax_count(encoded, 0, len(encoded), 0)

    # --- consumer groups ------------------------------------------------------------------

    def sorted_groups(self) -> list[Group]:
        return [self.groups[name] for name in sorted(self.groups)]

    def range_has_tombstones(self, start: int, end: int = ID_MAX) -> bool:
        """Whether a deleted entry may lie in [start, end] (Redis's streamRangeHasTombstones)."""
        if not self.length or not self.max_deleted:
            return False
        if self.first_id > self.max_deleted:
            return False
        return start <= self.max_deleted <= end

    def estimate_distance(self, stream_id: int) -> int:
        """The entries-read counter an ID corresponds to, when it can be known (Redis's
        streamEstimateDistanceFromFirstEverEntry); INVALID_ENTRIES_READ otherwise."""
        if not self.entries_added:
            return 0
        if not self.length and stream_id <= self.last_id:
            return self.entries_added
        if stream_id == self.last_id:
            return self.entries_added
        if stream_id > self.last_id:
            return INVALID_ENTRIES_READ
        if not self.max_deleted or self.max_deleted < self.first_id:
            if stream_id < self.first_id:
                return self.entries_added - self.length
            if stream_id == self.first_id:
                return self.entries_added - self.length + 1
        return INVALID_ENTRIES_READ

    def lag(self, group: Group) -> int | None:
        """A group's lag as XINFO reports it (None: unknown)."""
        if not self.entries_added:
            return 0
        if group.entries_read != INVALID_ENTRIES_READ and not self.range_has_tombstones(group.last_id):
            return self.entries_added - group.entries_read
        entries_read = self.estimate_distance(group.last_id)
        if entries_read != INVALID_ENTRIES_READ:
            return self.entries_added - entries_read
        return None

    def advance_group(self, group: Group, stream_id: int) -> None:
        """A group delivered ``stream_id`` beyond its last ID: move its last ID and keep its
        entries-read counter as Redis does."""
        if group.entries_read != INVALID_ENTRIES_READ and not self.range_has_tombstones(stream_id):
            group.entries_read += 1
        elif self.entries_added:
            group.entries_read = self.estimate_distance(stream_id)
        group.last_id = stream_id


def _rax_count(keys: list[bytes], low: int, high: int, depth: int) -> int:
    """Radix-tree nodes below a point where keys[low:high] (sorted, distinct) share their
    first ``depth`` bytes."""
    if high - low == 1:
        return 2 if depth < 16 else 1
    first, last = keys[low], keys[high - 1]
    shared = depth
    while first[shared] == last[shared]:
        shared += 1
    count = 1 if shared > depth else 0  # the compressed run of shared bytes
    count += 1  # the node where they part
    start = low
    while start < high:
        byte = keys[start][shared]
        end = start + 1
        while end < high and keys[end][shared] == byte:
            end += 1
        count += _rax_count(keys, start, end, shared + 1)
        start = end
    return count


# --- persistence ---------------------------------------------------------------------------


def rewrite_stream(key: bytes, stream: Stream) -> list[list[bytes]]:
    """The commands that rebuild a stream exactly, as Redis 7.0's AOF rewrite writes them:
    one XADD per entry (an empty stream is made by ``XADD key MAXLEN 0 0-1 x y``), XSETID
    with the last ID, entries-added and max-deleted ID, then per group XGROUP CREATE with
    its entries-read, one ``XCLAIM ... TIME RETRYCOUNT JUSTID FORCE`` per pending entry with
    its owner, and XGROUP CREATECONSUMER for consumers with nothing pending."""
    commands: list[list[bytes]] = []
    if stream.length:
        for stream_id, items in stream.range(0, ID_MAX):
            commands.append([b"XADD", key, format_id(stream_id), *items])
    else:
        commands.append([b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"])
    commands.append([b"XSETID", key, format_id(stream.last_id), b"ENTRIESADDED",
                     b"%d" % stream.entries_added, b"MAXDELETEDID", format_id(stream.max_deleted)])
    for group in stream.sorted_groups():
        commands.append([b"XGROUP", b"CREATE", key, group.name, format_id(group.last_id),
                         b"ENTRIESREAD", b"%d" % group.entries_read])
        for consumer in group.sorted_consumers():
            if not consumer.pel:
                commands.append([b"XGROUP", b"CREATECONSUMER", key, group.name, consumer.name])
                continue
            for stream_id, nack in consumer.pel.items():
                commands.append([b"XCLAIM", key, group.name, consumer.name, b"0",
                                 format_id(stream_id), b"TIME", b"%d" % nack.delivery_time,
                                 b"RETRYCOUNT", b"%d" % nack.delivery_count, b"JUSTID",
                                 b"FORCE"])
    return commands


def _pack(stream_id: int) -> bytes:
    return stream_id.to_bytes(16, "big")


def _unpack(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def snapshot_payload(stream: Stream) -> list:
    """A stream as msgpack-encodable data for the snapshot (IDs as 16 big-endian bytes,
    msgpack has no 128-bit integers): the metadata, the nodes as they are (so the node
    boundaries, and with them approximate trimming and XINFO, survive a reload), the groups
    with their pending entries and consumers."""
    nodes = [[_pack(node.master), list(node.fields), node.ms.tolist(), node.seq.tolist(),
              [list(node.entry(position)) for position in range(len(node.values))],
              node.live, node.deleted, node.body, _pack(node.last),
              [[_pack(stream_id), _tombstone_payload(node, stored)]
               for stream_id, stored in node.tombstones]] for node in stream.nodes]
    groups = []
    for group in stream.sorted_groups():
        consumers = [[consumer.name, consumer.seen_time] for consumer in group.sorted_consumers()]
        pending = [[_pack(stream_id), nack.consumer.name if nack.consumer else b"",
                    nack.delivery_time, nack.delivery_count]
                   for stream_id, nack in group.pel.items()]
        groups.append([group.name, _pack(group.last_id), group.entries_read, consumers, pending])
    return [stream.length, _pack(stream.last_id), _pack(stream.max_deleted),
            stream.entries_added, _pack(stream.first_id), nodes, groups]


def _tombstone_payload(node: Node, stored: bytes | tuple[bytes, ...] | list[bytes]) -> list:
    """A deleted entry for msgpack: [0, values] with the master's fields, [1, pairs] without."""
    if stored.__class__ is bytes:
        return [0, [stored]]
    if stored.__class__ is tuple:
        return [0, list(stored)]
    return [1, list(stored)]


def _tombstone_stored(payload: list) -> bytes | tuple[bytes, ...] | list[bytes]:
    own_fields, items = payload
    if own_fields:
        return list(items)
    return items[0] if len(items) == 1 else tuple(items)


def stream_from_snapshot(payload: list) -> Stream:
    """The stream that :func:`snapshot_payload` described."""
    length, last_id, max_deleted, entries_added, first_id, nodes, groups = payload
    stream = Stream()
    stream.length, stream.last_id, stream.max_deleted = length, _unpack(last_id), _unpack(max_deleted)
    stream.entries_added, stream.first_id = entries_added, _unpack(first_id)
    for master, fields, ms, seq, items, live, deleted, body, last, *rest in nodes:
        node = Node(_unpack(master), tuple(fields))
        for stream_id_ms, stream_id_seq, pairs in zip(ms, seq, items, strict=True):
            node.add((stream_id_ms << SEQ_BITS) | stream_id_seq, pairs,
                     tuple(pairs[0::2]) == node.fields)
        node.live, node.deleted, node.body, node.last = live, deleted, body, _unpack(last)
        if rest:  # tombstones (snapshots written before them have none)
            node.tombstones = [(_unpack(stream_id), _tombstone_stored(stored))
                               for stream_id, stored in rest[0]]
        stream.nodes.append(node)
        stream.keys.append(node.master)
    for name, group_last, entries_read, consumers, pending in groups:
        group = Group(name, _unpack(group_last), entries_read)
        for consumer_name, seen_time in consumers:
            group.consumers[consumer_name] = Consumer(consumer_name, seen_time)
        for stream_id, owner, delivery_time, delivery_count in pending:
            consumer = group.consumers.get(owner)
            nack = Nack(consumer, delivery_time, delivery_count)
            group.pel[_unpack(stream_id)] = nack
            if consumer is not None:
                consumer.pel[_unpack(stream_id)] = nack
        stream.groups[name] = group
    return stream


def _register_type_name() -> None:
    """TYPE and SCAN TYPE name a Stream ``stream``."""
    from .keyspace import TYPE_NAMES

    TYPE_NAMES.setdefault(Stream, "stream")


_register_type_name()
