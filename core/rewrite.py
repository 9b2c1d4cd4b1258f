"""The commands that rebuild a value of a built-in type (``trioredis_rewrite_value``).

Variadic commands of at most :data:`ITEMS_PER_COMMAND` items each, as Redis's AOF rewrite
writes them, then ``PEXPIREAT`` with the absolute expiry.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from .resp import format_double

ITEMS_PER_COMMAND = 64


def _chunks(items: Iterable[Any], size: int = ITEMS_PER_COMMAND) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def score_text(score: float) -> bytes:
    """A score that reads back as exactly the same double (repr is the shortest such)."""
    if score == float("inf"):
        return b"inf"
    if score == float("-inf"):
        return b"-inf"
    return repr(score).encode()


def rewrite_builtin(key: bytes, value: Any, expire_ms: int | None) -> list[list[bytes]] | None:
    kind = value.__class__
    if kind is bytes:
        commands = [[b"SET", key, value]]
    elif kind is deque:
        commands = [[b"RPUSH", key, *chunk] for chunk in _chunks(value)]
    elif kind is dict:
        commands = [
            [b"HSET", key, *[part for pair in chunk for part in pair]]
            for chunk in _chunks(value.items())
        ]
    elif kind is set:
        commands = [[b"SADD", key, *chunk] for chunk in _chunks(value)]
    elif kind.__name__ == "ZSet":
        commands = [
            [b"ZADD", key, *[part for member, score in chunk for part in (score_text(score), member)]]
            for chunk in _chunks(value.items())
        ]
    elif kind.__name__ == "Stream":
        from .stream import rewrite_stream

        commands = rewrite_stream(key, value)
    else:
        return None
    if expire_ms is not None:
        commands.append([b"PEXPIREAT", key, b"%d" % expire_ms])
    return commands


__all__ = ["ITEMS_PER_COMMAND", "format_double", "rewrite_builtin", "score_text"]
