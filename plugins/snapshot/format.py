"""The snapshot file format (``dump.trdb``): writing in a forked child, reading as a stream.

Layout::

    b"TRDB" + 4 ASCII digits         header: magic and format version (b"TRDB0001")
    u32 length + msgpack record      the first record: a map of metadata
    u32 length + msgpack record ...  data records: [db, key, type, value, expire, key, ...]
    u32 0                            the end marker
    16 bytes                         BLAKE2b-128 of every byte before it

Why records of a bounded size: loading reads one record at a time, so the only full copy of
the dataset in memory is the keyspace being built, never the file's contents as well.  A
collection larger than :data:`PART_ITEMS` items is written as several consecutive entries for
the same key, each holding a part; the reader merges consecutive entries of one key.  Keys
are unique within a database, so two consecutive entries of one key can only be such parts.

Why a checksum over everything: a bit flipped anywhere (header, a length prefix, a value, the
end marker, the checksum itself) makes the digest differ, and a wrong length prefix makes the
reader leave the record grid, which ends in a short read or a digest mismatch.  The reader
hashes as it reads, so verification costs no second pass.

Values: strings are msgpack bin; lists and sets arrays of bin; hashes maps of bin to bin;
sorted sets flat arrays ``[member, score, ...]`` with scores as float64 (exact, inf included);
expiry the absolute unix time in ms or nil.  A plugin's value is ``[tag, payload]`` from the
``trioredis_snapshot_encode`` hook.

This module touches no trio object: :func:`write_snapshot` runs inside the forked child.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import msgspec

MAGIC = b"TRDB"
FORMAT_VERSION = 1
HEADER_SIZE = 8
DIGEST_SIZE = 16
LENGTH = struct.Struct(">I")
# The biggest record a reader accepts: far above what the writer produces (a few MB), far
# below what a flipped high bit of a length prefix would ask for.
MAX_RECORD = 1 << 30

# Type codes of an entry.
STRING, LIST, HASH, SET, ZSET, PLUGIN = range(6)
TYPE_NAMES = {STRING: "string", LIST: "list", HASH: "hash", SET: "set", ZSET: "zset",
              PLUGIN: "plugin"}

# A record is flushed once it holds this many keys or items (bounded memory on both sides).
RECORD_ITEMS = 4096
# A collection is cut into parts of at most this many items (or pairs).
PART_ITEMS = 4096


class SnapshotError(Exception):
    """The file cannot be loaded: damaged, truncated, or of a newer format.  The message
    names the file, the offset and the reason."""


def header() -> bytes:
    return MAGIC + b"%04d" % FORMAT_VERSION


def _hasher() -> Any:
    return hashlib.blake2b(digest_size=DIGEST_SIZE)


# --- writing -----------------------------------------------------------------------------


class _RecordWriter:
    """Buffers entries and writes them as length-prefixed records, hashing every byte."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = _hasher()
        self.encoder = msgspec.msgpack.Encoder()
        self.buffer = bytearray()
        self.entries: list[Any] = []
        self.db = -1
        self.weight = 0
        self.keys = 0

    def raw(self, data: bytes) -> None:
        self.digest.update(data)
        self.out.write(data)

    def record(self, obj: Any) -> None:
        self.encoder.encode_into(obj, self.buffer, 4)
        LENGTH.pack_into(self.buffer, 0, len(self.buffer) - 4)
        self.raw(self.buffer)

    def add(self, db: int, key: bytes, code: int, value: Any, expire: int | None, weight: int) -> None:
        if db != self.db:
            self.flush()
            self.db = db
            self.entries = [db]
        self.entries += (key, code, value, expire)
        self.weight += weight
        if self.weight >= RECORD_ITEMS:
            self.flush()
            self.entries = [db]

    def flush(self) -> None:
        if len(self.entries) > 1:
            self.record(self.entries)
        self.entries = [self.db]
        self.weight = 0

    def finish(self) -> None:
        self.flush()
        self.raw(LENGTH.pack(0))
        self.out.write(self.digest.digest())


def _parts(items: list[Any], size: int = PART_ITEMS) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def write_snapshot(
    out: BinaryIO,
    databases: list[Any],
    encode_plugin: Callable[[Any], tuple[str, Any] | None],
    zset_class: type | None,
) -> int:
    """Write every live key of ``databases`` (objects with ``index``, ``data``, ``expires``)
    to ``out``; returns the number of keys written.  Raises ValueError for a value no
    plugin can encode: a snapshot that silently drops keys would be worse than none."""
    writer = _RecordWriter(out)
    writer.raw(header())
    writer.record({"format": FORMAT_VERSION, "created_ms": int(time.time() * 1000),
                   "databases": len(databases)})
    now = int(time.time() * 1000)
    keys = 0
    for db in databases:
        index = db.index
        expires = db.expires
        # Iterate the dict itself: the child owns a frozen copy-on-write view of it, and a
        # list of its items would cost memory proportional to the dataset.
        for key, value in db.data.items():
            expire = expires.get(key) if expires else None
            if expire is not None and expire <= now:
                continue
            keys += 1
            kind = value.__class__
            if kind is bytes:
                writer.add(index, key, STRING, value, expire, 1)
            elif kind is deque:
                items = list(value) if len(value) <= PART_ITEMS else None
                if items is not None:
                    writer.add(index, key, LIST, items, expire, len(items) + 1)
                else:
                    for part in _parts(list(value)):
                        writer.add(index, key, LIST, part, expire, len(part))
            elif kind is dict:
                if len(value) <= PART_ITEMS:
                    writer.add(index, key, HASH, value, expire, len(value) + 1)
                else:
                    pairs = list(value.items())
                    for part in _parts(pairs):
                        writer.add(index, key, HASH, dict(part), expire, len(part))
            elif kind is set:
                members = list(value)
                for part in _parts(members):
                    writer.add(index, key, SET, part, expire, len(part) + 1)
            elif zset_class is not None and kind is zset_class:
                flat: list[Any] = []
                for member, score in value.items():
                    flat += (member, float(score))
                    if len(flat) >= 2 * PART_ITEMS:
                        writer.add(index, key, ZSET, flat, expire, len(flat) // 2)
                        flat = []
                if flat or not len(value):
                    writer.add(index, key, ZSET, flat, expire, len(flat) // 2 + 1)
            else:
                encoded = encode_plugin(value)
                if encoded is None:
                    raise ValueError(
                        f"no plugin can snapshot the value of key {key!r} in db {index} "
                        f"({kind.__module__}.{kind.__qualname__})"
                    )
                tag, payload = encoded
                writer.add(index, key, PLUGIN, [tag, payload], expire, 1)
    writer.finish()
    return keys


def write_snapshot_file(
    path: str,
    databases: list[Any],
    encode_plugin: Callable[[Any], tuple[str, Any] | None],
    zset_class: type | None,
) -> int:
    """Write the snapshot to ``path`` and fsync it before returning (in the child: the parent
    renames it over the real file only after this returned, so the rename never exposes a
    file whose data is not on disk)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with open(fd, "wb", buffering=1 << 20) as out:
        keys = write_snapshot(out, databases, encode_plugin, zset_class)
        out.flush()
        os.fsync(out.fileno())
    return keys


# --- reading -----------------------------------------------------------------------------


class SnapshotReader:
    """Reads a snapshot record by record, verifying as it goes.

    Iterating yields ``(db, entries)`` where ``entries`` is the flat list ``[key, code, value,
    expire, ...]`` of one record.  :attr:`metadata` is set once the first record is read.  The
    digest is checked when the end marker is reached; any damage raises
    :class:`SnapshotError`, so a caller that consumed every record has a verified file."""

    def __init__(self, handle: BinaryIO, name: str, size: int | None = None) -> None:
        self.handle = handle
        self.name = name
        self.size = size
        self.offset = 0
        self.digest = _hasher()
        self.decoder = msgspec.msgpack.Decoder()
        self.metadata: dict[str, Any] = {}
        self.version = 0
        self._header_read = False

    def _fail(self, reason: str, offset: int | None = None) -> SnapshotError:
        where = self.offset if offset is None else offset
        return SnapshotError(f"Bad snapshot file {self.name} at offset {where}: {reason}")

    def _read(self, count: int, what: str) -> bytes:
        data = self.handle.read(count)
        if len(data) != count:
            raise self._fail(
                f"unexpected end of file reading {what} ({len(data)} of {count} bytes): "
                "the file is truncated or damaged"
            )
        self.digest.update(data)
        self.offset += count
        return data

    def read_header(self) -> None:
        self._header_read = True
        data = self._read(HEADER_SIZE, "the header")
        if data[:4] != MAGIC:
            raise self._fail(f"not a trioredis snapshot (magic {data[:4]!r}, expected {MAGIC!r})", 0)
        digits = data[4:]
        if not digits.isdigit():
            raise self._fail(f"damaged header: format version {digits!r} is not a number", 4)
        self.version = int(digits)
        if self.version > FORMAT_VERSION:
            raise self._fail(
                f"format version {self.version} is newer than this server reads "
                f"(up to {FORMAT_VERSION}); upgrade trioredis to load it", 4
            )
        if self.version < 1:
            raise self._fail(f"damaged header: format version {self.version}", 4)
        metadata = self._record()
        if not isinstance(metadata, dict):
            raise self._fail("damaged metadata record")
        self.metadata = metadata

    def _record(self) -> Any:
        start = self.offset
        (length,) = LENGTH.unpack(self._read(4, "a record length"))
        if length == 0:
            return None
        if length > MAX_RECORD:
            raise self._fail(f"record length {length} is impossible: the file is damaged", start)
        if self.size is not None and self.offset + length + 4 + DIGEST_SIZE > self.size:
            raise self._fail(
                f"record of {length} bytes runs past the end of the file: truncated or damaged",
                start,
            )
        payload = self._read(length, "a record")
        try:
            return self.decoder.decode(payload)
        except Exception as error:  # noqa: BLE001 - DecodeError, bad UTF-8, anything: damage
            raise self._fail(f"undecodable record ({error}): the file is damaged", start) from None

    def _verify_end(self) -> None:
        expected = self.digest.digest()
        stored = self.handle.read(DIGEST_SIZE)
        if len(stored) != DIGEST_SIZE:
            raise self._fail("the checksum at the end is missing: the file is truncated")
        if stored != expected:
            raise self._fail(
                f"checksum mismatch (stored {stored.hex()}, computed {expected.hex()}): "
                "the file is damaged"
            )
        self.offset += DIGEST_SIZE
        if self.handle.read(1):
            raise self._fail("data after the checksum: the file is damaged")

    def records(self) -> Iterator[tuple[int, list[Any]]]:
        if not self._header_read:
            self.read_header()
        while True:
            start = self.offset
            record = self._record()
            if record is None:
                self._verify_end()
                return
            if (not isinstance(record, list) or len(record) % 4 != 1
                    or not isinstance(record[0], int)):
                raise self._fail("malformed data record: the file is damaged", start)
            yield record[0], record
