"""A test-only plugin (``loadplugin listhash_recorder``): records every propagated effect, so
tests see what the engine hands to persistence backends and replicas."""

from trioredis import hookimpl

PROPAGATED: list[tuple[int, list[bytes]]] = []


@hookimpl
def trioredis_command_propagated(db, argv):
    PROPAGATED.append((db, list(argv)))


def propagated() -> list[list[bytes]]:
    """What was propagated since the last ``PROPAGATED.clear()``, without the db."""
    return [argv for _db, argv in PROPAGATED]
