"""A Redis 7 AOF base file in RDB format, read when importing Redis's ``appendonlydir/``.

Redis 7 writes its AOF base as an RDB file by default (``aof-use-rdb-preamble yes``), so a
Redis user who turns this server on over their data directory has one.  The base is decoded
with :mod:`trioredis.rdb` in a worker thread (the event loop keeps answering ``-LOADING``),
installed database by database, then the incremental files replay on top of it as commands.
Keys already expired are not loaded, as Redis's loader drops them on a master.
"""

from __future__ import annotations

import time
from typing import Any

import trio
from trioredis import ErrorReply
from trioredis.rdb import RdbError, read_rdb_databases

RDB_MAGIC = b"REDIS"


class RdbBaseError(Exception):
    """The RDB base cannot be loaded: damaged, or it does not fit this server."""


def starts_as_rdb(path: str) -> bool:
    """Whether the file begins with Redis's RDB signature."""
    with open(path, "rb") as handle:
        return handle.read(len(RDB_MAGIC)) == RDB_MAGIC


def _read(path: str) -> tuple[dict[int, tuple[dict[bytes, Any], dict[bytes, int]]], int,
                              list[bytes]]:
    with open(path, "rb") as handle:
        data = handle.read()
    return read_rdb_databases(data, expired_before=int(time.time() * 1000))


async def load_rdb_base(loader: Any, path: str, limiter: trio.CapacityLimiter) -> int:
    """Install the RDB base at ``path`` into the (empty) keyspace; the number of keys loaded.
    The checksum is verified before anything is installed; RdbBaseError otherwise."""
    try:
        databases, _expired, functions = await trio.to_thread.run_sync(_read, path,
                                                                       limiter=limiter)
    except RdbError as error:
        raise RdbBaseError(f"Bad RDB base file {path}: {error}") from None
    for code in functions:
        reply = loader.execute([b"FUNCTION", b"LOAD", b"REPLACE", code])
        if isinstance(reply, ErrorReply):
            raise RdbBaseError(f"Bad RDB base file {path}: loading a function library failed: "
                               f"{bytes(reply).decode('utf-8', 'replace')}")
    keyspace = loader.keyspace
    loaded = 0
    for index, (data, expires) in sorted(databases.items()):
        if not 0 <= index < len(keyspace):
            raise RdbBaseError(f"The RDB base file {path} holds database {index} but this "
                               f"server has {len(keyspace)} (raise the 'databases' option)")
        db = keyspace[index]
        db.data.update(data)
        db.expires.update(expires)
        loaded += len(data)
    return loaded
