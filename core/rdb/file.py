"""Whole RDB files (``dump.rdb``) and DUMP payloads.

A file::

    b"REDIS" + 4 digits                  the version: written 0010 (Redis 7.0), read 0001-0010
    AUX name value ...                   redis-ver, redis-bits, ctime, used-mem, aof-base
    SELECTDB n, RESIZEDB size expires    per non-empty database, then its keys:
      [EXPIRETIME_MS u64] [IDLE n | FREQ u8] type key value
    EOF, CRC-64 (u64 little-endian)      over every byte before it; 0 when rdbchecksum is off

A DUMP payload is one value (type byte and value bytes) followed by the RDB version as two
little-endian bytes and the CRC-64 of everything before it.

Reading verifies the checksum over the whole file before a single key is decoded, so a
damaged file never loads partly.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .checksum import crc64
from .errors import EmptyValue, RdbError
from .values import (
    DEFAULT_ENCODINGS,
    TYPE_STRING,
    Encodings,
    Reader,
    decode_value,
    encode_value,
    length,
    string,
)

RDB_VERSION = 10
MAGIC = b"REDIS"
REDIS_VERSION = b"7.0.15"  # what redis-server 7.0.15 writes as redis-ver

OPCODE_FUNCTION2 = 245
OPCODE_FUNCTION = 246  # Redis 7.0 release candidates
OPCODE_MODULE_AUX = 247
OPCODE_IDLE = 248
OPCODE_FREQ = 249
OPCODE_AUX = 250
OPCODE_RESIZEDB = 251
OPCODE_EXPIRETIME_MS = 252
OPCODE_EXPIRETIME = 253
OPCODE_SELECTDB = 254
OPCODE_EOF = 255

_EXPIRE_MS = bytes((OPCODE_EXPIRETIME_MS,))
_STRING_TYPE = bytes((TYPE_STRING,))

# The first version that ends a file with a CRC-64.
FIRST_CHECKSUM_VERSION = 5
# Written output goes to the file in blocks about this large (and through the CRC).
WRITE_BLOCK = 1 << 20
RECORDS_PER_BATCH = 4096

_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")  # EXPIRETIME_MS: a signed 64-bit ms time
_I32 = struct.Struct("<i")  # EXPIRETIME: seconds, a signed 32-bit time_t as Redis reads it


# --- DUMP payloads -------------------------------------------------------------------------


def dump_payload(value: Any, enc: Encodings = DEFAULT_ENCODINGS,
                 promoted: bool | None = None) -> bytes:
    """DUMP's reply for ``value`` (``promoted``: see :func:`encode_value`)."""
    kind, body = encode_value(value, enc, promoted)
    head = bytes((kind,)) + body + RDB_VERSION.to_bytes(2, "little")
    return head + _U64.pack(crc64(head))


def functions_payload(codes: Iterable[bytes], compress: bool = True) -> bytes:
    """FUNCTION DUMP's reply: one FUNCTION2 record per library's code (a string as the RDB
    file writes it, LZF-compressed when ``compress`` and it saves bytes), then the version
    and CRC-64 footer of every DUMP payload."""
    head = b"".join(bytes((OPCODE_FUNCTION2,)) + string(code, compress) for code in codes)
    head += RDB_VERSION.to_bytes(2, "little")
    return head + _U64.pack(crc64(head))


class NotFunctions(RdbError):
    """A payload record that is not a function library (FUNCTION RESTORE of a key's DUMP)."""


def load_functions_payload(payload: bytes) -> list[bytes]:
    """The library codes of a payload that passed :func:`payload_is_valid`; NotFunctions
    when a record is not a FUNCTION2 one, RdbError when the records do not parse."""
    reader = Reader(payload, 0, len(payload) - 10)
    codes = []
    while reader.pos < reader.end:
        if reader.byte() != OPCODE_FUNCTION2:
            raise NotFunctions("given type is not a function")
        codes.append(reader.string())
    return codes


def payload_is_valid(payload: bytes, check_crc: bool = True) -> bool:
    """RESTORE's first check (Redis's ``verifyDumpPayload``): long enough, a version this
    codec reads, and (unless ``check_crc`` is off: DEBUG SET-SKIP-CHECKSUM-VALIDATION) a
    matching CRC-64."""
    if len(payload) < 10:
        return False
    version = int.from_bytes(payload[-10:-8], "little")
    if version > RDB_VERSION:
        return False
    return not check_crc or _U64.unpack(payload[-8:])[0] == crc64(payload[:-8])


def load_payload(payload: bytes) -> Any:
    """The value of a payload that passed :func:`payload_is_valid`; RdbError (EmptyValue for
    no elements) when its body does not start with one whole value.  Bytes after the value
    are ignored, as Redis's RESTORE ignores them."""
    reader = Reader(payload, 0, len(payload) - 10)
    return decode_value(reader.byte(), reader)


# --- writing files -------------------------------------------------------------------------


class _Output:
    """Buffers writes into blocks, feeding each block to the CRC as it goes out."""

    __slots__ = ("write", "parts", "size", "crc")

    def __init__(self, write: Callable[[bytes], Any]) -> None:
        self.write = write
        self.parts: list[bytes] = []
        self.size = 0
        self.crc = 0

    def add(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size >= WRITE_BLOCK:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            block = b"".join(self.parts)
            self.crc = crc64(block, self.crc)
            self.write(block)
            self.parts = []
            self.size = 0


def _aux(name: bytes, value: bytes) -> bytes:
    return bytes((OPCODE_AUX,)) + string(name) + string(value)


def write_rdb(
    write: Callable[[bytes], Any],
    databases: Iterable[tuple[Any, ...]],
    enc: Encodings = DEFAULT_ENCODINGS,
    used_memory: int = 0,
    checksum: bool = True,
    encode_other: Callable[[Any], tuple[int, bytes] | None] | None = None,
    functions: Iterable[bytes] = (),
) -> None:
    """Write an RDB version 10 file through ``write``: ``functions`` are the code of the
    function libraries (one FUNCTION2 record each, before the keys, as Redis writes them);
    ``databases`` gives (index, key -> value, key -> absolute expiry ms[, promoted keys]) for
    each database (promoted keys: hashes and sets written as hash tables whatever their
    shape, see :mod:`trioredis.encodings`);
    a value of another type than the built-in ones goes to ``encode_other`` (None there:
    RdbError)."""
    out = _Output(write)
    out.add(MAGIC + b"%04d" % RDB_VERSION)
    out.add(_aux(b"redis-ver", REDIS_VERSION))
    out.add(_aux(b"redis-bits", b"64"))
    out.add(_aux(b"ctime", b"%d" % int(time.time())))
    out.add(_aux(b"used-mem", b"%d" % used_memory))
    out.add(_aux(b"aof-base", b"0"))
    compress = enc.rdbcompression
    for code in functions:
        out.add(bytes((OPCODE_FUNCTION2,)) + string(code, compress))
    for index, data, expires, *more in databases:
        if not data:
            continue
        promoted = more[0] if more else None
        out.add(bytes((OPCODE_SELECTDB,)) + length(index))
        out.add(bytes((OPCODE_RESIZEDB,)) + length(len(data)) + length(len(expires)))
        # Records gather in a local list handed to the output a batch at a time (one call
        # per key would be a third of the time of a dataset of small strings); a batch
        # stops at RECORDS_PER_BATCH records or WRITE_BLOCK bytes.
        batch: list[bytes] = []
        size = 0
        for key, value in data.items():
            if len(batch) >= RECORDS_PER_BATCH or size >= WRITE_BLOCK:
                out.add(b"".join(batch))
                batch.clear()
                size = 0
            if expires:
                when = expires.get(key)
                if when is not None:
                    batch.append(_EXPIRE_MS + _U64.pack(when))
            if value.__class__ is bytes:  # the common record, without the dispatch
                record = _STRING_TYPE + string(key, compress) + string(value, compress)
            else:
                try:
                    kind, body = encode_value(value, enc,
                                              None if promoted is None else key in promoted)
                except RdbError:
                    found = encode_other(value) if encode_other is not None else None
                    if found is None:
                        raise
                    kind, body = found
                record = bytes((kind,)) + string(key, compress) + body
            batch.append(record)
            size += len(record)
        out.add(b"".join(batch))
    out.add(bytes((OPCODE_EOF,)))
    out.flush()
    write(_U64.pack(out.crc if checksum else 0))


# --- reading files -------------------------------------------------------------------------


def read_rdb(
    data: bytes,
    aux: dict[bytes, bytes] | None = None,
    now_ms: int | None = None,
    functions: list[bytes] | None = None,
) -> Iterator[tuple[int, bytes, Any, int | None]]:
    """(database, key, value, absolute expiry ms or None) for each key of an RDB file, after
    the checksum is verified.  Keys already expired at ``now_ms`` (when given) and keys with
    empty values are skipped, as Redis's loader skips them.  The AUX fields go into ``aux``,
    the code of each function library into ``functions`` (without that list, a file with
    function libraries is refused: they would be lost silently)."""
    version = _check_signature(data)
    end = len(data)
    if version >= FIRST_CHECKSUM_VERSION:
        if end < 9 + 1 + 8:
            raise RdbError("RDB file truncated")
        end -= 8
        expected = _U64.unpack_from(data, end)[0]
        if expected and expected != crc64(memoryview(data)[:end]):
            raise RdbError("RDB checksum mismatch")
    return _records(data, version, end, aux, now_ms, functions)


def _check_signature(data: Any) -> int:
    """The version of an RDB file that starts ``data``; RdbError when it is not one."""
    if len(data) < 9 or data[:5] != MAGIC or not data[5:9].isdigit():
        raise RdbError("not an RDB file (wrong signature)")
    version = int(data[5:9])
    if not 1 <= version <= RDB_VERSION:
        raise RdbError(f"RDB version {version} is not supported")
    return version


Databases = dict[int, tuple[dict[bytes, Any], dict[bytes, int]]]


def read_rdb_databases(data: bytes, expired_before: int | None = None,
                       ) -> tuple[Databases, int, list[bytes]]:
    """An RDB file grouped as Redis installs it: {database: (key -> value, key -> expiry
    ms)}, how many keys were dropped as expired before ``expired_before`` (ms; None keeps
    them all, as a replica does: their DELs come from the master), and the code of its
    function libraries.  RdbError as :func:`read_rdb`."""
    functions: list[bytes] = []
    databases, expired = _grouped(read_rdb(data, functions=functions), expired_before)
    return databases, expired, functions


def _grouped(records: Iterable[tuple[int, bytes, Any, int | None]], expired_before: int | None,
             ) -> tuple[Databases, int]:
    """Records grouped by database, those expired before ``expired_before`` counted, not
    kept."""
    databases: Databases = {}
    expired = 0
    for index, key, value, expire in records:
        if expire is not None and expired_before is not None and expire <= expired_before:
            expired += 1
            continue
        found = databases.get(index)
        if found is None:
            found = databases[index] = ({}, {})
        found[0][key] = value
        if expire is not None:
            found[1][key] = expire
    return databases, expired


def read_rdb_prefix(data: Any, expired_before: int | None = None,
                    ) -> tuple[Databases, int, list[bytes], int]:
    """An RDB file at the start of ``data`` with other bytes after it (the RDB preamble of a
    Redis 4-6 AOF, ``aof-use-rdb-preamble yes``): what :func:`read_rdb_databases` gives, and
    the RDB's length (its EOF opcode and CRC-64 included), where the rest begins.

    The RDB's end is only known once its records were walked to the EOF opcode, so the
    records are decoded first and the CRC-64 over the prefix checked before anything is
    returned: a damaged preamble still never loads partly.  ``data`` may be any buffer that
    slices to bytes (an ``mmap`` of the file, so the commands after the RDB are not read)."""
    version = _check_signature(data)
    functions: list[bytes] = []
    eof_at: list[int] = []
    databases, expired = _grouped(
        _records(data, version, len(data), None, None, functions, eof_at), expired_before)
    if not eof_at:
        raise RdbError("RDB preamble truncated (no EOF opcode)")
    end = eof_at[0]
    if version < FIRST_CHECKSUM_VERSION:
        return databases, expired, functions, end
    if end + 8 > len(data):
        raise RdbError("RDB preamble truncated (no checksum)")
    expected = _U64.unpack(data[end:end + 8])[0]
    if expected and expected != crc64(memoryview(data)[:end]):
        raise RdbError("RDB checksum mismatch")
    return databases, expired, functions, end + 8


def _records(data: bytes, version: int, end: int, aux: dict[bytes, bytes] | None,
             now_ms: int | None, functions: list[bytes] | None,
             eof_at: list[int] | None = None,
             ) -> Iterator[tuple[int, bytes, Any, int | None]]:
    """Every key record of the file after the header: (db, key, value, expire ms), the
    opcodes between them (SELECTDB, AUX, EXPIRETIME...) applied on the way.

    One long loop on purpose: it runs once per record of a file that may hold millions, and
    the common record (a short string key and value) is decoded inline at the top without a
    call; splitting the opcodes into functions would add a call per record, measured in the
    load time of every start-up."""
    reader = Reader(data, 9, end)
    db = 0
    expire: int | None = None
    while True:
        # The common record first, read inline: a string value whose key and value are
        # plain strings under 64 bytes (one length byte each).
        pos = reader.pos
        if pos + 2 < end and data[pos] == TYPE_STRING and data[pos + 1] < 0x40:
            key_end = pos + 2 + data[pos + 1]
            if key_end < end and data[key_end] < 0x40:
                value_end = key_end + 1 + data[key_end]
                if value_end <= end:
                    reader.pos = value_end
                    if expire is None:
                        yield db, data[pos + 2:key_end], data[key_end + 1:value_end], None
                        continue
                    if now_ms is None or expire >= now_ms:
                        yield db, data[pos + 2:key_end], data[key_end + 1:value_end], expire
                    expire = None
                    continue
        kind = reader.byte()
        if kind == OPCODE_EOF:
            if eof_at is not None:  # a prefix: more follows the RDB, its end is the answer
                eof_at.append(reader.pos)
                return
            if reader.pos != end and version >= FIRST_CHECKSUM_VERSION:
                raise RdbError("bytes after the end of the RDB file")
            return
        if kind == OPCODE_SELECTDB:
            db = reader.length()
            continue
        if kind == OPCODE_RESIZEDB:
            reader.length()
            reader.length()
            continue
        if kind == OPCODE_AUX:
            name = reader.string()
            value = reader.string()
            if aux is not None:
                aux[name] = value
            continue
        if kind == OPCODE_EXPIRETIME_MS:
            expire = _I64.unpack(reader.take(8))[0]
            continue
        if kind == OPCODE_EXPIRETIME:
            expire = _I32.unpack(reader.take(4))[0] * 1000
            continue
        if kind == OPCODE_IDLE:
            reader.length()
            continue
        if kind == OPCODE_FREQ:
            reader.byte()
            continue
        if kind == OPCODE_FUNCTION2:
            if functions is None:
                raise RdbError("function libraries in this RDB file would be lost here")
            functions.append(reader.string())
            continue
        if kind == OPCODE_FUNCTION:
            raise RdbError("function records of Redis 7.0 release candidates are not supported")
        if kind == OPCODE_MODULE_AUX:
            raise RdbError("module data in RDB is not supported")
        key = reader.string()
        try:
            value = decode_value(kind, reader)
        except EmptyValue:
            expire = None
            continue
        if expire is not None and now_ms is not None and expire < now_ms:
            expire = None
            continue
        yield db, key, value, expire
        expire = None


__all__ = [
    "RDB_VERSION",
    "NotFunctions",
    "dump_payload",
    "functions_payload",
    "load_functions_payload",
    "load_payload",
    "payload_is_valid",
    "read_rdb",
    "read_rdb_databases",
    "read_rdb_prefix",
    "write_rdb",
]
