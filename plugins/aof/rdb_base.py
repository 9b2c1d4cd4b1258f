"""An AOF that starts as an RDB: a Redis 7 base file in RDB format (read when importing
Redis's ``appendonlydir/``), or the RDB preamble of a Redis 4-6 single-file AOF.

Redis 7 writes its AOF base as an RDB file by default (``aof-use-rdb-preamble yes``), and Redis
4-6 start their single ``appendonly.aof`` with one (commands follow it), so a Redis user who
turns this server on over their data directory has one or the other.  The base is decoded
with :mod:`trioredis.rdb` in a worker thread (the event loop keeps answering ``-LOADING``),
installed database by database, then the incremental files replay on top of it as commands.
Keys already expired are not loaded, as Redis's loader drops them on a master.
"""

from __future__ import annotations

import mmap
import time
from typing import Any

import trio
from trioredis.rdb import RdbError, read_rdb_databases, read_rdb_prefix

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


def _read_prefix(path: str) -> tuple[dict[int, tuple[dict[bytes, Any], dict[bytes, int]]],
                                      int, list[bytes], int]:
    # Mapped, not read: the commands after the preamble may be most of a big file, and only
    # the RDB's pages are touched here (the replay reads the rest in chunks).
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0,
                                               access=mmap.ACCESS_READ) as mapped:
        return read_rdb_prefix(mapped, expired_before=int(time.time() * 1000))


async def load_rdb_base(loader: Any, path: str, limiter: trio.CapacityLimiter) -> int:
    """Install the RDB base at ``path`` into the (empty) keyspace; the number of keys loaded.
    The checksum is verified before anything is installed; RdbBaseError otherwise."""
    try:
        databases, _expired, functions = await trio.to_thread.run_sync(_read, path,
                                                                       limiter=limiter)
    except RdbError as error:
        raise RdbBaseError(f"Bad RDB base file {path}: {error}") from None
    return _install(loader, path, databases, functions)


async def load_rdb_preamble(loader: Any, path: str, limiter: trio.CapacityLimiter,
                            ) -> tuple[int, int]:
    """Install the RDB preamble of the AOF at ``path`` into the (empty) keyspace: (keys
    loaded, the preamble's length in bytes, where the commands begin).  The preamble's
    checksum is verified before anything is installed; RdbBaseError otherwise."""
    try:
        databases, _expired, functions, size = await trio.to_thread.run_sync(
            _read_prefix, path, limiter=limiter)
    except (RdbError, ValueError) as error:  # ValueError: mmap of an empty file
        raise RdbBaseError(f"Bad RDB preamble in the AOF {path}: {error}") from None
    return _install(loader, path, databases, functions), size


def _install(loader: Any, path: str,
             databases: dict[int, tuple[dict[bytes, Any], dict[bytes, int]]],
             functions: list[bytes]) -> int:
    """Put decoded databases and function libraries into the keyspace; the keys loaded."""
    try:
        return loader.install_rdb(databases, functions)
    except ValueError as error:
        raise RdbBaseError(f"Bad RDB base file {path}: {error}") from None
