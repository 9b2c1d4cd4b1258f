"""The crash workload: writers whose every operation is numbered, so that after a crash the
dataset says exactly which operations of each writer survived.

Writer ``w`` of round ``r`` owns the keys ``r{r}:w{w}:*`` and runs operations n = 0, 1, 2, ...
one at a time (a redis-py client with retries disabled: a retry after a lost connection would
run the operation twice).  Operation n is, by ``n % 5``: SET, INCR, RPUSH, HSET, and a
MULTI/EXEC of RPUSH + INCR + SET.  ``acked`` is the number of operations whose reply arrived;
``sent`` counts the one in flight when the server died too.  After a restart the writer's
keys must equal the state after exactly ``acked`` or exactly ``sent`` operations: nothing
acknowledged lost, nothing never sent present, no holes, transactions whole.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

KINDS = 5


def no_retry_client(port: int, **kwargs: Any) -> redis.Redis:
    kwargs.setdefault("socket_timeout", 30)
    return redis.Redis(host="127.0.0.1", port=port, protocol=2, retry=Retry(NoBackoff(), 0),
                       retry_on_error=[], **kwargs)


def wait_loaded(server: Any, timeout: float = 60) -> None:
    """Until INFO says loading:0 (PING is answered while loading); ``server`` is a
    ``servers.ServerProcess``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}")
        try:
            client = no_retry_client(server.port, socket_timeout=5)
            try:
                if client.info("persistence")["loading"] == 0:
                    return
            finally:
                client.close()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass
        time.sleep(0.02)
    raise TimeoutError("server did not finish loading")


def preload(port: int, keys: int) -> None:
    """Data that makes a rewrite take a moment, so kills land during rewrites too."""
    client = no_retry_client(port)
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, keys, 1000):
            pipe.mset({f"pre:{i}": f"value:{i}" for i in range(start, start + 1000)})
        pipe.execute()
    client.close()


def expected_state(prefix: str, operations: int) -> dict[str, Any]:
    """The writer's keys after its first ``operations`` operations, as redis-py reads them."""
    state: dict[str, Any] = {}
    counter = 0
    items: list[bytes] = []
    fields: dict[bytes, bytes] = {}
    tx_items: list[bytes] = []
    for n in range(operations):
        kind = n % KINDS
        if kind == 0:
            state[f"{prefix}:s"] = b"%d" % n
        elif kind == 1:
            counter += 1
        elif kind == 2:
            items.append(b"%d" % n)
        elif kind == 3:
            fields[b"f%d" % n] = b"%d" % n
        else:
            tx_items.append(b"%d" % n)
            state[f"{prefix}:txlast"] = b"%d" % n
    if counter:
        state[f"{prefix}:counter"] = b"%d" % counter
    if items:
        state[f"{prefix}:list"] = items
    if fields:
        state[f"{prefix}:hash"] = fields
    if tx_items:
        state[f"{prefix}:txlist"] = tx_items
        state[f"{prefix}:txcount"] = b"%d" % len(tx_items)
    return state


def read_state(client: redis.Redis, prefix: str) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name in ("s", "counter", "txlast", "txcount"):
        value = client.get(f"{prefix}:{name}")
        if value is not None:
            state[f"{prefix}:{name}"] = value
    for name in ("list", "txlist"):
        value = client.lrange(f"{prefix}:{name}", 0, -1)
        if value:
            state[f"{prefix}:{name}"] = value
    fields = client.hgetall(f"{prefix}:hash")
    if fields:
        state[f"{prefix}:hash"] = fields
    return state


def applied_operations(state: dict[str, Any], prefix: str) -> int:
    """How many operations the state shows applied (to count losses and phantoms)."""
    return (len(state.get(f"{prefix}:list", [])) + len(state.get(f"{prefix}:hash", {}))
            + len(state.get(f"{prefix}:txlist", []))
            + int(state.get(f"{prefix}:counter", b"0"))
            + (int(state[f"{prefix}:s"]) // KINDS + 1 if f"{prefix}:s" in state else 0))


class Writer(threading.Thread):
    def __init__(self, port: int, prefix: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client = no_retry_client(port)
        self.prefix = prefix
        self.stop = stop
        self.acked = 0
        self.sent = 0
        self.ack_times: list[float] = []  # time.monotonic() when each reply arrived
        self.error: BaseException | None = None

    def run(self) -> None:
        client, prefix = self.client, self.prefix
        try:
            while not self.stop.is_set():
                n = self.acked
                self.sent = n + 1
                kind = n % KINDS
                if kind == 0:
                    client.set(f"{prefix}:s", n)
                elif kind == 1:
                    client.incr(f"{prefix}:counter")
                elif kind == 2:
                    client.rpush(f"{prefix}:list", n)
                elif kind == 3:
                    client.hset(f"{prefix}:hash", f"f{n}", n)
                else:
                    with client.pipeline(transaction=True) as pipe:
                        pipe.rpush(f"{prefix}:txlist", n).incr(f"{prefix}:txcount")
                        pipe.set(f"{prefix}:txlast", n)
                        pipe.execute()
                self.ack_times.append(time.monotonic())
                self.acked = n + 1
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass  # the server died: operation ``sent - 1`` is in doubt
        except BaseException as error:
            self.error = error
        finally:
            self.client.close()


@dataclass
class Verdict:
    acked: int = 0
    lost: int = 0
    phantom: int = 0
    mismatches: list[str] | None = None

    def add(self, other: Verdict) -> None:
        self.acked += other.acked
        self.lost += other.lost
        self.phantom += other.phantom
        self.mismatches = (self.mismatches or []) + (other.mismatches or [])


def verify(client: redis.Redis, prefix: str, acked: int, sent: int) -> tuple[Verdict, int]:
    """Check one writer's keys; the verdict and the number of operations found applied."""
    state = read_state(client, prefix)
    for operations in {acked, sent}:
        if state == expected_state(prefix, operations):
            return Verdict(acked=acked, mismatches=[]), operations
    applied = applied_operations(state, prefix)
    return (Verdict(acked=acked, lost=max(0, acked - applied), phantom=max(0, applied - sent),
                    mismatches=[f"{prefix}: acked={acked} sent={sent} found={state!r}"[:2000]]),
            -1)


def surviving_prefix(client: redis.Redis, prefix: str, sent: int) -> int | None:
    """The k such that the writer's keys equal its state after its first k operations, or
    None when they match no prefix (a hole, a half transaction, a phantom)."""
    state = read_state(client, prefix)
    guess = applied_operations(state, prefix)
    for operations in sorted(range(max(0, guess - 6), min(sent, guess + 6) + 1),
                             key=lambda k: abs(k - guess)):
        if state == expected_state(prefix, operations):
            return operations
    return None
