"""Differential test: seeded random streams of commands that build values of every type,
interleaved with DUMP and RESTORE, sent to our server and to a real ``redis-server`` 7.0; every
reply compared byte for byte, then every key DUMPed on both and the payloads compared, then
each server RESTOREs the other's payloads and DUMPs them again.

A DUMP carries the value's in-memory encoding, so the payloads are equal byte for byte for
every encoding with an order Redis defines: strings, quicklists, listpacks, intsets and
skiplists.  A hash table's order is its hash function's (seeded per process in Redis), so a
set or hash Redis keeps as a hash table is compared by its decoded value instead.

The commands build values the way whose encoding history our shape-based encoding choice
follows (see ``trioredis.rdb.values``): elements are added, lists grow at the tail and shrink
at the tail, sorted sets may lose members (their encoding history is tracked).
"""

from __future__ import annotations

import random

import parity
import pytest
import redis
from parity import RawClient
from trioredis.rdb import load_payload
from trioredis.zset import ZSet

reference = parity.reference  # the real Redis, a module-scoped fixture

SEEDS = tuple(range(1, 9))
COMMANDS_PER_SEED = 600

KEYS = {
    "string": [b"s1", b"s2", b"s3"],
    "list": [b"l1", b"l2", b"l3"],
    "hash": [b"h1", b"h2", b"h3"],
    "set": [b"set1", b"set2", b"set3"],
    "zset": [b"z1", b"z2", b"z3"],
}
ALL_KEYS = [key for keys in KEYS.values() for key in keys]


def _element(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.25:
        return b"%d" % rng.choice([rng.randrange(-130, 130), rng.randrange(-70000, 70000),
                                    rng.randrange(-2**63, 2**63)])
    if roll < 0.3:
        return b"x" * rng.choice([63, 64, 65, 300, 5000])
    if roll < 0.35:
        return b"%02d" % rng.randrange(10)  # looks numeric, is not canonical
    return bytes(rng.choice(b"abcdefgh") for _ in range(rng.randint(0, 12)))


def _score(rng: random.Random) -> bytes:
    return rng.choice([b"0", b"-0", b"1", b"-1", b"2.5", b"1e20", b"-inf", b"inf", b"0.1",
                       b"4503599627370496", b"123456789", b"%d" % rng.randrange(-1000, 1000),
                       b"%r" % rng.random()])


def _command(rng: random.Random, payloads: list[bytes]) -> list[bytes]:
    kind = rng.choice(list(KEYS))
    key = rng.choice(KEYS[kind])
    pick = rng.randrange(10)
    if pick == 0:
        return [b"DUMP", rng.choice(ALL_KEYS + [b"missing"])]
    if pick == 1 and payloads:
        options = rng.choice([[], [b"REPLACE"], [b"REPLACE", b"ABSTTL"], [b"IDLETIME", b"3"]])
        ttl = rng.choice([b"0", b"0", b"100000", b"-1"])
        target = rng.choice(ALL_KEYS + [b"r1", b"r2"])
        return [b"RESTORE", target, ttl, rng.choice(payloads), *options]
    if pick == 2:
        return [b"PEXPIRE", key, b"%d" % rng.randrange(10**6, 10**8)]
    if kind == "string":
        return rng.choice([
            [b"SET", key, _element(rng)],
            [b"APPEND", key, _element(rng)],
            [b"INCRBY", key, b"%d" % rng.randrange(-1000, 1000)],
        ])
    if kind == "list":
        if rng.random() < 0.15:
            return [b"RPOP", key, b"%d" % rng.randint(1, 50)]
        return [b"RPUSH", key, *[_element(rng) for _ in range(rng.randint(1, 80))]]
    if kind == "hash":
        pairs = [part for _ in range(rng.randint(1, 40)) for part in (_element(rng), _element(rng))]
        return [b"HSET", key, *pairs]
    if kind == "set":
        if rng.random() < 0.5:
            return [b"SADD", key, *[b"%d" % rng.randrange(-2**40, 2**40) for _ in range(rng.randint(1, 60))]]
        return [b"SADD", key, *[_element(rng) for _ in range(rng.randint(1, 30))]]
    if rng.random() < 0.15:
        return [b"ZREM", key, *[_element(rng) for _ in range(rng.randint(1, 10))]]
    pairs = [part for _ in range(rng.randint(1, 40)) for part in (_score(rng), _element(rng))]
    return [b"ZADD", key, *pairs]


def _bulk(reply: bytes) -> bytes | None:
    """The payload of a bulk string reply."""
    if reply.startswith(b"$-1"):
        return None
    header_end = reply.index(b"\r\n")
    return reply[header_end + 2:-2]


def _decoded(payload: bytes):
    value = load_payload(payload)
    return list(value.items()) if isinstance(value, ZSet) else value


def _payloads_match(ours: bytes | None, theirs: bytes | None, encoding: bytes) -> bool:
    if ours is None or theirs is None:
        return ours is theirs
    if encoding == b"hashtable":  # a hash table's order is its hash function's
        return ours[:1] == theirs[:1] and _decoded(ours) == _decoded(theirs)
    return ours == theirs


@pytest.mark.parametrize("seed", SEEDS)
def test_dump_restore_stream_matches_redis(shared_server, reference, seed):
    rng = random.Random(seed)
    differences = []
    payloads: list[bytes] = []
    with RawClient(shared_server.port) as ours, RawClient(reference.port) as theirs:
        for client in (ours, theirs):
            client.call("SELECT", 9)
            client.call("FLUSHDB")
        for _ in range(COMMANDS_PER_SEED):
            command = _command(rng, payloads)
            mine, real = ours.call(*command), theirs.call(*command)
            if command[0] == b"DUMP" and real.startswith(b"$") and not real.startswith(b"$-1"):
                payloads.append(_bulk(real))
                encoding = _bulk(theirs.call("OBJECT", "ENCODING", command[1]))
                if _payloads_match(_bulk(mine), _bulk(real), encoding):
                    continue
            if mine != real:
                differences.append((command[:3], mine[:200], real[:200]))
        compared = 0
        for key in ALL_KEYS + [b"r1", b"r2"]:
            mine, real = _bulk(ours.call("DUMP", key)), _bulk(theirs.call("DUMP", key))
            encoding = _bulk(theirs.call("OBJECT", "ENCODING", key))
            if not _payloads_match(mine, real, encoding):
                differences.append((b"final DUMP", key, encoding))
            if mine is None or real is None:
                continue
            compared += 1
            # Each restores the other's payload and dumps it again: the same bytes come back.
            assert ours.call("RESTORE", b"x:" + key, "0", real) == b"+OK\r\n"
            assert theirs.call("RESTORE", b"x:" + key, "0", mine) == b"+OK\r\n"
            again_ours = _bulk(ours.call("DUMP", b"x:" + key))
            again_theirs = _bulk(theirs.call("DUMP", b"x:" + key))
            if not _payloads_match(again_ours, real, encoding):
                differences.append((b"DUMP after RESTORE here", key, encoding))
            if not _payloads_match(again_theirs, mine, encoding):
                differences.append((b"DUMP after RESTORE in Redis", key, encoding))
    assert compared >= 10
    for difference in differences:
        print("DIFF", repr(difference)[:300])
    assert differences == []


def test_compressible_strings_dump_like_redis(reference, shared_server):
    """LZF output is not unique: 2,000 random strings over 20 bytes (repetitive to random,
    21 bytes to 9 KB, some just too short to gain 4 bytes) DUMP to the same bytes on both."""
    rng = random.Random(77)
    alphabets = [b"a", b"ab", b"abcd", b"abcdefgh0123", bytes(range(256))]
    strings = []
    for _ in range(2000):
        size = rng.choice([rng.randint(21, 40), rng.randint(21, 400), rng.randint(21, 9000)])
        alphabet = rng.choice(alphabets)
        strings.append(bytes(rng.choice(alphabet) for _ in range(size)))
    replies = []
    for port in (shared_server.port, reference.port):
        client = redis.Redis(port=port, protocol=2)
        pipe = client.pipeline(transaction=False)
        for index, value in enumerate(strings):
            pipe.set(b"lzf:%d" % index, value)
            pipe.dump(b"lzf:%d" % index)
        replies.append(pipe.execute()[1::2])
        client.close()
    ours, theirs = replies
    assert sum(payload[1:2] == b"\xc3" for payload in theirs) > 1000  # most were compressed
    assert [i for i in range(len(strings)) if ours[i] != theirs[i]] == []
