"""Redis's glob patterns (``stringmatchlen``) as compiled regular expressions.

One implementation for every place that matches a pattern: KEYS/SCAN MATCH, PSUBSCRIBE,
ACL key and channel patterns, CONFIG GET, COMMAND LIST FILTERBY PATTERN.
"""

from __future__ import annotations

import functools
import re


@functools.lru_cache(maxsize=256)
def compile_glob(pattern: bytes) -> re.Pattern[bytes]:
    """A regular expression matching exactly what Redis's ``stringmatchlen`` matches: ``*``,
    ``?``, ``[abc]``, ``[^a-z]`` (a reversed range is swapped), ``\\x`` for a literal x; an
    unclosed ``[`` runs to the end of the pattern; a trailing ``\\`` is a literal backslash."""
    out: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            while i + 1 < n and pattern[i + 1 : i + 2] == b"*":
                i += 1
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"[":
            i += 1
            negate = i < n and pattern[i : i + 1] == b"^"
            if negate:
                i += 1
            members: list[bytes] = []
            while i < n:
                c = pattern[i : i + 1]
                if c == b"\\" and i + 1 < n:
                    i += 1
                    members.append(re.escape(pattern[i : i + 1]))
                elif c == b"]":
                    break
                elif i + 2 < n and pattern[i + 1 : i + 2] == b"-":
                    start, end = sorted((pattern[i], pattern[i + 2]))
                    members.append(re.escape(bytes([start])) + b"-" + re.escape(bytes([end])))
                    i += 2
                else:
                    members.append(re.escape(c))
                i += 1
            if members:
                out.append(b"[" + (b"^" if negate else b"") + b"".join(members) + b"]")
            else:  # "[]" matches nothing, "[^]" any one byte
                out.append(b"." if negate else b"(?!)")
        elif c == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i : i + 1]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out) + rb"\Z", re.DOTALL)
