"""The forked AOF rewrite child.

Runs in the child right after ``os.fork()``: the child is a copy of the server frozen at the
instant of the fork, so it sees one consistent dataset while the parent keeps serving.  It
must not touch trio, threads or locks (the trio thread is mid-run in the copy, the worker
threads do not exist), so everything here is plain synchronous code and the child always
leaves through ``os._exit`` (never through exceptions, atexit handlers or pytest's frames when
the server runs inside a test process).
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

from trioredis import encode_command

WRITE_CHUNK = 1 << 20
PR_SET_PDEATHSIG = 1


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


def dataset_commands(host: Any) -> Any:
    """The shortest command sequence that rebuilds the dataset: one ``SELECT`` per non-empty
    database, then each key's commands from the ``trioredis_rewrite_value`` hook (variadic
    commands of at most 64 items, ``PEXPIREAT`` with the absolute expiry)."""
    for db in host.keyspace.databases:
        if not db.data:
            continue
        selected = False
        for key, value, expire_ms in db.items():
            commands = host.rewrite_value(db.index, key, value, expire_ms)
            if commands is None:
                raise TypeError(f"no plugin rewrites the value of key {key!r} ({type(value)})")
            if not selected:
                yield [b"SELECT", b"%d" % db.index]
                selected = True
            yield from commands


def write_dataset(host: Any, path: str) -> int:
    """Write the dataset as commands to ``path`` and fsync it; the file's size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        buffer = bytearray()
        size = 0
        for argv in dataset_commands(host):
            buffer += encode_command(argv)
            if len(buffer) >= WRITE_CHUNK:
                write_all(fd, buffer)
                size += len(buffer)
                buffer.clear()
        write_all(fd, buffer)
        size += len(buffer)
        os.fsync(fd)
        return size
    finally:
        os.close(fd)


def _load_prctl() -> Any:
    # Looked up in the parent, at import: dlopen() in a forked child could wait forever on
    # a loader lock that another thread of the parent held at the fork.
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent(parent_pid: int) -> None:
    """A child outliving a killed server would keep writing; ask the kernel to kill it."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


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
        _die_with_parent(parent_pid)
        write_dataset(host, temp_path(directory, os.getpid()))
        code = 0
    except BaseException:  # noqa: B036 - whatever happens, the child leaves through _exit
        code = 1
    finally:
        os._exit(code)
