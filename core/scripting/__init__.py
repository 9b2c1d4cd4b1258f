"""Lua scripting and functions, as Redis 7.0 runs them (issue #14).

- :mod:`.sandbox`: the Lua code that builds the read-only environment scripts run in.
- :mod:`.runtime`: the interpreter, the script cache, running a script and its effects.
- :mod:`.convert`: command replies to Lua values (and Redis's error-table rules).
- :mod:`.libs`: bit, cjson, cmsgpack and struct, which lupa's Lua does not bundle.
- :mod:`.commands`: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT.
- :mod:`.functions`: FUNCTION and FCALL, libraries registered by ``#!lua name=...`` code.
"""

from .runtime import Scripting, of

__all__ = ["Scripting", "of"]
