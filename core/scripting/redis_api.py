"""The redis.* API a script calls (the call bridge): redis.call and redis.pcall run a command
on the script's own client, checked as Redis checks a command from a script (arity,
``noscript``, ACL, read-only scripts, refused writes, OOM, BLOCK), and the small functions
(sha1hex, log, set_repl, setresp, acl_check_cmd), with Redis's error texts.

A mixin of :class:`trioredis.scripting.runtime.Scripting`, which holds the state these read:
``engine``, ``client`` (the script's client), ``run`` (the script running now) and ``state``
(the interpreter it runs in).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .. import errors
from ..resp import ErrorReply
from .convert import number_arg
from .libs import LuaRaise

if TYPE_CHECKING:
    from ..client import Client
    from ..engine import Engine
    from .interpreter import LuaState
    from .runtime import Run

REPL_NONE, REPL_AOF, REPL_REPLICA, REPL_ALL = 0, 1, 2, 3
LOG_LEVELS = ("debug", "verbose", "notice", "warning")

# Commands Redis 7.0.15 flags ``noscript`` (COMMAND INFO); for the containers, every
# subcommand but HELP is (and CLUSTER only RESET).
NOSCRIPT = frozenset({
    b"auth", b"bgrewriteaof", b"bgsave", b"blmove", b"blpop", b"brpop", b"brpoplpush",
    b"bzpopmax", b"bzpopmin", b"debug", b"discard", b"eval",
    b"eval_ro", b"evalsha", b"evalsha_ro", b"exec", b"failover", b"fcall", b"fcall_ro",
    b"hello", b"monitor", b"multi", b"psubscribe", b"psync", b"punsubscribe", b"quit",
    b"replconf", b"replicaof", b"reset", b"role", b"save", b"shutdown", b"slaveof",
    b"ssubscribe", b"subscribe", b"sunsubscribe", b"sync", b"unsubscribe", b"unwatch",
    b"wait", b"waitaof", b"watch",
})
NOSCRIPT_CONTAINERS = frozenset({
    b"acl", b"client", b"config", b"latency", b"module", b"function", b"script",
})
BLOCK_OPTION = frozenset({b"xread", b"xreadgroup"})

ACL_DENIED = {
    "key": "The user executing the script can't access at least one of the keys mentioned "
           "in the command",
    "channel": "The user executing the script can't publish to the channel mentioned in the "
               "command",
    "command": "The user executing the script can't run this command or subcommand",
}


class RedisApi:
    """redis.call, redis.pcall and the other redis.* functions (see the module docstring)."""

    engine: Engine
    client: Client
    run: Run | None
    state: LuaState

    # --- redis.call ----------------------------------------------------------------------

    def _call(self, *args: Any) -> Any:
        failed, value = self._command(args)
        if failed:
            raise LuaRaise(value)
        return value

    def _pcall(self, *args: Any) -> Any:
        return self._command(args)[1]

    def _command(self, args: tuple[Any, ...]) -> tuple[bool, Any]:
        """redis.call / redis.pcall: (failed, reply as a Lua value)."""
        run = self.run
        to_lua = self.state.to_lua
        if run is None:
            return True, to_lua.error_table(b"-ERR redis.call() can only be used from a script")
        if not args:
            return True, to_lua.error_table(
                b"-ERR Please specify at least one argument for this redis lib call")
        argv = []
        for arg in args:
            kind = arg.__class__
            if kind is bytes:
                argv.append(arg)
            elif kind is int or kind is float:
                argv.append(number_arg(arg))
            else:
                return True, to_lua.error_table(
                    b"-ERR Lua redis lib command arguments must be strings or integers")
        # From here on, errors are marked as counted already (as Redis marks them).
        engine = self.engine
        entry = engine._dispatch.get(argv[0]) or engine._lookup(argv[0])
        if entry is None:
            return True, to_lua.reply_error_table(b"-ERR Unknown Redis command called from script")
        spec, name, is_write = entry
        arity = spec.arity
        if (arity > 0 and len(argv) != arity) or len(argv) < -arity:
            return True, to_lua.reply_error_table(
                b"-ERR Wrong number of args calling Redis command from script")
        if name in NOSCRIPT or (name in NOSCRIPT_CONTAINERS and argv[1].lower() != b"help"):
            return True, to_lua.reply_error_table(b"-ERR This Redis command is not allowed from script")
        client = self.client
        if client.user in engine.acl.restricted:
            denied = engine.acl.check(client.user, spec, argv)
            if denied is not None:
                kind = "key" if "key" in denied else "channel" if "channel" in denied else "command"
                return True, to_lua.reply_error_table(b"-ERR " + ACL_DENIED[kind].encode())
        if is_write:
            if run.readonly:
                return True, to_lua.reply_error_table(
                    b"-ERR Write commands are not allowed from read-only scripts.")
            refusal = engine.refuse_writes()
            if refusal is not None:
                return True, to_lua.reply_error_table(b"-" + refusal.encode())
        if (engine.config.maxmemory and not run.allow_oom and not run.wrote
                and "denyoom" in spec.flags and engine.used_memory() > engine.config.maxmemory):
            return True, to_lua.reply_error_table(b"-" + errors.OOM.encode())
        if name in BLOCK_OPTION and any(arg.lower() == b"block" for arg in argv[1:]):
            return True, to_lua.reply_error_table(
                b"-ERR %b command is not allowed with BLOCK option from scripts" % argv[0])
        if is_write:
            run.wrote = True
        before = engine.dirty
        reply = engine.execute(client, spec, argv)
        run.dirty += engine.dirty - before
        if reply.__class__ is ErrorReply:
            return True, to_lua.reply_error_table(b"-" + bytes(reply))
        return False, to_lua.reply(reply, client.resp3)

    def _error_table(self, text: bytes) -> LuaRaise:
        return LuaRaise(self.state.to_lua.error_table(text))

    def _setresp(self, *args: Any) -> None:
        if len(args) != 1:
            raise self._error_table(b"-ERR redis.setresp() requires one argument.")
        if args[0] not in (2, 3) or isinstance(args[0], bool):
            raise self._error_table(b"-ERR RESP version must be 2 or 3.")
        self.client.resp3 = args[0] == 3
        self.state.api.set_script_resp3(self.client.resp3)

    def _sha1hex(self, *args: Any) -> Any:
        if len(args) != 1:
            raise self._error_table(b"-ERR wrong number of arguments")
        value = args[0]
        data = value if isinstance(value, bytes) else number_arg(value) if isinstance(
            value, (int, float)) else b""
        return hashlib.sha1(data).hexdigest().encode()

    def _log(self, *args: Any) -> Any:
        if len(args) < 2:
            raise self._error_table(b"-ERR redis.log() requires two arguments or more.")
        level = args[0]
        if not isinstance(level, (int, float)) or isinstance(level, bool):
            raise self._error_table(
                b"-ERR First argument must be a number (log level).")
        if level not in (0, 1, 2, 3):
            raise self._error_table(b"-ERR Invalid debug level.")
        parts = []
        for arg in args[1:]:
            if isinstance(arg, bytes):
                parts.append(arg)
            elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
                parts.append(b"%.14g" % arg)
        message = b" ".join(parts).decode("utf-8", "replace")
        log = self.engine.log
        getattr(log, LOG_LEVELS[int(level)])(message)

    def _set_repl(self, *args: Any) -> Any:
        if len(args) != 1:
            raise self._error_table(b"-ERR redis.set_repl() requires two arguments.")
        flags = args[0]
        if not isinstance(flags, (int, float)) or flags not in (0, 1, 2, 3):
            raise self._error_table(
                b"-ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or "
                b"REPL_NONE.")
        if self.run is not None:
            self.run.repl = int(flags)

    def _acl_check_cmd(self, *args: Any) -> Any:
        if not args:
            raise self._error_table(
                b"-ERR Please specify at least one argument for this redis lib call")
        argv = []
        for arg in args:
            if isinstance(arg, bytes):
                argv.append(arg)
            elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
                argv.append(number_arg(arg))
            else:
                raise self._error_table(
                    b"-ERR Lua redis lib command arguments must be strings or integers")
        engine = self.engine
        entry = engine._lookup(argv[0])
        if entry is None:
            raise self._error_table(
                b"-ERR Invalid command passed to redis.acl_check_cmd()")
        spec = entry[0]
        user = self.client.user
        if user not in engine.acl.restricted:
            return True
        return engine.acl.check(user, spec, argv) is None
