"""Redis's glob patterns (``stringmatchlen``), matched in time bounded for every pattern.

One implementation for every place that matches a pattern: KEYS/SCAN MATCH, HSCAN/SSCAN/ZSCAN
MATCH, PSUBSCRIBE and PUBSUB CHANNELS, ACL key and channel patterns, CONFIG GET, COMMAND LIST
FILTERBY PATTERN.  Patterns come from clients, so a pattern must never cost more than
(subject length x pattern length): the former regular expression (``*`` as ``.*``)
backtracked exponentially on ``*a*a*a...*b`` against a run of ``a``.

How it works.  A pattern is first cut into *tokens*, which depends on the pattern only: a star
(a run of ``*`` is one star), or one "single byte" test: a literal byte, ``?`` (any byte) or a
class ``[...]`` (a set of bytes).  The stars cut the tokens into *segments* of fixed length.  A
subject matches when the first segment matches at its start, the last one at its end, and the
middle ones occur in order, without overlapping, in between; taking each middle segment at its
leftmost occurrence is always right (any match could move that segment left without harm), so
no backtracking is needed.  The common shapes (``user:*``, ``*:1*``, an exact name) become
bytes operations; the others one regular expression whose middle segments sit in atomic
groups, so the regex engine never goes back into them (see :func:`_regex_matcher`).

Redis 7.0.15's answers, checked against ``redis-server`` (``tests/test_security_patterns.py``):

* ``?`` and classes match exactly one byte; ``\\x`` is a literal x, a trailing ``\\`` a literal
  backslash.
* In a class: ``^`` first negates; ``\\x`` is x (compared case-sensitively, even for the
  case-insensitive callers); ``a-z`` is a range whose ends are swapped when reversed, compared
  as C's signed ``char`` (so bytes 0x80-0xff sort *below* ASCII: ``[a-\\xff]`` means
  ``\\xff``..``a``); a ``-`` needs both ends present (``[a-`` is ``a`` or ``-``), and the
  closing ``]`` may serve as an end (``[a-]`` is ``]``..``a``); an unterminated ``[...`` is a
  class of what follows; ``[]`` matches nothing and ``[^]`` any byte.
* An empty subject matches only the empty pattern (``stringmatchlen`` stops at once; KEYS
  and SCAN answer ``*`` without matching, so an empty key still shows there).
* Redis refuses to nest deeper than 1000 stars (its recursion guard against abusive
  patterns), so a pattern whose 1001st star is not its last token, or with 1002 or more stars,
  matches nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

# Redis's stringmatchlen gives up (no match) when it would recurse deeper than this many stars.
MAX_STAR_NESTING = 1000

# Patterns with up to this many single-byte tokens compile their regular expression at once;
# longer ones (slow to compile: Python's re parses ~10-50 us per class) on first use by a
# subject at least that long.
EAGER_REGEX_TOKENS = 256

# A token is STAR or a 256-byte membership table (b"\x01" where the byte matches).
STAR = None
_ANY = b"\x01" * 256


def _signed(byte: int) -> int:
    """The byte as C's signed ``char`` on the platforms Redis ships for (x86, arm64 Linux
    compares ``pattern[0]`` as ``int`` taken from ``char``)."""
    return byte - 256 if byte >= 128 else byte


def _lower(byte: int) -> int:
    """C's ``tolower`` in the "C" locale (Redis never sets LC_CTYPE)."""
    return byte + 32 if 65 <= byte <= 90 else byte


@functools.lru_cache(maxsize=512)
def _literal(byte: int, nocase: bool) -> bytes:
    table = bytearray(256)
    table[byte] = 1
    if nocase and 97 <= byte | 0x20 <= 122:
        table[byte ^ 0x20] = 1  # the other case of an ASCII letter
    return bytes(table)


def _class(pattern: bytes, i: int, nocase: bool) -> tuple[bytes, int]:
    """The table of the class starting just after ``[`` at ``i``, and the index after it."""
    n = len(pattern)
    negate = i < n and pattern[i] == 0x5E  # ^
    if negate:
        i += 1
    table = bytearray(256)
    while i < n:
        c = pattern[i]
        if c == 0x5C and n - i >= 2:  # \x: x itself, always case-sensitive
            i += 1
            table[pattern[i]] = 1
        elif c == 0x5D:  # ]
            break
        elif n - i >= 3 and pattern[i + 1] == 0x2D:  # a-z (the end may be the closing ])
            start, end = sorted((_signed(c), _signed(pattern[i + 2])))
            if nocase:
                start, end = _lower(start & 0xFF), _lower(end & 0xFF)
                start, end = _signed(start), _signed(end)
                for byte in range(256):
                    if start <= _signed(_lower(byte)) <= end:
                        table[byte] = 1
            else:
                # Signed order: -128..-1 are bytes 0x80..0xff, 0..127 are themselves.
                for value in range(max(start, -128), min(end, 127) + 1):
                    table[value & 0xFF] = 1
            i += 2
        else:
            table[c] = 1
            if nocase and 97 <= c | 0x20 <= 122:
                table[c ^ 0x20] = 1
        i += 1
    # i is at the closing "]" or past the end (unterminated): either way the class ends here.
    if negate:
        table = bytearray(1 - bit for bit in table)
    return bytes(table), i + 1


def tokenize(pattern: bytes, nocase: bool = False) -> list[bytes | None]:
    """The pattern as tokens: :data:`STAR` or a membership table of one byte."""
    tokens: list[bytes | None] = []
    # One object per distinct class: a long pattern of classes must not cost 256 bytes each.
    shared: dict[bytes, bytes] = {}
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # *
            if not tokens or tokens[-1] is not STAR:
                tokens.append(STAR)
            i += 1
        elif c == 0x3F:  # ?
            tokens.append(_ANY)
            i += 1
        elif c == 0x5B:  # [
            table, i = _class(pattern, i + 1, nocase)
            tokens.append(shared.setdefault(table, table))
        else:
            if c == 0x5C and n - i >= 2:  # \x; a trailing \ is itself
                i += 1
                c = pattern[i]
            tokens.append(_literal(c, nocase))
            i += 1
    return tokens


@functools.lru_cache(maxsize=512)
def _regex_item(table: bytes) -> bytes:
    members = [byte for byte in range(256) if table[byte]]
    if len(members) == 256:
        return b"."
    if not members:
        return b"(?!)"
    if len(members) == 1:
        return re.escape(bytes(members))
    negate = len(members) > 128  # the shorter spelling: [^x] rather than 255 members
    if negate:
        members = [byte for byte in range(256) if not table[byte]]
    runs: list[bytes] = []
    start = previous = members[0]
    for byte in [*members[1:], -1]:
        if byte != previous + 1:
            runs.append(re.escape(bytes([start])) if start == previous else
                        re.escape(bytes([start])) + b"-" + re.escape(bytes([previous])))
            start = byte
        previous = byte
    return b"[" + (b"^" if negate else b"") + b"".join(runs) + b"]"


def _literal_bytes(tables: list[bytes]) -> bytes | None:
    """The bytes a run of tokens spells when each is one literal byte, else None."""
    out = bytearray()
    for table in tables:
        if table.count(1) != 1:
            return None
        out.append(table.find(1))
    return bytes(out)


class GlobPattern:
    """One compiled pattern; ``matches(subject)`` answers as Redis's ``stringmatchlen``,
    with a truthy value for a match (a ``bool``, or a ``re.Match`` where a regular expression
    decides: KEYS and SCAN call it per key, so it is never wrapped).

    ``literal_prefix`` is what every matching subject starts with (the bytes before the first
    token that is not a single literal byte): the pub/sub pattern index groups by it."""

    __slots__ = ("pattern", "literal_prefix", "matches")

    def __init__(self, pattern: bytes, nocase: bool = False) -> None:
        self.pattern = pattern
        tokens = tokenize(pattern, nocase)
        segments: list[list[bytes]] = [[]]
        for token in tokens:
            if token is STAR:
                segments.append([])
            else:
                segments[-1].append(token)
        head, middle, tail = segments[0], segments[1:-1], segments[-1]
        stars = len(segments) - 1
        prefix = bytearray()
        for table in head:
            if table.count(1) != 1:
                break
            prefix.append(table.find(1))
        self.literal_prefix = bytes(prefix)
        literals = [_literal_bytes(segment) for segment in segments]
        if stars > MAX_STAR_NESTING + 1 or (stars == MAX_STAR_NESTING + 1 and tail):
            self.matches: Callable[[bytes], object] = _never
        elif not pattern:
            self.matches = _is_empty
        elif None not in literals and stars <= 2 and not (stars == 2 and (head or tail)):
            # The common shapes, "user:1", "user:*", "*:1*", as plain bytes operations.
            self.matches = _literal_matcher(literals, stars)
        else:
            self.matches = _regex_matcher(head, middle, tail, stars)

    # The regex API this module had before: callers test the result for truth.
    def match(self, subject: bytes) -> object:
        return self.matches(subject)

    fullmatch = match


def _literal_matcher(literals: list[bytes], stars: int) -> Callable[[bytes], object]:
    if stars == 0:
        return literals[0].__eq__
    if stars == 1:
        head, tail = literals
        if not head and not tail:
            return bool  # "*": anything but the empty subject
        if not tail:
            return lambda subject: subject.startswith(head)
        if not head:
            return lambda subject: subject.endswith(tail)
        return lambda subject: (len(subject) >= len(head) + len(tail) and subject.startswith(head)
                                and subject.endswith(tail))
    inner = literals[1]  # "*inner*"
    return lambda subject: inner in subject


def _regex_matcher(head: list[bytes], middle: list[list[bytes]], tail: list[bytes],
                   stars: int) -> Callable[[bytes], object]:
    """One regular expression without nested quantifiers: the head anchored at the start;
    each middle segment at its leftmost occurrence, in an atomic group (``(?>.*?seg)``) so a
    later failure never retries it further right (leftmost is always right, see the module
    docstring); the tail anchored at the end.  Every part is searched once: at most
    (subject x pattern) steps, never exponential."""
    parts = [b"\\A", *map(_regex_item, head)]
    for segment in middle:
        parts.append(b"(?>.*?" + b"".join(map(_regex_item, segment)) + b")")
    if not stars:  # head and tail are the same segment
        parts.append(b"\\Z")
    elif tail:
        parts.append(b".*")
        parts.extend(map(_regex_item, tail))
        parts.append(b"\\Z")
    # Compiled on first use by a subject long enough to match: KEYS with a huge pattern over
    # shorter keys never pays for it.  Never true for an empty subject, as in Redis: there is
    # at least one single-byte token.
    shortest = len(head) + sum(map(len, middle)) + (len(tail) if stars else 0)
    if shortest <= EAGER_REGEX_TOKENS:  # the usual patterns: no wrapper on the per-key path
        return re.compile(b"".join(parts), re.DOTALL).match
    compiled: list[Callable[[bytes], object]] = []

    def match(subject: bytes) -> object:
        if len(subject) < shortest:
            return None
        if not compiled:
            compiled.append(re.compile(b"".join(parts), re.DOTALL).match)
        return compiled[0](subject)

    return match


def _never(subject: bytes) -> bool:
    return False


def _is_empty(subject: bytes) -> bool:
    return not subject


# Patterns up to this long are cached: the usual ones are short, and a client's giant pattern
# must not stay in memory after its command.
CACHED_PATTERN_LENGTH = 512


@functools.lru_cache(maxsize=1024)
def _compile_cached(pattern: bytes, nocase: bool) -> GlobPattern:
    return GlobPattern(pattern, nocase)


def compile_glob(pattern: bytes, nocase: bool = False) -> GlobPattern:
    """The compiled pattern (cached: SCAN, PSUBSCRIBE and ACL checks reuse a few patterns).
    ``nocase`` compares as Redis's ``stringmatchlen(..., nocase=1)`` (CONFIG GET, COMMAND
    LIST FILTERBY PATTERN): ASCII letters fold, but a ``\\x`` inside a class stays exact."""
    if len(pattern) <= CACHED_PATTERN_LENGTH:
        return _compile_cached(pattern, nocase)
    return GlobPattern(pattern, nocase)
