"""Configuration: Redis's directives as one table (:mod:`trioredis.config_table`), read from
redis.conf syntax into one frozen msgspec Struct.

This module reads config files and command lines and is where every configuration name is
imported from; the work is split by job: option values in :mod:`trioredis.config_values`, the
table in force and its Struct in :mod:`trioredis.config_options`, CONFIG GET/SET/REWRITE in
:mod:`trioredis.config_get_set`.

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

import os
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from .config_get_set import (
    REWRITE_SIGNATURE,
    config_lines,
    config_repr,
    format_value,
    matching_options,
    protected_action_allowed,
    replace_options,
    rewrite_config_file,
)
from .config_options import (
    CORE_TABLE,
    OPTION_NAMES,
    Config,
    OptionRegistry,
    OptionTable,
    _validated,
    table_of,
)
from .config_table import (
    MULTI_ARG,
    MULTI_LINE,
    WORDS,
    Option,
)
from .config_values import (
    ENCODING_ERRORS,
    ENUM_SYNONYMS,
    REPL_BACKLOG_MIN_SIZE,
    TLS_SWITCHES,
    ConfigError,
    check_confined,
    keyspace_events_display,
    keyspace_events_letters,
    merge_output_limits,
    output_buffer_limits,
    parse_memory,
    parse_value,
    tls_unsupported,
)
from .resp import split_args

# The configuration's public names, wherever they live: the values (config_values), the
# table and its Struct (config_options), CONFIG GET/SET/REWRITE (config_get_set), and reading
# files and command lines (here).
__all__ = [
    "CORE_TABLE", "ENCODING_ERRORS", "ENUM_SYNONYMS", "OPTION_NAMES", "REPL_BACKLOG_MIN_SIZE",
    "REWRITE_SIGNATURE", "USERS_AND_ACLFILE", "Config", "ConfigError", "LoadedConfig",
    "OptionRegistry", "OptionTable", "check_confined", "collect_plugin_options", "config_lines",
    "config_repr", "format_value", "keyspace_events_display", "keyspace_events_letters",
    "load_config", "matching_options", "merge_output_limits", "output_buffer_limits",
    "parse_memory", "parse_value", "protected_action_allowed", "read_config_lines",
    "replace_options", "rewrite_config_file", "table_of",
]

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
        self.set_at: dict[str, str] = {}  # option -> where the line that set it last is

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
            self.set_at[option.name] = where
        except ConfigError as error:
            if error.located:  # from an included file: it already names its file and line
                raise
            raise _located(where, error) from None

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


def _located(where: str, error: ConfigError) -> ConfigError:
    """``error`` naming the line it comes from, with its detail (the start-up's reason)."""
    detail = f" ({error.detail})" if error.detail else ""
    return ConfigError(f"{where}: {error}{detail}", located=True)


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
    # TLS is judged on the final values, as Redis sets it up once every line was read.
    for name in TLS_SWITCHES:
        if getattr(config, name.replace("-", "_")):
            raise _located(reader.set_at[name], tls_unsupported())
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
