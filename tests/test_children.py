"""trioredis.fork_child: a real forked child writing into a pipe, read and reaped from trio
(the helper the snapshot backend and replication's full resync both fork with)."""

from __future__ import annotations

import gc
import os
import time

import pytest
import trio
import trioredis
from trioredis import CHILD_FAILED, CHILD_OK, fork_child


async def test_parent_reads_everything_the_child_writes_and_the_fork_is_counted():
    forks: list[float] = []
    payload = os.urandom(3 << 20)  # more than the pipe holds: the parent must read as it comes

    def body(fd: int) -> None:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]

    child = fork_child(body, record_fork=forks.append)
    assert child.pid != os.getpid()
    assert len(forks) == 1 and forks[0] >= 0
    chunks = []
    while chunk := await child.receive_some():
        chunks.append(chunk)
    assert await child.wait() == CHILD_OK
    assert b"".join(chunks) == payload
    assert child.report == b""
    assert gc.get_freeze_count() == 0  # what the fork froze is the collector's again


async def test_exit_code_and_report_come_back_when_nobody_read_the_pipe():
    def body(fd: int) -> int:
        os.write(fd, b"disk full")
        return 7

    child = fork_child(body)
    assert await child.wait() == 7
    assert child.report == b"disk full"
    assert await child.wait() == 7  # reaped once; the pipe and the GC are not undone twice
    assert gc.get_freeze_count() == 0


async def test_a_body_that_raises_exits_with_child_failed():
    def body(fd: int) -> None:
        raise ValueError("no")

    child = fork_child(body)
    assert await child.wait() == CHILD_FAILED


@pytest.mark.parametrize("signum", trioredis.CHILD_DEFAULT_SIGNALS)
async def test_server_signals_end_the_child_with_their_default_action(signum):
    # The test process (like the server) may handle these signals: the child must not.
    def body(fd: int) -> None:
        os.write(fd, b"x")
        time.sleep(30)

    with trio.open_signal_receiver(signum):  # installs a handler in the parent
        child = fork_child(body)
        assert await child.receive_some() == b"x"  # the child runs its body
        child.kill(signum)
        assert await child.wait() == -signum


async def test_cancelled_wait_kills_and_reaps_the_child():
    child = fork_child(lambda fd: time.sleep(30))
    with trio.move_on_after(0.2):
        await child.wait()
    with pytest.raises(ChildProcessError):  # reaped: no zombie left
        os.waitpid(child.pid, os.WNOHANG)
    assert gc.get_freeze_count() == 0

