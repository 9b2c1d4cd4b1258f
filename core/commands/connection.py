"""Connection commands: PING ECHO QUIT SELECT AUTH HELLO RESET CLIENT."""

from __future__ import annotations

import time

from .. import REDIS_VERSION, errors
from ..client import REPLY_OFF, REPLY_SKIP, REPLY_SKIP_NEXT
from ..client_memory import memory_fields
from ..engine import Block
from ..errors import CommandError
from ..observability import of as observer_of
from ..resp import NULL_ARRAY, OK, PONG, ErrorReply, Map, Raw, Status, Verbatim
from ..tracking import flags as tracking_flags
from ..tracking import redirect_of
from . import command
from .args import help_reply, parse_c_int, parse_int, parse_timeout
from .client_caching import (
    client_caching,
    client_pause,
    client_tracking,
    client_trackinginfo,
    client_unpause,
)

NO_REPLY = Raw(b"")  # a command that answers nothing (CLIENT REPLY OFF and SKIP)


def ping(ctx, argv):
    client = ctx.client
    if client.in_pubsub and not client.resp3:
        return [b"pong", argv[1] if len(argv) > 1 else b""]
    if len(argv) == 1:
        return PONG
    if len(argv) == 2:
        return argv[1]
    raise CommandError(errors.wrong_arity("ping"))


def echo(ctx, argv):
    return argv[1]


def quit_(ctx, argv):
    ctx.client.close_after_reply = True
    return OK


def select(ctx, argv):
    index = parse_c_int(argv[1])
    if not 0 <= index < len(ctx.keyspace):
        raise CommandError(errors.INVALID_DB_INDEX)
    ctx.select(index)
    return OK


def _check_password(ctx, username: bytes, password: bytes, command: bytes) -> None:
    """Log the client in as ``username`` (trioredis.acl compares in constant time); a
    failure goes to ACL LOG under the command's name as sent (AUTH, HELLO)."""
    engine = ctx.engine
    user = engine.acl.authenticate(username, password)
    if user is None:
        engine.acl.log.add("auth", command, username,
                           lambda: client_info_line(engine, ctx.client),
                           engine.config.acllog_max_len)
        raise CommandError(errors.WRONGPASS)
    ctx.client.user = user.name
    ctx.client.authenticated = True


def auth(ctx, argv):
    if len(argv) > 3:
        raise CommandError(errors.SYNTAX)
    if len(argv) == 2 and ctx.engine.acl.users["default"].nopass:
        raise CommandError(errors.AUTH_NOT_CONFIGURED)
    username, password = (b"default", argv[1]) if len(argv) == 2 else (argv[1], argv[2])
    _check_password(ctx, username, password, argv[0])
    return OK


def hello(ctx, argv):
    client = ctx.client
    index = 1
    if len(argv) > 1:
        try:
            version = int(argv[1])
        except ValueError:
            raise CommandError("ERR Protocol version is not an integer or out of range") from None
        if version not in (2, 3):
            raise CommandError("NOPROTO unsupported protocol version")
        index = 2
    else:
        version = 3 if client.resp3 else 2
    setname = None
    while index < len(argv):
        option = argv[index].lower()
        if option == b"auth" and index + 2 < len(argv):
            _check_password(ctx, argv[index + 1], argv[index + 2], argv[0])
            index += 3
        elif option == b"setname" and index + 1 < len(argv):
            setname = argv[index + 1]
            index += 2
        else:
            raise CommandError(f"ERR Syntax error in HELLO option '{argv[index].decode('utf-8', 'replace')}'")
    if not client.authenticated:
        raise CommandError(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
            "the RESP protocol version at the same time"
        )
    if setname is not None:
        _validate_name(setname)
        client.name = setname
    client.resp3 = version == 3
    return Map({
        b"server": b"redis",
        b"version": REDIS_VERSION.encode(),
        b"proto": version,
        b"id": client.id,
        b"mode": b"standalone",
        b"role": b"master",
        b"modules": [],
    })


def reset(ctx, argv):
    engine, client = ctx.engine, ctx.client
    client.multi = None
    client.multi_error = False
    engine.unwatch(client)
    engine.pubsub.drop(client)
    client.channels.clear()
    client.patterns.clear()
    ctx.select(0)
    client.resp3 = False
    client.name = b""
    client.no_evict = False
    # CLIENT REPLY OFF and a pending SKIP end (+RESET is sent); a SKIP that applies to this
    # very command stays, so RESET right after CLIENT REPLY SKIP answers nothing, as in Redis.
    client.set_reply_flags(client.reply_flags & REPLY_SKIP)
    client.user = "default"
    client.authenticated = not engine.acl.default_needs_auth()
    engine.tracking.disable(client)  # RESET ends client-side caching, as in Redis
    return Status(b"RESET")


def _validate_name(name: bytes) -> None:
    if any(c <= 32 or c > 126 for c in name):
        raise CommandError("ERR Client names cannot contain spaces, newlines or special characters.")


def client_info_line(engine, client, current: bytes | None = None,
                     argv: list[bytes] | None = None) -> bytes:
    """One line of CLIENT LIST / CLIENT INFO, with Redis 7's fields (plus 7.2's lib-name and
    lib-ver, which redis-py sets).  ``current`` names the command being run by the client
    asking (``client|list``), as Redis shows it, and ``argv`` is that command (its bytes are
    ``argv-mem``); the memory fields are :mod:`trioredis.client_memory`'s."""
    now = time.monotonic()
    # Redis's letters, in its order: O monitor, P subscribed, x in MULTI, b blocked, d a
    # WATCHed key changed, c closing after this reply, U unix socket, e no-evict; N for none.
    flags = "".join(letter for letter, on in (
        ("O", client.id in observer_of(engine).monitors), ("P", client.in_pubsub), ("x", client.multi is not None),
        ("b", client.blocked), (tracking_flags(client), bool(client.tracking)),
        ("d", client.dirty_cas), ("c", client.close_after_reply),
        ("U", client.addr.startswith("/")), ("e", client.no_evict)) if on) or "N"
    multi = len(client.multi) if client.multi is not None else -1
    command_name = current or client.last_command.lower().encode()
    memory = memory_fields(engine, client, argv)
    fields = [
        ("id", client.id), ("addr", client.addr), ("laddr", client.laddr), ("fd", client.fd),
        ("name", client.name.decode("utf-8", "replace")), ("age", int(now - client.created)),
        ("idle", int(now - client.last_interaction)), ("flags", flags), ("db", client.db.index),
        ("sub", len(client.channels)), ("psub", len(client.patterns)), ("ssub", len(client.shard_channels)),
        ("multi", multi), *memory,
        ("events", "rw" if client.output_buffer else "r"),
        ("cmd", command_name.decode("utf-8", "replace")),
        ("user", client.user), ("redir", redirect_of(client)), ("resp", 3 if client.resp3 else 2),
        ("lib-name", client.lib_name.decode("utf-8", "replace")),
        ("lib-ver", client.lib_ver.decode("utf-8", "replace")),
    ]
    return " ".join(f"{k}={v}" for k, v in fields).encode()


_CLIENT_TYPES = (b"normal", b"master", b"replica", b"slave", b"pubsub")


def _of_type(clients, raw_kind: bytes):
    kind = raw_kind.lower()
    if kind not in _CLIENT_TYPES:
        raise CommandError(f"ERR Unknown client type '{raw_kind.decode('utf-8', 'replace')}'")
    if kind == b"pubsub":
        return [c for c in clients if c.in_pubsub]
    if kind == b"normal":
        return [c for c in clients if not c.in_pubsub]
    return []  # no replication here: no master or replica clients


def _client_id(ctx, argv):
    return ctx.client.id


def _client_setname(ctx, argv):
    _validate_name(argv[2])
    ctx.client.name = argv[2]
    return OK


def _client_getname(ctx, argv):
    return ctx.client.name or None


def _client_info(ctx, argv):
    return Verbatim(client_info_line(ctx.engine, ctx.client, b"client|info", argv) + b"\n")


def _client_list(ctx, argv):
    engine = ctx.engine
    clients = list(engine.clients.values())
    if len(argv) > 2:
        option = argv[2].lower()
        if option == b"type" and len(argv) == 4:
            clients = _of_type(clients, argv[3])
        elif option == b"id" and len(argv) >= 4:
            ids = set()
            for raw in argv[3:]:
                try:
                    ids.add(parse_int(raw))
                except CommandError:
                    raise CommandError("ERR Invalid client ID") from None
            clients = [c for c in clients if c.id in ids]
        else:
            raise CommandError(errors.SYNTAX)
    return Verbatim(b"".join(
        (client_info_line(engine, c, b"client|list", argv) if c is ctx.client
         else client_info_line(engine, c)) + b"\n"
        for c in clients
    ))


def _client_setinfo(ctx, argv):
    """CLIENT SETINFO is Redis 7.2's; redis-py sends it on connect, so it is here too."""
    attribute = argv[2].lower()
    if attribute not in (b"lib-name", b"lib-ver"):
        raise CommandError(f"ERR Unrecognized option '{argv[2].decode('utf-8', 'replace')}'")
    if any(c < 33 or c > 126 for c in argv[3]):
        raise CommandError(
            f"ERR {attribute.decode()} cannot contain spaces, newlines or special characters."
        )
    if attribute == b"lib-name":
        ctx.client.lib_name = argv[3]
    else:
        ctx.client.lib_ver = argv[3]
    return OK


def _client_no_evict(ctx, argv):
    mode = argv[2].lower()
    if mode not in (b"on", b"off"):
        raise CommandError(errors.SYNTAX)
    ctx.client.no_evict = mode == b"on"
    return OK


def _client_no_touch(ctx, argv):
    if argv[2].lower() not in (b"on", b"off"):
        raise CommandError(errors.SYNTAX)
    return OK


def _client_reply(ctx, argv):
    """CLIENT REPLY ON|OFF|SKIP as Redis 7.0: ON answers +OK (the flags are cleared first);
    OFF and SKIP answer nothing at all (an empty Raw: inside EXEC they leave no element, as in
    Redis); SKIP under OFF changes nothing.  The transport drops the replies
    (``Server._after_reply``); a SKIP given inside MULTI applies to the command after EXEC."""
    client = ctx.client
    mode = argv[2].lower()
    if mode == b"on":
        client.set_reply_flags(client.reply_flags & REPLY_SKIP_NEXT)
        return OK
    if mode == b"off":
        client.set_reply_flags(client.reply_flags | REPLY_OFF)
        return NO_REPLY
    if mode == b"skip":
        if not client.reply_flags & REPLY_OFF:
            client.set_reply_flags(client.reply_flags | REPLY_SKIP_NEXT)
        return NO_REPLY
    raise CommandError(errors.SYNTAX)


def _client_unblock(ctx, argv):
    engine = ctx.engine
    target_id = parse_int(argv[2])
    if len(argv) == 4 and argv[3].lower() not in (b"error", b"timeout"):
        raise CommandError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    error = len(argv) == 4 and argv[3].lower() == b"error"
    target = engine.clients.get(target_id)
    if target is None or not target.blocked:
        return 0
    reply = ErrorReply(b"UNBLOCKED client unblocked via CLIENT UNBLOCK") if error else NULL_ARRAY
    return 1 if engine.unblock(target, reply) else 0


def _client_getredir(ctx, argv):
    return redirect_of(ctx.client)


def _client_help(ctx, argv):
    return help_reply(_CLIENT_HELP)


_CLIENT_HELP = [
    b"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"CACHING (YES|NO)",
    b"    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    b"GETREDIR",
    b"    Return the client ID we are redirecting to when tracking is enabled.",
    b"GETNAME",
    b"    Return the name of the current connection.",
    b"ID",
    b"    Return the ID of the current connection.",
    b"INFO",
    b"    Return information about the current client connection.",
    b"KILL <ip:port>",
    b"    Kill connection made from <ip:port>.",
    b"KILL <option> <value> [<option> <value> [...]]",
    b"    Kill connections. Options are:",
    b"    * ADDR (<ip:port>|<unixsocket>:0)",
    b"      Kill connections made from the specified address",
    b"    * LADDR (<ip:port>|<unixsocket>:0)",
    b"      Kill connections made to specified local address",
    b"    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    b"      Kill connections by type.",
    b"    * USER <username>",
    b"      Kill connections authenticated by <username>.",
    b"    * SKIPME (YES|NO)",
    b"      Skip killing current connection (default: yes).",
    b"LIST [options ...]",
    b"    Return information about client connections. Options:",
    b"    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    b"      Return clients of specified type.",
    b"UNPAUSE",
    b"    Stop the current client pause, resuming traffic.",
    b"PAUSE <timeout> [WRITE|ALL]",
    b"    Suspend all, or just write, clients for <timeout> milliseconds.",
    b"REPLY (ON|OFF|SKIP)",
    b"    Control the replies sent to the current connection.",
    b"SETNAME <name>",
    b"    Assign the name <name> to the current connection.",
    b"SETINFO <option> <value>",
    b"    Set client meta attr. Options are:",
    b"    * LIB-NAME: the client lib name.",
    b"    * LIB-VER: the client lib version.",
    b"UNBLOCK <clientid> [TIMEOUT|ERROR]",
    b"    Unblock the specified blocked client.",
    b"TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    b"         [OPTIN] [OPTOUT] [NOLOOP]",
    b"    Control server assisted client side caching.",
    b"TRACKINGINFO",
    b"    Report tracking status for the current connection.",
    b"NO-EVICT (ON|OFF)",
    b"    Protect current client connection from eviction.",
    b"HELP",
    b"    Prints this help.",
]


def _client_kill(ctx, argv):
    engine = ctx.engine
    clients = list(engine.clients.values())
    if len(argv) == 3:  # old form: CLIENT KILL addr:port
        address = argv[2].decode("utf-8", "replace")
        for target in clients:
            if target.addr == address:
                _kill(ctx, target)
                return OK
        raise CommandError("ERR No such client")
    if len(argv) % 2:
        raise CommandError(errors.SYNTAX)
    matches, skipme = clients, True
    for index in range(2, len(argv), 2):
        option, value = argv[index].lower(), argv[index + 1]
        text = value.decode("utf-8", "replace")
        if option == b"id":
            try:
                wanted = parse_int(value)
            except CommandError:
                wanted = 0
            if wanted <= 0:
                raise CommandError("ERR client-id should be greater than 0")
            matches = [c for c in matches if c.id == wanted]
        elif option == b"addr":
            matches = [c for c in matches if c.addr == text]
        elif option == b"laddr":
            matches = [c for c in matches if c.laddr == text]
        elif option == b"user":
            if text not in engine.acl.users:
                raise CommandError(errors.sanitize(f"ERR No such user '{text}'"))
            matches = [c for c in matches if c.user == text]
        elif option == b"type":
            matches = _of_type(matches, value)
        elif option == b"skipme":
            if value.lower() not in (b"yes", b"no"):
                raise CommandError(errors.SYNTAX)
            skipme = value.lower() == b"yes"
        else:
            raise CommandError(errors.SYNTAX)
    killed = 0
    for target in matches:
        if skipme and target is ctx.client:
            continue
        _kill(ctx, target)
        killed += 1
    return killed


def _kill(ctx, target) -> None:
    """The asking client is closed after its reply; any other at once."""
    if target is ctx.client:
        target.close_after_reply = True
    else:
        target.transport.close()


# name -> (arity counted from CLIENT as Redis counts subcommand arity, handler)
_CLIENT_SUBCOMMANDS = {
    b"id": (2, _client_id),
    b"setname": (3, _client_setname),
    b"getname": (2, _client_getname),
    b"info": (2, _client_info),
    b"list": (-2, _client_list),
    b"setinfo": (4, _client_setinfo),
    b"kill": (-3, _client_kill),
    b"no-evict": (3, _client_no_evict),
    b"no-touch": (3, _client_no_touch),
    b"reply": (3, _client_reply),
    b"unblock": (-3, _client_unblock),
    b"getredir": (2, _client_getredir),
    b"tracking": (-3, client_tracking),
    b"caching": (3, client_caching),
    b"trackinginfo": (2, client_trackinginfo),
    b"pause": (-3, client_pause),
    b"unpause": (2, client_unpause),
    b"help": (2, _client_help),
}


def client_(ctx, argv):
    sub = argv[1].lower()
    entry = _CLIENT_SUBCOMMANDS.get(sub)
    if entry is None:
        raise CommandError(errors.unknown_subcommand(argv[1], "CLIENT"))
    arity, handler = entry
    if (arity > 0 and len(argv) != arity) or len(argv) < -arity:
        raise CommandError(errors.wrong_arity(f"client|{sub.decode()}"))
    if sub in (b"unblock", b"pause") and len(argv) > 4:
        raise CommandError(
            f"ERR unknown subcommand or wrong number of arguments for '{argv[1].decode()}'. "
            "Try CLIENT HELP."
        )
    return handler(ctx, argv)


def wait(ctx, argv):
    """``WAIT numreplicas timeout`` (ms, 0 forever).  This server has no replicas, so none
    ever acknowledges: 0 at once when none is asked for (and inside MULTI, as Redis), else 0
    when the timeout runs out, as Redis answers without replicas."""
    numreplicas = parse_int(argv[1])
    timeout = parse_timeout(argv[2], unit_seconds=False)
    if numreplicas <= 0:
        return 0
    return Block([], timeout, _no_acknowledgement, timeout_reply=0, unflagged=True)


def _no_acknowledgement(ctx) -> None:
    return None


def register(registry):
    registry.extend([
        command("ping", -1, "fast", ping, group="connection"),  # as Redis: -LOADING while loading
        command("echo", 2, "fast stale loading", echo, group="connection"),
        command("quit", -1, "noscript fast stale loading noauth allow-busy", quit_, group="connection"),
        command("select", 2, "fast stale loading", select, group="connection"),
        command("auth", -2, "noscript noauth fast stale loading allow-busy", auth, group="connection"),
        command("hello", -1, "noscript noauth fast stale loading allow-busy", hello, group="connection"),
        command("reset", 1, "noscript noauth fast stale loading allow-busy", reset, group="connection"),
        command("client", -2, "admin stale loading", client_, group="connection",
                subcommands={name.decode(): arity
                             for name, (arity, _) in _CLIENT_SUBCOMMANDS.items()}),
        command("wait", 3, "noscript", wait, group="connection"),
    ])


__all__ = ["Raw", "register"]
