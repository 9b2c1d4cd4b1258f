"""Operator commands: SLOWLOG GET/LEN/RESET/HELP, MONITOR and LATENCY.

The recording itself is in :mod:`trioredis.observability` (a ``trioredis_command_executed``
hook); these commands read it.
"""

from __future__ import annotations

import time

from .. import errors
from .. import latency as latency_histograms
from ..errors import CommandError
from ..observability import latency_threshold, of
from ..resp import OK, Map, Raw, Status, Verbatim
from . import command

_SLOWLOG_HELP = [
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
]
_COUNT_ERROR = "ERR count should be greater than or equal to -1"


def slowlog(ctx, argv):
    observer = of(ctx.engine)
    sub = argv[1].lower()
    if sub == b"get" and len(argv) in (2, 3):
        count = 10
        if len(argv) == 3:
            try:
                count = int(argv[2])
            except ValueError:
                raise CommandError(_COUNT_ERROR) from None
            if count < -1:
                raise CommandError(_COUNT_ERROR)
        entries = list(observer.slowlog)
        if count != -1:
            entries = entries[:count]
        return [entry.reply() for entry in entries]
    if sub == b"len" and len(argv) == 2:
        return len(observer.slowlog)
    if sub == b"reset" and len(argv) == 2:
        observer.reset_slowlog()
        return OK
    if sub == b"help" and len(argv) == 2:
        return [Status(line.encode()) for line in _SLOWLOG_HELP]
    if sub in (b"len", b"reset", b"help"):
        raise CommandError(errors.wrong_arity(f"slowlog|{sub.decode()}"))
    if sub == b"get":
        raise CommandError(errors.sanitize(
            "ERR unknown subcommand or wrong number of arguments for "
            f"'{argv[1].decode('utf-8', 'replace')}'. Try SLOWLOG HELP."))
    raise CommandError(errors.unknown_subcommand(argv[1], "SLOWLOG"))


def monitor(ctx, argv):
    engine, client = ctx.engine, ctx.client
    if engine.in_exec:
        raise CommandError("ERR MONITOR isn't allowed for DENY BLOCKING client")
    observer = of(engine)
    if client.id in observer.monitors:
        return Raw(b"")  # Redis ignores a second MONITOR without a reply
    observer.monitors[client.id] = client
    return OK


_LATENCY_HELP = [
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the "
    "specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
]
_DOCTOR_DISABLED = (
    "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. "
    'You may use "CONFIG SET latency-monitor-threshold <milliseconds>." in order to enable it. '
    "If we weren't in a deep space mission I'd suggest to take a look at "
    "https://redis.io/topics/latency-monitor.\n"
)
_DOCTOR_QUIET = (
    "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the "
    "slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think "
    "things over.\n"
)


def _doctor(ctx, observer) -> str:
    """LATENCY DOCTOR: Redis's report, with its per-event lines (the advice is shorter)."""
    if not latency_threshold(ctx.engine):
        return _DOCTOR_DISABLED
    if not observer.latency:
        return _DOCTOR_QUIET
    lines = ["Dave, I have observed latency spikes in this Redis instance. You don't mind "
             "talking about it, do you Dave?", ""]
    for number, (event, history) in enumerate(observer.latency.items(), 1):
        samples = list(history.samples)
        values = [ms for _, ms in samples]
        average = sum(values) // len(values)
        deviation = sum(abs(v - average) for v in values) // len(values)
        period = (samples[-1][0] - samples[0][0]) / max(len(samples) - 1, 1) if len(samples) > 1 else 1.0
        lines.append(f"{number}. {event}: {len(samples)} latency spikes (average {average}ms, "
                     f"mean deviation {deviation}ms, period {period:.2f} sec). Worst all time "
                     f"event {history.max}ms.")
    lines += ["", "I have a few advices for you:", "",
              "- Check your Slow Log to understand what are the commands you are running which "
              "are too slow to execute. Please check https://redis.io/commands/slowlog for more "
              "information.", ""]
    return "\n".join(lines)


def _histogram_reply(record) -> Map:
    return Map({b"calls": record[0],
                b"histogram_usec": Map(latency_histograms.cumulative_usec(record[4]))})


def _histograms(engine, names: list[bytes]) -> Map:
    """LATENCY HISTOGRAM [command ...]: per full command name (``config|get``), the calls
    and their cumulative distribution; a container command's name brings its subcommands,
    unknown names and commands never called are skipped, as in Redis."""
    table = engine.stats.per_command
    if not names:
        return Map((name.encode(), _histogram_reply(record))
                   for name, record in table.items() if record[4])
    # Each name costs a lookup or two, however many names are asked for: the recorded
    # names grouped by their container once.
    by_container: dict[str, list[str]] = {}
    for name, record in table.items():
        if record[4] and "|" in name:
            by_container.setdefault(name.partition("|")[0], []).append(name)
    reply = Map()
    for raw in names:
        wanted = raw.lower().decode("latin-1")
        for name in [wanted, *by_container.get(wanted, ())]:
            record = table.get(name)
            key = name.encode()
            if record is not None and record[4] and key not in reply:
                reply[key] = _histogram_reply(record)
    return reply


# LATENCY GRAPH's chart, as Redis draws it (its sparkline.c): 80 columns per band, 4 rows of
# 3 levels each, filled below the top of every column.
_GRAPH_COLUMNS = 80
_GRAPH_ROWS = 4
_GRAPH_FILL = "_o#"


def _age_label(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _chart(values: list[int], labels: list[str], low: int, high: int) -> str:
    """One band of at most 80 samples: the level rows, a blank spacer, then the labels read
    top to bottom, one character per row, until the longest ends."""
    levels = len(_GRAPH_FILL)
    steps = levels * _GRAPH_ROWS
    span = (high - low) or 1
    heights = [min(max(int(int((value - low) * steps) / span), 0), steps - 1) for value in values]
    lines = []
    for row in range(_GRAPH_ROWS):
        line = []
        for height in heights:
            index = height - (_GRAPH_ROWS - row - 1) * levels
            line.append(_GRAPH_FILL[index] if 0 <= index < levels else "|" if index >= levels else " ")
        lines.append("".join(line))
    lines.append(" " * len(values))
    for position in range(max(len(label) for label in labels)):
        lines.append("".join(label[position] if position < len(label) else " " for label in labels))
    return "".join(line + "\n" for line in lines)


def _graph(observer, raw_event: bytes) -> str:
    """LATENCY GRAPH <event>: a header, a rule, then the samples oldest first, each column
    labelled with how long ago it was taken."""
    event = raw_event.decode("utf-8", "replace")
    history = observer.latency.get(event)
    if history is None or not history.samples:
        raise CommandError(f"ERR No samples available for event '{event}'")
    now = int(time.time())
    values = [ms for _, ms in history.samples]
    labels = [_age_label(now - when) for when, _ in history.samples]
    low, high = min(values), max(values)
    graph = f"{event} - high {high} ms, low {low} ms (all time high {history.max} ms)\n"
    graph += "-" * _GRAPH_COLUMNS + "\n"
    bands = [_chart(values[start:start + _GRAPH_COLUMNS], labels[start:start + _GRAPH_COLUMNS],
                    low, high) for start in range(0, len(values), _GRAPH_COLUMNS)]
    return graph + "\n".join(bands)


def latency(ctx, argv):
    observer = of(ctx.engine)
    sub = argv[1].lower()
    if sub == b"latest" and len(argv) == 2:
        return [[event.encode(), history.samples[-1][0], history.samples[-1][1], history.max]
                for event, history in observer.latency.items() if history.samples]
    if sub == b"history" and len(argv) == 3:
        history = observer.latency.get(argv[2].decode("utf-8", "replace"))
        return [] if history is None else [[when, ms] for when, ms in history.samples]
    if sub == b"reset":
        if len(argv) == 2:
            count = len(observer.latency)
            observer.latency.clear()
            return count
        count = 0
        for raw in argv[2:]:
            if observer.latency.pop(raw.decode("utf-8", "replace"), None) is not None:
                count += 1
        return count
    if sub == b"doctor" and len(argv) == 2:
        return Verbatim(_doctor(ctx, observer).encode())
    if sub == b"histogram":
        return _histograms(ctx.engine, argv[2:])
    if sub == b"graph" and len(argv) == 3:
        return Verbatim(_graph(observer, argv[2]).encode())
    if sub == b"help" and len(argv) == 2:
        return [Status(line.encode()) for line in _LATENCY_HELP]
    if sub in (b"latest", b"history", b"doctor", b"graph", b"help"):
        raise CommandError(errors.wrong_arity(f"latency|{sub.decode()}"))
    raise CommandError(errors.unknown_subcommand(argv[1], "LATENCY"))


def register(registry):
    group = "server"
    registry.extend([
        command("slowlog", -2, "admin loading stale", slowlog, group=group,
                subcommands={"get": -2, "len": 2, "reset": 2, "help": 2}),
        command("monitor", 1, "admin noscript loading stale", monitor, group=group),
        command("latency", -2, "admin loading stale", latency, group=group,
                subcommands={"doctor": 2, "graph": 3, "history": 3, "latest": 2, "reset": -2,
                             "histogram": -2, "help": 2}),
    ])
