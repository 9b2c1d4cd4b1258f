"""trioredis-hello: an example plugin that lives in its own distribution.

It shows the two things most plugins do, using only trioredis's public API:

* add a command (``HELLOWORLD [name]``) through ``trioredis_register_commands``;
* add a data type (a counter: ``COUNTER.INCRBY key delta``, ``COUNTER.GET key``) together with
  the hooks that let the type live in the keyspace like a built-in one: its TYPE name, the
  commands that rebuild it in an AOF rewrite (and DEBUG DIGEST), and its snapshot form.

trioredis finds it through the ``trioredis`` entry point declared in pyproject.toml.
"""

from __future__ import annotations

import re

from trioredis import CommandError, command, hookimpl

__version__ = "0.1.0"

TYPE_NAME = "counter"  # what TYPE prints
SNAPSHOT_TAG = "trioredis-hello.counter"  # names the type inside a snapshot file
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(rb"-?(?:0|[1-9][0-9]*)")


class Counter:
    """The value stored in the keyspace.  A class of the plugin's own, so ``get_typed``
    tells it apart from strings and other types (WRONGTYPE)."""

    __slots__ = ("total",)

    def __init__(self, total: int = 0) -> None:
        self.total = total


def _parse_int(raw: bytes) -> int:
    """An integer as Redis parses one (no sign '+', no spaces, no leading zeros, 64 bits)."""
    if _INTEGER.fullmatch(raw) is None or not INT64_MIN <= int(raw) <= INT64_MAX:
        raise CommandError("ERR value is not an integer or out of range")
    return int(raw)


# --- commands ------------------------------------------------------------------------------


def helloworld(ctx, argv):
    """HELLOWORLD [name]: a greeting; reads nothing, writes nothing."""
    name = argv[1] if len(argv) > 1 else b"world"
    return b"Hello, " + name + b"!"


def counter_incrby(ctx, argv):
    """COUNTER.INCRBY key delta: add ``delta`` to the counter (created at 0), reply the total.

    The command is deterministic as sent, so the engine propagates it unchanged to the AOF
    (no ``ctx.propagate`` needed); ``ctx.dirty`` says the dataset changed."""
    key, delta = argv[1], _parse_int(argv[2])
    counter = ctx.db.get_typed(key, Counter)
    if counter is None:
        counter = Counter()
        ctx.db.set(key, counter)
    total = counter.total + delta
    if not INT64_MIN <= total <= INT64_MAX:
        raise CommandError("ERR increment or decrement would overflow")
    counter.total = total
    ctx.dirty += 1
    return total


def counter_get(ctx, argv):
    """COUNTER.GET key: the total, or null when the key does not exist."""
    counter = ctx.db.get_typed(argv[1], Counter)
    return None if counter is None else counter.total


@hookimpl
def trioredis_register_commands(registry):
    registry.extend([
        command("helloworld", -1, "readonly fast", helloworld, group="hello",
                summary="Returns a greeting"),
        command("counter.incrby", 3, "write denyoom fast", counter_incrby, (1, 1, 1),
                group="hello", summary="Adds to a counter and returns its total"),
        command("counter.get", 2, "readonly fast", counter_get, (1, 1, 1), group="hello",
                summary="Returns the total of a counter"),
    ])


# --- the data type's hooks -----------------------------------------------------------------


@hookimpl
def trioredis_value_type(value):
    return TYPE_NAME if value.__class__ is Counter else None


@hookimpl
def trioredis_rewrite_value(db, key, value, expire_ms):
    """One COUNTER.INCRBY on an empty key rebuilds the counter; the TTL follows as
    PEXPIREAT.  Returns None for values that are not ours, so core (or another plugin)
    answers for them."""
    if value.__class__ is not Counter:
        return None
    commands = [[b"COUNTER.INCRBY", key, b"%d" % value.total]]
    if expire_ms is not None:
        commands.append([b"PEXPIREAT", key, b"%d" % expire_ms])
    return commands


@hookimpl
def trioredis_snapshot_encode(value):
    if value.__class__ is not Counter:
        return None
    return SNAPSHOT_TAG, value.total


@hookimpl
def trioredis_snapshot_decode(type_tag, payload):
    if type_tag != SNAPSHOT_TAG:
        return None
    return Counter(int(payload))
