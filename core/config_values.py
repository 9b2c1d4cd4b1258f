"""Option values: reading one from the words of a config line or CONFIG SET (sizes, enums,
save points, output buffer limits...), with Redis's error texts, and :class:`ConfigError`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .config_table import (
    BINARY,
    BOOL,
    DIRECTORY,
    ENUM,
    EVENTS,
    FILENAME,
    INT,
    LLONG_MAX,
    MEMORY,
    MEMORY_OR_PERCENT,
    OCTAL,
    OOM_VALUES,
    OUTPUT_LIMITS,
    PERCENTILES,
    REPLICAOF,
    SAVE,
    STRING,
    ULLONG_MAX,
    WORDS,
    Option,
)
from .errors import CommandError
from .zset import parse_double

# Bytes that are not UTF-8 survive the round trip (CONFIG SET, GET, REWRITE, the file).
ENCODING_ERRORS = "surrogateescape"


class ConfigError(Exception):
    """A bad option: the message says which and why (with ``file:line:`` when from a file).
    ``detail``: more than Redis's message says, for the log (CONFIG SET) or the start-up
    error."""

    def __init__(self, message: str, located: bool = False, detail: str = "") -> None:
        super().__init__(message)
        self.located = located  # the message already starts with ``file:line:``
        self.detail = detail


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
    value = _parse_kind(option, words, current)
    check = VALUE_CHECKS.get(option.name)
    if check is not None:
        check(value)
    return value


def _parse_kind(option: Option, words: list[str], current: Any) -> Any:
    """The value as ``option``'s kind reads it (and confines it)."""
    kind = option.kind
    if kind == BOOL:
        word = _one(words).lower()
        if word not in ("yes", "no"):
            raise ConfigError("argument must be 'yes' or 'no'")
        return word == "yes"
    if kind in (INT, MEMORY, OCTAL):
        return _parse_number(option, _one(words))
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


def _parse_number(option: Option, word: str) -> int:
    """An INT, MEMORY (``1gb``) or OCTAL option's value, within its bounds, with Redis's
    clamps."""
    kind = option.kind
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
    try:  # as Redis's string2d: strtod's forms (hex too), no space, no NaN, no overflow
        values = [parse_double(word.encode("utf-8", ENCODING_ERRORS)) for word in words]
    except CommandError:
        raise ConfigError("Invalid latency-tracking-info-percentiles parameters") from None
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


# --- values Redis refuses for reasons of their own ------------------------------------------

def _check_hostname(value: str) -> None:
    """cluster-announce-hostname: letters, digits, hyphens and dots, under 256 bytes."""
    if len(value.encode("utf-8", ENCODING_ERRORS)) >= 256:
        raise ConfigError("Hostnames must be less than 256 characters")
    if not _HOSTNAME.fullmatch(value):
        raise ConfigError("Hostnames may only contain alphanumeric characters, hyphens or dots")


_HOSTNAME = re.compile(r"[A-Za-z0-9.-]*")
# proc-title-template's variables, and whether each can expand to nothing: the title is
# checked as "", server-mode is empty outside cluster and sentinel mode; a unixsocket may
# be set (by a later line), so it counts as not empty.
_TITLE_VARIABLES = {"title": True, "listen-addr": False, "server-mode": True,
                    "config-file": False, "port": False, "tls-port": False, "unixsocket": False}


def _check_proc_title_template(template: str) -> None:
    """Redis's rules: ``{name}`` names a known variable, ``{{`` is a literal brace, and the
    title expanded with an empty ``{title}`` is not blank."""
    invalid = ConfigError("template format is invalid or contains unknown variables")
    shown = []
    rest = template
    while rest:
        start = rest.find("{")
        if start < 0:
            shown.append(rest)
            break
        shown.append(rest[:start])
        rest = rest[start + 1:]
        if not rest:
            raise invalid
        if rest[0] == "{":
            shown.append("{")
            rest = rest[1:]
            continue
        end = rest.find("}")
        if end < 0 or rest[:end] not in _TITLE_VARIABLES:
            raise invalid
        if not _TITLE_VARIABLES[rest[:end]]:
            shown.append("x")
        rest = rest[end + 1:]
    if not "".join(shown).strip(" "):
        raise invalid



TLS_UNSUPPORTED = "Unable to update TLS configuration. Check server logs."
# What turns TLS on, and the options whose change makes Redis set TLS up again (its
# applyTlsCfg and applyTLSPort: every tls-* option but tls-auth-clients).
TLS_SWITCHES = ("tls-port", "tls-replication", "tls-cluster")
TLS_APPLIED = frozenset({
    "tls-port", "tls-replication", "tls-cluster", "tls-session-cache-size",
    "tls-session-cache-timeout", "tls-prefer-server-ciphers", "tls-session-caching",
    "tls-cert-file", "tls-key-file", "tls-key-file-pass", "tls-client-cert-file",
    "tls-client-key-file", "tls-client-key-file-pass", "tls-dh-params-file",
    "tls-ca-cert-file", "tls-ca-cert-dir", "tls-protocols", "tls-ciphers", "tls-ciphersuites",
})


def tls_unsupported() -> ConfigError:
    """TLS turned on: this server serves none.  Redis gives this error when its TLS set-up
    fails (here it always would); a start-up configuration that turns TLS on stops the start
    rather than leave a TLS port silently unserved."""
    return ConfigError(TLS_UNSUPPORTED, detail=(
        "trioredis does not serve TLS: tls-port must stay 0, and tls-replication and "
        "tls-cluster no; a TLS proxy such as stunnel or HAProxy can front it"))


def _check_no_defrag(enabled: bool) -> None:
    """Debian's Redis is built without a defragmenting allocator, and so is this server."""
    if enabled:
        raise ConfigError(
            "Active defragmentation cannot be enabled: it requires a Redis server compiled "
            "with a modified Jemalloc like the one shipped by default with the Redis source "
            "distribution")


# Values an option's kind accepts but Redis refuses, by option (checked once parsed).
VALUE_CHECKS: dict[str, Callable[[Any], None]] = {
    "cluster-announce-hostname": _check_hostname,
    "proc-title-template": _check_proc_title_template,
    "activedefrag": _check_no_defrag,
}
