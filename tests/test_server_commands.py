"""Server commands: INFO, CONFIG GET/SET/RESETSTAT/REWRITE, COMMAND, TIME, DBSIZE, FLUSHDB,
FLUSHALL, SWAPDB, SHUTDOWN options, DEBUG DIGEST/SLEEP."""

from __future__ import annotations

import re
import time

import parity
import pytest
import redis
from parity import RawClient, compare_scripts
from servers import ServerThread
from trioredis.config import load_config

reference = parity.reference  # the real Redis, a module-scoped fixture


SERVER_SCRIPT = [
    ("DBSIZE",), ("DBSIZE", "x"), ("SET", "a", "1"), ("DBSIZE",), ("FLUSHDB", "x"),
    ("FLUSHDB", "async", "x"), ("FLUSHDB", "async"), ("DBSIZE",), ("SET", "a", "1"),
    ("FLUSHDB", "sync"), ("FLUSHALL", "a", "b"), ("FLUSHALL", "SYNC"),
    ("SWAPDB",), ("SWAPDB", "a", "1"), ("SWAPDB", "1", "a"), ("SWAPDB", "0", "99"),
    ("SWAPDB", "-1", "0"), ("SET", "s", "in9"), ("SWAPDB", "9", "8"), ("GET", "s"),
    ("SELECT", "8"), ("GET", "s"), ("SWAPDB", "8", "9"), ("SELECT", "9"), ("GET", "s"),
    ("TIME", "x"), ("LASTSAVE", "x"),
    ("CONFIG",), ("CONFIG", "FOO"), ("CONFIG", "GET"), ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "GET", "nosuch"), ("CONFIG", "GET", "MAXMEMORY"), ("CONFIG", "GET", "hz"),
    ("CONFIG", "GET", "maxmemory-p*"), ("CONFIG", "GET", "appendfsync"),
    ("CONFIG", "GET", "proto-max-bulk-len"), ("CONFIG", "GET", "client-query-buffer-limit"),
    ("CONFIG", "GET", "tcp-backlog"), ("CONFIG", "GET", "loglevel"),
    ("CONFIG", "GET", "auto-aof-rewrite-min-size"), ("CONFIG", "GET", "unixsocketperm"),
    ("CONFIG", "SET",), ("CONFIG", "SET", "hz"), ("CONFIG", "SET", "hz", "abc"),
    ("CONFIG", "SET", "hz", "0"), ("CONFIG", "GET", "hz"), ("CONFIG", "SET", "hz", "1000"),
    ("CONFIG", "GET", "hz"), ("CONFIG", "SET", "hz", "10"),
    ("CONFIG", "SET", "hz", "10", "hz", "11"), ("CONFIG", "SET", "nosuch", "1"),
    ("CONFIG", "SET", "maxmemory", "1gb"), ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "SET", "maxmemory", "abc"), ("CONFIG", "SET", "maxmemory", "-1"),
    ("CONFIG", "SET", "maxmemory", "0"), ("CONFIG", "SET", "maxmemory-policy", "foo"),
    ("CONFIG", "SET", "appendfsync", "foo"), ("CONFIG", "SET", "timeout", "-1"),
    ("CONFIG", "SET", "databases", "10"), ("CONFIG", "SET", "port", "abc"),
    ("CONFIG", "SET", "port", "70000"), ("CONFIG", "SET", "maxclients", "0"),
    ("CONFIG", "SET", "proto-max-bulk-len", "10"), ("CONFIG", "SET", "tcp-keepalive", "-1"),
    ("CONFIG", "SET", "slowlog-log-slower-than", "-2"),
    ("CONFIG", "SET", "protected-mode", "maybe"), ("CONFIG", "SET", "save", "100 x"),
    ("CONFIG", "SET", "save", "100"), ("CONFIG", "SET", "tcp-backlog", "10"),
    ("CONFIG", "SET", "maxmemory", "1mb", "hz", "abc"), ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "RESETSTAT", "x"), ("CONFIG", "REWRITE", "x"), ("CONFIG", "HELP"),
    ("CONFIG", "HELP", "x"),
    ("COMMAND", "FOO"), ("COMMAND", "COUNT", "x"), ("COMMAND", "GETKEYS"),
    ("COMMAND", "GETKEYS", "foo"), ("COMMAND", "GETKEYS", "get"), ("COMMAND", "GETKEYS", "foo", "x"),
    ("COMMAND", "GETKEYS", "get", "a", "b"), ("COMMAND", "GETKEYS", "ping", "x"),
    ("COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"), ("COMMAND", "GETKEYS", "set", "a", "b"),
    ("COMMAND", "GETKEYS", "del", "a", "b", "c"), ("COMMAND", "LIST", "FILTERBY"),
    ("COMMAND", "LIST", "FILTERBY", "foo", "bar"), ("COMMAND", "LIST", "FILTERBY", "pattern", "xyz*"),
    ("COMMAND", "LIST", "FILTERBY", "pattern", "flushd*"), ("COMMAND", "DOCS", "nosuch"),
    ("COMMAND", "INFO", "nosuch"), ("SHUTDOWN", "FOO"), ("SHUTDOWN", "NOSAVE", "SAVE"),
    ("SHUTDOWN", "ABORT"), ("SHUTDOWN", "ABORT", "NOSAVE"), ("MULTI",), ("SHUTDOWN",),
    ("EXEC",), ("INFO", "nosuch"), ("INFO", "a", "b", "c"), ("PING",),
]


def test_server_commands_reply_like_redis_byte_for_byte(server, reference):
    try:
        assert compare_scripts(server.port, reference.port, SERVER_SCRIPT) == []
    finally:
        with RawClient(reference.port) as admin:
            admin.call("CONFIG", "SET", "hz", "10", "maxmemory", "0")


def test_command_info_has_redis_shape_and_flag_names(server, reference):
    """Name, arity, flags and categories (status replies), key positions, key specs; tips
    and subcommands are left empty here."""
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        for name in ("get", "set", "del", "mset", "ping", "multi", "auth", "expire", "incr",
                     "lmove", "zunionstore", "sintercard"):
            mine = _elements(ours.call("COMMAND", "INFO", name))
            real = _elements(theirs.call("COMMAND", "INFO", name))
            # Everything up to the tips (the 7th element), then the key specs, byte for byte
            # but for their notes (SET's: our own words).
            assert mine[:7] == real[:7], (name, mine, real)
            assert without_notes(mine[8]) == without_notes(real[8]), (name, mine, real)


# A key spec's note (its field name and text) in COMMAND INFO's raw reply, and the header of
# a spec's map or array, whose count the note changes.
_NOTE = re.compile(rb"\$5\r\nnotes\r\n\$\d+\r\n([^\r]*)\r\n")
_SPEC_HEADER = re.compile(rb"[*%]\d+\r\n(?=\$5\r\nflags\r\n)")


def key_spec_notes(raw: bytes) -> list[bytes]:
    return _NOTE.findall(raw)


def without_notes(raw: bytes) -> bytes:
    """Key specs with their notes (prose: ours are our own words) and map headers left out."""
    return _SPEC_HEADER.sub(b"", _NOTE.sub(b"", raw))


def _elements(reply: bytes) -> list[bytes]:
    """The raw bytes of each element of COMMAND INFO's one entry."""
    from parity import reply_end

    position = reply.index(b"\r\n", reply.index(b"*10\r\n")) + 2
    elements = []
    for _ in range(10):
        end = reply_end(reply, position)
        elements.append(reply[position:end])
        position = end
    return elements


def test_command_count_list_docs_through_redis_py(r):
    count = r.command_count()
    names = r.command_list()
    # COMMAND LIST names subcommands too (config|get), COMMAND COUNT only commands, as Redis.
    assert count == len([name for name in names if b"|" not in name])
    assert b"get" in names and b"command" in names and b"config|get" in names
    with RawClient(r.connection_pool.connection_kwargs["port"]) as raw:
        docs = raw.call("COMMAND", "DOCS", "get")
    # summary, since, group, arguments (Redis adds its complexity prose; not here)
    assert docs.startswith(b"*2\r\n$3\r\nget\r\n*8\r\n$7\r\nsummary\r\n")
    assert b"$5\r\ngroup\r\n$6\r\nstring\r\n" in docs
    assert r.command_getkeys("MSET", "a", "1", "b", "2") == ["a", "b"]
    assert b"incr" in r.command_list(category="string")
    assert r.command_list(pattern="flushd*") == [b"flushdb"]
    assert "get" in r.command()


def test_info_default_sections_and_field_names(r):
    with RawClient(r.connection_pool.connection_kwargs["port"]) as raw:
        text = raw.call("INFO").decode()
    sections = [line[2:] for line in text.splitlines() if line.startswith("# ")]
    assert sections == ["Server", "Clients", "Memory", "Persistence", "Stats", "Replication",
                        "CPU", "Modules", "Errorstats", "Cluster", "Keyspace"]
    info = r.info()
    assert info["redis_version"] == "7.0.15"
    assert info["role"] == "master"
    for field in ("tcp_port", "uptime_in_seconds", "connected_clients", "used_memory",
                  "used_memory_human", "loading", "rdb_changes_since_last_save", "aof_enabled",
                  "total_commands_processed", "instantaneous_ops_per_sec", "keyspace_hits",
                  "expired_keys", "master_repl_offset", "used_cpu_sys", "cluster_enabled"):
        assert field in info, field


def test_info_all_orders_sections_like_redis(r):
    with RawClient(r.connection_pool.connection_kwargs["port"]) as raw:
        text = raw.call("INFO", "all").decode()
    sections = [line[2:] for line in text.splitlines() if line.startswith("# ")]
    assert sections == ["Server", "Clients", "Memory", "Persistence", "Stats", "Replication",
                        "CPU", "Modules", "Commandstats", "Errorstats", "Latencystats",
                        "Cluster", "Keyspace"]


def test_info_fields_are_a_superset_of_redis_7_0(server, reference):
    def fields(port):
        with RawClient(port) as raw:
            raw.call("SET", "k", "v")
            text = raw.call("INFO", "default").decode()
        return {line.split(":")[0] for line in text.split("\r\n")[1:]
                if line and not line.startswith(("#", "errorstat_", "db")) and ":" in line}

    assert fields(reference.port) - fields(server.port) == set()


def test_info_keyspace_counts_keys_and_expires(server, r):
    r.set("a", 1)
    r.set("b", 1, ex=100)
    r.execute_command("SELECT", 3)
    r.set("c", 1)
    with RawClient(r.connection_pool.connection_kwargs["port"]) as raw:
        text = raw.call("INFO", "keyspace").decode()
    assert "db0:keys=2,expires=1,avg_ttl=" in text and "db3:keys=1,expires=0,avg_ttl=0" in text
    average = int(text.split("db0:keys=2,expires=1,avg_ttl=")[1].split("\r\n")[0])
    assert 90_000 < average <= 100_000


def test_info_errorstats_count_error_prefixes(r):
    r.config_resetstat()
    with pytest.raises(redis.ResponseError):
        r.execute_command("NOSUCH")
    r.set("s", "x")
    with pytest.raises(redis.ResponseError):
        r.incr("s")
    info = r.info("errorstats")
    assert info["errorstat_ERR"] == {"count": 2}
    assert r.info("stats")["total_error_replies"] == 2


def test_config_resetstat_zeroes_counters(r):
    r.set("k", "v")
    r.get("k")
    r.set("gone", "v", px=1)
    time.sleep(0.01)
    r.get("gone")
    assert r.info("stats")["expired_keys"] == 1
    r.config_resetstat()
    stats = r.info("stats")
    assert stats["keyspace_hits"] == 0 and stats["expired_keys"] == 0
    assert stats["total_commands_processed"] <= 1


def test_config_set_applies_live_and_config_get_globs(r):
    assert r.config_set("maxmemory", "10mb") is True
    assert r.config_get("maxmemory") == {"maxmemory": "10485760"}
    assert r.config_set("maxmemory", "0") is True
    values = r.config_get("*fsync*")
    assert values["appendfsync"] == "everysec" and "no-appendfsync-on-rewrite" in values
    assert "requirepass" not in r.config_get("*")


def test_config_set_several_options_is_all_or_nothing(r):
    with pytest.raises(redis.ResponseError, match="argument 'hz'"):
        r.execute_command("CONFIG", "SET", "maxmemory", "1mb", "hz", "abc")
    assert r.config_get("maxmemory") == {"maxmemory": "0"}
    r.execute_command("CONFIG", "SET", "maxmemory", "2mb", "hz", "20")
    assert r.config_get("hz") == {"hz": "20"} and r.config_get("maxmemory")["maxmemory"] == "2097152"


def test_config_set_proto_max_bulk_len_limits_new_requests(server):
    with RawClient(server.port) as admin:
        assert admin.call("CONFIG", "SET", "proto-max-bulk-len", "1mb") == b"+OK\r\n"
    with RawClient(server.port) as raw:
        raw.send(b"*2\r\n$4\r\nECHO\r\n$%d\r\n" % (1024 * 1024 + 1))
        assert raw.read_until_closed() == b"-ERR Protocol error: invalid bulk length\r\n"


def test_config_rewrite_keeps_comments_and_saves_changes(tmp_path):
    path = tmp_path / "server.conf"
    path.write_text("# my settings\nhz 15\nsave \"\"\n# keep me\nmaxmemory 1mb\n")
    with ServerThread([["dir", str(tmp_path)]], config_path=str(path)) as running:
        running.wait_ready()
        client = running.client()
        client.config_set("hz", "25")
        client.config_set("maxmemory-policy", "allkeys-lru")
        assert client.config_rewrite() in (True, b"OK")
    text = path.read_text()
    assert "# my settings" in text and "# keep me" in text
    config = load_config(str(path)).config
    assert config.hz == 25 and config.maxmemory == 1024 * 1024
    assert config.maxmemory_policy == "allkeys-lru" and config.save == []


def test_config_rewrite_without_file_is_an_error(r):
    with pytest.raises(redis.ResponseError, match="^The server is running without a config file$"):
        r.config_rewrite()


def test_time_is_now(r):
    seconds, micros = r.time()
    assert abs(seconds + micros / 1e6 - time.time()) < 5


def test_flushall_empties_every_database(r):
    r.set("a", 1)
    r.execute_command("SELECT", 5)
    r.set("b", 1)
    assert r.flushall() is True
    assert r.dbsize() == 0
    r.execute_command("SELECT", 0)
    assert r.dbsize() == 0


def test_debug_digest_depends_on_data_not_on_order(r):
    empty = r.execute_command("DEBUG", "DIGEST")
    assert empty == b"0" * 40
    r.set("a", 1)
    r.set("b", 2)
    first = r.execute_command("DEBUG", "DIGEST")
    r.flushall()
    r.set("b", 2)
    r.set("a", 1)
    assert r.execute_command("DEBUG", "DIGEST") == first
    r.set("a", 3)
    assert r.execute_command("DEBUG", "DIGEST") != first


def test_debug_sleep_zero_answers_ok(r):
    assert r.execute_command("DEBUG", "SLEEP", "0") == b"OK"


def test_shutdown_nosave_stops_the_server(tmp_path):
    running = ServerThread([["save", ""], ["dir", str(tmp_path)]]).start()
    running.wait_ready()
    with RawClient(running.port) as raw:
        raw.send(parity.encode_command("SHUTDOWN", "NOSAVE"))
        assert raw.read_until_closed() == b""
    running._thread.join(10)
    assert not running._thread.is_alive()


def test_info_commandstats_counts_calls_and_failures(server, r):
    r.config_resetstat()
    r.set("k", "v")
    r.get("k")
    r.get("k")
    with pytest.raises(redis.ResponseError):
        r.incr("k")
    with RawClient(server.port) as raw:
        text = raw.call("INFO", "commandstats").decode()
    lines = {line.split(":")[0]: line.split(":")[1] for line in text.split("\r\n")[1:]
             if line.startswith("cmdstat_")}
    assert lines["cmdstat_get"].startswith("calls=2,usec=")
    assert lines["cmdstat_incrby"].endswith(",rejected_calls=0,failed_calls=1")


def test_debug_object_is_a_status_line(server):
    with RawClient(server.port) as raw:
        raw.call("SET", "k", "12")
        assert raw.call("DEBUG", "OBJECT", "k").startswith(b"+Value at:")
        assert b" encoding:int " in raw.call("DEBUG", "OBJECT", "k")
        assert raw.call("DEBUG", "OBJECT", "nope") == b"-ERR no such key\r\n"
        assert raw.call("DEBUG", "HELP").startswith(b"*")


# COMMAND DOCS against Redis (argument structure, not prose): tests/test_command_introspection.py


def test_command_docs_of_a_plugin_command_is_a_short_entry(server):
    from trioredis.commands import command as make_command

    engine = server.server.engine
    engine.commands.add(make_command("testonly", 1, "readonly", lambda ctx, argv: 1,
                                     summary="A command only tests have"))
    with RawClient(server.port) as raw:
        assert raw.call("COMMAND", "DOCS", "testonly") == (
            b"*2\r\n$8\r\ntestonly\r\n*6\r\n$7\r\nsummary\r\n$25\r\nA command only tests have\r\n"
            b"$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$7\r\ngeneric\r\n")
