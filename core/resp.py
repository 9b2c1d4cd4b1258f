"""RESP, sans I/O: the reply types and the reply encoder, and (re-exported from
:mod:`trioredis.resp_parser`, where they live) the request parser and its limits.

The parser and the encoders are the hottest code in the server; they are two modules because
they are two jobs (bytes in, bytes out) that share nothing but the protocol's name.  Every
name stays importable from here, as plugins and tests import them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .resp_parser import (
    BIG_ARGUMENT,
    BIG_REQUEST,
    HIREDIS_MAX_COUNT_DIGITS,
    INLINE_MAX_SIZE,
    MAX_MULTIBULK_LENGTH,
    UNAUTHENTICATED_BULK,
    UNAUTHENTICATED_MULTIBULK,
    ExactParser,
    ProtocolError,
    RequestParser,
    split_args,
)

__all__ = [
    "ARRAY_HEADERS", "BIG_ARGUMENT", "BIG_REQUEST", "BULK_HEADERS", "CRLF", "EMPTY_ARRAY",
    "HIREDIS_MAX_COUNT_DIGITS", "INLINE_MAX_SIZE", "MAX_MULTIBULK_LENGTH", "NULL_ARRAY", "OK",
    "PONG", "QUEUED", "UNAUTHENTICATED_BULK", "UNAUTHENTICATED_MULTIBULK", "ErrorReply",
    "ExactParser", "Map", "NullArray", "ProtocolError", "Push", "Raw", "RequestParser",
    "SetReply", "Status", "Verbatim", "append_command", "encode", "encode_command",
    "format_double", "split_args",
]


# --- replies -------------------------------------------------------------------------------


class Status(bytes):
    """A simple-string reply: ``+OK``."""

    __slots__ = ()


class ErrorReply(bytes):
    """An error reply kept as a value (inside an EXEC array); the text includes its prefix,
    e.g. ``b'ERR syntax error'``."""

    __slots__ = ()


class Raw(bytes):
    """Bytes that are already RESP, emitted as they are."""

    __slots__ = ()


class Map(dict):
    """A RESP3 map; a flat array of key, value, ... under RESP2."""

    __slots__ = ()


class SetReply(list):
    """A RESP3 set; an array under RESP2."""

    __slots__ = ()


class Push(list):
    """A RESP3 push (pub/sub messages); an array under RESP2."""

    __slots__ = ()


class Verbatim(bytes):
    """A RESP3 verbatim string (``=``, format ``txt``); a bulk string under RESP2."""

    __slots__ = ()


class NullArray:
    """The null array: ``*-1`` under RESP2 (BLPOP timeout, EXEC aborted), ``_`` under RESP3."""

    __slots__ = ()


NULL_ARRAY = NullArray()
OK = Raw(b"+OK\r\n")
QUEUED = Raw(b"+QUEUED\r\n")
PONG = Raw(b"+PONG\r\n")
EMPTY_ARRAY = Raw(b"*0\r\n")


def format_double(value: float) -> bytes:
    """A double as Redis 7.0 prints it in a reply: ``inf``, ``-inf``, else ``%.17g`` (an
    integer below 1e17 without a fraction, ``-0`` for negative zero, 17 significant digits
    otherwise: ``1.1000000000000001``, ``1e+20``)."""
    if value == float("inf"):
        return b"inf"
    if value == float("-inf"):
        return b"-inf"
    if value.is_integer() and abs(value) < 1e17 and value:
        return b"%d" % value
    return b"%.17g" % value


def encode(value: object, resp3: bool = False) -> bytes:
    """One reply as RESP bytes."""
    t = type(value)
    if t is bytes:
        return b"$%d\r\n%b\r\n" % (len(value), value)  # type: ignore[arg-type]
    if t is Raw:
        return value  # type: ignore[return-value]
    if t is int:
        return b":%d\r\n" % value  # type: ignore[str-format]
    if value is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"
    if t is list or t is tuple:
        if len(value) > _ENCODE_CHUNK:  # type: ignore[arg-type]
            return _encode_long_array(value, resp3)  # type: ignore[arg-type]
        return b"*%d\r\n%b" % (len(value), b"".join([encode(v, resp3) for v in value]))  # type: ignore[arg-type]
    if t is Status:
        return b"+%b\r\n" % value  # type: ignore[str-format]
    if t is ErrorReply:
        return b"-%b\r\n" % value  # type: ignore[str-format]
    if t is bool:
        if resp3:
            return b"#t\r\n" if value else b"#f\r\n"
        return b":1\r\n" if value else b":0\r\n"
    if t is float:
        if resp3:
            return b",%b\r\n" % format_double(value)  # type: ignore[arg-type]
        text = format_double(value)  # type: ignore[arg-type]
        return b"$%d\r\n%b\r\n" % (len(text), text)
    if t is Map or t is dict:
        items = value.items()  # type: ignore[attr-defined]
        body = b"".join([encode(k, resp3) + encode(v, resp3) for k, v in items])
        if resp3:
            return b"%%%d\r\n%b" % (len(value), body)  # type: ignore[arg-type]
        return b"*%d\r\n%b" % (2 * len(value), body)  # type: ignore[arg-type]
    if t is SetReply:
        body = b"".join([encode(v, resp3) for v in value])  # type: ignore[attr-defined]
        return b"%b%d\r\n%b" % (b"~" if resp3 else b"*", len(value), body)  # type: ignore[arg-type]
    if t is Push:
        body = b"".join([encode(v, resp3) for v in value])  # type: ignore[attr-defined]
        return b"%b%d\r\n%b" % (b">" if resp3 else b"*", len(value), body)  # type: ignore[arg-type]
    if t is Verbatim:
        if resp3:
            return b"=%d\r\ntxt:%b\r\n" % (len(value) + 4, value)  # type: ignore[arg-type]
        return b"$%d\r\n%b\r\n" % (len(value), value)  # type: ignore[arg-type]
    if t is NullArray:
        return b"_\r\n" if resp3 else b"*-1\r\n"
    if t is str:
        raw = value.encode()  # type: ignore[attr-defined]
        return b"$%d\r\n%b\r\n" % (len(raw), raw)
    if isinstance(value, bytes):
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    raise TypeError(f"cannot encode reply of type {t.__name__}")


# A long array is encoded a slice at a time: the encoded pieces of one slice exist at once,
# not one small bytes object per element of the whole reply (SRANDMEMBER s -20000000 built
# 20 M of them: gigabytes for a reply of 300 MB).
_ENCODE_CHUNK = 4096


def _encode_long_array(items: list | tuple, resp3: bool) -> bytes:
    parts = [b"*%d\r\n" % len(items)]
    for start in range(0, len(items), _ENCODE_CHUNK):
        parts.append(b"".join([encode(v, resp3) for v in items[start : start + _ENCODE_CHUNK]]))
    return b"".join(parts)


# --- commands as RESP (the AOF, its rewrite, replication) -----------------------------------
#
# THE ONE ENCODER OF COMMANDS.  A command is an array of bulk strings: ``*<argc>\r\n`` then
# ``$<len>\r\n<arg>\r\n`` per argument.  Three entry points give the same bytes:
# - ``encode_command(argv)``, the general form;
# - ``append_command(target, argv)``, the per-write fast path: the AOF feed appends every
#   propagated effect straight into its bytearray, with no bytes object per argument;
# - ``ARRAY_HEADERS``/``BULK_HEADERS``/``CRLF``, the pieces a batch encoder joins in list
#   comprehensions (``trioredis.rewrite.encode_builtin``, the AOF rewrite's fast path).
# The headers of small counts and lengths are made once: formatting ``$%d`` is most of the cost
# of encoding a short argument.


class _Headers(dict[int, bytes]):
    """``<prefix><n>\r\n`` by n: the precomputed ones for small n, formatted on demand (not
    kept) beyond, so a client cannot grow the table."""

    __slots__ = ("_prefix",)

    def __init__(self, prefix: bytes, small: list[bytes]) -> None:
        super().__init__(enumerate(small))
        self._prefix = prefix

    def __missing__(self, n: int) -> bytes:
        return b"%b%d\r\n" % (self._prefix, n)


CRLF = b"\r\n"
# Most commands have few arguments, and keys and most values are short.
_SMALL_COUNTS = 64
_SMALL_SIZES = 1024
_ARRAY_SMALL = [b"*%d\r\n" % n for n in range(_SMALL_COUNTS)]
_BULK_SMALL = [b"$%d\r\n" % n for n in range(_SMALL_SIZES)]
# The same headers for any n, for comprehensions that cannot afford a bounds check per item.
ARRAY_HEADERS = _Headers(b"*", _ARRAY_SMALL)
BULK_HEADERS = _Headers(b"$", _BULK_SMALL)


def append_command(target: bytearray, argv: Sequence[bytes]) -> None:
    """Append ``argv`` as RESP to ``target``: the fast path of :func:`encode_command`, for a
    caller that keeps a buffer (the AOF feed runs this for every write)."""
    # Indexing a list after a bounds check measured faster here than a dict subclass lookup
    # (~10% of a short SET's encoding), and a long argument's header is formatted inline, not
    # through __missing__, a Python call.
    count = len(argv)
    target += _ARRAY_SMALL[count] if count < _SMALL_COUNTS else b"*%d\r\n" % count
    for arg in argv:
        size = len(arg)
        target += _BULK_SMALL[size] if size < _SMALL_SIZES else b"$%d\r\n" % size
        target += arg
        target += b"\r\n"


def encode_command(argv: Iterable[bytes]) -> bytes:
    """A command as a RESP array of bulk strings (what the AOF and replication write)."""
    bulk = BULK_HEADERS
    parts = [b"%b%b\r\n" % (bulk[len(a)], a) for a in argv]
    return ARRAY_HEADERS[len(parts)] + b"".join(parts)


# --- requests ------------------------------------------------------------------------------
