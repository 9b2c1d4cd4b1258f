"""The libraries Redis links into its Lua that lupa's Lua lacks: ``bit`` (LuaBitOp),
``cjson`` (lua-cjson 2.1), ``cmsgpack`` and ``struct``, with their behaviour and error texts.

A function that fails raises :class:`LuaRaise`: the script sees the error at the line that
called it (``user_script:1: bad argument #1 to 'band' (number expected, got string)``).
One module per library: :mod:`.lib_bit`, :mod:`.lib_cjson`, :mod:`.lib_cmsgpack`,
:mod:`.lib_struct`; this one hands them to the sandbox.
"""

from __future__ import annotations

from typing import Any

from .lib_bit import bit_library
from .lib_cjson import cjson_library
from .lib_cmsgpack import cmsgpack_library
from .lib_struct import struct_library
from .luaraise import LuaRaise, fail

__all__ = ["LuaRaise", "fail", "libraries"]


def libraries(lua: Any) -> Any:
    """The library tables handed to the sandbox (Python functions are wrapped there)."""
    return lua.table_from({
        b"bit": lua.table_from(bit_library()),
        b"cjson": lua.table_from(cjson_library(lua)),
        b"cmsgpack": lua.table_from(cmsgpack_library(lua)),
        b"struct": lua.table_from(struct_library(lua)),
    })
