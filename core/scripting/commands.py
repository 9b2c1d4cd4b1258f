"""Scripting commands: EVAL EVALSHA EVAL_RO EVALSHA_RO SCRIPT, and FUNCTION FCALL FCALL_RO
(``functions.py`` holds the library registry)."""

from __future__ import annotations

from ..commands import command, numkeys_finder
from ..commands.args import help_reply
from ..errors import CommandError, unknown_subcommand, wrong_arity
from ..resp import OK
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


def register(registry):
    group = "scripting"
    keys = numkeys_finder(2)
    registry.extend([
        command("eval", -3, "noscript stale skip-monitor", eval_, group=group,
                key_finder=keys),
        command("evalsha", -3, "noscript stale skip-monitor", evalsha, group=group,
                key_finder=keys),
        command("eval_ro", -3, "noscript stale skip-monitor readonly", eval_ro, group=group,
                key_finder=keys),
        command("evalsha_ro", -3, "noscript stale skip-monitor readonly", evalsha_ro,
                group=group, key_finder=keys),
        command("script", -2, "noscript", script, group=group,
                subcommands=("load", "exists", "flush", "kill", "debug", "help")),
    ])
