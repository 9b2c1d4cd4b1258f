"""``make bench``: trioredis beside Debian's redis-server, in one run, as ratios.

Why ratios and interleaving: the machine this runs on is small and shared, so absolute numbers
drift by tens of percent between minutes.  Each measurement runs Redis then trioredis (A B A B)
with the same persistence settings and the same ``redis-benchmark`` arguments, repeated
``--rounds`` times; the table quotes medians and the ratio trioredis / Redis of the medians.

Sections:

- throughput (and p50/p99 latency) per test, ``-c 50 -P 1``, ``-c 50 -P 16``, ``-c 1 -P 1``,
  under ``appendonly no``, ``appendfsync everysec`` and ``appendfsync always``;
- single commands with their own data, ``-c 50 -P 1`` under ``appendonly no``: SETBIT at
  random keys, BITCOUNT of a 1 MB string, SORT of 10,000 numbers, PFADD, PFCOUNT of 3 dense
  HLLs, GEOADD, GEOSEARCH of ~100 places, WAIT, COMMAND DOCS, CLIENT
  TRACKING/TRACKINGINFO/PAUSE/UNPAUSE, SET while evicting under ``maxmemory``
  (``COMMAND_ROWS``);
- AOF replay of a 1,000,000-key AOF (the same plain RESP bytes for both, generated once into
  ``bench/data/``): seconds from process start until PING answers PONG and INFO says
  ``loading:0``;
- memory per key for those 1,000,000 small strings (process RSS after loading minus RSS of
  the empty server, from /proc, the figure Redis reports as ``used_memory_rss``);
- DUMP and RESTORE of a 10,000-member sorted set, requests per second;
- with ``--only rdb`` (not in the default run): SAVE and start-up load of a 1,000,000-key
  ``dump.rdb``;
- PUBLISH throughput with no pattern subscriptions and with 10,000 (``pubsub``);
- ``appendfsync always`` with 25 writers (SET) and 25 readers (GET) of the same keys at once,
  ops/s and commands per fsync (fsyncs counted by strace) beside Redis's (``mixed``);
- with ``--only replication`` (not in the default run): full sync of 1,000,000 keys to a
  redis-server replica, and SET throughput on a master with that replica attached and alone.

A command our server does not have yet shows ``n/a`` (probed before the run), as does a
persistence mode the server refuses to start with.

Usage: ``python bench/run.py [--quick] [--rounds N] [--only SECTION,...] [--no-write]``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_BENCHMARK = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"

# redis-benchmark test name -> (the -t name, a probe command to see whether the server has it)
TESTS: dict[str, tuple[str, list[bytes]]] = {
    "SET": ("set", [b"SET", b"bench:probe", b"1"]),
    "GET": ("get", [b"GET", b"bench:probe"]),
    "INCR": ("incr", [b"INCR", b"bench:probe:n"]),
    "LPUSH": ("lpush", [b"LPUSH", b"bench:probe:l", b"x"]),
    "RPOP": ("rpop", [b"RPOP", b"bench:probe:l"]),
    "SADD": ("sadd", [b"SADD", b"bench:probe:s", b"x"]),
    "HSET": ("hset", [b"HSET", b"bench:probe:h", b"f", b"v"]),
    "ZADD": ("zadd", [b"ZADD", b"bench:probe:z", b"1", b"x"]),
    "MSET": ("mset", [b"MSET", b"bench:probe:a", b"1", b"bench:probe:b", b"2"]),
}

# Rows that run an arbitrary command (``redis-benchmark ... <command>``): test name ->
# (commands sent first, whose error reply means the server lacks it; the command).
SCRIPT_INCR = b"return redis.call('INCR', KEYS[1])"
SCRIPT_TEN = (b"redis.call('SET', KEYS[1], ARGV[1]) redis.call('GET', KEYS[1]) "
              b"redis.call('INCR', KEYS[2]) redis.call('INCR', KEYS[2]) "
              b"redis.call('HSET', KEYS[3], 'f', ARGV[1]) redis.call('HGET', KEYS[3], 'f') "
              b"redis.call('LPUSH', KEYS[4], ARGV[1]) redis.call('RPOP', KEYS[4]) "
              b"redis.call('EXISTS', KEYS[1]) return redis.call('GET', KEYS[2])")
CUSTOM: dict[str, tuple[list[list[bytes]], list[bytes]]] = {
    "EVALSHA_INCR": ([[b"SCRIPT", b"LOAD", SCRIPT_INCR]],
                     [b"EVALSHA", hashlib.sha1(SCRIPT_INCR).hexdigest().encode(), b"1",
                      b"bench:lua:n"]),
    "EVALSHA_10CMD": ([[b"SCRIPT", b"LOAD", SCRIPT_TEN]],
                      [b"EVALSHA", hashlib.sha1(SCRIPT_TEN).hexdigest().encode(), b"4",
                       b"bench:lua:s", b"bench:lua:n", b"bench:lua:h", b"bench:lua:l", b"v"]),
    # Sharded Pub/Sub with no subscriber: the publish path itself.
    "SPUBLISH": ([[b"SPUBLISH", b"bench:shard", b"probe"]],
                 [b"SPUBLISH", b"bench:shard", b"hello"]),
}

# Rows for commands redis-benchmark has no -t test for: name -> (the command line it runs,
# setup that prepares the data, a divisor of the shape's request count for heavy commands).
# XREADGROUP reads one new entry per call from a stream filled with enough explicit IDs
# (1-0, 2-0, ...); XACK then acknowledges random ones of them (``__rand_int__`` read as an
# ID is ``<n>-0``), most of which that XREADGROUP run made pending.
STREAM_FILL = "stream-fill"
STREAM_TESTS: dict[str, tuple[list[str], list[list[bytes]], int]] = {
    "XADD": (["XADD", "bench:xadd", "*", "field", "value"], [], 1),
    "XRANGE_100": (["XRANGE", "bench:xrange", "-", "+", "COUNT", "100"],
                   [[b"XADD", b"bench:xrange", b"*", b"field", b"value%d" % i] for i in range(100)],
                   8),
    "XREADGROUP": (["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "bench:xg", ">"],
                   [[STREAM_FILL.encode()]], 1),
    "XACK": (["XACK", "bench:xg", "g", "__rand_int__"], [], 1),
}

PERSISTENCE: dict[str, list[str]] = {
    "appendonly no": ["--appendonly", "no"],
    "appendfsync everysec": ["--appendonly", "yes", "--appendfsync", "everysec"],
    "appendfsync always": ["--appendonly", "yes", "--appendfsync", "always"],
}


@dataclass
class Shape:
    """One redis-benchmark load shape, and requests per test for each server so that every
    run lasts about a second (Redis is several times faster: the same -n would make its runs
    too short to time, or ours too long for the 10-minute budget).  The rate is what is
    compared; connection set-up is amortised either way."""

    name: str
    clients: int
    pipeline: int
    requests: dict[str, int]

    def requests_for(self, kind: str, quick: bool, persistence: str) -> int:
        # Under appendfsync always every write waits for the disk (~10k fsync/s here).
        divisor = (4 if quick else 1) * (8 if persistence == "appendfsync always" else 1)
        return self.requests[kind] // divisor


SHAPES = [
    Shape("-c 50 -P 1", 50, 1, {"redis": 150_000, "trio": 80_000}),
    Shape("-c 50 -P 16", 50, 16, {"redis": 1_000_000, "trio": 250_000}),
    Shape("-c 1 -P 1", 1, 1, {"redis": 60_000, "trio": 25_000}),
]

# (persistence, shape names) measured: durability modes only where they matter.
MATRIX: list[tuple[str, list[str]]] = [
    ("appendonly no", ["-c 50 -P 1", "-c 50 -P 16", "-c 1 -P 1"]),
    ("appendfsync everysec", ["-c 50 -P 1", "-c 50 -P 16"]),
    ("appendfsync always", ["-c 50 -P 1", "-c 50 -P 16"]),
]


# --- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(port: int, *argv: bytes, timeout: float = 5.0) -> bytes:
    """One request over a fresh connection; the raw reply bytes (enough for PING/INFO/probes)."""
    payload = b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in argv)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        data = sock.recv(65536)
        if data.startswith(b"$") and not data.startswith(b"$-1"):
            length = int(data[1 : data.index(b"\r\n")])
            header = data.index(b"\r\n") + 2
            while len(data) < header + length + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data


def info_field(port: int, name: str) -> str | None:
    reply = command(port, b"INFO")
    for line in reply.decode(errors="replace").splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, as Redis's used_memory_rss (RSS from /proc)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Server:
    """A server process (redis-server or trioredis) in its own scratch directory."""

    def __init__(self, kind: str, directory: Path, options: list[str],
                 environment: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.directory = directory
        self.options = options
        self.environment = environment  # None: this process's (bench/ab.py sets PYTHONPATH)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def argv(self) -> list[str]:
        common = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                  "--save", ""]
        if self.kind == "redis":
            return [REDIS_SERVER, *common, "--daemonize", "no", *self.options]
        return [sys.executable, "-m", "trioredis", *common, *self.options]

    def start(self, wait: bool = True) -> bool:
        """Start it; with ``wait``, True once PING answers (False if it exits or hangs)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = open(self.directory / f"{self.kind}.log", "ab")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(self.argv(), stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=self.directory, env=self.environment)
        if not wait:
            return True
        return self.wait_ready(timeout=30) is not None

    def wait_ready(self, timeout: float, loaded: bool = False) -> float | None:
        """Seconds from start until PING answers PONG (and, with ``loaded``, INFO says
        loading:0); None when the process died or the time ran out."""
        assert self.process is not None
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                return None
            try:
                if command(self.port, b"PING", timeout=2).startswith(b"+PONG") and (
                    not loaded or info_field(self.port, "loading") == "0"
                ):
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.005)
        return None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                command(self.port, b"SHUTDOWN", b"NOSAVE", timeout=2)
            except OSError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.log.close()

    def version(self) -> str:
        if self.kind == "redis":
            out = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True)
            return out.stdout.strip().split(" sha=")[0]
        out = subprocess.run([sys.executable, "-m", "trioredis", "--version"],
                             capture_output=True, text=True)
        return out.stdout.strip()


# --- redis-benchmark -----------------------------------------------------------------------


@dataclass
class Sample:
    rps: float
    p50: float
    p99: float


def run_benchmark(port: int, tests: list[str], shape: Shape, requests: int) -> dict[str, Sample]:
    """One redis-benchmark invocation over ``tests``; {test: Sample} parsed from --csv."""
    argv = [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", str(shape.clients),
            "-P", str(shape.pipeline), "-n", str(requests), "-t", ",".join(tests), "--csv"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    samples: dict[str, Sample] = {}
    for line in out.stdout.splitlines():
        cells = [cell.strip('"') for cell in line.split('","')]
        if len(cells) < 7 or cells[0] == "test":
            continue
        name = cells[0].split(" ")[0]  # "MSET (10 keys)" -> "MSET"
        try:
            samples[name] = Sample(float(cells[1]), float(cells[4]), float(cells[6]))
        except ValueError:
            continue
    return samples


def pipelined(port: int, argvs: list[list[bytes]]) -> None:
    """Send many commands on one connection and wait until all ran (setup of stream rows):
    a PING goes last and its PONG ends the replies."""
    argvs = [*argvs, [b"PING"]]
    payload = b"".join(b"*%d\r\n" % len(argv) + b"".join(
        b"$%d\r\n%b\r\n" % (len(a), a) for a in argv) for argv in argvs)
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        sock.sendall(payload)
        tail = b""
        while not tail.endswith(b"+PONG\r\n"):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            tail = (tail + chunk)[-16:]


def run_stream_test(port: int, name: str, shape: Shape, requests: int) -> dict[str, Sample]:
    """One redis-benchmark run of a STREAM_TESTS row (after its setup)."""
    line, setup, divisor = STREAM_TESTS[name]
    requests = max(requests // divisor, 1000)
    for argv in setup:
        if argv == [STREAM_FILL.encode()]:
            fill = [[b"XADD", b"bench:xg", b"%d-0" % i, b"field", b"value"]
                    for i in range(1, requests + 2)]
            for start in range(0, len(fill), 10_000):
                pipelined(port, fill[start : start + 10_000])
            command(port, b"XGROUP", b"CREATE", b"bench:xg", b"g", b"0")
        else:
            command(port, *argv)
    argv = [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", str(shape.clients),
            "-P", str(shape.pipeline), "-n", str(requests), "-r", str(requests), "--csv", *line]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    for row in out.stdout.splitlines():
        cells = [cell.strip('"') for cell in row.split('","')]
        if len(cells) < 7 or cells[0] == "test":
            continue
        try:
            return {name: Sample(float(cells[1]), float(cells[4]), float(cells[6]))}
        except ValueError:
            continue
    return {}


def run_custom(port: int, tests: list[str], shape: Shape, requests: int) -> dict[str, Sample]:
    """redis-benchmark once per CUSTOM test (its setup commands sent first)."""
    samples: dict[str, Sample] = {}
    for test in tests:
        setup, argv = CUSTOM[test]
        for setup_argv in setup:
            command(port, *setup_argv)
        run = [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", str(shape.clients),
               "-P", str(shape.pipeline), "-n", str(requests), "--csv",
               *[arg.decode() for arg in argv]]
        out = subprocess.run(run, capture_output=True, text=True, timeout=600)
        for line in out.stdout.splitlines():
            cells = [cell.strip('"') for cell in line.split('","')]
            if len(cells) < 7 or cells[0] == "test":
                continue
            try:
                samples[test] = Sample(float(cells[1]), float(cells[4]), float(cells[6]))
            except ValueError:
                continue
    return samples


def supported_tests(port: int) -> set[str]:
    """Tests whose command the server knows (an unknown command is n/a, not a number)."""
    have = set()
    for name, (_, probe) in TESTS.items():
        reply = command(port, *probe)
        if not reply.startswith(b"-ERR unknown command"):
            have.add(name)
    for name, (setup, _argv) in CUSTOM.items():
        if not any(command(port, *argv).startswith(b"-") for argv in setup):
            have.add(name)
    for name, (line, _setup, _divisor) in STREAM_TESTS.items():
        if not command(port, b"COMMAND", b"INFO", line[0].encode()).startswith(b"*1\r\n*-1"):
            have.add(name)
    command(port, b"FLUSHALL")
    return have


@dataclass
class Cell:
    """The samples of one (persistence, shape, test) for both servers."""

    redis: list[Sample] = field(default_factory=list)
    trio: list[Sample] = field(default_factory=list)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def throughput_section(args: argparse.Namespace, scratch: Path, log: Callable[[str], None]) -> tuple[list[str], dict]:
    """Run the matrix; the Markdown lines of the table and the raw medians."""
    shapes = {shape.name: shape for shape in SHAPES}
    lines: list[str] = []
    raw: dict = {}
    for persistence, shape_names in MATRIX:
        if args.modes and persistence not in args.modes.split(","):
            continue
        if args.shapes:
            shape_names = [name for name in shape_names if name in args.shapes.split(",")]
        if args.quick and persistence != "appendonly no":
            shape_names = shape_names[:1]
        options = PERSISTENCE[persistence]
        redis = Server("redis", scratch / "redis-tp", options)
        trio = Server("trio", scratch / "trio-tp", options)
        redis_ok = redis.start()
        trio_ok = trio.start()
        if not redis_ok:
            raise SystemExit(f"redis-server did not start with {persistence}; see {redis.directory}")
        trio_tests = supported_tests(trio.port) if trio_ok else set()
        if not trio_ok:
            log(f"trioredis does not start with {persistence}: n/a")
        tests = list(TESTS) + list(CUSTOM) + list(STREAM_TESTS)
        cells: dict[tuple[str, str], Cell] = {}
        try:
            for shape_name in shape_names:
                shape = shapes[shape_name]
                for round_number in range(args.rounds):
                    log(f"{persistence} {shape_name} round {round_number + 1}/{args.rounds}")
                    for who, server, wanted in (("redis", redis, tests),
                                                ("trio", trio, [t for t in tests if t in trio_tests])):
                        if not wanted:
                            continue
                        flags = [TESTS[t][0] for t in wanted if t in TESTS]
                        requests = shape.requests_for(who, args.quick, persistence)
                        got = run_benchmark(server.port, flags, shape, requests)
                        got.update(run_custom(server.port, [t for t in wanted if t in CUSTOM],
                                              shape, requests))
                        command(server.port, b"FLUSHALL")
                        for custom in [t for t in wanted if t in STREAM_TESTS]:
                            got.update(run_stream_test(server.port, custom, shape, requests))
                            if custom != "XREADGROUP":  # XACK runs on what it left pending
                                command(server.port, b"FLUSHALL")
                        for test, sample in got.items():
                            getattr(cells.setdefault((shape_name, test), Cell()), who).append(sample)
        finally:
            redis.stop()
            trio.stop()
            shutil.rmtree(scratch / "redis-tp", ignore_errors=True)
            shutil.rmtree(scratch / "trio-tp", ignore_errors=True)
        lines += [f"### {persistence}", ""]
        for shape_name in shape_names:
            latency = shape_name == "-c 1 -P 1"
            head = "| test | Redis ops/s | trioredis ops/s | ratio |"
            rule = "|---|---:|---:|---:|"
            if latency:
                head += " Redis p50/p99 ms | trioredis p50/p99 ms |"
                rule += "---:|---:|"
            lines += [f"`{shape_name}`:", "", head, rule]
            ratios = []
            for test in tests:
                cell = cells.get((shape_name, test), Cell())
                r = median([s.rps for s in cell.redis])
                t = median([s.rps for s in cell.trio])
                ratio = t / r if r and t else None
                if ratio:
                    ratios.append(ratio)
                raw[(persistence, shape_name, test)] = (r, t)
                row = f"| {test} | {_num(r)} | {_num(t)} | {_ratio(ratio)} |"
                if latency:
                    row += (f" {_lat(cell.redis)} | {_lat(cell.trio)} |")
                lines.append(row)
            geo = statistics.geometric_mean(ratios) if ratios else None
            raw[(persistence, shape_name, "geomean")] = geo
            lines += [f"| **geomean** | | | **{_ratio(geo)}** |" + (" | |" if latency else ""), ""]
            log(f"  {persistence} {shape_name}: geomean ratio {_ratio(geo)}")
    return lines, raw


# --- appendfsync always, readers and writers at once ----------------------------------------

# Issue #20: under ``always`` a reply that reveals a write waits for its fsync, so readers of
# the written keys wait too.  Writers (SET) and readers (GET) of the same random keys run at
# once, two redis-benchmark processes against one server, and each server runs under strace
# counting its fdatasync calls (``--seccomp-bpf``: only those calls stop the process), which
# gives the commands each fsync covered, the batching that group commit is about.
MIXED_KEYS = 10_000  # -r: both sides pick from the same keys
MIXED_CLIENTS = {"writers": 25, "readers": 25}
MIXED_REQUESTS = {"redis": 60_000, "trio": 40_000}  # per side; about 1-2 s each
STRACE = shutil.which("strace")


class TracedServer(Server):
    """A server whose fsync and fdatasync calls strace counts (when strace is installed)."""

    def argv(self) -> list[str]:
        argv = super().argv()
        if STRACE is None:
            return argv
        # -w: wall-clock time per call (how long a caller waited), not system CPU time.
        return [STRACE, "-f", "-qq", "--seccomp-bpf", "-e", "trace=fdatasync,fsync", "-c", "-w",
                "-o", str(self.directory / "fsyncs.txt"), *argv]

    def fsyncs(self) -> tuple[int, float] | None:
        """fsync + fdatasync calls of the process and its children, and their mean wall time
        in microseconds (after stop())."""
        try:
            text = (self.directory / "fsyncs.txt").read_text()
        except OSError:
            return None
        calls, seconds = 0, 0.0
        for line in text.splitlines():
            words = line.split()
            if words and words[-1] in ("fsync", "fdatasync") and len(words) >= 4:
                calls += int(words[3])
                seconds += float(words[1])
        return (calls, seconds * 1e6 / calls) if calls else None


def run_mixed(port: int, requests: int) -> tuple[Sample | None, Sample | None]:
    """Writers and readers at once; each side's Sample."""
    procs = {}
    for side, test in (("writers", "set"), ("readers", "get")):
        argv = [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c",
                str(MIXED_CLIENTS[side]), "-n", str(requests), "-r", str(MIXED_KEYS), "-t", test,
                "--csv"]
        procs[side] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       text=True)
    samples: dict[str, Sample | None] = {}
    for side, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        samples[side] = None
        for line in out.splitlines()[1:]:
            cells = [cell.strip('"') for cell in line.split('","')]
            try:
                samples[side] = Sample(float(cells[1]), float(cells[4]), float(cells[6]))
            except (IndexError, ValueError):
                continue
    return samples["writers"], samples["readers"]


def mixed_section(args: argparse.Namespace, scratch: Path, log: Callable[[str], None]) -> list[str]:
    """``appendfsync always``: 25 SET and 25 GET clients at once, per server a fresh process
    per round (strace's counts are written when it exits)."""
    options = PERSISTENCE["appendfsync always"]
    results: dict[str, list[tuple[float, float, float | None, float | None, float | None]]] = {
        "redis": [], "trio": []}
    for round_number in range(args.rounds):
        log(f"appendfsync always, writers + readers, round {round_number + 1}/{args.rounds}")
        for kind in ("redis", "trio"):
            server = TracedServer(kind, scratch / f"{kind}-mixed", options)
            requests = MIXED_REQUESTS[kind] // (4 if args.quick else 1)
            try:
                if not server.start():
                    log(f"{kind} did not start under appendfsync always: n/a")
                    continue
                writers, readers = run_mixed(server.port, requests)
            finally:
                server.stop()
            fsyncs = server.fsyncs()
            shutil.rmtree(server.directory, ignore_errors=True)
            if writers is None or readers is None:
                continue
            per_fsync = 2 * requests / fsyncs[0] if fsyncs else None
            latency = fsyncs[1] if fsyncs else None
            # fsyncs a second: over the time both sides ran (the slower side's run).
            seconds = max(requests / writers.rps, requests / readers.rps)
            rate = fsyncs[0] / seconds if fsyncs else None
            results[kind].append((writers.rps, readers.rps, per_fsync, latency, rate))

    def med(kind: str, index: int) -> float | None:
        return median([row[index] for row in results[kind] if row[index] is not None])

    lines = ["### appendfsync always, writers and readers at once", "",
             f"`redis-benchmark -c {MIXED_CLIENTS['writers']} -r {MIXED_KEYS} -t set` and "
             f"`-c {MIXED_CLIENTS['readers']} -r {MIXED_KEYS} -t get` at the same time against "
             "one server; ops/s of each side and their sum, and the commands (reads and writes) "
             "per fsync (fsync + fdatasync calls counted by strace, all threads and children).",
             "", "| | Redis | trioredis | ratio |", "|---|---:|---:|---:|"]
    for label, index in (("SET ops/s (25 writers)", 0), ("GET ops/s (25 readers)", 1)):
        r, t = med("redis", index), med("trio", index)
        lines.append(f"| {label} | {_num(r)} | {_num(t)} | {_ratio(t / r if r and t else None)} |")
    totals = {kind: median([row[0] + row[1] for row in results[kind]]) for kind in results}
    r, t = totals["redis"], totals["trio"]
    lines.append(f"| **total ops/s** | {_num(r)} | {_num(t)} | **{_ratio(t / r if r and t else None)}** |")
    for label, index in (("commands per fsync", 2), ("fsync wall time, us (strace -w)", 3),
                         ("fsyncs a second", 4)):
        r, t = med("redis", index), med("trio", index)
        lines.append(f"| {label} | {'n/a' if r is None else f'{r:,.1f}'} | "
                     f"{'n/a' if t is None else f'{t:,.1f}'} | |")
    lines.append("")
    log(f"  mixed always: total ratio {_ratio(totals['trio'] / totals['redis'] if totals['trio'] and totals['redis'] else None)}")
    return lines


# --- PUBLISH with many pattern subscriptions ------------------------------------------------

# Pattern subscriptions one idle connection holds during the PUBLISH rows (issue #12, item 10:
# without an index every PUBLISH tried every pattern, 3.5 ms each with 10,000).
PUBSUB_PATTERNS = 10_000
PUBLISH = ["PUBLISH", "user:42:inbox", "m"]
# (label, patterns held meanwhile, the command redis-benchmark sends as typed)
PUBSUB_ROWS = [
    ("PUBLISH, no patterns", 0, PUBLISH),
    (f"PUBLISH, {PUBSUB_PATTERNS:,} patterns", PUBSUB_PATTERNS, PUBLISH),
]
PUBSUB_REQUESTS = {"redis": 200_000, "trio": 40_000}


def hold_patterns(port: int, count: int) -> socket.socket:
    """A connection subscribed to ``count`` patterns ``user:<n>:*`` (none match the published
    channel but the one of n = 42), returned once the server confirmed them all."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    for start in range(0, count, 1000):
        argv = [b"PSUBSCRIBE"] + [b"user:%d:*" % n for n in range(start, min(start + 1000, count))]
        sock.sendall(b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in argv))
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    received = b""
    while b"pong\r\n" not in received[-64:].lower():  # subscribed: a bulk "pong"; else +PONG
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        received += chunk
    # Read (and drop) the pmessages from now on, as a live subscriber would: an idle one's
    # output buffer would grow and slow its server down.
    threading.Thread(target=_drain, args=(sock,), daemon=True).start()
    return sock


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(1 << 20):
            pass
    except OSError:
        pass


def run_command_benchmark(port: int, argv: list[str], clients: int, requests: int) -> Sample | None:
    """redis-benchmark running one arbitrary command; its Sample from --csv."""
    out = subprocess.run([REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
                          "-n", str(requests), "--csv", *argv], capture_output=True, text=True,
                         timeout=600)
    for line in out.stdout.splitlines()[1:]:
        cells = [cell.strip('"') for cell in line.split('","')]
        try:
            return Sample(float(cells[1]), float(cells[4]), float(cells[6]))
        except (IndexError, ValueError):
            continue
    return None


def pubsub_section(args: argparse.Namespace, scratch: Path, log: Callable[[str], None]) -> list[str]:
    lines = ["### PUBLISH with pattern subscriptions", "",
             "`redis-benchmark -c 50 PUBLISH user:42:inbox m`, while one connection holds the "
             "patterns `user:<n>:*` (one matches) and reads its pmessages.", "",
             "| test | Redis ops/s | trioredis ops/s | ratio |", "|---|---:|---:|---:|"]
    for label, patterns, argv in PUBSUB_ROWS:
        cell = Cell()
        servers = [Server(kind, scratch / f"{kind}-ps", ["--appendonly", "no"]) for kind in ("redis", "trio")]
        holders = []
        try:
            for server in servers:
                server.start()
                holders.append(hold_patterns(server.port, patterns))
            for round_number in range(args.rounds):
                log(f"{label} round {round_number + 1}/{args.rounds}")
                for server in servers:
                    requests = PUBSUB_REQUESTS[server.kind] // (4 if args.quick else 1)
                    sample = run_command_benchmark(server.port, argv, 50, requests)
                    if sample is not None:
                        getattr(cell, server.kind).append(sample)
        finally:
            for holder in holders:
                holder.close()
            for server in servers:
                server.stop()
                shutil.rmtree(server.directory, ignore_errors=True)
        r, t = median([s.rps for s in cell.redis]), median([s.rps for s in cell.trio])
        lines.append(f"| {label} | {_num(r)} | {_num(t)} | {_ratio(t / r if r and t else None)} |")
    return lines + [""]


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _lat(samples: list[Sample]) -> str:
    if not samples:
        return "n/a"
    return f"{median([s.p50 for s in samples]):.3f} / {median([s.p99 for s in samples]):.3f}"


# --- AOF replay and memory -----------------------------------------------------------------


def aof_file(keys: int) -> Path:
    """A plain-RESP AOF of ``keys`` SETs of small strings, generated once into bench/data/."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"strings-{keys}.aof"
    if path.exists():
        return path
    partial = path.with_suffix(".tmp")
    with open(partial, "wb") as handle:
        handle.write(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n")
        chunk = []
        for i in range(keys):
            key = b"key:%08d" % i
            value = b"value:%d" % i
            chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(key), key, len(value), value))
            if len(chunk) == 10000:
                handle.write(b"".join(chunk))
                chunk = []
        handle.write(b"".join(chunk))
    partial.rename(path)
    return path


UPGRADED: list[bool] = []  # Redis 7 turned the old-style file into appendonlydir/ + manifest


def load_once(
    kind: str, directory: Path, aof: Path, keys: int,
    while_loaded: Callable[[Server], None] | None = None,
) -> tuple[float | None, int | None]:
    """Start ``kind`` on a copy of ``aof`` as the old-style ``appendonly.aof`` of its dir (Redis 7
    upgrades it to a manifest); seconds until PING and loading:0, and RSS bytes after loading.
    ``while_loaded(server)`` runs before the server stops (the rewrite measurement)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    shutil.copyfile(aof, directory / "appendonly.aof")
    server = Server(kind, directory, ["--appendonly", "yes", "--appendfsync", "no",
                                      "--appendfilename", "appendonly.aof"])
    server.start(wait=False)
    try:
        seconds = server.wait_ready(timeout=300, loaded=True)
        if seconds is None:
            return None, None
        size = command(server.port, b"DBSIZE")
        if size.strip() != b":%d" % keys:
            return None, None
        assert server.process is not None
        if kind == "redis":
            manifests = list((directory / "appendonlydir").glob("*.manifest"))
            UPGRADED.append(bool(manifests))
        resident = rss_bytes(server.process.pid)
        if while_loaded is not None:
            while_loaded(server)
        return seconds, resident
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def empty_rss(kind: str, directory: Path) -> int:
    server = Server(kind, directory, ["--appendonly", "no"])
    server.start()
    try:
        assert server.process is not None
        return rss_bytes(server.process.pid)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def collections_aof(collections: int, elements: int) -> Path:
    """An AOF of ``collections`` lists of ``elements`` small elements (RPUSH of 1,000 at a time)."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"lists-{collections}x{elements}.aof"
    if path.exists():
        return path
    partial = path.with_suffix(".tmp")
    with open(partial, "wb") as handle:
        handle.write(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n")
        for number in range(collections):
            key = b"list:%d" % number
            for start in range(0, elements, 1000):
                argv = [b"RPUSH", key] + [b"element:%d" % i for i in range(start, min(start + 1000, elements))]
                handle.write(b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in argv))
    partial.rename(path)
    return path


def mixed_aof(groups: int, elements: int = 10) -> Path:
    """An AOF of ``groups`` hashes, sets and sorted sets of ``elements`` items each, every other
    key with a TTL in 2100 (PEXPIREAT): the rewrite's other collection types and expiries."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"mixed-{groups}x{elements}.aof"
    if path.exists():
        return path
    partial = path.with_suffix(".tmp")
    with open(partial, "wb") as handle:
        handle.write(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n")
        for number in range(groups):
            argvs = [
                [b"HSET", b"hash:%d" % number] + [x for i in range(elements) for x in (b"field:%d" % i, b"value:%d" % i)],
                [b"SADD", b"set:%d" % number] + [b"member:%d" % i for i in range(elements)],
                [b"ZADD", b"zset:%d" % number] + [x for i in range(elements) for x in (b"%d.5" % i, b"member:%d" % i)],
            ]
            if number % 2:
                argvs += [[b"PEXPIREAT", key, b"4102444800000"] for key in (argvs[0][1], argvs[1][1], argvs[2][1])]
            handle.write(b"".join(b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in argv)
                                  for argv in argvs))
    partial.rename(path)
    return path


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(word) for word in handle.read().split()]
    except OSError:
        return []


def private_bytes(pid: int) -> int:
    """Memory a process does not share (a forked child's copied pages): Private_* of smaps."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1]) * 1024
    except OSError:
        return 0
    return total


@dataclass
class Rewrite:
    seconds: float | None = None
    parent_peak: int = 0  # RSS
    child_peak: int = 0  # private (copied) bytes of the rewrite child
    forked: bool = False


def measure_rewrite(server: Server, result: Rewrite) -> None:
    """BGREWRITEAOF, then poll INFO until it is done, sampling the parent's RSS and the private
    memory of any child (the forked rewriter) every few milliseconds."""
    assert server.process is not None
    pid = server.process.pid
    started = time.perf_counter()
    reply = command(server.port, b"BGREWRITEAOF")
    if not reply.startswith(b"+"):
        return
    deadline = started + 300
    polls = 0
    while time.perf_counter() < deadline:
        result.parent_peak = max(result.parent_peak, rss_bytes(pid))
        for child in children(pid):
            result.forked = True
            result.child_peak = max(result.child_peak, private_bytes(child))
        polls += 1
        if polls % 4 == 0:
            if (info_field(server.port, "aof_rewrite_in_progress") == "0"
                    and info_field(server.port, "aof_rewrite_scheduled") == "0"):
                result.seconds = time.perf_counter() - started
                return
        time.sleep(0.005)


def rewrite_section(args: argparse.Namespace, scratch: Path, log: Callable[[str], None]) -> list[str]:
    keys = 100_000 if args.quick else 1_000_000
    collections, elements = (20, 10_000) if args.quick else (100, 10_000)
    cases = [(f"{keys:,} strings", aof_file(keys), keys),
             (f"{collections} lists x {elements:,}", collections_aof(collections, elements), collections)]
    groups = 10_000 if args.quick else 50_000
    cases.append((f"{groups:,} x (hash, set, zset) of 10, half with a TTL", mixed_aof(groups), 3 * groups))
    lines = [
        "### BGREWRITEAOF",
        "",
        "Wall time from BGREWRITEAOF until INFO shows no rewrite in progress or scheduled; peak "
        "RSS of the server process, and peak private (copied) memory of its rewrite child, "
        "sampled every ~5 ms from /proc.  The dataset RSS is the loaded server's RSS.",
        "",
        "| dataset | Redis s | trioredis s | ratio | Redis RSS / child MB | trioredis RSS / child MB |"
        " trioredis (RSS + child) / dataset RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, aof, count in cases:
        results: dict[str, Rewrite] = {}
        loaded_rss: dict[str, int | None] = {}
        for kind in ("redis", "trio"):
            result = results[kind] = Rewrite()
            _, loaded_rss[kind] = load_once(kind, scratch / f"{kind}-rw", aof, count,
                                            lambda server, r=result: measure_rewrite(server, r))
            log(f"  rewrite {name} {kind}: {result.seconds if result.seconds is None else round(result.seconds, 2)} s")
        r, t = results["redis"], results["trio"]
        dataset = loaded_rss["trio"]
        peak_ratio = ((t.parent_peak + t.child_peak) / dataset) if dataset and t.seconds else None
        lines.append(
            f"| {name} | {_sec(r.seconds)} | {_sec(t.seconds)} | "
            f"{_ratio(t.seconds / r.seconds if r.seconds and t.seconds else None)} | "
            f"{r.parent_peak / 1e6:.0f} / {r.child_peak / 1e6:.0f} | "
            f"{t.parent_peak / 1e6:.0f} / {t.child_peak / 1e6:.0f}"
            f"{'' if t.forked else ' (no fork seen)'} | {_ratio(peak_ratio)} |")
    return lines + [""]


def replay_section(args: argparse.Namespace, scratch: Path, log: Callable[[str], None]) -> tuple[list[str], dict]:
    keys = 100_000 if args.quick else 1_000_000
    aof = aof_file(keys)
    log(f"AOF replay of {keys:,} keys ({aof.stat().st_size / 1e6:.0f} MB)")
    times: dict[str, list[float]] = {"redis": [], "trio": []}
    rss: dict[str, list[int]] = {"redis": [], "trio": []}
    rounds = 1 if args.quick else max(2, args.rounds - 1)
    for round_number in range(rounds):
        for kind in ("redis", "trio"):
            seconds, resident = load_once(kind, scratch / f"{kind}-aof", aof, keys)
            log(f"  {kind} round {round_number + 1}: {seconds if seconds is None else round(seconds, 2)} s")
            if seconds is not None and resident is not None:
                times[kind].append(seconds)
                rss[kind].append(resident)
    base = {kind: empty_rss(kind, scratch / f"{kind}-empty") for kind in ("redis", "trio")}
    r, t = median(times["redis"]), median(times["trio"])
    per_key = {
        kind: (median(rss[kind]) - base[kind]) / keys if rss[kind] else None for kind in ("redis", "trio")
    }
    lines = [
        f"### AOF replay ({keys:,} keys, {aof.stat().st_size / 1e6:.0f} MB of plain RESP)",
        "",
        "Seconds from process start until PING answers PONG and INFO says `loading:0` (and "
        "DBSIZE is checked). Both servers read the file as the old-style `appendonly.aof` in "
        "their `dir`; Redis 7 upgraded it to `appendonlydir/` with a manifest: "
        + ("yes" if UPGRADED and all(UPGRADED) else "NO (check)") + ".",
        "",
        "| | Redis | trioredis | ratio |",
        "|---|---:|---:|---:|",
        f"| replay seconds | {_sec(r)} | {_sec(t)} | {_ratio(t / r if r and t else None)} |",
        "",
        f"### Memory ({keys:,} small strings, RSS after loading minus RSS empty)",
        "",
        "| | Redis | trioredis | ratio |",
        "|---|---:|---:|---:|",
        f"| bytes per key | {_bytes(per_key['redis'])} | {_bytes(per_key['trio'])} | "
        f"{_ratio(per_key['trio'] / per_key['redis'] if per_key['redis'] and per_key['trio'] else None)} |",
        f"| RSS empty (MB) | {base['redis'] / 1e6:.1f} | {base['trio'] / 1e6:.1f} | |",
        "",
    ]
    return lines, {"replay": (r, t), "per_key": per_key}


# --- DUMP / RESTORE -----------------------------------------------------------------------

DUMP_MEMBERS = 10_000


def _pipelined(port: int, request: bytes, count: int) -> float:
    """Seconds for ``count`` copies of one request, pipelined on one connection, until every
    reply is in (all replies of one request have the same size: the first one tells it).
    redis-benchmark cannot send a DUMP payload: argv cannot carry its NUL bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        first = b""
        while True:
            first += sock.recv(1 << 20)
            if first.startswith((b"+", b"-", b":")) and first.endswith(b"\r\n"):
                size = len(first)
                break
            if first.startswith(b"$"):
                header = first.index(b"\r\n") + 2 if b"\r\n" in first else 0
                if header:
                    size = header + int(first[1:header - 2]) + 2
                    if len(first) >= size:
                        break
        started = time.perf_counter()
        sock.sendall(request * count)
        remaining = size * count - (len(first) - size)
        while remaining > 0:
            chunk = sock.recv(1 << 22)
            if not chunk:
                raise OSError("connection closed")
            remaining -= len(chunk)
        return time.perf_counter() - started


def dump_section(args: argparse.Namespace, scratch: Path, log: Callable[[str], None]) -> list[str]:
    """DUMP and RESTORE ... REPLACE of a 10,000-member sorted set (a skiplist: each member
    and its binary score), requests per second, both servers alternating."""
    count = 20 if args.quick else 100
    members = [b"%d" % (i * 7919 % 100_003) for i in range(DUMP_MEMBERS)]
    zadd = [b"ZADD", b"bench:zset"]
    for index, member in enumerate(members):
        zadd += [b"%d.%d" % (index, index % 7), b"member:" + member]
    rates: dict[str, dict[str, list[float]]] = {"DUMP": {"redis": [], "trio": []},
                                                "RESTORE": {"redis": [], "trio": []},
                                                "RESTORE-ASKING": {"redis": [], "trio": []},
                                                "DUMP stream": {"redis": [], "trio": []},
                                                "RESTORE stream": {"redis": [], "trio": []},
                                                "ASKING": {"redis": [], "trio": []},
                                                "FAILOVER": {"redis": [], "trio": []}}
    # A stream of DUMP_MEMBERS entries in nodes of 100, one group with 100 pending entries.
    stream_fill = [[b"XADD", b"bench:stream", b"%d-1" % (i + 1), b"field", member]
                   for i, member in enumerate(members)]
    stream_fill += [[b"XGROUP", b"CREATE", b"bench:stream", b"g", b"0"],
                    [b"XREADGROUP", b"GROUP", b"g", b"c", b"COUNT", b"100", b"STREAMS",
                     b"bench:stream", b">"]]
    servers = {kind: Server(kind, scratch / f"{kind}-dump", ["--appendonly", "no"])
               for kind in ("redis", "trio")}
    try:
        for server in servers.values():
            if not server.start():
                raise SystemExit(f"{server.kind} did not start for the DUMP bench")
            command(server.port, *zadd, timeout=60)
            pipelined(server.port, stream_fill)
        payload = command(servers["redis"].port, b"DUMP", b"bench:zset")
        payload = payload[payload.index(b"\r\n") + 2:-2]
        stream_payload = command(servers["redis"].port, b"DUMP", b"bench:stream")
        stream_payload = stream_payload[stream_payload.index(b"\r\n") + 2:-2]
        for round_number in range(args.rounds):
            log(f"DUMP/RESTORE round {round_number + 1}/{args.rounds}")
            for kind, server in servers.items():
                seconds = _pipelined(server.port, _request([b"DUMP", b"bench:zset"]), count)
                rates["DUMP"][kind].append(count / seconds)
                restore = [b"RESTORE", b"bench:copy", b"0", payload, b"REPLACE"]
                seconds = _pipelined(server.port, _request(restore), count)
                rates["RESTORE"][kind].append(count / seconds)
                restore = [b"RESTORE-ASKING", b"bench:copy", b"0", payload, b"REPLACE"]
                seconds = _pipelined(server.port, _request(restore), count)
                rates["RESTORE-ASKING"][kind].append(count / seconds)
                seconds = _pipelined(server.port, _request([b"DUMP", b"bench:stream"]), count)
                rates["DUMP stream"][kind].append(count / seconds)
                restore = [b"RESTORE", b"bench:scopy", b"0", stream_payload, b"REPLACE"]
                seconds = _pipelined(server.port, _request(restore), count)
                rates["RESTORE stream"][kind].append(count / seconds)
                # Standalone answers, errors on both servers (redis-benchmark stops at the
                # first error reply, so they are timed here): the cost of a refused command.
                for name in ("ASKING", "FAILOVER"):
                    seconds = _pipelined(server.port, _request([name.encode()]), count * 100)
                    rates[name][kind].append(count * 100 / seconds)
    finally:
        for server in servers.values():
            server.stop()
    lines = [
        f"### DUMP / RESTORE of a {DUMP_MEMBERS:,}-member sorted set (and of a stream)",
        "",
        f"{count} requests pipelined on one connection, per round ({count * 100} for ASKING and "
        "FAILOVER, which answer errors); the payload is Redis's DUMP.",
        "",
        "| command | Redis ops/s | trioredis ops/s | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, by_kind in rates.items():
        r, t = median(by_kind["redis"]), median(by_kind["trio"])
        label = name if name.startswith(("DUMP", "ASKING", "FAILOVER")) else f"{name} ... REPLACE"
        if name.endswith("stream"):
            label = f"{name.split()[0]} of a {DUMP_MEMBERS:,}-entry stream with a group"
        lines.append(f"| {label} | {_num(r)} | {_num(t)} | {_ratio(t / r if r and t else None)} |")
    return lines + [""]


# --- RDB files -------------------------------------------------------------------------------

RDB_KEYS = 1_000_000


def rdb_section(args: argparse.Namespace, scratch: Path, log: Callable[[str], None]) -> list[str]:
    """SAVE of 1,000,000 small strings in RDB format, and start-up loading that ``dump.rdb``
    (written by redis-server's DEBUG POPULATE + SAVE; both servers load the same file)."""
    keys = 100_000 if args.quick else RDB_KEYS
    times: dict[str, dict[str, list[float]]] = {"save": {"redis": [], "trio": []},
                                                "load": {"redis": [], "trio": []}}
    source = scratch / "rdb-source"
    maker = Server("redis", source, ["--appendonly", "no", "--enable-debug-command", "yes"])
    if not maker.start():
        raise SystemExit("redis-server did not start for the RDB bench")
    try:
        command(maker.port, b"DEBUG", b"POPULATE", b"%d" % keys, b"key", b"10", timeout=600)
        command(maker.port, b"SAVE", timeout=600)
    finally:
        maker.stop()
    rdb = source / "dump.rdb"
    log(f"RDB of {keys:,} keys ({rdb.stat().st_size / 1e6:.0f} MB)")
    for round_number in range(args.rounds):
        for kind in ("redis", "trio"):
            directory = scratch / f"{kind}-rdb"
            directory.mkdir(parents=True, exist_ok=True)
            shutil.copy(rdb, directory / "dump.rdb")
            server = Server(kind, directory, ["--appendonly", "no", "--dbfilename", "dump.rdb"])
            server.start(wait=False)
            try:
                loaded = server.wait_ready(timeout=300, loaded=True)
                if loaded is None:
                    log(f"  {kind} did not load the RDB file")
                    continue
                times["load"][kind].append(loaded)
                started = time.perf_counter()
                if command(server.port, b"SAVE", timeout=600).startswith(b"+OK"):
                    times["save"][kind].append(time.perf_counter() - started)
            finally:
                server.stop()
            log(f"  {kind} round {round_number + 1}: load {loaded} s")
    lines = [
        f"### RDB files ({keys:,} small strings, `dbfilename dump.rdb`)",
        "",
        "Load: seconds from process start until `loading:0`, reading redis-server's file. "
        "Save: SAVE of the same dataset in RDB format (time; lower is better).",
        "",
        "| | Redis | trioredis | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name in ("load", "save"):
        r, t = median(times[name]["redis"]), median(times[name]["trio"])
        lines.append(f"| {name} seconds | {_sec(r)} | {_sec(t)} | {_ratio(t / r if r and t else None)} |")
    return lines + [""]


# --- replication -----------------------------------------------------------------------------

REPL_KEYS = 1_000_000


def _replica_synced(port: int, keys: int) -> bool:
    return info_field(port, "master_link_status") == "up" and (
        f"keys={keys}," in (command(port, b"INFO", b"keyspace").decode("latin-1")))


def replication_section(args: argparse.Namespace, scratch: Path,
                        log: Callable[[str], None]) -> list[str]:
    """Full sync of 1,000,000 small strings to a redis-server replica (seconds from the
    replica's start until its link is up with every key), a master of each kind loading the
    same ``dump.rdb``; then SET throughput (``-c 50 -P 1``) on each master with that replica
    attached, beside the same master alone."""
    keys = 100_000 if args.quick else REPL_KEYS
    source = scratch / "repl-source"
    maker = Server("redis", source, ["--appendonly", "no", "--enable-debug-command", "yes"])
    if not maker.start():
        raise SystemExit("redis-server did not start for the replication bench")
    try:
        command(maker.port, b"DEBUG", b"POPULATE", b"%d" % keys, b"key", b"10", timeout=600)
        command(maker.port, b"SAVE", timeout=600)
    finally:
        maker.stop()
    shape = SHAPES[0]
    sync: dict[str, list[float]] = {"redis": [], "trio": []}
    alone: dict[str, list[float]] = {"redis": [], "trio": []}
    attached: dict[str, list[float]] = {"redis": [], "trio": []}
    for round_number in range(args.rounds):
        for kind in ("redis", "trio"):
            directory = scratch / f"{kind}-repl-master"
            directory.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / "dump.rdb", directory / "dump.rdb")
            master = Server(kind, directory, ["--appendonly", "no", "--dbfilename", "dump.rdb",
                                              "--repl-diskless-sync-delay", "0"])
            master.start(wait=False)
            replica = Server("redis", scratch / f"{kind}-repl-replica",
                             ["--appendonly", "no", "--replicaof", "127.0.0.1", str(master.port)])
            try:
                if master.wait_ready(timeout=300, loaded=True) is None:
                    log(f"  {kind} master did not load the RDB file")
                    continue
                requests = shape.requests_for(kind, args.quick, "appendonly no")
                sample = run_benchmark(master.port, ["SET"], shape, requests).get("SET")
                if sample is not None:
                    alone[kind].append(sample.rps)
                command(master.port, b"DEL", b"key:__rand_int__", timeout=60)  # SET's key
                replica.start()
                started = time.perf_counter()
                deadline = started + 600
                while not _replica_synced(replica.port, keys) and time.perf_counter() < deadline:
                    time.sleep(0.01)
                if time.perf_counter() < deadline:
                    sync[kind].append(time.perf_counter() - started)
                sample = run_benchmark(master.port, ["SET"], shape, requests).get("SET")
                if sample is not None:
                    attached[kind].append(sample.rps)
            finally:
                replica.stop()
                master.stop()
            log(f"  {kind} round {round_number + 1}: full sync {_sec(median(sync[kind]))} s")
    lines = [
        f"### Replication (a redis-server replica; {keys:,} small strings)",
        "",
        "Full sync: seconds from the replica's start until its link is up holding every key "
        "(lower is better). SET `-c 50 -P 1` on the master, requests per second, alone and "
        "with the replica attached.",
        "",
        "| | Redis | trioredis | ratio |",
        "|---|---:|---:|---:|",
    ]
    r, t = median(sync["redis"]), median(sync["trio"])
    lines.append(f"| full sync seconds | {_sec(r)} | {_sec(t)} | {_ratio(t / r if r and t else None)} |")
    for name, values in (("SET rps, no replica", alone), ("SET rps, one replica", attached)):
        r, t = median(values["redis"]), median(values["trio"])
        lines.append(f"| {name} | {_num(r)} | {_num(t)} | {_ratio(t / r if r and t else None)} |")
    for kind, label in (("redis", "Redis"), ("trio", "trioredis")):
        a, b = median(alone[kind]), median(attached[kind])
        lines.append(f"| {label}: with a replica / alone | | | {_ratio(b / a if a and b else None)} |")
    return lines + [""]


def _request(argv: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in argv)


def _sec(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _bytes(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


# --- single commands ------------------------------------------------------------------------


@dataclass
class CommandRow:
    """One command timed by itself (``redis-benchmark ... <command>``, ``-c 50 -P 1``,
    ``appendonly no``) on data that ``setup`` writes first, with requests per server sized
    like the shapes' (about a second each)."""

    setup: list[list[bytes]]
    command: list[str]
    requests: dict[str, int]
    options: list[str] = field(default_factory=list)  # more redis-benchmark options (-r N)
    teardown: list[list[bytes]] = field(default_factory=list)  # run after (CONFIG SET back)


# 1 MB of fixed pseudo-random bytes, and 10,000 pseudo-random numbers (the same every run).
_MEGABYTE = random.Random(16).randbytes(1 << 20)
_NUMBERS = [b"%d" % n for n in random.Random(16).sample(range(-10**6, 10**6), 10_000)]



def _hll_setup() -> list[list[bytes]]:
    """Three dense HyperLogLogs of 20,000 elements each, overlapping."""
    return [[b"PFADD", b"bench:hll:%d" % key,
             *[b"e%d" % n for n in range(key * 5000, key * 5000 + 20000)]] for key in (1, 2, 3)]


def _geo_setup() -> list[list[bytes]]:
    """1,600 places on a 40 x 40 grid 0.01 degrees apart (about 1 km): a 5 km radius around
    its centre holds about 100 of them."""
    places = [word for row in range(40) for column in range(40)
              for word in (b"%.4f" % (13.0 + column * 0.01), b"%.4f" % (38.0 + row * 0.01),
                           b"p%d:%d" % (row, column))]
    return [[b"GEOADD", b"bench:geo:grid", *places]]


COMMAND_ROWS: dict[str, CommandRow] = {
    # The key varies, not the offset: __rand_int__ is zero-padded, and an offset with leading
    # zeros is not an integer to Redis.  Most calls create a bitmap (a write, propagated).
    "SETBIT (random keys)": CommandRow(
        [], ["SETBIT", "bench:bits:__rand_int__", "7", "1"], {"redis": 150_000, "trio": 60_000},
        ["-r", "1000000"]),
    "BITCOUNT of a 1 MB string": CommandRow(
        [[b"SET", b"bench:mb", _MEGABYTE]], ["BITCOUNT", "bench:mb"],
        {"redis": 40_000, "trio": 2_000}),
    # LIMIT 0 10: the row times the sort of all 10,000 numbers, not a 10,000-element reply.
    "SORT of 10,000 numbers (LIMIT 0 10)": CommandRow(
        [[b"RPUSH", b"bench:numbers", *_NUMBERS]], ["SORT", "bench:numbers", "LIMIT", "0", "10"],
        {"redis": 4_000, "trio": 600}),
    # Random elements into one HLL: sparse for the first few thousand, then dense.
    "PFADD (random elements)": CommandRow(
        [], ["PFADD", "bench:hll", "__rand_int__"], {"redis": 150_000, "trio": 40_000},
        ["-r", "1000000"]),
    # The keys do not change during the run: after the first request trioredis answers from
    # its union cache, where Redis merges 3 x 16,384 registers every time (uncached, ours
    # takes about 0.6 ms here).
    "PFCOUNT of 3 dense HLLs": CommandRow(
        _hll_setup(), ["PFCOUNT", "bench:hll:1", "bench:hll:2", "bench:hll:3"],
        {"redis": 20_000, "trio": 20_000}),
    "GEOADD (random members)": CommandRow(
        [], ["GEOADD", "bench:geo", "13.361389", "38.115556", "__rand_int__"],
        {"redis": 150_000, "trio": 40_000}, ["-r", "1000000"]),
    "GEOSEARCH BYRADIUS (~100 of 1,600 places)": CommandRow(
        _geo_setup(), ["GEOSEARCH", "bench:geo:grid", "FROMLONLAT", "13.195", "38.195",
                       "BYRADIUS", "5", "km"], {"redis": 20_000, "trio": 1_000}),
    # No replica to wait for: the row times WAIT's argument checks and its reply.
    "WAIT 0 0": CommandRow([], ["WAIT", "0", "0"], {"redis": 150_000, "trio": 60_000}),
    # Generated from the signature on each call (redis-cli asks for all of them at start).
    "COMMAND DOCS XADD (nested arguments)": CommandRow(
        [], ["COMMAND", "DOCS", "XADD"], {"redis": 50_000, "trio": 10_000}),
    # Client-side caching and pauses (issue #18): each benchmark connection turns tracking
    # on (again, after the first call); TRACKINGINFO reads it back; a pause of 0 ms ends at
    # once (the row times the command, not a pause).
    "CLIENT TRACKING ON": CommandRow(
        [], ["CLIENT", "TRACKING", "ON"], {"redis": 150_000, "trio": 60_000}),
    "CLIENT TRACKINGINFO": CommandRow(
        [], ["CLIENT", "TRACKINGINFO"], {"redis": 150_000, "trio": 60_000}),
    "CLIENT PAUSE 0 WRITE": CommandRow(
        [], ["CLIENT", "PAUSE", "0", "WRITE"], {"redis": 150_000, "trio": 60_000}),
    "CLIENT UNPAUSE": CommandRow([], ["CLIENT", "UNPAUSE"], {"redis": 150_000, "trio": 60_000}),
    # Eviction on: 100-byte values at up to a million random keys past a 4 MB maxmemory, so
    # after the first few thousand writes each SET evicts (allkeys-lru, 5 samples).
    "SET under maxmemory 4mb, allkeys-lru (evicting)": CommandRow(
        [[b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lru"],
         [b"CONFIG", b"SET", b"maxmemory", b"4mb"]],
        ["SET", "bench:evict:__rand_int__", "x" * 100], {"redis": 150_000, "trio": 60_000},
        ["-r", "1000000"],
        teardown=[[b"CONFIG", b"SET", b"maxmemory", b"0"],
                  [b"CONFIG", b"SET", b"maxmemory-policy", b"noeviction"]]),
}


def run_command_row(port: int, row: CommandRow, requests: int) -> Sample | None:
    """Set up, then one redis-benchmark run of the row's command; None when the server does
    not know the command."""
    for argv in row.setup:
        command(port, *argv)
    probe = command(port, *[word.replace("__rand_int__", "0").encode() for word in row.command])
    if probe.startswith(b"-ERR unknown command"):
        return None
    argv = [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", "50", "-P", "1",
            "-n", str(requests), "--csv", *row.options, *row.command]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    for line in out.stdout.splitlines():
        cells = [cell.strip('"') for cell in line.split('","')]
        if len(cells) >= 7 and cells[0] != "test":
            try:
                return Sample(float(cells[1]), float(cells[4]), float(cells[6]))
            except ValueError:
                continue
    return None


def commands_section(args: argparse.Namespace, scratch: Path, log: Callable[[str], None]) -> list[str]:
    """The COMMAND_ROWS, alternating Redis and trioredis; the Markdown lines of their table."""
    options = PERSISTENCE["appendonly no"]
    cells: dict[str, Cell] = {}
    redis = Server("redis", scratch / "redis-cmd", options)
    trio = Server("trio", scratch / "trio-cmd", options)
    if not redis.start():
        raise SystemExit(f"redis-server did not start; see {redis.directory}")
    trio_ok = trio.start()
    try:
        for round_number in range(args.rounds):
            log(f"single commands round {round_number + 1}/{args.rounds}")
            for name, row in COMMAND_ROWS.items():
                for who, server in (("redis", redis), ("trio", trio)):
                    if who == "trio" and not trio_ok:
                        continue
                    requests = row.requests[who] // (4 if args.quick else 1)
                    sample = run_command_row(server.port, row, requests)
                    for argv in row.teardown:
                        command(server.port, *argv)
                    command(server.port, b"FLUSHALL")
                    if sample is not None:
                        getattr(cells.setdefault(name, Cell()), who).append(sample)
    finally:
        redis.stop()
        trio.stop()
        shutil.rmtree(scratch / "redis-cmd", ignore_errors=True)
        shutil.rmtree(scratch / "trio-cmd", ignore_errors=True)
    lines = ["### Single commands (`appendonly no`, `-c 50 -P 1`)", "",
             "| command | Redis ops/s | trioredis ops/s | ratio |", "|---|---:|---:|---:|"]
    for name in COMMAND_ROWS:
        cell = cells.get(name, Cell())
        r = median([s.rps for s in cell.redis])
        t = median([s.rps for s in cell.trio])
        lines.append(f"| {name} | {_num(r)} | {_num(t)} | {_ratio(t / r if r and t else None)} |")
    return lines + [""]


# --- report --------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a few minutes less)")
    parser.add_argument("--rounds", type=int, default=3, help="A B rounds per measurement (>= 3)")
    parser.add_argument("--only", default="throughput,commands,replay,rewrite,dump,pubsub,mixed",
                        help="sections to run")
    parser.add_argument("--modes", default="", help="persistence cases, e.g. 'appendonly no'")
    parser.add_argument("--shapes", default="", help="load shapes, e.g. '-c 50 -P 1'")
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args(argv)
    for tool in (REDIS_SERVER, REDIS_BENCHMARK):
        if not os.path.exists(tool):
            print(f"{tool} is missing: run `make system-deps` (Debian's redis-server)", file=sys.stderr)
            return 1
    started = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - started:6.1f}s] {message}", flush=True)

    sections = set(args.only.split(","))
    body: list[str] = []
    with tempfile.TemporaryDirectory(prefix="trioredis-bench-") as tmp:
        scratch = Path(tmp)
        if "throughput" in sections:
            lines, _ = throughput_section(args, scratch, log)
            body += lines
        if "commands" in sections:
            body += commands_section(args, scratch, log)
        if "replay" in sections:
            lines, _ = replay_section(args, scratch, log)
            body += lines
        if "rewrite" in sections:
            log("BGREWRITEAOF")
            body += rewrite_section(args, scratch, log)
        if "dump" in sections:
            body += dump_section(args, scratch, log)
        if "rdb" in sections:
            body += rdb_section(args, scratch, log)
        if "pubsub" in sections:
            body += pubsub_section(args, scratch, log)
        if "mixed" in sections:
            body += mixed_section(args, scratch, log)
        if "replication" in sections:
            body += replication_section(args, scratch, log)
    redis_version = Server("redis", Path("."), []).version()
    trio_version = Server("trio", Path("."), []).version()
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "## Latest run",
        "",
        f"- date: {when}; wall time {time.time() - started:.0f} s"
        + (" (--quick)" if args.quick else ""),
        f"- machine: {machine()}",
        f"- versions: {redis_version}; {trio_version}; "
        f"redis-benchmark {_tool_version(REDIS_BENCHMARK)}",
        f"- method: redis-benchmark on loopback, Redis and trioredis alternating, {args.rounds} "
        "rounds, medians; ratio = trioredis / Redis (higher is better for ops/s).",
        "",
    ]
    table = "\n".join(header + body)
    print(table)
    if not args.no_write:
        write_results(table)
    return 0


def _tool_version(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True)
    return out.stdout.strip().split(" ")[1] if out.stdout else "?"


MARK_BEGIN = "<!-- bench:latest:begin -->"
MARK_END = "<!-- bench:latest:end -->"


def write_results(table: str) -> None:
    """Replace the latest-run block in RESULTS.md, keeping the notes written around it."""
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    block = f"{MARK_BEGIN}\n{table}\n{MARK_END}"
    if MARK_BEGIN in text and MARK_END in text:
        before = text.split(MARK_BEGIN, 1)[0]
        after = text.split(MARK_END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
