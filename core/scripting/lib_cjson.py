"""``cjson`` (lua-cjson 2.1).  Encoding is Lua code (``CJSON_LUA``), since it walks Lua tables
in Lua's own order and must tell ``cjson.null`` apart; decoding is Python building Lua tables,
with lua-cjson's tokenizer and error texts."""

from __future__ import annotations

import re
from typing import Any

from .luaraise import LuaRaise, fail

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

    # Over 60 lines on purpose: one loop over the tokens with an explicit stack (no Python
    # recursion, so a deep document costs no stack), whose state (what is expected next, the
    # open containers) every branch reads; split into functions it would be passed around.
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


def cjson_library(lua: Any) -> dict[bytes, Any]:
    """The ``cjson`` table's members for interpreter ``lua`` (its own ``cjson.null``)."""
    null = lua.eval("newproxy(false)")
    encode_lua = lua.eval("loadstring")(CJSON_LUA.encode(), b"=[trioredis]")(null)

    def encode(*args: Any) -> bytes:
        ok, result = encode_lua(*args)
        if not ok:
            raise LuaRaise(result, positioned=True)
        return result

    return {
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


def _constant_function(value: Any) -> Any:
    def setting(*args: Any) -> Any:
        return value

    return setting
