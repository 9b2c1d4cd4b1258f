"""CONFIG GET, SET and REWRITE: showing a value as Redis shows it, a new Config from CONFIG
SET's pairs (all or nothing, in Redis's order of checks), and rewriting the config file."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .config_options import CORE_TABLE, OptionTable, _validated, table_of
from .config_table import (
    BOOL,
    DIRECTORY,
    EVENTS,
    IMMUTABLE,
    MEMORY,
    MULTI_ARG,
    MULTI_LINE,
    OCTAL,
    OUTPUT_LIMITS,
    PROTECTED,
    REPLICAOF,
    SAVE,
    SECRET,
    STRING,
    WORDS,
    Option,
)
from .config_values import (
    ENCODING_ERRORS,
    TLS_APPLIED,
    TLS_SWITCHES,
    ConfigError,
    keyspace_events_display,
    output_buffer_limits,
    parse_value,
    tls_unsupported,
)
from .glob import compile_glob
from .resp import split_args

# --- showing values ------------------------------------------------------------------------


def format_value(config: Any, name: str) -> str:
    """An option's value as CONFIG GET shows it (``name`` may be an alias)."""
    option = table_of(config).by_name[name]
    value = getattr(config, option.field)
    kind = option.kind
    if kind == BOOL:
        return "yes" if value else "no"
    if kind == EVENTS:
        return keyspace_events_display(value)
    if kind == SAVE:
        return " ".join(f"{s} {c}" for s, c in value)
    if kind == OCTAL:
        return format(value, "o") if value else "0"
    if kind == WORDS:
        return " ".join(value)
    return str(value)


def config_repr(value: str) -> str:
    """Redis's ``sdscatrepr``: a double-quoted string in which a backslash, a quote and every
    byte that is not printable ASCII is escaped (\\n \\r \\t \\a \\b, else \\xHH).  The result is
    plain ASCII on one line, whatever the value holds, and ``split_args`` reads it back to
    the same bytes."""
    out = ['"']
    for byte in value.encode("utf-8", ENCODING_ERRORS):
        char = chr(byte)
        if char in '\\"':
            out.append("\\" + char)
        elif char in _REPR_ESCAPES:
            out.append(_REPR_ESCAPES[char])
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    out.append('"')
    return "".join(out)


_REPR_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a", "\b": "\\b"}


# Words written as they are (bind addresses, module names); any other is quoted.
_PLAIN_WORD = re.compile(r"[A-Za-z0-9._:*%/@\[\]-]+")


def _word(word: str) -> str:
    return word if _PLAIN_WORD.fullmatch(word) else config_repr(word)


def _format_memory(value: int) -> str:
    """A size as CONFIG REWRITE writes it: in gb, mb or kb when exact (Redis's form)."""
    for unit, size in (("gb", 1024**3), ("mb", 1024**2), ("kb", 1024)):
        if value and value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


def config_lines(config: Any, option: Option) -> list[str]:
    """The lines CONFIG REWRITE writes for ``option`` (as Redis writes them)."""
    value = getattr(config, option.field)
    name = option.name
    kind = option.kind
    if kind in (STRING, EVENTS):
        return [f"{name} {config_repr(format_value(config, name))}"]
    if kind == MEMORY:
        return [f"{name} {_format_memory(value)}"]
    if kind == SAVE:
        return [f"save {s} {c}" for s, c in value] or ['save ""']
    if kind == WORDS and option.flags & MULTI_LINE:
        return [f"{name} {_word(word)}" for word in value]
    if kind == OUTPUT_LIMITS:
        default = output_buffer_limits(option.default)
        # Redis writes the class CONFIG GET calls "slave" as "replica" in the file.
        return [f"{name} {'replica' if kind_ == 'slave' else kind_} {_format_memory(hard)} "
                f"{_format_memory(soft)} {seconds}"
                for kind_, (hard, soft, seconds) in output_buffer_limits(value).items()
                if default.get(kind_) != (hard, soft, seconds)]
    if kind == REPLICAOF and not value:
        return []  # no master: Redis drops the line instead of writing an empty one
    text = format_value(config, name)
    if kind == WORDS:
        return [f"{name} {' '.join(_word(word) for word in value)}" if value
                else f'{name} ""']
    return [f"{name} {text}" if text else f'{name} ""']


# --- CONFIG SET ----------------------------------------------------------------------------


_TLS_SWITCH_FIELDS = tuple(name.replace("-", "_") for name in TLS_SWITCHES)


def _set_failed(name: str, reason: str, detail: str = "") -> ConfigError:
    return ConfigError(f"CONFIG SET failed (possibly related to argument '{name}') - {reason}",
                       detail=detail)


def replace_options(config: Any, changes: Mapping[str, str] | Sequence[tuple[str, str]],
                    protected_allowed: bool = True) -> Any:
    """A new Config with ``changes`` (option name as typed -> CONFIG SET text) applied, all or
    nothing, checked in Redis's order: every name first (unknown, immutable, protected,
    duplicate), then every value.

    Raises :class:`ConfigError` with Redis's message naming the first bad option."""
    table = table_of(config)
    pairs = list(changes.items()) if isinstance(changes, Mapping) else list(changes)
    chosen: list[tuple[str, Option, str]] = []
    for typed, text in pairs:
        option = table.by_name.get(typed.lower())
        if option is None:
            raise ConfigError(f"Unknown option or number of arguments for CONFIG SET - '{typed}'")
        if option.flags & IMMUTABLE:
            raise _set_failed(typed, "can't set immutable config")
        if option.flags & PROTECTED and not protected_allowed:
            raise _set_failed(typed, "can't set protected config")
        # Twice the same spelling (in any case) is refused; an alias and its option may be
        # set together, the later one winning, as in Redis (they are two table entries).
        if any(typed.lower() == earlier.lower() for earlier, _, _ in chosen):
            raise _set_failed(typed, "duplicate parameter")
        chosen.append((typed, option, text))
    values: dict[str, Any] = {}
    for typed, option, text in chosen:
        words = text.split(" ") if option.flags & MULTI_ARG else [text]
        if option.kind == SAVE and text.strip() == "":
            words = []
        try:
            value = parse_value(option, words, getattr(config, option.field))
            if option.confine == DIRECTORY:
                value = _usable_directory(value)
        except ConfigError as error:
            # A bad value names the option as declared (Redis's config->name: the alias when
            # the alias was typed), while the name checks above echo what was typed.
            raise _set_failed(typed.lower(), str(error), error.detail) from None
        values[option.field] = value
    # Redis's apply step, once every value was read: a changed TLS option sets TLS up again,
    # which fails when TLS ends up on; the first such option in the command is named.
    if any(values.get(field, getattr(config, field)) for field in _TLS_SWITCH_FIELDS):
        for _typed, option, _text in chosen:
            if option.name in TLS_APPLIED and values[option.field] != getattr(config, option.field):
                error = tls_unsupported()
                raise _set_failed(option.name, str(error), error.detail)
    try:
        return _validated(table, values, config)
    except ConfigError as error:
        raise ConfigError(f"CONFIG SET failed - {error}") from None


def _usable_directory(path: str) -> str:
    """CONFIG SET dir: Redis changes directory at once, so a missing one is refused with
    the system's reason; the value kept is absolute (files are joined to it)."""
    try:
        if not os.path.isdir(path):
            os.stat(path)  # missing: ENOENT; there but not a directory: ENOTDIR below
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        if not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as error:
        raise ConfigError(error.strerror or str(error)) from None
    return os.path.abspath(path)


def matching_options(pattern: str, config: Any = None) -> list[str]:
    """The option names (and aliases) that match a CONFIG GET glob pattern, secrets left out."""
    table = table_of(config) if config is not None else CORE_TABLE
    if not any(char in pattern for char in "*?["):
        option = table.by_name.get(pattern.lower())
        return [pattern.lower()] if option is not None and not option.flags & SECRET else []
    # Redis's glob without case (stringmatch nocase: a class's \\x stays exact, a range is
    # swapped before it is folded), over a fixed set of short names: bounded cost.
    match = compile_glob(pattern.encode("utf-8", ENCODING_ERRORS), nocase=True).matches
    return [name for name in table.names
            if not table.by_name[name].flags & SECRET and match(name.encode())]


def protected_action_allowed(setting: str, is_local: bool) -> bool:
    """Redis's allowProtectedAction: ``yes``, or ``local`` for a loopback / unix socket client."""
    return setting == "yes" or (setting == "local" and is_local)


# --- CONFIG REWRITE ------------------------------------------------------------------------

REWRITE_SIGNATURE = "# Generated by CONFIG REWRITE"


def rewrite_config_file(path: str, config: Any, users: Sequence[str] = (),
                        force_all: bool = False) -> None:
    """CONFIG REWRITE, as Redis does it: keep the file's comments, unknown lines and order; an
    option the file names gets its current value where its first line was (its other lines
    dropped); options that differ from their default and are not in the file are appended
    after Redis's signature line.  Every string is quoted as ``sdscatrepr`` does, so one value is one
    line.  ``users`` are the ``user ...`` lines of the ACL users (none when an aclfile holds
    them): they take the places of the file's user lines in turn, the rest are appended last,
    as Redis rewrites them.  ``force_all`` (DEBUG CONFIG-REWRITE-FORCE-ALL) appends every
    option, defaults included.  The file is replaced atomically."""
    table = table_of(config)
    defaults = table.struct()
    try:
        with open(path, "rb") as handle:
            lines = handle.read().decode("utf-8", ENCODING_ERRORS).split("\n")
        if lines and lines[-1] == "":
            lines.pop()
    except FileNotFoundError:
        lines = []
    written: set[str] = set()
    output: list[str] = []
    pending_users = list(users)
    for line in lines:
        if _is_user_line(line):
            if pending_users:
                output.append(pending_users.pop(0))
            continue
        option = _option_of_line(table, line)
        if option is None:
            if line.strip() != REWRITE_SIGNATURE:
                output.append(line)
            continue
        if option.name in written:
            continue  # its other lines: the first one now holds the whole value
        output.extend(config_lines(config, option))
        written.add(option.name)
    # Options the file does not name are added only when they differ from the default.
    rest = [option for option in table.options.values() if option.name not in written
            and (force_all or getattr(config, option.field) != getattr(defaults, option.field))]
    if rest or pending_users:
        output.append(REWRITE_SIGNATURE)
        for option in rest:
            output.extend(config_lines(config, option))
        output.extend(pending_users)
    temp = f"{path}.tmp-{os.getpid()}"
    with open(temp, "wb") as handle:
        handle.write(("\n".join(output) + "\n").encode("utf-8", ENCODING_ERRORS))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _is_user_line(line: str) -> bool:
    words = line.strip(" \t\r\n").split(None, 1)
    return bool(words) and words[0].lower() == "user"


def _option_of_line(table: OptionTable, line: str) -> Option | None:
    text = line.strip(" \t\r\n")
    if not text or text.startswith("#"):
        return None
    words = split_args(text.encode("utf-8", ENCODING_ERRORS))
    if not words:
        return None
    return table.by_name.get(words[0].decode("utf-8", ENCODING_ERRORS).lower())
