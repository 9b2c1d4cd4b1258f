"""Forked persistence children (AOF rewrite, snapshot): waiting for one from trio, and
making one die with the server."""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

import trio

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
