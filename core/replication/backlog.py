"""The replication backlog: the newest bytes of the replication stream, by offset.

Offsets count bytes of the stream since the backlog was created, as Redis's
``master_repl_offset`` does: the first byte fed has offset ``first`` (one more than the
offset when the backlog was made), the last one ``offset``.  A partial resynchronisation
continues from any offset still held.

Why one buffer for the backlog and for the replicas' pending output: Redis 7 shares one
replication buffer between the backlog and every replica's output.  Here each attached
replica is only a read position into this buffer, so feeding a command costs one append
whatever the number of replicas; bytes are dropped once they are older than
``repl-backlog-size`` *and* every replica has sent them (a replica that falls further
behind than its output limit is disconnected, see :mod:`.master`).
"""

from __future__ import annotations

from collections.abc import Iterable

# Trimming moves the kept bytes to the front of the buffer: done only once the dead part is
# at least this big (and a fair share of the buffer), so a busy stream trims rarely.
TRIM_MIN_BYTES = 1 << 20


class Backlog:
    """The stream's bytes from offset ``start`` to ``offset`` (inclusive, 1-based)."""

    __slots__ = ("buffer", "start", "offset", "size")

    def __init__(self, offset: int, size: int) -> None:
        self.buffer = bytearray()
        self.start = offset + 1  # offset of buffer[0]
        self.offset = offset  # offset of the last byte fed (master_repl_offset)
        self.size = size  # repl-backlog-size

    def append(self, data: bytes) -> None:
        self.buffer += data
        self.offset += len(data)

    @property
    def first(self) -> int:
        """repl_backlog_first_byte_offset: the oldest offset a partial resync can ask for."""
        return max(self.start, self.offset + 1 - self.size)

    @property
    def histlen(self) -> int:
        """repl_backlog_histlen: how many bytes the backlog holds for partial resyncs."""
        return self.offset + 1 - self.first

    def holds(self, wanted: int) -> bool:
        """Whether a replica that wants the stream from offset ``wanted`` can continue."""
        return self.first <= wanted <= self.offset + 1

    def read(self, position: int, limit: int) -> bytes:
        """Up to ``limit`` bytes from offset ``position`` (which must still be held)."""
        begin = position - self.start
        if begin < 0:
            raise ValueError("offset no longer held by the backlog")
        return bytes(self.buffer[begin:begin + limit])

    def trim(self, positions: Iterable[int]) -> None:
        """Drop bytes older than the backlog's size that no replica still has to send
        (``positions``: each replica's next offset to send)."""
        keep_from = self.offset + 1 - self.size
        for position in positions:
            keep_from = min(keep_from, position)
        dead = keep_from - self.start
        if dead >= TRIM_MIN_BYTES and dead * 2 >= len(self.buffer):
            del self.buffer[:dead]
            self.start = keep_from

    def resize(self, size: int) -> None:
        self.size = size

    def memory(self) -> int:
        return len(self.buffer)
