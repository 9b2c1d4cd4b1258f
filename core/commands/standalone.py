"""Cluster and failover commands as a standalone Redis 7.0 answers them: ASKING (cluster
support is disabled), RESTORE-ASKING (RESTORE under the name a cluster's MIGRATE sends; it
works without cluster too) and FAILOVER (its arguments checked in Redis's order, then refused
because no replica is connected).

FAILOVER counts replicas through :func:`connected_replicas`: the one place to change when
this server gains replicas (replication is another branch's work, issue #19).
"""

from __future__ import annotations

import dataclasses

from .. import errors
from ..errors import CommandError
from . import command
from .args import parse_int
from .dump import restore
from .operator import CLUSTER_DISABLED

FAILOVER_NOT_IN_PROGRESS = "ERR No failover in progress."
FAILOVER_BAD_TIMEOUT = "ERR FAILOVER timeout must be greater than 0"
FAILOVER_NO_REPLICAS = "ERR FAILOVER requires connected replicas."


def asking(ctx, argv):
    raise CommandError(CLUSTER_DISABLED)


def connected_replicas(ctx) -> int:
    """Replicas attached to this server: none, as it cannot serve any yet."""
    return 0


def failover(ctx, argv):
    """``FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms]``: ABORT alone answers that no
    failover runs; otherwise each option is parsed once (a repeat is a syntax error) and the
    state checks follow: no replica connected here, so that is the answer."""
    if len(argv) == 2 and argv[1].lower() == b"abort":
        raise CommandError(FAILOVER_NOT_IN_PROGRESS)
    timeout = 0
    host: bytes | None = None
    force = False
    index = 1
    while index < len(argv):
        option = argv[index].lower()
        more = len(argv) - index - 1
        if option == b"timeout" and more >= 1 and timeout == 0:
            timeout = parse_int(argv[index + 1])
            if timeout <= 0:
                raise CommandError(FAILOVER_BAD_TIMEOUT)
            index += 2
        elif option == b"to" and more >= 2 and host is None:
            parse_int(argv[index + 2])  # the port: an integer, checked before the host is kept
            host = argv[index + 1]
            index += 3
        elif option == b"force" and not force:
            force = True
            index += 1
        else:
            raise CommandError(errors.SYNTAX)
    # Then Redis checks: a failover already running, this server being a replica, no
    # replica connected.  Only the last can be true here, and always is.
    if connected_replicas(ctx) == 0:
        raise CommandError(FAILOVER_NO_REPLICAS)
    raise CommandError("ERR FAILOVER is not supported by this server")


def register(registry):
    restore_spec = command("restore-asking", -4, "write denyoom asking", restore,
                           group="generic")
    registry.extend([
        command("asking", 1, "fast", asking, group="connection"),
        dataclasses.replace(restore_spec,
                            categories=restore_spec.categories | {"dangerous"}),
        command("failover", -1, "admin noscript stale", failover, group="server"),
    ])


__all__ = ["asking", "connected_replicas", "failover", "register"]
