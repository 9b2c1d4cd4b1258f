"""What the sorted set command modules share (:mod:`trioredis.commands.zsets` and
:mod:`trioredis.commands.zset_setops`): Redis 7.0's error texts, the lookup, the reply shape
of member/score pairs, and storing a computed result."""

from __future__ import annotations

from typing import Any

from ..zset import ZSet
from .keys import (
    typed_value,
)
from .sets import (
    notify,
)

XX_AND_NX = "ERR XX and NX options at the same time are not compatible"
GT_LT_NX = "ERR GT, LT, and/or NX options at the same time are not compatible"
INCR_SINGLE_PAIR = "ERR INCR option supports a single increment-element pair"
SCORE_NAN = "ERR resulting score is not a number (NaN)"
LIMIT_NEEDS_BY = (
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
)
WITHSCORES_BYLEX = "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
WEIGHT_NOT_FLOAT = "ERR weight value is not a float"
NUMKEYS_POSITIVE = "ERR numkeys should be greater than 0"
COUNT_POSITIVE = "ERR count should be greater than 0"
OUT_OF_RANGE = "ERR value is out of range"

RANK, SCORE, LEX = "rank", "score", "lex"


def _get(ctx, key: bytes, read: bool = False) -> ZSet | None:
    return typed_value(ctx, key, ZSet, read)


def _pairs_reply(ctx, pairs: list[tuple[bytes, float]], withscores: bool) -> list[Any]:
    """Members, or members with scores in the shape of the client's protocol."""
    if not withscores:
        return [member for member, _ in pairs]
    if ctx.client.resp3:
        return [[member, score] for member, score in pairs]
    flat: list[Any] = []
    for member, score in pairs:
        flat.append(member)
        flat.append(score)
    return flat


def _store(ctx, key: bytes, pairs: list[tuple[bytes, float]], event: bytes,
           one_by_one: bool = False) -> int:
    """ZRANGESTORE, ZUNIONSTORE...: replace ``key`` (its TTL goes too) or delete it when the
    result is empty; the reply is the stored size.  ZRANGESTORE adds its result ``one_by_one``
    as Redis 7.0 does (which decides where a ``-0`` score survives, see trioredis.zset)."""
    if pairs:
        ctx.db.set(key, ZSet.built_by_adding(pairs) if one_by_one else ZSet(pairs))
        ctx.dirty += 1
        notify(ctx, event, key, "z")
        return len(pairs)
    if ctx.db.delete(key):
        ctx.dirty += 1
        notify(ctx, b"del", key, "g")
    return 0


def _rank_bounds(start: int, end: int, length: int) -> tuple[int, int] | None:
    """Redis's index sanitizing: negative counts from the end; None when empty; else an
    inclusive (start, end) within the set."""
    if start < 0:
        start += length
    if end < 0:
        end += length
    start = max(start, 0)
    if start > end or start >= length:
        return None
    return start, min(end, length - 1)


