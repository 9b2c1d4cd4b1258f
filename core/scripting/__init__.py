"""Lua scripting and functions, as Redis 7.0 runs them (issue #14).

- :mod:`.sandbox`: the Lua code that builds the read-only environment scripts run in.
- :mod:`.runtime`: the script cache, running a script and its effects, busy scripts.
- :mod:`.interpreter`: a lupa runtime with the sandbox built in it.
- :mod:`.redis_api`: redis.call, redis.pcall and the other redis.* functions (the call bridge).
- :mod:`.convert`: command replies to Lua values (and Redis's error-table rules).
- :mod:`.libs`: bit, cjson, cmsgpack and struct, which lupa's Lua does not bundle, one module
  each (:mod:`.lib_bit`, :mod:`.lib_cjson`, :mod:`.lib_cmsgpack`, :mod:`.lib_struct`);
  :mod:`.luaraise`: how a Python function a script called fails.
- :mod:`.commands`: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT.
- :mod:`.functions`: FUNCTION and FCALL, libraries registered by ``#!lua name=...`` code.
"""

from .runtime import Scripting, of

__all__ = ["Scripting", "of"]
