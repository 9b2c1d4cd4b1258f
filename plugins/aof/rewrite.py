"""The forked AOF rewrite child.

Runs in the child that ``trioredis.fork_child`` made: a copy of the server frozen at the
instant of the fork, so it sees one consistent dataset while the parent keeps serving.  It
must not touch trio, threads or locks (the trio thread is mid-run in the copy, the worker
threads do not exist; the log's stream has a lock another thread may have held at the fork),
so everything here is plain synchronous code, and the child speaks only through its pipe:
progress lines and the reason of a failure, which the parent logs (see
:func:`child_main`).  The helper resets the signals, dies with the server and always leaves
through ``os._exit``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from trioredis import CHILD_FAILED, CHILD_OK, encode_command, now_ms
from trioredis.rewrite import encode_builtin, encode_keys

WRITE_CHUNK = 1 << 20


PROGRESS_LOG_SECONDS = 1.0  # the rewrite's progress line, at most this often
# What the child writes into its pipe: one line per message, the kind first.  The parent reads
# the pipe while the child runs (so progress is logged as it comes) and keeps the last reason.
MESSAGE_PROGRESS = b"progress"
MESSAGE_ERROR = b"error"
# A failure's reason is cut to this many bytes: one message stays one short write(2).
REASON_BYTES = 2000


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
# The child writes what core's rewriter of built-in values gives (``trioredis.rewrite``): its
# fast path, RESP straight from the values, one ``b"".join`` per batch of keys; only values of
# other types (a plugin's) go through the ``trioredis_rewrite_value`` hook.  ``SELECT`` per
# non-empty database, variadic commands of at most 64 items, then ``PEXPIREAT`` with the
# absolute expiry.  Fewer objects also means fewer pages copied: every object the child creates
# or touches is a copy-on-write fault, so the child never copies the key list (no
# ``db.items()``).

KEYS_PER_BATCH = 4096


def encode_value(host: Any, db: int, key: bytes, value: Any, expire_ms: int | None) -> bytes:
    """The RESP commands that rebuild one key (its expiry included)."""
    encoded = encode_builtin(key, value, expire_ms)
    if encoded is not None:
        return encoded
    argvs = host.rewrite_value(db, key, value, expire_ms)
    if argvs is None:
        raise TypeError(f"no plugin rewrites the value of key {key!r} ({value.__class__})")
    return b"".join([encode_command(argv) for argv in argvs])


def dataset_chunks(host: Any, done: list[int] | None = None) -> Iterator[bytes]:
    """The dataset as RESP, in chunks of about KEYS_PER_BATCH keys; ``done[0]`` counts the
    keys visited so far (for the progress line)."""
    done = done if done is not None else [0]
    preamble = host.dataset_preamble()  # function libraries: before any key
    if preamble:
        yield b"".join(encode_command(argv) for argv in preamble)
    join = b"".join
    for db in host.keyspace.databases:
        data = db.data
        if not data:
            continue
        expires = db.expires
        now = now_ms()
        yield encode_command([b"SELECT", b"%d" % db.index])

        def plugin_value(key: bytes, value: Any, index: int = db.index) -> bytes:
            return encode_value(host, index, key, value, None)

        # Keys without a TTL, in batches (strings in one comprehension each).
        pairs = iter(data.items())
        while batch := list(islice(pairs, KEYS_PER_BATCH)):
            done[0] += len(batch)
            yield encode_keys(batch, expires, plugin_value)
        # Keys with a TTL (those already expired are left out, as the loader would drop them).
        timed = iter(expires.items())
        while batch := list(islice(timed, KEYS_PER_BATCH)):
            done[0] += len(batch)
            yield join([encode_value(host, db.index, key, data[key], when)
                        for key, when in batch if when > now and key in data])


def write_dataset(host: Any, path: str, progress: Callable[[str], None] | None = None) -> int:
    """Write the dataset as commands to ``path`` and fsync it; the file's size.
    ``progress`` gets a line of text at most every PROGRESS_LOG_SECONDS."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    total = sum(len(db.data) for db in host.keyspace.databases)
    done = [0]
    started = last_report = time.monotonic()
    try:
        pending: list[bytes] = []
        pending_size = size = 0
        for chunk in dataset_chunks(host, done):
            now = time.monotonic()
            if (progress is not None and now - last_report >= PROGRESS_LOG_SECONDS and total
                    and done[0]):
                # A long rewrite says how far it is, at most once a second.
                last_report = now
                eta = (now - started) * (total - done[0]) / done[0]
                progress(f"{100 * done[0] / total:.1f}% (ETA {eta:.0f}s)")
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


def send_message(fd: int, kind: bytes, text: str) -> None:
    """One message line into the pipe (its newlines flattened: a line is a message)."""
    line = text.replace("\n", " ").encode("utf-8", "replace")[:REASON_BYTES]
    write_all(fd, kind + b" " + line + b"\n")


def child_main(host: Any, directory: str, report_fd: int) -> int:
    """Body of the rewrite child (``trioredis.fork_child`` runs it with the pipe's write end):
    write ``temp-rewriteaof-bg-<pid>.aof``; the exit code.  A failure's reason goes into the
    pipe for the parent's log, as the snapshot child reports its own."""
    try:
        write_dataset(host, temp_path(directory, os.getpid()),
                      lambda text: send_message(report_fd, MESSAGE_PROGRESS, text))
    except BaseException as error:  # noqa: BLE001 - the reason goes to the parent
        send_message(report_fd, MESSAGE_ERROR, f"{type(error).__name__}: {error}")
        return CHILD_FAILED
    return CHILD_OK
