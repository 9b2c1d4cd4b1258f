"""Which arguments of a command are keys, and how the command uses each: COMMAND GETKEYS and
COMMAND GETKEYSANDFLAGS as Redis 7.0 answers them.

Redis describes the keys of each command with key specifications (declared with each command's
signature, :mod:`trioredis.commands.signatures`): where the search begins (a fixed index, or after a keyword searched from one
end), then how many keys follow (a range up to an offset from the end, or a count given by
an argument).  Each key found carries its spec's flags (``RW``, ``OW``, ``access``...).  A
few commands' specs cannot say everything (SET's flags depend on GET, SORT's STORE may be
anywhere): for those, as in Redis, a small function of the arguments decides instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..rdb.compact import as_int64
from . import KeyFinder, key_access
from .signatures import KeySpec, key_specs

KeyRefs = list[tuple[int, tuple[str, ...]]]  # (argument index, flags) for each key


class InvalidKeySpec(Exception):
    """The arguments do not fit a spec (a count past the end...): Redis then answers "Invalid
    arguments specified for command"."""


_INT64 = 1 << 63


def strict_int(text: bytes) -> int | None:
    """``text`` as Redis's key specs read a key count: string2ll (digits with an optional
    minus, no plus, space or leading zero, within 64 bits), then cast to a C int as Redis
    does before counting keys (4294967297 counts one key); None when string2ll refuses."""
    value = as_int64(text)
    return None if value is None else _to_c_int(value)


def _to_c_int(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def c_atoi(text: bytes) -> int:
    """C's ``atoi`` as glibc computes it (``(int) strtol``): leading white space, a sign,
    the digits up to the first other byte (0 without any); a value past 64 bits clamped,
    then cut to a 32-bit int."""
    match = _ATOI.match(text)
    if match is None or not match.group(2):
        return 0
    value = int(match.group(2))
    if match.group(1) == b"-":
        value = -value
    return _to_c_int(max(-_INT64, min(_INT64 - 1, value)))


_ATOI = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]*)")

# When a key count is not a clean integer, Redis drops the key specs and asks the command's
# own getkeys function, which reads the count with atoi (EVAL k 1.5 a names the key a):
# (store key index or 0, count index, first key index) of Redis's genericGetKeys.
NUMKEYS_FALLBACK: dict[str, tuple[int, int, int]] = {
    **dict.fromkeys(("eval", "eval_ro", "evalsha", "evalsha_ro", "fcall", "fcall_ro"), (0, 2, 3)),
    **dict.fromkeys(("zunionstore", "zinterstore", "zdiffstore"), (1, 2, 3)),
    **dict.fromkeys(("zunion", "zinter", "zdiff", "zintercard", "sintercard", "lmpop",
                     "zmpop"), (0, 1, 2)),
    **dict.fromkeys(("blmpop", "bzmpop"), (0, 2, 3)),
}


def counted_keys(name: str, argv: list[bytes]) -> KeyRefs:
    """The keys Redis's fallback for ``name`` finds (its genericGetKeys), without flags; none
    when the atoi count is below 1 or more than the arguments left."""
    store, count_index, first = NUMKEYS_FALLBACK[name]
    count = c_atoi(argv[count_index]) if count_index < len(argv) else 0
    if count < 1 or count > len(argv) - first:
        return []
    found: KeyRefs = [(index, ()) for index in range(first, first + count)]
    if store:
        found.append((store, ()))
    return found


def _begin(search: tuple, argv: list[bytes]) -> int | None:
    """The index of the first key of a spec, None when its keyword is absent."""
    if search[0] == "index":
        return search[1]
    keyword, start = search[1].encode().lower(), search[2]
    argc = len(argv)
    # Forward up to the last argument but one, or backward down to the second: a keyword
    # must have a key after it and cannot be the command name.
    indexes = range(start, argc - 1) if start > 0 else range(argc + start, 1, -1)
    for index in indexes:
        if not 1 <= index < argc:
            break
        if argv[index].lower() == keyword:
            return index + 1
    return None


def _find(find: tuple, first: int, argv: list[bytes]) -> tuple[int, int, int]:
    """(first, last, step) of the keys of a spec beginning at ``first``."""
    argc = len(argv)
    if find[0] == "range":
        last_key, step, limit = find[1], find[2], find[3]
        if last_key >= 0:
            last = first + last_key
        elif not limit:
            last = argc + last_key
        else:  # keys take 1/limit of what is left (XREAD's streams then their ids)
            last = first + ((argc - first) // limit + last_key)
        return first, last, step
    numkeys_index, first_key, step = find[1], find[2], find[3]
    if first + numkeys_index >= argc:
        raise InvalidKeySpec
    count = strict_int(argv[first + numkeys_index])
    if count is None or count < 0:
        raise InvalidKeySpec
    first += first_key
    return first, first + count - 1, step


def keys_from_specs(specs: tuple, argv: list[bytes]) -> KeyRefs | None:
    """Every key of ``argv`` with its flags, spec by spec; None when a spec cannot be
    followed (``unknown``, or flags that vary): the caller then asks the command's function."""
    found: KeyRefs = []
    for flags, begin, find, _ in specs:
        if "not_key" in flags:
            continue
        if begin[0] == "unknown" or find[0] == "unknown":
            return None
        first = _begin(begin, argv)
        if first is None:
            continue
        first, last, step = _find(find, first, argv)
        if first >= len(argv) or last >= len(argv) or last < first:
            raise InvalidKeySpec
        found.extend((index, flags) for index in range(first, last + 1, step or 1))
    return found


# --- commands whose specs are incomplete or whose flags vary ---------------------------------

_RW_ACCESS_UPDATE = ("RW", "access", "update")


def _set_keys(argv: list[bytes]) -> KeyRefs:
    """SET overwrites its key, unless GET also reads it (Redis's ``setGetKeys``; its
    ``strcasecmp`` stops at a NUL, so ``GET\\0...`` counts as GET)."""
    if any(arg[:3].lower() == b"get" and (len(arg) == 3 or arg[3] == 0) for arg in argv[3:]):
        return [(1, _RW_ACCESS_UPDATE)]
    return [(1, ("OW", "update"))]


def _bitfield_keys(argv: list[bytes]) -> KeyRefs:
    """BITFIELD only reads when every operation is a GET (a malformed one counts as a write)."""
    index = 2
    while index < len(argv):
        left = len(argv) - index - 1
        word = argv[index].lower()
        if word == b"get" and left >= 2:
            index += 3
        elif word == b"overflow" and left >= 1:
            index += 2
        else:
            return [(1, _RW_ACCESS_UPDATE)]
    return [(1, ("RO", "access"))]


def _sort_keys(argv: list[bytes]) -> KeyRefs:
    """SORT reads its key and writes the last STORE's; LIMIT, GET and BY take arguments."""
    found: KeyRefs = [(1, ("RO", "access"))]
    store = None
    skips = {b"limit": 2, b"get": 1, b"by": 1}
    index = 2
    while index < len(argv):
        word = argv[index].lower()
        if word in skips:
            index += skips[word]
        elif word == b"store" and index + 1 < len(argv):
            store = index + 1
        index += 1
    if store is not None:
        found.append((store, ("OW", "update")))
    return found


def _migrate_keys(argv: list[bytes]) -> KeyRefs:
    """MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw] [AUTH2 user pw]
    [KEYS key...]: the one key, or the keys after KEYS when the key is empty."""
    flags = ("RW", "access", "delete")
    first, count = 3, 1
    index = 6
    while index < len(argv):
        word = argv[index].lower()
        if word == b"auth":
            index += 1
        elif word == b"auth2":
            index += 2
        elif word == b"keys":
            if argv[3] != b"":  # KEYS needs the key argument empty: no key is valid
                raise InvalidKeySpec
            first, count = index + 1, len(argv) - index - 1
            break
        index += 1
    return [(position, flags) for position in range(first, first + count)]


# Commands for which no key at all is a valid answer (Redis's no_mandatory_keys flag).
NO_MANDATORY_KEYS = frozenset({"eval", "eval_ro", "evalsha", "evalsha_ro", "fcall", "fcall_ro"})

KEY_FUNCTIONS: dict[str, Callable[[list[bytes]], KeyRefs]] = {
    "set": _set_keys, "bitfield": _bitfield_keys, "sort": _sort_keys,
    "sort_ro": lambda argv: [(1, ("RO", "access"))], "migrate": _migrate_keys,
}


def legacy_key_range(name: str) -> tuple[int, int, int]:
    """(first, last, step) of COMMAND INFO for a Redis command, from its key specs as Redis
    derives it (``populateCommandLegacyRangeSpec``): the specs that start at a fixed index
    and take a range, when they are contiguous with step 1; (0, 0, 0) otherwise."""
    specs = key_specs().get(name, ())  # not_key specs (shard channels) count, as in Redis
    if len(specs) == 1 and specs[0][1][0] == "index" and specs[0][2][0] == "range":
        first, (_, last_key, step, _limit) = specs[0][1][1], specs[0][2]
        return first, (last_key if last_key < 0 else first + last_key), step
    first, last, previous = None, 0, 0
    for _, begin, find, _ in specs:
        if begin[0] != "index" or find[0] != "range":
            continue
        if find[2] != 1 or (previous and previous != begin[1] - 1):
            return 0, 0, 0
        first = begin[1] if first is None else min(first, begin[1])
        last_key = find[1] if find[1] < 0 else find[1] + begin[1]
        # Redis compares as unsigned: a negative (relative to the end) wins.
        last = last_key if last_key < 0 or last < 0 else max(last, last_key)
        previous = last
    return (first, last, 1) if first is not None else (0, 0, 0)


# --- what the registry derives from the key specs ------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What a command's key specs tell the registry, computed once when it registers:
    ``positions`` (first, last, step) as COMMAND INFO's legacy range; ``finder`` for keys
    that follow a ``numkeys`` argument (None when the positions find every key); ``access``
    the key spec flags of each key in the order the keys are found (the last serving every
    further key), or a function of argv where the flags vary with the arguments (SET ...
    GET) or a spec cannot be followed (SORT's STORE)."""

    positions: tuple[int, int, int]
    finder: KeyFinder | None
    access: tuple[str, ...] | Callable[[list[bytes]], tuple[str, ...]]


def _fallback_finder(name: str) -> Callable[[list[bytes]], list[bytes]]:
    """The keys Redis's getkeys function finds when the specs cannot be followed (a count
    atoi reads differently, see NUMKEYS_FALLBACK); none for a command without one."""
    if name not in NUMKEYS_FALLBACK:
        return lambda argv: []
    return lambda argv: [argv[index] for index, _ in counted_keys(name, argv)]


def _spec_finder(specs: list[KeySpec], name: str) -> KeyFinder:
    """The keys of argv as the specs find them, for the keys that move with the arguments
    (a ``numkeys`` count, a keyword to search for).  It runs before the handler checks
    anything (ACL checks), and answers as Redis's ACL check does: arguments that do not fit
    a spec (a count past the end, or 0) make no key at all, not a guess, unless the command
    has Redis's atoi fallback (NUMKEYS_FALLBACK); the command then fails with its own
    error.  The same walk as :func:`keys_from_specs`, slicing argv instead of listing
    indexes, as it runs for each ACL check of these commands."""
    if any("unknown" in (begin[0], find[0]) for _, begin, find, _ in specs):
        raise ValueError("key specs that cannot be followed need a function in KEY_FUNCTIONS")
    searches = [(begin, find) for _, begin, find, _ in specs]
    fallback = _fallback_finder(name)

    def find_keys(argv: list[bytes]) -> list[bytes]:
        argc = len(argv)
        keys: list[bytes] = []
        for begin, find in searches:
            first = _begin(begin, argv)
            if first is None:
                continue
            try:
                first, last, step = _find(find, first, argv)
            except InvalidKeySpec:
                return fallback(argv)
            if first >= argc or last >= argc or last < first:
                return fallback(argv)
            keys += argv[first : last + 1 : step or 1]
        return keys

    return find_keys


def _counted_finder(specs: list[KeySpec], name: str) -> KeyFinder | None:
    """The common shape of movable keys, followed without the general walk: fixed keys (a
    STORE destination) then one ``numkeys`` count with the keys right after it (ZUNIONSTORE
    dest numkeys key...).  The same answers as :func:`_spec_finder`; None for other shapes."""
    fixed: list[int] = []
    count_index = None
    for _, begin, find, _ in specs:
        if begin[0] != "index" or count_index is not None:
            return None
        if find[0] == "range" and find[1] == 0:
            fixed.append(begin[1])
        elif find[0] == "keynum" and find[2] == 1 and find[3] == 1:
            count_index = begin[1] + find[1]
        else:
            return None
    if count_index is None or any(index >= count_index for index in fixed):
        return None
    start = count_index + 1
    fallback = _fallback_finder(name)

    def find(argv: list[bytes]) -> list[bytes]:
        count = strict_int(argv[count_index]) if count_index < len(argv) else None
        if count is None or count <= 0 or start + count > len(argv):
            # The count does not fit: Redis's ACL check then asks the command's getkeys
            # function (an atoi count), or finds no key at all.
            return fallback(argv)
        return [argv[index] for index in fixed] + argv[start : start + count]

    return find


def _function_finder(function: Callable[[list[bytes]], KeyRefs]) -> KeyFinder:
    """The keys the function finds, for specs that cannot be followed."""

    def find(argv: list[bytes]) -> list[bytes]:
        try:
            found = function(argv)
        except InvalidKeySpec:  # as Redis's ACL check: arguments that do not fit, no key
            return []
        # Arity is checked before any caller asks; still, a short argv finds no key.
        return [argv[index] for index, _ in found if index < len(argv)]

    return find


def _access_function(function: Callable[[list[bytes]], KeyRefs]):
    """The flags of each key, from the function that follows what the specs cannot."""

    def access(argv: list[bytes]) -> tuple[str, ...]:
        try:
            # (The finder finds no key either when this is empty.)
            return tuple(" ".join(flags) for _, flags in function(argv)) or ("RO",)
        except InvalidKeySpec:  # then the finder finds no key either
            return ("RO",)

    return access


def _container_facts(name: str) -> KeyFacts | None:
    """A container's key facts (XGROUP, OBJECT...), whose key specs are its subcommands':
    the registry checks a container's keys once for all its subcommands, so they must agree
    on where the key is and on what ACL permission it needs (XGROUP CREATE inserts, DESTROY
    deletes: both need write permission only).  None when the container has no keyed
    subcommand; an error when they disagree, as the registry could not say one thing."""
    prefix = name + "|"
    found = {}
    for sub in sorted(key_specs()):
        if sub.startswith(prefix) and registration_facts(sub) is not None:
            found[sub] = registration_facts(sub)
    if not found:
        return None
    first_sub, first = next(iter(found.items()))
    for sub, facts in found.items():
        if (facts.positions != first.positions or facts.finder is not None
                or callable(facts.access)
                or tuple(map(key_access, facts.access)) != tuple(map(key_access, first.access))):
            raise ValueError(f"{sub} and {first_sub} differ in their keys: the container "
                             f"{name!r} needs them declared")
    return first


@functools.cache
def registration_facts(name: str) -> KeyFacts | None:
    """What the signature of ``name`` says about its keys (its subcommands' for a
    container), None when it names no key (no signature, or channels only)."""
    specs = [spec for spec in key_specs().get(name, ()) if "not_key" not in spec[0]]
    if not specs:
        return _container_facts(name) if "|" not in name else None
    function = KEY_FUNCTIONS.get(name)
    access: tuple[str, ...] | Callable[[list[bytes]], tuple[str, ...]]
    if function is not None:
        access = _access_function(function)
    elif name in NUMKEYS_FALLBACK:
        # Keys found by the atoi fallback carry no flags, so any pattern naming them lets
        # them through (Redis checks a key with flags 0 against every pattern's name only).
        access = _access_function(functools.partial(key_references, name))
    else:
        access = tuple(" ".join(flags) for flags, *_ in specs)
    finder = None
    if any(begin[0] != "index" or find[0] != "range" for _, begin, find, _ in specs):
        # The keys move with the arguments: a numkeys count or a keyword to search for, or
        # (SORT's STORE, MIGRATE's KEYS) a function that reads the arguments as Redis does.
        if function is not None:
            finder = _function_finder(function)
        else:
            finder = _counted_finder(specs, name) or _spec_finder(specs, name)
    return KeyFacts(legacy_key_range(name), finder, access)


def key_specs_reply(name: str) -> list:
    """COMMAND INFO's key specifications of a Redis command, as Redis sends them: a set (in
    RESP3) of a map per spec (its note if any, flags, how the search begins, how keys are
    found)."""
    from ..resp import Map, SetReply, Status

    def search(kind: tuple) -> Map:
        fields: dict[bytes, object] = {}
        if kind[0] == "index":
            fields = {b"index": kind[1]}
        elif kind[0] == "keyword":
            fields = {b"keyword": kind[1].encode(), b"startfrom": kind[2]}
        elif kind[0] == "range":
            fields = {b"lastkey": kind[1], b"keystep": kind[2], b"limit": kind[3]}
        elif kind[0] == "keynum":
            fields = {b"keynumidx": kind[1], b"firstkey": kind[2], b"keystep": kind[3]}
        return Map({b"type": kind[0].encode(), b"spec": Map(fields)})

    reply = []
    for flags, begin, find, notes in key_specs().get(name, ()):
        spec = Map({b"notes": notes.encode()} if notes else {})
        spec[b"flags"] = SetReply([Status(flag.encode()) for flag in flags])
        spec[b"begin_search"] = search(begin)
        spec[b"find_keys"] = search(find)
        reply.append(spec)
    return SetReply(reply)


def has_key_specs(name: str) -> bool:
    """Redis has key specs for ``name`` naming real keys (not only not_key ones, like the
    shard channels of SPUBLISH)."""
    return any("not_key" not in flags for flags, *_ in key_specs().get(name, ()))


def key_references(name: str, argv: list[bytes]) -> KeyRefs | None:
    """The keys of ``argv`` (a command named ``name``, ``object|encoding`` for a subcommand)
    with their flags; None when Redis has no key specs for it (a command of our own: the
    caller falls back to the declaration's key positions)."""
    specs = key_specs().get(name)
    if specs is None:
        return None
    varies = any("variable_flags" in flags or "incomplete" in flags for flags, *_ in specs)
    if not varies:
        try:
            found = keys_from_specs(specs, argv)
        except InvalidKeySpec:
            found = None
            if name in NUMKEYS_FALLBACK:
                return counted_keys(name, argv)
            if name not in KEY_FUNCTIONS:
                raise
        if found is not None:
            return found
    function = KEY_FUNCTIONS.get(name)
    if function is None:
        raise InvalidKeySpec
    return function(argv)
