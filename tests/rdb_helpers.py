"""Shared by the RDB tests: seeded datasets of every type, and a dataset read back from a
server or an RDB file in one comparable shape.

A dataset is ``{(db, key): (type, value, expire_ms)}`` with ``value`` a plain comparable
object: bytes, a list, a dict, a set, or a list of (member, score) in rank order.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import redis
from trioredis.zset import ZSet

Dataset = dict[tuple[int, bytes], tuple[str, Any, int | None]]


def canonical(value: Any) -> tuple[str, Any]:
    """(type name, comparable value) of one of our values."""
    if isinstance(value, bytes):
        return "string", value
    if isinstance(value, deque):
        return "list", list(value)
    if isinstance(value, dict):
        return "hash", dict(value)
    if isinstance(value, set):
        return "set", set(value)
    if isinstance(value, ZSet):
        return "zset", list(value.items())
    raise TypeError(type(value))


def dataset_of_records(records) -> Dataset:
    """A dataset from :func:`trioredis.rdb.read_rdb`'s (db, key, value, expire) tuples."""
    out: Dataset = {}
    for db, key, value, expire in records:
        kind, plain = canonical(value)
        out[(db, key)] = (kind, plain, expire)
    return out


def dataset_of_server(port: int, databases: int = 16) -> Dataset:
    """Every key of a running server (ours or Redis), read through redis-py."""
    out: Dataset = {}
    for db in range(databases):
        client = redis.Redis(port=port, db=db, protocol=2)
        try:
            for key in client.scan_iter(count=1000):
                kind = client.type(key).decode()
                if kind == "string":
                    value: Any = client.get(key)
                elif kind == "list":
                    value = client.lrange(key, 0, -1)
                elif kind == "hash":
                    value = client.hgetall(key)
                elif kind == "set":
                    value = client.smembers(key)
                elif kind == "zset":
                    value = client.zrange(key, 0, -1, withscores=True)
                else:
                    value = None
                expire = client.pexpiretime(key)
                out[(db, key)] = (kind, value, None if expire < 0 else expire)
        finally:
            client.close()
    return out


def _text(rng: random.Random, low: int, high: int) -> bytes:
    """Random bytes, sometimes repetitive (so LZF has something to compress)."""
    size = rng.randint(low, high)
    if rng.random() < 0.3:
        return (b"ab%d" % rng.randrange(10)) * (size // 3 + 1)
    return bytes(rng.randrange(256) for _ in range(size))


def _member(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.2:
        return b"%d" % rng.choice([rng.randrange(-200, 200), rng.randrange(-10**12, 10**12),
                                    rng.randrange(-2**63, 2**63)])
    if roll < 0.25:
        return b"%d" % rng.randrange(0, 10) + b"x"
    return _text(rng, 0, 12)


def _score(rng: random.Random) -> float:
    return rng.choice([
        0.0, 1.0, -1.0, 2.5, 1e20, -1e-5, float("inf"), float("-inf"), 123456789.0,
        4503599627370496.0, 0.1, rng.random() * 1000, float(rng.randrange(-5000, 5000)),
    ])


def random_dataset(seed: int, databases: tuple[int, ...] = (0, 3)) -> dict[tuple[int, bytes], tuple[Any, int | None]]:
    """Our values of every type, small (compact encodings) and large, with and without an
    expiry in the future: ``{(db, key): (value, expire_ms)}``."""
    rng = random.Random(seed)
    out: dict[tuple[int, bytes], tuple[Any, int | None]] = {}
    far = 4102444800000  # 2100-01-01, in ms
    for db in databases:
        for index in range(40):
            kind = index % 5
            large = rng.random() < 0.3
            count = rng.randint(600, 1500) if large else rng.randint(1, 20)
            if kind == 0:
                value: Any = rng.choice([
                    _text(rng, 0, 15), _text(rng, 20, 200), _text(rng, 5000, 20000),
                    b"%d" % rng.randrange(-2**63, 2**63), b"%d" % rng.randrange(-1000, 1000)])
            elif kind == 1:
                big = rng.random() < 0.1
                value = deque(_text(rng, 300, 3000) if big else _member(rng) for _ in range(count))
            elif kind == 2:
                wide = large or rng.random() < 0.2
                value = {_member(rng): (_text(rng, 0, 100) if wide else _member(rng))
                         for _ in range(count)}
            elif kind == 3:
                if rng.random() < 0.5 and not large:
                    value = {b"%d" % rng.randrange(-2**40, 2**40) for _ in range(count)}
                else:
                    value = {_member(rng) for _ in range(count)}
            else:
                value = ZSet((_member(rng), _score(rng)) for _ in range(count))
            if isinstance(value, (dict, set, ZSet)) and not len(value):
                value = b"empty"
            expire = far + rng.randrange(10**9) if rng.random() < 0.3 else None
            out[(db, b"key:%d:%d" % (kind, index))] = (value, expire)
    return out


def expected_dataset(values: dict[tuple[int, bytes], tuple[Any, int | None]]) -> Dataset:
    out: Dataset = {}
    for (db, key), (value, expire) in values.items():
        kind, plain = canonical(value)
        out[(db, key)] = (kind, plain, expire)
    return out


def databases_of(values: dict[tuple[int, bytes], tuple[Any, int | None]]):
    """(index, data, expires) per database, as :func:`trioredis.rdb.write_rdb` takes them."""
    grouped: dict[int, tuple[dict, dict]] = {}
    for (db, key), (value, expire) in values.items():
        data, expires = grouped.setdefault(db, ({}, {}))
        data[key] = value
        if expire is not None:
            expires[key] = expire
    return [(db, data, expires) for db, (data, expires) in sorted(grouped.items())]
