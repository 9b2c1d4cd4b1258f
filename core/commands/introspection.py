"""COMMAND and its subcommands: what the server says about its own commands.

Everything is generated from two sources: the registry (what a command does here: arity,
flags, key positions, ACL categories) and the signatures (:mod:`.signatures`: how a command
is called, with a summary in this project's words).  Only registered commands appear; a
signature waiting for its command shows nowhere.  Key specs are declared with the signatures,
and COMMAND GETKEYS follows the same ones.
"""

from __future__ import annotations

import dataclasses
import functools

from .. import errors
from ..acl import categories_of
from ..errors import CommandError
from ..resp import Map, Raw, SetReply, Status, encode
from . import CommandSpec, Flag, command, full_command_name, parse_flags, subcommand_arity
from .args import help_reply
from .keyspecs import (
    NO_MANDATORY_KEYS,
    InvalidKeySpec,
    has_key_specs,
    key_references,
    key_specs_reply,
    legacy_key_range,
)
from .signatures import Arg, Signature, key_specs, signatures

# ACL categories in Redis's order (COMMAND INFO lists them so).
_CATEGORY_ORDER = ("keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
                   "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
                   "blocking", "dangerous", "connection", "transaction", "scripting")
_CATEGORY_RANK = {name: rank for rank, name in enumerate(_CATEGORY_ORDER)}
_FLAG_RANK = {flag: rank for rank, flag in enumerate(Flag)}
# COMMAND DOCS group of a command without a signature (a plugin's): the registry's group
# as Redis would name it.
_DOC_GROUPS = {"keyspace": "generic", "sortedset": "sorted-set", "zset": "sorted-set"}


def _flag_set(flags) -> SetReply:
    # Flag(...) too for a CommandSpec built directly with plain strings (checked when added).
    ordered = sorted(map(Flag, flags), key=_FLAG_RANK.__getitem__)
    return SetReply([Status(flag.redis_name.encode()) for flag in ordered])


def _category_set(categories) -> SetReply:
    ordered = sorted(categories, key=lambda name: (_CATEGORY_RANK.get(name, 99), name))
    return SetReply([Status(b"@" + name.encode()) for name in ordered])


def _tips(name: str) -> SetReply:
    signature = signatures().get(name)
    return SetReply([Status(tip.encode()) for tip in signature.tips] if signature else [])


def _shown_flags(spec: CommandSpec) -> frozenset[Flag]:
    """The declared flags plus the two Redis derives from a command's keys: ``movablekeys``
    when a key spec does not start at a fixed index and take a range (the keys move with the
    arguments), ``no_mandatory_keys`` when no key at all is valid (EVAL with 0 keys)."""
    flags = set(spec.flags)
    if any(begin[0] != "index" or find[0] != "range"
           for _, begin, find, _ in key_specs().get(spec.name, ())):
        flags.add(Flag.MOVABLEKEYS)
    if spec.name in NO_MANDATORY_KEYS:
        flags.add(Flag.NO_MANDATORY_KEYS)
    return frozenset(flags)


def command_info(spec: CommandSpec) -> list:
    """COMMAND INFO's entry for a command, its subcommands nested as Redis nests them.

    A container that needs a subcommand (CONFIG, OBJECT...: arity -2) shows no flags and no
    key positions of its own, as in Redis: its subcommands carry them.  (The registry gives
    such a container the flags its subcommands share, which the engine applies to the whole
    command.)  COMMAND runs bare too, and keeps its own."""
    if spec.subcommands and spec.arity <= -2:
        flags, keys = SetReply(), (0, 0, 0)
    else:
        flags = _flag_set(_shown_flags(spec))
        keys = (legacy_key_range(spec.name) if spec.name in key_specs()
                else (spec.first_key, spec.last_key, spec.step))
    return [
        spec.name.encode(), spec.arity, flags, *keys,
        _category_set(categories_of(spec)), _tips(spec.name),
        key_specs_reply(spec.name),
        SetReply([subcommand_info(spec, sub) for sub in spec.subcommands]),
    ]


def subcommand_info(spec: CommandSpec, sub: str) -> list:
    """A subcommand's entry: the registry's arity when declared, else the signature's; the
    signature's flags (the container's when there is none); key positions from the key
    specs; ACL categories as the ACL module checks them."""
    name = f"{spec.name}|{sub}"
    signature = signatures().get(name)
    arity = subcommand_arity(spec, sub.encode())
    if arity is None:
        arity = signature.arity if signature is not None and signature.arity else spec.arity
    flags = parse_flags(signature.flags, name) if signature is not None else spec.flags
    first, last, step = legacy_key_range(name)
    return [
        name.encode(), arity, _flag_set(flags), first, last, step,
        _category_set(categories_of(spec, sub)), _tips(name),
        key_specs_reply(name), SetReply(),
    ]


# --- COMMAND DOCS ----------------------------------------------------------------------------


def _argument_reply(arg: Arg) -> Map:
    """One argument as COMMAND DOCS describes it, fields in Redis's order."""
    fields: dict[bytes, object] = {b"name": arg.name.encode(), b"type": arg.type.value.encode()}
    if arg.key_spec_index is not None:
        fields[b"key_spec_index"] = arg.key_spec_index
    if arg.token is not None:
        fields[b"token"] = arg.token.encode()
    if arg.since is not None:
        fields[b"since"] = arg.since.encode()
    if arg.deprecated_since is not None:
        fields[b"deprecated_since"] = arg.deprecated_since.encode()
    flags = [word for word, on in (("optional", arg.optional), ("multiple", arg.multiple),
                                   ("multiple_token", arg.multiple_token)) if on]
    if flags:
        fields[b"flags"] = SetReply([Status(flag.encode()) for flag in flags])
    if arg.arguments:
        fields[b"arguments"] = [_argument_reply(child) for child in arg.arguments]
    return Map(fields)


def _signature_reply(signature: Signature, subcommands: list[Signature]) -> Map:
    fields: dict[bytes, object] = {
        b"summary": signature.summary.encode(), b"since": signature.since.encode(),
        b"group": signature.group.encode(),
    }
    if signature.doc_flags:
        fields[b"doc_flags"] = SetReply([Status(flag.encode()) for flag in signature.doc_flags])
    if signature.deprecated_since:
        fields[b"deprecated_since"] = signature.deprecated_since.encode()
    if signature.replaced_by:
        fields[b"replaced_by"] = signature.replaced_by.encode()
    if signature.arguments:
        fields[b"arguments"] = [_argument_reply(arg) for arg in signature.arguments]
    if subcommands:
        fields[b"subcommands"] = Map({sub.name.encode(): _signature_reply(sub, [])
                                      for sub in subcommands})
    return Map(fields)


def command_docs(spec: CommandSpec, resp3: bool) -> Map | Raw:
    """COMMAND DOCS's entry for a registered command: its signature with the signatures of its
    registered subcommands; a short entry from the registry for a command without one (a
    plugin's)."""
    known = signatures()
    if spec.name not in known:
        return Map({
            b"summary": (spec.summary or f"{spec.name.upper()} command").encode(),
            b"since": b"1.0.0",
            b"group": _DOC_GROUPS.get(spec.group, spec.group).encode(),
        })
    subs = tuple(full for sub in spec.subcommands if (full := f"{spec.name}|{sub}") in known)
    return _encoded_docs(spec.name, subs, resp3)


@functools.lru_cache(maxsize=1024)
def _encoded_docs(name: str, subcommands: tuple[str, ...], resp3: bool) -> Raw:
    """A signature's entry as RESP bytes, built once per protocol: redis-cli asks for every
    command's at start, and the signatures never change while the server runs."""
    known = signatures()
    reply = _signature_reply(known[name], [known[sub] for sub in subcommands])
    return Raw(encode(reply, resp3))


# --- COMMAND ---------------------------------------------------------------------------------

_COMMAND_HELP = [
    b"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"(no subcommand)",
    b"    Return details about all Redis commands.",
    b"COUNT",
    b"    Return the total number of commands in this Redis server.",
    b"LIST",
    b"    Return a list of all commands in this Redis server.",
    b"INFO [<command-name> ...]",
    b"    Return details about multiple Redis commands.",
    b"    If no command names are given, documentation details for all",
    b"    commands are returned.",
    b"DOCS [<command-name> ...]",
    b"    Return documentation details about multiple Redis commands.",
    b"    If no command names are given, documentation details for all",
    b"    commands are returned.",
    b"GETKEYS <full-command>",
    b"    Return the keys from a full Redis command.",
    b"GETKEYSANDFLAGS <full-command>",
    b"    Return the keys and the access flags from a full Redis command.",
    b"HELP",
    b"    Prints this help.",
]

# Subcommand arity, counted from COMMAND as Redis counts it.
_COMMAND_ARITY = {"count": 2, "info": -2, "docs": -2, "list": -2, "getkeys": -4,
                  "getkeysandflags": -4, "help": 2}


def _lookup(table, name: bytes) -> tuple[CommandSpec, str | None] | None:
    """A command by name, or a registered subcommand by ``container|sub``."""
    container, bar, sub = name.lower().partition(b"|")
    spec = table.get(container)
    if spec is None:
        return None
    if not bar:
        return spec, None
    text = sub.decode("latin-1")
    return (spec, text) if text in spec.subcommands else None


def _all_names(table) -> list[tuple[bytes, CommandSpec, str | None]]:
    """Every command, each container followed by its subcommands (COMMAND LIST's order)."""
    names = []
    for spec in table:
        names.append((spec.name.encode(), spec, None))
        names += [(f"{spec.name}|{sub}".encode(), spec, sub) for sub in spec.subcommands]
    return names


def command_(ctx, argv):
    table = ctx.engine.commands
    if len(argv) == 1:
        return [command_info(spec) for spec in table]
    sub = argv[1].lower().decode("latin-1")
    arity = _COMMAND_ARITY.get(sub)
    if arity is None:
        raise CommandError(errors.unknown_subcommand(argv[1], "COMMAND"))
    if (arity > 0 and len(argv) != arity) or len(argv) < -arity:
        raise CommandError(errors.wrong_arity(f"command|{sub}"))
    if sub == "count":
        return len(table)
    if sub == "info":
        if len(argv) == 2:
            return [command_info(spec) for spec in table]
        found = [_lookup(table, name) for name in argv[2:]]
        return [None if hit is None else command_info(hit[0]) if hit[1] is None
                else subcommand_info(*hit) for hit in found]
    if sub == "docs":
        return _docs(table, argv[2:], ctx.client.resp3)
    if sub == "list":
        return _list(table, argv[2:])
    if sub in ("getkeys", "getkeysandflags"):
        found = _command_keys(table, argv[2:])
        if sub == "getkeys":
            return [key for key, _ in found]
        return [[key, SetReply([Status(flag.encode()) for flag in flags])] for key, flags in found]
    return help_reply(_COMMAND_HELP)


def _docs(table, names: list[bytes], resp3: bool) -> Map:
    """COMMAND DOCS [name ...]: every command, or the named ones (``config|get`` too); an
    unknown name is left out."""
    if not names:
        return Map({spec.name.encode(): command_docs(spec, resp3) for spec in table})
    reply = {}
    for name in names:
        hit = _lookup(table, name)
        if hit is None:
            continue
        spec, sub = hit
        if sub is None:
            reply[spec.name.encode()] = command_docs(spec, resp3)
        elif (full := f"{spec.name}|{sub}") in signatures():
            reply[full.encode()] = _encoded_docs(full, (), resp3)
    return Map(reply)


def _list(table, words: list[bytes]) -> list[bytes]:
    """COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]."""
    names = _all_names(table)
    if not words:
        return [name for name, _, _ in names]
    if len(words) != 3 or words[0].lower() != b"filterby":
        raise CommandError(errors.SYNTAX)
    kind, value = words[1].lower(), words[2]
    if kind == b"pattern":
        from ..glob import compile_glob

        match = compile_glob(value, nocase=True).matches
        return [name for name, _, _ in names if match(name)]
    if kind == b"aclcat":
        category = value.lower().decode("utf-8", "replace")
        return [name for name, spec, sub in names if category in categories_of(spec, sub)]
    if kind == b"module":
        return []  # no modules here
    raise CommandError(errors.SYNTAX)


def _command_keys(table, inner: list[bytes]) -> list[tuple[bytes, tuple[str, ...]]]:
    """COMMAND GETKEYS[ANDFLAGS] <command...>: each key with its flags, or Redis's errors (an
    unknown command or subcommand, one without keys, a wrong count, keys the arguments do
    not describe)."""
    spec = table.get(inner[0].lower())
    if spec is None:
        raise CommandError("ERR Invalid command specified")
    name, arity = spec.name, spec.arity
    if spec.subcommands and len(inner) > 1:
        name = full_command_name(spec, inner[1])
        if name is spec.name:
            raise CommandError("ERR Invalid command specified")
        arity = subcommand_arity(spec, inner[1]) or arity
    if name in key_specs():
        has_keys = has_key_specs(name)
    else:  # a command of our own: its declaration says
        has_keys = name == spec.name and bool(spec.first_key or spec.key_finder)
    if not has_keys:
        raise CommandError("ERR The command has no key arguments")
    if (arity > 0 and len(inner) != arity) or len(inner) < -arity:
        raise CommandError("ERR Invalid number of arguments specified for command")
    try:
        references = key_references(name, inner)
    except InvalidKeySpec:
        references = []
    if references is None:  # a command of our own: its declared key positions
        flags = ("RW", "access", "update") if spec.is_write else ("RO", "access")
        keys = spec.keys(inner)
        return [(key, flags) for key in keys] if keys else _no_keys(name)
    if not references:
        return _no_keys(name)
    return [(inner[index], flags) for index, flags in references]


def _no_keys(name: str) -> list:
    if name in NO_MANDATORY_KEYS:
        return []
    raise CommandError("ERR Invalid arguments specified for command")


def register(registry) -> None:
    spec = command("command", -1, "loading stale", command_, group="server",
                   subcommands=_COMMAND_ARITY)
    # Redis files COMMAND under @connection too (clients call it on connecting).
    registry.extend([dataclasses.replace(spec, categories=spec.categories | {"connection"})])
