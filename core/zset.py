"""The sorted set value, and the parsing of what Redis accepts as scores and ranges.

A :class:`ZSet` keeps two views of the same pairs, as Redis's skiplist encoding does: a dict
member -> score for O(1) ZSCORE/ZADD lookups, and a ``sortedcontainers.SortedList`` of
``(score, member)`` tuples for O(log n) rank and range operations.  Tuples order exactly as
Redis orders a sorted set: by score, then by member bytes (memcmp), which is what Python's
bytes comparison does.

Scores are IEEE doubles; NaN is never stored.

The set also tracks which encoding Redis would have given it (:attr:`ZSet.encoding`), because
a few replies depend on it: Redis 7.0 keeps a small sorted set as a listpack (at most 128
members of at most 64 bytes) and converts it for good to a skiplist when it outgrows that;
only ZUNIONSTORE & co or a load pick the encoding afresh from the size.  A listpack stores a
score of ``-0`` as the integer 0 (ZSCORE prints ``0`` after ``ZADD z -0 m``) while a skiplist
keeps ``-0``; and ZSCAN returns a listpack whole but walks a skiplist with a cursor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

from .errors import NOT_FLOAT, CommandError

# Redis 7.0's zset-max-listpack-entries / zset-max-listpack-value defaults.
LISTPACK_ENTRIES = 128
LISTPACK_VALUE = 64

MIN_SCORE_RANGE_ERROR = "ERR min or max is not a float"
LEX_RANGE_ERROR = "ERR min or max not valid string range item"


class _Top:
    """A member greater than every bytes member: ``(score, TOP)`` sorts after every element
    with that score, so one bisect finds the end of a score."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return other is self

    def __gt__(self, other: object) -> bool:
        return other is not self

    def __ge__(self, other: object) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return 0


TOP = _Top()


class ZSet:
    """A sorted set: members (bytes) with scores (float), ordered by (score, member)."""

    __slots__ = ("scores", "ordered", "compact")

    def __init__(self, items: Iterable[tuple[bytes, float]] = ()) -> None:
        """From (member, score) pairs (a repeated member keeps its last score), encoded as
        Redis encodes a STORE result or a loaded set: a listpack when small enough."""
        scores = dict(items)
        self.compact = len(scores) <= LISTPACK_ENTRIES and all(
            len(member) <= LISTPACK_VALUE for member in scores)
        if self.compact:
            scores = {member: score + 0.0 for member, score in scores.items()}
        self.scores: dict[bytes, float] = scores
        # One sort of the whole list (linear when the pairs come sorted, as a STORE's do).
        self.ordered: SortedList = SortedList([(score, member) for member, score in scores.items()])

    @classmethod
    def for_first_member(cls, member: bytes) -> ZSet:
        """An empty set as Redis 7.0's ZADD creates one: a listpack unless the first member
        to add is already too long for one (members after it convert it as they come)."""
        zset = cls()
        zset.compact = len(member) <= LISTPACK_VALUE
        return zset

    @classmethod
    def built_by_adding(cls, pairs: list[tuple[bytes, float]]) -> ZSet:
        """A set as ZRANGESTORE builds its result: created for its size (Redis's
        zsetTypeCreate), then grown one pair at a time, so a member too long for a listpack
        converts it from there on."""
        zset = cls()
        zset.compact = len(pairs) <= LISTPACK_ENTRIES
        for member, score in pairs:
            zset.add(member, score)
        return zset

    @property
    def encoding(self) -> str:
        """What OBJECT ENCODING answers in Redis 7.0 for this set's history."""
        return "listpack" if self.compact else "skiplist"

    # --- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.scores)

    def __contains__(self, member: object) -> bool:
        return member in self.scores

    def __iter__(self) -> Iterator[bytes]:
        """Members in score order."""
        return (member for _, member in self.ordered)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZSet) and self.scores == other.scores

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ZSet({list(self.items())!r})"

    def items(self) -> Iterator[tuple[bytes, float]]:
        """(member, score) pairs in score order (what rewrite, snapshot and digest read)."""
        return ((member, score) for score, member in self.ordered)

    def score(self, member: bytes) -> float | None:
        return self.scores.get(member)

    def rank(self, member: bytes, reverse: bool = False) -> int | None:
        """0-based position of ``member`` in score order (from the top when ``reverse``)."""
        score = self.scores.get(member)
        if score is None:
            return None
        index = self.ordered.index((score, member))
        return len(self.scores) - 1 - index if reverse else index

    def at(self, index: int) -> tuple[bytes, float]:
        """The (member, score) at a 0-based position in score order."""
        score, member = self.ordered[index]
        return member, score

    def slice(self, start: int, stop: int, reverse: bool = False) -> list[tuple[bytes, float]]:
        """(member, score) pairs at positions start..stop-1; highest first when ``reverse``."""
        if start >= stop:
            return []
        return [
            (member, score) for score, member in self.ordered.islice(start, stop, reverse=reverse)
        ]

    def copy(self) -> ZSet:
        clone = ZSet()
        clone.scores = dict(self.scores)
        clone.ordered = SortedList(self.ordered)
        clone.compact = self.compact
        return clone

    # --- writing ---------------------------------------------------------------------------

    def add(self, member: bytes, score: float) -> bool:
        """Set ``member``'s score; True when the member is new."""
        old = self.scores.get(member)
        if self.compact and old is None and (
                len(self.scores) + 1 > LISTPACK_ENTRIES or len(member) > LISTPACK_VALUE):
            self.compact = False  # Redis converts to a skiplist, never back
        if self.compact:
            score = score + 0.0  # a listpack stores -0 as 0 (see the module docstring)
        if old is not None:
            if old == score:
                return False
            self.ordered.remove((old, member))
            self.scores[member] = score
            self.ordered.add((score, member))
            return False
        self.scores[member] = score
        self.ordered.add((score, member))
        return True

    def discard(self, member: bytes) -> bool:
        score = self.scores.pop(member, None)
        if score is None:
            return False
        self.ordered.remove((score, member))
        return True

    def pop(self, highest: bool = False) -> tuple[bytes, float]:
        """Remove and return the lowest (or highest) (member, score)."""
        score, member = self.ordered.pop(-1 if highest else 0)
        del self.scores[member]
        return member, score

    def delete_positions(self, start: int, stop: int) -> int:
        """Remove positions start..stop-1 (ascending); the count removed."""
        doomed = list(self.ordered.islice(start, stop))
        if len(doomed) == len(self.ordered):
            self.ordered.clear()
            self.scores.clear()
            return len(doomed)
        for _, member in doomed:
            del self.scores[member]
        del self.ordered[start:stop]
        return len(doomed)

    # --- score ranges ----------------------------------------------------------------------

    def score_span(self, spec: ScoreRange) -> tuple[int, int]:
        """Positions [start, stop) of the elements inside a score range (empty: start>=stop)."""
        if spec.is_empty():
            return 0, 0
        ordered = self.ordered
        start = ordered.bisect_left((spec.min, TOP) if spec.min_exclusive else (spec.min, b""))
        stop = ordered.bisect_left((spec.max, b"") if spec.max_exclusive else (spec.max, TOP))
        return start, max(start, stop)

    # --- lex ranges ------------------------------------------------------------------------
    # Redis's lex commands assume every score is equal; then members are sorted and one
    # bisect finds each end.  With mixed scores Redis walks the listpack of a small set from
    # one end (``zzlFirstInLexRange``) and stops at the first member out of range, so that
    # walk is reproduced here for deterministic, Redis-equal replies.

    def _same_scores(self) -> bool:
        ordered = self.ordered
        return not ordered or ordered[0][0] == ordered[-1][0]

    def lex_first(self, spec: LexRange) -> int | None:
        """Position where a forward lex walk starts (Redis's FirstInLexRange), or None."""
        if not self._lex_possible(spec):
            return None
        ordered = self.ordered
        if self._same_scores():
            score = ordered[0][0]
            if spec.min_kind < 0:
                index = 0
            elif spec.min_exclusive:
                index = ordered.bisect_right((score, spec.min))
            else:
                index = ordered.bisect_left((score, spec.min))
            if index < len(ordered) and spec.lte_max(ordered[index][1]):
                return index
            return None
        for index, (_, member) in enumerate(ordered):
            if spec.gte_min(member):
                return index if spec.lte_max(member) else None
        return None

    def lex_last(self, spec: LexRange) -> int | None:
        """Position where a backward lex walk starts (Redis's LastInLexRange), or None."""
        if not self._lex_possible(spec):
            return None
        ordered = self.ordered
        if self._same_scores():
            score = ordered[0][0]
            if spec.max_kind > 0:
                index = len(ordered) - 1
            elif spec.max_exclusive:
                index = ordered.bisect_left((score, spec.max)) - 1
            else:
                index = ordered.bisect_right((score, spec.max)) - 1
            if index >= 0 and spec.gte_min(ordered[index][1]):
                return index
            return None
        for index in range(len(ordered) - 1, -1, -1):
            member = ordered[index][1]
            if spec.lte_max(member):
                return index if spec.gte_min(member) else None
        return None

    def lex_forward_stop(self, spec: LexRange, start: int) -> int:
        """From ``start``, the first position whose member is past the max."""
        ordered = self.ordered
        if self._same_scores() and ordered:
            score = ordered[0][0]
            if spec.max_kind > 0:
                return len(ordered)
            if spec.max_exclusive:
                return max(start, ordered.bisect_left((score, spec.max)))
            return max(start, ordered.bisect_right((score, spec.max)))
        index = start
        while index < len(ordered) and spec.lte_max(ordered[index][1]):
            index += 1
        return index

    def lex_backward_stop(self, spec: LexRange, start: int) -> int:
        """From ``start`` going down, the lowest position whose member is still >= the min
        (``start + 1`` when even ``start`` is below it)."""
        ordered = self.ordered
        if self._same_scores() and ordered:
            score = ordered[0][0]
            if spec.min_kind < 0:
                return 0
            if spec.min_exclusive:
                return min(start + 1, ordered.bisect_right((score, spec.min)))
            return min(start + 1, ordered.bisect_left((score, spec.min)))
        index = start
        while index >= 0 and spec.gte_min(ordered[index][1]):
            index -= 1
        return index + 1

    def _lex_possible(self, spec: LexRange) -> bool:
        """Redis's IsInLexRange: the range is not empty and overlaps the first/last member."""
        if spec.is_empty() or not self.ordered:
            return False
        return spec.gte_min(self.ordered[-1][1]) and spec.lte_max(self.ordered[0][1])


# --- parsing -------------------------------------------------------------------------------

# What C's strtod accepts, after leading white space: decimal, hex, inf/infinity, nan.
_STRTOD = re.compile(
    rb"[+-]?(?:"
    rb"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
    rb"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?"
    rb"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?"
    rb"|[nN][aA][nN](?:\([0-9A-Za-z_]*\))?"
    rb")"
)
_C_SPACE = b" \t\n\v\f\r"


def _strtod_whole(text: bytes) -> float | None:
    """``text`` as strtod reads it when it must consume everything (leading white space
    allowed), or None.  Overflow gives +-inf, as strtod does."""
    stripped = text.lstrip(_C_SPACE)
    if not _STRTOD.fullmatch(stripped):
        return None
    body = stripped.lstrip(b"+-")
    if body[:2] in (b"0x", b"0X"):
        value = float.fromhex(body.decode())
        return -value if stripped[:1] == b"-" else value
    if body[:1] in (b"n", b"N"):
        return math.nan
    return float(stripped.split(b"(")[0])


def parse_double(raw: bytes, error: str = NOT_FLOAT) -> float:
    """A score or weight as Redis's ``string2d`` reads it: strtod over the whole argument, no
    leading space, no NaN, and no overflow to infinity or underflow to zero (``1e400``,
    ``1e-400`` are refused while ``inf`` and denormals are fine)."""
    if raw.__class__ is bytes and raw.isdigit() and len(raw) < 16:
        return float(raw)  # the common case: a small integer
    if not raw or raw[:1] in (b" ", b"\t", b"\n", b"\v", b"\f", b"\r"):
        raise CommandError(error)
    value = _strtod_whole(raw)
    if value is None or math.isnan(value):
        raise CommandError(error)
    if math.isinf(value) and b"n" not in raw.lower():
        raise CommandError(error)  # overflowed: ERANGE
    if value == 0.0 and any(48 < c <= 57 for c in raw.split(b"e")[0].split(b"E")[0]):
        if not raw.lstrip(b"+-")[:2].lower() == b"0x":
            raise CommandError(error)  # underflowed to zero: ERANGE
    return value


class ScoreRange:
    """``min``/``max`` of ZRANGEBYSCORE and friends: ``(`` makes a bound exclusive."""

    __slots__ = ("min", "max", "min_exclusive", "max_exclusive")

    def __init__(self, low: float, high: float, low_exclusive: bool, high_exclusive: bool):
        self.min = low
        self.max = high
        self.min_exclusive = low_exclusive
        self.max_exclusive = high_exclusive

    @classmethod
    def parse(cls, low: bytes, high: bytes) -> ScoreRange:
        low_value, low_ex = _parse_score_bound(low)
        high_value, high_ex = _parse_score_bound(high)
        return cls(low_value, high_value, low_ex, high_ex)

    def is_empty(self) -> bool:
        return self.min > self.max or (
            self.min == self.max and (self.min_exclusive or self.max_exclusive)
        )

    def gte_min(self, score: float) -> bool:
        return score > self.min if self.min_exclusive else score >= self.min

    def lte_max(self, score: float) -> bool:
        return score < self.max if self.max_exclusive else score <= self.max


def _parse_score_bound(raw: bytes) -> tuple[float, bool]:
    """Redis's zslParseRange item: strtod of the text after an optional ``(``; strtod
    accepts leading white space and an empty string (0), refuses NaN."""
    exclusive = raw[:1] == b"("
    text = raw[1:] if exclusive else raw
    value = 0.0 if text == b"" else _strtod_whole(text)
    if value is None or math.isnan(value):
        raise CommandError(MIN_SCORE_RANGE_ERROR)
    return value, exclusive


class LexRange:
    """``min``/``max`` of ZRANGEBYLEX: ``[a`` inclusive, ``(a`` exclusive, ``-`` and ``+`` the
    ends.  A bound's kind is -1 for ``-``, 1 for ``+``, 0 for a member."""

    __slots__ = ("min", "max", "min_kind", "max_kind", "min_exclusive", "max_exclusive")

    def __init__(self, low: bytes, high: bytes) -> None:
        self.min_kind, self.min, self.min_exclusive = _parse_lex_item(low)
        self.max_kind, self.max, self.max_exclusive = _parse_lex_item(high)

    def is_empty(self) -> bool:
        low, high = (self.min_kind, self.min), (self.max_kind, self.max)
        return low > high or (low == high and (self.min_exclusive or self.max_exclusive))

    def gte_min(self, member: bytes) -> bool:
        if self.min_kind:
            return self.min_kind < 0
        return member > self.min if self.min_exclusive else member >= self.min

    def lte_max(self, member: bytes) -> bool:
        if self.max_kind:
            return self.max_kind > 0
        return member < self.max if self.max_exclusive else member <= self.max


def _parse_lex_item(raw: bytes) -> tuple[int, bytes, bool]:
    first = raw[:1]
    if raw == b"+":
        return 1, b"", True
    if raw == b"-":
        return -1, b"", True
    if first == b"(":
        return 0, raw[1:], True
    if first == b"[":
        return 0, raw[1:], False
    raise CommandError(LEX_RANGE_ERROR)


def _register_type_name() -> None:
    """TYPE and SCAN TYPE name a ZSet ``zset`` (the keyspace's table knows the other types)."""
    from .keyspace import TYPE_NAMES

    TYPE_NAMES.setdefault(ZSet, "zset")


_register_type_name()

__all__ = ["LexRange", "ScoreRange", "ZSet", "parse_double"]
