"""How ``ACL LIST``, ``ACL GETUSER`` and ``ACL SAVE`` write a user's command rules: worked out
from what the user may run, as Redis 7.0 does, not replayed from the rules given.

Redis 7.0 keeps a bitmap (one bit per command and per subcommand) and rebuilds a description
from it each time (``ACLDescribeSelectorCommandRules`` in ``acl.c``):

1. ``+@all`` when the user was last given ``+@all``/``allcommands`` (it may then run commands
   loaded later), else ``-@all``;
2. then, again and again, the category that fits best: the one not used yet with the fewest
   commands that differ from the user's (and the most in common on a tie), provided it has
   more in common than it differs; ``+@cat`` after ``-@all``, ``-@cat`` after ``+@all``;
3. then single commands and subcommands, ``+name`` or ``-name|sub``, for what the categories
   left different, each container before its subcommands, with a command's allowed first
   arguments (``+select|0``) after it.

So ``+get -@dangerous +@hash`` reads ``-@all +@hash +get`` (``-@dangerous`` changed nothing).
Redis lists the single commands in its command table's hash order, which is random per
process; they come here in the registry's order.  The counts use Redis 7.0.15's commands only:
the ones served here from later versions (WAITAOF, CLIENT SETINFO, CLIENT NO-TOUCH) would
tip a choice Redis makes otherwise, and step 3 covers them anyway.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from .acl_categories import CATEGORIES, category_members

if TYPE_CHECKING:
    from .acl_rules import UserRules
    from .commands import CommandRegistry

# Served here, absent from Redis 7.0.15's command table.
NEWER_THAN_7_0 = frozenset({"waitaof", "client|setinfo", "client|no-touch"})


def _allowed(rules: UserRules, registry: CommandRegistry) -> set[str]:
    """The bitmap: every command and ``name|sub`` the user may run."""
    allowed = set()
    commands, granted, refused = rules.commands, rules.allowed_subs, rules.denied_subs
    for spec in registry:
        name = spec.name
        parent = name in commands
        if parent:
            allowed.add(name)
        for sub in spec.subcommands:
            full = f"{name}|{sub}"
            if (parent and full not in refused) or full in granted:
                allowed.add(full)
    return allowed


def _apply(bits: set[str], members: list[str], subs: dict[str, list[str]], add: bool) -> None:
    """``+@cat`` / ``-@cat`` on a bitmap: a container with the category takes its
    subcommands along (Redis's ``ACLChangeSelectorPerm``)."""
    change = bits.add if add else bits.discard
    for name in members:
        change(name)
        for full in subs.get(name, ()):
            change(full)


class _Table:
    """What the description needs of a registry, worked out once per registry (the command
    table is fixed once the server started): each container's subcommands, every name, and
    each category's members (and those Redis 7.0.15 counts)."""

    def __init__(self, registry: CommandRegistry) -> None:
        self.subs = {spec.name: [f"{spec.name}|{sub}" for sub in spec.subcommands]
                     for spec in registry if spec.subcommands}
        self.universe = [spec.name for spec in registry]
        for spec in registry:
            self.universe += self.subs.get(spec.name, ())
        self.members = {category: category_members(registry, category)
                        for category in CATEGORIES}
        self.counted = {category: [name for name in names if name not in NEWER_THAN_7_0]
                        for category, names in self.members.items()}


_tables: weakref.WeakKeyDictionary[CommandRegistry, _Table] = weakref.WeakKeyDictionary()


def describe_command_rules(rules: UserRules, registry: CommandRegistry) -> str:
    """The command part of a user's (or selector's) description, as Redis 7.0 writes it."""
    table = _tables.get(registry)
    if table is None:
        table = _tables[registry] = _Table(registry)
    allowed = _allowed(rules, registry)
    subs, universe, members, counted = table.subs, table.universe, table.members, table.counted

    additive = not rules.future_commands
    parts = ["-@all" if additive else "+@all"]
    fake = set() if additive else set(universe)  # what the description so far allows
    left = set(allowed)  # the user's bitmap with the chosen categories taken back
    applied: set[str] = set()
    while True:
        best = None
        fewest_different, most_same = None, 0
        for category in CATEGORIES:
            if category in applied:
                continue
            on = sum(1 for name in counted[category] if name in left)
            off = len(counted[category]) - on
            different, same = (off, on) if additive else (on, off)
            if same > different and (fewest_different is None or different < fewest_different
                                     or (different == fewest_different and same > most_same)):
                best, fewest_different, most_same = category, different, same
        if best is None:
            break
        applied.add(best)
        parts.append(("+@" if additive else "-@") + best)
        _apply(fake, members[best], subs, additive)
        _apply(left, members[best], subs, not additive)

    first_args = {}
    for full in rules.allowed_subs:
        name = full.partition("|")[0]
        if name not in subs:  # ``+select|0``: a first argument, not a subcommand
            first_args.setdefault(name, []).append(full)
    for spec in registry:
        name = spec.name
        mine = name in allowed
        if mine != (name in fake):
            parts.append(("+" if mine else "-") + name)
            _apply(fake, [name], subs, mine)
        for full in subs.get(name, ()):
            mine_sub = full in allowed
            if mine_sub != (full in fake):
                parts.append(("+" if mine_sub else "-") + full)
                _apply(fake, [full], subs, mine_sub)
        if not mine:
            parts += ["+" + full for full in sorted(first_args.get(name, ()))]
    return " ".join(parts)
