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

# Every container's subcommands carry their own categories in Redis 7.0 (the container itself
# has only @slow): a category rule (``-@write``, ``-@dangerous``) then allows or refuses each
# subcommand, not the whole command, so a user without @write cannot FUNCTION LOAD and one
# without @dangerous may still run ACL WHOAMI or CLIENT SETNAME.  The facts are Redis 7.0.15's
# COMMAND INFO; subcommands served beyond 7.0 (CLIENT SETINFO, NO-TOUCH) take the default.
_DANGEROUS_ADMIN = "admin slow dangerous"
_SUBCOMMAND_CATEGORIES: dict[str, tuple[str, dict[str, str]]] = {
    # command: (categories of the subcommands not listed, {subcommand: categories})
    "acl": (_DANGEROUS_ADMIN, {sub: "slow" for sub in ("cat", "genpass", "help", "whoami")}),
    "client": ("slow connection", {
        sub: "admin slow dangerous connection"
        for sub in ("kill", "list", "no-evict", "pause", "unblock", "unpause")}),
    "cluster": (_DANGEROUS_ADMIN, {sub: "slow" for sub in (
        "countkeysinslot", "getkeysinslot", "help", "info", "keyslot", "links", "myid", "nodes",
        "shards", "slots")}),
    "command": ("slow connection", {}),
    "config": (_DANGEROUS_ADMIN, {"help": "slow"}),
    "function": ("slow scripting", {
        sub: "write slow scripting" for sub in ("delete", "flush", "load", "restore")}),
    "latency": (_DANGEROUS_ADMIN, {"help": "slow"}),
    "memory": ("slow", {"usage": "read slow"}),
    "module": (_DANGEROUS_ADMIN, {"help": "slow"}),
    "object": ("keyspace read slow", {"help": "keyspace slow"}),
    "pubsub": ("pubsub slow", {"help": "slow"}),
    "script": ("slow scripting", {}),
    "slowlog": (_DANGEROUS_ADMIN, {"help": "slow"}),
    "xgroup": ("write stream slow", {"help": "stream slow"}),
    "xinfo": ("read stream slow", {"help": "stream slow"}),
}
# A container's own categories, where not just @slow.
_CONTAINER_CATEGORIES = {"command": "slow connection"}


def categories_of(spec: CommandSpec, sub: str | None = None) -> frozenset[str]:
    """The Redis categories of a command (or of one of its subcommands), from its flags and
    its group."""
    split = _SUBCOMMAND_CATEGORIES.get(spec.name)
    if split is not None:
        if sub is None:  # the container's own: @slow (COMMAND's also @connection)
            return frozenset(_CONTAINER_CATEGORIES.get(spec.name, "slow").split())
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
            # The container first (a rule on it covers every subcommand), then the
            # subcommands the category holds, as Redis applies a category rule.
            if category in categories_of(spec):
                members.append(spec.name)
            members += [f"{spec.name}|{sub}" for sub in spec.subcommands
                        if category in categories_of(spec, sub)]
        elif category in categories_of(spec):
            members.append(spec.name)
    return members
