"""``struct`` (lua-struct 0.2): binary pack/unpack/size with lua-struct's format language."""

from __future__ import annotations

import struct
from typing import Any

from .luaraise import fail

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


def _to_int(value: Any) -> int:
    if isinstance(value, bytes):
        value = float(value)
    return int(value)


def _pack(fmt: Any = None, *args: Any) -> bytes:
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
            number = _to_int(value) & ((1 << (8 * size)) - 1)
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


def _unpack(fmt: Any = None, data: Any = None, start: Any = 1) -> Any:
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


def _size(fmt: Any = None) -> int:
    if not isinstance(fmt, bytes):
        raise fail("bad argument #1 to 'size' (string expected, got no value)")
    parser = _Format(fmt, "size")
    total = 0
    for option, width in parser.options():
        if option == "s" or (option == "c" and width == 0):
            raise fail("bad argument #1 to 'size' (options 'c0' - 's' have undefined sizes)")
        total += parser.padding(total, width) + width
    return total


def struct_library(lua: Any) -> dict[bytes, Any]:
    """The ``struct`` table's functions (the same for every interpreter)."""
    return {b"pack": _pack, b"unpack": _unpack, b"size": _size}
