"""OBJECT IDLETIME under every maxmemory-policy, beside a real redis-server 7.0: Redis keeps
the LRU clock of a key on every access unless an LFU policy is set, so IDLETIME counts
seconds under ``noeviction`` (the default) too.  The same sleep-separated script goes to both
servers; idle times are compared within a second (both clocks tick in whole seconds, read by
each server's cron), OBJECT FREQ's and IDLETIME's error texts byte for byte."""

from __future__ import annotations

import time

import parity
import pytest
from parity import RawClient
from servers import ServerThread

reference = parity.reference

LRU_LIKE = ["noeviction", "allkeys-lru", "volatile-lru", "allkeys-random", "volatile-random",
            "volatile-ttl"]
LFU = ["allkeys-lfu", "volatile-lfu"]


@pytest.fixture(scope="module")
def ours():
    server = ServerThread([["save", ""], ["appendonly", "no"]]).start()
    yield server
    server.stop()


def _integer(reply: bytes) -> int:
    assert reply.startswith(b":"), reply
    return int(reply[1:-2])


def _both(ours, reference, *script: tuple) -> list[tuple[bytes, bytes]]:
    """Each command of ``script`` to both servers: the pairs of raw replies."""
    replies = []
    with RawClient(ours.port) as mine, RawClient(reference.port) as theirs:
        for command in script:
            replies.append((mine.call(*command), theirs.call(*command)))
    return replies


@pytest.mark.parametrize("policy", LRU_LIKE)
def test_idletime_counts_seconds_since_the_last_access_under_non_lfu_policies(
        ours, reference, policy):
    setup = _both(ours, reference, ("FLUSHALL",), ("CONFIG", "SET", "maxmemory-policy", policy),
                  ("SET", "read", "v"), ("SET", "untouched", "v"), ("RPUSH", "list", "a"))
    assert [mine for mine, _ in setup] == [theirs for _, theirs in setup]
    time.sleep(2.2)
    # GET, LRANGE touch; EXISTS, TYPE, TTL and OBJECT itself do not (LOOKUP_NOTOUCH).
    script = [("GET", "read"), ("LRANGE", "list", "0", "-1"), ("EXISTS", "untouched"),
              ("TYPE", "untouched"), ("TTL", "untouched"),
              ("OBJECT", "IDLETIME", "read"), ("OBJECT", "IDLETIME", "list"),
              ("OBJECT", "IDLETIME", "untouched"), ("OBJECT", "IDLETIME", "missing"),
              ("OBJECT", "FREQ", "read")]
    replies = _both(ours, reference, *script)
    for (command, (mine, theirs)) in zip(script, replies, strict=True):
        if command[:2] == ("OBJECT", "IDLETIME") and theirs.startswith(b":"):
            assert abs(_integer(mine) - _integer(theirs)) <= 1, (command, mine, theirs)
        else:
            assert mine == theirs, (command, mine, theirs)
    idle = {command[2]: _integer(mine) for command, (mine, _) in zip(script, replies, strict=True)
            if command[:2] == ("OBJECT", "IDLETIME") and mine.startswith(b":")}
    assert idle["read"] <= 1 and idle["list"] <= 1
    assert 2 <= idle["untouched"] <= 3


@pytest.mark.parametrize("policy", LFU)
def test_lfu_policies_answer_freq_and_refuse_idletime_with_redis_text(ours, reference, policy):
    script = [("FLUSHALL",), ("CONFIG", "SET", "maxmemory-policy", policy), ("SET", "k", "v"),
              ("OBJECT", "IDLETIME", "k"), ("OBJECT", "FREQ", "k"),
              ("OBJECT", "FREQ", "missing"), ("CONFIG", "SET", "maxmemory-policy", "noeviction"),
              ("OBJECT", "FREQ", "k"), ("OBJECT", "IDLETIME", "k")]
    for command, (mine, theirs) in zip(script, _both(ours, reference, *script), strict=True):
        if command[:2] == ("OBJECT", "FREQ") and theirs.startswith(b":"):
            assert mine.startswith(b":"), (command, mine)  # a random counter: its kind
        elif command[:2] == ("OBJECT", "IDLETIME") and theirs.startswith(b":"):
            assert abs(_integer(mine) - _integer(theirs)) <= 1, (command, mine, theirs)
        else:
            assert mine == theirs, (command, mine, theirs)


def test_a_write_resets_the_idle_time_and_a_snapshot_reload_restarts_it(ours):
    with RawClient(ours.port) as client:
        client.call("FLUSHALL")
        client.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
        client.call("SET", "a", "1")
        client.call("SET", "b", "1")
        time.sleep(2.2)
        assert _integer(client.call("OBJECT", "IDLETIME", "a")) >= 2
        client.call("INCR", "a")
        client.call("MSET", "b", "2", "b", "3")
        assert _integer(client.call("OBJECT", "IDLETIME", "a")) <= 1
        assert _integer(client.call("OBJECT", "IDLETIME", "b")) <= 1
