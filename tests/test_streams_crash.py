"""kill -9 under consumer-group traffic, under AOF ``always`` and ``everysec``: after the
restart no acknowledged XADD is lost (and no hole appears), the group's last-delivered-id
covers every entry a consumer was given, what a consumer was given and did not acknowledge
is still pending for it, and what it acknowledged is not.

A producer adds entries with explicit IDs ``n-1`` one at a time; consumers read with
XREADGROUP ``>`` and acknowledge every other batch.  Every reply a client received is a
promise; the one command in flight when the server died may have happened or not, so it is
allowed either way.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from servers import ServerProcess

ROUNDS = 3
CONSUMERS = 2


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, protocol=2, socket_timeout=30,
                       retry=Retry(NoBackoff(), 0), retry_on_error=[])


def _wait_loaded(server: ServerProcess, timeout: float = 60) -> redis.Redis:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client = _client(server.port)
            if client.info("persistence")["loading"] == 0:
                return client
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError):
            pass
        time.sleep(0.02)
    raise TimeoutError("server did not load")


class Producer(threading.Thread):
    def __init__(self, port: int, key: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client = _client(port)
        self.key, self.stop = key, stop
        self.acked = 0  # entries 1..acked were acknowledged
        self.error: BaseException | None = None

    def run(self) -> None:
        number = self.acked
        try:
            while not self.stop.is_set():
                number += 1
                self.client.execute_command("XADD", self.key, f"{number}-1", "n", number)
                self.acked = number
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


class Consumer(threading.Thread):
    def __init__(self, port: int, key: str, name: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client = _client(port)
        self.key, self.name, self.stop = key, name, stop
        self.given: set[str] = set()  # IDs an XREADGROUP reply gave us
        self.acked: set[str] = set()  # IDs an XACK reply confirmed
        self.in_flight_ack: set[str] = set()
        self.error: BaseException | None = None

    def run(self) -> None:
        batch = 0
        try:
            while not self.stop.is_set():
                reply = self.client.xreadgroup("g", self.name, {self.key: ">"}, count=3)
                ids = [entry_id.decode() for _key, entries in reply or [] for entry_id, _ in entries]
                self.given.update(ids)
                batch += 1
                if ids and batch % 2:
                    self.in_flight_ack = set(ids)
                    self.client.xack(self.key, "g", *ids)
                    self.acked.update(ids)
                    self.in_flight_ack = set()
                if not ids:
                    time.sleep(0.002)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass
        except BaseException as error:  # noqa: BLE001
            self.error = error


def _number(entry_id: str) -> int:
    return int(entry_id.split("-")[0])


@pytest.mark.parametrize("policy", ["always", "everysec"])
def test_kill_9_keeps_acknowledged_entries_and_the_group_state(tmp_path, policy, spawned):
    seed = int(os.environ.get("CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(f"{policy}:{seed}")
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["appendfsync", policy],
                                           ["save", ""]])
    spawned.append(server)
    server.start(wait=False)
    client = _wait_loaded(server)
    for round_number in range(ROUNDS):
        key = f"jobs:{round_number}"
        client.xgroup_create(key, "g", id="0", mkstream=True)
        stop = threading.Event()
        producer = Producer(server.port, key, stop)
        consumers = [Consumer(server.port, key, f"c{i}", stop) for i in range(CONSUMERS)]
        for thread in (producer, *consumers):
            thread.start()
        time.sleep(rng.uniform(0.3, 0.9))
        if round_number == 1:
            _client(server.port).bgrewriteaof()
            time.sleep(rng.uniform(0.0, 0.2))
        server.kill()
        stop.set()
        for thread in (producer, *consumers):
            thread.join(30)
            assert thread.error is None, thread.error
        server.start(wait=False)
        client = _wait_loaded(server)

        # Entries: 1..acked, or one more (the XADD in flight); no holes.
        numbers = [_number(entry_id.decode()) for entry_id, _ in client.xrange(key)]
        assert numbers == list(range(1, len(numbers) + 1)), f"seed {seed}: holes"
        assert len(numbers) in (producer.acked, producer.acked + 1), f"seed {seed}"
        assert producer.acked > 0

        group = client.xinfo_groups(key)[0]
        last_delivered = _number(group["last-delivered-id"].decode())
        pending = {
            entry["message_id"].decode(): entry["consumer"].decode()
            for entry in client.xpending_range(key, "g", "-", "+", 1_000_000)
        }
        given_anywhere = set()
        for consumer in consumers:
            given_anywhere |= consumer.given
            for entry_id in consumer.given:
                assert _number(entry_id) <= last_delivered, f"seed {seed}: {entry_id} delivered"
                if entry_id in consumer.acked:
                    assert entry_id not in pending, f"seed {seed}: acked {entry_id} pending"
                elif entry_id not in consumer.in_flight_ack:
                    assert pending.get(entry_id) == consumer.name, f"seed {seed}: {entry_id}"
        # Pending entries belong to deliveries (the last XREADGROUP in flight may add some).
        for entry_id in pending:
            assert _number(entry_id) <= last_delivered
        assert last_delivered <= len(numbers)
        assert given_anywhere, f"seed {seed}: the consumers got nothing"
