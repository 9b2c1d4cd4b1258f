"""The AOF's own fsync thread, for ``appendfsync always``.

WHY A DEDICATED THREAD.  Group commit through ``trio.to_thread.run_sync`` costs a trio round
trip per fdatasync: the fsync ends in a worker thread, trio wakes the waiters, one of them
starts the next fsync, which goes back to a worker thread (~0.4 ms per round here, where the
disk does an fdatasync in ~0.1 ms).  This thread loops on a condition instead: writers post
the position they need (:meth:`FsyncThread.request`, right after their write(2)), and as soon
as one fdatasync returns the next one starts for everything written meanwhile, with no trio
scheduling in between.  Trio hears of each completed fdatasync through
``TrioToken.run_sync_soon`` (a callback on the trio thread that marks the covered position
durable and wakes the waiters).

DURABILITY.  A request names a position whose write(2) already returned; the fdatasync that
takes the request starts after that, so when it returns every byte up to the position is on
disk.  Nothing else is claimed: the callback gets the position and the file's generation,
and the backend ignores a result for a file it no longer appends to.

FILE DESCRIPTORS.  The thread holds ``io_lock`` from the moment it takes a request until its
fdatasync returns, and :meth:`FsyncThread.forget` drops a pending request for a descriptor;
whoever closes an AOF descriptor calls ``forget(fd)`` and then closes it under ``io_lock``
(:meth:`FsyncThread.close_fd`), so the thread never syncs a descriptor number that was
closed (and maybe reused by a socket) meanwhile.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import trio

# done(generation, position, error, seconds): runs on the trio thread after each fdatasync;
# ``seconds`` is how long the fdatasync took (the ``aof-fsync-always`` latency event).
DoneCallback = Callable[[int, int, "OSError | None", float], None]


class FsyncThread:
    def __init__(self, done: DoneCallback) -> None:
        self._done = done
        self._cond = threading.Condition()
        self.io_lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        # The pending request (the latest wins: it covers every earlier one of its file).
        self._fd = -1
        self._generation = -1
        self._position = -1
        self._pending = False
        self.requested = -1  # highest position requested for ``requested_generation``
        self.requested_generation = -1
        self.busy = False

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="trioredis-aof-fsync",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for it (an fdatasync in progress finishes first)."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._pending = False
            self._cond.notify()
        thread.join()
        self._thread = None

    def request(self, fd: int, generation: int, position: int) -> None:
        """Ask for an fdatasync of ``fd`` covering ``position`` (already written).  Called
        on the trio thread; returns at once."""
        if generation == self.requested_generation and position <= self.requested:
            return  # an fdatasync already asked for (or running) covers it
        with self._cond:
            self._fd, self._generation, self._position = fd, generation, position
            self._pending = True
            self.requested, self.requested_generation = position, generation
            self._cond.notify()

    def forget(self, fd: int) -> None:
        """``fd`` is about to be closed: drop a pending request for it."""
        with self._cond:
            if self._pending and self._fd == fd:
                self._pending = False
                self.requested_generation = -1

    def close_fd(self, fd: int, sync: bool = False) -> None:
        """Close (after an fsync when ``sync``) an AOF descriptor the thread may have been
        asked to sync: blocking, for a worker thread."""
        self.forget(fd)
        with self.io_lock:
            try:
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)

    def _loop(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._pending and not self._stopping:
                    cond.wait()
                if self._stopping:
                    return
                fd, generation, position = self._fd, self._generation, self._position
                self._pending = False
                self.busy = True
                self.io_lock.acquire()  # under the condition: forget() cannot slip between
            error: OSError | None = None
            started = time.monotonic()
            try:
                os.fdatasync(fd)
            except OSError as failure:
                error = failure
            finally:
                self.io_lock.release()
                self.busy = False
            token = self._token
            assert token is not None
            try:
                token.run_sync_soon(self._done, generation, position, error,
                                    time.monotonic() - started)
            except trio.RunFinishedError:
                return
