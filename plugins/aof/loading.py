"""Reading an AOF: a sans-IO scanner shared by start-up loading and ``trioredis-check-aof``.

The file is plain RESP: arrays of bulk strings, as ``encode_command`` writes them (and as
Redis before 7 wrote its single AOF).  hiredis parses big chunks fast but does not say how many
bytes a reply used, so the scanner counts each command's canonical encoded size; every AOF
writer we know (ours, Redis's) writes the canonical form, and a file that does not is caught
when the count and the bytes fed disagree at the end.  The sizes are summed a parsed group at
a time with C-level passes (``map``/``sum`` over the group), not command by command: loading a
big file is millions of commands, and this bookkeeping was a third of the time.

Why offsets matter: a torn tail is cut back to the end of the last whole command, and a
``MULTI`` whose ``EXEC`` never made it to the file is cut back to *before* its ``MULTI``, so
that a transaction is either whole in the file or absent.  (Redis 7.0 cuts inside the block and
a later restart then resurrects part of the transaction; we do not.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter

import hiredis

CHUNK_SIZE = 1 << 20  # bytes read from the file at a time while loading
FEED_SIZE = 1 << 14  # bytes handed to hiredis at a time
# Commands per batch: big enough to make per-batch costs vanish, small enough that the argv
# lists alive at once stay in a few pools (a load's RSS grows with what it holds at once).
BATCH_COMMANDS = 1024
_TABLE = 1 << 14  # lengths with a precomputed digit count; longer ones are rare and walked
_DIGITS = [len(str(number)) for number in range(_TABLE)]
_LIST_ONLY = {list}
_MULTI_EXEC = (b"multi", b"exec")


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

    def moved(self, start: int) -> ScanEnd:
        """The same end with every offset counted from the file's start, for a scan that
        began at ``start`` (after an RDB preamble)."""
        if not start:
            return self
        return ScanEnd(self.total_size + start, self.valid_size + start, self.torn,
                       None if self.unfinished_multi_at is None
                       else self.unfinished_multi_at + start, self.commands)


class AofScanner:
    """Feed bytes, iterate over whole commands (or over :meth:`batches` of them, what the
    loader runs), then :meth:`finish` at end of file."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self.fed = 0  # bytes fed so far
        self.consumed = 0  # bytes of whole commands parsed so far
        self.commands = 0
        self.multi_at: int | None = None  # offset of an open MULTI
        self._pending: list[bytes] = []  # fed, not yet handed to hiredis
        self._pending_pos = 0
        self._in_reader = 0  # bytes handed to hiredis

    def feed(self, data: bytes) -> None:
        if data:
            self._pending.append(data)
            self.fed += len(data)

    def __iter__(self) -> Iterator[list[bytes]]:
        """Whole commands parsed from what was fed, one by one; raises :class:`AofCorruption`."""
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[list[bytes]]]:
        """Whole commands parsed from what was fed, in lists of about :data:`BATCH_COMMANDS`
        (what came before damage, at the end); raises :class:`AofCorruption` after the commands before it.

        hiredis gets the data in small slices: its buffer handling makes parsing from one big
        buffer several times slower.  What one slice yields is checked at once (types, the
        canonical size, MULTI/EXEC) with a few C-level passes; only a group that fails those
        checks, or holds a MULTI or EXEC, is walked command by command (:meth:`_walk`) to
        find the exact offsets, so every verdict and offset is the same either way."""
        gets = self._reader.gets
        pending = self._pending
        batch: list[list[bytes]] = []
        while True:
            parsed: list[list[bytes]] = []
            append = parsed.append
            damage = None
            try:
                while (argv := gets()) is not False:
                    append(argv)
            except hiredis.ProtocolError as error:
                damage = error
            if parsed and not self._take(parsed):
                good, error = self._walk(parsed)
                batch += good
                if error is not None:
                    if batch:
                        yield batch
                    raise error
            else:
                batch += parsed
            if damage is not None:
                if batch:
                    yield batch
                raise AofCorruption(self.consumed, f"Bad file format ({damage})")
            if not pending or len(batch) >= BATCH_COMMANDS:
                if batch:
                    yield batch
                    batch = []
                if not pending:
                    return
            data = pending[0]
            size = min(FEED_SIZE, len(data) - self._pending_pos)
            self._reader.feed(data, self._pending_pos, size)
            self._in_reader += size
            self._pending_pos += size
            if self._pending_pos == len(data):
                pending.pop(0)
                self._pending_pos = 0

    def _take(self, parsed: list[list[bytes]]) -> bool:
        """Account for a group of commands in bulk: True when all are arrays of bulk strings
        in canonical form within the bytes fed, none is MULTI or EXEC, and no length is past
        the digit table; False (nothing accounted) sends the group to :meth:`_walk`."""
        if set(map(type, parsed)) != _LIST_ONLY:
            return False
        counts = list(map(len, parsed))
        if not all(counts):
            return False
        parts = list(chain.from_iterable(parsed))
        try:
            payload = len(b"".join(parts))  # TypeError unless every part is bytes
            digits = _DIGITS.__getitem__
            size = (3 * len(parsed) + 5 * len(parts) + payload
                    + sum(map(digits, counts)) + sum(map(digits, map(len, parts))))
        except (TypeError, IndexError):
            return False
        if self.consumed + size > self._in_reader:
            return False
        for name in set(map(itemgetter(0), parsed)):
            if 4 <= len(name) <= 5 and name.lower() in _MULTI_EXEC:
                return False
        self.consumed += size
        self.commands += len(parsed)
        return True

    def _walk(self, parsed: list[list[bytes]]) -> tuple[list[list[bytes]], AofCorruption | None]:
        """Account for a group command by command: the commands before the first damage,
        and that damage (None when there is none).  The canonical size is summed by hand,
        several times cheaper than encoding the command again."""
        digits = _DIGITS
        good: list[list[bytes]] = []
        for argv in parsed:
            start = self.consumed
            if argv.__class__ is not list or not argv:
                return good, AofCorruption(start, "Bad file format (not an array of bulk strings)")
            count = len(argv)
            size = 3 + 5 * count + (digits[count] if count < _TABLE else len(str(count)))
            for part in argv:
                if part.__class__ is not bytes:
                    return good, AofCorruption(
                        start, "Bad file format (not an array of bulk strings)")
                length = len(part)
                size += length + (digits[length] if length < _TABLE else len(str(length)))
            if start + size > self._in_reader:
                return good, AofCorruption(start, "Bad file format (not canonical RESP)")
            self.consumed = start + size
            self.commands += 1
            name = argv[0]
            if 4 <= len(name) <= 5:
                name = name.lower()
                if name == b"multi":
                    if self.multi_at is not None:
                        return good, AofCorruption(start, "Unexpected MULTI")
                    self.multi_at = start
                elif name == b"exec":
                    if self.multi_at is None:
                        return good, AofCorruption(start, "Unexpected EXEC")
                    self.multi_at = None
            good.append(argv)
        return good, None

    def offset_of(self, batch: list[list[bytes]], index: int) -> int:
        """The file offset of ``batch[index]``, for the batch :meth:`batches` yielded last
        (it ends at :attr:`consumed`): where to point when that command fails to run."""
        return self.consumed - sum(map(canonical_size, batch[index:]))

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


def canonical_size(argv: list[bytes]) -> int:
    """Bytes of ``argv`` encoded as a RESP array of bulk strings."""
    return 3 + len(str(len(argv))) + sum(5 + len(str(len(part))) + len(part) for part in argv)


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


def scan_file(path: str, start: int = 0) -> tuple[ScanEnd | None, AofCorruption | None]:
    """Scan a file from offset ``start`` (after an RDB preamble) to its end without executing
    it (check-aof): its end, or the first damage, with offsets counted from the file's start."""
    scanner = AofScanner()
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            while chunk := handle.read(CHUNK_SIZE):
                scanner.feed(chunk)
                for _argv in scanner:
                    pass
            handle.seek(start + scanner.consumed)
            return scanner.finish(handle.read()).moved(start), None
    except AofCorruption as error:
        if start:
            error = AofCorruption(start + error.offset, error.reason)
        return None, error
