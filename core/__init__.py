"""trioredis: a Redis-compatible server on trio with pluggable persistence.

The public API for plugins is what this module exports; everything else is internal.
"""

__version__ = "0.1.0"
REDIS_VERSION = "7.0.15"  # the Redis version whose behaviour we follow (INFO redis_version)

from . import errors  # noqa: E402
from .children import (  # noqa: E402
    CHILD_DEFAULT_SIGNALS,
    CHILD_FAILED,
    CHILD_OK,
    ForkedChild,
    die_with_parent,
    fork_child,
    wait_child,
)
from .commands import CommandRegistry, CommandSpec, command  # noqa: E402
from .commands.args import parse_timeout  # noqa: E402
from .config import Config, ConfigError  # noqa: E402
from .engine import Block, CommandContext  # noqa: E402
from .errors import CommandError  # noqa: E402
from .hookspecs import hookimpl, hookspec  # noqa: E402
from .keyspace import Database, Keyspace, now_ms  # noqa: E402
from .persistence import (  # noqa: E402
    BackendHost,
    BaseBackend,
    EventTicket,
    ForkSlot,
    Loader,
    PersistenceBackend,
    PersistenceRegistry,
    Ticket,
)
from .resp import (  # noqa: E402
    NULL_ARRAY,
    OK,
    ErrorReply,
    Map,
    Raw,
    Status,
    append_command,
    encode,
    encode_command,
)
from .zset import ZSet  # noqa: E402

__all__ = [
    "REDIS_VERSION", "BackendHost", "BaseBackend", "Block", "CommandContext", "CommandError",
    "CommandRegistry", "CommandSpec", "Config", "ConfigError", "Database", "ErrorReply", "ForkSlot",
    "Keyspace", "Loader", "Map", "NULL_ARRAY", "OK", "PersistenceBackend",
    "PersistenceRegistry", "Raw", "Status", "ZSet", "__version__", "command",
    "encode", "encode_command", "errors", "wait_child", "die_with_parent", "hookimpl", "hookspec", "now_ms",
    "parse_timeout", "Ticket", "EventTicket",
    "append_command",
    "fork_child", "ForkedChild", "CHILD_OK", "CHILD_FAILED", "CHILD_DEFAULT_SIGNALS",
]
