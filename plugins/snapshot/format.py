"""The snapshot file format (``dump.trdb``): written by a forked child, read through mmap.

Layout::

    b"TRDB" + 4 ASCII digits          header: magic and format version (b"TRDB0001")
    u64 length + msgpack map          metadata (format, created_ms, databases, and
                                      ``preamble``: commands replayed first, when any)
    u64 length + msgpack array        one record per non-empty database: [index, data, expires]
    ...
    u64 0                             the end marker
    16 bytes                          BLAKE2b-128 of every byte before it

``data`` is the database's key -> value map and ``expires`` its key -> absolute unix time in ms
map.  Values: a string is msgpack bin, a hash a map of bin to bin, a set an array of bin; the
types msgpack has no shape for are extensions whose payload is itself msgpack: a list (code
1, array of bin), a sorted set (code 2, flat array ``[member, score, ...]`` with float64
scores, inf included), a plugin's value (code 3, ``[tag, payload]`` from the
``trioredis_snapshot_encode`` hook).

Why one record per database, encoded by msgspec from the live dicts: the child then walks
the dataset in C with borrowed references and never writes to an object's reference count.
A Python loop over the keys would increment every key's and value's count, which copies
every page of the dataset in the child (copy-on-write): measured on 1,000,000 small keys,
93 MB of copied pages with a Python loop against 18 MB (mostly the output buffer) this way.

Why mmap to read it: the records are decoded straight from the file's pages (page cache,
shared and reclaimable), so loading holds no second copy of the dataset in the process's own
memory; the only full copy is the keyspace being built.

Why the checksum is verified before anything is decoded: a bit flipped anywhere (header,
a length, a value, the end marker, the checksum itself) is refused before a single key
reaches the keyspace, so a damaged file never loads partly (DEBUG RELOAD included).

This module touches no trio object: :func:`write_snapshot` runs inside the forked child.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any, BinaryIO

import msgspec
from msgspec.msgpack import Ext

MAGIC = b"TRDB"
FORMAT_VERSION = 1
HEADER_SIZE = 8
DIGEST_SIZE = 16
LENGTH = struct.Struct(">Q")

# Extension codes of the value types msgpack has no shape for.
EXT_LIST, EXT_ZSET, EXT_PLUGIN = 1, 2, 3

# [index, data, expires]: typed, so sets decode as sets and a damaged shape is an error.
_Value = bytes | set[bytes] | dict[bytes, bytes] | Ext
_DatabaseRecord = tuple[int, dict[bytes, _Value], dict[bytes, int]]


class SnapshotError(Exception):
    """The file cannot be loaded: damaged, truncated, or of a newer format.  The message
    names the file, the offset and the reason."""


def header() -> bytes:
    return MAGIC + b"%04d" % FORMAT_VERSION


def _hasher() -> Any:
    return hashlib.blake2b(digest_size=DIGEST_SIZE)


# --- writing -----------------------------------------------------------------------------


class _Writer:
    """Writes length-prefixed records, hashing every byte."""

    def __init__(self, out: BinaryIO, encoder: msgspec.msgpack.Encoder) -> None:
        self.out = out
        self.encoder = encoder
        self.digest = _hasher()
        self.buffer = bytearray()

    def raw(self, data: bytes | bytearray) -> None:
        self.digest.update(data)
        self.out.write(data)

    def record(self, obj: Any) -> None:
        self.encoder.encode_into(obj, self.buffer, LENGTH.size)
        LENGTH.pack_into(self.buffer, 0, len(self.buffer) - LENGTH.size)
        self.raw(self.buffer)

    def finish(self) -> None:
        self.raw(LENGTH.pack(0))
        self.out.write(self.digest.digest())


def value_encoder(
    encode_plugin: Callable[[Any], tuple[str, Any] | None], zset_class: type | None
) -> msgspec.msgpack.Encoder:
    """An encoder for keyspace values: bytes, dict and set natively, the rest as extensions."""
    inner = msgspec.msgpack.Encoder()

    def enc_hook(value: Any) -> Ext:
        kind = value.__class__
        if kind is deque:
            return Ext(EXT_LIST, inner.encode(list(value)))
        if zset_class is not None and kind is zset_class:
            flat: list[Any] = []
            for member, score in value.items():
                flat += (member, float(score))
            return Ext(EXT_ZSET, inner.encode(flat))
        encoded = encode_plugin(value)
        if encoded is None:
            raise TypeError(f"no plugin can snapshot a value of type "
                            f"{kind.__module__}.{kind.__qualname__}")
        tag, payload = encoded
        return Ext(EXT_PLUGIN, inner.encode([tag, payload]))

    return msgspec.msgpack.Encoder(enc_hook=enc_hook)


def write_snapshot(
    out: BinaryIO,
    databases: list[Any],
    encode_plugin: Callable[[Any], tuple[str, Any] | None],
    zset_class: type | None,
    preamble: list[list[bytes]] | None = None,
) -> int:
    """Write every database (objects with ``index``, ``data``, ``expires``) to ``out``;
    returns the number of keys written.  Keys already expired are written too (cheaper than
    filtering them in Python, see the module docstring) and dropped at load.  Raises
    TypeError for a value no plugin can encode: a snapshot that silently drops keys would be
    worse than none."""
    writer = _Writer(out, value_encoder(encode_plugin, zset_class))
    writer.raw(header())
    metadata: dict[str, Any] = {"format": FORMAT_VERSION, "created_ms": int(time.time() * 1000),
                                "databases": len(databases)}
    if preamble:  # commands that rebuild state outside the keyspace (function libraries)
        metadata["preamble"] = preamble
    writer.record(metadata)
    keys = 0
    for db in databases:
        if db.data:
            keys += len(db.data)
            writer.record([db.index, db.data, db.expires])
    writer.finish()
    return keys


def write_snapshot_file(
    path: str,
    databases: list[Any],
    encode_plugin: Callable[[Any], tuple[str, Any] | None],
    zset_class: type | None,
    preamble: list[list[bytes]] | None = None,
) -> int:
    """Write the snapshot to ``path`` and fsync it before returning (in the child: the parent
    renames it over the real file only after this returned, so the rename never exposes a
    file whose data is not on disk)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with open(fd, "wb", buffering=1 << 20) as out:
        keys = write_snapshot(out, databases, encode_plugin, zset_class, preamble)
        out.flush()
        os.fsync(out.fileno())
    return keys


# --- reading -----------------------------------------------------------------------------


class SnapshotFile:
    """A snapshot opened for reading: ``verify()``, then ``database_records()`` and
    ``decode_database()`` each record.  Use as a context manager (the file is mapped)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = 0
        self.version = 0
        self.metadata: dict[str, Any] = {}
        self._handle = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._map: mmap.mmap | None = None
        self.view = memoryview(b"")
        self._records: list[tuple[int, int, int]] = []  # (offset of length, start, end)
        self._decoder = msgspec.msgpack.Decoder(_DatabaseRecord)
        try:
            self.size = os.fstat(self._handle.fileno()).st_size
            if self.size:
                self._map = mmap.mmap(self._handle.fileno(), 0, access=mmap.ACCESS_READ)
                self.view = memoryview(self._map)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.view.release()
        if self._map is not None:
            self._map.close()
            self._map = None
        self._handle.close()

    def __enter__(self) -> SnapshotFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, reason: str, offset: int) -> SnapshotError:
        return SnapshotError(f"Bad snapshot file {self.path} at offset {offset}: {reason}")

    def verify_header(self) -> None:
        data = bytes(self.view[:HEADER_SIZE])
        if len(data) < HEADER_SIZE or data[:4] != MAGIC:
            raise self._fail(f"not a trioredis snapshot (starts with {data[:4]!r}, expected "
                             f"{MAGIC!r})", 0)
        digits = data[4:]
        if not digits.isdigit():
            raise self._fail(f"damaged header: format version {digits!r} is not a number", 4)
        self.version = int(digits)
        if self.version > FORMAT_VERSION:
            raise self._fail(f"format version {self.version} is newer than this server reads "
                             f"(up to {FORMAT_VERSION}); upgrade trioredis to load it", 4)
        if self.version < 1:
            raise self._fail(f"damaged header: format version {self.version}", 4)

    def verify_checksum(self) -> None:
        """Hash everything before the stored digest (hashlib releases the GIL on big
        buffers, so this may run in a worker thread)."""
        if self.size < HEADER_SIZE + LENGTH.size + DIGEST_SIZE:
            raise self._fail("the file is too short to be a snapshot: truncated", self.size)
        body_end = self.size - DIGEST_SIZE
        digest = _hasher()
        step = 1 << 24
        for start in range(0, body_end, step):
            digest.update(self.view[start:min(body_end, start + step)])
        computed = digest.digest()
        stored = bytes(self.view[body_end:])
        if stored != computed:
            raise self._fail(f"checksum mismatch (stored {stored.hex()}, computed "
                             f"{computed.hex()}): the file is damaged or truncated", body_end)

    def _walk(self) -> None:
        """Check the record grid: lengths that lead exactly to the end marker and digest."""
        offset = HEADER_SIZE
        body_end = self.size - DIGEST_SIZE
        while True:
            if offset + LENGTH.size > body_end:
                raise self._fail("the end marker is missing: truncated or damaged", offset)
            (length,) = LENGTH.unpack_from(self.view, offset)
            if length == 0:
                if offset + LENGTH.size != body_end:
                    raise self._fail("data after the end marker: damaged", offset)
                return
            start = offset + LENGTH.size
            if length > body_end - start:
                raise self._fail(f"record of {length} bytes runs past the end of the file: "
                                 "truncated or damaged", offset)
            self._records.append((offset, start, start + length))
            offset = start + length

    def verify(self) -> None:
        """Everything but decoding the databases: header, checksum, record grid, metadata."""
        self.verify_header()
        self.verify_checksum()
        self._walk()
        if not self._records:
            raise self._fail("the metadata record is missing", HEADER_SIZE)
        offset, start, end = self._records[0]
        try:
            metadata = msgspec.msgpack.decode(self.view[start:end])
        except Exception as error:  # noqa: BLE001 - any decoding failure is damage
            raise self._fail(f"undecodable metadata ({error})", offset) from None
        if not isinstance(metadata, dict):
            raise self._fail("damaged metadata record", offset)
        self.metadata = metadata

    def database_records(self) -> list[tuple[int, int, int]]:
        """(offset, start, end) of each database record, after :meth:`verify`."""
        return self._records[1:]

    def decode_database(self, offset: int, start: int, end: int) -> tuple[int, dict[bytes, Any], dict[bytes, int]]:
        """(index, data, expires) of one record; values of extension types are left as
        :class:`msgspec.msgpack.Ext` for :func:`materialize`.  May run in a worker thread."""
        try:
            index, data, expires = self._decoder.decode(self.view[start:end])
        except Exception as error:  # noqa: BLE001 - any decoding failure is damage
            raise self._fail(f"undecodable database record ({error})", offset) from None
        return index, data, expires


def materialize(
    data: dict[bytes, Any],
    zset_class: type | None,
    decode_plugin: Callable[[str, Any], Any] | None,
) -> dict[str, int]:
    """Replace the extension values of a decoded database by keyspace values, in place;
    returns counts by type name.  Raises ValueError on an entry that cannot be built."""
    inner = msgspec.msgpack.Decoder()
    counts: dict[str, int] = {}
    for key, value in data.items():
        if value.__class__ is not Ext:
            continue
        code, payload = value.code, inner.decode(value.data)
        if code == EXT_LIST:
            data[key] = deque(payload)
            name = "list"
        elif code == EXT_ZSET:
            if zset_class is None:
                raise ValueError("sorted sets are not supported by this server")
            if len(payload) % 2:
                raise ValueError(f"sorted set {key!r} has an odd number of items")
            it = iter(payload)
            data[key] = zset_class(zip(it, it, strict=True))
            name = "zset"
        elif code == EXT_PLUGIN:
            tag, plugin_payload = payload
            name = f"plugin:{tag}"
            if decode_plugin is not None:
                decoded = decode_plugin(tag, plugin_payload)
                if decoded is None:
                    raise ValueError(f"no plugin decodes values of type tag {tag!r} (key {key!r})")
                data[key] = decoded
        else:
            raise ValueError(f"unknown value type code {code} (key {key!r})")
        counts[name] = counts.get(name, 0) + 1
    return counts


def drop_expired(data: dict[bytes, Any], expires: dict[bytes, int], now_ms: int) -> int:
    """Remove keys whose expiry passed (as Redis does loading on a master) and expiries of
    keys that are not there; returns how many keys were dropped."""
    dropped = 0
    for key, when in list(expires.items()):
        if key not in data:
            del expires[key]
        elif when <= now_ms:
            del data[key]
            del expires[key]
            dropped += 1
    return dropped
