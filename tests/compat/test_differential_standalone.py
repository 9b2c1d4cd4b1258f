"""ASKING, RESTORE-ASKING and FAILOVER against redis-server 7.0.15 (standalone, no replicas):
the same raw reply bytes for a fixed script of argument shapes and for seeded random ones,
COMMAND INFO/GETKEYS of the three (COMMAND DOCS is in this project's words: its
structure is checked for every command by tests/test_command_introspection.py), RESTORE-ASKING restoring as RESTORE does (inside
MULTI too), its keyspace notification, and what it propagates."""

from __future__ import annotations

import random
import shutil

import pytest
from parity import RawClient, keyspace_events, server_beside_redis
from servers import record_propagation
from trioredis.rdb import dump_payload

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")

PAYLOAD = dump_payload(b"restored")

SCRIPT: list[list[bytes]] = [
    [b"ASKING"],
    [b"ASKING", b"x"],
    [b"RESTORE-ASKING"],
    [b"RESTORE-ASKING", b"k", b"0"],
    [b"RESTORE-ASKING", b"k", b"0", PAYLOAD],
    [b"GET", b"k"],
    [b"RESTORE-ASKING", b"k", b"0", PAYLOAD],
    [b"RESTORE-ASKING", b"k", b"0", PAYLOAD, b"REPLACE", b"IDLETIME", b"5"],
    [b"RESTORE-ASKING", b"k2", b"-1", PAYLOAD],
    [b"RESTORE-ASKING", b"k2", b"0", b"garbage"],
    [b"RESTORE-ASKING", b"k2", b"100000", PAYLOAD, b"NOPE"],
    [b"MULTI"],
    [b"RESTORE-ASKING", b"m", b"0", PAYLOAD],
    [b"ASKING"],
    [b"FAILOVER"],
    [b"EXEC"],
    [b"GET", b"m"],
    [b"FAILOVER"],
    [b"FAILOVER", b"ABORT"],
    [b"FAILOVER", b"abort", b"x"],
    [b"FAILOVER", b"TIMEOUT", b"0"],
    [b"FAILOVER", b"TIMEOUT", b"-5"],
    [b"FAILOVER", b"TIMEOUT", b"x"],
    [b"FAILOVER", b"TIMEOUT", b"5", b"TIMEOUT", b"6"],
    [b"FAILOVER", b"TO", b"h"],
    [b"FAILOVER", b"TO", b"h", b"p"],
    [b"FAILOVER", b"TO", b"h", b"5"],
    [b"FAILOVER", b"TO", b"h", b"5", b"TO", b"h", b"6"],
    [b"FAILOVER", b"FORCE"],
    [b"FAILOVER", b"FORCE", b"FORCE"],
    [b"FAILOVER", b"TO", b"h", b"5", b"FORCE", b"TIMEOUT", b"10"],
    [b"FAILOVER", b"BOGUS"],
    [b"FAILOVER", b"ABORT", b"TIMEOUT", b"5"],
    [b"COMMAND", b"INFO", b"asking", b"restore-asking", b"failover"],
    [b"COMMAND", b"GETKEYS", b"restore-asking", b"k", b"0", b"x"],
]

WORDS = [b"TO", b"to", b"TIMEOUT", b"FORCE", b"force", b"ABORT", b"abort", b"h", b"5", b"0",
         b"-1", b"x", b"100", b"9223372036854775808"]


def _replies(port: int, script: list[list[bytes]]) -> list[bytes]:
    with RawClient(port) as client:
        client.call(b"FLUSHALL")
        return [client.call(*argv) for argv in script]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with server_beside_redis(str(tmp_path_factory.mktemp("ours"))) as (ours, ref):
        yield ours, ref


def test_script_answers_as_redis_byte_for_byte(servers):
    ours, ref = servers
    theirs = _replies(ref.port, SCRIPT)
    mine = _replies(ours.port, SCRIPT)
    for argv, expected, got in zip(SCRIPT, theirs, mine, strict=True):
        assert got == expected, argv


def test_acl_categories_of_the_three_as_redis(servers):
    ours, ref = servers
    three = {b"asking", b"restore-asking", b"failover"}
    for category in (b"dangerous", b"connection", b"fast", b"admin", b"keyspace", b"slow"):
        found = [{name.encode() if isinstance(name, str) else name
                  for name in server.client().acl_cat(category.decode())} & three
                 for server in (ours, ref)]
        assert found[0] == found[1], category
        if category == b"dangerous":
            assert found[1] == {b"restore-asking", b"failover"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_failover_arguments_answer_as_redis(servers, seed):
    ours, ref = servers
    rng = random.Random(seed)
    script = [[b"FAILOVER", *(rng.choice(WORDS) for _ in range(rng.randrange(0, 7)))]
              for _ in range(400)]
    assert _replies(ours.port, script) == _replies(ref.port, script)


def test_restore_asking_notifies_as_redis(servers):
    ours, ref = servers
    script = [[b"RESTORE-ASKING", b"n", b"0", PAYLOAD],
              [b"RESTORE-ASKING", b"n", b"0", PAYLOAD, b"REPLACE"],
              [b"RESTORE-ASKING", b"t", b"5000", PAYLOAD]]
    events = keyspace_events(ours.port, script)
    assert events == keyspace_events(ref.port, script)
    assert len(events) == 6


def test_restore_asking_propagates_as_restore_does(servers):
    ours, _ref = servers
    recorder = record_propagation(ours)
    client = ours.client()
    client.execute_command("RESTORE-ASKING", "p", 0, PAYLOAD)
    client.execute_command("RESTORE-ASKING", "q", 50000, PAYLOAD)
    plain, ttl = recorder.argvs[-2:]
    assert plain == [b"RESTORE-ASKING", b"p", b"0", PAYLOAD]
    # A relative TTL travels as an absolute deadline, so a replay restores the same one.
    assert ttl[0] == b"RESTORE-ASKING" and ttl[-1] == b"ABSTTL"
    assert int(ttl[2]) > 50000
