"""How a Python function a script called fails: :class:`LuaRaise`, the Lua error it stands for."""

from __future__ import annotations


class LuaRaise(Exception):
    """Raised by a Python function a script called: ``value`` is the Lua error (an error
    table, or with ``positioned`` a message the error handler prefixes with the script
    position, as ``luaL_error`` does)."""

    def __init__(self, value: object, positioned: bool = False) -> None:
        super().__init__(value)
        self.value = value
        self.positioned = positioned


def fail(message: str) -> LuaRaise:
    """A Lua error with the script position in front, as ``luaL_error`` makes it."""
    return LuaRaise(message.encode(), positioned=True)
