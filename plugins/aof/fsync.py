"""The AOF's fsync process, for ``appendfsync always``.

WHY A PROCESS.  Group commit through ``trio.to_thread.run_sync`` costs a trio round trip per
fdatasync (~0.4 ms here, where the disk does one in ~0.1 ms).  A dedicated thread looping on a
condition removed that, but it shares the GIL with the event loop: every fdatasync that
returns has to win the GIL back from a busy reactor, and the futex traffic of those handoffs
cost more CPU than the commands (about 21 us per SET under ``always`` against 8 us with no
persistence, measured from /proc).  A small process of our own (``fsync_helper.py``, standard
library only) has no GIL to share.  The server sends it requests over a SOCK_SEQPACKET
socket pair, as soon as each turn's write(2) returns; the helper takes every request queued
meanwhile, runs one fdatasync for the highest position and answers; the next fdatasync
starts as soon as it has answered, with no trio scheduling in between.  The answers are read
on the trio thread, which calls ``done`` for each: by the reactor within its turn when the
host offers ``watch_readable`` (no task wake-up per answer, and the replies an answer makes
durable leave at the end of that turn), else by a task of its own.

PROTOCOL.  Requests are ``REQUEST`` records ``(kind, generation, position)``: ``F`` hands the
helper a duplicate of the AOF descriptor of a new generation (SCM_RIGHTS; it closes the
previous one), ``S`` asks for an fdatasync covering ``position`` of that generation, ``X``
makes it close its descriptor of that generation, ``Q`` makes it exit (so does end of file:
a killed server's end is closed by the kernel).  Answers are ``RESULT`` records
``(generation, position, errno, nanoseconds)``.

DURABILITY.  A request names a position whose write(2) already returned; the fdatasync that
takes the request starts after the helper received it, and an fdatasync of any descriptor of
a file writes out all its dirty pages, whoever wrote them: when the answer comes, every byte up
to the position is on disk.  Nothing else is claimed: the answer names the generation, and the
backend ignores a result for a file it no longer appends to.

FILE DESCRIPTORS.  The helper holds its own duplicate, so the server may close its descriptor
at any time (no descriptor number can be reused under the helper's feet); ``forget(fd)`` lets
the helper close its duplicate too, so a switched-away file is not kept open by it.

LIFETIME.  :meth:`Fsyncer.run` is a task of the AOF backend's nursery: it starts the helper,
has its answers read, and on cancellation closes the socket (the helper exits on end of file,
also when the server is killed) and waits for the helper.  While no helper runs (before it has
started, or if it died), ``running`` is False and the backend syncs through a worker thread.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import trio

from .fsync_helper import REQUEST, RESULT

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fsync_helper.py")

# done(generation, position, error, seconds): runs on the trio thread after each fdatasync;
# ``seconds`` is how long the fdatasync took (the ``aof-fsync-always`` latency event).
DoneCallback = Callable[[int, int, "OSError | None", float], None]
# The host's watch_readable(fd, callback) -> unwatch (None: read in a task).
WatchReadable = Callable[[int, Callable[[], None]], "Callable[[], None] | None"]


class Fsyncer:
    def __init__(self, done: DoneCallback) -> None:
        self._done = done
        self._sock: socket.socket | None = None
        self.started = False  # run() was started (the helper may still be starting)
        self.running = False  # the helper answers requests
        self._sent_fd = -1  # the descriptor the helper holds a duplicate of, and its generation
        self._sent_generation = -1
        self._backlog: list[tuple[bytes, list[int]]] = []  # requests the socket refused (full)
        self.requested = -1  # highest position requested for ``requested_generation``
        self.requested_generation = -1
        self._answered = -1  # highest position answered for ``requested_generation``
        self.helper_pid = 0

    @property
    def busy(self) -> bool:
        """An fdatasync was asked for and has not answered yet."""
        return self.running and self._answered < self.requested

    async def run(self, log: Callable[[str], None], watch: WatchReadable | None = None, *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start the helper and have its answers read (by ``watch``, the host's
        ``watch_readable``, when it offers it) until cancelled or the helper exits."""
        self.started = True
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-I", "-S", HELPER, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
            )
        except OSError as error:
            log(f"Can't start the AOF fsync process ({error}): fsyncing in a worker thread")
            ours.close()
            theirs.close()
            task_status.started()
            return
        theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self.helper_pid = process.pid
        self.running = True
        task_status.started()
        gone = trio.Event()
        unwatch: Callable[[], None] | None = None

        def on_readable() -> None:
            if not self._read_nowait(ours) and unwatch is not None:
                unwatch()  # end of file stays readable: no more turns for it
                gone.set()

        try:
            if watch is not None:
                unwatch = watch(ours.fileno(), on_readable)
            if unwatch is not None:
                await gone.wait()
            else:
                await self._read_answers(ours)
            log("The AOF fsync process exited: fsyncing in a worker thread")
        finally:
            if unwatch is not None:
                unwatch()  # before the close: the descriptor number may be reused
            self.running = False
            self._sock = None
            self._sent_fd = self._sent_generation = -1
            self.requested_generation = -1
            self._backlog.clear()
            # Q, then end of file: a forked child (a rewrite or a save) holds a copy of our
            # end, so end of file alone would wait for it.
            try:
                ours.send(REQUEST.pack(b"Q", 0, 0))
            except OSError:
                pass
            ours.close()
            with trio.CancelScope(shield=True):
                with trio.move_on_after(5):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            # Waiters re-check: without the helper they sync through a worker thread.
            self._done(-1, -1, None, 0.0)

    async def _read_answers(self, sock: socket.socket) -> None:
        """Without ``watch``: a task reads the answers."""
        while True:
            await trio.lowlevel.wait_readable(sock)
            if not self._read_nowait(sock):
                return

    def _read_nowait(self, sock: socket.socket) -> bool:
        """Take every answer already there (``done`` for each); False once the helper is
        gone (end of file or an error)."""
        while True:
            try:
                data = sock.recv(RESULT.size)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
            generation, position, errno, nanoseconds = RESULT.unpack(data)
            if generation == self.requested_generation and position > self._answered:
                self._answered = position
            self._send_backlog()
            error = OSError(errno, os.strerror(errno)) if errno else None
            self._done(generation, position, error, nanoseconds / 1e9)

    def request(self, fd: int, generation: int, position: int) -> None:
        """Ask for an fdatasync of ``fd`` covering ``position`` (already written).  Called
        on the trio thread; returns at once."""
        if generation == self.requested_generation and position <= self.requested:
            return  # an fdatasync already asked for (or running) covers it
        if generation != self._sent_generation:
            self._send(REQUEST.pack(b"F", generation, 0), [fd])
            self._sent_fd, self._sent_generation = fd, generation
            self._answered = -1
        self._send(REQUEST.pack(b"S", generation, position))
        self.requested, self.requested_generation = position, generation

    def forget(self, fd: int) -> None:
        """``fd`` is about to be closed: the helper closes its duplicate, and a request for it
        is void (the next one for a new file hands that file over)."""
        if fd == self._sent_fd and self.running:
            self._send(REQUEST.pack(b"X", self._sent_generation, 0))
            self._sent_fd = self._sent_generation = -1
            self.requested_generation = -1

    def _send(self, message: bytes, fds: list[int] | None = None) -> None:
        backlog = self._backlog
        if not backlog and self._try_send(message, fds):
            return
        # The helper is behind (its socket is full: a disk stalled): queue in order, but a
        # sync request supersedes a queued one right before it (it covers more).
        if not fds and message[:1] == b"S" and backlog and backlog[-1][0][:1] == b"S":
            backlog[-1] = (message, [])
        else:
            backlog.append((message, fds or []))

    def _send_backlog(self) -> None:
        while self._backlog:
            message, fds = self._backlog[0]
            if not self._try_send(message, fds):
                return
            self._backlog.pop(0)

    def _try_send(self, message: bytes, fds: list[int] | None) -> bool:
        sock = self._sock
        if sock is None:
            return True  # no helper: nothing will answer; the backend falls back
        try:
            if fds:
                socket.send_fds(sock, [message], fds)
            else:
                sock.send(message)
        except BlockingIOError:
            return False  # the helper is behind: sent after its next answer
        except OSError:
            return True  # the helper is gone: _read_answers sees end of file
        return True


def sync_and_close(fd: int, sync: bool = False) -> None:
    """Close (after an fsync when ``sync``) an AOF descriptor: blocking, for a worker thread.
    Call :meth:`Fsyncer.forget` first, on the trio thread."""
    try:
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
