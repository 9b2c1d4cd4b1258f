"""ACL categories: Redis 7.0's list (``ACL CAT``) and which commands (or subcommands) each
holds, derived from a command's declared categories and its group."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .commands import CommandRegistry, CommandSpec

# Redis 7.0's categories, in ``ACL CAT`` order.
CATEGORIES = (
    "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap",
    "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous",
    "connection", "transaction", "scripting",
)
# Command group (core/commands/<group>.py) -> Redis category.
_GROUP_CATEGORY = {
    "keys": "keyspace", "generic": "keyspace", "strings": "string", "lists": "list", "hashes": "hash", "sets": "set",
    "zsets": "sortedset", "pubsub": "pubsub", "transactions": "transaction",
    "connection": "connection", "bitmaps": "bitmap", "hyperloglog": "hyperloglog",
    "geo": "geo", "streams": "stream", "scripting": "scripting",
}
# Commands Redis puts in @dangerous without the admin flag.
_DANGEROUS = frozenset({
    "keys", "flushall", "flushdb", "sort", "sort_ro", "migrate", "restore", "restore-asking",
    "swapdb", "info", "role", "lastsave", "monitor", "shutdown", "save", "bgsave",
    "bgrewriteaof", "debug", "config", "client", "acl", "slowlog", "latency", "replicaof",
    "slaveof", "failover", "sync", "psync", "replconf", "module", "pfdebug", "pfselftest",
})

# Containers whose subcommands Redis 7.0 files under different categories: a category rule
# (``-@dangerous``) then allows or refuses each subcommand, not the whole command, so that a
# user without @dangerous may still run ACL WHOAMI or CLIENT SETNAME.
_SAFE_CLIENT = "slow connection"
_SUBCOMMAND_CATEGORIES: dict[str, tuple[str, dict[str, str]]] = {
    # command: (categories of the subcommands not listed, {subcommand: categories})
    "acl": ("admin slow dangerous", {"cat": "slow", "genpass": "slow", "help": "slow",
                                     "whoami": "slow"}),
    "config": ("admin slow dangerous", {"help": "slow"}),
    "client": ("admin slow dangerous connection", {
        sub: _SAFE_CLIENT for sub in ("caching", "getname", "getredir", "id", "info", "reply",
                                      "setname", "setinfo", "tracking", "trackinginfo",
                                      "no-touch", "help")}),
}


def categories_of(spec: CommandSpec, sub: str | None = None) -> frozenset[str]:
    """The Redis categories of a command (or of one of its subcommands), from its flags and
    its group."""
    split = _SUBCOMMAND_CATEGORIES.get(spec.name)
    if split is not None and sub is not None:
        return frozenset(split[1].get(sub, split[0]).split())
    found = {_GROUP_CATEGORY.get(c, c) for c in spec.categories}
    if spec.name in _DANGEROUS:
        found.add("dangerous")
    return frozenset(c for c in found if c in CATEGORIES)


def category_members(registry: CommandRegistry, category: str) -> list[str]:
    """``ACL CAT <category>``: command names, ``name|sub`` for split containers."""
    members = []
    for spec in registry:
        if spec.name in _SUBCOMMAND_CATEGORIES:
            members += [f"{spec.name}|{sub}" for sub in spec.subcommands
                        if category in categories_of(spec, sub)]
        elif category in categories_of(spec):
            members.append(spec.name)
    return members
