"""INFO: the sections and field names as Redis prints them."""

from __future__ import annotations

import itertools
import os
import resource
import shutil
import sys
import time
from typing import TYPE_CHECKING, Any

from . import REDIS_VERSION, __version__, latency

if TYPE_CHECKING:
    from .engine import Engine

DEFAULT_SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication",
                    "cpu", "modules", "errorstats", "cluster", "keyspace")
# INFO ALL / EVERYTHING: Redis's order, which is not the default list plus the extras.
ALL_SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication", "cpu",
                "modules", "commandstats", "errorstats", "latencystats", "cluster", "keyspace")


def _program_path(argv0: str) -> str:
    """The program's real path, as typed: a bare name (``trioredis-server`` from PATH) is
    looked up on PATH, a relative one joined with the starting directory.  Redis joins argv[0]
    with the working directory whatever it is; computed here once, at import, before the CLI
    changes into ``dir``, so INFO names a file that exists."""
    if os.sep not in argv0:
        argv0 = shutil.which(argv0) or argv0
    return os.path.realpath(argv0)


# cli.py imports this module before its chdir (see _program_path).
EXECUTABLE = _program_path(sys.argv[0]) if sys.argv and sys.argv[0] else sys.executable


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux), else the peak from rusage."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _human(size: int) -> str:
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size >= factor:
            return f"{size / factor:.2f}{unit}"
    return f"{size}B"


def _server(engine: Engine) -> dict[str, Any]:
    uptime = int(time.time() - engine.stats.started)
    server = engine.server
    return {
        "redis_version": REDIS_VERSION,
        "trioredis_version": __version__,
        "redis_git_sha1": "00000000",
        "redis_git_dirty": 0,
        "redis_build_id": "0",
        "redis_mode": "standalone",
        "os": f"{os.uname().sysname} {os.uname().release} {os.uname().machine}",
        "arch_bits": 64,
        "monotonic_clock": "POSIX clock_gettime",
        "multiplexing_api": "trio",
        "atomicvar_api": "python",
        "gcc_version": "0.0.0",
        "python_version": sys.version.split()[0],
        "process_id": os.getpid(),
        "process_supervised": getattr(server, "supervised", "no"),
        "run_id": engine.run_id,
        "tcp_port": server.port if server is not None else 0,
        "server_time_usec": int(time.time() * 1e6),
        "uptime_in_seconds": uptime,
        "uptime_in_days": uptime // 86400,
        "hz": engine.config.hz,
        "configured_hz": engine.config.hz,
        "lru_clock": int(time.time()) & 0xFFFFFF,
        "executable": EXECUTABLE,
        "config_file": engine.loaded.path or "",
        "io_threads_active": 0,
    }


def _clients(engine: Engine) -> dict[str, Any]:
    clients = list(engine.clients.values())
    return {
        # As Redis: replicas are not counted (they are INFO replication's connected_slaves).
        "connected_clients": sum(1 for client in clients if client.kind != "replica"),
        "cluster_connections": 0,
        "maxclients": engine.config.maxclients,
        "client_recent_max_input_buffer": 0,
        "client_recent_max_output_buffer": 0,
        "blocked_clients": sum(1 for c in clients if c.blocked),
        "tracking_clients": engine.tracking.clients,
        "clients_in_timeout_table": sum(1 for c in clients if c.blocked),
    }


def _memory(engine: Engine) -> dict[str, Any]:
    """INFO memory, in Redis 7.0's order: trioredis.memory's fields, then the allocator's,
    the system's, the scripts', maxmemory, the ratios and the buffers."""
    from .memory import info_fields

    rss = rss_bytes()
    # used_memory is trioredis.memory's estimate of the dataset and the server's buffers
    # (Python has no allocator total to match Redis's zmalloc count); RSS is reported apart.
    fields = info_fields(engine, rss)
    used = fields["used_memory"]
    clients, aof = fields.pop("_clients"), fields.pop("_aof")
    lazy_objects, lazyfreed = fields.pop("_lazy_objects"), fields.pop("_lazyfreed")
    fields.update({
        "allocator_allocated": used,
        "allocator_active": used,
        "allocator_resident": rss,
    })
    fields.update(_system_memory())
    fields.update(_scripts_memory(engine))
    fields.update(_maxmemory(engine))
    fields.update(_memory_ratios(used, rss))
    fields.update({
        "mem_not_counted_for_evict": aof,
        "mem_replication_backlog": 0,
        "mem_total_replication_buffers": 0,
        "mem_clients_slaves": 0,
        "mem_clients_normal": clients,
        "mem_cluster_links": 0,
        "mem_aof_buffer": aof,
        "mem_allocator": "pymalloc",
        "active_defrag_running": 0,
        "lazyfree_pending_objects": lazy_objects,
        "lazyfreed_objects": lazyfreed,
    })
    return fields


def _system_memory() -> dict[str, Any]:
    from .memory import human

    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        total = 0
    return {"total_system_memory": total, "total_system_memory_human": human(total)}


def _scripts_memory(engine: Engine) -> dict[str, Any]:
    """The scripts' fields: counts of what is loaded; Lua's own memory is not measured (0)."""
    scripting = engine.scripting
    functions = scripting.functions
    return {
        "used_memory_lua": 0,
        "used_memory_vm_eval": 0,
        "used_memory_lua_human": "0B",
        "used_memory_scripts_eval": 0,
        "number_of_cached_scripts": len(scripting.scripts),
        "number_of_functions": len(functions.functions),
        "number_of_libraries": len(functions.libraries),
        "used_memory_vm_functions": 0,
        "used_memory_vm_total": 0,
        "used_memory_vm_total_human": "0B",
        "used_memory_functions": 0,
        "used_memory_scripts": 0,
        "used_memory_scripts_human": "0B",
    }


def _maxmemory(engine: Engine) -> dict[str, Any]:
    from .memory import human

    maxmemory = engine.config.maxmemory
    return {
        "maxmemory": maxmemory,
        "maxmemory_human": human(maxmemory),
        "maxmemory_policy": engine.config.maxmemory_policy,
    }


def _memory_ratios(used: int, rss: int) -> dict[str, Any]:
    """Fragmentation as Redis reports it, from RSS against the estimate (no allocator here:
    its own ratios are 1)."""
    fragmentation = rss / used if used else 1.0
    return {
        "allocator_frag_ratio": 1.0,
        "allocator_frag_bytes": 0,
        "allocator_rss_ratio": round(rss / used, 2) if used else 1.0,
        "allocator_rss_bytes": rss - used,
        "rss_overhead_ratio": 1.0,
        "rss_overhead_bytes": 0,
        "mem_fragmentation_ratio": round(fragmentation, 2),
        "mem_fragmentation_bytes": rss - used,
    }


def _persistence(engine: Engine) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "loading": 1 if engine.loading else 0,
        "async_loading": 0,
        "current_cow_peak": 0,
        "current_cow_size": 0,
        "current_cow_size_age": 0,
        "current_fork_perc": 0.0,
        "current_save_keys_processed": 0,
        "current_save_keys_total": 0,
    }
    if engine.loading:
        elapsed = int(time.time() - engine.loading_started)
        total = engine.loading_total
        fields.update({
            "loading_start_time": int(engine.loading_started),
            "loading_total_bytes": total,
            "loading_rdb_used_mem": 0,
            "loading_loaded_bytes": engine.loading_loaded,
            "loading_loaded_perc": round(100 * engine.loading_loaded / total, 2) if total else 0.0,
            "loading_eta_seconds": engine.loading_eta(),
            "loading_elapsed_seconds": elapsed,
        })
    defaults = {
        "rdb_changes_since_last_save": engine.dirty, "rdb_bgsave_in_progress": 0,
        "rdb_last_save_time": int(engine.stats.started), "rdb_last_bgsave_status": "ok",
        "rdb_last_bgsave_time_sec": -1, "rdb_current_bgsave_time_sec": -1, "rdb_saves": 0,
        "rdb_last_cow_size": 0, "rdb_last_load_keys_expired": 0, "rdb_last_load_keys_loaded": 0,
        "aof_enabled": 1 if getattr(engine.config, "appendonly", False) else 0, "aof_rewrite_in_progress": 0,
        "aof_rewrite_scheduled": 0, "aof_last_rewrite_time_sec": -1,
        "aof_current_rewrite_time_sec": -1, "aof_last_bgrewrite_status": "ok",
        "aof_rewrites": 0, "aof_rewrites_consecutive_failures": 0,
        "aof_last_write_status": "ok", "aof_last_cow_size": 0,
        "module_fork_in_progress": 0, "module_fork_last_cow_size": 0,
    }
    fields.update(defaults)
    fields.update(engine.persistence.statistics())
    return fields


def _stats(engine: Engine) -> dict[str, Any]:
    stats = engine.stats
    return {
        "total_connections_received": stats.connections_received,
        "total_commands_processed": stats.commands_processed,
        "instantaneous_ops_per_sec": engine.ops_per_sec(),
        "total_net_input_bytes": stats.net_input_bytes,
        "total_net_output_bytes": stats.net_output_bytes,
        "total_net_repl_input_bytes": 0,
        "total_net_repl_output_bytes": 0,
        "instantaneous_input_kbps": 0.0,
        "instantaneous_output_kbps": 0.0,
        "instantaneous_input_repl_kbps": 0.0,
        "instantaneous_output_repl_kbps": 0.0,
        "rejected_connections": stats.rejected_connections,
        **engine.replication.statistics(),
        "expired_keys": engine.keyspace.expired_keys,
        "expired_stale_perc": 0.0,
        "expired_time_cap_reached_count": 0,
        "expire_cycle_cpu_milliseconds": 0,
        "evicted_keys": engine.evictor.evicted_keys,
        "evicted_clients": engine.stats.evicted_clients,
        "total_eviction_exceeded_time": engine.evictor.statistics()["total_eviction_exceeded_time"],
        "current_eviction_exceeded_time": engine.evictor.statistics()["current_eviction_exceeded_time"],
        "keyspace_hits": stats.keyspace_hits,
        "keyspace_misses": stats.keyspace_misses,
        "pubsub_channels": len(engine.pubsub.channels),
        "pubsub_patterns": len(engine.pubsub.patterns),
        "pubsubshard_channels": len(engine.pubsub.shard_channels),
        "latest_fork_usec": getattr(engine, "latest_fork_usec", 0),
        "total_forks": getattr(engine, "total_forks", 0),
        "migrate_cached_sockets": 0,
        "slave_expires_tracked_keys": 0,
        "active_defrag_hits": 0,
        "active_defrag_misses": 0,
        "active_defrag_key_hits": 0,
        "active_defrag_key_misses": 0,
        "total_active_defrag_time": 0,
        "current_active_defrag_time": 0,
        **engine.tracking.info(),
        "unexpected_error_replies": 0,
        "total_error_replies": stats.errors,
        "dump_payload_sanitizations": 0,
        "total_reads_processed": 0,
        "total_writes_processed": 0,
        "io_threaded_reads_processed": 0,
        "io_threaded_writes_processed": 0,
        "reply_buffer_shrinks": 0,
        "reply_buffer_expands": 0,
    }


def _replication(engine: Engine) -> dict[str, Any]:
    return engine.replication.info()


def _cpu(engine: Engine) -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    thread = resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF))
    return {
        "used_cpu_sys": round(usage.ru_stime, 6), "used_cpu_user": round(usage.ru_utime, 6),
        "used_cpu_sys_children": round(children.ru_stime, 6),
        "used_cpu_user_children": round(children.ru_utime, 6),
        "used_cpu_sys_main_thread": round(thread.ru_stime, 6),
        "used_cpu_user_main_thread": round(thread.ru_utime, 6),
    }


def _errorstats(engine: Engine) -> dict[str, Any]:
    return {f"errorstat_{prefix}": f"count={count}" for prefix, count in engine.stats.error_counts.items()}


def _commandstats(engine: Engine) -> dict[str, Any]:
    """Every command called, failed or refused (Redis lists one refused before ever running,
    with calls=0), under its full name (``config|get``)."""
    return {
        f"cmdstat_{name}": f"calls={calls},usec={usec},"
        f"usec_per_call={usec / calls if calls else 0:.2f},"
        f"rejected_calls={rejected},failed_calls={failed}"
        for name, (calls, usec, failed, rejected, _) in engine.stats.per_command.items()
        if calls or failed or rejected
    }


def tracking_percentiles(config: Any) -> tuple[float, ...]:
    """``latency-tracking-info-percentiles`` (Redis's space-separated text) as numbers."""
    return tuple(float(word) for word in config.latency_tracking_info_percentiles.split())


def _latencystats(engine: Engine) -> dict[str, Any]:
    percentiles = tracking_percentiles(engine.config)
    return {
        f"latency_percentiles_usec_{name}": latency.info_line(record[4], percentiles)
        for name, record in engine.stats.per_command.items() if record[4]
    }


def _average_ttl(expires: dict[bytes, int], sample: int = 64) -> int:
    """Milliseconds left on average, from the first keys with a TTL: an estimate, like
    Redis's (which its expire cycle samples)."""
    if not expires:
        return 0
    now = int(time.time() * 1000)
    remaining = [max(0, when - now) for when in itertools.islice(expires.values(), sample)]
    return sum(remaining) // len(remaining)


def _keyspace(engine: Engine) -> dict[str, Any]:
    return {
        f"db{db.index}": (f"keys={len(db.data)},expires={len(db.expires)},"
                          f"avg_ttl={_average_ttl(db.expires)}")
        for db in engine.keyspace.databases if db.data
    }


_SECTIONS = {
    "server": _server, "clients": _clients, "memory": _memory, "persistence": _persistence,
    "stats": _stats, "replication": _replication, "cpu": _cpu, "modules": lambda e: {},
    "errorstats": _errorstats, "cluster": lambda e: {"cluster_enabled": 0},
    "keyspace": _keyspace, "commandstats": _commandstats, "latencystats": _latencystats,
}


def info_text(engine: Engine, requested: list[str]) -> bytes:
    names: list[str] = []
    for name in requested or ["default"]:
        name = name.lower()
        if name in ("all", "everything"):
            names.extend(ALL_SECTIONS)
        elif name == "default":
            names.extend(DEFAULT_SECTIONS)
        elif name in _SECTIONS:
            names.append(name)
    lines: list[str] = []
    for name in dict.fromkeys(names):
        if lines:
            lines.append("")
        lines.append(f"# {name.capitalize() if name not in ('cpu',) else 'CPU'}" if name != "errorstats" else "# Errorstats")
        for field, value in _SECTIONS[name](engine).items():
            lines.append(f"{field}:{value}")
    if not lines:
        return b""  # no section asked for exists: an empty bulk, as Redis answers
    return ("\r\n".join(lines) + "\r\n").encode()
