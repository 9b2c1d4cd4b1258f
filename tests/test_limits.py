"""Limits a Redis operator expects, through raw sockets and redis-py, with Redis's bytes:
maxclients, client-query-buffer-limit, proto-max-bulk-len, client-output-buffer-limit
(normal and pubsub), timeout, tcp-keepalive, maxmemory (noeviction) and protected mode."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import redis
from parity import ReferenceRedis
from servers import ServerThread, exchange
from trioredis.acl import PROTECTED_MODE_DENIED, AccessControl, protected_mode_refusal
from trioredis.commands import CommandRegistry
from trioredis.config import ConfigError, load_config

OOM = "OOM command not allowed when used memory > 'maxmemory'."


@pytest.fixture
def make_server(tmp_path):
    running: list[ServerThread] = []

    def start(*options: list[str]) -> ServerThread:
        server = ServerThread([["save", ""], ["dir", str(tmp_path)], *options]).start()
        server.wait_ready()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


def connect(server: ServerThread, host: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection((host, server.port), timeout=10)


def read_until_closed(sock: socket.socket, limit: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts too)."""
    sock.settimeout(limit)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


# --- connections -------------------------------------------------------------------------------


def test_maxclients_refuses_the_next_client_with_redis_error(make_server):
    server = make_server(["maxclients", "2"])
    first, second = connect(server), connect(server)
    for sock in (first, second):
        sock.sendall(b"PING\r\n")
        assert sock.recv(100) == b"+PONG\r\n"
    with connect(server) as third:
        assert read_until_closed(third) == b"-ERR max number of clients reached\r\n"
    first.close()
    deadline = time.monotonic() + 10
    while True:  # the server notices the close on its next turn
        with connect(server) as again:
            again.sendall(b"PING\r\n")
            reply = again.recv(100)
        if reply == b"+PONG\r\n" or time.monotonic() > deadline:
            break
    assert reply == b"+PONG\r\n"
    second.close()


def test_idle_client_is_closed_after_timeout_but_subscriber_is_not(make_server):
    server = make_server(["timeout", "1"])
    with connect(server) as idle, connect(server) as subscriber:
        subscriber.sendall(b"SUBSCRIBE news\r\n")
        assert subscriber.recv(100).startswith(b"*3\r\n$9\r\nsubscribe\r\n")
        assert read_until_closed(idle) == b""
        subscriber.sendall(b"PING\r\n")
        assert subscriber.recv(100) == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"


def test_tcp_keepalive_is_set_on_client_sockets(make_server):
    server = make_server(["tcp-keepalive", "120"])
    with connect(server) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(100) == b"+PONG\r\n"
        (connection,) = server.server.client_connections()
        raw = connection.sock
        assert raw.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 120


# --- requests ----------------------------------------------------------------------------------


def test_query_buffer_over_limit_closes_only_that_client(make_server):
    server = make_server(["client-query-buffer-limit", "1mb"])
    bystander = server.client()
    bystander.set("safe", "yes")
    with connect(server) as greedy:
        greedy.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n")
        try:
            greedy.sendall(b"x" * (1024 * 1024 + 4096))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert read_until_closed(greedy) == b""
    assert bystander.get("safe") == b"yes"
    assert bystander.get("k") is None


def test_bulk_longer_than_proto_max_bulk_len_is_a_protocol_error(make_server):
    server = make_server(["proto-max-bulk-len", "1mb"])
    with connect(server) as sock:
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n")
        assert read_until_closed(sock) == b"-ERR Protocol error: invalid bulk length\r\n"
    with connect(server) as sock:
        value = b"v" * (1024 * 1024)
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n" + value + b"\r\n")
        assert sock.recv(100) == b"+OK\r\n"


def test_config_set_proto_max_bulk_len_reaches_clients_already_connected(make_server):
    """As in Redis, the limit is read for every request, not fixed at connect time."""
    server = make_server()
    admin = server.client()
    with connect(server) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(100) == b"+PONG\r\n"
        admin.config_set("proto-max-bulk-len", "1mb")
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n")
        assert read_until_closed(sock) == b"-ERR Protocol error: invalid bulk length\r\n"
    admin.config_set("proto-max-bulk-len", "2mb")
    with connect(server) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(100) == b"+PONG\r\n"
        value = b"v" * (1024 * 1024 + 1)
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n" + value + b"\r\n")
        assert sock.recv(100) == b"+OK\r\n"


# --- replies -----------------------------------------------------------------------------------


def test_subscriber_that_does_not_read_is_closed_over_the_hard_limit(make_server):
    server = make_server(["client-output-buffer-limit", "pubsub 256kb 0 0"])
    publisher = server.client()
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", server.port))
    with slow:
        slow.sendall(b"SUBSCRIBE news\r\n")
        assert slow.recv(100).startswith(b"*3\r\n")
        message = b"m" * 65536
        receivers = [publisher.publish("news", message) for _ in range(200)]
        assert receivers[0] == 1 and receivers[-1] == 0  # dropped before 13 MB queued
        read_until_closed(slow)
    assert publisher.execute_command("PUBSUB", "NUMSUB", "news") == [b"news", 0]
    assert publisher.ping() is True


def test_subscriber_over_the_soft_limit_for_its_seconds_is_closed(make_server):
    server = make_server(["client-output-buffer-limit", "pubsub 0 128kb 0"])
    publisher = server.client()
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", server.port))
    with slow:
        slow.sendall(b"SUBSCRIBE news\r\n")
        assert slow.recv(100).startswith(b"*3\r\n")
        for _ in range(1000):
            if publisher.publish("news", b"m" * 65536) == 0:
                break
        assert publisher.publish("news", b"after") == 0


@pytest.mark.parametrize("set_at", ["start-up", "runtime"])
def test_normal_client_over_its_hard_limit_is_closed_without_the_reply(make_server, set_at):
    limit = ["client-output-buffer-limit", "normal 1mb 0 0"]
    server = make_server(limit) if set_at == "start-up" else make_server()
    writer = server.client()
    if set_at == "runtime":
        writer.config_set(*limit)
    writer.set("big", b"x" * (2 * 1024 * 1024))
    writer.set("small", b"y")
    with connect(server) as reader:
        reader.sendall(b"GET small\r\n")
        assert reader.recv(100) == b"$1\r\ny\r\n"
        reader.sendall(b"GET big\r\n")
        assert read_until_closed(reader) == b""
    assert writer.get("small") == b"y"


def test_output_buffer_limit_config_round_trip():
    config = load_config(None, [["client-output-buffer-limit", "pubsub", "32mb", "8mb", "60"],
                                ["client-output-buffer-limit", "normal", "1mb", "512kb", "5"]])
    assert config.config.client_output_buffer_limit == (
        "normal 1048576 524288 5 slave 268435456 67108864 60 pubsub 33554432 8388608 60")
    with pytest.raises(ConfigError, match="Invalid client class specified in buffer limit"):
        load_config(None, [["client-output-buffer-limit", "bogus", "1", "1", "1"]])


def test_config_set_and_get_client_output_buffer_limit(make_server):
    client = make_server().client()
    client.config_set("client-output-buffer-limit", "pubsub 1mb 0 0")
    assert client.config_get("client-output-buffer-limit") == {
        "client-output-buffer-limit": "normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 0 0"}


# --- memory ------------------------------------------------------------------------------------


def test_maxmemory_noeviction_refuses_denyoom_commands_only(make_server):
    server = make_server()
    client = server.client()
    client.set("kept", "v")
    client.config_set("maxmemory", "1")  # below any process's RSS: always over
    assert exchange(server, b"SET k v", b"GET kept", b"DEL kept", b"INCR n",
                    b"MULTI", b"SET a b", b"EXEC") == [
        OOM, b"v", 1, OOM, b"OK", OOM,
        "EXECABORT Transaction discarded because of previous errors.",
    ]
    client.config_set("maxmemory", "0")
    assert client.set("k", "v") is True


def test_used_memory_is_the_dataset_estimate_and_below_a_large_maxmemory(make_server):
    server = make_server(["maxmemory", "100gb"])
    client = server.client()
    memory = client.info("memory")
    # The estimate of trioredis.memory (tests/test_memory.py), not the interpreter's RSS.
    assert 0 < memory["used_memory"] < memory["used_memory_rss"]
    assert client.set("k", "v") is True


# --- protected mode ----------------------------------------------------------------------------


class NamespaceHost:
    """A test host of our own: a network namespace joined to this one by a veth pair, so a
    client connects from a non-loopback address without any traffic leaving the machine."""

    HOST_ADDRESS = "10.213.77.1"
    PEER_ADDRESS = "10.213.77.2"

    def __init__(self) -> None:
        suffix = os.getpid() % 100000
        self.namespace = f"trtest{suffix}"
        self.host_link = f"trh{suffix}"
        self.peer_link = f"trp{suffix}"

    def __enter__(self) -> NamespaceHost:
        commands = [
            ["ip", "netns", "add", self.namespace],
            ["ip", "link", "add", self.host_link, "type", "veth", "peer", "name", self.peer_link],
            ["ip", "link", "set", self.peer_link, "netns", self.namespace],
            ["ip", "addr", "add", f"{self.HOST_ADDRESS}/30", "dev", self.host_link],
            ["ip", "link", "set", self.host_link, "up"],
            ["ip", "netns", "exec", self.namespace, "ip", "addr", "add", f"{self.PEER_ADDRESS}/30",
             "dev", self.peer_link],
            ["ip", "netns", "exec", self.namespace, "ip", "link", "set", self.peer_link, "up"],
            ["ip", "netns", "exec", self.namespace, "ip", "link", "set", "lo", "up"],
        ]
        for command in commands:
            if subprocess.run(command, capture_output=True).returncode != 0:
                self.__exit__()
                pytest.skip(f"cannot make a test network namespace ({' '.join(command)})")
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)

    def exchange(self, port: int, payload: bytes) -> bytes:
        """Connect from the namespace to the server, send ``payload``, return what came back
        until the server closed or 2 s passed."""
        script = (
            "import socket,sys,time\n"
            "try:\n"
            f"    s=socket.create_connection(({self.HOST_ADDRESS!r},{port}),timeout=5)\n"
            "except ConnectionRefusedError:\n"
            "    sys.stdout.write('REFUSED'); sys.exit(0)\n"
            f"s.sendall({payload!r})\n"
            "s.settimeout(0.5);out=b'';end=time.monotonic()+2\n"
            "while time.monotonic()<end:\n"
            "    try:\n        d=s.recv(65536)\n    except (socket.timeout, ConnectionResetError):\n        break\n"
            "    if not d: break\n    out+=d\n"
            "sys.stdout.buffer.write(out)\n"
        )
        result = subprocess.run(["ip", "netns", "exec", self.namespace, sys.executable, "-c", script],
                                capture_output=True, timeout=30)
        return result.stdout


def test_protected_mode_decision():
    acl = AccessControl(CommandRegistry())
    assert protected_mode_refusal(True, acl, "10.1.2.3") == PROTECTED_MODE_DENIED
    for local in ("127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"):
        assert protected_mode_refusal(True, acl, local) is None
    assert protected_mode_refusal(False, acl, "10.1.2.3") is None
    acl.set_requirepass("pw")
    assert protected_mode_refusal(True, acl, "10.1.2.3") is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], PROTECTED_MODE_DENIED),
        ([["protected-mode", "no"]], b"+PONG\r\n"),
        ([["requirepass", "pw"]], b"-NOAUTH Authentication required.\r\n"),
    ],
)
def test_protected_mode_refuses_non_loopback_clients_without_password(make_server, options, expected):
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 to make a test host in a network namespace")
    server = make_server(["bind", "0.0.0.0"], *options)
    with NamespaceHost() as host:
        # The refused client sends nothing: unread input would make the close a reset that
        # can destroy the DENIED line in flight (Redis behaves the same).
        refused = expected == PROTECTED_MODE_DENIED
        data = host.exchange(server.port, b"" if refused else b"PING\r\n")
    assert data == expected
    with connect(server) as local:  # loopback is always served
        local.sendall(b"AUTH pw\r\nPING\r\n" if options == [["requirepass", "pw"]] else b"PING\r\n")
        assert local.recv(100).endswith(b"+PONG\r\n")


def test_redis_py_sees_oom_as_out_of_memory_error(make_server):
    client = make_server(["maxmemory", "1"]).client()
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("k", "v")


def test_limit_errors_match_redis_server(make_server):
    """OOM, proto-max-bulk-len and maxclients answers, byte for byte, against redis-server."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    options = ["--maxmemory", "1", "--proto-max-bulk-len", "1mb", "--maxclients", "3"]
    ours = make_server(["maxmemory", "1"], ["proto-max-bulk-len", "1mb"], ["maxclients", "3"])
    with ReferenceRedis(*options) as redis_server:

        def session(target_port: int) -> list[bytes]:
            answers = []
            held = [socket.create_connection(("127.0.0.1", target_port)) for _ in range(3)]
            with socket.create_connection(("127.0.0.1", target_port), timeout=10) as refused:
                answers.append(read_until_closed(refused))
            for sock in held:
                sock.close()
            while True:  # until the server has noticed the closes
                sock = socket.create_connection(("127.0.0.1", target_port), timeout=10)
                sock.sendall(b"PING\r\n")
                if sock.recv(100) == b"+PONG\r\n":
                    break
                sock.close()
            with sock:
                sock.sendall(b"SET k v\r\nGET k\r\nDEL k\r\nMULTI\r\nSET a b\r\nEXEC\r\n")
                data = b""
                while data.count(b"\r\n") < 6:
                    data += sock.recv(65536)
                answers.append(data)
                sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n")
                answers.append(read_until_closed(sock))
            return answers

        assert session(ours.port) == session(redis_server.port)


def test_default_bind_is_loopback_only(make_server):
    assert load_config().config.bind == ["127.0.0.1", "-::1"]
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 to make a test host in a network namespace")
    server = make_server()
    with NamespaceHost() as host:
        assert host.exchange(server.port, b"PING\r\n") == b"REFUSED"
