"""One Lua interpreter per server, and running scripts in it as Redis 7.0 runs them.

The interpreter and its sandbox are built in :mod:`.interpreter`; redis.call and the other
redis.* functions (the call bridge) are :class:`.redis_api.RedisApi`, which Scripting mixes in.

:class:`Scripting` (``engine.scripting``, built with the engine) owns the interpreter (built by
:func:`trioredis.scripting.sandbox.BOOTSTRAP`, rebuilt by SCRIPT FLUSH), the script cache
(sha1 -> compiled function) and the state of the script running now.

A script's commands run on a client of its own (Redis's ``lua_client``: the caller's user,
database and no MULTI), through :meth:`Engine.execute`, so ACL, keyspace notifications,
WATCH, commandstats and MONITOR see them as direct calls.  Their effects are captured (the
engine's ``capture`` list) and propagated when the script ends: alone when there is one,
wrapped in MULTI/EXEC when more, never as EVAL (Redis 7 replicates effects only).

Busy scripts: a Lua count hook calls back every ``HOOK_COUNT`` instructions; once the script
has run longer than ``busy-reply-threshold`` the hook lets the transport serve the other
clients (``server.serve_while_busy``): they get ``-BUSY``, except SCRIPT KILL, FUNCTION KILL,
SHUTDOWN NOSAVE and the commands flagged ``allow-busy``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import errors
from ..client import Client
from ..commands.args import parse_int
from ..errors import CommandError
from ..resp import ErrorReply, Raw
from .convert import number_arg
from .interpreter import LuaState, make_state
from .redis_api import REPL_ALL, REPL_AOF, RedisApi

if TYPE_CHECKING:
    from ..engine import CommandContext, Engine

SHEBANG_FLAGS = {
    b"no-writes": "no_writes", b"allow-oom": "allow_oom", b"allow-stale": "allow_stale",
    b"no-cluster": "no_cluster", b"allow-cross-slot-keys": "allow_cross_slot",
}

BUSY_EVAL = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
BUSY_FUNCTION = (
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
)
NOTBUSY = "NOTBUSY No scripts in execution right now."
UNKILLABLE = (
    "UNKILLABLE Sorry the script already executed write commands against the dataset. You "
    "can either wait the script termination or kill the server in a hard way using the "
    "SHUTDOWN NOSAVE command."
)
KILLED = b"ERR Script killed by user with SCRIPT KILL..."
KILLED_FUNCTION = b"ERR Script killed by user with FUNCTION KILL..."
NOSCRIPT_REPLY = "NOSCRIPT No matching script. Please use EVAL."

@dataclass(slots=True)
class ScriptFlags:
    """Shebang flags (``#!lua flags=...``); ``declared`` is False for a script without a
    shebang (Redis's compatibility mode: may write, checked command by command)."""

    declared: bool = False
    no_writes: bool = False
    allow_oom: bool = False
    allow_stale: bool = False
    no_cluster: bool = False
    allow_cross_slot: bool = False


@dataclass(slots=True)
class Script:
    sha: bytes
    body: bytes
    function: Any
    flags: ScriptFlags


@dataclass(slots=True)
class Run:
    """The script running now."""

    name: bytes  # the sha (EVAL) or the function name (FCALL), for error messages
    caller: Client
    readonly: bool
    is_eval: bool
    allow_oom: bool = False
    started: float = field(default_factory=time.monotonic)
    repl: int = REPL_ALL
    wrote: bool = False
    killed: bytes | None = None
    shutting_down: bool = False  # SHUTDOWN NOSAVE stopped it: its effects are not propagated
    busy: bool = False
    dirty: int = 0
    command: list[bytes] = field(default_factory=list)  # FCALL's argv, for FUNCTION STATS


def parse_shebang(body: bytes) -> tuple[ScriptFlags, bytes]:
    """Split ``#!lua flags=a,b`` off a script: its flags, and the body with the first line
    blanked (its line feed kept, so error line numbers stay the user's)."""
    if not body.startswith(b"#!"):
        return ScriptFlags(), body
    end = body.find(b"\n")
    if end < 0:
        raise CommandError("ERR Invalid script shebang")
    line, rest = body[:end], body[end:]
    parts = line.split()
    if not parts or parts[0] != b"#!lua":
        raise CommandError(
            f"ERR Unexpected engine in script shebang: {line.decode('utf-8', 'replace')}")
    flags = ScriptFlags(declared=True)
    for part in parts[1:]:
        if not part.startswith(b"flags="):
            raise CommandError(
                f"ERR Unknown lua shebang option: {part.decode('utf-8', 'replace')}")
        for flag in part[6:].split(b","):
            if not flag:
                continue
            attribute = SHEBANG_FLAGS.get(flag)
            if attribute is None:
                raise CommandError(
                    f"ERR Unexpected flag in script shebang: {flag.decode('utf-8', 'replace')}")
            setattr(flags, attribute, True)
    return flags, rest


class Scripting(RedisApi):
    """The scripting subsystem of one engine: interpreter, script cache, running script."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.scripts: dict[bytes, Script] = {}
        self.run: Run | None = None
        self.client = Client(engine.keyspace[0], addr="lua")
        self.client.authenticated = True
        self.client.kind = "lua"
        # Set by the transport: serves the other clients while a script is busy.
        self.serve_while_busy: Callable[[Run], None] | None = None
        self.load_deadline: float | None = None  # while a library's code runs
        self.new_interpreter()
        from .functions import Functions  # functions builds on this module: imported here

        self.functions = Functions(self)

    # --- the interpreters -----------------------------------------------------------------
    #
    # Two Lua states, as in Redis: one for EVAL (rebuilt by SCRIPT FLUSH), one for function
    # libraries (its globals switch to the load-time API while a library's code runs).  Only
    # one script runs at a time; ``self.state`` is the state it runs in.

    def new_interpreter(self) -> None:
        self.eval_state = self.state = self._make_state(functions=False)
        self._function_state: LuaState | None = None

    @property
    def function_state(self) -> LuaState:
        if self._function_state is None:
            self._function_state = self._make_state(functions=True)
        return self._function_state

    def _make_state(self, functions: bool) -> LuaState:
        return make_state(self, functions)

    def flush(self) -> None:
        """SCRIPT FLUSH: forget every script and start a new interpreter."""
        self.scripts.clear()
        function_state = self._function_state
        self.new_interpreter()
        self._function_state = function_state

    def _register_function(self, *args: Any) -> None:
        if self.functions.loading is None:
            raise self._error_table(b"-ERR redis.register_function can only be called on FUNCTION LOAD command")
        self.functions.register(self, args)

    # --- compiling -----------------------------------------------------------------------

    def compile(self, body: bytes, chunkname: bytes = b"@user_script") -> Any:
        """A Lua function for ``body``, or CommandError with Lua's message."""
        function, message = self.eval_state.api.compile(body, chunkname)
        if function is None:
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
            raise CommandError(f"ERR Error compiling script (new function): {text}")
        return function

    def load(self, body: bytes) -> Script:
        """SCRIPT LOAD / EVAL: the cached script for ``body``, compiled on first sight."""
        sha = hashlib.sha1(body).hexdigest().encode()
        script = self.scripts.get(sha)
        if script is None:
            flags, code = parse_shebang(body)
            function = self.compile(code)
            script = self.scripts[sha] = Script(sha, body, function, flags)
        return script

    # --- EVAL ----------------------------------------------------------------------------

    def eval(self, ctx: CommandContext, argv: list[bytes], by_sha: bool, readonly: bool) -> Any:
        numkeys = _numkeys(argv[2], len(argv) - 3)
        if by_sha:
            script = self.scripts.get(argv[1].lower())
            if script is None:
                raise CommandError(NOSCRIPT_REPLY)
        else:
            script = self.load(argv[1])
        flags = script.flags
        if readonly and flags.declared and not flags.no_writes:
            raise CommandError("ERR Can not execute a script with write flag using *_ro command.")
        readonly = readonly or flags.no_writes
        self.check_runnable(ctx, flags, readonly)
        state = self.eval_state
        run = Run(script.sha, ctx.client, readonly, is_eval=True, allow_oom=flags.allow_oom)
        run.command = argv  # client-side caching remembers EVAL's keys (trioredis.tracking)
        run_lua = state.run
        return self.execute(ctx, argv, run, state,
                            lambda resp3: run_lua(script.function, resp3, numkeys, *argv[3:]))

    def check_runnable(self, ctx: CommandContext, flags: ScriptFlags, readonly: bool) -> None:
        """Refusals before a script with a shebang runs (Redis's scriptPrepareForRun): one
        that may write is refused while writes are (MISCONF), or over maxmemory."""
        if not flags.declared:
            return
        engine = self.engine
        if not readonly:
            refusal = engine.refuse_writes()
            if refusal is not None:
                raise CommandError(refusal)
            if engine.config.maxmemory and not flags.allow_oom \
                    and engine.used_memory() > engine.config.maxmemory:
                raise CommandError(errors.OOM)

    def execute(self, ctx: CommandContext, argv: list[bytes], run: Run, state: LuaState,
                call: Callable[[bool], Any]) -> Any:
        """Run a script (``call(resp3)`` runs it in Lua) and turn its outcome into a reply;
        propagate what it wrote."""
        if self.run is not None:  # cannot happen: scripts cannot call scripts
            raise CommandError("ERR a script is already running")
        engine = self.engine
        observer = engine.observer
        if observer.monitors:  # MONITOR shows EVAL before its commands
            observer.feed_monitors(engine, ctx.client, argv)
        caller = ctx.client
        client = self.client
        client.db = caller.db
        client.user = caller.user
        client.resp3 = False
        client.multi = None
        self.run = run
        self.state = state
        capture = _Capture(run)
        saved_capture = engine.capture
        saved_in_exec = engine.in_exec
        engine.capture = capture
        engine.in_exec = True
        try:
            ok, value, source, line, other = _pad(call(caller.resp3), 5)
        except Exception as error:  # a Lua error raised outside the handler (memory...)
            ok, value, source, line, other = False, None, None, None, str(error).encode()
            state.api.disarm()  # (the Lua side disarms the hook itself otherwise)
        finally:
            self.run = None
            engine.capture = saved_capture
            engine.in_exec = saved_in_exec
            self.state = self.eval_state
        ctx.dirty = run.dirty
        ctx.propagated = True
        if not run.shutting_down:  # as Redis, which exits before propagating them
            self._propagate(capture, saved_in_exec)
        if ok:
            return Raw(value)
        if value.__class__ is bytes:
            message = b"-" + value
            if line is not None and source is not None:
                message += b" script: %b, on %b:%b." % (run.name, source, number_arg(line))
        elif other is not None:
            message = b"ERR Error running script %b, %b" % (run.name, other[:100])
        else:
            message = b"-ERR unknown error"
        return self._error(message)

    def _error(self, message: bytes) -> Any:
        """An error reply as Redis writes a formatted one: one line; a message without its
        own ``-`` gets ``-ERR `` first."""
        text = message.replace(b"\r", b" ").replace(b"\n", b" ")
        text = text[1:] if text.startswith(b"-") else b"ERR " + text
        try:
            decoded = text.decode()
        except UnicodeDecodeError:
            self.engine.stats.errors += 1
            return ErrorReply(text)
        raise CommandError(decoded)

    def _propagate(self, capture: list[tuple[int, list[bytes]]], in_exec: bool) -> None:
        """The script's effects: one command alone, several in MULTI/EXEC; inside a
        transaction, as part of it."""
        if not capture:
            return
        engine = self.engine
        if in_exec:
            for db, argv in capture:
                engine.propagate(db, argv)
        elif len(capture) == 1:
            engine._feed(*capture[0])
        else:
            engine._feed(capture[0][0], [b"MULTI"])
            for db, argv in capture:
                engine._feed(db, argv)
            engine._feed(capture[-1][0], [b"EXEC"])

    # --- busy scripts --------------------------------------------------------------------

    def _hook(self) -> Any:
        """The count hook: the error to stop the script with, or None to go on."""
        run = self.run
        if run is None:
            # A library's code at FUNCTION LOAD: stopped after LOAD_TIMEOUT (Redis's 500 ms).
            if self.load_deadline is not None and time.monotonic() > self.load_deadline:
                return b"ERR FUNCTION LOAD timeout"
            return None
        if run.killed is not None:
            return run.killed
        threshold = getattr(self.engine.config, "busy_reply_threshold", 5000)
        if not run.busy and (time.monotonic() - run.started) * 1000 >= threshold:
            run.busy = True
            self.engine.log.warning(
                "Slow script detected: still in execution after "
                f"{int((time.monotonic() - run.started) * 1000)} milliseconds. You can try "
                "killing the script using the SCRIPT KILL command.")
        if run.busy and self.serve_while_busy is not None:
            self.serve_while_busy(run)
        return run.killed

    def busy_error(self) -> str:
        run = self.run
        return BUSY_EVAL if run is None or run.is_eval else BUSY_FUNCTION

    def kill(self, by_function_kill: bool) -> str | None:
        """SCRIPT KILL / FUNCTION KILL while a script is busy: None when it is being stopped,
        else the error to answer."""
        run = self.run
        if run is None:
            return NOTBUSY
        if run.is_eval == by_function_kill:  # SCRIPT KILL stops EVAL, FUNCTION KILL FCALL
            return NOTBUSY
        if run.wrote:  # the same text for scripts and functions, as in Redis
            return UNKILLABLE
        run.killed = KILLED if run.is_eval else KILLED_FUNCTION
        return None

    def stop_for_shutdown(self) -> None:
        """SHUTDOWN NOSAVE during a busy script: stop it whatever it wrote."""
        if self.run is not None:
            self.run.killed = KILLED if self.run.is_eval else KILLED_FUNCTION
            self.run.shutting_down = True


class _Capture(list):
    """The engine's ``capture`` while a script runs: keeps effects the script replicates
    (``redis.set_repl``)."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run

    def append(self, item: Any) -> None:
        if self.run.repl & REPL_AOF:
            super().append(item)


def _pad(values: Any, count: int) -> tuple[Any, ...]:
    if not isinstance(values, tuple):
        values = (values,)
    return values + (None,) * (count - len(values))


def _numkeys(text: bytes, most: int) -> int:
    numkeys = parse_int(text)
    if numkeys > most:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    if numkeys < 0:
        raise CommandError("ERR Number of keys can't be negative")
    return numkeys


def of(engine: Any) -> Scripting:
    """The engine's Scripting (built with the engine)."""
    return engine.scripting
