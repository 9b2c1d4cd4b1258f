"""``bit`` (LuaBitOp): 32-bit operations on Lua numbers, with LuaBitOp's normalisation and
error texts."""

from __future__ import annotations

import math
from typing import Any

from .luaraise import fail

_M32 = 0xFFFFFFFF


def _to_signed(value: int) -> int:
    value &= _M32
    return value - (1 << 32) if value & 0x80000000 else value


def _tobit(value: float) -> int:
    """LuaBitOp's normalisation: the number modulo 2^32 (rounded to nearest), signed."""
    if isinstance(value, int):
        return _to_signed(value)
    if math.isnan(value) or math.isinf(value):
        return 0
    # LuaBitOp adds 2^52+2^51 and reads the low word: round half to even, then wrap.
    return _to_signed(round(value))


def _bit_function(name: str, fn: Any, arity: int | None) -> Any:
    def checked(*args: Any) -> Any:
        count = len(args) if arity is None else arity
        if arity is None and not args:
            raise fail(f"bad argument #1 to '{name}' (number expected, got no value)")
        values = []
        for index in range(count):
            value = args[index] if index < len(args) else None
            if isinstance(value, bytes):
                try:
                    value = float(value.strip()) if b"x" not in value.lower() else int(value, 16)
                except ValueError:
                    value = None
                    kind = "string"
                else:
                    kind = ""
            else:
                kind = "no value" if value is None else "number"
            if value is None or isinstance(value, bool):
                kind = "boolean" if isinstance(value, bool) else kind or "no value"
                raise fail(f"bad argument #{index + 1} to '{name}' (number expected, got {kind})")
            values.append(_tobit(value))
        return fn(*values)

    return checked


BIT = {
    "tobit": (lambda x: x, 1),
    "bnot": (lambda x: _to_signed(~x), 1),
    "band": (lambda *xs: _to_signed(_reduce(lambda a, b: a & b, xs)), None),
    "bor": (lambda *xs: _to_signed(_reduce(lambda a, b: a | b, xs)), None),
    "bxor": (lambda *xs: _to_signed(_reduce(lambda a, b: a ^ b, xs)), None),
    "lshift": (lambda x, n: _to_signed(x << (n & 31)), 2),
    "rshift": (lambda x, n: _to_signed((x & _M32) >> (n & 31)), 2),
    "arshift": (lambda x, n: _to_signed(x >> (n & 31)), 2),
    "rol": (lambda x, n: _to_signed(((x & _M32) << (n & 31)) | ((x & _M32) >> (32 - (n & 31)))), 2),
    "ror": (lambda x, n: _to_signed(((x & _M32) >> (n & 31)) | ((x & _M32) << (32 - (n & 31)))), 2),
    "bswap": (lambda x: _to_signed(int.from_bytes((x & _M32).to_bytes(4, "little"), "big")), 1),
}


def _reduce(fn: Any, values: tuple[int, ...]) -> int:
    result = values[0]
    for value in values[1:]:
        result = fn(result, value)
    return result


def _bit_tohex(*args: Any) -> bytes:
    if not args or not isinstance(args[0], (int, float)) or isinstance(args[0], bool):
        got = "no value" if not args else "string" if isinstance(args[0], bytes) else "boolean"
        raise fail(f"bad argument #1 to 'tohex' (number expected, got {got})")
    digits = 8
    if len(args) > 1 and args[1] is not None:
        digits = _tobit(args[1])
    value = _tobit(args[0])
    upper = digits < 0
    count = min(abs(digits), 8)
    text = "%08x" % (value & _M32)
    text = text[8 - count:] if count else ""
    return (text.upper() if upper else text).encode()


def bit_library() -> dict[bytes, Any]:
    """The ``bit`` table's functions."""
    functions = {name.encode(): _bit_function(name, fn, arity) for name, (fn, arity) in BIT.items()}
    functions[b"tohex"] = _bit_tohex
    return functions
