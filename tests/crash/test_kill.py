"""kill -9 at a random moment (sometimes during BGREWRITEAOF), restart on the same directory,
and check every writer's keys: under every fsync policy, no acknowledged write is lost, nothing
never sent appears, each writer's state is a prefix of what it sent and transactions are whole.

The write(2) of a change happens before its reply under every policy, so the page cache holds
every acknowledged write when the process dies; fsync only matters for a power loss.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest
import redis
from servers import ServerProcess
from workload import (
    Verdict,
    Writer,
    expected_state,
    no_retry_client,
    preload,
    read_state,
    verify,
    wait_loaded,
)

ROUNDS_PER_POLICY = 7
WRITERS = 4


@pytest.mark.parametrize("policy", ["always", "everysec", "no"])
def test_kill_9_loses_no_acknowledged_write(tmp_path, policy, capsys, spawned):
    seed = int(os.environ.get("CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(f"{policy}:{seed}")
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["appendfsync", policy],
                                           ["save", ""]])
    spawned.append(server)
    server.start(wait=False)
    wait_loaded(server)
    preload(server.port, 30_000)
    total = Verdict(mismatches=[])
    verified: dict[str, int] = {}
    failed_restarts = 0
    killed_during_rewrite = 0
    rounds = 0
    try:
        for round_number in range(ROUNDS_PER_POLICY):
            rounds += 1
            stop = threading.Event()
            writers = [Writer(server.port, f"r{round_number}:w{w}", stop) for w in range(WRITERS)]
            for writer in writers:
                writer.start()
            window = rng.uniform(0.2, 0.8)
            if round_number % 2:
                before = rng.uniform(0.0, window)
                time.sleep(before)
                control = no_retry_client(server.port)
                try:
                    control.bgrewriteaof()
                except redis.ResponseError:
                    pass
                if round_number != 1:  # round 1 kills right away, while the child writes
                    time.sleep(max(0.0, window - before - rng.uniform(0, 0.1)))
                try:
                    if control.info("persistence")["aof_rewrite_in_progress"]:
                        killed_during_rewrite += 1
                finally:
                    control.close()
            else:
                time.sleep(window)
            server.kill()
            stop.set()
            for writer in writers:
                writer.join(30)
                assert writer.error is None, writer.error
            try:
                server.start(wait=False)
                wait_loaded(server)
            except (RuntimeError, TimeoutError):
                failed_restarts += 1
                break
            client = no_retry_client(server.port)
            try:
                for writer in writers:
                    verdict, operations = verify(client, writer.prefix, writer.acked, writer.sent)
                    total.add(verdict)
                    verified[writer.prefix] = operations
                # Earlier rounds' survivors must stay exactly as they were.
                for prefix, operations in verified.items():
                    if (operations >= 0 and read_state(client, prefix)
                            != expected_state(prefix, operations)):
                        total.mismatches.append(f"{prefix} changed after a later crash")
            finally:
                client.close()
    finally:
        server.stop()
        with capsys.disabled():
            print(f"\ncrash[{policy}] seed={seed} rounds={rounds} acked={total.acked} "
                  f"lost={total.lost} phantom={total.phantom} "
                  f"killed_during_rewrite={killed_during_rewrite} "
                  f"failed_restarts={failed_restarts} mismatches={len(total.mismatches)}")
    assert failed_restarts == 0, server.log()[-3000:]
    assert total.mismatches == []
    assert total.lost == 0 and total.phantom == 0
