"""Argument parsing shared by every command group, with Redis's error strings."""

from __future__ import annotations

import math

from ..errors import NOT_FLOAT, NOT_INTEGER, SYNTAX, CommandError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def parse_int(raw: bytes, error: str = NOT_INTEGER) -> int:
    """A signed 64-bit integer as Redis's string2ll reads it (no spaces, no '+')."""
    if raw.__class__ is bytes and raw.isdigit() and len(raw) < 19 and (raw[0] != 48 or len(raw) == 1):
        return int(raw)  # the common case: a short non-negative number
    if not raw or len(raw) > 20:
        raise CommandError(error)
    digits = raw[1:] if raw[:1] == b"-" else raw
    if not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0") or digits == b"":
        raise CommandError(error)
    if raw == b"-0":
        raise CommandError(error)
    value = int(raw)
    if not INT64_MIN <= value <= INT64_MAX:
        raise CommandError(error)
    return value


def parse_float(raw: bytes, error: str = NOT_FLOAT, allow_nan: bool = False) -> float:
    """A double as Redis's strtold-based parsing reads it: no spaces, ``inf``/``-inf`` ok."""
    if not raw or raw[:1].isspace() or raw[-1:].isspace():
        raise CommandError(error)
    try:
        value = float(raw)
    except ValueError:
        raise CommandError(error) from None
    if math.isnan(value) and not allow_nan:
        raise CommandError(error)
    if b"_" in raw:  # Python accepts 1_000; strtold does not
        raise CommandError(error)
    return value


def parse_timeout(raw: bytes) -> float:
    """A blocking command's timeout in seconds (may be fractional; 0 means forever)."""
    try:
        value = float(raw)
    except ValueError:
        raise CommandError("ERR timeout is not a float or out of range") from None
    if math.isnan(value) or math.isinf(value):
        raise CommandError("ERR timeout is not a float or out of range")
    if value < 0:
        raise CommandError("ERR timeout is negative")
    return value


def lower(raw: bytes) -> bytes:
    return raw.lower()


def expect_no_more(argv: list[bytes], index: int) -> None:
    if index < len(argv):
        raise CommandError(SYNTAX)


def format_float(value: float) -> bytes:
    """INCRBYFLOAT/HINCRBYFLOAT output: Redis's %.17Lg, then trailing zeros trimmed: the
    shortest text that reads back as the same double."""
    if value == math.inf:
        return b"inf"
    if value == -math.inf:
        return b"-inf"
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(value, ".17f").rstrip("0").rstrip(".")
    elif text.endswith(".0"):
        text = text[:-2]
    if text == "-0":
        text = "0"
    return text.encode()
