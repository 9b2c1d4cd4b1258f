"""``cmsgpack`` (lua-cmsgpack 0.4): MessagePack pack/unpack of Lua values."""

from __future__ import annotations

import math
import struct
from typing import Any

from lupa import lua51

from .luaraise import fail

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


def cmsgpack_library(lua: Any) -> dict[bytes, Any]:
    """The ``cmsgpack`` table's functions for interpreter ``lua``."""
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
