"""Replication commands: SYNC, PSYNC, REPLCONF, REPLICAOF/SLAVEOF, ROLE (WAIT is in
``connection``).  The protocol and the state are :mod:`trioredis.replication`'s."""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import errors
from ..errors import CommandError
from ..replication.master import ReplicaLink, handshake_of, psync
from ..resp import OK, Raw
from . import command

NOMASTERLINK = "NOMASTERLINK Can't SYNC while not connected with my master"


def _long(raw: bytes) -> int:
    try:
        return int(raw)
    except ValueError:
        raise CommandError(errors.NOT_INTEGER) from None


def _refuse_sync_while_unlinked(ctx: Any) -> None:
    """A replica serves replicas of its own only while its link to its master is up."""
    master = ctx.engine.replication.master
    if master is not None and not master.up:
        raise CommandError(NOMASTERLINK)


def sync_(ctx: Any, argv: list[bytes]) -> Any:
    """SYNC: the old full resynchronisation (the RDB, then the stream, no +FULLRESYNC)."""
    _refuse_sync_while_unlinked(ctx)
    return psync(ctx.engine.replication, ctx.client, None, -1)


def psync_(ctx: Any, argv: list[bytes]) -> Any:
    """PSYNC replid offset: +CONTINUE from the backlog, or +FULLRESYNC replid offset."""
    wanted = _long(argv[2])
    _refuse_sync_while_unlinked(ctx)
    return psync(ctx.engine.replication, ctx.client, argv[1], wanted)


def replconf(ctx: Any, argv: list[bytes]) -> Any:
    """REPLCONF option value ...: what a replica tells its master before (and after) PSYNC.
    ACK and GETACK answer nothing."""
    if len(argv) % 2 == 0:
        raise CommandError(errors.SYNTAX)
    client = ctx.client
    repl = ctx.engine.replication
    for name, value in zip(argv[1::2], argv[2::2], strict=True):
        option = name.lower()
        if option == b"listening-port":
            handshake_of(client).port = _long(value)
        elif option == b"ip-address":
            handshake_of(client).ip = value.decode("latin-1")
        elif option == b"capa":
            shake = handshake_of(client)
            capa = value.lower()
            if capa == b"eof":
                shake.capa_eof = True
            elif capa == b"psync2":
                shake.capa_psync2 = True
        elif option == b"ack":
            link = client.repl
            if isinstance(link, ReplicaLink):
                offset = _long(value)
                link.ack_offset = max(link.ack_offset, offset)
                repl.note_ack()
            return Raw(b"")
        elif option == b"getack":
            return Raw(b"")  # a master asks its replicas: answered by the replica's link
        elif option == b"rdb-only":
            flag = _long(value)
            if flag not in (0, 1):
                raise CommandError("ERR value is out of range, value must between 0 and 1")
            handshake_of(client).rdb_only = bool(flag)
        elif option == b"rdb-filter-only":
            for word in value.split():
                if word.lower() != b"functions":
                    raise CommandError(
                        f"ERR Unsupported rdb-filter-only option: {word.decode('latin-1')}")
        else:
            raise CommandError(
                f"ERR Unrecognized REPLCONF option: {name.decode('latin-1')}")
    return OK


def replicaof(ctx: Any, argv: list[bytes]) -> Any:
    """REPLICAOF host port | NO ONE (and SLAVEOF)."""
    repl = ctx.engine.replication
    if argv[1].lower() == b"no" and argv[2].lower() == b"one":
        return Raw(b"+%s\r\n" % repl.replicaof(None).encode())
    try:
        port = int(argv[2])
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise CommandError("ERR Invalid master port")
    status = repl.replicaof(argv[1].decode("latin-1"), port)
    return Raw(b"+%s\r\n" % status.encode())


def role(ctx: Any, argv: list[bytes]) -> Any:
    """ROLE: ["master", offset, [[ip, port, acked offset], ...]] or ["slave", host, port,
    state, offset]."""
    repl = ctx.engine.replication
    master = repl.master
    if master is not None:
        return [b"slave", master.host.encode(), master.port, master.state.encode(),
                master.offset if master.up else -1]
    replicas = [[link.ip.encode(), b"%d" % link.port, b"%d" % link.ack_offset]
                for link in repl.replicas if link.state != "wait_bgsave"]
    return [b"master", repl.offset, replicas]


def register(registry: Any) -> None:
    group = "server"
    role_spec = command("role", 1, "noscript loading stale fast", role, group=group)
    registry.extend([
        command("sync", 1, "admin noscript no-async-loading no-multi", sync_, group=group),
        command("psync", -3, "admin noscript no-async-loading no-multi", psync_, group=group),
        command("replconf", -1, "admin noscript loading stale allow-busy", replconf,
                group=group),
        command("replicaof", 3, "admin noscript stale no-async-loading", replicaof,
                group=group),
        command("slaveof", 3, "admin noscript stale no-async-loading", replicaof, group=group),
        # ROLE is @admin @dangerous in Redis without the admin flag (Sentinel may call it).
        dataclasses.replace(role_spec, categories=role_spec.categories | {"admin", "dangerous"}),
    ])
