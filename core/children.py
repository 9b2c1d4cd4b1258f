"""Waiting for a forked persistence child (AOF rewrite, snapshot) from trio."""

from __future__ import annotations

import os
import signal

import trio


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
