"""Reading an AOF: a sans-IO scanner shared by start-up loading and ``trioredis-check-aof``.

The file is plain RESP: arrays of bulk strings, as ``encode_command`` writes them (and as
Redis before 7 wrote its single AOF).  hiredis parses big chunks fast but does not say how many
bytes a reply used, so the scanner counts each command's canonical encoded size; every AOF
writer we know (ours, Redis's) writes the canonical form, and a file that does not is caught
when the count and the bytes fed disagree at the end.

Why offsets matter: a torn tail is cut back to the end of the last whole command, and a
``MULTI`` whose ``EXEC`` never made it to the file is cut back to *before* its ``MULTI``, so
that a transaction is either whole in the file or absent.  (Redis 7.0 cuts inside the block and
a later restart then resurrects part of the transaction; we do not.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import hiredis

CHUNK_SIZE = 1 << 20  # bytes read from the file at a time while loading
FEED_SIZE = 1 << 14  # bytes handed to hiredis at a time
_DIGITS = [len(str(number)) for number in range(1000)]


class AofCorruption(Exception):
    """Damage that is not a torn tail: the file cannot be loaded as it is."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"{reason} at offset {offset}")
        self.offset = offset
        self.reason = reason


@dataclass(frozen=True)
class ScanEnd:
    """How a file ended, once every byte was fed.

    ``valid_size``: the bytes that form whole commands and whole transactions; everything
    after it is a torn tail (``torn`` is True when there is one).  ``unfinished_multi_at``:
    the offset of a ``MULTI`` with no ``EXEC`` (then ``valid_size`` equals it)."""

    total_size: int
    valid_size: int
    torn: bool
    unfinished_multi_at: int | None
    commands: int


class AofScanner:
    """Feed bytes, iterate over whole commands, then :meth:`finish` at end of file."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self.fed = 0  # bytes fed so far
        self.consumed = 0  # bytes of whole commands parsed so far
        self.commands = 0
        self.command_start = 0  # offset of the last command iterated
        self.multi_at: int | None = None  # offset of an open MULTI
        self._pending: list[bytes] = []  # fed, not yet handed to hiredis
        self._pending_pos = 0
        self._in_reader = 0  # bytes handed to hiredis

    def feed(self, data: bytes) -> None:
        if data:
            self._pending.append(data)
            self.fed += len(data)

    def __iter__(self) -> Iterator[list[bytes]]:
        """Whole commands parsed from what was fed; raises :class:`AofCorruption`.

        hiredis gets the data in small slices: its buffer handling makes parsing from one big
        buffer several times slower.  The canonical size is summed by hand (a table of digit
        counts), several times cheaper than encoding the command again."""
        reader = self._reader
        pending = self._pending
        digits = _DIGITS
        while True:
            start = self.command_start = self.consumed
            try:
                argv = reader.gets()
            except hiredis.ProtocolError as error:
                raise AofCorruption(start, f"Bad file format ({error})") from None
            if argv is False:
                if not pending:
                    return
                data = pending[0]
                size = min(FEED_SIZE, len(data) - self._pending_pos)
                reader.feed(data, self._pending_pos, size)
                self._in_reader += size
                self._pending_pos += size
                if self._pending_pos == len(data):
                    pending.pop(0)
                    self._pending_pos = 0
                continue
            if argv.__class__ is not list or not argv:
                raise AofCorruption(start, "Bad file format (not an array of bulk strings)")
            count = len(argv)
            size = 3 + 5 * count + (digits[count] if count < 1000 else len(str(count)))
            for part in argv:
                if part.__class__ is not bytes:
                    raise AofCorruption(start, "Bad file format (not an array of bulk strings)")
                length = len(part)
                size += length + (digits[length] if length < 1000 else len(str(length)))
            self.consumed = start + size
            if self.consumed > self._in_reader:
                raise AofCorruption(start, "Bad file format (not canonical RESP)")
            self.commands += 1
            name = argv[0]
            if 4 <= len(name) <= 5:
                name = name.lower()
                if name == b"multi":
                    if self.multi_at is not None:
                        raise AofCorruption(start, "Unexpected MULTI")
                    self.multi_at = start
                elif name == b"exec":
                    if self.multi_at is None:
                        raise AofCorruption(start, "Unexpected EXEC")
                    self.multi_at = None
            yield argv

    def finish(self, tail: bytes = b"") -> ScanEnd:
        """The verdict once the whole file was fed and iterated; ``tail`` is the file from
        :attr:`consumed` to the end (what no whole command covered)."""
        if self.consumed < self.fed and not is_torn_command(tail):
            # Complete, or not a command prefix at all: damage, not a torn tail.
            raise AofCorruption(self.consumed, "Bad file format (not a torn command)")
        torn = self.consumed < self.fed
        valid = self.consumed if self.multi_at is None else self.multi_at
        return ScanEnd(self.fed, valid, torn or self.multi_at is not None, self.multi_at,
                       self.commands)


def is_torn_command(data: bytes) -> bool:
    """True when ``data`` is a strict prefix of one canonical RESP command (what a crash in
    the middle of an append leaves), False when it is complete or malformed."""
    pos = 0

    def line() -> int | None:
        nonlocal pos
        end = data.find(b"\r\n", pos)
        if end < 0:
            rest = data[pos + 1:]
            if rest.endswith(b"\r"):
                rest = rest[:-1]
            if rest and not rest.isdigit():
                raise ValueError
            pos = len(data)
            return None
        number = int(data[pos + 1:end])
        pos = end + 2
        return number

    try:
        if not data.startswith(b"*"):
            return False
        count = line()
        if count is None:
            return True
        for _ in range(count):
            if pos >= len(data):
                return True
            if data[pos:pos + 1] != b"$":
                return False
            size = line()
            if size is None:
                return True
            if pos + size + 2 > len(data):
                return data[pos + size:pos + size + 2] in (b"", b"\r")
            if data[pos + size:pos + size + 2] != b"\r\n":
                return False
            pos += size + 2
        return False  # complete
    except ValueError:
        return False


def scan_file(path: str) -> tuple[ScanEnd | None, AofCorruption | None]:
    """Scan a whole file without executing it (check-aof): its end, or the first damage."""
    scanner = AofScanner()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                scanner.feed(chunk)
                for _argv in scanner:
                    pass
            handle.seek(scanner.consumed)
            return scanner.finish(handle.read()), None
    except AofCorruption as error:
        return None, error
