"""The byte level of Redis's replication protocol, without I/O.

``StreamParser`` splits the replication stream into commands and says how many bytes each
took (the replica's offset advances by exactly that, which a general request parser cannot
tell).  The RDB transfer's framing (``$<len>\r\n`` then the bytes, or ``$EOF:<mark>\r\n``
then the bytes up to the 40-byte mark) is read by :mod:`.replica`.
"""

from __future__ import annotations

# A multibulk header or bulk length line longer than this is not Redis's stream: the link
# is dropped instead of buffering without end.
MAX_LINE = 1024
# The largest argument count and bulk length the stream may declare (as Redis's master
# client: proto-max-bulk-len is not applied to the master, but a bound must exist).
MAX_ARGS = 1 << 20
MAX_BULK = 1 << 32
EOF_MARK_SIZE = 40


class StreamError(Exception):
    """The master sent something that is not a command stream."""


class StreamParser:
    """Commands of a replication stream: ``feed(data)``, then ``next()`` until None."""

    __slots__ = ("buffer", "pos")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.pos = 0

    def feed(self, data: bytes) -> None:
        if self.pos and self.pos * 2 >= len(self.buffer):
            del self.buffer[:self.pos]
            self.pos = 0
        self.buffer += data

    def pending(self) -> int:
        return len(self.buffer) - self.pos

    def _line(self, at: int) -> tuple[bytes, int] | None:
        end = self.buffer.find(b"\r\n", at, at + MAX_LINE + 2)
        if end < 0:
            if len(self.buffer) - at > MAX_LINE:
                raise StreamError("line too long in the replication stream")
            return None
        return bytes(self.buffer[at:end]), end + 2

    def next(self) -> tuple[list[bytes], int] | None:
        """The next whole command and its size in bytes, or None until more arrives.
        A bare newline (a master's keep-alive before the RDB) counts as an empty command."""
        buffer = self.buffer
        pos = self.pos
        if pos >= len(buffer):
            return None
        if buffer[pos] == 0x0A:  # "\n": keep-alive, no command
            self.pos = pos + 1
            return [], 1
        if buffer[pos] != 0x2A:  # "*"
            found = self._line(pos)  # an inline command (PING from an old master)
            if found is None:
                return None
            line, after = found
            self.pos = after
            return line.split(), after - pos
        found = self._line(pos + 1)
        if found is None:
            return None
        try:
            count = int(found[0])
        except ValueError:
            raise StreamError("bad multibulk length in the replication stream") from None
        if count > MAX_ARGS:
            raise StreamError("multibulk length too big in the replication stream")
        at = found[1]
        argv: list[bytes] = []
        for _ in range(max(count, 0)):
            if at >= len(buffer):
                return None
            if buffer[at] != 0x24:  # "$"
                raise StreamError("expected '$' in the replication stream")
            found = self._line(at + 1)
            if found is None:
                return None
            try:
                size = int(found[0])
            except ValueError:
                raise StreamError("bad bulk length in the replication stream") from None
            if not 0 <= size <= MAX_BULK:
                raise StreamError("bad bulk length in the replication stream")
            begin = found[1]
            end = begin + size
            if end + 2 > len(buffer):
                return None
            argv.append(bytes(buffer[begin:end]))
            at = end + 2
        self.pos = at
        return argv, at - pos
