"""The command table: commands declared as data, registered through a hook.

Each group module (``strings``, ``keys``, ...) ends with ``register(registry)`` listing its
commands, so a group's surface reads at a glance.  :mod:`trioredis.commands.builtin` is the
plugin that registers them all through ``trioredis_register_commands``, like any third-party
plugin would.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[Any, list[bytes]], Any]
# A command whose keys move (``ZUNION numkeys key...``): argv -> its key arguments.
KeyFinder = Callable[[list[bytes]], list[bytes]]

# Key specs: what a command does with each of its keys, in Redis 7's words, one string per key
# (the last one serving every further key): ``"RW ACCESS DELETE"`` (LPOP), or
# ``("RW ACCESS DELETE", "RW INSERT")`` (LMOVE: source, destination).  RO/RW/OW/RM name the
# operation (read only, read-write, overwrite, remove); ACCESS means the value (or part of
# it) reaches the client, INSERT/UPDATE/DELETE that the key's value changes.  ACL checks, as
# Redis 7's ``ACLSelectorCheckKey``, need read permission for ACCESS and write permission for
# INSERT, UPDATE or DELETE (EXISTS's plain ``"RO"`` needs neither: any key pattern will do).
# A function of argv when the flags depend on the arguments (``SET k v GET``).
KeySpecs = str | tuple[str, ...] | Callable[[list[bytes]], tuple[str, ...]]
# (needs read permission, needs write permission) for one key.
KeyAccess = tuple[bool, bool]
_KEY_SPEC_WORDS = frozenset(
    ("RO", "RW", "OW", "RM", "ACCESS", "UPDATE", "INSERT", "DELETE", "NOT_KEY", "INCOMPLETE",
     "VARIABLE_FLAGS"))


# Cached: a command whose flags vary (SET ... GET) asks for each call, from a handful of
# strings.
@functools.cache
def key_access(spec: str) -> KeyAccess:
    """What ACL permissions one key-spec string asks for."""
    words = spec.upper().split()  # signatures spell them as COMMAND INFO does (RW access)
    unknown = set(words) - _KEY_SPEC_WORDS
    if unknown:
        raise ValueError(f"unknown key spec flags {sorted(unknown)} in {spec!r}")
    return "ACCESS" in words, bool({"INSERT", "UPDATE", "DELETE"} & set(words))

class Flag(enum.StrEnum):
    """A command flag, with Redis's meaning; in Redis's order (COMMAND INFO lists them so).
    The value is how declarations spell it (``"write denyoom fast"``); :attr:`redis_name`
    how COMMAND INFO shows it.  Members compare equal to their strings, so ``"write" in
    spec.flags`` keeps working."""

    WRITE = "write"  # may change the dataset: refused while writes are refused (MISCONF, OOM)
    READONLY = "readonly"
    DENYOOM = "denyoom"  # may grow memory: refused over maxmemory
    MODULE = "module"
    ADMIN = "admin"
    PUBSUB = "pubsub"  # allowed in RESP2 subscribed mode
    NOSCRIPT = "noscript"
    BLOCKING = "blocking"  # the handler may return a Block: the client waits
    LOADING = "loading"  # allowed while the dataset is loading
    STALE = "stale"
    SKIP_MONITOR = "skip-monitor"
    SKIP_SLOWLOG = "skip-slowlog"
    ASKING = "asking"
    FAST = "fast"
    NOAUTH = "noauth"  # allowed before AUTH
    MAY_REPLICATE = "may-replicate"
    NO_MANDATORY_KEYS = "no-mandatory-keys"
    NO_ASYNC_LOADING = "no-async-loading"
    NO_MULTI = "no-multi"  # refused inside MULTI
    MOVABLEKEYS = "movablekeys"  # keys found by a function of the arguments
    ALLOW_BUSY = "allow-busy"

    @property
    def redis_name(self) -> str:
        """The name COMMAND INFO shows: ``no_auth``, ``skip_slowlog``..."""
        return "no_auth" if self is Flag.NOAUTH else self.value.replace("-", "_")


def parse_flags(words: str | Iterable[str], command_name: str = "?") -> frozenset[Flag]:
    """Flags from their declared spelling; an unknown word is an error at registration, not a
    flag silently ignored."""
    if isinstance(words, str):
        words = words.split()
    try:
        return frozenset(Flag(word) for word in words)
    except ValueError:
        unknown = sorted(set(words) - {flag.value for flag in Flag})
        raise ValueError(f"command {command_name!r}: unknown flags {unknown}") from None


# The flags as module constants, as declarations and the engine import them.
WRITE = Flag.WRITE
READONLY = Flag.READONLY
DENYOOM = Flag.DENYOOM
ADMIN = Flag.ADMIN
FAST = Flag.FAST
BLOCKING = Flag.BLOCKING
LOADING = Flag.LOADING
NOAUTH = Flag.NOAUTH
STALE = Flag.STALE
NO_MULTI = Flag.NO_MULTI
PUBSUB = Flag.PUBSUB
SKIP_SLOWLOG = Flag.SKIP_SLOWLOG
NOSCRIPT = Flag.NOSCRIPT
ALLOW_BUSY = Flag.ALLOW_BUSY


@dataclass(slots=True, frozen=True)
class CommandSpec:
    """One command: ``arity`` follows Redis (N exact words including the name, -N at least N);
    ``first_key``/``last_key``/``step`` locate key arguments (``last_key`` -1 means the last
    argument, 0 for no keys); ``key_finder(argv)``, when set, finds the keys of a command
    whose keys move with an argument (``numkeys``, Redis's movablekeys), for ACL key checks,
    COMMAND GETKEYS and modified-key signals; ``write_keys(argv)``, when set, names the only
    keys the command writes (BITOP's destination, SORT's STORE): the others are only read, so
    an ACL user needs read permission on them and a change signals just the written ones
    (WATCH), as Redis's key specs say; ``handler(ctx, argv)`` returns the reply or raises
    :class:`trioredis.CommandError`."""

    name: str
    arity: int
    flags: frozenset[str]
    handler: Handler
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    group: str = "generic"
    summary: str = ""
    subcommands: tuple[str, ...] = ()
    categories: frozenset[str] = field(default_factory=frozenset)
    key_finder: KeyFinder | None = None
    # Each subcommand's arity (counted from the container's name, as Redis counts it), in
    # the order of ``subcommands``; empty when the declaration gave names only.
    subcommand_arity: tuple[int, ...] = ()
    write_keys: KeyFinder | None = None
    key_specs: KeySpecs | None = None
    # key_specs as (read, write) per key; None when they depend on argv.
    access: tuple[KeyAccess, ...] | None = None

    @property
    def is_write(self) -> bool:
        return WRITE in self.flags

    def keys(self, argv: list[bytes]) -> list[bytes]:
        """The key arguments of one invocation."""
        if self.key_finder is not None:
            return self.key_finder(argv)
        if not self.first_key or len(argv) <= self.first_key:
            return []
        last = self.last_key if self.last_key >= 0 else len(argv) + self.last_key
        last = min(last, len(argv) - 1)
        return argv[self.first_key : last + 1 : self.step or 1]

    def keys_with_access(self, argv: list[bytes]) -> list[tuple[bytes, KeyAccess]]:
        """Each key argument with the permissions it needs (read, write), as Redis 7's
        ``getKeysFromCommandWithSpecs`` flags them."""
        keys = self.keys(argv)
        if not keys:
            return []
        access = self.access
        if access is None:
            specs = self.key_specs
            if callable(specs):
                access = tuple(map(key_access, specs(argv)))
            elif specs:  # built as CommandSpec(...) directly
                access = tuple(map(key_access, (specs,) if isinstance(specs, str) else specs))
            elif self.write_keys is not None:  # written keys are only written, others read
                written = set(self.write_keys(argv))
                return [(key, (key not in written, key in written)) for key in keys]
            else:  # the safe default of command()
                access = ((True, READONLY not in self.flags),)
        last = len(access) - 1
        return [(key, access[min(index, last)]) for index, key in enumerate(keys)]


def command(
    name: str,
    arity: int,
    flags: str,
    handler: Handler,
    keys: tuple[int, int, int] = (0, 0, 0),
    group: str = "generic",
    summary: str = "",
    subcommands: Iterable[str] | Mapping[str, int] = (),
    key_finder: KeyFinder | None = None,
    write_keys: KeyFinder | None = None,
    key_specs: KeySpecs | None = None,
) -> CommandSpec:
    """A CommandSpec from compact arguments: ``flags`` is space-separated
    (``"write denyoom fast"``), ``keys`` is (first, last, step), ``subcommands`` names a
    container's subcommands, or maps each to its arity (then checked before the handler).

    A command with a signature (:mod:`trioredis.commands.signatures`, Redis's own commands)
    takes its key facts from the signature's key specs, once, here (a container's from its
    subcommands'): the key positions, a finder for keys that move with the arguments (a
    ``numkeys`` count, a keyword such as STREAMS or STORE), and what it does with each key.
    Its registration need not repeat them; ``keys`` or ``key_specs`` that it passes anyway
    must say the same: a contradiction is an error here, not a silent second opinion.

    A command without one (a plugin's) declares them: ``key_specs`` Redis's key flags (see
    :data:`KeySpecs`); without ``key_specs``, ``write_keys`` keys are written only and the
    others read only; with neither, it gets the safe default: a read-only command reads its
    keys (``"RO ACCESS"``), any other both reads and writes them (``"RW ACCESS UPDATE"``), so
    no ACL key pattern grants more than it says."""
    flag_set = parse_flags(flags, name)
    arities = tuple(subcommands.values()) if isinstance(subcommands, Mapping) else ()
    from .keyspecs import registration_facts  # the signatures import this module

    facts = registration_facts(name.lower())
    if facts is not None:
        keys, key_specs = _agree_with_signature(name, facts, keys, key_specs)
        key_finder = key_finder or facts.finder
    elif key_specs is None and write_keys is None:
        key_specs = "RO ACCESS" if READONLY in flag_set else "RW ACCESS UPDATE"
    if isinstance(key_specs, str):
        key_specs = (key_specs,)
    access = tuple(map(key_access, key_specs)) if isinstance(key_specs, tuple) else None
    return CommandSpec(
        name=name.lower(),
        arity=arity,
        flags=flag_set,
        handler=handler,
        first_key=keys[0],
        last_key=keys[1],
        step=keys[2],
        group=group,
        summary=summary,
        subcommands=tuple(subcommands),
        categories=_categories(flag_set, group),
        key_finder=key_finder,
        subcommand_arity=arities,
        write_keys=write_keys,
        key_specs=key_specs,
        access=access,
    )


def _agree_with_signature(name: str, facts: Any, keys: tuple[int, int, int],
                          key_specs: KeySpecs | None) -> tuple[tuple[int, int, int], KeySpecs]:
    """The signature's key positions and flags, after checking that what the registration
    says (if anything) is the same."""
    if keys != (0, 0, 0) and keys != facts.positions:
        raise ValueError(f"command {name!r}: keys {keys} but its key specs say "
                         f"{facts.positions}")
    if key_specs is not None:
        if callable(key_specs) or callable(facts.access):
            raise ValueError(f"command {name!r}: its key specs decide the flags of its keys")
        given = tuple(map(key_access, (key_specs,) if isinstance(key_specs, str) else key_specs))
        derived = tuple(map(key_access, facts.access))
        width = max(len(given), len(derived))
        if any(given[min(i, len(given) - 1)] != derived[min(i, len(derived) - 1)]
               for i in range(width)):
            raise ValueError(f"command {name!r}: key_specs {key_specs!r} contradict its key "
                             f"specs {facts.access!r}")
    return facts.positions, facts.access


def _categories(flags: frozenset[str], group: str) -> frozenset[str]:
    """ACL categories as Redis derives them from flags, plus the group's own."""
    found = {group}
    # Scripts may read or write whatever their code says: Redis keeps EVAL_RO and FCALL_RO
    # out of @read (the script's own commands are checked one by one).
    found.add("write" if WRITE in flags else
              "read" if READONLY in flags and group != "scripting" else "")
    if ADMIN in flags:
        found.update(("admin", "dangerous"))
    if FAST in flags:
        found.add("fast")
    else:
        found.add("slow")
    if BLOCKING in flags:
        found.add("blocking")
    if group in ("connection", "transactions"):
        found.discard("read")
    found.discard("")
    return frozenset(found)


def full_command_name(spec: CommandSpec, sub: bytes) -> str:
    """``config|get``: a container command with one of its declared subcommands, as Redis
    names it in INFO commandstats, latencystats and CLIENT LIST; the container's own name (the
    same object) for anything else: an unknown subcommand never makes a new name."""
    name = sub.lower().decode("latin-1")
    return f"{spec.name}|{name}" if name in spec.subcommands else spec.name


def subcommand_arity(spec: CommandSpec, sub: bytes) -> int | None:
    """The declared arity of a container's subcommand (None: unknown or not declared)."""
    if not spec.subcommand_arity:
        return None
    try:
        index = spec.subcommands.index(sub.lower().decode("latin-1"))
    except ValueError:
        return None
    return spec.subcommand_arity[index]


class CommandRegistry:
    """The command table: name (lowercase bytes) -> CommandSpec."""

    def __init__(self) -> None:
        self.by_name: dict[bytes, CommandSpec] = {}

    def add(self, spec: CommandSpec) -> None:
        parse_flags(spec.flags, spec.name)  # a CommandSpec built directly is checked too
        key = spec.name.encode()
        if key in self.by_name:
            raise ValueError(f"command {spec.name!r} is registered twice")
        self.by_name[key] = spec

    def extend(self, specs: Iterable[CommandSpec]) -> None:
        for spec in specs:
            self.add(spec)

    def rename(self, old: str, new: str) -> None:
        """``rename-command old new`` (an empty ``new`` removes the command)."""
        spec = self.by_name.pop(old.lower().encode(), None)
        if spec is None:
            raise ValueError(f"rename-command: no such command {old!r}")
        if new:
            self.by_name[new.lower().encode()] = spec

    def get(self, name: bytes) -> CommandSpec | None:
        return self.by_name.get(name)

    def __iter__(self):
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)


def numkeys_finder(numkeys_index: int, fixed: tuple[int, ...] = ()):
    """A key finder for a command whose keys follow a ``numkeys`` argument (ZUNION, SINTERCARD,
    ZMPOP...), plus the keys at ``fixed`` positions (a STORE destination).  It runs before the
    handler validates anything (ACL checks), so a malformed count just finds fewer keys."""

    def find(argv: list[bytes]) -> list[bytes]:
        keys = [argv[index] for index in fixed if index < len(argv)]
        try:
            count = int(argv[numkeys_index])
        except (IndexError, ValueError):
            return keys
        start = numkeys_index + 1
        return keys + argv[start : start + max(0, count)]

    return find
