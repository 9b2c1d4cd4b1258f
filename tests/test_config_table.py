"""Every Redis 7.0 directive is known (core/config_table.py): CONFIG GET shows the same names
and, where the meaning is the same, the same default values as redis-server 7.0.15; CONFIG SET
answers the same errors; several options are set all or nothing; the command line and
Debian's stock redis.conf are read as Redis reads them."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterable

import pytest
import redis
from parity import RawClient, ReferenceRedis
from servers import ServerProcess, ServerThread, run_cli
from trioredis import hookimpl
from trioredis.config import ConfigError, load_config, table_of
from trioredis.config_table import BOOL, ENUM, IMMUTABLE, INT, MEMORY, PROTECTED

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")

MEMORY_ONLY = [["save", ""], ["appendonly", "no"]]
# Core's options and the built-in plugins' (the AOF's and the snapshot's).
OPTIONS = table_of(load_config().config).options

# CONFIG GET * names: ours and Redis's differ only by these, on purpose.
ONLY_OURS = {"loadplugin": "trioredis's own: plugin modules to load"}
ONLY_REDIS = {"requirepass": "never shown here (tests/test_acl.py), a password stays secret"}

# Default values that differ, and why (the rest must be byte-identical).
VALUE_DIFFERENCES = {
    "dir": "each server's own directory",
    "port": "each server's own port",
    "bind": "trioredis listens on loopback by default (Redis with no config file: * -::*)",
}

# CONFIG SET replies that differ, and why.
SET_DIFFERENCES = {
    "bind": "immutable here (Redis rebinds at runtime)",
    "port": "not probed: a valid port would move the reference server",
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Our server and Redis's, both memory-only with DEBUG allowed."""
    directory = tmp_path_factory.mktemp("ours")
    with ServerThread([*MEMORY_ONLY, ["dir", str(directory)]]) as ours:
        ours.wait_ready()
        with ReferenceRedis() as reference:
            yield ours, reference


def _config_map(port: int, *patterns: str) -> dict[str, str]:
    client = redis.Redis(port=port, decode_responses=True, protocol=2)
    try:
        return client.config_get(*patterns)
    finally:
        client.close()


def test_config_get_star_has_redis_names(pair):
    ours, reference = pair
    mine, theirs = set(_config_map(ours.port, "*")), set(_config_map(reference.port, "*"))
    assert len(theirs) > 180
    assert mine - theirs == set(ONLY_OURS)
    assert theirs - mine == set(ONLY_REDIS)


def test_config_get_every_name_shows_redis_default(pair):
    ours, reference = pair
    mine, theirs = _config_map(ours.port, "*"), _config_map(reference.port, "*")
    different = {name: (mine[name], theirs[name]) for name in set(mine) & set(theirs)
                 if mine[name] != theirs[name]}
    assert set(different) == set(VALUE_DIFFERENCES), different


def test_config_get_each_name_alone_answers_the_same_bytes(pair):
    """One name at a time (as typed, upper case too) and several patterns at once."""
    ours, reference = pair
    names = sorted(set(_config_map(reference.port, "*")) - set(ONLY_REDIS) - set(VALUE_DIFFERENCES))
    with RawClient(ours.port) as mine, RawClient(reference.port) as theirs:
        for name in names:
            for typed in (name, name.upper()):
                assert mine.call("CONFIG", "GET", typed) == theirs.call("CONFIG", "GET", typed), typed
        for command in (("CONFIG", "GET", "nosuch"), ("CONFIG", "GET", "maxmemory", "MAXMEMORY"),
                        ("CONFIG", "GET")):
            assert mine.call(*command) == theirs.call(*command), command
        # Several patterns: the same pairs (Redis's order is its dict's).
        for command in (("CONFIG", "GET", "hz", "nosuch", "timeout", "lua*", "BUSY-*"),
                        ("CONFIG", "GET", "*max*entries*", "HZ")):
            assert _pairs(mine.call(*command)) == _pairs(theirs.call(*command))


def _pairs(reply: bytes, without: Iterable[str] = ()) -> list[bytes]:
    """A RESP2 array of bulk strings as sorted (name, value) pairs; the values of the names
    in ``without`` left out."""
    parts = reply.split(b"\r\n")[1:-1][1::2]  # every bulk string's bytes
    skip = {name.encode() for name in without}
    return sorted((name, b"" if name in skip else value)
                  for name, value in zip(parts[::2], parts[1::2], strict=True))


def _bad_values(option) -> list[str]:
    if option.flags & (IMMUTABLE | PROTECTED):
        return ["x"]
    if option.kind == BOOL:
        return ["maybe", "", "YESS"]
    if option.kind == ENUM:
        return ["zz", ""]
    if option.kind in (INT, MEMORY):
        return ["abc", "", "1.5", "-99999999999999999999", "99999999999999999999",
                str(option.low - 1), str(option.high + 1), "+5", "007", "5 "]
    return []


def test_config_set_errors_are_redis_errors(pair):
    ours, reference = pair
    checked = 0
    with RawClient(ours.port) as mine, RawClient(reference.port) as theirs:
        for option in OPTIONS.values():
            if option.name in SET_DIFFERENCES or option.name in ONLY_OURS:
                continue
            for name in filter(None, (option.name, option.alias)):
                for value in _bad_values(option):
                    command = ("CONFIG", "SET", name, value)
                    reply = mine.call(*command)
                    assert reply == theirs.call(*command), command
                    checked += reply.startswith(b"-ERR")
        for command in [("CONFIG", "SET", "nosuch", "1"), ("CONFIG", "SET", "NoSuch", "1"),
                        ("CONFIG", "SET", "maxmemory", "1", "MAXMEMORY", "2"),
                        ("CONFIG", "SET", "lua-time-limit", "7", "busy-reply-threshold", "9"),
                        ("CONFIG", "GET", "lua-time-limit"),
                        ("CONFIG", "SET", "busy-reply-threshold", "8", "LUA-TIME-LIMIT", "6"),
                        ("CONFIG", "GET", "busy-reply-threshold"),
                        ("CONFIG", "SET", "hz", "x", "nosuch", "1"),
                        ("CONFIG", "SET", "nosuch", "1", "hz", "x"),
                        ("CONFIG", "SET", "databases", "1", "hz", "x"),
                        ("CONFIG", "SET", "maxmemory", "1"), ("CONFIG", "SET", "hz"),
                        ("CONFIG", "SET", "maxmemory", "1mb", "hz", "abc"),
                        ("CONFIG", "SET", "save", "60"), ("CONFIG", "SET", "save", "a b"),
                        ("CONFIG", "SET", "save", "0 1"), ("CONFIG", "SET", "save", "60 -1"),
                        ("CONFIG", "SET", "client-output-buffer-limit", "bogus 1 1 1"),
                        ("CONFIG", "SET", "client-output-buffer-limit", "normal 1 1"),
                        ("CONFIG", "SET", "client-output-buffer-limit", "normal x 1 1"),
                        ("CONFIG", "SET", "notify-keyspace-events", "KQ"),
                        ("CONFIG", "SET", "oom-score-adj-values", "1 2"),
                        ("CONFIG", "SET", "oom-score-adj-values", "1 2 x"),
                        ("CONFIG", "SET", "oom-score-adj-values", "1 2 3000"),
                        ("CONFIG", "SET", "latency-tracking-info-percentiles", "101"),
                        ("CONFIG", "SET", "latency-tracking-info-percentiles", "x"),
                        ("CONFIG", "SET", "maxmemory-clients", "x"),
                        ("CONFIG", "SET", "maxmemory-clients", "-1%"),
                        ("CONFIG", "SET", "maxmemory-clients", "200%"),
                        ("CONFIG", "SET", "latency-tracking-info-percentiles", "nan"),
                        ("CONFIG", "SET", "latency-tracking-info-percentiles", "50  99"),
                        ("CONFIG", "SET", "replicaof", "localhost 1"),
                        ("CONFIG", "SET", "loglevel", "nothing"),
                        ("CONFIG", "GET", "maxmemory"),
                        # strtod's forms, as Redis's string2d reads them
                        *(("CONFIG", "SET", "latency-tracking-info-percentiles", value)
                          for value in ("0x10", "0x1p3 .5", "5.", "+5 1e1", "1_0", "1e400",
                                        "inf", "-0", " 5", "50 99 99.9")),
                        ("CONFIG", "GET", "latency-tracking-info-percentiles"),
                        *(("CONFIG", "SET", "cluster-announce-hostname", value)
                          for value in ("a b", "+5", "x_y", "a" * 256, "a" * 255, "h-1.b",
                                        "")),
                        *(("CONFIG", "SET", "proc-title-template", value)
                          for value in ("", " ", "{title}", "{server-mode}", "{nosuch}", "{",
                                        "{title", "{}", "{TITLE}", "}", "{{", "a{{b", "{{}",
                                        "{port}", "{listen-addr}", "{config-file}",
                                        "{tls-port} {title}",
                                        "{title} {listen-addr} {server-mode}")),
                        ("CONFIG", "GET", "proc-title-template"),
                        # no TLS without certificates (none here), no defragmenting allocator
                        *(("CONFIG", "SET", name, value) for name, value in (
                            ("tls-port", "6390"), ("tls-port", "0"), ("tls-replication", "yes"),
                            ("tls-cluster", "YES"), ("tls-cluster", "no"),
                            ("activedefrag", "yes"), ("activedefrag", "no"))),
                        ("CONFIG", "SET", "maxmemory", "2mb", "tls-replication", "yes"),
                        ("CONFIG", "GET", "maxmemory"),
                        # the first changed option that sets TLS up again is named
                        ("CONFIG", "SET", "tls-ciphers", "x", "tls-port", "1"),
                        ("CONFIG", "SET", "tls-port", "1", "tls-ciphers", "x"),
                        ("CONFIG", "SET", "tls-ciphers", "", "tls-replication", "yes"),
                        ("CONFIG", "SET", "tls-auth-clients", "no", "tls-cluster", "yes"),
                        ("CONFIG", "SET", "tls-ciphers", "x"), ("CONFIG", "GET", "tls-ciphers"),
                        ("CONFIG", "SET", "tls-ciphers", "")]:
            assert mine.call(*command) == theirs.call(*command), command
    assert checked > 400


def _random_value(rng: random.Random, option) -> str:
    """A valid value for ``option`` (numbers with units, enums in any case), or now and then
    one of the invalid ones."""
    if rng.random() < 0.15:
        return rng.choice(_bad_values(option))
    if option.kind == BOOL:
        return rng.choice(["yes", "no", "YES", "No"])
    if option.kind == ENUM:
        value = rng.choice(option.values)
        return value.upper() if rng.random() < 0.3 else value
    high = min(option.high, 10**6)
    if option.kind == MEMORY and rng.random() < 0.5:
        return f"{rng.randint(0, 64)}{rng.choice(['k', 'kb', 'mb', 'm', 'b', 'GB'])}"
    return str(rng.randint(max(option.low, 0), high))


# Options with an effect here that a random value cannot hurt (the stream's servers hold no
# data and no replicas): they stay in the random CONFIG SET stream.
HARMLESS_WITH_EFFECT = frozenset({
    "acllog-max-len", "busy-reply-threshold", "hash-max-listpack-entries",
    "hash-max-listpack-value", "latency-tracking", "list-max-listpack-size", "rdbcompression",
    "replica-announced", "replica-ignore-maxmemory", "replica-priority",
    "set-max-intset-entries", "stream-node-max-bytes", "stream-node-max-entries",
    "tracking-table-max-keys", "zset-max-listpack-entries", "zset-max-listpack-value"})


def test_config_set_random_streams_then_get_as_redis(pair):
    """A seeded random stream of CONFIG SETs of one to three options (aliases, upper case,
    sometimes an invalid value, so that the whole command is refused and nothing changes)
    on both servers: the same replies, then the same CONFIG GET * (but the allowed
    differences)."""
    ours, reference = pair
    rng = random.Random(1207)
    tunables = [o for o in OPTIONS.values()
                if o.kind in (BOOL, ENUM, INT, MEMORY) and not o.flags & (IMMUTABLE | PROTECTED)
                and o.name not in SET_DIFFERENCES
                and (o.applies == "" or o.name in HARMLESS_WITH_EFFECT)]
    refused = 0
    with RawClient(ours.port) as mine, RawClient(reference.port) as theirs:
        for _ in range(400):
            command = ["CONFIG", "SET"]
            for option in rng.sample(tunables, rng.randint(1, 3)):
                name = rng.choice([n for n in (option.name, option.alias) if n])
                name = name.upper() if rng.random() < 0.2 else name
                command += [name, _random_value(rng, option)]
            reply = mine.call(*command)
            assert reply == theirs.call(*command), command
            refused += reply.startswith(b"-")
        assert mine.call("CONFIG", "SET", "maxmemory-policy", "allkeys-lru", "hz", "x") == (
            theirs.call("CONFIG", "SET", "maxmemory-policy", "allkeys-lru", "hz", "x"))
    assert 20 < refused < 300
    mine, theirs = _config_map(ours.port, "*"), _config_map(reference.port, "*")
    different = {name for name in set(mine) & set(theirs) if mine[name] != theirs[name]}
    assert different == set(VALUE_DIFFERENCES)


# --- all or nothing -----------------------------------------------------------------------------


class RefuseSamples:
    """A test-only plugin whose apply step refuses maxmemory-samples 7."""

    @hookimpl
    def trioredis_config_changed(self, old, new):
        if new.maxmemory_samples == 7:
            raise ConfigError("CONFIG SET failed (possibly related to argument "
                              "'maxmemory-samples') - seven is refused by a plugin")


def test_a_failed_apply_rolls_every_option_back(tmp_path):
    with ServerThread([*MEMORY_ONLY, ["dir", str(tmp_path)]]) as server:
        server.wait_ready()
        plugin = RefuseSamples()
        server.server.engine.plugin_manager.register(plugin)
        client = server.client(decode_responses=True)
        with pytest.raises(redis.ResponseError, match="seven is refused by a plugin"):
            client.config_set("maxmemory", "5mb")
            client.execute_command("CONFIG", "SET", "maxmemory", "10mb", "maxmemory-samples", "7")
        assert client.config_get("maxmemory", "maxmemory-samples") == {
            "maxmemory": "5242880", "maxmemory-samples": "5"}
        server.server.engine.plugin_manager.unregister(plugin)


# --- files and the command line --------------------------------------------------------------


def test_unknown_directive_in_a_file_is_fatal_with_redis_reason(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("port 0\nno-such-directive yes\n")
    done = run_cli("--test-config", str(path))
    assert done.returncode == 1
    assert f"{path}:2: Bad directive or wrong number of arguments" in done.stderr


@pytest.mark.parametrize("line", ["tls-port 6390", "tls-replication yes", "tls-cluster yes"])
def test_turning_tls_on_stops_the_start_with_the_reason(tmp_path, line):
    """No TLS is served here: a configuration that asks for it must not start as if it were
    (a TLS port silently unserved, replication in clear)."""
    path = tmp_path / "tls.conf"
    path.write_text(f"port 0\n{line}\n")
    done = run_cli("--test-config", str(path))
    assert done.returncode == 1
    assert f"{path}:2: Unable to update TLS configuration" in done.stderr
    assert "trioredis does not serve TLS" in done.stderr


def test_tls_is_judged_on_the_final_values(tmp_path):
    """As Redis sets TLS up once every line was read: a later line that turns it off wins."""
    path = tmp_path / "tls.conf"
    path.write_text("port 0\ntls-port 6390\ntls-replication yes\ntls-port 0\n"
                    "tls-replication no\n")
    done = run_cli("--test-config", str(path))
    assert done.returncode == 0, done.stderr


def test_single_value_options_refuse_extra_words_in_a_file(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("maxmemory 1mb 2mb\n")
    with pytest.raises(ConfigError, match="wrong number of arguments"):
        load_config(str(path))


@pytest.mark.parametrize(("words", "shown"), [
    (["save", "3600 1"], "3600 1"),
    (["save", ""], ""),
    (["save", "3600", "1", "60", "5"], "3600 1 60 5"),
    (["client-output-buffer-limit", "pubsub 1mb 1mb 0"],
     "normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 1048576 0"),
    (["oom-score-adj-values", "0 100 200"], "0 100 200"),
    (["latency-tracking-info-percentiles", "50.0 99.90"], "50 99.9"),
    (["lua-time-limit", "100"], "100"),
    (["hash-max-ziplist-entries", "7"], "7"),
])
def test_command_line_reads_multi_word_options_as_redis(tmp_path, spawned, words, shown):
    server = ServerProcess(str(tmp_path), [["appendonly", "no"], words]).start()
    spawned.append(server)
    client = server.client(decode_responses=True)
    assert client.config_get(words[0]) == {words[0]: shown}


def test_debian_stock_redis_conf_is_accepted(tmp_path, spawned):
    stock = "/etc/redis/redis.conf"
    if not os.access(stock, os.R_OK):
        pytest.skip("Debian's redis.conf is not readable here")
    path = tmp_path / "redis.conf"
    with open(stock, encoding="utf-8") as source:
        text = source.read()
    path.write_text(text + f"\ndir {tmp_path}\ndaemonize no\npidfile {tmp_path}/redis.pid\n"
                    'logfile ""\nport 0\n')
    done = run_cli("--test-config", str(path))
    assert done.returncode == 0, done.stderr
    assert "Configuration test passed" in done.stdout
    server = ServerProcess(str(tmp_path), config_path=str(path)).start()
    spawned.append(server)
    assert server.client().ping() is True
    # One line names the directives that are accepted but do nothing here.
    lines = [line for line in server.log().splitlines() if "Options without effect here" in line]
    assert len(lines) == 1 and "aof-use-rdb-preamble" in lines[0] and " port" not in lines[0]
    # Options with an effect here are not named (the encoding thresholds, the checksum).
    assert "hash-max-listpack-entries" not in lines[0] and "rdbchecksum" not in lines[0]


def test_config_get_globs_as_redis(pair):
    """Redis's glob (stringmatchlen, case-insensitive): ranges, negation, escapes."""
    ours, reference = pair
    patterns = ["*max*", "[^m]axmemory*", "MAXMEMOR?", "hash-max-*-entries", "*[", "\\*",
                "[a-c]*", "*-[!s]*", "???", "*ziplist*", "slave-*", "*\\-time-*", "[]*"]
    with RawClient(ours.port) as mine, RawClient(reference.port) as theirs:
        for pattern in patterns:
            command = ("CONFIG", "GET", pattern)
            assert _pairs(mine.call(*command), VALUE_DIFFERENCES) == _pairs(
                theirs.call(*command), VALUE_DIFFERENCES), pattern


def test_config_get_in_resp3_is_a_map_as_redis(pair):
    ours, reference = pair
    with RawClient(ours.port) as mine, RawClient(reference.port) as theirs:
        mine.call("HELLO", "3")
        theirs.call("HELLO", "3")
        for command in (("CONFIG", "GET", "maxmemory"), ("CONFIG", "GET", "nosuch"),
                        ("CONFIG", "GET", "lua-time-limit"), ("CONFIG", "SET", "hz", "x")):
            assert mine.call(*command) == theirs.call(*command), command


# Options set on both servers, then CONFIG REWRITE: their lines must be Redis's, byte for byte.
REWRITTEN = [
    ("maxmemory", "64mb"), ("maxmemory", "1000"), ("hz", "20"), ("appendfsync", "ALWAYS"),
    ("lazyfree-lazy-expire", "yes"), ("notify-keyspace-events", "KEA"),
    ("save", "100 10 20 5"), ("client-output-buffer-limit", "pubsub 1mb 512kb 30"),
    ("lua-time-limit", "300"), ("hash-max-ziplist-entries", "99"),
    ("latency-tracking-info-percentiles", "50 99.5"), ("maxmemory-clients", "10%"),
    ("oom-score-adj-values", "0 100 900"), ("proc-title-template", "{title} {port}"),
    ("replica-announce-ip", "10.0.0.1"), ("active-defrag-ignore-bytes", "3gb"),
]


def test_config_rewrite_writes_redis_lines(tmp_path, spawned):
    ours_conf, ref_conf = tmp_path / "ours.conf", tmp_path / "ref.conf"
    for conf in (ours_conf, ref_conf):
        conf.write_text("# kept\nhz 10\nsave 60 1\n")
    (tmp_path / "ours").mkdir()
    (tmp_path / "ref").mkdir()
    server = ServerProcess(str(tmp_path / "ours"), [["appendonly", "no"]],
                           config_path=str(ours_conf)).start()
    spawned.append(server)
    with ReferenceRedis(directory=str(tmp_path / "ref"), config_path=str(ref_conf)) as reference:
        with RawClient(server.port) as mine, RawClient(reference.port) as theirs:
            for name, value in REWRITTEN:
                command = ("CONFIG", "SET", name, value)
                assert mine.call(*command) == theirs.call(*command), command
                assert mine.call("CONFIG", "REWRITE") == theirs.call("CONFIG", "REWRITE")
                primary = OPTIONS[name].name if name in OPTIONS else next(
                    o.name for o in OPTIONS.values() if o.alias == name)
                ours, theirs_lines = (
                    [line for line in conf.read_text().splitlines()
                     if line.split(" ", 1)[0] == primary] for conf in (ours_conf, ref_conf))
                assert ours == theirs_lines, (name, value)
    # Comments stay, an option the file names is rewritten where it was.  (Where the
    # second save line and later additions go differs: Redis appends them after blank lines.)
    for conf in (ours_conf, ref_conf):
        assert conf.read_text().startswith("# kept\nhz 20\nsave 100 10\n")


def test_debug_config_rewrite_force_all_reads_back_every_value(tmp_path, spawned):
    """Redis's "CONFIG REWRITE sanity": every option written, defaults included, then a
    restart from that file gives the same CONFIG GET * (here after changing a few)."""
    conf = tmp_path / "all.conf"
    conf.write_text("# kept\nenable-debug-command yes\n")
    server = ServerProcess(str(tmp_path), [["appendonly", "no"]], config_path=str(conf)).start()
    spawned.append(server)
    client = server.client(decode_responses=True)
    for name, value in REWRITTEN[:8]:
        client.config_set(name, value)
    before = client.config_get("*")
    assert client.execute_command("DEBUG", "CONFIG-REWRITE-FORCE-ALL") == "OK"
    text = conf.read_text()
    assert text.startswith("# kept\nenable-debug-command yes\n")
    assert "\nhash-max-listpack-entries 512\n" in text  # a default, written all the same
    client.close()
    server.stop()
    server.start()
    client = server.client(decode_responses=True)
    try:
        assert client.config_get("*") == before
    finally:
        client.close()
