"""Configuration: Redis's directives as one table (:mod:`trioredis.config_table`), read from
redis.conf syntax into one frozen msgspec Struct.

Sources, later wins: the defaults of the table, the config file (``include`` supported), then
command-line options (``--port 7000``), which are read as extra config lines.  The Struct's
fields are the option names with ``_`` for ``-`` (``auto-aof-rewrite-min-size`` is
``config.auto_aof_rewrite_min_size``): reading an option on the command path stays one
attribute read.  ``CONFIG SET`` builds a new Struct with :func:`replace_options`, so every change
is validated the same way as the file, then the engine swaps it in and tells the plugins.

Security rules kept here, in one place, for every option (a plugin's too):

- a ``FILENAME`` option is a file name, never a path (Redis's "can't be a path, just a
  filename"), so SAVE/BGREWRITEAOF cannot be pointed at a file of the client's choosing;
- ``PROTECTED`` options (``dir``, ``dbfilename``) change at runtime only when
  ``enable-protected-configs`` allows the client (``yes``, or ``local`` from a loopback or unix
  socket connection), as in Redis 7;
- CONFIG REWRITE quotes every string as Redis's ``sdscatrepr`` does and the file is read back
  as Redis reads it (lines end at ``\\n`` only, words split by ``sdssplitargs``), so a value
  holding a newline or any other line separator comes back as itself and never as a directive.
"""

from __future__ import annotations

import errno
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from .config_table import (
    BINARY,
    BOOL,
    DIRECTORY,
    ENUM,
    EVENTS,
    FILENAME,
    IMMUTABLE,
    INT,
    LLONG_MAX,
    MEMORY,
    MEMORY_OR_PERCENT,
    MULTI_ARG,
    MULTI_LINE,
    OCTAL,
    OOM_VALUES,
    OUTPUT_LIMITS,
    OWN_OPTIONS,
    PERCENTILES,
    PROTECTED,
    REDIS_OPTIONS,
    REPLICAOF,
    SAVE,
    SECRET,
    STRING,
    ULLONG_MAX,
    WORDS,
    Option,
)
from .glob import compile_glob
from .resp import split_args

# Bytes that are not UTF-8 survive the round trip (CONFIG SET, GET, REWRITE, the file).
ENCODING_ERRORS = "surrogateescape"


class ConfigError(Exception):
    """A bad option: the message says which and why (with ``file:line:`` when from a file)."""

    def __init__(self, message: str, located: bool = False) -> None:
        super().__init__(message)
        self.located = located  # the message already starts with ``file:line:``


class OptionTable:
    """The known options (core's and the plugins'), by name and alias, and the frozen Struct
    class that holds their values."""

    def __init__(self, options: Iterable[Option], base: type[msgspec.Struct] | None = None,
                 inherited: OptionTable | None = None) -> None:
        own = list(options)
        self.options: dict[str, Option] = dict(inherited.options) if inherited else {}
        self.by_name: dict[str, Option] = dict(inherited.by_name) if inherited else {}
        for option in own:
            for name in (option.name, option.alias):
                if name in self.by_name:
                    raise ConfigError(f"option {name!r} is declared twice")
            self.options[option.name] = option
            self.by_name[option.name] = option
            if option.alias:
                self.by_name[option.alias] = option
        self.by_field = {option.field: option for option in self.options.values()}
        fields = [(option.field, _FIELD_TYPES[option.kind],
                   msgspec.field(default_factory=_copier(option.default), name=option.name)
                   if isinstance(option.default, list)
                   else msgspec.field(default=option.default, name=option.name))
                  for option in own]
        bases = (base,) if base is not None else ()
        self.struct: type[msgspec.Struct] = msgspec.defstruct(
            "Config", fields, bases=bases, kw_only=True, frozen=True,
            forbid_unknown_fields=True, module=__name__)
        # CONFIG GET * lists names and aliases, as Redis does.
        self.names = tuple(self.by_name)
        self._extensions: dict[tuple[int, ...], OptionTable] = {}
        self._keep: tuple[Option, ...] = ()
        _TABLES[self.struct] = self

    def extended(self, options: Sequence[Option]) -> OptionTable:
        """This table plus ``options`` (a plugin's), as a Struct subclass: code that reads
        ``config.port`` keeps working on it."""
        if not options:
            return self
        # The same plugins give the same table: one Struct class per set of options, not
        # one per configuration read (a test process reads hundreds).
        key = tuple(id(option) for option in options)
        table = self._extensions.get(key)
        if table is None:
            table = self._extensions[key] = OptionTable(options, base=self.struct,
                                                        inherited=self)
            table._keep = tuple(options)  # the ids in the key stay those of these objects
        return table


_TABLES: dict[type, OptionTable] = {}

_FIELD_TYPES: dict[str, Any] = {
    BOOL: bool, INT: int, MEMORY: int, OCTAL: int, ENUM: str, STRING: str,
    WORDS: list[str], SAVE: list[tuple[int, int]], OUTPUT_LIMITS: str, EVENTS: str,
    OOM_VALUES: str, PERCENTILES: str, MEMORY_OR_PERCENT: str, REPLICAOF: str,
}


def _copier(default: list) -> Any:
    return lambda: list(default)


CORE_TABLE = OptionTable(REDIS_OPTIONS + OWN_OPTIONS)
Config: Any = CORE_TABLE.struct
Config.__doc__ = "The configuration in force: one field per option of the table, frozen."
OPTION_NAMES = CORE_TABLE.names


def table_of(config: Any) -> OptionTable:
    """The table a configuration was built from (core's, or core's plus plugins')."""
    return _TABLES[type(config)]


# --- reading values ------------------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3,
          "gb": 1024**3}
_MEMORY_RE = re.compile(r"(-?)(\d+)([a-z]*)", re.IGNORECASE)
_INTEGER_RE = re.compile(r"-?(0|[1-9]\d*)")  # Redis's string2ll: no '+', no spaces, no 007


def parse_memory(text: str) -> int:
    """``64mb`` -> 67108864, as redis.conf reads sizes (``k`` is 1000, ``kb`` 1024).
    ValueError when it is not a size."""
    if text == "":
        return 0  # Redis's memtoull reads no digits as 0
    match = _MEMORY_RE.fullmatch(text)
    if match is None or match.group(3).lower() not in _UNITS:
        raise ValueError(text)
    if match.group(1):
        raise ValueError(text)  # Redis's memtoull takes no sign
    # Digits beyond 64 bits saturate, as strtoull does.
    return min(int(match.group(2)), ULLONG_MAX) * _UNITS[match.group(3).lower()]


def _parse_integer(text: str) -> int:
    if _INTEGER_RE.fullmatch(text) is None:
        raise ValueError(text)
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(text)
    return value


def _one(words: list[str]) -> str:
    if len(words) != 1:
        raise ConfigError("wrong number of arguments")
    return words[0]


def parse_value(option: Option, words: list[str], current: Any = None) -> Any:
    """The typed value of ``option`` from its words; ConfigError with Redis's reason.
    ``current`` is the value in force, for options that change only what they name
    (client-output-buffer-limit)."""
    kind = option.kind
    if kind == BOOL:
        word = _one(words).lower()
        if word not in ("yes", "no"):
            raise ConfigError("argument must be 'yes' or 'no'")
        return word == "yes"
    if kind in (INT, MEMORY, OCTAL):
        word = _one(words)
        try:
            if kind == OCTAL:
                value = int(word, 8)
            elif kind == MEMORY:
                value = parse_memory(word)
                if value > LLONG_MAX and option.high != ULLONG_MAX:
                    value -= 2**64  # a signed option reads the bits as negative, as Redis
            else:
                value = _parse_integer(word)
        except ValueError:
            if kind == MEMORY:
                raise ConfigError("argument must be a memory value") from None
            raise ConfigError("argument couldn't be parsed into an integer") from None
        if not option.low <= value <= option.high:
            raise ConfigError(
                f"argument must be between {option.low} and {option.high} inclusive")
        if option.name == "hz":  # Redis clamps hz to 1..500 rather than refusing
            value = min(max(value, 1), 500)
        if option.name == "repl-backlog-size":  # and the backlog to at least 16 kB
            value = max(value, REPL_BACKLOG_MIN_SIZE)
        return value
    if kind == ENUM:
        word = _one(words).lower()
        if word not in option.values:
            raise ConfigError(
                f"argument(s) must be one of the following: {', '.join(option.values)}")
        # Redis keeps a number per name and shows the first name of that number: its
        # oom-score-adj "relative" is read back as "yes".
        return ENUM_SYNONYMS.get((option.name, word), word)
    if kind == STRING:
        value = _one(words)
        if not option.flags & BINARY:  # Redis keeps these as C strings: a NUL ends them
            value = value.partition("\0")[0]
        check_confined(option, value)
        return value
    if kind == EVENTS:
        return keyspace_events_letters(_one(words))
    if kind == WORDS:
        return [word for word in words if word]
    if kind == SAVE:
        return _parse_save(words)
    if kind == OUTPUT_LIMITS:
        return merge_output_limits(current if current is not None else option.default,
                                   " ".join(words).split())
    if kind == OOM_VALUES:
        return _parse_oom_values(words)
    if kind == PERCENTILES:
        return _parse_percentiles(words)
    if kind == MEMORY_OR_PERCENT:
        return _parse_memory_or_percent(_one(words))
    if kind == REPLICAOF:
        return _parse_replicaof(words)
    raise ConfigError(f"unsupported option type for {option.name}")


REPL_BACKLOG_MIN_SIZE = 16 * 1024
# (option, name) -> the name Redis's CONFIG GET shows for the same value.
ENUM_SYNONYMS = {("oom-score-adj", "relative"): "yes"}


def check_confined(option: Option, value: str) -> None:
    """A file-name option names a file inside ``dir``: not a path (Redis's rule for
    dbfilename, appendfilename and appenddirname), and, here, not ``.``, ``..``, empty or
    holding NUL either: each of those would write somewhere else than a file in dir."""
    if option.confine == FILENAME:
        if "/" in value or "\\" in value:
            noun = "dirname" if option.name == "appenddirname" else "filename"
            raise ConfigError(f"{option.name} can't be a path, just a {noun}")
        if value in ("", ".", "..") or "\0" in value:
            raise ConfigError(f"{option.name} can't be empty, '.', '..' or hold NUL")
    elif option.confine == DIRECTORY and "\0" in value:
        raise ConfigError("No such file or directory")


def _parse_save(words: list[str]) -> list[tuple[int, int]]:
    if words in ([], [""]):
        return []
    if len(words) % 2:
        raise ConfigError("Invalid save parameters")
    try:
        pairs = [(_parse_integer(words[i]), _parse_integer(words[i + 1]))
                 for i in range(0, len(words), 2)]
    except ValueError:
        raise ConfigError("Invalid save parameters") from None
    if any(seconds < 1 or changes < 0 for seconds, changes in pairs):
        raise ConfigError("Invalid save parameters")
    return pairs


def _parse_oom_values(words: list[str]) -> str:
    if len(words) != 3:
        raise ConfigError("wrong number of arguments")
    reason = "Invalid oom-score-adj-values, elements must be between -2000 and 2000."
    try:
        values = [_parse_integer(word) for word in words]
    except ValueError:
        raise ConfigError(reason) from None
    if any(not -2000 <= value <= 2000 for value in values):
        raise ConfigError(reason)
    return " ".join(map(str, values))


def _parse_percentiles(words: list[str]) -> str:
    if words in ([], [""]):
        return ""
    try:
        values = [float(word) for word in words]
    except ValueError:
        raise ConfigError("Invalid latency-tracking-info-percentiles parameters") from None
    if any(math.isnan(value) for value in values):
        raise ConfigError("Invalid latency-tracking-info-percentiles parameters")
    if any(not 0.0 <= value <= 100.0 for value in values):
        raise ConfigError(
            "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]")
    # Redis prints each with %f and trims the trailing zeros (99.9, 50).
    return " ".join(f"{value:f}".rstrip("0").rstrip(".") for value in values)


def _parse_memory_or_percent(word: str) -> str:
    try:
        if word.endswith("%"):
            percent = _parse_integer(word[:-1])
            if percent < 0:
                raise ValueError(word)
            if percent > 100:
                raise ConfigError("percentage argument must be less or equal to 100")
            return f"{percent}%"
        value = parse_memory(word)
        if value < 0:
            raise ValueError(word)
        return str(value)
    except ValueError:
        raise ConfigError("argument must be a memory or percent value") from None


def _parse_replicaof(words: list[str]) -> str:
    if words in ([], [""]):
        return ""
    if len(words) != 2:
        raise ConfigError("wrong number of arguments")
    if words[0].lower() == "no" and words[1].lower() == "one":
        return ""
    try:
        port = _parse_integer(words[1])
    except ValueError:
        raise ConfigError("Invalid master port") from None
    if not 0 <= port <= 65535:
        raise ConfigError("Invalid master port")
    return f"{words[0]} {port}"


# notify-keyspace-events, as Redis's keyspaceEventsStringToFlags and ...FlagsToString: the
# classes (A stands for g$lshzxetd: neither n nor m), then K and E (the channels) and m.
# The value is kept as every letter in force, in this order ("A" spelled out), so nothing is
# lost; CONFIG GET and CONFIG REWRITE print Redis's form, where "A" hides n ("KEAn" -> "AKE").
_EVENT_CLASSES_IN_A = "g$lshzxetd"
_EVENT_LETTERS = _EVENT_CLASSES_IN_A + "nKEm"


def keyspace_events_letters(text: str) -> str:
    """The letters a ``notify-keyspace-events`` value turns on, in Redis's order; Redis's
    error for any other character."""
    letters = set(text.replace("A", _EVENT_CLASSES_IN_A))
    if not letters <= set(_EVENT_LETTERS):
        raise ConfigError("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
    return "".join(letter for letter in _EVENT_LETTERS if letter in letters)


def keyspace_events_display(letters: str) -> str:
    """Redis's spelling of the letters in force: "A" when every class it stands for is on
    (and then no other class letter, as Redis prints it), then K, E, m."""
    if letters.startswith(_EVENT_CLASSES_IN_A):
        classes = "A"
    else:
        classes = "".join(letter for letter in letters if letter in _EVENT_CLASSES_IN_A + "n")
    return classes + "".join(letter for letter in letters if letter in "KEm")



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


# --- reading files and command lines -------------------------------------------------------

# Directives that are not options: handled by the reader itself.
_INCLUDE_DEPTH = 10


USERS_AND_ACLFILE = (
    "Configuring Redis with users defined in redis.conf and at the same setting an ACL file "
    "path is invalid. This setup is very likely to lead to configuration errors and security "
    "holes, please define either an ACL file or declare users directly in your redis.conf, "
    "but not both.")


class _Reader:
    """Collects option values from lines, remembering where each came from."""

    def __init__(self, table: OptionTable) -> None:
        self.table = table
        self.values: dict[str, Any] = {}
        self.seen_multi: set[str] = set()
        self.renames: dict[str, str] = {}
        self.users: list[tuple[str, ...]] = []  # ``user name rules...`` lines, in order
        self.set_names: list[str] = []  # options a line set, in order (for the start-up log)

    def line(self, words: list[str], where: str, depth: int = 0) -> None:
        name = words[0].lower()
        args = words[1:]
        try:
            if name == "include":
                if len(args) != 1:
                    raise ConfigError("include takes one path")
                if depth > _INCLUDE_DEPTH:
                    raise ConfigError("include nested too deeply")
                self.file(args[0], depth + 1)
                return
            if name == "user" and args:  # ACL users (trioredis.acl_file), not an option
                self.users.append(tuple(args))
                return
            if name == "rename-command":
                if len(args) != 2:
                    raise ConfigError("rename-command takes a command name and a new name")
                self.renames[args[0].lower()] = args[1]
                return
            option = self.table.by_name.get(name)
            if option is None or (not args and option.kind != WORDS):
                raise ConfigError(f"Bad directive or wrong number of arguments: {name!r}")
            if option.flags & MULTI_ARG and len(args) == 1:
                # As Redis: a multi-word option given as one word (--save '3600 1') is split
                # on spaces; an empty word ('save ""') stays one empty word.
                args = args[0].split(" ") if args[0] else [""]
            value = parse_value(option, args, self.values.get(option.field))
            if option.flags & MULTI_LINE:
                if option.name not in self.seen_multi:
                    self.values[option.field] = []
                    self.seen_multi.add(option.name)
                self.values[option.field] = self.values[option.field] + value
            else:
                self.values[option.field] = value
            self.set_names.append(option.name)
        except ConfigError as error:
            if error.located:  # from an included file: it already names its file and line
                raise
            raise ConfigError(f"{where}: {error}", located=True) from None

    def file(self, path: str, depth: int = 0) -> None:
        for words, where in read_config_lines(path):
            self.line(words, where, depth)


def read_config_lines(path: str) -> list[tuple[list[str], str]]:
    """The directives of a config file as Redis reads them: lines end at ``\\n`` only (a
    ``\\r``, ``\\x85`` or ``\\u2028`` inside a quoted value is part of the value), blanks
    around a line are dropped, ``#`` starts a comment line, words are split by
    ``sdssplitargs``.  Each with its ``path:line`` for error messages."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ConfigError(f"can't open config file {path!r}: {error.strerror}") from None
    directives = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        text = raw.strip(b" \t\r\n")
        if not text or text.startswith(b"#"):
            continue
        words = split_args(text)
        where = f"{path}:{number}"
        if words is None:
            raise ConfigError(f"{where}: unbalanced quotes in configuration line", located=True)
        if words:
            directives.append(([w.decode("utf-8", ENCODING_ERRORS) for w in words], where))
    return directives


class LoadedConfig(msgspec.Struct, frozen=True):
    config: Any
    path: str | None
    renamed_commands: Mapping[str, str]
    # The ``user`` lines: (name, rule, ...) each, applied when the command table exists.
    users: tuple[tuple[str, ...], ...] = ()
    # Options the file or command line set that have no effect here (logged at start-up).
    without_effect: tuple[str, ...] = ()


def load_config(path: str | None = None, overrides: Iterable[list[str]] = (),
                table: OptionTable | None = None) -> LoadedConfig:
    """The configuration from defaults, ``path`` and command-line ``overrides`` (each a list of
    words such as ``["port", "7000"]``).  Options that plugins declare are known when the
    ``loadplugin`` lines (and installed plugins) declare them.  Raises :class:`ConfigError`."""
    overrides = [list(words) for words in overrides if words]
    directives = read_config_lines(path) if path is not None else []
    if table is None:
        table = CORE_TABLE.extended(_plugin_options(directives, overrides))
    reader = _Reader(table)
    for words, where in directives:
        reader.line(words, where)
    for words in overrides:
        reader.line(words, "command line")
    config = _validated(table, reader.values)
    if reader.users and getattr(config, "aclfile", ""):
        raise ConfigError(USERS_AND_ACLFILE)
    without = tuple(dict.fromkeys(
        name for name in reader.set_names if not table.options[name].applies))
    return LoadedConfig(config=config, path=os.path.abspath(path) if path else None,
                        renamed_commands=reader.renames, without_effect=without,
                        users=tuple(reader.users))


def _plugin_options(directives: list[tuple[list[str], str]],
                    overrides: list[list[str]]) -> list[Option]:
    """The options the plugins declare (``trioredis_add_options``): the built-in ones, the
    installed ones and those ``loadplugin`` lines name (read before the other lines, so a
    plugin's option may come before its loadplugin line)."""
    from .plugin_manager import PluginLoadError, make_plugin_manager

    names = [word for words, _ in directives if words[0].lower() == "loadplugin"
             for word in words[1:]]
    names += [word for words in overrides if words[0].lower() == "loadplugin"
              for word in words[1:]]
    try:
        manager = make_plugin_manager([name for name in names if name])
    except PluginLoadError:
        # The server's own start-up reports a plugin that does not load (with its reason);
        # here the options of the plugins that do load are still known.
        manager = make_plugin_manager([])
    return collect_plugin_options(manager)


def collect_plugin_options(manager: Any) -> list[Option]:
    """Every option declared through ``trioredis_add_options`` by ``manager``'s plugins."""
    registry = OptionRegistry(CORE_TABLE)
    manager.hook.trioredis_add_options(registry=registry)
    return registry.options


class OptionRegistry:
    """What ``trioredis_add_options`` fills: ``registry.add(Option(...))`` (see
    :mod:`trioredis.config_table` for the helpers ``boolean``, ``integer``, ``string``...)."""

    def __init__(self, core: OptionTable) -> None:
        self._core = core
        self.options: list[Option] = []

    def add(self, option: Option) -> None:
        taken = set(self._core.by_name) | {o.name for o in self.options} | {
            o.alias for o in self.options if o.alias}
        if option.name in taken or option.alias in taken:
            raise ConfigError(f"option {option.name!r} is already declared")
        if option.kind not in _FIELD_TYPES:
            raise ConfigError(f"option {option.name!r} has an unknown kind {option.kind!r}")
        self.options.append(option)


def _validated(table: OptionTable, values: Mapping[str, Any], base: Any = None) -> Any:
    data = msgspec.to_builtins(base) if base is not None else {}
    data.update({table.by_field[field].name: value for field, value in values.items()})
    try:
        return msgspec.convert(data, table.struct)
    except msgspec.ValidationError as error:
        raise ConfigError(str(error)) from None


_OUTPUT_CLASSES = ("normal", "slave", "pubsub")


def output_buffer_limits(text: str) -> dict[str, tuple[int, int, int]]:
    """``client-output-buffer-limit`` as {class: (hard bytes, soft bytes, soft seconds)}."""
    words = text.split()
    return {words[i]: (int(words[i + 1]), int(words[i + 2]), int(words[i + 3]))
            for i in range(0, len(words) - 3, 4)}


def merge_output_limits(current: str, words: list[str]) -> str:
    """``current`` with the classes that ``words`` name (``pubsub 32mb 8mb 60 ...``) replaced,
    in CONFIG GET's form; Redis's errors (config.c) for a bad list."""
    if not words or len(words) % 4:
        raise ConfigError("Wrong number of arguments in buffer limit configuration.")
    limits = output_buffer_limits(current)
    for i in range(0, len(words), 4):
        kind = words[i].lower()
        kind = "slave" if kind == "replica" else kind
        if kind not in _OUTPUT_CLASSES:
            raise ConfigError("Invalid client class specified in buffer limit configuration.")
        try:
            hard, soft = parse_memory(words[i + 1]), parse_memory(words[i + 2])
            seconds = int(words[i + 3])
        except ValueError:
            hard = soft = seconds = -1
        if min(hard, soft, seconds) < 0:
            raise ConfigError(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.")
        limits[kind] = (hard, soft, seconds)
    return " ".join(f"{kind} {' '.join(map(str, limits[kind]))}" for kind in _OUTPUT_CLASSES)



# --- CONFIG SET ----------------------------------------------------------------------------


def _set_failed(name: str, reason: str) -> ConfigError:
    return ConfigError(f"CONFIG SET failed (possibly related to argument '{name}') - {reason}")


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
            raise _set_failed(typed.lower(), str(error)) from None
        values[option.field] = value
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


def rewrite_config_file(path: str, config: Any, users: Sequence[str] = ()) -> None:
    """CONFIG REWRITE, as Redis does it: keep the file's comments, unknown lines and order; an
    option the file names gets its current value where its first line was (its other lines
    dropped); options that differ from their default and are not in the file are appended
    after Redis's signature line.  Every string is quoted as ``sdscatrepr`` does, so one value is one
    line.  ``users`` are the ``user ...`` lines of the ACL users (none when an aclfile holds
    them): they take the places of the file's user lines in turn, the rest are appended last,
    as Redis rewrites them.  The file is replaced atomically."""
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
            and getattr(config, option.field) != getattr(defaults, option.field)]
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
