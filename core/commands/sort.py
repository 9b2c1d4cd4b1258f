"""SORT and SORT_RO: sort a list, set or sorted set, as Redis 7.0's ``sort.c``.

- Numeric by default: each element (or its BY weight) is read as C's ``strtod`` reads it, the
  whole text, no overflow or underflow, no NaN, else ``One or more scores can't be converted
  into double``; equal scores fall back to comparing the elements' bytes, so the order is
  total.  ``ALPHA`` compares bytes.  A BY weight that is missing sorts as 0 (numeric) or first (ALPHA).
- ``BY pattern``: the first ``*`` is replaced by the element; ``key->field`` reads a hash
  field.  A pattern without ``*`` means "do not sort": the native order (a list's, a sorted
  set's, a set's: ascending for a small set of integers, as Redis's intset), except that a
  set is still sorted (ALPHA) when STOREd, so the stored list does not depend on the set's
  internal order.  ``GET pattern`` (``#`` is the element) replaces each element by the
  values found.
- ALPHA compares as ``strcoll`` in the C locale (a service's, and the reference's): bytes
  up to the first NUL; with STORE, Redis compares whole values (memcmp), and so do we.  Not
  modelled: another LC_COLLATE locale, and the cluster-mode refusal (trioredis has none).
- BY and GET with a pattern need access to every key (Redis 7's ACL rule): a user limited to
  some key patterns gets ``BY/GET option of SORT denied due to insufficient ACL permissions``.
- ``STORE dest`` replaces ``dest`` with the result as a list (its TTL dropped), or deletes it
  when the result is empty, and propagates what it did: ``DEL dest`` then ``RPUSH dest`` with
  the elements (in batches), never the SORT itself, so a replay needs neither the source
  order nor the patterns' keys.  Events: ``sortstore`` (class ``l``), or ``del``.
- Stable sorting: elements that compare equal (ALPHA with equal BY weights) keep their
  source order, as glibc's merge-sort ``qsort`` keeps them in Redis.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from .. import errors
from ..errors import CommandError
from ..zset import ZSet, _strtod_whole
from . import command
from .args import parse_int
from .keys import read_key
from .server import with_categories
from .sets import members_reply
from .strings import notify

SCORE_ERROR = "ERR One or more scores can't be converted into double"
BY_DENIED = "ERR BY option of SORT denied due to insufficient ACL permissions."
GET_DENIED = "ERR GET option of SORT denied due to insufficient ACL permissions."
# Elements per propagated RPUSH of a STORE result: bounded commands for the AOF.
STORE_BATCH = 1024


def _score(raw: bytes) -> float | None:
    """``raw`` as SORT reads a weight (C ``strtod`` on the C string, which must be used up):
    None when it is not a number, overflows, underflows or is NaN.  The empty string is 0,
    as strtod leaves it untouched and Redis only checks that the rest is empty."""
    text = raw.split(b"\0", 1)[0]
    if not text:
        return 0.0
    value = _strtod_whole(text)
    if value is None or math.isnan(value):
        return None
    body = text.lstrip(b" \t\n\v\f\r+-").lower()
    if math.isinf(value) and not body.startswith(b"inf"):
        return None  # overflow: ERANGE
    if value != 0.0 and abs(value) < sys.float_info.min:
        return None  # a denormal result: ERANGE as well
    if value == 0.0:
        hexadecimal = body.startswith(b"0x")
        mantissa = body[2:].split(b"p", 1)[0] if hexadecimal else body.split(b"e", 1)[0]
        if mantissa.strip(b"0.") != b"":
            return None  # a non-zero number that underflowed to zero
    return value


# What plain decimal numbers are made of: when every weight uses only these, Python's float()
# reads each the way strtod does, or refuses it as strtod would ("1-2", "-", "."), so one C
# call per weight does the work; only results strtod would flag (zero, tiny, infinite) and
# refusals are read again the careful way.
_DECIMAL_CHARS = b"0123456789-."


def _scores(weights: list[bytes | None]) -> list[float] | None:
    """Every weight as a number (a missing one is 0); None when one is not a number."""
    present = [weight for weight in weights if weight is not None]
    if len(present) == len(weights) and not b"".join(present).translate(None, _DECIMAL_CHARS):
        try:
            scores = list(map(float, present))
        except ValueError:
            pass
        else:
            magnitudes = list(map(abs, scores))
            if not scores or max(magnitudes) < math.inf:
                if scores and min(magnitudes) < sys.float_info.min:
                    for index, magnitude in enumerate(magnitudes):
                        if magnitude < sys.float_info.min:  # zero, or an underflow?
                            checked = _score(present[index])
                            if checked is None:
                                return None
                            scores[index] = checked
                return scores
    scores = []
    for weight in weights:
        score = 0.0 if weight is None else _score(weight)
        if score is None:
            return None
        scores.append(score)
    return scores


def _c_string(value: bytes) -> bytes:
    """``value`` as C string functions see it: up to its first NUL byte."""
    return value.split(b"\0", 1)[0]


def _full_key_access(ctx) -> bool:
    """Whether the client's user may read every key (``allkeys``, or a ``*`` pattern with
    read access): what Redis 7 requires for BY and GET patterns."""
    if ctx.client.is_loader:
        return True
    user = ctx.engine.acl.users.get(ctx.client.user)
    if user is None:
        return False
    return user.all_keys or any(p.text == b"*" and p.read for p in user.keys)


def lookup_pattern(ctx, pattern: bytes, element: bytes) -> bytes | None:
    """The value a BY/GET pattern names for ``element`` (Redis's ``lookupKeyByPattern``):
    ``#`` is the element itself; otherwise the first ``*`` is replaced by the element, and a
    ``->field`` after it reads that field of a hash.  None when the pattern has no ``*``, the
    key is missing or of another type, or the field is missing."""
    if pattern == b"#":
        return element
    text = pattern.split(b"\0", 1)[0]  # Redis searches the pattern as a C string
    star = text.find(b"*")
    if star < 0:
        return None
    arrow = text.find(b"->", star + 1)
    field = None
    if arrow >= 0 and arrow + 2 < len(text):
        field = pattern[arrow + 2 :]
        key = pattern[:star] + element + pattern[star + 1 : arrow]
    else:
        key = pattern[:star] + element + pattern[star + 1 :]
    value = read_key(ctx, key)
    if value is None:
        return None
    if field is not None:
        return value.get(field) if value.__class__ is dict else None
    return value if value.__class__ is bytes else None


@dataclass(slots=True)
class _SortRequest:
    """SORT's options as parsed (the last of a repeated option wins, as in Redis)."""

    descending: bool = False
    alpha: bool = False
    dont_sort: bool = False  # BY a pattern without ``*``: native order
    limit_start: int = 0
    limit_count: int = -1
    store: bytes | None = None
    by: bytes | None = None
    gets: list[bytes] = field(default_factory=list)


def _parse_sort(ctx, argv: list[bytes], read_only: bool) -> _SortRequest:
    """The options after the key, with Redis's errors (BY/GET patterns need full key access,
    checked once, at the first that needs it)."""
    request = _SortRequest()
    full_access: bool | None = None
    index = 2
    while index < len(argv):
        option = argv[index].lower()
        left = len(argv) - index - 1
        if option == b"asc":
            request.descending = False
        elif option == b"desc":
            request.descending = True
        elif option == b"alpha":
            request.alpha = True
        elif option == b"limit" and left >= 2:
            request.limit_start = parse_int(argv[index + 1])
            request.limit_count = parse_int(argv[index + 2])
            index += 2
        elif option == b"store" and left >= 1 and not read_only:
            request.store = argv[index + 1]
            index += 1
        elif option == b"by" and left >= 1:
            request.by = argv[index + 1]
            if b"*" not in request.by.split(b"\0", 1)[0]:
                # A constant weight: nothing to sort.  Redis never clears this again, even
                # when a later BY has a pattern.
                request.dont_sort = True
            else:
                if full_access is None:
                    full_access = _full_key_access(ctx)
                if not full_access:
                    raise CommandError(BY_DENIED)
            index += 1
        elif option == b"get" and left >= 1:
            if full_access is None:
                full_access = _full_key_access(ctx)
            if not full_access:
                raise CommandError(GET_DENIED)
            request.gets.append(argv[index + 1])
            index += 1
        else:
            raise CommandError(errors.SYNTAX)
        index += 1
    return request


def _limit_range(size: int, limit_start: int, limit_count: int) -> tuple[int, int]:
    """LIMIT's (start, end) positions, clamped as Redis clamps them (end < start: none)."""
    start = min(max(limit_start, 0), size)
    limit_count = min(max(limit_count, -1), size)
    end = size - 1 if limit_count < 0 else start + limit_count - 1
    if start >= size:
        start, end = size - 1, size - 2
    return start, min(end, size - 1)


def _elements(value: Any, request: _SortRequest, start: int,
              end: int) -> tuple[list[bytes], int, int]:
    """The elements to sort, and the (start, end) left to apply: without sorting, LIMIT is
    applied while reading (then (0, wanted - 1))."""
    if request.dont_sort and value.__class__ is not set:
        # Native order, LIMIT applied while reading (from the end when DESC).
        # Iterators, not indexes: indexing the middle of a deque walks it.
        wanted = max(end - start + 1, 0)
        if wanted == 0:  # (start is -1 on an empty source)
            elements = []
        elif value.__class__ is deque:
            source = reversed(value) if request.descending else iter(value)
            elements = list(islice(source, start, start + wanted))
        else:
            # ZSet.slice takes ascending positions (and reverses what it returns).
            size = len(value)
            first = size - start - wanted if request.descending else start
            pairs = value.slice(first, first + wanted, reverse=request.descending)
            elements = [member for member, _score in pairs]
        return elements, 0, wanted - 1
    if value.__class__ is set:
        # A small set of integers in ascending order, as Redis's intset holds it.
        return list(members_reply(value)), start, end
    return list(value), start, end


def _sorted(ctx, elements: list[bytes], request: _SortRequest) -> list[bytes]:
    """The elements in SORT's order: by their own value or BY's weights, numeric or ALPHA."""
    descending, by = request.descending, request.by
    if request.alpha:
        # Redis compares with strcoll, which ends at a NUL byte, unless it stores the
        # result (then memcmp over the whole length, so STORE is locale-free).
        collate = None if request.store is not None else _c_string
        if by is not None:
            weights = [lookup_pattern(ctx, by, element) for element in elements]
            # A missing weight sorts first; equal weights keep their order (stable).
            keys: list[Any] = [
                (False, b"") if w is None else (True, w if collate is None else collate(w))
                for w in weights
            ]
            order = sorted(range(len(elements)), key=keys.__getitem__, reverse=descending)
            return [elements[i] for i in order]
        elements.sort(key=collate, reverse=descending)
        return elements
    if by is not None:
        weights = [lookup_pattern(ctx, by, element) for element in elements]
    else:
        weights = elements
    scores = _scores(weights)
    if scores is None:
        raise CommandError(SCORE_ERROR)
    scored = list(zip(scores, elements, strict=True))
    scored.sort(reverse=descending)
    return [element for _, element in scored]


def _store_sorted(ctx, store: bytes, result: list[bytes]) -> int:
    """SORT ... STORE: the result as a list (or the destination deleted when empty),
    propagated as DEL then RPUSH batches."""
    db = ctx.db
    if result:
        db.set(store, deque(result))
        ctx.dirty += len(result)
        notify(ctx, "l", b"sortstore", store)
        ctx.propagate([b"DEL", store])
        for first in range(0, len(result), STORE_BATCH):
            ctx.propagate([b"RPUSH", store, *result[first : first + STORE_BATCH]])
    elif db.delete(store):
        ctx.dirty += 1
        notify(ctx, "g", b"del", store)
        ctx.propagate([b"DEL", store])
    return len(result)


def _sort(ctx, argv: list[bytes], read_only: bool):
    request = _parse_sort(ctx, argv, read_only)
    value = read_key(ctx, argv[1])
    if value is None:
        value = deque()
    elif value.__class__ not in (deque, set, ZSet):
        raise CommandError(errors.WRONGTYPE)
    if request.dont_sort and value.__class__ is set and (
            request.store is not None or ctx.client.kind == "lua"):
        # A stored list, or a script's result (which decides what the script writes), must
        # not depend on the set's internal order: Redis sorts them ALPHA.
        request.dont_sort, request.alpha, request.by = False, True, None
    if value.__class__ is ZSet:
        value.compact = False  # Redis 7.0 converts a listpack sorted set for SORT, for good

    start, end = _limit_range(len(value), request.limit_start, request.limit_count)
    elements, start, end = _elements(value, request, start, end)
    if not request.dont_sort:
        elements = _sorted(ctx, elements, request)

    chosen = elements[start : end + 1] if end >= start else []
    gets = request.gets
    if request.store is None:
        if not gets:
            return chosen
        return [lookup_pattern(ctx, pattern, element) for element in chosen for pattern in gets]
    if gets:
        result = [lookup_pattern(ctx, pattern, element) or b"" for element in chosen
                  for pattern in gets]
    else:
        result = chosen
    return _store_sorted(ctx, request.store, result)


def sort_(ctx, argv):
    return _sort(ctx, argv, read_only=False)


def sort_ro(ctx, argv):
    return _sort(ctx, argv, read_only=True)


def sort_keys(argv: list[bytes]) -> list[bytes]:
    """SORT's keys as Redis's ``sortGetKeys`` finds them: the sorted key, then the last
    ``STORE`` destination, skipping the arguments of LIMIT, GET and BY (so ``GET store``
    is a pattern, not a STORE)."""
    if len(argv) < 2:
        return []
    destination = None
    skips = {b"limit": 2, b"get": 1, b"by": 1}
    index = 2
    while index < len(argv):
        word = argv[index].lower()
        if word in skips:
            index += skips[word]
        elif word == b"store" and index + 1 < len(argv):
            destination = argv[index + 1]
        index += 1
    return [argv[1]] if destination is None else [argv[1], destination]


def register(registry):
    # Redis files SORT under the generic group with the set, sorted-set and list categories.
    group = "list"
    extra = ("set", "sortedset", "dangerous")
    registry.extend([
        # Only the destination is signalled as changed (WATCH), as Redis's handler does: the
        # key specs say what each key needs, not which keys the handler signals.
        with_categories(command("sort", -2, "write denyoom movablekeys", sort_,
                                group=group, write_keys=lambda argv: sort_keys(argv)[1:]),
                        *extra),
        with_categories(command("sort_ro", -2, "readonly movablekeys", sort_ro,
                                group=group), *extra),
    ])
