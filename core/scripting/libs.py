"""The libraries Redis links into its Lua that lupa's Lua lacks: ``bit`` (LuaBitOp),
``cjson`` (lua-cjson 2.1), ``cmsgpack`` and ``struct``, with their behaviour and error texts.

A function that fails raises :class:`LuaRaise`: the script sees the error at the line that
called it (``user_script:1: bad argument #1 to 'band' (number expected, got string)``).
JSON encoding is Lua code (``CJSON_LUA``), since it walks Lua tables in Lua's own order and
must tell ``cjson.null`` apart; decoding is Python's ``json`` building Lua tables.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

from lupa import lua51

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
local rawtype, rawnext, rawget, format, concat, byte, gsub, floor, rawerror =
  type, next, rawget, string.format, table.concat, string.byte, string.gsub, math.floor, error
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
      encode_value(rawget(t, i), depth + 1, out)
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


# lua-cjson's token names, as its parse errors print them.
_T_NAMES = {"{": "T_OBJ_BEGIN", "}": "T_OBJ_END", "[": "T_ARR_BEGIN", "]": "T_ARR_END",
            ",": "T_COMMA", ":": "T_COLON"}
_NUMBER = re.compile(
    rb"[-+]?(?:inf(?:inity)?|nan|0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[-+]?[0-9]+)?"
    rb"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[-+]?[0-9]+)?)", re.IGNORECASE)
_ESCAPES = {ord("b"): b"\b", ord("f"): b"\f", ord("n"): b"\n", ord("r"): b"\r",
            ord("t"): b"\t", ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/"}
MAX_DECODE_DEPTH = 1000


class _JSONError(Exception):
    pass


class _Decoder:
    """cjson.decode as lua-cjson 2.1 does it: its tokenizer, its strtod numbers (hex, inf,
    nan accepted), ``null`` -> cjson.null, and its error messages (``Expected colon but found
    T_NUMBER at character 6``).  Iterative, so nesting costs no Python recursion."""

    def __init__(self, lua: Any, null: Any) -> None:
        self.lua = lua
        self.null = null

    def __call__(self, *args: Any) -> Any:
        if len(args) != 1:
            raise fail("bad argument #1 to 'decode' (expected 1 argument)")
        text = args[0]
        if not isinstance(text, bytes):
            if isinstance(text, (int, float)) and not isinstance(text, bool):
                text = b"%.14g" % text
            else:
                kind = "boolean" if isinstance(text, bool) else "nil" if text is None else "table"
                raise fail(f"bad argument #1 to 'decode' (string expected, got {kind})")
        try:
            return self.decode(text)
        except _JSONError as error:
            raise fail(str(error)) from None

    def token(self, data: bytes, pos: int) -> tuple[str, Any, int, int]:
        """(kind, value, start, next position); kind is a T_ name, or "error" with the
        message as value."""
        size = len(data)
        while pos < size and data[pos] in b" \t\n\r":
            pos += 1
        if pos >= size:
            return "T_END", None, pos, pos
        char = chr(data[pos])
        if char in _T_NAMES:
            return _T_NAMES[char], None, pos, pos + 1
        if char == '"':
            return self.string(data, pos)
        if data.startswith(b"true", pos):
            return "T_BOOLEAN", True, pos, pos + 4
        if data.startswith(b"false", pos):
            return "T_BOOLEAN", False, pos, pos + 5
        if data.startswith(b"null", pos):
            return "T_NULL", self.null, pos, pos + 4
        if char in "-0123456789iInN":
            match = _NUMBER.match(data, pos)
            if match is None:
                return "error", "invalid number", pos, pos
            text = match.group().lower()
            try:
                if "x" in text.decode():
                    sign = -1.0 if text.startswith(b"-") else 1.0
                    value = sign * float.fromhex(text.lstrip(b"+-").decode())
                else:
                    value = float(text)
            except ValueError:
                return "error", "invalid number", pos, pos
            return "T_NUMBER", value, pos, match.end()
        return "error", "invalid token", pos, pos

    def string(self, data: bytes, start: int) -> tuple[str, Any, int, int]:
        out = bytearray()
        pos = start + 1
        size = len(data)
        while True:
            end = data.find(b'"', pos)
            backslash = data.find(b"\\", pos)
            if end < 0 and (backslash < 0):
                return "error", "unexpected end of string", size, size
            if backslash < 0 or (0 <= end < backslash):
                out += data[pos:end]
                return "T_STRING", bytes(out), start, end + 1
            out += data[pos:backslash]
            if backslash + 1 >= size:
                return "error", "unexpected end of string", size, size
            code = data[backslash + 1]
            if code == ord("u"):
                decoded = self.unicode(data, backslash)
                if decoded is None:
                    return "error", "invalid unicode escape code", backslash, backslash
                chunk, pos = decoded
                out += chunk
                continue
            escaped = _ESCAPES.get(code)
            if escaped is None:
                return "error", "invalid escape code", backslash, backslash
            out += escaped
            pos = backslash + 2

    @staticmethod
    def unicode(data: bytes, pos: int) -> tuple[bytes, int] | None:
        def hex4(at: int) -> int | None:
            digits = data[at : at + 4]
            if len(digits) != 4 or not all(c in b"0123456789abcdefABCDEF" for c in digits):
                return None
            return int(digits, 16)

        first = hex4(pos + 2)
        if first is None:
            return None
        end = pos + 6
        if 0xD800 <= first <= 0xDBFF:
            if data[end : end + 2] != b"\\u":
                return None
            second = hex4(end + 2)
            if second is None or not 0xDC00 <= second <= 0xDFFF:
                return None
            first = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            end += 6
        elif 0xDC00 <= first <= 0xDFFF:
            return None
        return chr(first).encode("utf-8", "surrogatepass"), end

    def decode(self, data: bytes) -> Any:
        # Containers being filled: [table, is_object, pending key, next array index].
        stack: list[list[Any]] = []
        kind, value, start, pos = self.token(data, 0)
        expect = "value"
        result: Any = None
        while True:
            if kind == "error":
                wanted = "value" if expect == "array value" else expect
                raise _JSONError(f"Expected {wanted} but found {value} at character {start + 1}")
            # A value starts here (or an object/array closes right away).
            top = stack[-1] if stack else None
            if expect == "object key string":
                if kind == "T_OBJ_END" and top is not None and top[3] == 0:
                    value = self._close(stack)
                elif kind != "T_STRING":
                    raise _JSONError(f"Expected object key string but found {kind} at character {start + 1}")
                else:
                    top[2] = value
                    kind, value, start, pos = self.token(data, pos)
                    if kind != "T_COLON":
                        found = value if kind == "error" else kind
                        raise _JSONError(f"Expected colon but found {found} at character {start + 1}")
                    kind, value, start, pos = self.token(data, pos)
                    expect = "value"
                    continue
            elif kind == "T_ARR_END" and expect == "array value" and top is not None and top[3] == 1:
                value = self._close(stack)
            elif kind in ("T_OBJ_BEGIN", "T_ARR_BEGIN"):
                if len(stack) + 1 > MAX_DECODE_DEPTH:
                    raise _JSONError(f"Found too many nested data structures ({len(stack) + 1}) "
                                     f"at character {pos}")
                is_object = kind == "T_OBJ_BEGIN"
                stack.append([self.lua.table(), is_object, None, 0 if is_object else 1])
                kind, value, start, pos = self.token(data, pos)
                expect = "object key string" if is_object else "array value"
                continue
            elif kind in ("T_STRING", "T_NUMBER", "T_BOOLEAN", "T_NULL"):
                pass
            else:
                raise _JSONError(f"Expected value but found {kind} at character {start + 1}")
            # ``value`` is complete: store it, then see what follows.
            while True:
                if not stack:
                    result = value
                    kind, _value, start, pos = self.token(data, pos)
                    if kind != "T_END":
                        found = _value if kind == "error" else kind
                        raise _JSONError(f"Expected the end but found {found} at character {start + 1}")
                    return result
                top = stack[-1]
                table, is_object = top[0], top[1]
                if is_object:
                    table[top[2]] = value
                    top[3] = 1
                else:
                    table[top[3]] = value
                    top[3] += 1
                kind, value, start, pos = self.token(data, pos)
                closing = "T_OBJ_END" if is_object else "T_ARR_END"
                if kind == closing:
                    value = self._close(stack)
                    continue
                if kind != "T_COMMA":
                    found = value if kind == "error" else kind
                    what = "comma or object end" if is_object else "comma or array end"
                    raise _JSONError(f"Expected {what} but found {found} at character {start + 1}")
                kind, value, start, pos = self.token(data, pos)
                expect = "object key string" if is_object else "value"
                break

    @staticmethod
    def _close(stack: list[list[Any]]) -> Any:
        return stack.pop()[0]


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
        b"encode_sparse_array": _constant_function((False, 2, 10)),
        b"new": _constant_function(None),
        b"_NAME": b"cjson", b"_VERSION": b"2.1.0",
    }
    return lua.table_from({
        b"bit": lua.table_from(bit),
        b"cjson": lua.table_from(cjson),
        b"cmsgpack": lua.table_from(_cmsgpack(lua)),
        b"struct": lua.table_from(_struct(lua)),
    })


def _constant_function(value: Any) -> Any:
    def setting(*args: Any) -> Any:
        return value

    return setting


# --- cmsgpack (lua-cmsgpack 0.4) ------------------------------------------------------------

MSGPACK_MAX_NESTING = 16  # deeper tables pack as nil, as lua-cmsgpack does


def _pack_value(value: Any, out: bytearray, depth: int) -> None:
    kind = lua51.lua_type(value)
    if value is None:
        out.append(0xC0)
    elif value is True or value is False:
        out.append(0xC3 if value else 0xC2)
    elif isinstance(value, bytes):
        size = len(value)
        if size < 32:
            out.append(0xA0 | size)
        elif size <= 0xFF:
            out += b"\xd9" + bytes([size])
        elif size <= 0xFFFF:
            out += b"\xda" + size.to_bytes(2, "big")
        else:
            out += b"\xdb" + size.to_bytes(4, "big")
        out += value
    elif isinstance(value, (int, float)):
        _pack_number(value, out)
    elif kind == "table":
        if depth >= MSGPACK_MAX_NESTING:
            out.append(0xC0)
            return
        items = list(value.items())
        count = len(items)
        is_array = all(isinstance(k, (int, float)) and not isinstance(k, bool) and k > 0
                       and k == int(k) for k, _ in items) and (
            not items or max(int(k) for k, _ in items) == count)
        if is_array:
            _pack_header(out, count, 0x90, 0xDC, 0xDD)
            for index in range(1, count + 1):
                _pack_value(value[index], out, depth + 1)
        else:
            _pack_header(out, count, 0x80, 0xDE, 0xDF)
            for key, item in items:
                _pack_value(key, out, depth + 1)
                _pack_value(item, out, depth + 1)
    else:
        out.append(0xC0)  # functions, userdata...: nil


def _pack_header(out: bytearray, count: int, fix: int, code16: int, code32: int) -> None:
    if count < 16:
        out.append(fix | count)
    elif count <= 0xFFFF:
        out += bytes([code16]) + count.to_bytes(2, "big")
    else:
        out += bytes([code32]) + count.to_bytes(4, "big")


def _pack_number(value: float, out: bytearray) -> None:
    if isinstance(value, float) and not value.is_integer() or isinstance(value, float) and (
            math.isinf(value) or math.isnan(value)) or not -(2**63) <= value < 2**64:
        value = float(value)
        try:
            single = struct.unpack(">f", struct.pack(">f", value))[0]
        except OverflowError:
            single = None
        if single == value or (math.isnan(value) and single is not None):
            out += b"\xca" + struct.pack(">f", value)
        else:
            out += b"\xcb" + struct.pack(">d", value)
        return
    number = int(value)
    if number >= 0:
        if number < 128:
            out.append(number)
        elif number <= 0xFF:
            out += b"\xcc" + bytes([number])
        elif number <= 0xFFFF:
            out += b"\xcd" + number.to_bytes(2, "big")
        elif number <= 0xFFFFFFFF:
            out += b"\xce" + number.to_bytes(4, "big")
        else:
            out += b"\xcf" + number.to_bytes(8, "big")
    elif number >= -32:
        out.append(number & 0xFF)
    elif number >= -128:
        out += b"\xd0" + number.to_bytes(1, "big", signed=True)
    elif number >= -32768:
        out += b"\xd1" + number.to_bytes(2, "big", signed=True)
    elif number >= -(2**31):
        out += b"\xd2" + number.to_bytes(4, "big", signed=True)
    else:
        out += b"\xd3" + number.to_bytes(8, "big", signed=True)


class _MissingBytes(Exception):
    pass


class _BadFormat(Exception):
    pass


class _Unpacker:
    def __init__(self, lua: Any, data: bytes, pos: int = 0) -> None:
        self.lua = lua
        self.data = data
        self.pos = pos

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise _MissingBytes
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def value(self) -> Any:
        code = self.take(1)[0]
        if code < 0x80:
            return code
        if code >= 0xE0:
            return code - 256
        if 0xA0 <= code <= 0xBF:
            return self.take(code & 0x1F)
        if 0x90 <= code <= 0x9F:
            return self.array(code & 0x0F)
        if 0x80 <= code <= 0x8F:
            return self.map(code & 0x0F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if code in simple:
            return simple[code]
        sizes = {0xCC: (1, False), 0xCD: (2, False), 0xCE: (4, False), 0xCF: (8, False),
                 0xD0: (1, True), 0xD1: (2, True), 0xD2: (4, True), 0xD3: (8, True)}
        if code in sizes:
            size, signed = sizes[code]
            number = int.from_bytes(self.take(size), "big", signed=signed)
            return number if abs(number) < 2**53 else float(number)
        if code == 0xCA:
            return struct.unpack(">f", self.take(4))[0]
        if code == 0xCB:
            return struct.unpack(">d", self.take(8))[0]
        lengths = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4}
        if code in lengths:
            return self.take(int.from_bytes(self.take(lengths[code]), "big"))
        if code in (0xDC, 0xDD):
            return self.array(int.from_bytes(self.take(2 if code == 0xDC else 4), "big"))
        if code in (0xDE, 0xDF):
            return self.map(int.from_bytes(self.take(2 if code == 0xDE else 4), "big"))
        raise _BadFormat

    def array(self, count: int) -> Any:
        table = self.lua.table()
        for index in range(1, count + 1):
            table[index] = self.value()
        return table

    def map(self, count: int) -> Any:
        table = self.lua.table()
        for _ in range(count):
            key = self.value()
            item = self.value()
            if key is not None:
                table[key] = item
        return table


def _cmsgpack(lua: Any) -> dict[bytes, Any]:
    def pack(*args: Any) -> bytes:
        if not args:
            raise fail("bad argument #0 to 'pack' (MessagePack pack needs input.)")
        out = bytearray()
        for value in args:
            _pack_value(value, out, 0)
        return bytes(out)

    def unpack_values(data: Any, limit: int, offset: int) -> tuple[Any, ...]:
        if not isinstance(data, bytes):
            raise fail("bad argument #1 to 'unpack' (string expected)")
        unpacker = _Unpacker(lua, data, max(0, offset))
        values = []
        try:
            while unpacker.pos < len(data) and (limit <= 0 or len(values) < limit):
                values.append(unpacker.value())
        except RecursionError:
            raise fail("Bad data format in input.") from None
        except _MissingBytes:
            raise fail("Missing bytes in input.") from None
        except _BadFormat:
            raise fail("Bad data format in input.") from None
        return tuple(values), unpacker.pos

    def unpack(*args: Any) -> Any:
        values, _ = unpack_values(args[0] if args else None, 0, 0)
        return values if len(values) != 1 else values[0]

    def unpack_one(data: Any = None, offset: Any = 0) -> Any:
        values, pos = unpack_values(data, 1, int(offset or 0))
        return (pos if pos < len(data) else -1, *values)

    def unpack_limit(data: Any = None, limit: Any = 0, offset: Any = 0) -> Any:
        values, pos = unpack_values(data, int(limit or 0), int(offset or 0))
        return (pos if pos < len(data) else -1, *values)

    return {b"pack": pack, b"unpack": unpack, b"unpack_one": unpack_one,
            b"unpack_limit": unpack_limit, b"_NAME": b"cmsgpack", b"_VERSION": b"lua-cmsgpack 0.4.0",
            b"_COPYRIGHT": b"Copyright (C) 2012, Salvatore Sanfilippo",
            b"_DESCRIPTION": b"MessagePack C implementation for Lua"}


# --- struct (lua-struct 0.2) -----------------------------------------------------------------

_STRUCT_SIZES = {ord("b"): 1, ord("B"): 1, ord("h"): 2, ord("H"): 2, ord("l"): 8, ord("L"): 8,
                 ord("T"): 8, ord("f"): 4, ord("d"): 8}
MAXINTSIZE = 32


class _Format:
    """Walks a lua-struct format string: endianness ``<>!``, alignment, options."""

    def __init__(self, fmt: bytes, function: str) -> None:
        self.fmt = fmt
        self.pos = 0
        self.little = True
        self.align = 1
        self.function = function

    def number(self, default: int) -> int:
        start = self.pos
        while self.pos < len(self.fmt) and 48 <= self.fmt[self.pos] <= 57:
            self.pos += 1
        return int(self.fmt[start : self.pos]) if self.pos > start else default

    def options(self):
        while self.pos < len(self.fmt):
            option = self.fmt[self.pos]
            self.pos += 1
            if option in b" ":
                continue
            if option == ord(">"):
                self.little = False
            elif option == ord("<"):
                self.little = True
            elif option == ord("!"):
                self.align = self.number(8)
            elif option in (ord("i"), ord("I")):
                size = self.number(4)
                if size > MAXINTSIZE:
                    raise fail(f"integral size {size} is larger than limit of {MAXINTSIZE}")
                yield chr(option), size
            elif option == ord("c"):
                yield "c", self.number(1) if self.pos < len(self.fmt) and 48 <= self.fmt[self.pos] <= 57 else 1
            elif option in _STRUCT_SIZES:
                yield chr(option), _STRUCT_SIZES[option]
            elif option in (ord("s"), ord("x")):
                yield chr(option), 1
            else:
                raise fail(f"bad argument #1 to '{self.function}' (invalid format option "
                           f"'{chr(option)}')")

    def padding(self, offset: int, size: int) -> int:
        align = min(size, self.align)
        if align <= 1 or self.fmt[self.pos - 1 : self.pos] in (b"c", b"s"):
            return 0
        return (align - offset % align) % align


def _struct(lua: Any) -> dict[bytes, Any]:
    def to_int(value: Any) -> int:
        if isinstance(value, bytes):
            value = float(value)
        return int(value)

    def pack(fmt: Any = None, *args: Any) -> bytes:
        if not isinstance(fmt, bytes):
            raise fail("bad argument #1 to 'pack' (string expected, got no value)")
        parser = _Format(fmt, "pack")
        out = bytearray()
        index = 0
        for option, size in parser.options():
            out += b"\0" * parser.padding(len(out), size)
            if option == "x":
                out.append(0)
                continue
            if index >= len(args):
                raise fail(f"bad argument #{index + 2} to 'pack' (number expected, got no value)")
            value = args[index]
            index += 1
            order = "little" if parser.little else "big"
            if option in "bBhHlLTiI":
                number = to_int(value) & ((1 << (8 * size)) - 1)
                out += number.to_bytes(size, order)
            elif option in "fd":
                code = ("<" if parser.little else ">") + option
                out += struct.pack(code, float(value))
            elif option == "c":
                text = value if isinstance(value, bytes) else str(value).encode()
                if size == 0:
                    size = len(text)
                if len(text) < size:
                    raise fail(f"bad argument #{index + 1} to 'pack' (string too short)")
                out += text[:size]
            elif option == "s":
                text = value if isinstance(value, bytes) else str(value).encode()
                out += text + b"\0"
        return bytes(out)

    def unpack(fmt: Any = None, data: Any = None, start: Any = 1) -> Any:
        if not isinstance(fmt, bytes):
            raise fail("bad argument #1 to 'unpack' (string expected, got no value)")
        if not isinstance(data, bytes):
            raise fail("bad argument #2 to 'unpack' (string expected, got no value)")
        parser = _Format(fmt, "unpack")
        pos = int(start) - 1
        values: list[Any] = []
        previous: Any = None
        for option, size in parser.options():
            pos += parser.padding(pos, size)
            if option == "x":
                pos += 1
                continue
            if option == "c" and size == 0:
                if not isinstance(previous, (int, float)):
                    raise fail("format 'c0' needs a previous size")
                size = int(previous)
                values.pop()
            if option == "s":
                end = data.find(b"\0", pos)
                if end < 0:
                    raise fail("unfinished string in data")
                values.append(data[pos:end])
                pos = end + 1
                previous = values[-1]
                continue
            if pos + size > len(data) or pos < 0:
                raise fail("bad argument #2 to 'unpack' (data string too short)")
            chunk = data[pos : pos + size]
            pos += size
            order = "little" if parser.little else "big"
            if option in "bhliT" or option == "i":
                value = int.from_bytes(chunk, order, signed=option in "bhli")
            elif option in "BHLI":
                value = int.from_bytes(chunk, order)
            elif option in "fd":
                value = struct.unpack(("<" if parser.little else ">") + option, chunk)[0]
            else:  # c
                value = chunk
            if isinstance(value, int) and not -(2**53) <= value <= 2**53:
                value = float(value)  # a Lua number is a double
            values.append(value)
            previous = value
        values.append(pos + 1)
        return tuple(values)

    def size(fmt: Any = None) -> int:
        if not isinstance(fmt, bytes):
            raise fail("bad argument #1 to 'size' (string expected, got no value)")
        parser = _Format(fmt, "size")
        total = 0
        for option, width in parser.options():
            if option == "s" or (option == "c" and width == 0):
                raise fail("bad argument #1 to 'size' (options 'c0' - 's' have undefined sizes)")
            total += parser.padding(total, width) + width
        return total

    return {b"pack": pack, b"unpack": unpack, b"size": size}
