"""Function libraries (Redis 7.0's FUNCTION and FCALL).

A library is Lua code that starts with ``#!lua name=<library>`` and calls
``redis.register_function`` while it loads; FCALL then runs one of its functions by name.
Libraries are part of the dataset: FUNCTION LOAD/DELETE/FLUSH/RESTORE are propagated (a load as
``FUNCTION LOAD REPLACE``, which replays the same whatever was there), and
:meth:`Functions.preamble` gives the commands that rebuild them for an AOF rewrite and a
snapshot (``trioredis_dataset_preamble``).

FUNCTION DUMP writes Redis's payload byte for byte (one FUNCTION2 record per library, its
code LZF-compressed under ``rdbcompression`` as Redis's RDB strings are, the RDB version, a
CRC-64: :mod:`trioredis.rdb`); FUNCTION RESTORE reads Redis's payloads.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lupa import lua51

from ..errors import CommandError
from ..glob import compile_glob
from ..rdb import RdbError
from ..rdb.file import NotFunctions, functions_payload, load_functions_payload, payload_is_valid
from ..resp import Map, SetReply, Status
from .libs import LuaRaise
from .runtime import SHEBANG_FLAGS, Run, ScriptFlags

if TYPE_CHECKING:
    from ..engine import CommandContext
    from .runtime import Scripting

NAME = re.compile(rb"\A[A-Za-z0-9_]+\Z")
BAD_NAME = ("ERR Library names can only contain letters, numbers, or underscores(_) and must be "
            "at least one character long")
LOAD_TIMEOUT = 0.5  # seconds a library's code may run at FUNCTION LOAD (Redis's 500 ms)


@dataclass(slots=True)
class Function:
    name: bytes
    callback: Any
    flags: ScriptFlags
    flag_names: tuple[bytes, ...]
    description: bytes | None
    library: Library | None = None


@dataclass(slots=True)
class Library:
    name: bytes
    code: bytes
    functions: dict[bytes, Function] = field(default_factory=dict)


def parse_library_shebang(code: bytes) -> tuple[bytes, bytes]:
    """The library name from ``#!lua name=...``, and the code with that line blanked."""
    if not code.startswith(b"#!"):
        raise CommandError("ERR Missing library metadata")
    end = code.find(b"\n")
    line = code[:end] if end >= 0 else code
    rest = code[end:] if end >= 0 else b""
    parts = line[2:].split()
    engine = parts[0] if parts else b""
    if engine.lower() != b"lua":
        raise CommandError(f"ERR Engine '{engine.decode('utf-8', 'replace')}' not found")
    name = None
    for part in parts[1:]:
        if not part.startswith(b"name="):
            raise CommandError(f"ERR Invalid metadata value given: {part.decode('utf-8', 'replace')}")
        if name is not None:
            raise CommandError("ERR Invalid metadata value, name argument was given multiple times")
        name = part[5:]
    if name is None:
        raise CommandError("ERR Library name was not given")
    if not NAME.match(name):
        raise CommandError(BAD_NAME)
    return name, rest


class Functions:
    """The libraries of one server, and FCALL."""

    def __init__(self, scripting: Scripting) -> None:
        self.scripting = scripting
        self.libraries: dict[bytes, Library] = {}
        self.functions: dict[bytes, Function] = {}
        self.loading: Library | None = None

    # --- loading -------------------------------------------------------------------------

    def create(self, code: bytes) -> Library:
        """Compile and run a library's code: the library with its functions (not installed)."""
        name, body = parse_library_shebang(code)
        scripting = self.scripting
        state = scripting.function_state
        function, message = state.api.compile(body, b"@user_function")
        if function is None:
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
            raise CommandError(f"ERR Error compiling function: {text}")
        library = Library(name, code)
        self.loading = library
        scripting.state = state
        scripting.load_deadline = time.monotonic() + LOAD_TIMEOUT
        try:
            ok, error = state.api.load_library(function)
        finally:
            self.loading = None
            scripting.load_deadline = None
            scripting.state = scripting.eval_state
        if not ok:
            text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            raise CommandError(f"ERR Error registering functions: {text}")
        if not library.functions:
            raise CommandError("ERR No functions registered")
        return library

    def register(self, scripting: Scripting, args: tuple[Any, ...]) -> None:
        """redis.register_function(name, callback) or ({function_name=..., callback=...,
        flags={...}, description=...}), while a library loads."""
        library = self.loading
        assert library is not None
        fail = scripting._error_table
        flag_names: list[bytes] = []
        description = None
        if len(args) == 1 and lua51.lua_type(args[0]) == "table":
            name = callback = None
            for key, value in args[0].items():
                if key == b"function_name":
                    if not isinstance(value, bytes):
                        raise fail(b"-ERR function_name argument given to redis.register_function must be a string")
                    name = value
                elif key == b"callback":
                    if lua51.lua_type(value) != "function":
                        raise fail(b"-ERR callback argument given to redis.register_function must be a function")
                    callback = value
                elif key == b"description":
                    if not isinstance(value, bytes):
                        raise fail(b"-ERR description argument given to redis.register_function must be a string")
                    description = value
                elif key == b"flags":
                    if lua51.lua_type(value) != "table":
                        raise fail(b"-ERR flags argument to redis.register_function must be a table representing function flags")
                    for _index, flag in value.items():
                        if not isinstance(flag, bytes) or flag not in SHEBANG_FLAGS:
                            raise fail(b"-ERR unknown flag given")
                        flag_names.append(flag)
                else:
                    raise fail(b"-ERR unknown argument given to redis.register_function")
            if name is None:
                raise fail(b"-ERR redis.register_function must get a function name argument")
            if callback is None:
                raise fail(b"-ERR redis.register_function must get a callback argument")
        elif len(args) == 2:
            name, callback = args
            if not isinstance(name, bytes):
                raise fail(b"-ERR first argument to redis.register_function must be a string")
            if lua51.lua_type(callback) != "function":
                raise fail(b"-ERR second argument to redis.register_function must be a function")
        else:
            raise fail(b"-ERR wrong number of arguments to redis.register_function")
        if not NAME.match(name):
            raise fail(b"-" + BAD_NAME.encode())
        if name in library.functions:
            raise fail(b"-ERR Function already exists in the library")
        flags = ScriptFlags(declared=True)
        for flag in flag_names:
            setattr(flags, SHEBANG_FLAGS[flag], True)
        library.functions[name] = Function(name, callback, flags, tuple(flag_names), description,
                                           library)

    def load(self, code: bytes, replace: bool) -> bytes:
        """FUNCTION LOAD [REPLACE]: install a library; its name."""
        name, _ = parse_library_shebang(code)
        existing = self.libraries.get(name)
        if existing is not None and not replace:
            raise CommandError(f"ERR Library '{name.decode('utf-8', 'replace')}' already exists")
        library = self.create(code)
        self.install([library], replace=True)
        return library.name

    def install(self, libraries: list[Library], replace: bool) -> None:
        """Add libraries, all or none: a library name or function name that collides is an
        error (a library of the same name is replaced when ``replace``)."""
        replaced = {lib.name for lib in libraries if lib.name in self.libraries}
        if replaced and not replace:
            name = next(iter(replaced)).decode("utf-8", "replace")
            raise CommandError(f"ERR Library {name} already exists")
        taken = {fname for fname, fn in self.functions.items()
                 if fn.library is not None and fn.library.name not in replaced}
        seen: set[bytes] = set()
        for library in libraries:
            for fname in library.functions:
                if fname in taken or fname in seen:
                    raise CommandError(
                        f"ERR Function {fname.decode('utf-8', 'replace')} already exists")
                seen.add(fname)
        for name in replaced:
            self._remove(name)
        for library in libraries:
            self.libraries[library.name] = library
            self.functions.update(library.functions)

    def _remove(self, name: bytes) -> Library | None:
        library = self.libraries.pop(name, None)
        if library is not None:
            for fname in library.functions:
                self.functions.pop(fname, None)
        return library

    def delete(self, name: bytes) -> None:
        if self._remove(name) is None:
            raise CommandError("ERR Library not found")

    def flush(self) -> None:
        self.libraries.clear()
        self.functions.clear()

    # --- FCALL ---------------------------------------------------------------------------

    def fcall(self, ctx: CommandContext, argv: list[bytes], readonly: bool) -> Any:
        from .runtime import _numkeys

        function = self.functions.get(argv[1])
        if function is None:
            raise CommandError("ERR Function not found")
        numkeys = _numkeys(argv[2], len(argv) - 3)
        flags = function.flags
        if readonly and not flags.no_writes:
            raise CommandError("ERR Can not execute a script with write flag using *_ro command.")
        scripting = self.scripting
        readonly = readonly or flags.no_writes
        scripting.check_runnable(ctx, flags, readonly)
        state = scripting.function_state
        run = Run(function.name, ctx.client, readonly, is_eval=False, allow_oom=flags.allow_oom)
        run.command = list(argv)
        return scripting.execute(
            ctx, argv, run, state,
            lambda resp3: state.run_function(function.callback, resp3, numkeys, *argv[3:]))

    # --- replies -------------------------------------------------------------------------

    def list_reply(self, pattern: bytes | None, with_code: bool) -> list[Map]:
        match = compile_glob(pattern).fullmatch if pattern is not None else None
        out = []
        for library in self.libraries.values():
            if match is not None and not match(library.name):
                continue
            entry = Map()
            entry[b"library_name"] = library.name
            entry[b"engine"] = b"LUA"
            entry[b"functions"] = [
                Map({b"name": fn.name, b"description": fn.description,
                     b"flags": SetReply(Status(flag) for flag in fn.flag_names)})
                for fn in library.functions.values()
            ]
            if with_code:
                entry[b"library_code"] = library.code
            out.append(entry)
        return out

    def stats_reply(self) -> Map:
        scripting = self.scripting
        run = scripting.run
        running = None
        if run is not None and not run.is_eval:
            running = Map({b"name": run.name, b"command": getattr(run, "command", []),
                           b"duration_ms": int((time.monotonic() - run.started) * 1000)})
        return Map({
            b"running_script": running,
            b"engines": Map({b"LUA": Map({b"libraries_count": len(self.libraries),
                                          b"functions_count": len(self.functions)})}),
        })

    # --- persistence ---------------------------------------------------------------------

    def preamble(self) -> list[list[bytes]]:
        """The commands that rebuild every library."""
        return [[b"FUNCTION", b"LOAD", b"REPLACE", library.code]
                for library in self.libraries.values()]

    def dump(self, compress: bool = True) -> bytes:
        """FUNCTION DUMP: every library's code in one payload (:func:`functions_payload`),
        LZF-compressed as Redis writes it when ``compress`` (``rdbcompression``)."""
        return functions_payload((library.code for library in self.libraries.values()),
                                 compress)

    def restore(self, payload: bytes, policy: bytes, check_crc: bool = True) -> list[bytes]:
        """FUNCTION RESTORE: the code of each library restored.  The payload is checked as
        RESTORE's (Redis's ``verifyDumpPayload``): a zero checksum is a wrong one, and
        ``check_crc`` off (DEBUG SET-SKIP-CHECKSUM-VALIDATION) skips the CRC."""
        if not payload_is_valid(payload, check_crc):
            raise CommandError("ERR DUMP payload version or checksum are wrong")
        try:
            codes = load_functions_payload(payload)
        except NotFunctions:
            raise CommandError("ERR given type is not a function") from None
        except RdbError:
            raise CommandError("ERR Function restore failed: bad payload") from None
        libraries = []
        names: set[bytes] = set()
        for code in codes:
            library = self.create(code)
            if library.name in names:
                raise CommandError(
                    f"ERR Library {library.name.decode('utf-8', 'replace')} already exists")
            names.add(library.name)
            libraries.append(library)
        if policy == b"flush":
            self.flush()
            self.install(libraries, replace=False)
        elif policy == b"replace":
            self.install(libraries, replace=True)
        else:
            clash = [lib.name for lib in libraries if lib.name in self.libraries]
            if clash:
                raise CommandError(
                    f"ERR Library {clash[0].decode('utf-8', 'replace')} already exists")
            self.install(libraries, replace=False)
        return [library.code for library in libraries]


def of(scripting: Scripting) -> Functions:
    """The libraries of ``scripting``'s server (built with it)."""
    return scripting.functions


__all__ = ["Functions", "Library", "Function", "LuaRaise", "of"]
