"""Redis's own ``dump.rdb`` as the snapshot file: written when ``dbfilename`` ends in ``.rdb``,
read whenever the file starts with Redis's signature, whatever its name.

So moving from redis-server is one step (copy its ``dump.rdb`` into ``dir`` and start with
``dbfilename dump.rdb``: every RDB version Redis 7.0 reads loads), and so is moving back
(redis-server loads the ``dump.rdb`` written here: RDB version 10, Redis 7.0's encodings).
The codec is :mod:`trioredis.rdb`; this module only connects it to the snapshot backend.

The trade-off against ``dump.trdb``: the RDB writer walks the dataset in Python, which
touches every object's reference count in the forked child, so it copies more pages than the
native writer does (see :mod:`.format`); and values of a plugin's own types have no RDB
encoding, so such a save fails with the reason in the log.  Function libraries travel as
Redis's FUNCTION2 records (their code), loaded back through ``FUNCTION LOAD REPLACE``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from trioredis.rdb import Encodings, RdbError, read_rdb_databases, write_rdb

RDB_SUFFIX = ".rdb"
RDB_MAGIC = b"REDIS"


def wants_rdb(dbfilename: str) -> bool:
    """Whether snapshots go out in Redis's format (chosen by the file name)."""
    return dbfilename.endswith(RDB_SUFFIX)


def is_rdb_file(path: str) -> bool:
    """Whether the file at ``path`` starts with Redis's RDB signature."""
    with open(path, "rb") as file:
        return file.read(len(RDB_MAGIC)) == RDB_MAGIC


def function_codes(preamble: list[list[bytes]]) -> list[bytes]:
    """The library code of each ``FUNCTION LOAD [REPLACE] code`` of the dataset's preamble;
    RdbError for another command (a plugin's state has no RDB record)."""
    codes = []
    for argv in preamble:
        if len(argv) >= 3 and argv[0].upper() == b"FUNCTION" and argv[1].upper() == b"LOAD":
            codes.append(argv[-1])
        else:
            name = argv[0].decode("utf-8", "replace") if argv else "?"
            raise RdbError(f"state rebuilt by {name} has no RDB record: use dbfilename dump.trdb")
    return codes


def write_rdb_file(path: str, databases: list[Any], config: Any,
                   preamble: list[list[bytes]] | None = None) -> None:
    """Write ``databases`` (the keyspace's Database objects) and the function libraries of
    ``preamble`` as an RDB file at ``path`` and fsync it before returning (runs in the forked
    child, like the native writer)."""
    encodings = Encodings.from_config(config)
    checksum = getattr(config, "rdbchecksum", True) not in (False, "no")
    functions = function_codes(preamble or [])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with open(fd, "wb", buffering=1 << 20) as out:
        write_rdb(out.write, ((db.index, db.data, db.expires, db.promoted) for db in databases),
                  encodings, checksum=checksum, functions=functions)
        out.flush()
        os.fsync(out.fileno())


def read_rdb_file(path: str) -> tuple[dict[int, tuple[dict[bytes, Any], dict[bytes, int]]], int,
                                      list[bytes]]:
    """Every database of an RDB file as (key -> value, key -> expiry ms), how many keys were
    already expired (not loaded, as Redis does on a master), and the code of its function
    libraries.  The checksum is verified before anything is decoded; RdbError for a damaged
    or unsupported file."""
    with open(path, "rb") as file:
        data = file.read()
    return read_rdb_databases(data, expired_before=int(time.time() * 1000))


__all__ = ["RdbError", "function_codes", "is_rdb_file", "read_rdb_file", "wants_rdb",
           "write_rdb_file"]
