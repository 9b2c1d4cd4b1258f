"""Core's own command groups, registered through the same hook a plugin uses."""

from __future__ import annotations

import importlib

from ..hookspecs import hookimpl

# One module per group; each ends with ``register(registry)``.
GROUPS = (
    "connection",
    "keys",
    "strings",
    "transactions",
    "server",
    "introspection",
    "lists",
    "hashes",
    "sets",
    "zsets",
    "streams",
    "pubsub",
    "acl",
    "observability",
    "operator",
    "dump",
    "bitmaps",
    "sort",
    "scripting",
    "hyperloglog",
    "geo",
    "memory",
    "standalone",
    "replication",
)


@hookimpl
def trioredis_register_commands(registry):
    for group in GROUPS:
        importlib.import_module(f"{__package__}.{group}").register(registry)


@hookimpl
def trioredis_rewrite_value(db, key, value, expire_ms):
    from ..rewrite import rewrite_builtin

    return rewrite_builtin(key, value, expire_ms)


@hookimpl
def trioredis_snapshot_encode(value):
    from ..stream import Stream, snapshot_payload

    if value.__class__ is Stream:
        return "stream", snapshot_payload(value)
    return None


@hookimpl
def trioredis_snapshot_decode(type_tag, payload):
    if type_tag == "stream":
        from ..stream import stream_from_snapshot

        return stream_from_snapshot(payload)
    return None


@hookimpl
def trioredis_value_type(value):
    from ..keyspace import TYPE_NAMES

    return TYPE_NAMES.get(type(value))
