"""ACL: SETUSER DELUSER GETUSER LIST USERS WHOAMI CAT DRYRUN GENPASS LOG LOAD SAVE HELP.

The users live in :class:`trioredis.acl.AccessControl` (``engine.acl``); the engine checks
every command against the client's user before running it.
"""

from __future__ import annotations

import os

import trio

from .. import errors
from ..acl import (
    ACLLOG_DEFAULT_COUNT,
    CATEGORIES,
    NOPERM_CHANNEL,
    NOPERM_KEY,
    category_members,
)
from ..acl_file import (
    NO_ACL_FILE,
    SAVE_FAILED,
    AclFileError,
    acl_file_text,
    read_acl_file,
    write_acl_file,
)
from ..errors import CommandError
from ..resp import OK, Map
from . import command
from .args import help_reply, parse_int

_HELP = [
    b"ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"CAT [<category>]",
    b"    List all commands that belong to <category>, or all command categories",
    b"    when no category is specified.",
    b"DELUSER <username> [<username> ...]",
    b"    Delete a list of users.",
    b"DRYRUN <username> <command> [<arg> ...]",
    b"    Returns whether the user can execute the given command without executing the command.",
    b"GETUSER <username>",
    b"    Get the user's details.",
    b"GENPASS [<bits>]",
    b"    Generate a secure 256-bit user password. The optional `bits` argument can",
    b"    be used to specify a different size.",
    b"LIST",
    b"    Show users details in config file format.",
    b"LOAD",
    b"    Reload users from the ACL file.",
    b"LOG [<count> | RESET]",
    b"    Show the ACL log entries.",
    b"SAVE",
    b"    Save the current config to the ACL file.",
    b"SETUSER <username> <attribute> [<attribute> ...]",
    b"    Create or modify a user with the specified attributes.",
    b"USERS",
    b"    List all the registered usernames.",
    b"WHOAMI",
    b"    Return the current connection username.",
    b"HELP",
    b"    Prints this help.",
]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _wrong_arity(sub: bytes) -> CommandError:
    return CommandError(errors.wrong_arity(f"acl|{_text(sub).lower()}"))


def acl(ctx, argv):
    sub = argv[1].lower()
    handler = _SUBCOMMANDS.get(sub)
    if handler is None:
        raise CommandError(errors.unknown_subcommand(argv[1], "ACL"))
    arity = _ARITY[sub]
    if (arity > 0 and len(argv) != arity) or len(argv) < -arity:
        raise _wrong_arity(sub)
    return handler(ctx, argv)


def setuser(ctx, argv):
    name = _text(argv[2])
    ctx.engine.acl.set_user(name, [_text(rule) for rule in argv[3:]])
    return OK


def deluser(ctx, argv):
    engine = ctx.engine
    deleted = 0
    for raw in argv[2:]:
        name = _text(raw)
        if engine.acl.delete_user(name):
            deleted += 1
            # Redis disconnects the clients authenticated as a deleted user.
            _disconnect(ctx, lambda user, name=name: user == name)
    return deleted


def _disconnect(ctx, chosen) -> None:
    """Close the connections whose user name is ``chosen`` (the asking one after its reply)."""
    for client in list(ctx.engine.clients.values()):
        if chosen(client.user):
            if client is ctx.client:
                client.close_after_reply = True
            else:
                client.transport.close()


def getuser(ctx, argv):
    user = ctx.engine.acl.users.get(_text(argv[2]))
    if user is None:
        return None
    return Map({
        b"flags": user.flags(),
        b"passwords": [digest.encode() for digest in user.passwords],
        b"commands": user.describe_commands(ctx.engine.commands).encode(),
        b"keys": user.describe_keys().encode(),
        b"channels": user.describe_channels().encode(),
        b"selectors": [Map({b"commands": selector.describe_commands(ctx.engine.commands).encode(),
                            b"keys": selector.describe_keys().encode(),
                            b"channels": selector.describe_channels().encode()})
                       for selector in user.selectors],
    })


def list_(ctx, argv):
    users = ctx.engine.acl.users
    registry = ctx.engine.commands
    return [users[name].describe(registry).encode() for name in sorted(users)]


def users_(ctx, argv):
    return [name.encode() for name in sorted(ctx.engine.acl.users)]


def whoami(ctx, argv):
    return ctx.client.user.encode()


def cat(ctx, argv):
    if len(argv) == 2:
        return [c.encode() for c in CATEGORIES]
    category = _text(argv[2]).lower()
    if category not in CATEGORIES:
        raise CommandError(f"ERR Unknown category '{_text(argv[2])}'")
    return [name.encode() for name in category_members(ctx.engine.commands, category)]


def dryrun(ctx, argv):
    engine = ctx.engine
    name = _text(argv[2])
    user = engine.acl.users.get(name)
    if user is None:
        raise CommandError(f"ERR User '{name}' not found")
    command_argv = argv[3:]
    spec = engine.commands.get(command_argv[0].lower())
    if spec is None:
        raise CommandError(f"ERR Command '{_text(command_argv[0])}' not found")
    arity = spec.arity
    if (arity > 0 and len(command_argv) != arity) or len(command_argv) < -arity:
        raise CommandError(errors.wrong_arity(spec.name))
    denied = user.denied(spec, command_argv)
    if denied is None:
        return OK
    # By identity, not by words: "pubsub|channels" in a command refusal is no channel one.
    if denied == NOPERM_KEY:
        key = user.first_denied_key(spec, command_argv) or b""
        return f"This user has no permissions to access the '{_text(key)}' key".encode()
    if denied == NOPERM_CHANNEL:
        channel = user.first_denied_channel(spec, command_argv) or b""
        return f"This user has no permissions to access the '{_text(channel)}' channel".encode()
    return ("T" + denied.removeprefix("NOPERM t")).encode()


def genpass(ctx, argv):
    bits = 256
    if len(argv) == 3:
        bits = parse_int(argv[2], errors.NOT_INTEGER)
        if not 0 < bits <= 4096:
            raise CommandError("ERR ACL GENPASS argument must be the number of bits for the "
                               "output password, a positive number up to 4096")
    return os.urandom((bits + 7) // 8).hex()[: (bits + 3) // 4].encode()


def log(ctx, argv):
    """ACL LOG [count | RESET]: the newest denials and failed logins (10 by default)."""
    acl_log = ctx.engine.acl.log
    if len(argv) > 3:
        raise CommandError(errors.sanitize(
            "ERR unknown subcommand or wrong number of arguments for "
            f"'{argv[1].decode('utf-8', 'replace')}'. Try ACL HELP."))
    if len(argv) == 3 and argv[2].lower() == b"reset":
        acl_log.reset()
        return OK
    count = parse_int(argv[2], errors.NOT_INTEGER) if len(argv) == 3 else ACLLOG_DEFAULT_COUNT
    return acl_log.reply(count)


def load(ctx, argv):
    """ACL LOAD: the aclfile's users replace all users, or nothing changes."""
    engine = ctx.engine
    filename = engine.config.aclfile
    if not filename:
        raise CommandError(NO_ACL_FILE)
    try:
        engine.acl.replace_users(read_acl_file(filename, engine.commands))
    except AclFileError as error:
        raise CommandError(errors.sanitize(f"ERR {error}")) from None
    # As Redis: every user but ``default`` is a new object now, and the connections
    # authenticated as one of the old ones are closed (this one after its reply).
    _disconnect(ctx, lambda user: user != "default")
    return OK


def save(ctx, argv):
    """ACL SAVE: ACL LIST's lines to the aclfile, written and fsynced in a worker thread
    (a slow disk does not stop the other clients)."""
    engine = ctx.engine
    filename = engine.config.aclfile
    if not filename:
        raise CommandError(NO_ACL_FILE)
    text = acl_file_text(engine.acl.users, engine.commands)

    async def write() -> object:
        if await trio.to_thread.run_sync(write_acl_file, filename, text):
            return OK
        engine.log.warning(f"Writing ACL file {filename!r} for ACL SAVE failed")
        raise CommandError(SAVE_FAILED)

    return ctx.wait_on(write())


def help_(ctx, argv):
    return help_reply(_HELP)


_SUBCOMMANDS = {
    b"setuser": setuser, b"deluser": deluser, b"getuser": getuser, b"list": list_,
    b"users": users_, b"whoami": whoami, b"cat": cat, b"dryrun": dryrun, b"genpass": genpass,
    b"log": log, b"load": load, b"save": save, b"help": help_,
}
# Arity of each subcommand, counting "ACL" and the subcommand (Redis's numbers).
_ARITY = {
    b"setuser": -3, b"deluser": -3, b"getuser": 3, b"list": 2, b"users": 2, b"whoami": 2,
    b"cat": -2, b"dryrun": -4, b"genpass": -2, b"log": -2, b"load": 2, b"save": 2, b"help": 2,
}


def register(registry):
    registry.extend([
        command("acl", -2, "admin noscript loading stale", acl, group="server",
                subcommands={s.decode(): _ARITY[s] for s in _SUBCOMMANDS}),
    ])
