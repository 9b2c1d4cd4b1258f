"""Scripting commands: EVAL EVALSHA EVAL_RO EVALSHA_RO SCRIPT, and FUNCTION FCALL FCALL_RO
(``functions.py`` holds the library registry).

SCRIPT and FUNCTION are flagged ``allow-busy`` for their KILL (and FUNCTION STATS): while a
script is busy the transport lets only those subcommands through (``BUSY_ALLOWED``)."""

from __future__ import annotations

from .. import errors
from ..commands import command
from ..commands.args import help_reply
from ..errors import CommandError, unknown_subcommand, wrong_arity
from ..resp import OK
from . import functions as functions_module
from . import runtime

SCRIPT_HELP = [
    b"SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"DEBUG (YES|SYNC|NO)",
    b"    Set the debug mode for subsequent scripts executed.",
    b"EXISTS <sha1> [<sha1> ...]",
    b"    Return information about the existence of the scripts in the script cache.",
    b"FLUSH [ASYNC|SYNC]",
    b"    Flush the Lua scripts cache. Very dangerous on replicas.",
    b"    When called without the optional mode argument, the behavior is determined by the",
    b"    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    b"    * ASYNC: Asynchronously flush the scripts cache.",
    b"    * SYNC: Synchronously flush the scripts cache.",
    b"KILL",
    b"    Kill the currently executing Lua script.",
    b"LOAD <script>",
    b"    Load a script into the scripts cache without executing it.",
    b"HELP",
    b"    Prints this help.",
]


def eval_(ctx, argv):
    return runtime.of(ctx.engine).eval(ctx, argv, by_sha=False, readonly=False)


def evalsha(ctx, argv):
    return runtime.of(ctx.engine).eval(ctx, argv, by_sha=True, readonly=False)


def eval_ro(ctx, argv):
    return runtime.of(ctx.engine).eval(ctx, argv, by_sha=False, readonly=True)


def evalsha_ro(ctx, argv):
    return runtime.of(ctx.engine).eval(ctx, argv, by_sha=True, readonly=True)


def _arity(argv: list[bytes], exact: int | None = None, least: int | None = None) -> None:
    count = len(argv)
    if (exact is not None and count != exact) or (least is not None and count < least):
        raise CommandError(wrong_arity(f"script|{argv[1].lower().decode('utf-8', 'replace')}"))


def script(ctx, argv):
    """SCRIPT LOAD|EXISTS|FLUSH|KILL|DEBUG|HELP."""
    sub = argv[1].lower()
    scripting = runtime.of(ctx.engine)
    if sub == b"load":
        _arity(argv, exact=3)
        return scripting.load(argv[2]).sha
    if sub == b"exists":
        _arity(argv, least=3)
        return [1 if sha.lower() in scripting.scripts else 0 for sha in argv[2:]]
    if sub == b"flush":
        _arity(argv, least=2)
        if len(argv) > 3 or (len(argv) == 3 and argv[2].lower() not in (b"sync", b"async")):
            raise CommandError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
        scripting.flush()
        return OK
    if sub == b"kill":
        _arity(argv, exact=2)
        refusal = scripting.kill(by_function_kill=False)
        if refusal is not None:
            raise CommandError(refusal)
        return OK
    if sub == b"debug":
        _arity(argv, exact=3)
        mode = argv[2].lower()
        if mode == b"no":
            return OK
        if mode in (b"yes", b"sync"):
            raise CommandError("ERR SCRIPT DEBUG is not supported by this server")
        raise CommandError("ERR Use SCRIPT DEBUG YES/SYNC/NO")
    if sub == b"help" and len(argv) == 2:
        return help_reply(SCRIPT_HELP)
    raise CommandError(unknown_subcommand(argv[1], "script"))


FUNCTION_HELP = [
    b"FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"LOAD [REPLACE] <FUNCTION CODE>",
    b"    Create a new library with the given library name and code.",
    b"DELETE <LIBRARY NAME>",
    b"    Delete the given library.",
    b"LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    b"    Return general information on all the libraries:",
    b"    * Library name",
    b"    * The engine used to run the Library",
    b"    * Library description",
    b"    * Functions list",
    b"    * Library code (if WITHCODE is given)",
    b"    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    b"STATS",
    b"    Return information about the current function running:",
    b"    * Function name",
    b"    * Command used to run the function",
    b"    * Duration in MS that the function is running",
    b"    If no function is running, return nil",
    b"    In addition, returns a list of available engines.",
    b"KILL",
    b"    Kill the current running function.",
    b"FLUSH [ASYNC|SYNC]",
    b"    Delete all the libraries.",
    b"    When called without the optional mode argument, the behavior is determined by the",
    b"    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    b"    * ASYNC: Asynchronously flush the libraries.",
    b"    * SYNC: Synchronously flush the libraries.",
    b"DUMP",
    b"    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    b"RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    b"    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    b"    control how to handle existing libraries (default APPEND):",
    b"    * FLUSH: delete all existing libraries.",
    b"    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    b"    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    b"      libraries with the new libraries (notice that even on this option there is a chance of failure",
    b"      in case of functions name collision with another library).",
    b"HELP",
    b"    Prints this help.",
]


def _functions(ctx) -> functions_module.Functions:
    return functions_module.of(runtime.of(ctx.engine))


def fcall(ctx, argv):
    return _functions(ctx).fcall(ctx, argv, readonly=False)


def fcall_ro(ctx, argv):
    return _functions(ctx).fcall(ctx, argv, readonly=True)


def _function_arity(argv: list[bytes], exact: int | None = None, least: int | None = None,
                    most: int | None = None) -> None:
    count = len(argv)
    if ((exact is not None and count != exact) or (least is not None and count < least)
            or (most is not None and count > most)):
        raise CommandError(wrong_arity(f"function|{argv[1].lower().decode('utf-8', 'replace')}"))


def _changed(ctx, argv: list[bytes]) -> None:
    """A FUNCTION subcommand changed the libraries: propagate ``argv`` (they are data)."""
    ctx.dirty += 1
    ctx.propagate(argv)


def function(ctx, argv):
    """FUNCTION LOAD|DELETE|FLUSH|LIST|DUMP|RESTORE|STATS|KILL|HELP."""
    sub = argv[1].lower()
    if sub in (b"load", b"delete", b"flush", b"restore") and not ctx.client.is_loader:
        # These subcommands are flagged write in Redis (LOAD and RESTORE denyoom too): refused
        # while writes are (MISCONF), and over maxmemory.
        refusal = ctx.engine.refuse_writes()
        if refusal is not None:
            raise CommandError(refusal)
        if (sub in (b"load", b"restore") and ctx.config.maxmemory
                and ctx.engine.used_memory() > ctx.config.maxmemory):
            raise CommandError(errors.OOM)
    handler = _FUNCTION_SUBCOMMANDS.get(sub)
    if handler is not None:
        return handler(ctx, argv, _functions(ctx))
    if sub == b"help" and len(argv) == 2:
        return help_reply(FUNCTION_HELP)
    raise CommandError(unknown_subcommand(argv[1], "function"))


def _function_load(ctx, argv, functions):
    _function_arity(argv, least=3, most=4)
    replace = False
    if len(argv) == 4:
        if argv[2].lower() != b"replace":
            raise CommandError(f"ERR Unknown option given: {argv[2].decode('utf-8', 'replace')}")
        replace = True
    name = functions.load(argv[-1], replace)
    _changed(ctx, [b"FUNCTION", b"LOAD", b"REPLACE", argv[-1]])
    return name


def _function_delete(ctx, argv, functions):
    _function_arity(argv, exact=3)
    functions.delete(argv[2])
    _changed(ctx, argv)
    return OK


def _function_flush(ctx, argv, functions):
    _function_arity(argv, least=2, most=3)
    if len(argv) == 3 and argv[2].lower() not in (b"sync", b"async"):
        raise CommandError("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
    functions.flush()
    _changed(ctx, argv)
    return OK


def _function_list(ctx, argv, functions):
    pattern = None
    with_code = False
    index = 2
    while index < len(argv):
        option = argv[index].lower()
        if option == b"withcode":
            if with_code:
                raise CommandError("ERR Unknown argument withcode")
            with_code = True
        elif option == b"libraryname":
            if pattern is not None:
                raise CommandError("ERR library name can be given only once")
            if index + 1 >= len(argv):
                raise CommandError("ERR library name argument was not given")
            index += 1
            pattern = argv[index]
        else:
            raise CommandError(f"ERR Unknown argument {argv[index].decode('utf-8', 'replace')}")
        index += 1
    return functions.list_reply(pattern, with_code)


def _function_dump(ctx, argv, functions):
    _function_arity(argv, exact=2)
    return functions.dump(ctx.engine.config.rdbcompression)


def _function_restore(ctx, argv, functions):
    _function_arity(argv, least=3, most=4)
    policy = argv[3].lower() if len(argv) == 4 else b"append"
    if policy not in (b"flush", b"append", b"replace"):
        raise CommandError("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.")
    restored = functions.restore(argv[2], policy,
                                 check_crc=not ctx.engine.skip_checksum_validation)
    # Propagated as what it did: the loads, which replay the same whatever is there.
    if policy == b"flush":
        _changed(ctx, [b"FUNCTION", b"FLUSH"])
    for code in restored:
        _changed(ctx, [b"FUNCTION", b"LOAD", b"REPLACE", code])
    return OK


def _function_stats(ctx, argv, functions):
    _function_arity(argv, exact=2)
    return functions.stats_reply()


def _function_kill(ctx, argv, functions):
    _function_arity(argv, exact=2)
    refusal = runtime.of(ctx.engine).kill(by_function_kill=True)
    if refusal is not None:
        raise CommandError(refusal)
    return OK


# FUNCTION's subcommands (HELP aside): each (ctx, argv, functions) -> reply.
_FUNCTION_SUBCOMMANDS = {
    b"load": _function_load, b"delete": _function_delete, b"flush": _function_flush,
    b"list": _function_list, b"dump": _function_dump, b"restore": _function_restore,
    b"stats": _function_stats, b"kill": _function_kill,
}


def register(registry):
    group = "scripting"
    registry.extend([
        command("eval", -3, "noscript stale skip-monitor", eval_, group=group),
        command("evalsha", -3, "noscript stale skip-monitor", evalsha, group=group),
        command("eval_ro", -3, "noscript stale skip-monitor readonly", eval_ro, group=group),
        command("evalsha_ro", -3, "noscript stale skip-monitor readonly", evalsha_ro,
                group=group),
        command("script", -2, "noscript allow-busy", script, group=group,
                subcommands=("load", "exists", "flush", "kill", "debug", "help")),
        command("fcall", -3, "noscript stale skip-monitor", fcall, group=group),
        command("fcall_ro", -3, "noscript stale skip-monitor readonly", fcall_ro, group=group),
        command("function", -2, "noscript allow-busy", function, group=group,
                subcommands=("load", "delete", "flush", "list", "dump", "restore", "stats",
                             "kill", "help")),
    ])
