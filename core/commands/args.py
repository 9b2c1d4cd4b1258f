"""Argument parsing shared by every command group, with Redis's error strings."""

from __future__ import annotations

import math
import re
from decimal import Decimal, localcontext

from ..errors import INCR_NAN_OR_INF, NOT_FLOAT, NOT_INTEGER, CommandError

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


TIMEOUT_NOT_FLOAT = "ERR timeout is not a float or out of range"
TIMEOUT_NOT_INTEGER = "ERR timeout is not an integer or out of range"
TIMEOUT_NEGATIVE = "ERR timeout is negative"

# What C's strtold accepts (Redis's string2ld then refuses leading spaces, anything left over,
# NaN, and a result that overflows or underflows to zero): decimal and hexadecimal floats,
# inf and infinity.  Python's float() would also take "1_000" and surrounding spaces.
_STRTOLD = re.compile(
    rb"[+-]?(?:(?P<dec>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    rb"|0[xX](?P<hex>(?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+))(?:[pP](?P<exp>[+-]?\d+))?"
    rb"|(?P<inf>[iI][nN][fF](?:[iI][nN][iI][tT][yY])?))\Z")
# x86-64's long double (what strtold returns): its largest finite value, and half its smallest
# subnormal (anything smaller in magnitude rounds to zero, which string2ld refuses).
_LDBL_MAX = Decimal("1.18973149535723176502e4932")
_LDBL_ZERO_BELOW = Decimal("1.82259976594123730126e-4951")


def _long_double(raw: bytes) -> Decimal | None:
    """The exact value Redis's ``string2ld`` reads (infinity as ``Decimal("inf")``), or None
    where it refuses the text."""
    if not raw or len(raw) >= MAX_LONG_DOUBLE_CHARS:
        return None
    parsed = _STRTOLD.match(raw)
    if parsed is None:
        return None
    negative = raw[:1] == b"-"
    if parsed["inf"]:
        return Decimal("-inf") if negative else Decimal("inf")
    if parsed["dec"]:
        value = Decimal(parsed["dec"].decode())
    else:
        digits = parsed["hex"].decode()
        whole, _, fraction = digits.partition(".")
        exponent = int(parsed["exp"] or 0) - 4 * len(fraction)
        mantissa = int(whole + fraction or "0", 16)
        if mantissa == 0:
            value = Decimal(0)
        elif exponent + mantissa.bit_length() > 16400:  # far past the long double range
            return None
        elif exponent + mantissa.bit_length() < -16500:  # rounds to zero
            return None
        else:
            with localcontext() as context:
                context.prec = 6000
                value = Decimal(mantissa) * (Decimal(2) ** exponent)
    if value > _LDBL_MAX or (value and value < _LDBL_ZERO_BELOW):
        return None
    return -value if negative else value


def parse_timeout(raw: bytes, unit_seconds: bool = True) -> float:
    """A blocking command's timeout as Redis 7.0.15's ``getTimeoutFromObjectOrReply`` reads
    it, in seconds from now; 0 means forever.

    ``unit_seconds`` (BLPOP, BZPOPMIN...): a long double in seconds (``0x1p-3``, ``1e-400``
    and ``inf`` parse, spaces and NaN do not), turned into milliseconds rounded up, so any
    positive amount waits at least 1 ms and ``-0.001`` means forever.  Redis then casts to a
    signed 64-bit integer: ``inf`` and anything past 2**63 ms become negative, hence "timeout
    is negative" for ``1e308``.  Otherwise (WAIT, XREAD BLOCK): a 64-bit integer of ms."""
    if not unit_seconds:
        milliseconds = parse_int(raw, TIMEOUT_NOT_INTEGER)
        if milliseconds < 0:
            raise CommandError(TIMEOUT_NEGATIVE)
        return milliseconds / 1000
    value = _long_double(raw)
    if value is None:
        raise CommandError(TIMEOUT_NOT_FLOAT)
    if value.is_infinite() or abs(value) >= _MS_OVERFLOW:
        raise CommandError(TIMEOUT_NEGATIVE)
    if abs(value) < _SUB_MILLISECOND:  # ceil() of a product strictly inside (-1, 1)
        return 0.001 if value > 0 else 0.0
    # long double arithmetic: the text rounded to 64 significant bits, times 1000 rounded
    # again, then ceil (so "-0.001", just below -1 ms once rounded, means forever).
    product = _round_long_double(_round_long_double(Fraction(value)) * 1000)  # defined below
    milliseconds = math.ceil(product)
    if milliseconds < 0 or milliseconds > INT64_MAX:
        raise CommandError(TIMEOUT_NEGATIVE)
    return milliseconds / 1000


# Past this many seconds the milliseconds no longer fit a signed 64-bit integer.
_MS_OVERFLOW = Decimal(INT64_MAX + 1) / 1000
# Below this many seconds (in magnitude) the milliseconds are strictly between -1 and 1.
_SUB_MILLISECOND = Decimal("0.0009")


def lower(raw: bytes) -> bytes:
    return raw.lower()


# --- long double arithmetic (INCRBYFLOAT, HINCRBYFLOAT) ------------------------------------
#
# Redis adds with C ``long double`` (x87 80-bit: a 64-bit mantissa) and prints the sum with
# ``%.17Lf`` then trims trailing zeros, so 1000 + 0.1 reads back as 1000.09999999999999998
# and 1e-20 as 0.  Python's float would print other digits; exact fractions rounded to a
# 64-bit mantissa after every step give Redis's digits.

from fractions import Fraction  # noqa: E402

MAX_LONG_DOUBLE_CHARS = 5 * 1024
_LD_MANTISSA_BITS = 64
_LD_MAX_EXPONENT = 16384  # values at or above 2**16384 are infinite


def _round_long_double(value: Fraction) -> Fraction | None:
    """``value`` rounded to the nearest long double (ties to even); None when it overflows."""
    if value == 0:
        return value
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:
        exponent -= 1
    if exponent >= _LD_MAX_EXPONENT:
        return None
    shift = _LD_MANTISSA_BITS - 1 - max(exponent, -16382)
    scaled = magnitude * (Fraction(2) ** shift)
    mantissa = round(scaled)  # Fraction rounds half to even
    result = Fraction(mantissa) / (Fraction(2) ** shift)
    if result >= Fraction(2) ** _LD_MAX_EXPONENT:
        return None
    return sign * result


def parse_long_double(raw: bytes, error: str = NOT_FLOAT) -> Fraction | None:
    """A number as Redis's ``getLongDoubleFromObject`` reads it (``strtold``): the exact
    value of the nearest long double, or None for an infinity.  No spaces, no NaN."""
    if not raw or len(raw) > MAX_LONG_DOUBLE_CHARS or raw[:1].isspace() or b"_" in raw:
        raise CommandError(error)
    text = raw.decode("ascii", "replace").lower()
    if text.lstrip("+-") in ("inf", "infinity"):
        return None
    if "nan" in text or text[-1:].isspace():
        raise CommandError(error)
    try:
        if text.lstrip("+-").startswith("0x"):
            exact = Fraction(float.fromhex(text))
        else:
            # Fraction("1e999999999") would build a billion-digit integer: a nonzero number
            # that far outside the long double range (overflow, or underflow to zero) is
            # refused by strtold anyway, so refuse it before doing that work.
            magnitude = Decimal(text)
            if magnitude and not -4960 < magnitude.adjusted() < 4940:
                raise CommandError(error)
            exact = Fraction(text) if magnitude else Fraction(0)
    except (ValueError, ZeroDivisionError, OverflowError, ArithmeticError):
        raise CommandError(error) from None
    if "/" in text:
        raise CommandError(error)
    rounded = _round_long_double(exact)
    if rounded is None:  # strtold overflow: ERANGE with HUGE_VAL
        raise CommandError(error)
    return rounded


def format_long_double(value: Fraction) -> bytes:
    """``%.17Lf`` with trailing zeros (and a trailing dot) removed; ``-0`` becomes ``0``."""
    scaled = round(value * 10**17)
    negative = scaled < 0
    digits = str(abs(scaled)).rjust(18, "0")
    text = (digits[:-17] + "." + digits[-17:]).rstrip("0").rstrip(".")
    if negative and text != "0":
        text = "-" + text
    return text.encode()


def incr_long_double(current: bytes | None, increment: bytes) -> bytes:
    """INCRBYFLOAT's new value as Redis stores it, with Redis's errors."""
    base = parse_long_double(current) if current is not None else Fraction(0)
    step = parse_long_double(increment)
    if base is None or step is None:
        raise CommandError(INCR_NAN_OR_INF)
    total = _round_long_double(base + step)
    if total is None:
        raise CommandError(INCR_NAN_OR_INF)
    return format_long_double(total)


INT_RANGE = "ERR value is out of range, value must between -2147483648 and 2147483647"


def parse_c_int(raw: bytes) -> int:
    """An argument Redis reads with ``getIntFromObjectOrReply`` (a C int: database
    indexes): not a number is NOT_INTEGER, a number past 32 bits has its own message."""
    value = parse_int(raw)
    if not -(2**31) <= value < 2**31:
        raise CommandError(INT_RANGE)
    return value


def help_reply(lines: list[bytes]) -> list:
    """A ``<COMMAND> HELP`` reply: Redis sends each line as a status reply."""
    from ..resp import Status

    return [Status(line) for line in lines]
