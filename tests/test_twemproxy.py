"""Scale-out behind twemproxy (Debian's ``nutcracker``): three trioredis instances with
``appendfsync always`` behind one proxy.  10,000 keys written through the proxy spread over
all three; one instance killed with SIGKILL and restarted from its AOF serves its share again,
so every key reads back through the proxy.

twemproxy speaks RESP2 only and closes the connection on commands it does not proxy (HELLO,
CLIENT SETINFO, MULTI): the client here is redis-py with ``protocol=2`` and no library
name/version (``driver_info=None``), the way an application behind twemproxy has to configure it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import redis
from servers import ServerProcess, free_port

KEYS = 10_000
BATCH = 1_000

pytestmark = pytest.mark.skipif(shutil.which("nutcracker") is None,
                                reason="nutcracker (twemproxy) not installed: make system-deps")


def proxy_client(port: int) -> redis.Redis:
    """A client twemproxy accepts: RESP2, no CLIENT SETINFO on connect."""
    return redis.Redis(host="127.0.0.1", port=port, protocol=2, driver_info=None,
                       socket_timeout=15, socket_connect_timeout=5)


def write_config(path, listen_port: int, instances: list[ServerProcess]) -> None:
    """The shape of config/twemproxy/nutcracker.yml, with the ports of this test."""
    lines = [
        "trioredis:",
        f"  listen: 127.0.0.1:{listen_port}",
        "  redis: true",
        "  hash: fnv1a_64",
        "  distribution: ketama",
        "  auto_eject_hosts: false",
        "  timeout: 5000",
        "  server_retry_timeout: 500",
        "  server_failure_limit: 1",
        "  servers:",
    ]
    lines += [f"    - 127.0.0.1:{server.port}:1 trioredis-{index + 1}"
              for index, server in enumerate(instances)]
    path.write_text("\n".join(lines) + "\n")


class Nutcracker:
    """``nutcracker`` in the foreground as a child process, stats on a free port."""

    def __init__(self, config_path, port: int, log_path) -> None:
        self.port = port
        self.log_path = log_path
        self.process = subprocess.Popen(
            ["nutcracker", "-c", str(config_path), "-a", "127.0.0.1", "-s", str(free_port()),
             "-o", str(log_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 20) -> None:
        """Until the proxy answers PING (it answers PING itself, without a backend)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nutcracker exited with {self.process.returncode}:\n"
                                   f"{self.log()}")
            try:
                if proxy_client(self.port).ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.05)
        raise TimeoutError(f"nutcracker did not answer PING:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def read_all(client: redis.Redis, deadline: float) -> dict[bytes, bytes | None]:
    """Every key through the proxy, pipelined.  A batch that fails (the proxy's connection to
    the restarted instance was the dead one) is retried until ``deadline``."""
    found: dict[bytes, bytes | None] = {}
    for start in range(0, KEYS, BATCH):
        keys = [b"key:%d" % index for index in range(start, start + BATCH)]
        while True:
            try:
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.get(key)
                values = pipe.execute()
                break
            except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        found.update(zip(keys, values, strict=True))
    return found


def test_keys_spread_over_three_instances_and_survive_kill_9(tmp_path):
    instances = []
    for index in range(3):
        directory = tmp_path / f"instance-{index + 1}"
        directory.mkdir()
        instances.append(ServerProcess(str(directory), [["appendonly", "yes"],
                                                        ["appendfsync", "always"]]))
    proxy_port = free_port()
    config_path = tmp_path / "nutcracker.yml"
    write_config(config_path, proxy_port, instances)
    proxy = None
    try:
        for server in instances:
            server.start(timeout=60)
        proxy = Nutcracker(config_path, proxy_port, tmp_path / "nutcracker.log")
        proxy.wait_ready()
        client = proxy_client(proxy_port)

        for start in range(0, KEYS, BATCH):
            pipe = client.pipeline(transaction=False)
            for index in range(start, start + BATCH):
                pipe.set(b"key:%d" % index, b"value:%d" % index)
            assert pipe.execute() == [True] * BATCH

        shares = [server.client(socket_timeout=10).dbsize() for server in instances]
        assert all(share > 0 for share in shares), shares
        assert sum(shares) == KEYS

        victim = instances[1]
        victim_keys = set(victim.client(socket_timeout=10).scan_iter(count=1000))
        victim.kill(signal.SIGKILL)  # appendfsync always: every acknowledged SET is on disk

        # While it is down its keys fail loudly (an error, never a null that reads as "no such
        # key"), and the other instances' keys are still served.
        pipe = client.pipeline(transaction=False)
        for index in range(BATCH):
            pipe.get(b"key:%d" % index)
        replies = pipe.execute(raise_on_error=False)
        for index, reply in enumerate(replies):
            key = b"key:%d" % index
            if key in victim_keys:
                assert isinstance(reply, redis.RedisError), (key, reply)
            else:
                assert reply == b"value:%d" % index, (key, reply)

        victim.start(timeout=60)
        assert victim.client(socket_timeout=10).dbsize() == shares[1]

        found = read_all(client, deadline=time.monotonic() + 60)
        missing = [key for index, key in enumerate(found)
                   if found[key] != b"value:%d" % index]
        assert not missing, f"{len(missing)} keys wrong, e.g. {missing[:5]}"
        assert len(found) == KEYS
    finally:
        if proxy is not None:
            proxy.stop()
        for server in instances:
            server.kill(signal.SIGKILL)


def test_shipped_config_is_valid_for_nutcracker():
    """config/twemproxy/nutcracker.yml parses (``nutcracker -t``) and names three instances
    on 7001-7003 with the settings the test above runs."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "config", "twemproxy", "nutcracker.yml")
    result = subprocess.run(["nutcracker", "-t", "-c", path], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    text = open(path).read()
    for setting in ("redis: true", "hash: fnv1a_64", "distribution: ketama",
                    "auto_eject_hosts: false"):
        assert setting in text
    for port in (7001, 7002, 7003):
        assert f"127.0.0.1:{port}:1" in text


def test_cluster_demo_script_smoke(tmp_path):
    """scripts/cluster-demo.sh --smoke (what ``make cluster-demo`` runs, then stops): starts
    the three instances and the proxy on free ports, writes through the proxy, each instance
    holds a share, and it leaves nothing running."""
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "scripts", "cluster-demo.sh")
    ports = [free_port() for _ in range(5)]
    env = dict(os.environ, PYTHON=sys.executable, DEMO_DIR=str(tmp_path),
               PORTS=" ".join(map(str, ports[:3])), PROXY_PORT=str(ports[3]),
               STATS_PORT=str(ports[4]))
    result = subprocess.run(["bash", script, "--smoke"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for port in ports[:3]:
        assert f"instance on {port}:" in result.stdout
    for port in ports[:4]:  # all four stopped: nothing listens any more
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
