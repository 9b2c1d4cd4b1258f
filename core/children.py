"""Forked persistence children (AOF rewrite, snapshot, replication's RDB): forking one that
writes into a pipe (:func:`fork_child`), waiting for one from trio, and making one die with
the server."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import time
from collections.abc import Callable
from typing import Any, NoReturn

import trio

from .persistence import fork_child_exited, prepare_fork

_PR_SET_PDEATHSIG = 1


def _find_prctl() -> Any:
    # Looked up in the parent, at import: dlopen() in a forked child could wait forever on
    # a loader lock that another thread of the parent held at the fork.
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()


def die_with_parent(parent_pid: int) -> None:
    """Call first thing in a forked child: the kernel kills it when the server dies (kill -9
    during a rewrite or a save), so a dead server leaves no writer behind that could still
    create a temp file after the next server cleaned them up.  A child whose parent is
    already gone exits at once."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


async def wait_child(pid: int) -> int:
    """The child's wait status, without blocking the event loop: a pidfd becomes readable
    when the child exits (Linux >= 5.3); elsewhere ``waitpid(WNOHANG)`` is polled, which,
    unlike ``waitpid`` in a worker thread, can be cancelled.  If cancelled (shutdown,
    ``appendonly no``), the child is killed and reaped before the cancellation goes on, so no
    zombie is left and no orphan keeps writing."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = -1
    try:
        if pidfd >= 0:
            await trio.lowlevel.wait_readable(pidfd)
        else:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return status
                await trio.sleep(0.02)
        return os.waitpid(pid, 0)[1]
    except BaseException:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    finally:
        if pidfd >= 0:
            os.close(pidfd)


# --- one forked child writing into a pipe ----------------------------------------------------
#
# The shape every persistence child shares (the snapshot's save, replication's RDB): the
# parent freezes the GC, opens a pipe, forks, counts the fork; the child resets what it must
# not inherit, runs its body and exits with a status; the parent reads the pipe and reaps the
# child without blocking the event loop.  The fork slot (one child at a time) stays with the
# caller: when to take it (wait or refuse) and when to give it back (after installing the
# child's file, say) is the caller's decision.

# A child's exit codes (its body's return value, or CHILD_FAILED when the body raised).
CHILD_OK = 0
CHILD_FAILED = 1
# The signals a child must not handle as the server does (trio's handlers would run in the
# child): back to their default action, so SIGTERM or SIGUSR1 (the snapshot's "stop on
# purpose") end it.
CHILD_DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
# The most read from the pipe at once.
PIPE_READ_BYTES = 1 << 20
# The most of a child's unread output kept as its report once it is reaped: a report must be
# shorter than the pipe's buffer (64 KiB on Linux), since nobody reads it while the child runs.
REPORT_BYTES = 4096


def _run_child(body: Callable[[int], int | None], write_fd: int, parent: int) -> NoReturn:
    """In the forked child: make the process safe to run ``body(write_fd)`` in, run it, exit
    with its status.  Never returns, never raises (an exception would unwind into the
    parent's trio loop, copied into the child)."""
    status = CHILD_FAILED
    try:
        try:
            signal.set_wakeup_fd(-1)  # trio's wakeup fd is shared with the parent
        except (ValueError, OSError):
            pass
        for signum in CHILD_DEFAULT_SIGNALS:
            try:
                signal.signal(signum, signal.SIG_DFL)
            except (ValueError, OSError):
                pass
        gc.disable()  # a collection would write to every object header: copy-on-write
        die_with_parent(parent)
        result = body(write_fd)
        status = CHILD_OK if result is None else result
    except BaseException:  # noqa: BLE001 - the parent sees the exit status
        pass
    finally:
        os._exit(status)


class ForkedChild:
    """The parent's handle on a child made by :func:`fork_child`: its ``pid``, the read end
    of the pipe it writes into (``receive_some``; ``report`` once reaped) and ``wait()``,
    which reaps it.  Await ``wait()`` whatever happens: it also closes the pipe and gives the
    GC back what :func:`fork_child` froze (once: a second call answers the same code)."""

    def __init__(self, pid: int, read_fd: int, started: float) -> None:
        self.pid = pid
        self.started = started  # time.monotonic() at the fork
        self._pipe = trio.lowlevel.FdStream(read_fd)  # non-blocking from now on
        self._reaped = False
        self._code: int | None = None
        # After wait(): what the child wrote and nobody read (at most REPORT_BYTES), e.g. the
        # reason of a failure, as text.
        self.report = b""

    async def receive_some(self, max_bytes: int = PIPE_READ_BYTES) -> bytes:
        """The next bytes the child wrote, waiting for them; b"" once the child closed its end
        (it exited)."""
        return await self._pipe.receive_some(max_bytes)

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Send ``signum`` to the child unless it was reaped already."""
        if not self._reaped:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    async def wait(self) -> int:
        """Reap the child off the event loop (see :func:`wait_child`; cancelled, it kills the
        child first) and return its exit code as :func:`os.waitstatus_to_exitcode` gives it:
        ``CHILD_OK``, another status, or ``-signum`` when a signal ended it."""
        if self._reaped:
            if self._code is None:
                raise RuntimeError("the child was killed by a cancelled wait(): no exit code")
            return self._code
        try:
            status = await wait_child(self.pid)
        finally:
            self._reaped = True
            try:
                self.report = os.read(self._pipe.fileno(), REPORT_BYTES)
            except OSError:  # BlockingIOError included: the child wrote nothing unread
                pass
            self._pipe.close()
            fork_child_exited()
        self._code = os.waitstatus_to_exitcode(status)
        return self._code


def fork_child(body: Callable[[int], int | None], *,
               record_fork: Callable[[float], None] | None = None) -> ForkedChild:
    """Fork a child that runs ``body(write_fd)`` (``write_fd`` is the write end of a pipe the
    parent reads) and exits with its return value (None means ``CHILD_OK``; an exception
    means ``CHILD_FAILED``).  In the parent: the :class:`ForkedChild`, once ``record_fork``
    (``BackendHost.record_fork``: INFO's fork counters, the ``fork`` latency event) was told
    how long the fork took.  Raises OSError when the fork fails, with nothing left behind.

    The child has the dataset as it is at this instant, copy-on-write; it must touch no trio
    object and no lock another thread may have held at the fork (the log's included): report
    through the pipe or the exit status.  It dies with the server (``die_with_parent``)."""
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    prepare_fork()
    started = time.monotonic()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        fork_child_exited()
        raise
    if pid == 0:
        os.close(read_fd)
        _run_child(body, write_fd, parent)
    os.close(write_fd)
    if record_fork is not None:
        record_fork(time.monotonic() - started)
    return ForkedChild(pid, read_fd, started)
