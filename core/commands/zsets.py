"""Sorted set commands, on :class:`trioredis.zset.ZSet`.

Scores in replies are floats: the encoder prints them as Redis 7.0 does (``%.17g``, ``inf``),
a bulk string under RESP2 and a double under RESP3.  Pairs follow Redis's two shapes: a flat
``[member, score, ...]`` array under RESP2, ``[[member, score], ...]`` under RESP3 (ZRANGE
WITHSCORES, ZPOPMIN with a count, ZRANDMEMBER, ZUNION...); ZMPOP nests in both.  ZSCAN
returns scores as bulk strings in both, as Redis does.

Propagation: the pops (ZPOPMIN, ZMPOP, and the blocking pops however they were served) are
propagated as ``ZPOPMIN/ZPOPMAX key count``; everything else is deterministic as sent (ZADD
INCR and ZINCRBY add the same increment to the same score on replay).
"""
from __future__ import annotations

import math
import random
from typing import Any

from .. import errors
from ..errors import CommandError
from ..resp import NULL_ARRAY, format_double
from ..zset import LexRange, ScoreRange, ZSet, parse_double
from . import command
from .args import INT64_MAX, parse_int
from .keys import (
    parse_cursor,
    scan_collection,
)
from .sets import (
    delete_emptied,
    notify,
    parse_range_long,
)
from .zset_common import (
    GT_LT_NX,
    INCR_SINGLE_PAIR,
    LEX,
    LIMIT_NEEDS_BY,
    OUT_OF_RANGE,
    RANK,
    SCORE,
    SCORE_NAN,
    WITHSCORES_BYLEX,
    XX_AND_NX,
    _get,
    _pairs_reply,
    _rank_bounds,
    _store,
)
from .zset_pops import (
    bzmpop,
    bzpopmax,
    bzpopmin,
    zmpop,
    zpopmax,
    zpopmin,
)
from .zset_setops import (
    zdiff,
    zdiffstore,
    zinter,
    zintercard,
    zinterstore,
    zunion,
    zunionstore,
)

# --- adding and removing -------------------------------------------------------------------


def _zadd_generic(ctx, argv: list[bytes], incr: bool) -> Any:
    """ZADD and ZINCRBY (Redis's zaddGenericCommand: ZINCRBY reads the same options, so
    ``ZINCRBY key xx m`` is a syntax error rather than a bad float)."""
    key = argv[1]
    nx = xx = gt = lt = ch = False
    index = 2
    while index < len(argv):
        option = argv[index].lower()
        if option == b"nx":
            nx = True
        elif option == b"xx":
            xx = True
        elif option == b"ch":
            ch = True
        elif option == b"incr":
            incr = True
        elif option == b"gt":
            gt = True
        elif option == b"lt":
            lt = True
        else:
            break
        index += 1
    rest = argv[index:]
    if not rest or len(rest) % 2:
        raise CommandError(errors.SYNTAX)
    if nx and xx:
        raise CommandError(XX_AND_NX)
    if (gt and nx) or (lt and nx) or (gt and lt):
        raise CommandError(GT_LT_NX)
    if incr and len(rest) > 2:
        raise CommandError(INCR_SINGLE_PAIR)
    scores = [parse_double(rest[i]) for i in range(0, len(rest), 2)]
    zset = _get(ctx, key)
    if zset is None:
        if xx:
            return None if incr else 0
        zset = ZSet.for_first_member(rest[1])
        ctx.db.set(key, zset)
    added = updated = processed = 0
    score = 0.0
    for position, score in enumerate(scores):
        member = rest[2 * position + 1]
        current = zset.scores.get(member)
        if current is None:
            if xx:
                continue
            zset.add(member, score)
            added += 1
            processed += 1
            continue
        if nx:
            continue
        if incr:
            score = current + score
            if math.isnan(score):
                raise CommandError(SCORE_NAN)
        if (lt and score >= current) or (gt and score <= current):
            continue
        processed += 1
        if score != current:
            zset.add(member, score)
            updated += 1
    ctx.dirty += added + updated
    if added or updated:
        notify(ctx, b"zincr" if incr else b"zadd", key, "z")
    if incr:
        return score if processed else None
    return added + updated if ch else added


def zadd(ctx, argv):
    return _zadd_generic(ctx, argv, False)


def zincrby(ctx, argv):
    return _zadd_generic(ctx, argv, True)


def zrem(ctx, argv):
    key = argv[1]
    zset = _get(ctx, key)
    if zset is None:
        return 0
    removed = 0
    for member in argv[2:]:
        if zset.discard(member):
            removed += 1
            if not zset:
                break
    if removed:
        notify(ctx, b"zrem", key, "z")
        if not zset:
            delete_emptied(ctx, key)
    ctx.dirty += removed
    return removed


# --- reading single members ----------------------------------------------------------------


def zcard(ctx, argv):
    zset = _get(ctx, argv[1], read=True)
    return 0 if zset is None else len(zset)


def zscore(ctx, argv):
    zset = _get(ctx, argv[1], read=True)
    return None if zset is None else zset.score(argv[2])


def zmscore(ctx, argv):
    zset = _get(ctx, argv[1], read=True)
    if zset is None:
        return [None] * (len(argv) - 2)
    return [zset.score(member) for member in argv[2:]]


def _zrank_generic(ctx, argv, reverse: bool):
    """ZRANK/ZREVRANK, with Redis 7.2's WITHSCORE ([rank, score], a null array when
    missing)."""
    if len(argv) > 4:
        raise CommandError(errors.wrong_arity(argv[0].decode(errors="replace").lower()))
    withscore = False
    if len(argv) == 4:
        if argv[3].lower() != b"withscore":
            raise CommandError(errors.SYNTAX)
        withscore = True
    missing = NULL_ARRAY if withscore else None
    zset = _get(ctx, argv[1], read=True)
    if zset is None:
        return missing
    rank = zset.rank(argv[2], reverse)
    if rank is None:
        return missing
    return [rank, zset.scores[argv[2]]] if withscore else rank


def zrank(ctx, argv):
    return _zrank_generic(ctx, argv, False)


def zrevrank(ctx, argv):
    return _zrank_generic(ctx, argv, True)


def zcount(ctx, argv):
    spec = ScoreRange.parse(argv[2], argv[3])
    zset = _get(ctx, argv[1], read=True)
    if zset is None:
        return 0
    start, stop = zset.score_span(spec)
    return stop - start


def zlexcount(ctx, argv):
    spec = LexRange(argv[2], argv[3])
    zset = _get(ctx, argv[1], read=True)
    if zset is None:
        return 0
    first = zset.lex_first(spec)
    if first is None:
        return 0
    return zset.lex_forward_stop(spec, first) - first


# --- ranges --------------------------------------------------------------------------------


def _select(zset: ZSet, kind: str, reverse: bool, low: Any, high: Any, offset: int,
            limit: int) -> list[tuple[bytes, float]]:
    """The pairs a ZRANGE-family command names, in reply order (Redis's
    genericZrangeby*Command walks, including how LIMIT skips and stops)."""
    length = len(zset)
    if kind == RANK:
        bounds = _rank_bounds(low, high, length)
        if bounds is None:
            return []
        start, end = bounds
        if reverse:
            return zset.slice(length - 1 - end, length - start, reverse=True)
        return zset.slice(start, end + 1)
    if offset < 0 or (offset > 0 and offset >= length):
        return []
    if kind == SCORE:
        start, stop = zset.score_span(low)
        if start >= stop:
            return []
        if reverse:
            hi = stop - offset
            lo = start if limit < 0 else max(start, hi - limit)
            return zset.slice(lo, hi, reverse=True)
        lo = start + offset
        hi = stop if limit < 0 else min(stop, lo + limit)
        return zset.slice(lo, hi)
    spec: LexRange = low
    if reverse:
        last = zset.lex_last(spec)
        if last is None:
            return []
        top = last - offset
        if top < 0:
            return []
        lo = zset.lex_backward_stop(spec, top)
        if limit >= 0:
            lo = max(lo, top + 1 - limit)
        return zset.slice(lo, top + 1, reverse=True)
    first = zset.lex_first(spec)
    if first is None:
        return []
    lo = first + offset
    if lo >= length:
        return []
    hi = zset.lex_forward_stop(spec, lo)
    if limit >= 0:
        hi = min(hi, lo + limit)
    return zset.slice(lo, hi)


def _zrange_generic(ctx, argv: list[bytes], key_index: int, store: bool,
                    kind: str | None = None, reverse: bool | None = None) -> Any:
    """Redis's zrangeGenericCommand: every ZRANGE-family command.  ``kind`` and ``reverse``
    are fixed by the legacy commands (ZREVRANGEBYSCORE...) and left None for ZRANGE and
    ZRANGESTORE, whose BYSCORE/BYLEX/REV options set them once."""
    withscores = False
    offset, limit = 0, -1
    index = key_index + 3
    while index < len(argv):
        option = argv[index].lower()
        if not store and option == b"withscores":
            withscores = True
        elif option == b"limit" and len(argv) - index - 1 >= 2:
            offset = parse_int(argv[index + 1])
            limit = parse_int(argv[index + 2])
            index += 2
        elif reverse is None and option == b"rev":
            reverse = True
        elif kind is None and option == b"bylex":
            kind = LEX
        elif kind is None and option == b"byscore":
            kind = SCORE
        else:
            raise CommandError(errors.SYNTAX)
        index += 1
    kind = kind or RANK
    reverse = bool(reverse)
    if limit != -1 and kind == RANK:
        raise CommandError(LIMIT_NEEDS_BY)
    if withscores and kind == LEX:
        raise CommandError(WITHSCORES_BYLEX)
    low_raw, high_raw = argv[key_index + 1], argv[key_index + 2]
    if reverse and kind != RANK:
        low_raw, high_raw = high_raw, low_raw  # given as max, min
    low: Any
    high: Any = None
    if kind == RANK:
        low, high = parse_int(low_raw), parse_int(high_raw)
    elif kind == SCORE:
        low = ScoreRange.parse(low_raw, high_raw)
    else:
        low = LexRange(low_raw, high_raw)
    zset = _get(ctx, argv[key_index], read=True)
    pairs = [] if zset is None else _select(zset, kind, reverse, low, high, offset, limit)
    if store:
        return _store(ctx, argv[1], pairs, b"zrangestore", one_by_one=True)
    return _pairs_reply(ctx, pairs, withscores)


def zrange(ctx, argv):
    return _zrange_generic(ctx, argv, 1, False)


def zrangestore(ctx, argv):
    return _zrange_generic(ctx, argv, 2, True)


def zrevrange(ctx, argv):
    return _zrange_generic(ctx, argv, 1, False, RANK, True)


def zrangebyscore(ctx, argv):
    return _zrange_generic(ctx, argv, 1, False, SCORE, False)


def zrevrangebyscore(ctx, argv):
    return _zrange_generic(ctx, argv, 1, False, SCORE, True)


def zrangebylex(ctx, argv):
    return _zrange_generic(ctx, argv, 1, False, LEX, False)


def zrevrangebylex(ctx, argv):
    return _zrange_generic(ctx, argv, 1, False, LEX, True)


def _zremrange(ctx, argv, kind: str) -> int:
    key = argv[1]
    if kind == RANK:
        start, end = parse_int(argv[2]), parse_int(argv[3])
    elif kind == SCORE:
        score_spec = ScoreRange.parse(argv[2], argv[3])
    else:
        lex_spec = LexRange(argv[2], argv[3])
    zset = _get(ctx, key)
    if zset is None:
        return 0
    if kind == RANK:
        bounds = _rank_bounds(start, end, len(zset))
        if bounds is None:
            return 0
        lo, hi = bounds[0], bounds[1] + 1
    elif kind == SCORE:
        lo, hi = zset.score_span(score_spec)
    else:
        first = zset.lex_first(lex_spec)
        if first is None:
            return 0
        lo, hi = first, zset.lex_forward_stop(lex_spec, first)
    removed = zset.delete_positions(lo, hi) if lo < hi else 0
    if removed:
        notify(ctx, b"zremrangeby" + kind.encode(), key, "z")
        if not zset:
            delete_emptied(ctx, key)
        ctx.dirty += removed
    return removed


def zremrangebyrank(ctx, argv):
    return _zremrange(ctx, argv, RANK)


def zremrangebyscore(ctx, argv):
    return _zremrange(ctx, argv, SCORE)


def zremrangebylex(ctx, argv):
    return _zremrange(ctx, argv, LEX)


# --- random members and scans --------------------------------------------------------------


def zrandmember(ctx, argv):
    key = argv[1]
    if len(argv) == 2:
        zset = _get(ctx, key, read=True)
        return None if zset is None else zset.at(random.randrange(len(zset)))[0]
    count = parse_range_long(argv[2], -INT64_MAX, INT64_MAX)
    withscores = False
    if len(argv) > 4 or (len(argv) == 4 and argv[3].lower() != b"withscores"):
        raise CommandError(errors.SYNTAX)
    if len(argv) == 4:
        withscores = True
        if count < -(INT64_MAX // 2) or count > INT64_MAX // 2:
            raise CommandError(OUT_OF_RANGE)
    zset = _get(ctx, key, read=True)
    if zset is None or count == 0:
        return []
    length = len(zset)
    if count < 0:
        positions = random.choices(range(length), k=-count)
    elif count >= length:
        positions = range(length)
    else:
        positions = random.sample(range(length), count)
    return _pairs_reply(ctx, [zset.at(position) for position in positions], withscores)


def zscan(ctx, argv):
    """A small sorted set (listpack in Redis) comes back whole, in score order, with cursor
    0; a large one walks a snapshot of its members (see keys.ScanSnapshots).  Scores are
    bulk strings in both protocols, as Redis sends them."""
    cursor = parse_cursor(argv[2])
    zset = _get(ctx, argv[1], read=True)
    if zset is None:
        return [b"0", []]
    small = list(zset) if zset.compact else None
    next_cursor, batch, match = scan_collection(ctx, argv, cursor, lambda: list(zset.scores),
                                                small)
    scores = zset.scores
    found: list[bytes] = []
    for member in batch:
        score = scores.get(member)
        if score is None or (match is not None and not match(member)):
            continue
        found.append(member)
        found.append(format_double(score))
    return [next_cursor, found]


def register(registry):
    group = "sortedset"
    registry.extend([
        command("zadd", -4, "write denyoom fast", zadd, group=group),
        command("zincrby", 4, "write denyoom fast", zincrby, group=group),
        command("zrem", -3, "write fast", zrem, group=group),
        command("zcard", 2, "readonly fast", zcard, group=group),
        command("zscore", 3, "readonly fast", zscore, group=group),
        command("zmscore", -3, "readonly fast", zmscore, group=group),
        command("zrank", -3, "readonly fast", zrank, group=group),
        command("zrevrank", -3, "readonly fast", zrevrank, group=group),
        command("zcount", 4, "readonly fast", zcount, group=group),
        command("zlexcount", 4, "readonly fast", zlexcount, group=group),
        command("zrange", -4, "readonly", zrange, group=group),
        # ZRANGESTORE and the STORE set operations name their sources too, as Redis does (ACL
        # key checks, COMMAND GETKEYS); so a WATCH on a source is also invalidated by them.
        command("zrangestore", -5, "write denyoom", zrangestore, group=group),
        command("zrevrange", -4, "readonly", zrevrange, group=group),
        command("zrangebyscore", -4, "readonly", zrangebyscore, group=group),
        command("zrevrangebyscore", -4, "readonly", zrevrangebyscore, group=group),
        command("zrangebylex", -4, "readonly", zrangebylex, group=group),
        command("zrevrangebylex", -4, "readonly", zrevrangebylex, group=group),
        command("zremrangebyrank", 4, "write", zremrangebyrank, group=group),
        command("zremrangebyscore", 4, "write", zremrangebyscore, group=group),
        command("zremrangebylex", 4, "write", zremrangebylex, group=group),
        command("zpopmin", -2, "write fast", zpopmin, group=group),
        command("zpopmax", -2, "write fast", zpopmax, group=group),
        command("bzpopmin", -3, "write noscript fast blocking", bzpopmin, group=group),
        command("bzpopmax", -3, "write noscript fast blocking", bzpopmax, group=group),
        command("zmpop", -4, "write movablekeys", zmpop, group=group),
        command("bzmpop", -5, "write blocking movablekeys", bzmpop, group=group),
        command("zrandmember", -2, "readonly", zrandmember, group=group),
        command("zscan", -3, "readonly", zscan, group=group),
        command("zunionstore", -4, "write denyoom movablekeys", zunionstore, group=group),
        command("zinterstore", -4, "write denyoom movablekeys", zinterstore, group=group),
        command("zdiffstore", -4, "write denyoom movablekeys", zdiffstore, group=group),
        command("zunion", -3, "readonly movablekeys", zunion, group=group),
        command("zinter", -3, "readonly movablekeys", zinter, group=group),
        command("zdiff", -3, "readonly movablekeys", zdiff, group=group),
        command("zintercard", -3, "readonly movablekeys", zintercard, group=group),
    ])
