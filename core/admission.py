"""Checks a command passes before it runs, kept out of the engine's dispatch for reading:
the cross-protocol (HTTP) guard, the DEBUG gate, and the ACL log of a refused command."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .acl import is_local_client
from .client import REPLY_OFF
from .config import protected_action_allowed

if TYPE_CHECKING:
    from .client import Client
    from .commands import CommandSpec
    from .engine import Engine

# The first words of an HTTP request's lines, which Redis treats as an attack.
CROSS_PROTOCOL_WORDS = frozenset({b"post", b"host:"})
CROSS_PROTOCOL_WARNING = (
    "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: "
    "commands to Redis. This is likely due to an attacker attempting to use Cross Protocol "
    "Scripting to compromise your Redis instance. Connection aborted.")
CROSS_PROTOCOL_LOG_INTERVAL = 60.0  # seconds: one line per attack wave, not per request


class CrossProtocolGuard:
    """An HTTP request (a browser page posting to the port): close the connection with no
    reply, before anything after it runs, and log it at most once a minute, as Redis's
    ``securityWarningCommand``.  Checked before authentication, unlike Redis: with a password
    set, Redis answers NOAUTH and reads on."""

    def __init__(self, log: Any) -> None:
        self._log = log
        self._logged = -CROSS_PROTOCOL_LOG_INTERVAL

    def refuse(self, client: Client) -> None:
        now = time.monotonic()
        if now - self._logged > CROSS_PROTOCOL_LOG_INTERVAL:
            self._logged = now
            self._log.warning(CROSS_PROTOCOL_WARNING)
        client.set_reply_flags(REPLY_OFF)
        client.close_after_reply = True
        return None


def debug_allowed(config: Any, client: Client) -> bool:
    """``enable-debug-command``: DEBUG for everyone (yes), local clients (local) or nobody
    (no, the default), as Redis 7 checks it before running the command."""
    return protected_action_allowed(config.enable_debug_command, is_local_client(client))


def log_denial(engine: Engine, client: Client, spec: CommandSpec, argv: list[bytes],
               denied: str) -> None:
    """ACL LOG: what ``client`` was refused, with its CLIENT LIST line."""
    from .commands.connection import client_info_line

    user = engine.acl.users.get(client.user)
    if user is None:
        reason, object_ = "command", spec.name.encode()
    else:
        reason, object_ = user.denied_object(spec, argv, denied)
    engine.acl.log.add(reason, object_, client.user.encode(),
                       lambda: client_info_line(engine, client),
                       engine.config.acllog_max_len,
                       "multi" if client.multi is not None else "toplevel")
