"""INFO ALL as redis_exporter (the Prometheus exporter Redis users already run) scrapes it.

The exporter splits the reply into ``# Section`` headers and ``field:value`` lines, turns every
value it knows into a float (a field it cannot parse is dropped from the metrics, silently),
parses ``dbN:keys=..,expires=..,avg_ttl=..`` into per-database gauges and
``cmdstat_<name>:calls=..,usec=..,usec_per_call=..`` into per-command counters and
``errorstat_<PREFIX>:count=..`` into per-error counters.  So a
missing field or one that does not parse as a number is a metric that disappears from the
operator's dashboard: each is checked here for the server with no persistence, with AOF and
with snapshots.
"""

from __future__ import annotations

import re

import pytest
from servers import ServerThread

# The INFO fields redis_exporter maps to metrics and dashboards read (its metricMapGauges and
# metricMapCounters): each must be present and numeric.
EXPORTER_FIELDS = (
    "uptime_in_seconds", "connected_clients", "blocked_clients",
    "used_memory", "used_memory_rss", "used_memory_peak", "maxmemory", "mem_fragmentation_ratio",
    "total_connections_received", "total_commands_processed", "instantaneous_ops_per_sec",
    "total_net_input_bytes", "total_net_output_bytes", "rejected_connections",
    "expired_keys", "evicted_keys", "keyspace_hits", "keyspace_misses",
    "pubsub_channels", "pubsub_patterns", "latest_fork_usec",
    "loading", "rdb_changes_since_last_save", "rdb_bgsave_in_progress", "rdb_last_save_time",
    "aof_enabled", "aof_rewrite_in_progress",
    "connected_slaves", "master_repl_offset",
    "used_cpu_sys", "used_cpu_user",
)

# The exporter's own patterns for the keyspace and commandstats lines.
KEYSPACE_LINE = re.compile(r"^db(\d+)$")
KEYSPACE_VALUE = re.compile(r"^keys=(\d+),expires=(\d+),avg_ttl=(\d+)")
ERRORSTAT_VALUE = re.compile(r"^count=(\d+)$")
CMDSTAT_VALUE = re.compile(r"^calls=(\d+),usec=(\d+),usec_per_call=(\d+(?:\.\d+)?)")


def scrape(client) -> tuple[list[str], dict[str, str]]:
    """INFO ALL as the exporter reads it: the section names and the ``field:value`` pairs."""
    text = client.execute_command("INFO", "ALL").decode()
    assert text.endswith("\r\n")
    sections: list[str] = []
    fields: dict[str, str] = {}
    for line in text.split("\r\n"):
        if not line:
            continue
        if line.startswith("# "):
            sections.append(line[2:])
            continue
        name, separator, value = line.partition(":")
        assert separator, f"line without a colon: {line!r}"
        assert name not in fields, f"field {name} twice"
        fields[name] = value
    return sections, fields


def raw_client(server):
    """redis-py without its INFO parser: the reply text exactly as sent."""
    client = server.client()
    client.set_response_callback("INFO", lambda response, **options: response)
    return client


def exercise(client) -> None:
    """Some traffic, so the counters and the per-command lines have something to count."""
    client.set("plain", "1")
    client.set("expiring", "1", ex=1000)
    client.get("plain")
    client.get("missing")
    client.execute_command("INCR", "counter")  # redis-py's incr() sends INCRBY
    client.rpush("list", "a", "b")
    client.lrange("list", 0, -1)
    try:
        client.execute_command("INCR", "list")  # a WRONGTYPE error, for errorstat_WRONGTYPE
    except Exception:  # noqa: BLE001 - the error reply itself is what is wanted
        pass


def check_scrape(client) -> dict[str, str]:
    exercise(client)
    sections, fields = scrape(client)
    for section in ("Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU",
                    "Commandstats", "Keyspace"):
        assert section in sections, sections
    missing = [name for name in EXPORTER_FIELDS if name not in fields]
    assert not missing, f"fields redis_exporter reads are missing: {missing}"
    not_numeric = []
    for name in EXPORTER_FIELDS:
        try:
            float(fields[name])
        except ValueError:
            not_numeric.append(f"{name}:{fields[name]}")
    assert not not_numeric, f"fields redis_exporter cannot parse: {not_numeric}"

    databases = {KEYSPACE_LINE.match(name).group(1): value
                 for name, value in fields.items() if KEYSPACE_LINE.match(name)}
    assert set(databases) == {"0"}
    keys, expires, avg_ttl = map(int, KEYSPACE_VALUE.match(databases["0"]).groups())
    assert (keys, expires) == (4, 1)
    assert 0 < avg_ttl <= 1000 * 1000

    commands = {name[len("cmdstat_"):]: value for name, value in fields.items()
                if name.startswith("cmdstat_")}
    for command in ("set", "get", "incr", "rpush", "lrange"):
        assert command in commands, sorted(commands)
        assert CMDSTAT_VALUE.match(commands[command]), commands[command]
    assert int(CMDSTAT_VALUE.match(commands["set"]).group(1)) == 2
    assert int(CMDSTAT_VALUE.match(commands["get"]).group(1)) == 2
    # Strings the exporter maps to gauges itself: role, and the last save/rewrite statuses.
    assert fields["role"] == "master"
    for status in ("rdb_last_bgsave_status", "aof_last_bgrewrite_status"):
        assert fields[status] in ("ok", "err")
    assert ERRORSTAT_VALUE.match(fields["errorstat_WRONGTYPE"]).group(1) == "1"
    assert int(fields["keyspace_hits"]) >= 1 and int(fields["keyspace_misses"]) >= 1
    assert int(fields["connected_clients"]) >= 1
    assert int(fields["total_commands_processed"]) >= 7
    return fields


def test_scrape_without_persistence(server):
    fields = check_scrape(raw_client(server))
    assert fields["aof_enabled"] == "0"


@pytest.mark.parametrize("options", [
    [["appendonly", "yes"], ["appendfsync", "everysec"], ["save", ""]],
    [["appendonly", "no"], ["save", "3600", "1"]],
], ids=["aof", "snapshot"])
def test_scrape_with_persistence(tmp_path, options):
    with ServerThread(options + [["dir", str(tmp_path)]]) as running:
        running.wait_ready()
        fields = check_scrape(raw_client(running))
    assert fields["aof_enabled"] == ("1" if options[0][1] == "yes" else "0")


def test_commandstats_section_alone_counts_calls(server):
    """``INFO commandstats`` (what the exporter asks when only command metrics are wanted)."""
    client = raw_client(server)
    for _ in range(3):
        client.ping()
    _, fields = scrape_section(client, "commandstats")
    calls = int(CMDSTAT_VALUE.match(fields["cmdstat_ping"]).group(1))
    assert calls == 3


def scrape_section(client, section: str) -> tuple[list[str], dict[str, str]]:
    text = client.execute_command("INFO", section).decode()
    lines = [line for line in text.split("\r\n") if line]
    return ([line[2:] for line in lines if line.startswith("# ")],
            dict(line.split(":", 1) for line in lines if not line.startswith("# ")))
