"""The libraries Redis links into its Lua that lupa's Lua lacks: ``bit`` (LuaBitOp),
``cjson`` (lua-cjson 2.1), ``cmsgpack`` and ``struct``, with their behaviour and error texts.

A function that fails raises :class:`LuaRaise`: the script sees the error at the line that
called it (``user_script:1: bad argument #1 to 'band' (number expected, got string)``).
JSON encoding is Lua code (``CJSON_LUA``), since it walks Lua tables in Lua's own order and
must tell ``cjson.null`` apart; decoding is Python's ``json`` building Lua tables.
"""

from __future__ import annotations

import json
import math
from typing import Any

_M32 = 0xFFFFFFFF


class LuaRaise(Exception):
    """Raised by a Python function a script called: ``value`` is the Lua error (an error
    table, or with ``positioned`` a message the error handler prefixes with the script
    position, as ``luaL_error`` does)."""

    def __init__(self, value: object, positioned: bool = False) -> None:
        super().__init__(value)
        self.value = value
        self.positioned = positioned


def fail(message: str) -> LuaRaise:
    return LuaRaise(message.encode(), positioned=True)


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


# --- cjson ---------------------------------------------------------------------------------

CJSON_LUA = r"""
local null = ...
local rawtype, rawnext, format, concat, byte, gsub, floor, rawerror =
  type, next, string.format, table.concat, string.byte, string.gsub, math.floor, error
local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['/'] = '\\/', ['\b'] = '\\b', ['\f'] = '\\f',
                 ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'}
local function escape_char(c)
  return escapes[c] or format('\\u%04x', byte(c))
end
local function encode_string(s)
  return '"' .. gsub(s, '[%c"\\/]', escape_char) .. '"'
end
local function encode_number(n)
  if n ~= n or n == 1/0 or n == -1/0 then
    rawerror('Cannot serialise number: must not be NaN or Inf', 0)
  end
  return format('%.14g', n)
end
local encode_value
local function encode_table(t, depth, out)
  if depth > 1000 then rawerror('Cannot serialise, excessive nesting (' .. depth .. ')', 0) end
  -- An array: only positive integer keys, not too sparse (lua-cjson's defaults: ratio 2,
  -- always safe up to index 10).
  local max, items, is_array = 0, 0, true
  for k in rawnext, t do
    if rawtype(k) == 'number' and k > 0 and floor(k) == k then
      if k > max then max = k end
      items = items + 1
    else
      is_array = false
      break
    end
  end
  if is_array and max > 10 and max > items * 2 then
    rawerror('Cannot serialise table: excessively sparse array', 0)
  end
  if is_array and max > 0 then
    out[#out + 1] = '['
    for i = 1, max do
      if i > 1 then out[#out + 1] = ',' end
      encode_value(t[i], depth + 1, out)
    end
    out[#out + 1] = ']'
    return
  end
  out[#out + 1] = '{'
  local first = true
  for k, v in rawnext, t do
    local kt = rawtype(k)
    if kt == 'string' then
      k = encode_string(k)
    elseif kt == 'number' then
      k = '"' .. encode_number(k) .. '"'
    else
      rawerror('Cannot serialise ' .. kt .. ': table key must be a number or string', 0)
    end
    if not first then out[#out + 1] = ',' end
    first = false
    out[#out + 1] = k .. ':'
    encode_value(v, depth + 1, out)
  end
  out[#out + 1] = '}'
end
encode_value = function(v, depth, out)
  local t = rawtype(v)
  if t == 'string' then out[#out + 1] = encode_string(v)
  elseif t == 'number' then out[#out + 1] = encode_number(v)
  elseif t == 'boolean' then out[#out + 1] = v and 'true' or 'false'
  elseif t == 'nil' or v == null then out[#out + 1] = 'null'
  elseif t == 'table' then encode_table(v, depth, out)
  else rawerror('Cannot serialise ' .. t .. ': type not supported', 0) end
end
local function encode(...)
  if select('#', ...) ~= 1 then return false, "bad argument #1 to 'encode' (expected 1 argument)" end
  local out = {}
  local ok, e = pcall(encode_value, (...), 0, out)
  if not ok then return false, e end
  return true, concat(out)
end
return encode
"""


class _Decoder:
    """cjson.decode: JSON text -> Lua values (``null`` -> cjson.null)."""

    def __init__(self, lua: Any, null: Any) -> None:
        self.lua = lua
        self.null = null

    def __call__(self, *args: Any) -> Any:
        if len(args) != 1:
            raise fail("bad argument #1 to 'decode' (expected 1 argument)")
        text = args[0]
        if not isinstance(text, bytes):
            kind = "number" if isinstance(text, (int, float)) else "boolean" if isinstance(text, bool) else "table"
            if isinstance(text, (int, float)) and not isinstance(text, bool):
                text = b"%.14g" % text
            else:
                raise fail(f"bad argument #1 to 'decode' (string expected, got {kind})")
        try:
            value = json.loads(text.decode("utf-8", "surrogatepass"), parse_constant=_constant)
        except (ValueError, RecursionError) as error:
            position = getattr(error, "pos", 0) + 1
            raise fail(f"Expected value but found invalid token at character {position}") from None
        try:
            return self._lua(value, 0)
        except RecursionError:
            raise fail("Found too many nested data structures (1001)") from None

    def _lua(self, value: Any, depth: int) -> Any:
        if depth > 1000:
            raise RecursionError
        if value is None:
            return self.null
        if isinstance(value, str):
            return value.encode("utf-8", "surrogatepass")
        if isinstance(value, bool) or isinstance(value, (int, float)):
            return value
        table = self.lua.table()
        if isinstance(value, list):
            for index, item in enumerate(value, 1):
                table[index] = self._lua(item, depth + 1)
        else:
            for key, item in value.items():
                table[key.encode("utf-8", "surrogatepass")] = self._lua(item, depth + 1)
        return table


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def libraries(lua: Any) -> Any:
    """The library tables handed to the sandbox (Python functions are wrapped there)."""
    bit = {name.encode(): _bit_function(name, fn, arity) for name, (fn, arity) in BIT.items()}
    bit[b"tohex"] = _bit_tohex
    null = lua.eval("newproxy(false)")
    encode_lua = lua.eval("loadstring")(CJSON_LUA.encode(), b"=[trioredis]")(null)

    def encode(*args: Any) -> bytes:
        ok, result = encode_lua(*args)
        if not ok:
            raise LuaRaise(result, positioned=True)
        return result

    cjson = {
        b"null": null, b"encode": encode, b"decode": _Decoder(lua, null),
        b"encode_keep_buffer": _constant_function(True),
        b"encode_max_depth": _constant_function(1000),
        b"decode_max_depth": _constant_function(1000),
        b"encode_number_precision": _constant_function(14),
        b"encode_invalid_numbers": _constant_function(False),
        b"decode_invalid_numbers": _constant_function(True),
    }
    return lua.table_from({
        b"bit": lua.table_from(bit),
        b"cjson": lua.table_from(cjson),
    })


def _constant_function(value: Any) -> Any:
    def setting(*args: Any) -> Any:
        return value

    return setting
