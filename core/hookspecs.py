"""The hook specifications: what a plugin may implement.

pluggy calls hooks synchronously, so every hook here is sync and cheap.  Work that takes time
(fsync, a forked child, a timer) lives on objects that hooks register: a persistence backend's
``run()`` task, a command handler.  Unless a docstring says otherwise, a hook

    Runs on: the trio thread; must not block.

Three groups, as shared/DESIGN.md section 2 lays out: command execution, persistence and
rewrite, plus the hooks a plugin type needs to live in the keyspace (type name, snapshot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .client import Client
    from .commands import CommandRegistry
    from .config import Config, OptionRegistry
    from .persistence import PersistenceRegistry

hookspec = pluggy.HookspecMarker("trioredis")
hookimpl = pluggy.HookimplMarker("trioredis")


# --- command execution ---------------------------------------------------------------------


@hookspec
def trioredis_register_commands(registry: CommandRegistry) -> None:
    """Add commands to the command table.

    Called once at start-up, after every plugin is registered and before the server listens.
    Call ``registry.add(CommandSpec(...))`` for each command: name, arity with Redis's sign
    convention (``-2`` means at least 2 words including the name), flags, key positions and a
    handler ``(ctx, argv) -> reply``.  The built-in command groups register through this same
    hook.  A name registered twice is an error at start-up, so a plugin cannot silently replace
    a built-in command.

    Runs on: the trio thread, before any client connects.
    """


@hookspec
def trioredis_command_propagated(db: int, argv: Sequence[bytes]) -> None:
    """A command changed the dataset.

    ``argv`` is the deterministic effect of the command (``SET k v PXAT <ms>`` for
    ``SET k v EX 10``, ``SREM`` for ``SPOP``), not what the client typed; ``db`` is the index of
    the database it applies to.  A transaction arrives as ``MULTI``, its commands, ``EXEC``.
    Keys that expire arrive as ``DEL``.  Persistence backends receive the same stream through
    their ``feed()`` method and need not implement this hook; it is for listeners (a keyspace
    mirror, statistics).  Not called while a dataset is being loaded.

    Runs on: the trio thread, inside command execution; must not block or raise.
    """


@hookspec
def trioredis_command_executed(client: Client, argv: Sequence[bytes], duration_us: int) -> None:
    """A command finished (successfully or with an error reply).

    For statistics, a slow log or MONITOR-like observers.  Only called when at least one plugin
    implements it, so the common path pays nothing.

    Runs on: the trio thread, after the command and before its reply is sent.
    """


# --- configuration -----------------------------------------------------------------------


@hookspec
def trioredis_add_options(registry: OptionRegistry) -> None:
    """Declare the plugin's own configuration options.

    :param registry: call ``registry.add(option)`` for each option, built with the helpers of
        :mod:`trioredis.config_table` (``boolean``, ``integer``, ``memory``, ``enum``,
        ``string``): its name as redis.conf spells it, default, bounds or values, flags
        (``IMMUTABLE``, ``PROTECTED``) and ``confine=FILENAME`` for a file name inside
        ``dir``.  A name (or alias) that core or another plugin already declares is an error
        at start-up.

    Declared options are known to the config file and the command line, to CONFIG GET, SET
    and REWRITE, and get core's checks (a ``FILENAME`` option is never a path); the value is
    the attribute of the same name (``-`` as ``_``) on the configuration the plugin is handed
    (``trioredis_register_persistence``, ``trioredis_config_changed``).  Returns nothing.

    Runs on: the main thread while the configuration is read, before the server starts (the
    hook may be called more than once: it must only declare).
    """


# --- persistence ---------------------------------------------------------------------------


@hookspec
def trioredis_register_persistence(registry: PersistenceRegistry, config: Config) -> None:
    """Add persistence backends.

    Called once at start-up with the initial configuration.  Call ``registry.add(backend)``
    with an object implementing :class:`trioredis.PersistenceBackend`: ``feed`` and ``flush``
    on every write batch, ``run`` as a task for the server's lifetime, ``load`` at start-up,
    ``save``/``rewrite`` for SAVE/BGSAVE/BGREWRITEAOF, ``aclose`` at shutdown.  A backend that
    a configuration disables (AOF with ``appendonly no``) is still registered and stays idle,
    so that ``CONFIG SET`` can switch it on.

    Runs on: the trio thread, before any client connects.
    """


@hookspec
def trioredis_config_changed(old: Config, new: Config) -> None:
    """CONFIG SET applied a change: ``new`` is the configuration in force from now on.

    Backends react here (``appendonly yes`` starts an AOF rewrite, ``save`` points change).
    Start async work by handing it to a task the plugin owns (for example through a memory
    channel read by its ``run()`` task), never by awaiting here.  To refuse the change, raise
    :class:`trioredis.ConfigError` with Redis's ``CONFIG SET failed (possibly related to
    argument 'x') - why`` text before acting on it: the client gets that error and the old
    configuration is applied again (this hook is called once more, from ``new`` back to
    ``old``), as Redis rolls back a failed apply.
    """


# --- rewrite -------------------------------------------------------------------------------


@hookspec(firstresult=True)
def trioredis_rewrite_value(
    db: int, key: bytes, value: Any, expire_ms: int | None
) -> Sequence[Sequence[bytes]] | None:
    """The commands that rebuild one key: used by an AOF rewrite and by DEBUG DIGEST.

    Return a list of commands (each a list of bytes): variadic commands of at most 64 items,
    then ``PEXPIREAT key <expire_ms>`` when ``expire_ms`` is not None.  Core answers for its
    own types; a plugin that adds a type answers for values of that type and returns None for
    the rest.  Stops at first non-None result.

    Runs on: the trio thread or inside a forked rewrite child (so it must not touch trio).
    """


@hookspec
def trioredis_dataset_preamble() -> Sequence[Sequence[bytes]] | None:
    """Commands that rebuild state a plugin keeps outside the keyspace, written before the
    keys by an AOF rewrite and stored in each snapshot, then replayed when the file loads
    (core's own function libraries come first: ``FUNCTION LOAD REPLACE`` each).

    Return a list of commands (each a list of bytes), or None.  They must replay the same
    on a server that already holds that state (DEBUG RELOAD).

    Runs on: the trio thread or inside a forked rewrite/snapshot child (must not touch trio).
    """


@hookspec
def trioredis_rewrite_started() -> None:
    """A background rewrite of the persistence file started (a child was forked)."""


@hookspec
def trioredis_rewrite_finished(ok: bool, stats: Mapping[str, Any]) -> None:
    """A background rewrite ended: ``ok`` is False when the child failed or was killed, in
    which case the old file is still the one in use.  ``stats`` holds at least ``kind``
    (``"aof"`` or ``"snapshot"``) and ``seconds``."""


# --- plugin types --------------------------------------------------------------------------


@hookspec(firstresult=True)
def trioredis_value_type(value: Any) -> str | None:
    """The type name (what TYPE prints) of a value a plugin stored in the keyspace, or None
    when the value is not one of the plugin's.  Stops at first non-None result."""


@hookspec(firstresult=True)
def trioredis_snapshot_encode(value: Any) -> tuple[str, Any] | None:
    """A plugin value as ``(type_tag, payload)`` where payload is msgpack-encodable, for the
    snapshot; None when the value is not the plugin's.  Stops at first non-None result.

    Runs on: the trio thread or inside a forked snapshot child (must not touch trio)."""


@hookspec(firstresult=True)
def trioredis_snapshot_decode(type_tag: str, payload: Any) -> Any | None:
    """The value that :func:`trioredis_snapshot_encode` turned into ``(type_tag, payload)``,
    or None when the tag is not the plugin's.  Stops at first non-None result."""
