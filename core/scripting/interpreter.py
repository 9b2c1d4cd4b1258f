"""The Lua interpreter a script runs in: lupa's runtime with Python attribute access denied,
the sandbox built in it (:mod:`.sandbox`), and what the sandbox gets from Python (the
libraries, math.random's generator, the redis.* functions of :mod:`.redis_api`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from lupa import lua51

from . import sandbox
from .convert import ToLua
from .libs import LuaRaise, libraries
from .redis_api import REPL_ALL, REPL_AOF, REPL_NONE, REPL_REPLICA

REDIS_VERSION = b"7.0.15"
REDIS_VERSION_NUM = 0x07000F


@dataclass(slots=True)
class LuaState:
    """One Lua interpreter: lupa's runtime, the sandbox's API (``sandbox.BOOTSTRAP``), and
    the converter that builds Lua values in it."""

    lua: Any
    api: Any
    to_lua: ToLua
    run: Any = None  # api.run and api.run_function, looked up once (each lookup is a Lua call)
    run_function: Any = None

    def __post_init__(self) -> None:
        self.run = self.api.run
        self.run_function = self.api.run_function


class Rand48:
    """Redis's ``redisLrand48``: the POSIX rand48 generator, which ``math.random`` uses
    (seeded at random when the interpreter is made: Redis 7.0 does not reseed per script)."""

    def __init__(self) -> None:
        self.seed(int.from_bytes(os.urandom(4), "little", signed=True))

    def seed(self, value: int) -> None:
        self.state = ((value & 0xFFFFFFFF) << 16 | 0x330E) & 0xFFFFFFFFFFFF

    def random(self) -> float:
        self.state = (0x5DEECE66D * self.state + 0xB) & 0xFFFFFFFFFFFF
        value = self.state >> 17
        return (value % 2147483647) / 2147483647

    def lua_random(self, *args: Any) -> float:
        """math.random([m [, n]]) with Lua 5.1's checks and messages."""
        if len(args) > 2:
            raise LuaRaise(b"wrong number of arguments", positioned=True)
        bounds = [_checkint(value, index + 1, "random") for index, value in enumerate(args)]
        r = self.random()
        if not bounds:
            return r
        if len(bounds) == 1:
            if bounds[0] < 1:
                raise LuaRaise(b"bad argument #1 to 'random' (interval is empty)", positioned=True)
            return math.floor(r * bounds[0]) + 1
        low, high = bounds
        if low > high:
            raise LuaRaise(b"bad argument #2 to 'random' (interval is empty)", positioned=True)
        return math.floor(r * (high - low + 1)) + low

    def lua_randomseed(self, *args: Any) -> None:
        self.seed(_checkint(args[0] if args else None, 1, "randomseed"))


def _checkint(value: Any, index: int, name: str) -> int:
    """luaL_checkint: a number, or a string that reads as one, truncated to an int."""
    if isinstance(value, bytes):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        kind = ("no value" if value is None else "string" if isinstance(value, bytes)
                else "boolean" if isinstance(value, bool) else "table")
        raise LuaRaise(f"bad argument #{index} to '{name}' (number expected, got {kind})".encode(),
                       positioned=True)
    if math.isnan(value) or math.isinf(value):
        return -(2**31)
    return int(value)


def _deny_attributes(obj: Any, name: Any, is_setting: bool) -> Any:
    raise AttributeError("access to Python attributes is not allowed from scripts")


def _take_error(error: Any) -> tuple[Any, bool] | None:
    """The error handler's question about a Python exception a script got: the Lua error
    it stands for, and whether it needs the script position."""
    if isinstance(error, LuaRaise):
        return error.value, error.positioned
    return None


def make_state(owner: Any, functions: bool) -> LuaState:
    """A new Lua interpreter with the sandbox built in it (``sandbox.BOOTSTRAP``) and the
    Python side the sandbox calls: ``owner`` (the Scripting) answers redis.call and the
    other redis.* functions, the count hook and register_function; ``functions`` builds the
    state function libraries run in."""
    lua = lua51.LuaRuntime(
        encoding=None, register_eval=False, register_builtins=False,
        unpack_returned_tuples=True, attribute_filter=_deny_attributes,
    )
    to_lua = ToLua(lua)
    random = Rand48()
    py = lua.table_from({
        b"internal": sandbox.INTERNAL.encode(),
        b"hook_count": sandbox.HOOK_COUNT,
        b"hook": owner._hook,
        b"call": owner._call,
        b"pcall": owner._pcall,
        b"take_error": _take_error,
        b"error_table": to_lua.error_table,
        b"random": random.lua_random,
        b"randomseed": random.lua_randomseed,
        b"functions_mode": functions,
        b"register_function": owner._register_function,
        b"functions": lua.table_from({
            b"sha1hex": owner._sha1hex,
            b"log": owner._log,
            b"set_repl": owner._set_repl,
            b"setresp": owner._setresp,
            b"acl_check_cmd": owner._acl_check_cmd,
        }),
        b"constants": lua.table_from({
            b"REDIS_VERSION": REDIS_VERSION, b"REDIS_VERSION_NUM": REDIS_VERSION_NUM,
            b"LOG_DEBUG": 0, b"LOG_VERBOSE": 1, b"LOG_NOTICE": 2, b"LOG_WARNING": 3,
            b"REPL_NONE": REPL_NONE, b"REPL_AOF": REPL_AOF, b"REPL_SLAVE": REPL_REPLICA,
            b"REPL_REPLICA": REPL_REPLICA, b"REPL_ALL": REPL_ALL,
        }),
        b"libraries": libraries(lua),
    })
    load = lua.eval("loadstring")
    bootstrap = load(sandbox.BOOTSTRAP.encode(), sandbox.INTERNAL.encode())
    return LuaState(lua, bootstrap(py), to_lua)
