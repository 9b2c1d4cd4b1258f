"""RESP requests, sans I/O: the request parser (replies are encoded in :mod:`trioredis.resp`).

Requests are parsed by ``hiredis.Reader`` in the common case (many commands per ``recv``).
hiredis knows nothing of Redis's server-side limits and inline commands, and it accepts some
element types Redis refuses inside a request.  So: a chunk is screened for the element types
hiredis would hand back as strings (``+``, ``(``, ``=`` after a newline: three substring
searches); every command hiredis returns is checked (a list of bytes, within the multibulk and
bulk limits); a command hiredis is still waiting for is checked for what Redis refuses as soon
as it reads it (an inline request, a nested array, a count or length past a limit).  hiredis
itself raises on malformed counts and lengths.  Whatever fails goes, from the last command
boundary on, through :class:`ExactParser`, a pure-Python parser with Redis's own rules and
error strings (``networking.c`` ``processInlineBuffer``/``processMultibulkBuffer``), until the
stream is back at a boundary.  The checks may flag harmless data (a value containing
``\\n+``); that costs speed for that chunk, never correctness.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import hiredis

INLINE_MAX_SIZE = 64 * 1024
# A partial request past this size leaves hiredis for ExactParser (see RequestParser.gets).
BIG_REQUEST = 1024 * 1024
# ExactParser drops the bytes before a consumed argument of this size at once.
BIG_ARGUMENT = 1024 * 1024
# Redis 7 takes up to INT_MAX arguments (the query buffer limit bounds the bytes); the count
# alone allocates nothing here, the argument list grows as arguments arrive.
MAX_MULTIBULK_LENGTH = 2**31 - 1
# hiredis allocates a whole list for an array header as soon as it reads it (and freeing a list
# of 3e9 slots walks 24 GB: seconds of a frozen server).  So a count of this many digits or
# more never reaches hiredis: ExactParser, which allocates nothing ahead, reads that command.
# One regex search per chunk finds such a line (~0.03 us per pipelined command).
HIREDIS_MAX_COUNT_DIGITS = 6
_HIREDIS_MAX_COUNT = 10**HIREDIS_MAX_COUNT_DIGITS - 1
_BIG_COUNT = re.compile(rb"\*[0-9]{%d}" % (HIREDIS_MAX_COUNT_DIGITS + 1)).search
_COUNT_LINE_SPAN = HIREDIS_MAX_COUNT_DIGITS + 2
# Redis 7.0.15's limits for a client that has yet to AUTH (when a password is required):
# enough for AUTH/HELLO, not enough to make the server buffer much for a stranger.
UNAUTHENTICATED_MULTIBULK = 10
UNAUTHENTICATED_BULK = 16384


class ProtocolError(Exception):
    """A request that breaks the protocol: answered with ``-ERR Protocol error: ...``, then the
    connection is closed."""


# Element types hiredis returns as strings although Redis refuses them inside a request
# (``+OK`` would otherwise pass as a bulk string); hiredis returns every other type as a
# non-bytes value, which ``RequestParser.gets`` checks for.
_STRING_LIKE_TYPES = b"+(="
# Aggregate types (RESP3 maps, sets, pushes, attributes) Redis refuses in a request; hiredis
# would build them, with a count of the client's choosing, so they go to ExactParser too.
_REFUSED_AFTER_NEWLINE = _STRING_LIKE_TYPES + b"%~>|"

# The partial-command check folds every digit to ``0`` and every RESP type byte Redis refuses
# after ``\n`` to ``!`` with one ``translate``; a few substring searches then decide.
_FOLD = bytearray(range(256))
for _byte in b"0123456789":
    _FOLD[_byte] = 0x30
for _byte in b"+:_,#(%~=|>":
    _FOLD[_byte] = 0x21  # '!' itself is refused too and maps to itself
_FOLD = bytes(_FOLD)
del _byte


@functools.lru_cache(maxsize=8)
def _refused_in_waiting_for(max_bulk_len: int) -> tuple[bytes, ...]:
    """Folded substrings of a command hiredis waits for that Redis refuses at once: a
    multibulk count of 7 digits or more (never hiredis's: see HIREDIS_MAX_COUNT_DIGITS), a
    bulk length with as many
    digits as ``proto-max-bulk-len`` (hiredis would wait for the data), a negative bulk
    length, and a line starting with a type other than ``$``/``*`` (``expected '$'``)."""
    digits = min(len(str(max_bulk_len)), 9)
    return (b"*" + b"0" * 7, b"$" + b"0" * digits, b"$-", b"\n!", b"\n-")


class ExactParser:
    """Redis's request parser in Python: inline and multibulk requests, exact error strings.

    ``proto_max_bulk_len`` bounds one bulk string, as Redis's option of that name does."""

    __slots__ = ("buffer", "pos", "proto_max_bulk_len", "_argv", "_missing", "loose_terminators",
                 "client", "_held")

    def __init__(self, proto_max_bulk_len: int = 512 * 1024 * 1024) -> None:
        self.buffer = bytearray()
        self.pos = 0
        self.proto_max_bulk_len = proto_max_bulk_len
        self._argv: list[bytes] | None = None  # a multibulk being read
        self._missing = 0  # elements still to read for it
        # Bytes of the arguments already read into ``_argv`` (plus a word each for the list):
        # they count against the query buffer limit like unread bytes, or a command of
        # INT_MAX tiny arguments could grow without bound.
        self._held = 0
        # Bulks not followed by CRLF: Redis skips those two bytes unchecked, and so do this
        # parser and hiredis, but what follows may then be read differently by hiredis
        # (``+OK`` as an argument): the fuzz tests compare the two only without these.
        self.loose_terminators = 0
        # The connection's client, when it may have to authenticate: until it has, Redis
        # refuses requests bigger than an AUTH needs (see UNAUTHENTICATED_*).
        self.client: Any = None

    def feed(self, data: bytes) -> None:
        if self.pos > 65536 and self.pos * 2 > len(self.buffer):
            del self.buffer[: self.pos]
            self.pos = 0
        self.buffer += data

    def pending(self) -> int:
        """Bytes received and not yet returned as a command."""
        return len(self.buffer) - self.pos + self._held

    def at_boundary(self) -> bool:
        return self._argv is None and self.pos == len(self.buffer)

    def gets(self) -> list[bytes] | None:
        """The next whole command, or None until more data arrives.  Empty commands (blank
        lines, ``*0``) are skipped, as Redis does.  Raises :class:`ProtocolError`."""
        while True:
            if self._argv is None:
                if self.pos >= len(self.buffer):
                    return None
                if self.buffer[self.pos] == 0x2A:  # '*'
                    argv = self._start_multibulk()
                    if argv is None:
                        return None
                    if argv == []:
                        continue
                    return argv
                else:
                    argv = self._read_inline()
                    if argv is None:
                        return None
                    if not argv:
                        continue
                    return argv
            argv = self._continue_multibulk()
            if argv is None:
                return None
            return argv

    def _read_line(self, too_big: str) -> bytes | None:
        end = self.buffer.find(b"\r\n", self.pos)
        if end < 0:
            if len(self.buffer) - self.pos > INLINE_MAX_SIZE:
                raise ProtocolError(too_big)
            return None
        line = bytes(self.buffer[self.pos : end])
        self.pos = end + 2
        return line

    def _read_inline(self) -> list[bytes] | None:
        end = self.buffer.find(b"\n", self.pos)
        if end < 0:
            if len(self.buffer) - self.pos > INLINE_MAX_SIZE:
                raise ProtocolError("too big inline request")
            return None
        line = bytes(self.buffer[self.pos : end])
        self.pos = end + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        argv = split_args(line)
        if argv is None:
            raise ProtocolError("unbalanced quotes in request")
        return argv

    def _unauthenticated(self) -> bool:
        return self.client is not None and not self.client.authenticated

    def _start_multibulk(self) -> list[bytes] | None:
        start = self.pos
        line = self._read_line("too big mbulk count string")
        if line is None:
            return None
        count = _parse_int(line[1:])
        if count is None or count > MAX_MULTIBULK_LENGTH:
            self.pos = start
            raise ProtocolError("invalid multibulk length")
        if count > UNAUTHENTICATED_MULTIBULK and self._unauthenticated():
            raise ProtocolError("unauthenticated multibulk length")
        if count <= 0:
            return []
        self._argv = []
        self._missing = count
        return self._continue_multibulk()

    def _continue_multibulk(self) -> list[bytes] | None:
        argv = self._argv
        assert argv is not None
        buf = self.buffer
        while self._missing:
            if self._read_plain_bulks(argv):
                break
            start = self.pos
            if start >= len(buf):
                return None
            if buf[start] != 0x24:  # '$'
                # Redis prints the byte with %c, then turns CR and LF into spaces.
                got = " " if buf[start] in (10, 13) else chr(buf[start])
                raise ProtocolError(f"expected '$', got '{got}'")
            line = self._read_line("too big bulk count string")
            if line is None:
                return None
            length = _parse_int(line[1:])
            if length is None or length < 0 or length > self.proto_max_bulk_len:
                raise ProtocolError("invalid bulk length")
            if length > UNAUTHENTICATED_BULK and self._unauthenticated():
                raise ProtocolError("unauthenticated bulk length")
            if len(buf) - self.pos < length + 2:
                self.pos = start
                return None
            argv.append(self._take(self.pos, length))
            self._held += length + _HELD_PER_ARGUMENT
            if buf[self.pos + length : self.pos + length + 2] != b"\r\n":
                self.loose_terminators += 1
            self.pos += length + 2
            self._missing -= 1
            if length >= BIG_ARGUMENT:
                self._compact()
        self._argv = None
        self._held = 0
        return argv


    def _read_plain_bulks(self, argv: list[bytes]) -> bool:
        """The common case at speed (a command of a million arguments comes this way): every
        complete ``$<length>\r\n<bytes>\r\n`` element whose length is written canonically and
        within the limits; True when the command is whole.  Anything else (an incomplete,
        malformed or oversized element) is left to the exact step, which has the errors."""
        buf = self.buffer
        size = len(buf)
        pos, missing, held = self.pos, self._missing, self._held
        limit = self.proto_max_bulk_len
        if self._unauthenticated():
            limit = min(limit, UNAUTHENTICATED_BULK)
        header = _PLAIN_BULK_HEADER
        append = argv.append
        while missing:
            found = header(buf, pos)
            if found is None:
                break
            start = found.end()
            length = int(found[1])
            end = start + length
            if length > limit or end + 2 > size or buf[end] != 13 or buf[end + 1] != 10:
                break
            if length < BIG_ARGUMENT:
                append(bytes(buf[start:end]))
            else:
                append(self._take(start, length))
            held += length + _HELD_PER_ARGUMENT
            pos = end + 2
            missing -= 1
            if length >= BIG_ARGUMENT:
                self.pos = pos
                self._compact()
                buf, pos, size = self.buffer, self.pos, len(self.buffer)
        self.pos, self._missing, self._held = pos, missing, held
        return missing == 0

    def _take(self, start: int, length: int) -> bytes:
        """An argument's bytes, copied once (a bytearray slice would copy twice)."""
        with memoryview(self.buffer) as view:
            return bytes(view[start : start + length])

    def _compact(self) -> None:
        """Drop the consumed bytes now: after a big argument they are as big as it is."""
        del self.buffer[: self.pos]
        self.pos = 0


# A list slot plus a bytes object's header: what one more argument costs beyond its bytes.
_HELD_PER_ARGUMENT = 41
# A bulk length as string2ll accepts it (no sign, no leading zero), at most 18 digits.
_PLAIN_BULK_HEADER = re.compile(rb"\$(0|[1-9][0-9]{0,17})\r\n").match


def _parse_int(text: bytes) -> int | None:
    """Redis's string2ll: optional '-', digits, no spaces or '+', fits in 64 bits."""
    if not text or len(text) > 20:
        return None
    digits = text[1:] if text[:1] == b"-" else text
    if not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0"):
        return None
    value = int(text)
    if not -(2**63) <= value < 2**63:
        return None
    return value


_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = b"0123456789abcdefABCDEF"
_BLANKS = b" \n\r\t\v\f\0"


def split_args(line: bytes) -> list[bytes] | None:
    """Redis's sdssplitargs: words separated by blanks, with "double quotes" (backslash escapes
    and \\xHH) and 'single quotes'.  None for unbalanced quotes or a quote not followed by a
    blank.  A word is plain bytes up to a blank, or up to a quote that then ends the word."""
    if b'"' not in line and b"'" not in line:
        return line.split()  # the common case (inline commands, config lines): one C call
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _BLANKS:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        while i < n and line[i] not in _BLANKS:
            c = line[i]
            if c == 0x22:
                i = _read_double_quoted(line, i + 1, current)
                break
            if c == 0x27:
                i = _read_single_quoted(line, i + 1, current)
                break
            current.append(c)
            i += 1
        if i < 0:
            return None
        args.append(bytes(current))


def _read_double_quoted(line: bytes, i: int, current: bytearray) -> int:
    """The rest of a "double quoted" part from ``line[i]`` on, appended to ``current`` with
    its escapes (\\n \\r \\t \\b \\a, \\xHH, \\ followed by anything else is that byte):
    the index after the closing quote, or -1 when it is missing or not followed by a blank."""
    n = len(line)
    while i < n:
        c = line[i]
        if c == 0x5C and i + 3 < n and line[i + 1] == 0x78 and line[i + 2] in _HEX \
                and line[i + 3] in _HEX:
            current.append(int(line[i + 2:i + 4], 16))
            i += 3
        elif c == 0x5C and i + 1 < n:
            i += 1
            current.append(_ESCAPES.get(line[i], line[i]))
        elif c == 0x22:
            return i + 1 if i + 1 >= n or line[i + 1] in _BLANKS else -1
        else:
            current.append(c)
        i += 1
    return -1


def _read_single_quoted(line: bytes, i: int, current: bytearray) -> int:
    """The rest of a 'single quoted' part from ``line[i]`` on (only \\' is an escape), appended
    to ``current``: the index after the closing quote, or -1 as for double quotes."""
    n = len(line)
    while i < n:
        c = line[i]
        if c == 0x5C and i + 1 < n and line[i + 1] == 0x27:
            i += 1
            current.append(0x27)
        elif c == 0x27:
            return i + 1 if i + 1 >= n or line[i + 1] in _BLANKS else -1
        else:
            current.append(c)
        i += 1
    return -1


class RequestParser:
    """Commands from a byte stream: hiredis when the stream is ordinary, :class:`ExactParser`
    otherwise (see the module docstring).  ``feed`` then ``gets`` until it returns None."""

    __slots__ = ("_reader", "_exact", "_since_boundary", "_returned", "_after_newline",
                 "max_bulk_len", "_fed", "_consumed", "_searched", "_refused_in_waiting", "client")

    def __init__(self, proto_max_bulk_len: int = 512 * 1024 * 1024, client: Any = None) -> None:
        """``client``: the connection's client (with an ``authenticated`` attribute); while
        it is not authenticated, requests go through :class:`ExactParser`, which applies
        Redis's limits for unauthenticated clients."""
        self.client = client
        self._reader = hiredis.Reader()
        self._exact: ExactParser | None = None
        self.max_bulk_len = proto_max_bulk_len
        self._refused_in_waiting = _refused_in_waiting_for(proto_max_bulk_len)
        # Chunks given to hiredis since it was last at a command boundary, and how many
        # commands it returned from them: enough to replay the stream into ExactParser.
        self._since_boundary: list[bytes] = []
        self._returned = 0
        self._after_newline = False  # the last chunk fed ended with \n
        # Bytes fed to hiredis since the boundary, and the bytes of the commands it returned
        # from them.  hiredis's ``has_data()`` is no boundary test: it is False inside an
        # array whose bulks so far were all consumed (``*2\r\n$1\r\na\r\n``).
        self._fed = 0
        self._consumed = 0
        self._searched = 0  # bytes of the partial command already checked for nested arrays

    def set_max_bulk_len(self, proto_max_bulk_len: int) -> None:
        """CONFIG SET proto-max-bulk-len: applies from the next request on, as in Redis."""
        self.max_bulk_len = proto_max_bulk_len
        self._refused_in_waiting = _refused_in_waiting_for(proto_max_bulk_len)
        if self._exact is not None:
            self._exact.proto_max_bulk_len = proto_max_bulk_len

    def pending(self) -> int:
        """Bytes held for a command not yet complete (an upper bound on the hiredis path)."""
        if self._exact is not None:
            return self._exact.pending()
        return self._fed - self._consumed

    def feed(self, data: bytes) -> None:
        if self._exact is not None:
            self._exact.feed(data)
            return
        if not data:
            return
        first = data[:1]
        if ((first != b"*" and (not self._since_boundary
                                or (self._after_newline and first in _REFUSED_AFTER_NEWLINE)))
                # An int operand is a memchr; a bytes one costs ~0.15 us of setup: search
                # for the pair only in a chunk that holds the type byte at all.
                or (0x2B in data and b"\n+" in data) or (0x28 in data and b"\n(" in data)
                or (0x3D in data and b"\n=" in data)
                # hiredis allocates for a set or push header at once, as for an array, and
                # fails on a huge map or attribute header (MemoryError).
                or (0x7E in data and b"\n~" in data) or (0x3E in data and b"\n>" in data)
                or (0x25 in data and b"\n%" in data) or (0x7C in data and b"\n|" in data)
                # A count line may also start in the previous chunk.
                or _BIG_COUNT(data) is not None
                or (self._since_boundary
                    and _BIG_COUNT(self._since_boundary[-1][-_COUNT_LINE_SPAN:]
                                   + data[:_COUNT_LINE_SPAN]) is not None)
                or (self.client is not None and not self.client.authenticated)):
            self._switch_to_exact(data)
            return
        self._after_newline = data[-1] == 0x0A
        self._since_boundary.append(data)
        self._fed += len(data)
        self._reader.feed(data)

    def _switch_to_exact(self, data: bytes) -> None:
        exact = ExactParser(self.max_bulk_len)
        exact.client = self.client
        exact.feed(b"".join(self._since_boundary) + data)
        for _ in range(self._returned):
            exact.gets()
        self._exact = exact
        self._reader = hiredis.Reader()
        self._since_boundary = []
        self._returned = 0
        self._after_newline = False
        self._fed = self._consumed = self._searched = 0

    # One function on purpose: it runs once per command on the hiredis path, so the checks of
    # each argument (a bulk string, within the limits, the request's size) are inline in one
    # loop; a helper call per command or per argument would show in the microbenchmark
    # (bench/resp_micro.py).
    def gets(self) -> list[bytes] | None:
        exact = self._exact
        if exact is not None:
            argv = exact.gets()
            if argv is None and exact.at_boundary():
                self._exact = None
            return argv
        try:
            argv = self._reader.gets()
        except (hiredis.ProtocolError, MemoryError):
            self._switch_to_exact(b"")
            return self.gets()
        if argv is False:
            if self._consumed == self._fed:
                self._since_boundary = []
                self._returned = 0
                self._fed = self._consumed = self._searched = 0
            elif self._fed - self._consumed > BIG_REQUEST or not self._partial_is_ordinary():
                # A big request is read by ExactParser: hiredis's buffer, the chunks kept for
                # a replay and the argument would hold it three times over.
                self._switch_to_exact(b"")
                return self.gets()
            return None
        if type(argv) is not list:
            self._switch_to_exact(b"")
            return self.gets()
        # Every element a bulk string (not a nested array) within the limits, and the
        # request's size in bytes, in one pass: this runs for every command.
        count = len(argv)
        if count < _TABLE_SIZE:
            size = _BULK_OVERHEAD[count] - 2
        elif count <= _HIREDIS_MAX_COUNT:
            size = 3 + len(b"%d" % count)
        else:
            self._switch_to_exact(b"")
            return self.gets()
        for arg in argv:
            if arg.__class__ is not bytes:
                self._switch_to_exact(b"")
                return self.gets()
            length = len(arg)
            if length < _TABLE_SIZE:
                size += length + _BULK_OVERHEAD[length]
            elif length <= self.max_bulk_len:
                size += length + 5 + len(b"%d" % length)
            else:
                self._switch_to_exact(b"")
                return self.gets()
        self._consumed += size
        if not argv:
            return self.gets()
        self._returned += 1
        return argv

    def _partial_is_ordinary(self) -> bool:
        """Whether hiredis, waiting inside a command, waits for what Redis would wait for.

        Redis refuses at once what hiredis would wait on: a request starting with ``$``
        (inline for Redis, a bulk reply for hiredis), an array nested in a request
        (``expected '$', got '*'``), another type byte starting a line, a count or bulk
        length past its limit (hiredis would wait for the data).  The command's first byte
        must be ``*`` and none of the others may follow inside it (a bulk holding such bytes
        costs a detour through ExactParser).  Each byte is searched once, plus a small
        overlap (``_searched``), so a large bulk arriving in many pieces costs linear time."""
        consumed = self._consumed
        start = max(consumed, self._searched - 12)  # patterns span up to 11 bytes
        pieces = []
        offset = 0
        for chunk in self._since_boundary:
            end = offset + len(chunk)
            if end > start:
                pieces.append(chunk[start - offset:] if start > offset else chunk)
            offset = end
        region = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if start == consumed and region[:1] != b"*":
            return False
        if region.find(b"\n*", 1) >= 0:
            return False
        folded = region.translate(_FOLD)
        for needle in self._refused_in_waiting:
            if needle in folded:
                return False
        self._searched = self._fed
        return True


_TABLE_SIZE = 10000
# ``$<length>\r\n`` + ``\r\n`` around a bulk of each small length: 5 + its digits.
_BULK_OVERHEAD = tuple(5 + len(str(length)) for length in range(_TABLE_SIZE))
