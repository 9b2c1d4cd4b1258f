"""The parent's side of an AOF rewrite: BGREWRITEAOF and automatic rewrites, the fork, the
switch to the child's file (what a crash loses at each step) and closing the old one.  The
child's side (writing the dataset) is :mod:`.rewrite`.

A mixin of :class:`~trioredis.plugins.aof.backend.AofBackend`, whose constructor creates the
state used here (``_child``, ``_rewrite_buf``, ``_rewrite_scheduled``...).
"""

from __future__ import annotations

import os
import time
from typing import Any

import trio
from trioredis import CHILD_OK, ErrorReply, ForkedChild, Status, errors, fork_child

from .fsync import sync_and_close
from .rewrite import MESSAGE_ERROR, MESSAGE_PROGRESS, child_main, temp_path, write_all
from .state import (
    CATCH_UP_ROUNDS,
    REWRITE_FAILED,
    SMALL_TAIL,
    RewriteChild,
    State,
    remove_file,
)


class Rewriting:
    """Rewrites of the AOF (mixed into ``AofBackend``)."""

    def _auto_rewrite_due(self) -> bool:
        config = self.config
        percentage = config.auto_aof_rewrite_percentage
        if not percentage or self._current_size <= config.auto_aof_rewrite_min_size:
            return False
        base = max(self._base_size, 1)
        return (self._current_size * 100 // base) - 100 >= percentage

    # --- rewrite ---------------------------------------------------------------------------

    def rewrite(self) -> Any:
        """BGREWRITEAOF, with Redis's replies (at once: the child runs in the background)."""
        if self._child is not None:
            return ErrorReply(errors.BACKGROUND_REWRITE_IN_PROGRESS.encode())
        if self._host is None or self._host.fork_slot.busy:
            self._rewrite_scheduled = True
            return Status(b"Background append only file rewriting scheduled")
        try:
            self._start_rewrite()
        except OSError as error:
            self._log("warning", f"Can't rewrite append only file in background: fork: {error}")
            return ErrorReply(REWRITE_FAILED)
        return Status(b"Background append only file rewriting started")

    def _start_rewrite_logged(self) -> None:
        try:
            self._start_rewrite()
        except OSError as error:
            self._log("warning", f"Can't rewrite append only file in background: fork: {error}")
            self._rewrite_retry_at = time.monotonic() + 5

    def _start_rewrite(self) -> None:
        host, nursery = self._host, self._nursery
        assert host is not None and nursery is not None
        if not host.fork_slot.try_acquire("aof"):
            self._rewrite_scheduled = True
            return
        try:
            if self.state is State.ON and self._fd is not None and self._buf:
                self._write_pending()
            if self.state is State.WAIT_REWRITE or self._fd is None:
                self._path = self._configured_path(self.config)
            directory = os.path.dirname(self._path) or "."

            def body(report_fd: int) -> int:
                return child_main(host, directory, report_fd)

            # The helper freezes the GC, forks, counts the fork; a failed fork leaves nothing.
            forked = fork_child(body, record_fork=host.record_fork)
        except BaseException:
            host.fork_slot.release("aof")
            raise
        pid = forked.pid
        # THE FORK POINT.  The child writes the dataset as it is now; every write fed from
        # now on goes to the old AOF (still the one in use: a crash during the rewrite loses
        # nothing) and to the rewrite buffer, which the switch appends to the child's file.
        # Resetting the selected database makes the rewrite buffer start with a SELECT.
        self._child = RewriteChild(pid, directory, started=forked.started, forked=forked)
        self._rewrite_scheduled = False
        if self.state is not State.OFF:
            self._rewrite_buf = bytearray()
            self._selected_db = -1
        host.hook.trioredis_rewrite_started()
        self._log("notice", f"Background append only file rewriting started by pid {pid}")
        nursery.start_soon(self._finish_rewrite, self._child, forked)

    async def _follow_child(self, forked: ForkedChild) -> str:
        """Read the child's pipe until it exits (its end closes): progress lines are logged
        as they come; the reason of a failure it sent ("" when none)."""
        reason = ""
        pending = b""
        while chunk := await forked.receive_some():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                kind, _, text = line.partition(b" ")
                message = text.decode("utf-8", "replace")
                if kind == MESSAGE_PROGRESS:
                    self._log("notice", f"AOF rewrite (child {forked.pid}): {message}")
                elif kind == MESSAGE_ERROR:
                    reason = message
        return reason

    async def _finish_rewrite(self, child: RewriteChild, forked: ForkedChild) -> None:
        host = self._host
        assert host is not None
        temp = temp_path(child.directory, child.pid)
        ok = False
        try:
            try:
                reason = await self._follow_child(forked)
            finally:
                # Reaps the child whatever happened (cancelled: kills it first), closes the
                # pipe, unfreezes the GC.
                code = await forked.wait()
            if child.killed:
                self._log("notice", "Killed AOF rewrite child; its file is removed")
            elif code == CHILD_OK:
                self._log("notice", "Background AOF rewrite terminated with success")
                try:
                    ok = await self._install_rewrite(child, temp)
                except OSError as error:
                    self._log("warning", f"Can't install the rewritten AOF: {error}")
            elif code < 0:
                self._log("warning", f"Background AOF rewrite terminated by signal {-code}")
            else:
                self._log("warning", "Background AOF rewrite terminated with error: "
                          f"{reason or 'the child failed'}")
        finally:
            if self._child is child:
                self._child = None
            if not ok:
                self._rewrite_buf = None
                remove_file(temp)
            host.fork_slot.release("aof")
        seconds = time.monotonic() - child.started
        if child.killed:
            return
        self._last_rewrite_seconds = int(seconds)
        self._last_rewrite_ok = ok
        if ok:
            self._rewrites += 1
            self._rewrite_failures = 0
            self._log("notice", "Background AOF rewrite finished successfully")
        else:
            self._rewrite_failures += 1
            # Back off before the next attempt (automatic or scheduled), so a child that
            # keeps failing does not turn into a fork every tick.
            self._rewrite_retry_at = time.monotonic() + min(2 ** self._rewrite_failures, 60)
            if self.state is State.WAIT_REWRITE:  # appendonly yes still needs its first file
                self._rewrite_scheduled = True
        host.hook.trioredis_rewrite_finished(ok=ok, stats={"kind": "aof", "seconds": seconds})

    # Over 60 lines on purpose: the switch's steps and what a crash loses at each read in
    # order in one place, and step 3 must run with no checkpoint in between.
    async def _install_rewrite(self, child: RewriteChild, temp: str) -> bool:
        """Make the child's file the AOF.  Returns False (the old AOF stays in use, untouched)
        on any error."""
        if self.state is State.OFF:
            return await self._install_one_time(temp)
        # WHAT A CRASH LOSES DURING THE SWITCH.  Until the rename the old AOF is the AOF and
        # it is complete (every write still goes to it), so a crash or a power loss before
        # the rename costs exactly what it would without a rewrite.  The new file holds the
        # same stream before it is renamed into place: fsynced up to ``copied`` after step 2,
        # and under ``always`` up to the end before the rename, so a power loss right after
        # the rename loses no acknowledged write either; under everysec the tail after step
        # 2 is fsynced by the next tick (~1 s), under no by the OS.  The directory is fsynced
        # after the rename so the rename itself survives a power loss.
        new_fd = os.open(temp, os.O_WRONLY | os.O_APPEND)
        try:
            # 1. Catch up with the rewrite buffer off the event loop while it is big; writers
            #    keep appending to it (and to the old AOF) meanwhile.  Bounded, so writers
            #    faster than the copy cannot keep the rewrite from finishing.
            copied = self._fed - len(self._rewrite_buf or b"")
            for _ in range(CATCH_UP_ROUNDS):
                if self._rewrite_buf is None or len(self._rewrite_buf) <= SMALL_TAIL:
                    break
                chunk = bytes(self._rewrite_buf)
                self._rewrite_buf.clear()
                await trio.to_thread.run_sync(write_all, new_fd, chunk, limiter=self._copy_limiter)
                copied += len(chunk)
            # 2. fsync the new file off the loop: it then holds the stream through ``copied``.
            if self.config.appendfsync != "no":
                await trio.to_thread.run_sync(os.fsync, new_fd, limiter=self._copy_limiter)
            if self._rewrite_buf is None or child.killed or self.state is State.OFF:
                raise OSError("rewrite cancelled (appendonly switched off)")
            # 3. THE SWITCH, with no checkpoint from here on: no command runs in between, so
            #    the new file gets exactly the rest of the stream.  Under ``always`` the small
            #    tail is fsynced right here, on the loop, so that no acknowledged write is
            #    ever only in a file that the rename has just unlinked from the namespace.
            #    Under everysec the tail is fsynced by the next tick (power loss: ~1 s).
            if self.state is State.ON and self._fd is not None and self._buf:
                self._write_pending()  # the old file stays complete until the rename
            write_all(new_fd, self._rewrite_buf)
            durable = copied
            if self.config.appendfsync == "always":
                os.fdatasync(new_fd)
                durable = self._fed
            os.rename(temp, self._path)
        except BaseException:
            os.close(new_fd)
            raise
        old_fd = self._fd
        self._fd = new_fd
        self._generation += 1
        self._selected_db = -1
        self._buf.clear()  # whatever the old file could not take is in the new one
        self._written = self._fed
        self._durable = durable if self.config.appendfsync != "no" else self._durable
        self._write_error = None
        self._rewrite_buf = None
        self._current_size = self._base_size = os.fstat(new_fd).st_size
        was_waiting = self.state is State.WAIT_REWRITE
        self._set_state(State.ON)
        self._wake_fsync_waiters()  # requests for the old file are void: re-check tickets
        assert self._nursery is not None
        if old_fd is not None:
            # Closing the last descriptor of the unlinked old file frees its blocks: that can
            # take long for a big file, so it happens in a worker thread.
            self._nursery.start_soon(self._close_in_thread, old_fd)
        self._nursery.start_soon(self._fsync_directory)
        if was_waiting:
            self._log("notice", "AOF is now enabled: the rewritten file is in use")
        return True

    async def _install_one_time(self, temp: str) -> bool:
        """appendonly no: BGREWRITEAOF still produces the file.  The old file is opened first
        so that rename() does not unlink it on the event loop; it is closed in a thread."""
        try:
            old_fd: int | None = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            old_fd = None
        try:
            os.rename(temp, self._path)
        except OSError as error:
            self._log("warning", f"Error trying to rename the temporary AOF: {error.strerror}")
            if old_fd is not None:
                os.close(old_fd)
            return False
        if old_fd is not None:
            await self._close_in_thread(old_fd)
        await self._fsync_directory()
        return True

    async def _close_in_thread(self, fd: int, sync: bool = False) -> None:
        self._fsyncer.forget(fd)
        await trio.to_thread.run_sync(sync_and_close, fd, sync, limiter=self._io_limiter)

    async def _fsync_directory(self) -> None:
        """Make the rename itself durable."""
        directory = os.path.dirname(self._path) or "."

        def sync() -> None:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        try:
            await trio.to_thread.run_sync(sync, limiter=self._io_limiter)
        except OSError as error:
            self._log("warning", f"Error fsyncing the AOF directory: {error}")

    def _kill_child(self) -> None:
        child = self._child
        if child is not None and not child.killed:
            child.killed = True
            # Through the handle: once reaped, the pid may be another process's.
            if child.forked is not None:
                child.forked.kill()
        self._rewrite_buf = None
