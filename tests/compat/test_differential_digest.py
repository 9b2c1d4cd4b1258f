"""DEBUG DIGEST, DIGEST-VALUE and OBJECT against redis-server: seeded random datasets of every
type (small and large encodings, integer-like members, scores that print long, expiries,
several databases), the same reply bytes from both servers."""

from __future__ import annotations

import random

import pytest
from parity import RawClient, server_beside_redis


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with server_beside_redis(str(tmp_path_factory.mktemp("digest"))) as servers:
        yield servers


def _word(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return str(rng.randint(-1000, 100000))  # an intset / integer-encoded member
    return "".join(rng.choice("abcxyz") for _ in range(rng.choice((1, 3, 8, 70))))


def _script(seed: int) -> list[tuple]:
    rng = random.Random(seed)
    script: list[tuple] = []
    for step in range(400):
        key = f"{rng.choice('slhzxe')}{rng.randint(0, 12)}"
        kind = key[0]
        if rng.random() < 0.1:
            script.append(("SELECT", rng.choice((0, 0, 3))))
        if kind == "s":
            script.append(("SADD", key, *(_word(rng) for _ in range(rng.randint(1, 40)))))
        elif kind == "l":
            script.append(("RPUSH", key, *(_word(rng) for _ in range(rng.randint(1, 30)))))
        elif kind == "h":
            script.append(("HSET", key, *(_word(rng) for _ in range(2 * rng.randint(1, 20)))))
        elif kind == "z":
            pairs = []
            for _ in range(rng.randint(1, 40)):
                score = rng.choice((rng.randint(-5, 5), rng.random() * 1e3, 0.1, "inf", "-inf"))
                pairs += [score, _word(rng)]
            script.append(("ZADD", key, *pairs))
        elif kind == "x":
            fields = (_word(rng) for _ in range(2 * rng.randint(1, 3)))
            script.append(("XADD", key, f"{step + 1}-{rng.randint(0, 9)}", *fields))  # "*" differs
        else:
            script.append(("SET", key, _word(rng), *(("EX", 1000) if rng.random() < 0.5 else ())))
        if rng.random() < 0.1:
            script.append(("EXPIRE", key, 500))
    return script


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_digests_equal_redis_for_random_datasets(pair, seed):
    ours, ref = pair
    replies = []
    for port in (ours.port, ref.port):
        with RawClient(port) as client:
            client.call("FLUSHALL")
            for argv in _script(seed):
                client.call(*argv)
            got = [client.call("DEBUG", "DIGEST")]
            for db in (0, 3):
                client.call("SELECT", db)
                keys = sorted(client.call("KEYS", "*").split(b"\r\n")[2::2])
                got.append(client.call("DEBUG", "DIGEST-VALUE", *keys, "missing"))
        replies.append(got)
    assert replies[0] == replies[1]
    assert replies[0][0] != b"+" + b"0" * 40 + b"\r\n"


def test_an_empty_dataset_digests_as_zeros(pair):
    ours, ref = pair
    for port in (ours.port, ref.port):
        with RawClient(port) as client:
            client.call("FLUSHALL")
            assert client.call("DEBUG", "DIGEST") == b"+" + b"0" * 40 + b"\r\n"


def test_debug_object_lines_equal_redis_but_the_address(pair):
    """DEBUG OBJECT: refcount (shared integers), encoding, serializedlength (the RDB length,
    LZF included), idle seconds and a list's quicklist fields, for values of every encoding."""
    import re

    script = [
        ("SET", "int", "12345"), ("SET", "shared", "7"), ("SET", "emb", "hello"),
        ("SET", "raw", "a" * 100), ("SET", "rawrandom", "".join(map(chr, range(48, 122)))),
        ("RPUSH", "small", "x", "y"), ("RPUSH", "long", *[f"element-{i}" * 20 for i in range(600)]),
        ("HSET", "hsmall", "f", "v"), ("HSET", "hbig", *[f"f{i}" for i in range(1200)]),
        ("SADD", "ints", *range(100)), ("SADD", "strs", *[f"m{i}" for i in range(200)]),
        ("ZADD", "zsmall", 1, "a"), ("ZADD", "zbig", *[x for i in range(300) for x in (i, f"m{i}")]),
        ("XADD", "x", "1-1", "a", "b"), ("XADD", "x", "2-1", "a", "c"),
    ]
    keys = ["int", "shared", "emb", "raw", "rawrandom", "small", "long", "hsmall", "hbig", "ints",
            "strs", "zsmall", "zbig", "x", "missing"]
    lines = []
    for port in (pair[0].port, pair[1].port):
        with RawClient(port) as client:
            client.call("FLUSHALL")
            for argv in script:
                client.call(*argv)
            replies = [client.call("DEBUG", "OBJECT", key) for key in keys]
        # The address differs, the LRU clock may tick between the two servers, and a shared
        # integer's idle time is the shared object's (Redis's, since it last served a lookup).
        lines.append([re.sub(rb"at:0x[0-9a-f]+|lru:\d+ |lru_seconds_idle:[01]\b", b"", reply)
                      for reply in replies])
        lines[-1][1] = re.sub(rb"lru_seconds_idle:\d+", b"", lines[-1][1])
    assert lines[0] == lines[1]
