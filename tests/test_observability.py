"""SLOWLOG and MONITOR, with Redis 7.0.15's replies (captured from redis-server)."""

from __future__ import annotations

import re
import socket
import time

import pytest
import redis
import trio
from servers import ServerThread, wait_rewrite_done
from trioredis.observability import LatencyEvent, of, quote


@pytest.fixture
def rc(shared_server):
    client = shared_server.client()
    client.set_response_callback("SLOWLOG GET", lambda response, **options: response)
    yield client
    client.config_set("slowlog-log-slower-than", 10000)
    client.config_set("slowlog-max-len", 128)
    client.close()


def slowlog_get(client, *args):
    return client.execute_command("SLOWLOG", "GET", *args)


def log_everything(client):
    client.config_set("slowlog-log-slower-than", 0)
    client.slowlog_reset()


# --- SLOWLOG -------------------------------------------------------------------------------


def test_slowlog_records_commands_newest_first(rc):
    log_everything(rc)
    rc.set("k", "v")
    rc.client_setname("watcher")
    rc.get("k")
    entries = slowlog_get(rc)
    commands = [entry[3] for entry in entries]
    assert commands[:3] == [[b"GET", b"k"], [b"CLIENT", b"SETNAME", b"watcher"], [b"SET", b"k", b"v"]]
    newest = entries[0]
    assert len(newest) == 6
    assert newest[0] > entries[1][0]  # ids grow
    assert abs(newest[1] - time.time()) < 60
    assert isinstance(newest[2], int) and newest[2] >= 0
    assert re.fullmatch(rb"127\.0\.0\.1:\d+", newest[4])
    assert newest[5] == b"watcher"
    # Each SLOWLOG command is logged too, after it ran (as in Redis).
    assert rc.slowlog_len() + 1 == len(slowlog_get(rc, -1))


def test_slowlog_get_count(rc):
    log_everything(rc)
    for i in range(15):
        rc.set(f"c{i}", i)
    assert len(slowlog_get(rc)) == 10
    assert len(slowlog_get(rc, 2)) == 2
    assert len(slowlog_get(rc, 0)) == 0
    assert len(slowlog_get(rc, -1)) >= 16


def test_slowlog_threshold_and_reset(rc):
    rc.config_set("slowlog-log-slower-than", -1)
    rc.slowlog_reset()
    rc.set("quiet", 1)
    assert rc.slowlog_len() == 0
    rc.config_set("slowlog-log-slower-than", 10_000_000)
    rc.set("quiet", 2)
    assert rc.slowlog_len() == 0


def test_slowlog_max_len_keeps_newest(rc):
    log_everything(rc)
    rc.config_set("slowlog-max-len", 3)
    for i in range(10):
        rc.set("trim", i)
    entries = slowlog_get(rc, -1)
    assert len(entries) == 3
    assert [entry[3][2] for entry in entries] == [b"9", b"8", b"7"]


def test_slowlog_truncates_long_commands_like_redis(rc):
    log_everything(rc)
    rc.mset({f"k{i}": f"v{i}" for i in range(20)})  # 41 words
    rc.set("long", "x" * 200)
    long_entry, many_entry = slowlog_get(rc, 2)
    assert long_entry[3] == [b"SET", b"long", b"x" * 128 + b"... (72 more bytes)"]
    args = many_entry[3]
    assert len(args) == 32
    assert args[:3] == [b"MSET", b"k0", b"v0"]
    assert args[30] == b"v14"
    assert args[31] == b"... (10 more arguments)"


def raw_request(port: int, request: bytes) -> bytes:
    """One request on its own connection (redis-py turns a failed AUTH into a retried
    connection error)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        return sock.recv(65536)


def test_slowlog_redacts_auth(rc, shared_server):
    log_everything(rc)
    assert raw_request(shared_server.port, b"AUTH someone secret\r\n").startswith(b"-WRONGPASS")
    assert slowlog_get(rc, 1)[0][3] == [b"AUTH", b"(redacted)", b"(redacted)"]


def test_slowlog_errors_match_redis(rc):
    cases = {
        ("SLOWLOG", "GET", "-2"): "count should be greater than or equal to -1",
        ("SLOWLOG", "GET", "x"): "count should be greater than or equal to -1",
        ("SLOWLOG", "LEN", "x"): "wrong number of arguments for 'slowlog|len' command",
        ("SLOWLOG", "FOO"): "unknown subcommand 'FOO'. Try SLOWLOG HELP.",
        ("SLOWLOG",): "wrong number of arguments for 'slowlog' command",
    }
    for args, message in cases.items():
        with pytest.raises(redis.ResponseError) as info:
            rc.execute_command(*args)
        assert str(info.value) == message
    help_lines = rc.execute_command("SLOWLOG", "HELP")
    assert help_lines[0] == b"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    assert len(help_lines) == 12


# --- MONITOR -------------------------------------------------------------------------------


class Monitor:
    """A raw MONITOR connection: reads whole lines."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""
        self.sock.sendall(b"MONITOR\r\n")
        assert self.line() == b"+OK"

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def close(self) -> None:
        self.sock.close()


def test_monitor_shows_commands_as_redis_prints_them(shared_server):
    monitor = Monitor(shared_server.port)
    client = shared_server.client()
    try:
        client.execute_command("SET", "a b", b'x\ty"\\\x01\xff\n')
        client.config_get("port")  # admin: not shown
        client.execute_command("SELECT", "1")
        client.ping()
        line = monitor.line()
        assert re.fullmatch(
            rb'\+\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] "SET" "a b" "x\\ty\\"\\\\\\x01\\xff\\n"', line), line
        assert monitor.line().endswith(b'[1 ' + line.split(b"[0 ")[1].split(b"]")[0] + b'] "SELECT" "1"')
        assert monitor.line().endswith(b'"PING"')
    finally:
        client.close()
        monitor.close()


def test_monitor_through_redis_py(shared_server):
    client = shared_server.client()
    with client.monitor() as monitor:
        other = shared_server.client()
        other.set("seen", "yes")
        command = monitor.next_command()
        while command["command"].startswith("CLIENT"):  # redis-py's connection set-up
            command = monitor.next_command()
        assert command["command"] == "SET seen yes"
        assert command["db"] == 0
        other.close()
    client.close()


def test_monitor_redacts_auth_and_forgets_closed_monitors(shared_server):
    monitor = Monitor(shared_server.port)
    client = shared_server.client()
    assert raw_request(shared_server.port, b"AUTH secret\r\n").startswith(b"-ERR AUTH")
    assert monitor.line().endswith(b'"AUTH" "(redacted)"')
    monitor.close()
    deadline = time.monotonic() + 5
    observer = shared_server.server.engine.observer
    while observer.monitors and time.monotonic() < deadline:
        client.ping()  # a command after the close prunes the gone monitor
        time.sleep(0.01)
    assert not observer.monitors
    client.close()


@pytest.mark.parametrize(("arg", "shown"), [
    (b"plain", b'"plain"'),
    (b'q"b\\', b'"q\\"b\\\\"'),
    (b"\x07\x08\r", b'"\\a\\b\\r"'),
    (b"\x00\x7f", b'"\\x00\\x7f"'),
])
def test_quote_like_sdscatrepr(arg, shown):
    assert quote(arg) == shown


# --- LATENCY -------------------------------------------------------------------------------


def test_latency_monitor_off_by_default_like_redis(rc):
    assert rc.execute_command("LATENCY", "LATEST") == []
    assert rc.execute_command("LATENCY", "HISTORY", "command") == []
    assert rc.execute_command("LATENCY", "RESET") == 0
    doctor = rc.execute_command("LATENCY", "DOCTOR")
    assert doctor.startswith(b"I'm sorry, Dave, I can't do that. Latency monitoring is disabled")
    help_lines = rc.execute_command("LATENCY", "HELP")
    assert help_lines[0] == b"LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    assert len(help_lines) == 17
    cases = {
        ("LATENCY", "FOO"): "unknown subcommand 'FOO'. Try LATENCY HELP.",
        ("LATENCY", "HISTORY"): "wrong number of arguments for 'latency|history' command",
        ("LATENCY", "LATEST", "x"): "wrong number of arguments for 'latency|latest' command",
    }
    for args, message in cases.items():
        with pytest.raises(redis.ResponseError) as info:
            rc.execute_command(*args)
        assert str(info.value) == message


def test_latency_samples_as_redis_reports_them(rc, shared_server):
    """Samples recorded the way a backend's ``host.record_latency`` does once they pass the
    threshold: LATEST, HISTORY and RESET show them as Redis does."""
    engine = shared_server.server.engine

    def sample_all():
        observer = of(engine)
        observer.add_latency_sample("aof-write", 12)
        observer.add_latency_sample("aof-write", 30)  # the same second: the worst is kept
        observer.add_latency_sample("fork", 4)

    # Samples are stamped with the current second: redo them until none crossed a second
    # boundary, so "the same second" holds whatever the machine's speed.
    for _ in range(10):
        rc.execute_command("LATENCY", "RESET")
        second = int(time.time())
        trio.from_thread.run_sync(sample_all, trio_token=shared_server._token)
        if int(time.time()) == second:
            break
    latest = {entry[0]: entry[1:] for entry in rc.execute_command("LATENCY", "LATEST")}
    when, last, worst = latest[b"aof-write"]
    assert abs(when - time.time()) < 60 and last == 30 and worst == 30
    assert latest[b"fork"][1:] == [4, 4]
    history = rc.execute_command("LATENCY", "HISTORY", "aof-write")
    assert [ms for _, ms in history] == [30]
    assert rc.execute_command("LATENCY", "RESET", "fork", "nosuch") == 1
    assert rc.execute_command("LATENCY", "RESET") == 1
    assert rc.execute_command("LATENCY", "LATEST") == []


def test_latency_event_keeps_160_samples_and_the_maximum():
    event = LatencyEvent()
    for second in range(200):
        event.add(1_700_000_000 + second, 100 if second == 5 else 10)
    assert len(event.samples) == 160
    assert event.samples[0] == (1_700_000_040, 10)
    assert event.max == 100


def test_fork_is_counted_and_sampled_as_a_latency_event(tmp_path):
    """A BGREWRITEAOF forks: INFO total_forks and latest_fork_usec move, and a fork that took
    at least latency-monitor-threshold (1 ms) shows in LATENCY LATEST."""
    with ServerThread([["dir", str(tmp_path)], ["appendonly", "yes"], ["save", ""],
                       ["latency-monitor-threshold", "1"]]) as running:
        running.wait_ready()
        client = running.client()
        client.set("k", "v")
        before = client.info("stats")["total_forks"]
        client.bgrewriteaof()
        wait_rewrite_done(client, timeout=30)
        stats = client.info("stats")
        assert stats["total_forks"] == before + 1
        assert stats["latest_fork_usec"] > 0
        assert client.config_get("latency-monitor-threshold") == {"latency-monitor-threshold": "1"}
        events = {entry[0] for entry in client.execute_command("LATENCY", "LATEST")}
        assert events <= {b"fork", b"aof-write", b"aof-fsync-always", b"command", b"fast-command"}
        if stats["latest_fork_usec"] >= 1000:
            assert b"fork" in events
