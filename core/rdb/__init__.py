"""Redis's RDB format (version 10, Redis 7.0): DUMP payloads and ``dump.rdb`` files.

``values`` encodes and decodes one value, ``compact`` the listpack/ziplist/intset/zipmap blobs
inside values, ``checksum`` the CRC-64 and LZF, ``file`` whole files and DUMP payloads.
"""

from __future__ import annotations

from .errors import EmptyValue, RdbError
from .file import (
    RDB_VERSION,
    dump_payload,
    load_payload,
    payload_is_valid,
    read_rdb,
    read_rdb_databases,
    read_rdb_prefix,
    write_rdb,
)
from .values import DEFAULT_ENCODINGS, Encodings, decode_value, encode_value

__all__ = [
    "DEFAULT_ENCODINGS",
    "RDB_VERSION",
    "EmptyValue",
    "Encodings",
    "RdbError",
    "decode_value",
    "dump_payload",
    "encode_value",
    "load_payload",
    "payload_is_valid",
    "read_rdb",
    "read_rdb_databases",
    "read_rdb_prefix",
    "write_rdb",
]
