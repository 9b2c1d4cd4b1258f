"""The forked AOF rewrite child.

Runs in the child right after ``os.fork()``: the child is a copy of the server frozen at the
instant of the fork, so it sees one consistent dataset while the parent keeps serving.  It
must not touch trio, threads or locks (the trio thread is mid-run in the copy, the worker
threads do not exist), so everything here is plain synchronous code and the child always
leaves through ``os._exit`` (never through exceptions, atexit handlers or pytest's frames when
the server runs inside a test process).
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from collections.abc import Iterator
from itertools import islice
from typing import Any

from trioredis import ZSet, die_with_parent, encode_command, now_ms

WRITE_CHUNK = 1 << 20


PROGRESS_LOG_SECONDS = 1.0  # the rewrite's progress line, at most this often


def temp_path(directory: str, pid: int) -> str:
    """The file a child with ``pid`` writes, Redis's name for it."""
    return os.path.join(directory, f"temp-rewriteaof-bg-{pid}.aof")


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """write(2) until every byte is written: a short write is retried, an error raised."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError("short write of zero bytes")
        view = view[written:]


# --- the dataset, encoded in the child ---------------------------------------------------------
#
# WHY THE CHILD ENCODES BUILT-IN TYPES ITSELF.  A rewrite of 1,000,000 strings through the
# ``trioredis_rewrite_value`` hook (a pluggy call, a list of argv lists, ``encode_command`` per
# key) took ~4 s against Redis's ~0.5 s.  Values whose class is exactly a built-in type (bytes,
# deque, dict, set, ZSet) are encoded here straight to RESP in list comprehensions, one
# ``b"".join`` per batch of keys; only other types (plugin types) go through the hook.  The
# output means the same as the hook's commands: ``SELECT`` per non-empty database, variadic
# commands of at most ITEMS_PER_COMMAND items, then ``PEXPIREAT`` with the absolute expiry.
# Fewer objects also means fewer pages copied: every object the child creates or touches is a
# copy-on-write fault, so the child never copies the key list (no ``db.items()``).

ITEMS_PER_COMMAND = 64  # Redis's AOF_REWRITE_ITEMS_PER_CMD
KEYS_PER_BATCH = 4096
_CRLF = b"\r\n"
_SET = b"*3\r\n$3\r\nSET\r\n"
_PEXPIREAT = b"*3\r\n$9\r\nPEXPIREAT\r\n"


class _BulkHeaders(dict[int, bytes]):
    """``$<n>\\r\\n`` by length: precomputed for small lengths, made on demand beyond."""

    def __missing__(self, size: int) -> bytes:
        return b"$%d\r\n" % size


_BULK = _BulkHeaders((size, b"$%d\r\n" % size) for size in range(1024))


def _bulk(item: bytes) -> bytes:
    return b"".join((_BULK[len(item)], item, _CRLF))


def _variadic(name: bytes, key: bytes, encoded: list[bytes], per_item: int) -> list[bytes]:
    """``name key <items...>`` commands of at most ITEMS_PER_COMMAND items each, from items
    already encoded (each ``per_item`` RESP bulk strings long)."""
    head = _bulk(name) + _bulk(key)
    commands = []
    for start in range(0, len(encoded), ITEMS_PER_COMMAND):
        chunk = encoded[start:start + ITEMS_PER_COMMAND]
        commands.append(b"*%d\r\n" % (2 + per_item * len(chunk)) + head + b"".join(chunk))
    return commands


def encode_value(host: Any, db: int, key: bytes, value: Any, expire_ms: int | None) -> bytes:
    """The RESP commands that rebuild one key (its expiry included)."""
    kind = value.__class__
    join, bulk, crlf = b"".join, _BULK, _CRLF  # inlined _bulk(): one call less per item
    if kind is bytes:
        commands = [join((_SET, bulk[len(key)], key, crlf, bulk[len(value)], value, crlf))]
    elif kind is deque:
        commands = _variadic(b"RPUSH", key, [join((bulk[len(item)], item, crlf))
                                             for item in value], 1)
    elif kind is set:
        commands = _variadic(b"SADD", key, [join((bulk[len(item)], item, crlf))
                                            for item in value], 1)
    elif kind is dict:
        commands = _variadic(b"HSET", key, [
            join((bulk[len(field)], field, crlf, bulk[len(item)], item, crlf))
            for field, item in value.items()], 2)
    elif kind is ZSet:
        # repr() is the shortest text that reads back as the same double ("inf", "-inf" too).
        commands = _variadic(b"ZADD", key, [
            join((bulk[len(text)], text, crlf, bulk[len(member)], member, crlf))
            for member, score in value.items() for text in (repr(score).encode(),)], 2)
    else:
        argvs = host.rewrite_value(db, key, value, expire_ms)
        if argvs is None:
            raise TypeError(f"no plugin rewrites the value of key {key!r} ({kind})")
        return b"".join([encode_command(argv) for argv in argvs])
    if expire_ms is not None:
        commands.append(b"".join((_PEXPIREAT, _bulk(key), _bulk(b"%d" % expire_ms))))
    return b"".join(commands)


def dataset_chunks(host: Any, done: list[int] | None = None) -> Iterator[bytes]:
    """The dataset as RESP, in chunks of about KEYS_PER_BATCH keys; ``done[0]`` counts the
    keys visited so far (for the progress line)."""
    done = done if done is not None else [0]
    preamble = host.dataset_preamble()  # function libraries: before any key
    if preamble:
        yield b"".join(encode_command(argv) for argv in preamble)
    join = b"".join
    bulk = _BULK
    for db in host.keyspace.databases:
        data = db.data
        if not data:
            continue
        expires = db.expires
        now = now_ms()
        yield encode_command([b"SELECT", b"%d" % db.index])
        # Keys without a TTL: strings in one comprehension per batch, the rest one by one.
        pairs = iter(data.items())
        while batch := list(islice(pairs, KEYS_PER_BATCH)):
            chunk = join([join((_SET, bulk[len(key)], key, _CRLF, bulk[len(value)], value, _CRLF))
                          for key, value in batch
                          if value.__class__ is bytes and key not in expires])
            others = [encode_value(host, db.index, key, value, None) for key, value in batch
                      if value.__class__ is not bytes and key not in expires]
            if others:
                chunk += join(others)
            done[0] += len(batch)
            yield chunk
        # Keys with a TTL (those already expired are left out, as the loader would drop them).
        timed = iter(expires.items())
        while batch := list(islice(timed, KEYS_PER_BATCH)):
            done[0] += len(batch)
            yield join([encode_value(host, db.index, key, data[key], when)
                        for key, when in batch if when > now and key in data])


def write_dataset(host: Any, path: str) -> int:
    """Write the dataset as commands to ``path`` and fsync it; the file's size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    total = sum(len(db.data) for db in host.keyspace.databases)
    done = [0]
    started = last_report = time.monotonic()
    try:
        pending: list[bytes] = []
        pending_size = size = 0
        for chunk in dataset_chunks(host, done):
            now = time.monotonic()
            if now - last_report >= PROGRESS_LOG_SECONDS and total and done[0]:
                # A long rewrite says how far it is, at most once a second (the child's log
                # lines carry its own pid and the role C, as Redis's do).
                last_report = now
                eta = (now - started) * (total - done[0]) / done[0]
                host.log.notice(f"AOF rewrite: {100 * done[0] / total:.1f}% (ETA {eta:.0f}s)")
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= WRITE_CHUNK:
                write_all(fd, b"".join(pending))
                size += pending_size
                pending.clear()
                pending_size = 0
        write_all(fd, b"".join(pending))
        size += pending_size
        os.fsync(fd)
        return size
    finally:
        os.close(fd)


def child_main(host: Any, directory: str, parent_pid: int) -> None:
    """Body of the rewrite child: never returns."""
    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        try:
            signal.set_wakeup_fd(-1)  # the parent's trio wakeup socket is not ours to poke
        except ValueError:
            pass
        die_with_parent(parent_pid)
        host.log.role = "C"
        write_dataset(host, temp_path(directory, os.getpid()))
        code = 0
    except BaseException:  # noqa: B036 - whatever happens, the child leaves through _exit
        code = 1
    finally:
        os._exit(code)
