"""What operators watch: the slow log (SLOWLOG), MONITOR and latency events (LATENCY).

A built-in plugin: it implements ``trioredis_command_executed`` like any third-party observer
would, and keeps its state in one :class:`Observer` per engine (``engine.observer``, created
on first use), so servers sharing a process (tests) do not share a slow log.

Redis's rules, kept here: a command is timed around its handler only; it enters the slow log
when it took ``slowlog-log-slower-than`` microseconds or more (0 logs everything, a negative
value nothing), newest first, at most ``slowlog-max-len`` entries, at most 32 arguments of at
most 128 bytes each.  MONITOR shows every command that ran (not the ones refused before running,
not admin commands, not what a persistence file replays) after it ran, with the database the
client is in afterwards; AUTH's arguments are shown as ``(redacted)`` in both.

Latency events (Redis's latency monitor): a named event (``command``, ``fast-command``,
``aof-write``, ``aof-fsync-always``, ``fork``...) is sampled when it took at least
``latency-monitor-threshold`` milliseconds (0, the default, turns the monitor off); each event
keeps its last 160 samples, one per second (the worst of that second), and its all-time maximum.
Backends report theirs through ``BackendHost.record_latency``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .commands import ADMIN, FAST, SKIP_SLOWLOG
from .hookspecs import hookimpl
from .resp import Raw

if TYPE_CHECKING:
    from .client import Client

SLOWLOG_MAX_ARGC = 32
LATENCY_SAMPLES = 160
SLOWLOG_MAX_STRING = 128
REDACTED = b"(redacted)"


class SlowlogEntry:
    __slots__ = ("id", "timestamp", "duration_us", "argv", "addr", "name")

    def __init__(self, entry_id: int, timestamp: int, duration_us: int, argv: list[bytes],
                 addr: bytes, name: bytes) -> None:
        self.id = entry_id
        self.timestamp = timestamp
        self.duration_us = duration_us
        self.argv = argv
        self.addr = addr
        self.name = name

    def reply(self) -> list[Any]:
        """The entry as SLOWLOG GET shows it."""
        return [self.id, self.timestamp, self.duration_us, list(self.argv), self.addr, self.name]


class LatencyEvent:
    """The samples of one event: (unix time, milliseconds), oldest first, and the maximum."""

    __slots__ = ("samples", "max")

    def __init__(self) -> None:
        self.samples: deque[tuple[int, int]] = deque(maxlen=LATENCY_SAMPLES)
        self.max = 0

    def add(self, now: int, milliseconds: int) -> None:
        if self.samples and self.samples[-1][0] == now:
            last = self.samples.pop()
            milliseconds = max(milliseconds, last[1])
        self.samples.append((now, milliseconds))
        self.max = max(self.max, milliseconds)


class Observer:
    """The slow log and the MONITOR clients of one server."""

    def __init__(self) -> None:
        self.slowlog: deque[SlowlogEntry] = deque()  # newest first
        self.next_id = 0
        self.monitors: dict[int, Client] = {}
        self.latency: dict[str, LatencyEvent] = {}

    # --- slow log --------------------------------------------------------------------------

    def log_slow(self, client: Client, argv: list[bytes], duration_us: int, max_len: int) -> None:
        self.slowlog.appendleft(SlowlogEntry(
            self.next_id, int(time.time()), duration_us, _slowlog_argv(redact(argv)),
            client.addr.encode(), client.name))
        self.next_id += 1
        while len(self.slowlog) > max(max_len, 0):
            self.slowlog.pop()

    def reset_slowlog(self) -> None:
        self.slowlog.clear()

    # --- latency monitor -------------------------------------------------------------------

    def add_latency_sample(self, event: str, milliseconds: int) -> None:
        now = int(time.time())
        history = self.latency.get(event)
        if history is None:
            history = self.latency[event] = LatencyEvent()
        history.add(now, milliseconds)

    # --- MONITOR ---------------------------------------------------------------------------

    def feed_monitors(self, engine: Any, client: Client, argv: list[bytes]) -> None:
        live = engine.clients
        line = None
        for monitor_id, monitor in list(self.monitors.items()):
            if monitor_id not in live:  # disconnected since: forget it
                del self.monitors[monitor_id]
                continue
            if line is None:
                line = monitor_line(engine, client, argv)
            monitor.transport.push(line)


def of(engine: Any) -> Observer:
    """The engine's Observer (built with the engine)."""
    return engine.observer


def latency_threshold(engine: Any) -> int:
    """``latency-monitor-threshold`` in milliseconds (0: the monitor is off)."""
    return getattr(engine.config, "latency_monitor_threshold", 0)


def record_latency(engine: Any, event: str, milliseconds: int) -> None:
    """Sample ``event`` when it reached the threshold (Redis's latencyAddSampleIfNeeded)."""
    threshold = latency_threshold(engine)
    if threshold and milliseconds >= threshold:
        of(engine).add_latency_sample(event, milliseconds)


def redact(argv: list[bytes]) -> list[bytes]:
    """AUTH's password (and user), HELLO's AUTH pair, ACL SETUSER's rules and CONFIG SET
    requirepass's value never reach a log."""
    name = argv[0].lower()
    if name == b"auth":
        return [argv[0]] + [REDACTED] * (len(argv) - 1)
    if name == b"acl" and len(argv) > 2 and argv[1].lower() == b"setuser":
        return argv[:2] + [REDACTED] * (len(argv) - 2)  # the rules hold passwords
    if name == b"config" and len(argv) > 3 and argv[1].lower() == b"set":
        shown = list(argv)
        for index in range(2, len(shown) - 1, 2):
            if shown[index].lower() == b"requirepass":  # Redis's sensitive option
                shown[index + 1] = REDACTED
        return shown
    if name == b"hello":
        shown = list(argv)
        for index in range(2, len(shown) - 2):
            if shown[index].lower() == b"auth":
                shown[index + 1] = shown[index + 2] = REDACTED
        return shown
    return argv


def _slowlog_argv(argv: list[bytes]) -> list[bytes]:
    shown = []
    count = min(len(argv), SLOWLOG_MAX_ARGC)
    for index in range(count):
        if index == SLOWLOG_MAX_ARGC - 1 and len(argv) != SLOWLOG_MAX_ARGC:
            shown.append(b"... (%d more arguments)" % (len(argv) - index))
            break
        arg = argv[index]
        if len(arg) > SLOWLOG_MAX_STRING:
            arg = arg[:SLOWLOG_MAX_STRING] + b"... (%d more bytes)" % (len(arg) - SLOWLOG_MAX_STRING)
        shown.append(arg)
    return shown


_ESCAPES = {ord("\\"): b"\\\\", ord('"'): b'\\"', ord("\n"): b"\\n", ord("\r"): b"\\r",
            ord("\t"): b"\\t", 7: b"\\a", 8: b"\\b"}


def quote(arg: bytes) -> bytes:
    """An argument as Redis's ``sdscatrepr`` prints it in MONITOR."""
    out = bytearray(b'"')
    for byte in arg:
        escape = _ESCAPES.get(byte)
        if escape is not None:
            out += escape
        elif 32 <= byte < 127:
            out.append(byte)
        else:
            out += b"\\x%02x" % byte
    out += b'"'
    return bytes(out)


def monitor_line(engine: Any, client: Client, argv: list[bytes]) -> Raw:
    """``+1700000000.123456 [0 127.0.0.1:50000] "SET" "k" "v"``."""
    if client.addr.startswith("/unixsocket"):
        source = f"unix:{engine.config.unixsocket}"
    else:
        source = client.addr
    words = b" ".join(quote(arg) for arg in redact(argv))
    return Raw(b"+%.6f [%d %s] %s\r\n" % (time.time(), client.db.index, source.encode(), words))


@hookimpl
def trioredis_command_executed(client, argv, duration_us):
    """Slow log, MONITOR and the command latency events.  Cheap when none applies: a few
    comparisons and attribute reads."""
    if client.is_loader:
        return
    ctx = client.ctx
    if ctx is None:
        return
    engine = ctx.engine
    config = engine.config
    threshold = config.slowlog_log_slower_than
    observer = engine.observer
    slow = 0 <= threshold <= duration_us
    latency_ms = getattr(config, "latency_monitor_threshold", 0)
    latent = latency_ms and duration_us >= latency_ms * 1000
    if not slow and not latent and not observer.monitors:
        return
    spec = engine.commands.get(argv[0].lower())
    if spec is None:
        return
    if latent:
        event = "fast-command" if FAST in spec.flags else "command"
        of(engine).add_latency_sample(event, duration_us // 1000)
    if slow and SKIP_SLOWLOG not in spec.flags:
        of(engine).log_slow(client, argv, duration_us, engine.config.slowlog_max_len)
    # skip-monitor commands (EVAL, FCALL) are fed by their handler, before what they run.
    if (observer is not None and observer.monitors and ADMIN not in spec.flags
            and "skip-monitor" not in spec.flags):
        observer.feed_monitors(engine, client, argv)


def _observe_from_us(config: Any) -> int:
    """The shortest duration (us) for which the hook above does anything without MONITOR
    clients: the engine skips calling it for faster commands (most of them, by default)."""
    floors = []
    if config.slowlog_log_slower_than >= 0:
        floors.append(config.slowlog_log_slower_than)
    latency_ms = getattr(config, "latency_monitor_threshold", 0)
    if latency_ms:
        floors.append(latency_ms * 1000)
    return min(floors) if floors else 1 << 62


trioredis_command_executed.observe_from_us = _observe_from_us
