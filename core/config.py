"""Configuration: one frozen msgspec Struct, read from redis.conf syntax.

Sources, later wins: the defaults below, the config file (``include`` supported), then
command-line options (``--port 7000``), which are read as extra config lines.  Field names are
the redis.conf names (``auto-aof-rewrite-min-size`` is ``auto_aof_rewrite_min_size`` here; the
Struct renames to kebab case).  ``CONFIG SET`` builds a new Struct with :func:`replace_options`,
so every change is validated the same way as the file.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args, get_origin

import msgspec

from .resp import split_args


class ConfigError(Exception):
    """A bad option: the message says which and why (with ``file:line:`` when from a file)."""

    def __init__(self, message: str, located: bool = False) -> None:
        super().__init__(message)
        self.located = located  # the message already starts with ``file:line:``


class Config(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    # network
    bind: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1", "-::1"])
    port: int = 6379
    unixsocket: str = ""
    unixsocketperm: int = 0
    tcp_backlog: int = 511
    tcp_keepalive: int = 300
    timeout: int = 0
    maxclients: int = 10000
    protected_mode: bool = True
    requirepass: str = ""
    # limits
    proto_max_bulk_len: int = 512 * 1024 * 1024
    client_query_buffer_limit: int = 1024 * 1024 * 1024
    # "<class> <hard> <soft> <soft-seconds>" for each class, as CONFIG GET shows it (see
    # merge_output_limits); a config line or CONFIG SET changes only the classes it names.
    client_output_buffer_limit: str = (
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    )
    maxmemory: int = 0
    # Enumerations list their values in Redis's order: the error message shows them.
    maxmemory_policy: Literal[
        "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru",
        "allkeys-lfu", "allkeys-random", "noeviction",
    ] = "noeviction"
    # general
    databases: int = 16
    hz: int = 10
    loglevel: Literal["debug", "verbose", "notice", "warning", "nothing"] = "notice"
    logfile: str = ""
    daemonize: bool = False
    supervised: Literal["upstart", "systemd", "auto", "no"] = "no"
    pidfile: str = ""
    dir: str = "."
    loadplugin: list[str] = msgspec.field(default_factory=list)
    slowlog_log_slower_than: int = 10000
    slowlog_max_len: int = 128
    latency_monitor_threshold: int = 0
    notify_keyspace_events: str = ""
    # append-only file (plugins/aof)
    appendonly: bool = False
    appendfilename: str = "appendonly.aof"
    appendfsync: Literal["everysec", "always", "no"] = "everysec"
    no_appendfsync_on_rewrite: bool = False
    auto_aof_rewrite_percentage: int = 100
    auto_aof_rewrite_min_size: int = 64 * 1024 * 1024
    aof_load_truncated: bool = True
    # snapshot (plugins/snapshot)
    save: list[tuple[int, int]] = msgspec.field(
        default_factory=lambda: [(3600, 1), (300, 100), (60, 10000)]
    )
    dbfilename: str = "dump.trdb"
    stop_writes_on_bgsave_error: bool = True


# Options that CONFIG SET refuses, as Redis does for these: they shape start-up only.
IMMUTABLE = frozenset(
    {"bind", "unixsocket", "unixsocketperm", "tcp-backlog", "databases", "daemonize",
     "supervised", "pidfile", "logfile", "loadplugin"}
)
# Never shown by CONFIG GET or INFO.
SECRET = frozenset({"requirepass"})
# Options that may appear on several lines, each line adding to the list.
_MULTI_LINE = frozenset({"loadplugin", "save"})

_FIELDS: dict[str, tuple[str, Any]] = {
    field.encode_name: (field.name, field.type) for field in msgspec.structs.fields(Config)
}
OPTION_NAMES = tuple(_FIELDS)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT_MAX = 2**31 - 1
# Sizes that take units (``64mb``); other integers are plain numbers, as in redis.conf.
_MEMORY = frozenset({"proto-max-bulk-len", "client-query-buffer-limit", "maxmemory",
                     "auto-aof-rewrite-min-size"})
# Redis's bounds (config.c) for the integer options: out of them is refused, with its message.
_BOUNDS: dict[str, tuple[int, int]] = {
    "port": (0, 65535), "tcp-backlog": (0, INT_MAX), "tcp-keepalive": (0, INT_MAX),
    "timeout": (0, INT_MAX), "maxclients": (1, 2**32 - 1), "databases": (1, INT_MAX),
    "hz": (0, INT_MAX), "unixsocketperm": (0, 0o777),
    "proto-max-bulk-len": (1024 * 1024, INT64_MAX),
    "client-query-buffer-limit": (1024 * 1024, INT64_MAX), "maxmemory": (0, 2**64 - 1),
    "slowlog-log-slower-than": (-1, INT64_MAX), "slowlog-max-len": (0, INT64_MAX),
    "latency-monitor-threshold": (0, INT64_MAX),
    "auto-aof-rewrite-percentage": (0, INT_MAX), "auto-aof-rewrite-min-size": (0, INT64_MAX),
}

_UNITS = {
    "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3,
}


def parse_memory(text: str) -> int:
    """``64mb`` -> 67108864, as redis.conf reads sizes (``k`` is 1000, ``kb`` 1024)."""
    lowered = text.strip().lower()
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if lowered.endswith(suffix):
            number = lowered[: -len(suffix)]
            return int(number) * _UNITS[suffix]
    return int(lowered)


def _convert(name: str, kind: Any, words: list[str]) -> Any:
    """The typed value of one option from its words on a config line."""
    if kind is bool:
        if len(words) != 1 or words[0].lower() not in ("yes", "no"):
            raise ConfigError("argument must be 'yes' or 'no'")
        return words[0].lower() == "yes"
    if kind is int:
        if len(words) != 1:
            raise ConfigError("wrong number of arguments")
        try:
            if name == "unixsocketperm":
                value = int(words[0], 8)
            elif name in _MEMORY:
                value = parse_memory(words[0])
                if value < 0:
                    raise ValueError
            else:
                value = int(words[0])
        except ValueError:
            if name in _MEMORY:
                raise ConfigError("argument must be a memory value") from None
            raise ConfigError("argument couldn't be parsed into an integer") from None
        low, high = _BOUNDS.get(name, (INT64_MIN, INT64_MAX))
        if not low <= value <= high:
            raise ConfigError(f"argument must be between {low} and {high} inclusive")
        if name == "hz":  # Redis clamps hz to 1..500 rather than refusing
            value = min(max(value, 1), 500)
        return value
    if kind is str:
        if len(words) != 1:
            raise ConfigError("wrong number of arguments")
        if name == "notify-keyspace-events":
            return keyspace_events_letters(words[0])
        return words[0]
    if get_origin(kind) is Literal:
        if len(words) != 1 or words[0].lower() not in get_args(kind):
            raise ConfigError(
                f"argument(s) must be one of the following: {', '.join(get_args(kind))}"
            )
        return words[0].lower()
    if name == "save":
        if words in ([], [""]):
            return []
        if len(words) % 2:
            raise ConfigError("Invalid save parameters")
        try:
            pairs = [(int(words[i]), int(words[i + 1])) for i in range(0, len(words), 2)]
        except ValueError:
            raise ConfigError("Invalid save parameters") from None
        if any(seconds < 1 or changes < 0 for seconds, changes in pairs):
            raise ConfigError("Invalid save parameters")
        return pairs
    if get_origin(kind) is list:
        return [word for word in words if word]
    raise ConfigError(f"unsupported option type for {name}")


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


def format_value(config: Config, option: str) -> str:
    """An option's value as redis.conf and CONFIG GET spell it."""
    value = getattr(config, _FIELDS[option][0])
    if option == "notify-keyspace-events":
        return keyspace_events_display(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if option == "save":
        return " ".join(f"{s} {c}" for s, c in value)
    if option == "unixsocketperm":
        return format(value, "o") if value else "0"
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


class _Reader:
    """Collects option values from lines, remembering where each came from."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.seen_multi: set[str] = set()
        self.renames: dict[str, str] = {}

    def line(self, words: list[str], where: str, depth: int = 0) -> None:
        name = words[0].lower()
        args = words[1:]
        try:
            if name == "include":
                if len(args) != 1:
                    raise ConfigError("include takes one path")
                if depth > 10:
                    raise ConfigError("include nested too deeply")
                self.file(args[0], depth + 1)
                return
            if name == "rename-command":
                if len(args) != 2:
                    raise ConfigError("rename-command takes a command name and a new name")
                self.renames[args[0].lower()] = args[1]
                return
            if name not in _FIELDS:
                raise ConfigError(f"Bad directive or wrong number of arguments: {name!r}")
            field_name, kind = _FIELDS[name]
            if name == "client-output-buffer-limit":
                current = self.values.get(field_name, Config().client_output_buffer_limit)
                self.values[field_name] = merge_output_limits(current, " ".join(args).split())
                return
            value = _convert(name, kind, args)
            if name in _MULTI_LINE:
                if name not in self.seen_multi:
                    self.values[field_name] = []
                    self.seen_multi.add(name)
                self.values[field_name] = self.values[field_name] + value
            else:
                self.values[field_name] = value
        except ConfigError as error:
            if error.located:  # from an included file: it already names its file and line
                raise
            raise ConfigError(f"{where}: {error}", located=True) from None

    def file(self, path: str, depth: int = 0) -> None:
        try:
            with open(path, "rb") as handle:
                lines = handle.read().decode("utf-8", "replace").splitlines()
        except OSError as error:
            raise ConfigError(f"can't open config file {path!r}: {error.strerror}") from None
        for number, raw in enumerate(lines, 1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            words = split_args(text.encode())
            where = f"{path}:{number}"
            if words is None:
                raise ConfigError(f"{where}: unbalanced quotes in configuration line", located=True)
            self.line([w.decode("utf-8", "replace") for w in words], where, depth)


class LoadedConfig(msgspec.Struct, frozen=True):
    config: Config
    path: str | None
    renamed_commands: Mapping[str, str]


def load_config(path: str | None = None, overrides: Iterable[list[str]] = ()) -> LoadedConfig:
    """The configuration from defaults, ``path`` and command-line ``overrides`` (each a list of
    words such as ``["port", "7000"]``).  Raises :class:`ConfigError`."""
    reader = _Reader()
    if path is not None:
        reader.file(path)
    for words in overrides:
        reader.line(words, "command line")
    config = _validated(reader.values)
    return LoadedConfig(config=config, path=os.path.abspath(path) if path else None,
                        renamed_commands=reader.renames)


def _validated(values: Mapping[str, Any], base: Config | None = None) -> Config:
    data = msgspec.to_builtins(base) if base is not None else {}
    data.update({_option_of(k): v for k, v in values.items()})
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as error:
        raise ConfigError(str(error)) from None
    _check_ranges(config)
    return config


def _option_of(field_name: str) -> str:
    return field_name.replace("_", "-")


def _check_ranges(config: Config) -> None:
    """Bounds again on the final values (lines were checked one by one in ``_convert``)."""
    for option, (low, high) in _BOUNDS.items():
        value = getattr(config, _FIELDS[option][0])
        if not low <= value <= high:
            raise ConfigError(f"{option}: argument must be between {low} and {high} inclusive")


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


def replace_options(config: Config, changes: Mapping[str, str]) -> Config:
    """A new Config with ``changes`` (option name -> CONFIG SET text) applied.

    Raises :class:`ConfigError` naming the first bad option; nothing is changed then."""
    values: dict[str, Any] = {}
    for option, text in changes.items():
        if option not in _FIELDS:
            raise ConfigError(f"Unknown option or number of arguments for CONFIG SET - '{option}'")
        if option in IMMUTABLE:
            raise ConfigError(f"CONFIG SET failed (possibly related to argument '{option}') - can't set immutable config")
        field_name, kind = _FIELDS[option]
        words = text.split(" ") if get_origin(kind) is list or option == "save" else [text]
        if option == "save" and text.strip() == "":
            words = []
        try:
            if option == "client-output-buffer-limit":
                current = values.get(field_name, config.client_output_buffer_limit)
                values[field_name] = merge_output_limits(current, text.split())
            else:
                values[field_name] = _convert(option, kind, words)
        except ConfigError as error:
            raise ConfigError(f"CONFIG SET failed (possibly related to argument '{option}') - {error}") from None
    try:
        return _validated(values, config)
    except ConfigError as error:
        raise ConfigError(f"CONFIG SET failed - {error}") from None


def matching_options(pattern: str) -> list[str]:
    """The option names that match a CONFIG GET glob pattern."""
    pattern = pattern.lower()
    return [name for name in OPTION_NAMES if fnmatch.fnmatchcase(name, pattern)]


def rewrite_config_file(path: str, config: Config) -> None:
    """CONFIG REWRITE: keep the file's comments and order, update the lines of options whose
    value differs from the default, append the rest, and replace the file atomically."""
    defaults = Config()
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        lines = []
    wanted = {
        name: format_value(config, name)
        for name in OPTION_NAMES
        if format_value(config, name) != format_value(defaults, name)
    }
    written: set[str] = set()
    output: list[str] = []
    for line in lines:
        words = line.strip().split(maxsplit=1)
        name = words[0].lower() if words and not line.strip().startswith("#") else None
        if name in _FIELDS:
            if name in written or name not in wanted:
                continue
            output.append(_config_line(name, wanted[name]))
            written.add(name)
        else:
            output.append(line)
    for name, value in wanted.items():
        if name not in written:
            output.append(_config_line(name, value))
    temp = f"{path}.tmp-{os.getpid()}"
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write("\n".join(output) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _config_line(name: str, value: str) -> str:
    if name == "save" and value == "":
        return 'save ""'
    if value == "" or " " in value and name not in ("save", "bind", "loadplugin"):
        return f'{name} "{value}"'
    return f"{name} {value}"
