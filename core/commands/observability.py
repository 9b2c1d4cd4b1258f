"""Operator commands: SLOWLOG GET/LEN/RESET/HELP and MONITOR.

The recording itself is in :mod:`trioredis.observability` (a ``trioredis_command_executed``
hook); these commands read it.
"""

from __future__ import annotations

from .. import errors
from ..errors import CommandError
from ..observability import of
from ..resp import OK, Raw, Status
from . import command

_SLOWLOG_HELP = [
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
]
_COUNT_ERROR = "ERR count should be greater than or equal to -1"


def slowlog(ctx, argv):
    observer = of(ctx.engine)
    sub = argv[1].lower()
    if sub == b"get" and len(argv) in (2, 3):
        count = 10
        if len(argv) == 3:
            try:
                count = int(argv[2])
            except ValueError:
                raise CommandError(_COUNT_ERROR) from None
            if count < -1:
                raise CommandError(_COUNT_ERROR)
        entries = list(observer.slowlog)
        if count != -1:
            entries = entries[:count]
        return [entry.reply() for entry in entries]
    if sub == b"len" and len(argv) == 2:
        return len(observer.slowlog)
    if sub == b"reset" and len(argv) == 2:
        observer.reset_slowlog()
        return OK
    if sub == b"help" and len(argv) == 2:
        return [Status(line.encode()) for line in _SLOWLOG_HELP]
    if sub in (b"len", b"reset", b"help"):
        raise CommandError(errors.wrong_arity(f"slowlog|{sub.decode()}"))
    if sub == b"get":
        raise CommandError(errors.sanitize(
            "ERR unknown subcommand or wrong number of arguments for "
            f"'{argv[1].decode('utf-8', 'replace')}'. Try SLOWLOG HELP."))
    raise CommandError(errors.unknown_subcommand(argv[1], "SLOWLOG"))


def monitor(ctx, argv):
    engine, client = ctx.engine, ctx.client
    if engine.in_exec:
        raise CommandError("ERR MONITOR isn't allowed for DENY BLOCKING client")
    observer = of(engine)
    if client.id in observer.monitors:
        return Raw(b"")  # Redis ignores a second MONITOR without a reply
    observer.monitors[client.id] = client
    return OK


def register(registry):
    group = "server"
    registry.extend([
        command("slowlog", -2, "admin loading stale", slowlog, group=group,
                subcommands=("get", "len", "reset", "help")),
        command("monitor", 1, "admin noscript loading stale", monitor, group=group),
    ])
