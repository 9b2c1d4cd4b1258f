"""The AOF backend: every write appended to ``dir/appendfilename`` before its reply leaves.

A third-party-style plugin: it imports only ``trioredis``'s public API and reaches the server
through the hooks.  ``appendfsync`` decides what a power loss costs (always / everysec / no),
``BGREWRITEAOF`` (and auto-rewrite) compacts the file in a forked child, start-up replays the
file and repairs a torn tail, and ``trioredis-check-aof`` (:mod:`.check`) checks and fixes a
file offline.  shared/DESIGN.md section 3 is the specification; :mod:`.backend` holds the
ordering and durability rules, each with a comment saying what a crash loses.
"""

from __future__ import annotations

from typing import Any

import trio
from trioredis import (
    CommandError,
    CommandRegistry,
    Config,
    PersistenceRegistry,
    errors,
    hookimpl,
    parse_timeout,
)
from trioredis import command as command_spec
from trioredis.config_table import (
    FILENAME,
    IMMUTABLE,
    INT_MAX,
    LLONG_MAX,
    Option,
    boolean,
    enum,
    integer,
    memory,
    string,
)

from .backend import AofBackend, AofLoadError, State

# The AOF's own options, as Redis 7.0 declares them (names, defaults, bounds, flags); core
# makes them known to the config file and CONFIG GET/SET/REWRITE.  The file names are
# immutable: a runtime change would make the next start load another file than the one
# holding the data.
AOF_OPTIONS: tuple[Option, ...] = (
    boolean("appendonly", False, applies="AOF on/off"),
    string("appendfilename", "appendonly.aof", flags=IMMUTABLE, confine=FILENAME,
           applies="AOF file name in dir"),
    string("appenddirname", "appendonlydir", flags=IMMUTABLE, confine=FILENAME,
           applies="Redis 7's multi-part AOF directory, imported at start-up"),
    enum("appendfsync", ("everysec", "always", "no"), "everysec", applies="fsync policy"),
    boolean("no-appendfsync-on-rewrite", False, applies="fsync while a child writes"),
    integer("auto-aof-rewrite-percentage", 100, 0, INT_MAX, applies="automatic rewrites"),
    memory("auto-aof-rewrite-min-size", 64 * 1024 * 1024, 0, LLONG_MAX,
           applies="automatic rewrites"),
    boolean("aof-load-truncated", True, applies="a torn tail at start-up"),
)


@hookimpl
def trioredis_add_options(registry: Any) -> None:
    for option in AOF_OPTIONS:
        registry.add(option)


@hookimpl
def trioredis_register_persistence(registry: PersistenceRegistry, config: Config) -> None:
    registry.add(AofBackend(config))


@hookimpl
def trioredis_register_commands(registry: CommandRegistry) -> None:
    registry.add(command_spec("waitaof", 4, "noscript", waitaof, group="generic",
                              summary="Blocks until the preceding writes are fsynced to the AOF"))


def _non_negative(word: bytes, error: str) -> int:
    try:
        value = int(word)
    except ValueError:
        raise CommandError(errors.NOT_INTEGER) from None
    if value < 0:
        raise CommandError(error)
    return value


def waitaof(ctx: Any, argv: list[bytes]) -> Any:
    """``WAITAOF numlocal numreplicas timeout`` (Redis 7.2): block until this client's writes
    are fsynced to the local AOF; replies ``[numlocal_fsynced, 0]`` (there are no replicas).
    Under ``always`` the writes already are, so it answers at once."""
    numlocal = _non_negative(argv[1], "ERR value is out of range, must be positive")
    numreplicas = _non_negative(argv[2], "ERR value is out of range, must be positive")
    timeout = parse_timeout(argv[3], unit_seconds=False)  # Redis's ms timeout rules
    backend = ctx.backend(AofBackend.name)
    enabled = backend is not None and backend.state is State.ON
    if numlocal and not enabled:
        raise CommandError(
            "ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.")
    if backend is None or not enabled:
        return [0, 0]
    position = backend.fed_position  # includes this batch's writes, flushed before we wait
    if (not numlocal and not numreplicas) or ctx.in_transaction:  # as WAIT: no wait in EXEC
        return [1 if backend.durable_position >= position else 0, 0]
    async def wait() -> list[int]:
        backend.flush()
        fsynced = await backend.wait_fsynced(position, timeout)
        if numreplicas and timeout:  # no replica will ever acknowledge
            await trio.sleep(timeout)
        return [1 if fsynced else 0, 0]

    return ctx.wait_on(wait())


__all__ = ["AofBackend", "AofLoadError"]
