"""The vocabulary of the signature modules: :class:`Signature`, :class:`Arg` and the helpers
that build them (``key("key", 0)``, ``token("NX", optional=True)``, ``oneof(...)``).

Kept apart from the package's ``__init__`` because the group modules' names (``string``,
``set``...) would shadow helpers of the same name there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .. import parse_flags


class ArgType(enum.Enum):
    """The types of argument Redis 7.0 names in COMMAND DOCS."""

    KEY = "key"
    STRING = "string"
    INTEGER = "integer"
    DOUBLE = "double"
    PATTERN = "pattern"
    UNIX_TIME = "unix-time"
    PURE_TOKEN = "pure-token"  # a keyword alone (NX)
    ONEOF = "oneof"  # exactly one of the nested arguments
    BLOCK = "block"  # the nested arguments together, in order


# Words allowed in doc_flags, and in a subcommand's flags and ACL categories.
DOC_FLAGS = frozenset(("deprecated", "syscmd"))


# A key spec, as COMMAND INFO and COMMAND GETKEYS read it: (flags, begin_search, find_keys,
# notes).  Built by :func:`keyspec` from the helpers below.
Begin = tuple  # ("index", position) | ("keyword", word, start_from) | ("unknown",)
Find = tuple  # ("range", last_key, step, limit) | ("keynum", index, first, step) | ("unknown",)
KeySpec = tuple[tuple[str, ...], Begin, Find, str]
# Redis 7.0's key spec flags (COMMAND INFO spells them so: RW, access...).
KEY_SPEC_FLAGS = frozenset(("RO", "RW", "OW", "RM", "access", "update", "insert", "delete",
                            "not_key", "incomplete", "variable_flags"))
UNKNOWN: tuple = ("unknown",)  # a begin or find that no rule describes (SORT's BY patterns)


def at(position: int) -> Begin:
    """The keys begin at a fixed argument index."""
    return ("index", position)


def after(keyword: str, start_from: int) -> Begin:
    """The keys begin after ``keyword``, searched from index ``start_from`` (negative: from
    the end, backwards)."""
    return ("keyword", keyword, start_from)


def span(last_key: int, step: int = 1, limit: int = 0) -> Find:
    """Keys from the beginning to ``last_key`` (relative to it; negative: from the end), every
    ``step``; ``limit`` N takes 1/N of what remains (XREAD's streams, then their ids)."""
    return ("range", last_key, step, limit)


def counted(numkeys_index: int, first_key: int = 1, step: int = 1) -> Find:
    """The number of keys is the argument at ``numkeys_index`` (relative to the beginning);
    the keys start ``first_key`` after the beginning."""
    return ("keynum", numkeys_index, first_key, step)


def keyspec(flags: str, begin: Begin, find: Find, notes: str = "") -> KeySpec:
    """One key spec: ``flags`` space-separated (``"RW access delete"``)."""
    words = tuple(flags.split())
    unknown = set(words) - KEY_SPEC_FLAGS
    if unknown:
        raise ValueError(f"unknown key spec flags {sorted(unknown)}")
    return (words, begin, find, notes)


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: ``token`` is the keyword typed before it (``EX`` seconds);
    ``key_spec_index`` points at the command's key spec for a key; ``multiple_token`` means
    the token repeats with each value (``GET pattern GET pattern``)."""

    name: str
    type: ArgType
    token: str | None = None
    key_spec_index: int | None = None
    optional: bool = False
    multiple: bool = False
    multiple_token: bool = False
    since: str | None = None
    deprecated_since: str | None = None
    arguments: tuple[Arg, ...] = ()


@dataclass(frozen=True, slots=True)
class Signature:
    """One command (``get``) or subcommand (``config|get``)."""

    name: str
    summary: str
    since: str
    arguments: tuple[Arg, ...] = ()
    group: str = ""
    doc_flags: tuple[str, ...] = ()
    deprecated_since: str | None = None
    replaced_by: str | None = None
    tips: tuple[str, ...] = ()
    # What the command does with its keys, Redis 7.0's key specs (arguments' key_spec_index
    # points into them); COMMAND INFO and COMMAND GETKEYS read them.
    keys: tuple[KeySpec, ...] = ()
    # Subcommands only: Redis's arity and flags for them (spelled as registrations spell
    # flags: noauth, skip-slowlog), which the registry declares for the container only.
    arity: int | None = None
    flags: tuple[str, ...] = ()

    @property
    def container(self) -> str | None:
        """``config`` for ``config|get``; None for a command."""
        return self.name.partition("|")[0] if "|" in self.name else None


def doc(name: str, summary: str, since: str, *arguments: Arg, doc_flags: str = "",
        deprecated_since: str | None = None, replaced_by: str | None = None, tips: str = "",
        keys: tuple[KeySpec, ...] = (), arity: int | None = None, flags: str = "") -> Signature:
    """A signature; the space-separated strings become tuples."""
    unknown = set(doc_flags.split()) - DOC_FLAGS
    if unknown:
        raise ValueError(f"{name}: unknown doc flags {sorted(unknown)}")
    parse_flags(flags, name)  # a subcommand's flags are the registry's words
    return Signature(name=name, summary=summary, since=since, arguments=arguments,
                     doc_flags=tuple(doc_flags.split()), deprecated_since=deprecated_since,
                     replaced_by=replaced_by, tips=tuple(tips.split()), keys=keys, arity=arity,
                     flags=tuple(flags.split()))


def _arg(kind: ArgType, name: str, *, token: str | None = None, optional: bool = False,
         multiple: bool = False, multiple_token: bool = False, since: str | None = None,
         deprecated_since: str | None = None, key_spec_index: int | None = None,
         arguments: tuple[Arg, ...] = ()) -> Arg:
    return Arg(name=name, type=kind, token=token, key_spec_index=key_spec_index,
               optional=optional, multiple=multiple, multiple_token=multiple_token,
               since=since, deprecated_since=deprecated_since, arguments=arguments)


def key(name: str, spec: int, **options) -> Arg:
    """A key argument, described by the command's key spec number ``spec``."""
    return _arg(ArgType.KEY, name, key_spec_index=spec, **options)


def string(name: str, **options) -> Arg:
    return _arg(ArgType.STRING, name, **options)


def integer(name: str, **options) -> Arg:
    return _arg(ArgType.INTEGER, name, **options)


def double(name: str, **options) -> Arg:
    return _arg(ArgType.DOUBLE, name, **options)


def pattern(name: str, **options) -> Arg:
    return _arg(ArgType.PATTERN, name, **options)


def unix_time(name: str, **options) -> Arg:
    return _arg(ArgType.UNIX_TIME, name, **options)


def token(word: str, name: str | None = None, **options) -> Arg:
    """A keyword alone; named as the keyword in lower case unless ``name`` says otherwise."""
    return _arg(ArgType.PURE_TOKEN, name if name is not None else word.lower(), token=word,
                **options)


def oneof(name: str, *choices: Arg, **options) -> Arg:
    return _arg(ArgType.ONEOF, name, arguments=choices, **options)


def block(name: str, *parts: Arg, **options) -> Arg:
    return _arg(ArgType.BLOCK, name, arguments=parts, **options)


