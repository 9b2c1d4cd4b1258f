#!/usr/bin/env python3
"""Bounded load test (issue 6, point 5): `python3 bench/load.py` (see --help).

A trioredis server is started as a subprocess on 127.0.0.1 (``appendonly yes``, fsync
``everysec``, a preloaded dataset so that a rewrite takes a while), with its open-file limit
raised.  Then, from one asyncio client process (raw sockets, hiredis to parse replies):

1. ``--idle`` connections (default 5,000) are opened and each answers one PING; they then stay
   open and silent for the whole run;
2. BGREWRITEAOF is started, and started again each time one finishes, so a rewrite child runs
   during (nearly) the whole load;
3. ``--active`` connections (default 1,000) each run ``--ops`` requests (default 100) one at a
   time: GET 50 %, SET 30 %, INCR 10 %, LPUSH+LTRIM-free RPUSH 5 %, HGET/HSET 5 %, on 10,000
   keys;
4. at the end every idle connection is PINGed again.

Reported: connections held (idle ones still answering, plus active ones that finished), error
replies, dropped connections, latency p50/p99/p99.9/max of the active requests, throughput,
rewrites completed during the load, and the server's RSS (sampled every 50 ms, plus the
kernel's peak VmHWM) and the largest RSS seen of a rewrite child.  Latency here is the time from
writing a request to parsing its reply, measured in the client, so it includes the client's own
event-loop delay (one Python process driving 6,000 sockets on a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time

import hiredis

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from servers import ServerProcess  # noqa: E402

HOST = "127.0.0.1"  # never anything else
KEYS = 10_000


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def encode(*argv: bytes | str | int) -> bytes:
    parts = [b"*%d\r\n" % len(argv)]
    for arg in argv:
        if not isinstance(arg, bytes):
            arg = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(word) for word in handle.read().split()]
        except OSError:
            pass
    return found


class Connection:
    """One socket with a hiredis reader: send a request, await its one reply."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = hiredis.Reader()

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
        return cls(reader, writer)

    async def call(self, request: bytes):
        self.writer.write(request)
        while True:
            reply = self.parser.gets()
            if reply is not False:
                return reply
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionResetError("server closed the connection")
            self.parser.feed(data)

    def close(self) -> None:
        self.writer.close()


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.dropped = 0
        self.finished_active = 0

    def error(self, text: str) -> None:
        self.errors[text[:80]] = self.errors.get(text[:80], 0) + 1


def request_for(rng: random.Random, index: int, op: int) -> bytes:
    key = rng.randrange(KEYS)
    roll = rng.random()
    if roll < 0.50:
        return encode(b"GET", b"load:s:%d" % key)
    if roll < 0.80:
        return encode(b"SET", b"load:s:%d" % key, b"v%d:%d" % (index, op))
    if roll < 0.90:
        return encode(b"INCR", b"load:n:%d" % (key % 1000))
    if roll < 0.95:
        return encode(b"RPUSH", b"load:l:%d" % (key % 100), b"%d:%d" % (index, op))
    if roll < 0.975:
        return encode(b"HSET", b"load:h:%d" % (key % 100), b"f%d" % (key % 50), op)
    return encode(b"HGET", b"load:h:%d" % (key % 100), b"f%d" % (key % 50))


async def active_client(port: int, index: int, ops: int, stats: Stats, seed: int) -> None:
    rng = random.Random(seed * 100_003 + index)
    try:
        connection = await Connection.open(port)
    except OSError as error:
        stats.dropped += 1
        stats.error(f"connect: {error}")
        return
    clock = time.perf_counter
    try:
        for op in range(ops):
            request = request_for(rng, index, op)
            started = clock()
            reply = await connection.call(request)
            stats.latencies.append(clock() - started)
            if isinstance(reply, hiredis.ReplyError):
                stats.error(str(reply))
        stats.finished_active += 1
    except (OSError, ConnectionError):
        stats.dropped += 1
    finally:
        connection.close()


async def open_idle(port: int, count: int, stats: Stats) -> list[Connection]:
    """Open ``count`` connections in batches; each answers one PING before it counts as held."""
    held: list[Connection] = []

    async def one() -> None:
        try:
            connection = await Connection.open(port)
            reply = await connection.call(b"PING\r\n")
        except OSError as error:
            stats.dropped += 1
            stats.error(f"idle connect: {error}")
            return
        if reply != b"PONG":
            stats.error(f"idle ping: {reply!r}")
        held.append(connection)

    for start in range(0, count, 250):
        await asyncio.gather(*(one() for _ in range(min(250, count - start))))
    return held


async def ping_all(held: list[Connection], stats: Stats) -> int:
    alive = 0

    async def one(connection: Connection) -> None:
        nonlocal alive
        try:
            reply = await asyncio.wait_for(connection.call(b"PING\r\n"), 30)
        except (TimeoutError, OSError, ConnectionError):
            stats.dropped += 1
            return
        if reply == b"PONG":
            alive += 1
        else:
            stats.error(f"idle ping: {reply!r}")

    for start in range(0, len(held), 500):
        await asyncio.gather(*(one(c) for c in held[start:start + 500]))
    return alive


async def keep_rewriting(port: int, done: asyncio.Event, figures: dict) -> None:
    """BGREWRITEAOF, and again each time the previous one finished, until the load is done."""
    control = await Connection.open(port)
    started = completed = 0
    try:
        while not done.is_set():
            info = await control.call(encode(b"INFO", b"persistence"))
            fields = dict(line.split(":", 1) for line in info.decode().split("\r\n")
                          if ":" in line)
            if fields.get("aof_rewrite_in_progress") == "0":
                if started:
                    completed += 1
                    figures["rewrite_status"] = fields.get("aof_last_bgrewrite_status")
                reply = await control.call(encode(b"BGREWRITEAOF"))
                if not isinstance(reply, hiredis.ReplyError):
                    started += 1
            await asyncio.sleep(0.05)
        info = await control.call(encode(b"INFO", b"persistence"))
        figures["rewrite_in_progress_at_end"] = b"aof_rewrite_in_progress:1" in info
    finally:
        control.close()
    figures["rewrites_started"] = started
    figures["rewrites_completed"] = completed


async def sample_rss(pid: int, done: asyncio.Event, figures: dict) -> None:
    peak = child_peak = samples = with_child = 0
    while not done.is_set():
        peak = max(peak, rss_kib(pid))
        children = children_of(pid)
        samples += 1
        with_child += bool(children)
        for child in children:
            child_peak = max(child_peak, rss_kib(child))
        await asyncio.sleep(0.05)
    figures["rewrite_child_present_fraction"] = round(with_child / max(samples, 1), 2)
    figures["server_rss_peak_sampled_mib"] = round(peak / 1024, 1)
    figures["rewrite_child_rss_peak_sampled_mib"] = round(child_peak / 1024, 1)


async def preload(port: int, keys: int) -> None:
    connection = await Connection.open(port)
    try:
        for start in range(0, keys, 1000):
            argv: list[bytes] = [b"MSET"]
            for i in range(start, min(keys, start + 1000)):
                argv += [b"pre:%d" % i, b"value:%d" % i]
            await connection.call(encode(*argv))
    finally:
        connection.close()


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


async def run(args: argparse.Namespace, server: ServerProcess) -> dict:
    pid = server.process.pid
    stats = Stats()
    figures: dict = {"active": args.active, "ops_per_active": args.ops, "idle": args.idle}
    await preload(server.port, args.preload)
    figures["server_rss_after_preload_mib"] = round(rss_kib(pid) / 1024, 1)
    done = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(pid, done, figures))
    opened = time.perf_counter()
    held = await open_idle(server.port, args.idle, stats)
    figures["idle_opened"] = len(held)
    figures["idle_open_seconds"] = round(time.perf_counter() - opened, 2)
    rewriter = asyncio.create_task(keep_rewriting(server.port, done, figures))
    await asyncio.sleep(0.2)  # the first rewrite child is running
    started = time.perf_counter()
    await asyncio.gather(*(active_client(server.port, i, args.ops, stats, args.seed)
                           for i in range(args.active)))
    elapsed = time.perf_counter() - started
    done.set()
    await rewriter
    await sampler
    alive = await ping_all(held, stats)
    for connection in held:
        connection.close()
    latencies = sorted(stats.latencies)
    figures.update({
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed),
        "active_finished": stats.finished_active,
        "idle_alive_at_end": alive,
        "connections_held": alive + stats.finished_active,
        "error_replies": sum(v for k, v in stats.errors.items() if not k.startswith(
            ("connect", "idle"))),
        "errors": stats.errors,
        "dropped_connections": stats.dropped,
        "latency_ms_p50": round(percentile(latencies, 0.50) * 1000, 2),
        "latency_ms_p99": round(percentile(latencies, 0.99) * 1000, 2),
        "latency_ms_p999": round(percentile(latencies, 0.999) * 1000, 2),
        "latency_ms_max": round(latencies[-1] * 1000, 2) if latencies else 0.0,
        "server_vmhwm_mib": round(rss_kib(pid, "VmHWM") / 1024, 1),
    })
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--active", type=int, default=1000)
    parser.add_argument("--ops", type=int, default=100, help="requests per active connection")
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--preload", type=int, default=300_000,
                        help="keys written first, so that each rewrite takes a while")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    wanted = args.active + args.idle + 1000
    client_limit = raise_nofile(wanted)
    if client_limit < args.active + args.idle + 50:
        parser.error(f"open-file limit {client_limit} is too low for "
                     f"{args.active + args.idle} connections")

    def server_limits() -> None:
        raise_nofile(wanted + args.active + args.idle)

    directory = tempfile.mkdtemp(prefix="trioredis-load-")
    server = ServerProcess(directory, [["appendonly", "yes"], ["appendfsync", "everysec"],
                                       ["save", ""], ["auto-aof-rewrite-percentage", "0"],
                                       ["maxclients", "10000"]],
                           preexec_fn=server_limits)
    server.start()
    try:
        figures = asyncio.run(run(args, server))
        client = server.client()
        figures["server_info_connected_clients_after"] = client.info("clients")[
            "connected_clients"]
        figures["rejected_connections"] = client.info("stats")["rejected_connections"]
        client.close()
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key}: {value}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    bad = figures["error_replies"] or figures["dropped_connections"] or (
        figures["connections_held"] != args.active + args.idle)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
