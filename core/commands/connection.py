"""Connection commands: PING ECHO QUIT SELECT AUTH HELLO RESET CLIENT."""

from __future__ import annotations

import hmac

from .. import REDIS_VERSION, errors
from ..errors import CommandError
from ..resp import NULL_ARRAY, OK, PONG, Map, Raw, Status
from . import command
from .args import parse_c_int, parse_int


def ping(ctx, argv):
    client = ctx.client
    if (client.channels or client.patterns) and not client.resp3:
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


def _check_password(ctx, username: bytes, password: bytes) -> None:
    required = ctx.config.requirepass
    if username != b"default" or not hmac.compare_digest(password, required.encode()):
        raise CommandError(errors.WRONGPASS)


def auth(ctx, argv):
    if len(argv) > 3:
        raise CommandError(errors.SYNTAX)
    if len(argv) == 2 and not ctx.config.requirepass:
        raise CommandError(errors.AUTH_NOT_CONFIGURED)
    username, password = (b"default", argv[1]) if len(argv) == 2 else (argv[1], argv[2])
    if not ctx.config.requirepass:
        if username == b"default":
            ctx.client.authenticated = True
            return OK
        raise CommandError(errors.WRONGPASS)
    _check_password(ctx, username, password)
    ctx.client.authenticated = True
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
            username, password = argv[index + 1], argv[index + 2]
            if ctx.config.requirepass:
                _check_password(ctx, username, password)
            elif username != b"default":
                raise CommandError(errors.WRONGPASS)
            client.authenticated = True
            index += 3
        elif option == b"setname" and index + 1 < len(argv):
            setname = argv[index + 1]
            index += 2
        else:
            raise CommandError(f"ERR Syntax error in HELLO option '{argv[index].decode('utf-8', 'replace')}'")
    if not client.authenticated:
        raise CommandError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
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
    pubsub = getattr(engine, "pubsub", None)
    if pubsub is not None:
        pubsub.drop(client)
    client.channels.clear()
    client.patterns.clear()
    ctx.select(0)
    client.resp3 = False
    client.name = b""
    client.no_evict = False
    client.authenticated = not ctx.config.requirepass
    return Status(b"RESET")


def _validate_name(name: bytes) -> None:
    if any(c <= 32 or c > 126 for c in name):
        raise CommandError("ERR Client names cannot contain spaces, newlines or special characters.")


def client_info_line(engine, client) -> bytes:
    """One line of CLIENT LIST / CLIENT INFO, with Redis 7's fields."""
    import time

    now = time.monotonic()
    flags = "N"
    if client.multi is not None:
        flags = "x"
    elif client.blocked:
        flags = "b"
    elif client.channels or client.patterns:
        flags = "P"
    multi = len(client.multi) if client.multi is not None else -1
    fields = [
        ("id", client.id), ("addr", client.addr), ("laddr", client.laddr), ("fd", client.fd),
        ("name", client.name.decode("utf-8", "replace")), ("age", int(now - client.created)),
        ("idle", int(now - client.last_interaction)), ("flags", flags), ("db", client.db.index),
        ("sub", len(client.channels)), ("psub", len(client.patterns)), ("ssub", 0),
        ("multi", multi), ("qbuf", 0), ("qbuf-free", 0), ("argv-mem", 0), ("multi-mem", 0),
        ("rbs", 0), ("rbp", 0), ("obl", 0), ("oll", 0), ("omem", 0), ("tot-mem", 0),
        ("events", "r"), ("cmd", client.last_command.decode().lower().replace(" ", "|")),
        ("user", client.user), ("redir", -1), ("resp", 3 if client.resp3 else 2),
        ("lib-name", client.lib_name.decode("utf-8", "replace")),
        ("lib-ver", client.lib_ver.decode("utf-8", "replace")),
    ]
    return " ".join(f"{k}={v}" for k, v in fields).encode()


def client_(ctx, argv):
    engine, client = ctx.engine, ctx.client
    sub = argv[1].lower()
    if sub == b"id" and len(argv) == 2:
        return client.id
    if sub == b"setname" and len(argv) == 3:
        _validate_name(argv[2])
        client.name = argv[2]
        return OK
    if sub == b"getname" and len(argv) == 2:
        return client.name or None
    if sub == b"info" and len(argv) == 2:
        return client_info_line(engine, client) + b"\n"
    if sub == b"list":
        clients = list(engine.clients.values())
        if len(argv) > 2:
            option = argv[2].lower()
            if option == b"type" and len(argv) == 4:
                kind = argv[3].lower()
                if kind not in (b"normal", b"master", b"replica", b"slave", b"pubsub"):
                    raise CommandError(f"ERR Unknown client type '{argv[3].decode('utf-8', 'replace')}'")
                want_pubsub = kind == b"pubsub"
                clients = [c for c in clients if bool(c.channels or c.patterns) == want_pubsub
                           and kind in (b"normal", b"pubsub")]
            elif option == b"id" and len(argv) >= 4:
                ids = {parse_int(raw, "ERR Invalid client ID") for raw in argv[3:]}
                clients = [c for c in clients if c.id in ids]
            else:
                raise CommandError(errors.SYNTAX)
        return b"".join(client_info_line(engine, c) + b"\n" for c in clients)
    if sub == b"setinfo" and len(argv) == 4:
        attribute = argv[2].lower()
        if attribute == b"lib-name":
            _validate_name(argv[3])
            client.lib_name = argv[3]
        elif attribute == b"lib-ver":
            _validate_name(argv[3])
            client.lib_ver = argv[3]
        else:
            raise CommandError(f"ERR Unrecognized option '{argv[2].decode('utf-8', 'replace')}'")
        return OK
    if sub == b"kill":
        return _client_kill(ctx, argv)
    if sub == b"no-evict" and len(argv) == 3:
        mode = argv[2].lower()
        if mode not in (b"on", b"off"):
            raise CommandError(errors.SYNTAX)
        client.no_evict = mode == b"on"
        return OK
    if sub == b"no-touch" and len(argv) == 3:
        return OK
    if sub == b"unblock" and len(argv) in (3, 4):
        target_id = parse_int(argv[2], "ERR value is not an integer or out of range")
        error = len(argv) == 4 and argv[3].lower() == b"error"
        if len(argv) == 4 and argv[3].lower() not in (b"error", b"timeout"):
            raise CommandError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
        target = engine.clients.get(target_id)
        if target is None or not target.blocked:
            return 0
        from ..resp import ErrorReply

        reply = ErrorReply(b"UNBLOCKED client unblocked via CLIENT UNBLOCK") if error else NULL_ARRAY
        return 1 if engine.unblock(target, reply) else 0
    if sub == b"reply" and len(argv) == 3:
        return OK
    if sub == b"help":
        return [b"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                b"ID", b"INFO", b"LIST", b"KILL", b"SETNAME", b"GETNAME", b"SETINFO",
                b"NO-EVICT", b"UNBLOCK"]
    raise CommandError(errors.unknown_subcommand(argv[1], "CLIENT"))


def _client_kill(ctx, argv):
    engine = ctx.engine
    clients = list(engine.clients.values())
    if len(argv) == 3:  # old form: CLIENT KILL addr:port
        for target in clients:
            if target.addr == argv[2].decode("utf-8", "replace"):
                target.transport.close()
                return OK
        raise CommandError("ERR No such client")
    index, matches, skipme = 2, clients, True
    if (len(argv) - 2) % 2:
        raise CommandError(errors.SYNTAX)
    while index < len(argv):
        option, value = argv[index].lower(), argv[index + 1]
        text = value.decode("utf-8", "replace")
        if option == b"id":
            wanted = parse_int(value, "ERR client-id should be greater than 0")
            matches = [c for c in matches if c.id == wanted]
        elif option == b"addr":
            matches = [c for c in matches if c.addr == text]
        elif option == b"laddr":
            matches = [c for c in matches if c.laddr == text]
        elif option == b"user":
            matches = [c for c in matches if c.user == text]
        elif option == b"type":
            kind = value.lower()
            matches = [c for c in matches if bool(c.channels or c.patterns) == (kind == b"pubsub")]
        elif option == b"skipme":
            if value.lower() not in (b"yes", b"no"):
                raise CommandError(errors.SYNTAX)
            skipme = value.lower() == b"yes"
        else:
            raise CommandError(errors.SYNTAX)
        index += 2
    killed = 0
    for target in matches:
        if skipme and target is ctx.client:
            continue
        if target is ctx.client:
            target.close_after_reply = True
        else:
            target.transport.close()
        killed += 1
    return killed


def register(registry):
    registry.extend([
        command("ping", -1, "fast stale loading", ping, group="connection"),
        command("echo", 2, "fast stale loading", echo, group="connection"),
        command("quit", -1, "fast stale loading noauth allow-busy", quit_, group="connection"),
        command("select", 2, "fast stale loading", select, group="connection"),
        command("auth", -2, "noauth fast stale loading no-multi", auth, group="connection"),
        command("hello", -1, "noauth fast stale loading no-multi", hello, group="connection"),
        command("reset", 1, "noauth fast stale loading", reset, group="connection"),
        command("client", -2, "admin stale loading", client_, group="connection",
                subcommands=("id", "setname", "getname", "info", "list", "setinfo", "kill",
                             "no-evict", "no-touch", "unblock", "reply")),
    ])


__all__ = ["Raw", "register"]
