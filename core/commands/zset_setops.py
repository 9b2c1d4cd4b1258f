"""Sorted set algebra: ZUNION, ZINTER, ZDIFF, their STORE forms, and ZINTERCARD (weights,
AGGREGATE SUM|MIN|MAX, plain sets read as members of score 1, as Redis reads them)."""

from __future__ import annotations

from typing import Any

from .. import errors
from ..errors import CommandError
from ..zset import ZSet, parse_double
from .args import parse_int
from .keys import (
    read_key,
)
from .sets import (
    LIMIT_NEGATIVE,
    parse_positive,
)
from .zset_common import (
    WEIGHT_NOT_FLOAT,
    _pairs_reply,
    _store,
)

# --- set operations ------------------------------------------------------------------------

UNION, INTER, DIFF = "union", "inter", "diff"


def _agg_sum(target: float, value: float) -> float:
    total = target + value
    return 0.0 if total != total else total  # inf + -inf is NaN: Redis makes it 0


def _agg_min(target: float, value: float) -> float:
    return value if value < target else target


def _agg_max(target: float, value: float) -> float:
    return value if value > target else target


_AGGREGATES = {b"sum": _agg_sum, b"min": _agg_min, b"max": _agg_max}


def _as_scores(value: Any) -> dict[bytes, float]:
    """A source of ZUNION & co as member -> score: a plain set's members score 1."""
    if value is None:
        return {}
    if value.__class__ is ZSet:
        return value.scores
    return dict.fromkeys(value, 1.0)


def _combine(op: str, sources: list, values: list, aggregate: Any,
             limit: int) -> dict[bytes, float]:
    """Member -> score of the union, intersection (stopping at ``limit`` members when it is
    set, ZINTERCARD's LIMIT) or difference of the sources, in Redis's order of sums."""
    result: dict[bytes, float] = {}
    if op == INTER:
        first, first_weight, _ = sources[0]
        others = sources[1:]
        for member, score in first.items():
            total = first_weight * score
            if total != total:
                total = 0.0
            for other, weight, _ in others:
                value = other.get(member)
                if value is None:
                    break
                total = aggregate(total, value * weight)
            else:
                result[member] = total
                if limit and len(result) >= limit:
                    break
    elif op == UNION:
        for scores, weight, _ in sources:
            for member, score in scores.items():
                value = weight * score
                if value != value:
                    value = 0.0
                existing = result.get(member)
                result[member] = value if existing is None else aggregate(existing, value)
    else:
        first_value = values[0]
        first = sources[0][0]
        if first and not any(value is first_value for value in values[1:]):
            others_scores = [scores for scores, _, _ in sources[1:] if scores]
            result = {
                member: score
                for member, score in first.items()
                if not any(member in other for other in others_scores)
            }
    return result


def _zsetop(ctx, argv: list[bytes], numkeys_index: int, op: str, store: bool = False,
            cardinality_only: bool = False) -> Any:
    """Redis's zunionInterDiffGenericCommand: ZUNION ZINTER ZDIFF, their STORE variants,
    ZINTERCARD.  Sources may be sets; scores combine in the order Redis uses (sources
    sorted by size, smallest first, except for ZDIFF), which matters for float sums."""
    name = argv[0].decode(errors="replace").lower()
    setnum = parse_int(argv[numkeys_index])
    if setnum < 1:
        raise CommandError(f"ERR at least 1 input key is needed for '{name}' command")
    if setnum > len(argv) - (numkeys_index + 1):
        raise CommandError(errors.SYNTAX)
    values = []
    for key in argv[numkeys_index + 1 : numkeys_index + 1 + setnum]:
        value = read_key(ctx, key)  # a read lookup even for the STORE variants, as in Redis
        if value is not None and value.__class__ is not ZSet and value.__class__ is not set:
            raise CommandError(errors.WRONGTYPE)
        values.append(value)
    weights = [1.0] * setnum
    aggregate = _agg_sum
    withscores = False
    limit = 0
    index = numkeys_index + 1 + setnum
    while index < len(argv):
        remaining = len(argv) - index
        option = argv[index].lower()
        if op != DIFF and not cardinality_only and remaining >= setnum + 1 and option == b"weights":
            weights = [parse_double(raw, WEIGHT_NOT_FLOAT) for raw in argv[index + 1 : index + 1 + setnum]]
            index += 1 + setnum
        elif op != DIFF and not cardinality_only and remaining >= 2 and option == b"aggregate":
            aggregate = _AGGREGATES.get(argv[index + 1].lower())  # type: ignore[assignment]
            if aggregate is None:
                raise CommandError(errors.SYNTAX)
            index += 2
        elif not store and not cardinality_only and option == b"withscores":
            withscores = True
            index += 1
        elif cardinality_only and remaining >= 2 and option == b"limit":
            limit = parse_positive(argv[index + 1], LIMIT_NEGATIVE)
            index += 2
        else:
            raise CommandError(errors.SYNTAX)
    sources = [(_as_scores(value), weight, value) for value, weight in zip(values, weights, strict=True)]
    if op != DIFF:
        sources.sort(key=lambda source: len(source[0]))  # stable, as glibc's merge qsort
    result = _combine(op, sources, values, aggregate, limit if cardinality_only else 0)
    if cardinality_only:
        return len(result)
    pairs = sorted(((score, member) for member, score in result.items()))
    ordered = [(member, score) for score, member in pairs]
    if store:
        return _store(ctx, argv[1], ordered, b"z" + op.encode() + b"store")
    return _pairs_reply(ctx, ordered, withscores)


def zunion(ctx, argv):
    return _zsetop(ctx, argv, 1, UNION)


def zinter(ctx, argv):
    return _zsetop(ctx, argv, 1, INTER)


def zdiff(ctx, argv):
    return _zsetop(ctx, argv, 1, DIFF)


def zunionstore(ctx, argv):
    return _zsetop(ctx, argv, 2, UNION, store=True)


def zinterstore(ctx, argv):
    return _zsetop(ctx, argv, 2, INTER, store=True)


def zdiffstore(ctx, argv):
    return _zsetop(ctx, argv, 2, DIFF, store=True)


def zintercard(ctx, argv):
    return _zsetop(ctx, argv, 1, INTER, cardinality_only=True)


