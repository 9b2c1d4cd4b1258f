"""MEMORY: USAGE, STATS, DOCTOR, MALLOC-STATS, PURGE, HELP (Redis 7.0's ``object.c``).

The figures are :mod:`trioredis.memory`'s estimates (Python objects, not jemalloc's
allocations), so the numbers differ from Redis's for the same data; the reply shapes, the
argument rules and the error texts are Redis's.
"""

from __future__ import annotations

import gc
import struct

from .. import errors
from ..errors import CommandError
from ..info import rss_bytes
from ..memory import DEFAULT_SAMPLES, key_usage, memory_figures, overhead_of_tables
from ..resp import OK, Map, Verbatim
from . import command
from .args import help_reply, parse_int

_HELP = [
    b"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"DOCTOR",
    b"    Return memory problems reports.",
    b"MALLOC-STATS",
    b"    Return internal statistics report from the memory allocator.",
    b"PURGE",
    b"    Attempt to purge dirty pages for reclamation by the allocator.",
    b"STATS",
    b"    Return information about the memory usage of the server.",
    b"USAGE <key> [SAMPLES <count>]",
    b"    Return memory in bytes used by <key> and its value. Nested values are",
    b"    sampled up to <count> times (default: 5, 0 means sample all).",
    b"HELP",
    b"    Prints this help.",
]

_DOCTOR_EMPTY = (
    "Hi Sam, this instance is empty or is using very little memory, my issues detector can't "
    "be used in these conditions. Please, leave for your mission on Earth and fill it with "
    "some data. The new Sam and I will be back to our programming as soon as I finished "
    "rebooting.\n")
_DOCTOR_FINE = (
    "Hi Sam, I can't find any memory issue in your instance. I can only account for what "
    "occurs on this base.\n")
# Redis's doctor stays quiet below 5 MB of used memory (its "empty instance" rule).
_DOCTOR_MIN_BYTES = 5 * 1024 * 1024
# Redis's thresholds for the reports the doctor can make.
_PEAK_RATIO = 1.5  # peak over 150% of used now
_FRAGMENTATION_RATIO = 1.4  # RSS over 140% of used
_CLIENT_BUFFER_AVG = 200 * 1024  # clients' buffers over 200 KB each on average


def _float32(value: float) -> float:
    """A value as Redis computes these ratios: in C float, printed as a double."""
    return struct.unpack("f", struct.pack("f", value))[0]


def memory_(ctx, argv):
    sub = argv[1].lower()
    if sub == b"help":
        return help_reply(_HELP)
    if sub == b"usage":
        return _usage(ctx, argv)
    if sub == b"stats":
        return _stats(ctx)
    if sub == b"doctor":
        return Verbatim(_doctor(ctx).encode())
    if sub == b"malloc-stats":
        return Verbatim(_malloc_stats().encode())
    if sub == b"purge":
        gc.collect()  # what Python can give back: unreachable cycles, then empty arenas
        return OK
    raise CommandError(errors.unknown_subcommand(argv[1], "MEMORY"))


def _usage(ctx, argv):
    samples = DEFAULT_SAMPLES
    index = 3
    while index < len(argv):
        if argv[index].lower() == b"samples" and index + 1 < len(argv):
            samples = parse_int(argv[index + 1])
            if samples < 0:
                raise CommandError(errors.SYNTAX)
            index += 2
        else:
            raise CommandError(errors.SYNTAX)
    db = ctx.db
    key = argv[2]
    value = db.peek(key)  # Redis's objectCommandLookup: no access time, no keyspace hit
    if value is None:
        return None
    return key_usage(db, key, value, samples)


def _stats(ctx):
    engine = ctx.engine
    figures = memory_figures(engine)
    used, peak, startup = figures["used"], max(figures["peak"], figures["used"]), figures["startup"]
    rss = rss_bytes()
    net = used - startup
    keys = figures["keys"]
    reply = Map()
    reply[b"peak.allocated"] = peak
    reply[b"total.allocated"] = used
    reply[b"startup.allocated"] = startup
    reply[b"replication.backlog"] = 0
    reply[b"clients.slaves"] = 0
    reply[b"clients.normal"] = figures["clients"]
    reply[b"cluster.links"] = 0
    reply[b"aof.buffer"] = figures["aof"]
    reply[b"lua.caches"] = 0
    reply[b"functions.caches"] = 0
    for db in engine.keyspace.databases:
        if not db.data:
            continue
        tables = Map()
        tables[b"overhead.hashtable.main"] = overhead_of_tables(db)
        tables[b"overhead.hashtable.expires"] = 0
        tables[b"overhead.hashtable.slot-to-keys"] = 0
        reply[b"db.%d" % db.index] = tables
    reply[b"overhead.total"] = figures["overhead"]
    reply[b"keys.count"] = keys
    reply[b"keys.bytes-per-key"] = net // keys if keys else 0
    reply[b"dataset.bytes"] = figures["dataset"]
    reply[b"dataset.percentage"] = _float32(figures["dataset"] * 100 / net if net > 0 else 0.0)
    reply[b"peak.percentage"] = _float32(used * 100 / peak if peak else 0.0)
    reply[b"allocator.allocated"] = used
    reply[b"allocator.active"] = used
    reply[b"allocator.resident"] = rss
    reply[b"allocator-fragmentation.ratio"] = _float32(1.0)
    reply[b"allocator-fragmentation.bytes"] = 0
    reply[b"allocator-rss.ratio"] = _float32(rss / used if used else 1.0)
    reply[b"allocator-rss.bytes"] = rss - used
    reply[b"rss-overhead.ratio"] = _float32(1.0)
    reply[b"rss-overhead.bytes"] = 0
    reply[b"fragmentation"] = _float32(rss / used if used else 1.0)
    reply[b"fragmentation.bytes"] = rss - used
    return reply


def _doctor(ctx) -> str:
    """Redis's memory doctor, on this server's figures (its two common answers, and the
    reports whose measures exist here)."""
    engine = ctx.engine
    figures = memory_figures(engine)
    used = figures["used"]
    if used < _DOCTOR_MIN_BYTES:
        return _DOCTOR_EMPTY
    reports = []
    if figures["peak"] > used * _PEAK_RATIO:
        reports.append(
            " * Peak memory: In the past this instance used more than 150% the memory that is "
            "currently using. The allocator is normally not able to release memory after a "
            "peak, so you can expect to see a big fragmentation ratio, however this is "
            "actually harmless and is only due to the memory peak, and if the Redis instance "
            "Resident Set Size (RSS) is currently bigger than expected, the memory will be "
            "used as soon as you fill the Redis instance with more data. If the memory peak "
            "was only occasional and you want to try to reclaim memory, please try the MEMORY "
            "PURGE command, otherwise the only other option is to shutdown and restart the "
            "instance.\n\n")
    clients = len(engine.clients)
    if clients and figures["clients"] / clients > _CLIENT_BUFFER_AVG:
        reports.append(
            " * Big client buffers: The clients output buffers in this instance are greater "
            "than 200K per client (on average). This may result from different causes, like "
            "Pub/Sub clients subscribed to channels bot not receiving data fast enough, so "
            "that data piles on the Redis instance output buffer, or clients sending commands "
            "with large replies or very large sequences of commands in the same pipeline. "
            "Please use the CLIENT LIST command in order to investigate the issue if it "
            "causes problems in your instance, or to understand better why certain clients "
            "are using a big amount of memory.\n\n")
    if not reports:
        return _DOCTOR_FINE
    return ("Sam, I detected a few issues in this Redis instance memory implants:\n\n"
            + "".join(reports)
            + "I'm here to keep you safe, Sam. I want to help you.\n")


def _malloc_stats() -> str:
    """Python's allocator has no jemalloc report; Redis answers this line without one."""
    return "Stats not supported for the current allocator"


def register(registry):
    registry.extend([
        command("memory", -2, "readonly", memory_, group="server",
                subcommands={"usage": -3, "stats": 2, "doctor": 2, "malloc-stats": 2,
                             "purge": 2, "help": 2}),
    ])
