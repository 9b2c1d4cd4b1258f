"""In-process engine microbench: CPU per command of ``Engine.call``, no sockets.

Builds an engine as the server does (the loaded config, the default plugins without entry
points, the persistence backends the config asks for), then runs each command 100,000 times
for one client, best of 5, and prints microseconds per call.  Whichever ``trioredis`` is first
on ``sys.path`` is measured, so a baseline is measured by putting an older tree first on
PYTHONPATH (a folder holding ``trioredis`` -> its ``core``, with ``core/plugins`` -> its
``plugins``).

    python bench/engine_micro.py                      # no maxmemory
    python bench/engine_micro.py --maxmemory 2mb --policy allkeys-lru --only SET
    python bench/engine_micro.py --instructions --only SET,MSET   # under valgrind

``--instructions`` counts instructions (valgrind's callgrind) instead of timing: the same
count for the same tree whatever else the machine does, so a change of a few percent shows
on a busy machine where CPU time moves by 30% between runs.  Each command runs under
valgrind twice (``--calls`` calls and none, after the same warm-up); the difference over
``--calls`` is the count per call.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

from trioredis.config import load_config
from trioredis.engine import Engine
from trioredis.log import Log
from trioredis.persistence import PersistenceRegistry
from trioredis.plugin_manager import make_plugin_manager

# The commands of bench/run.py's -P 1 geomean, with redis-benchmark's key shapes: a fixed key
# per command (``__rand_int__`` off), so the container commands grow one container.
COMMANDS: dict[str, list[bytes]] = {
    "SET": [b"SET", b"key:000000000001", b"xxx"],
    "GET": [b"GET", b"key:000000000001"],
    "INCR": [b"INCR", b"counter:000000000001"],
    "LPUSH": [b"LPUSH", b"mylist", b"xxx"],
    "RPOP": [b"RPOP", b"mylist"],
    "SADD": [b"SADD", b"myset", b"element:000000000001"],
    "HSET": [b"HSET", b"myhash", b"element:000000000001", b"xxx"],
    "ZADD": [b"ZADD", b"myzset", b"0", b"element:000000000001"],
    "MSET": [b"MSET"] + [b"key:000000000001", b"xxx"] * 10,
}
# Not in the geomean: the fixed cost of a command (dispatch, statistics, timing).
EXTRA: dict[str, list[bytes]] = {"PING": [b"PING"], "EXISTS": [b"EXISTS", b"key:000000000001"]}


# The process's CPU time, not the wall clock: on a machine shared with other work the best of
# a few rounds of wall time still carries the waits of being descheduled.
CLOCK = time.process_time


def build(options: list[list[str]]) -> tuple[Engine, Any]:
    """An engine and one authenticated client, as the server builds them."""
    directory = tempfile.mkdtemp(prefix="engine-micro-")
    loaded = load_config(None, [["save", ""], ["appendonly", "no"], ["dir", directory],
                                *options])
    manager = make_plugin_manager(entry_points=False)
    engine = Engine(loaded, manager, Log("warning"))
    registry = PersistenceRegistry()
    manager.hook.trioredis_register_persistence(registry=registry, config=loaded.config)
    engine.persistence.register(registry.backends)
    # What an AOF that is off pushes once its service runs (no service runs here): not
    # fed, as in the server.  (Older trees have no such push: their engine skipped it.)
    set_feeding = getattr(engine.persistence, "_set_feeding", None)
    if set_feeding is not None and not loaded.config.appendonly:
        for backend in engine.backends:
            if backend.name == "aof":
                set_feeding(backend.name, False)
    return engine, engine.new_client("127.0.0.1:1", "127.0.0.1:2")


def measure(engine: Engine, client: Any, argv: list[bytes], calls: int, rounds: int) -> float:
    """Best of ``rounds`` loops of ``calls`` calls: microseconds per call."""
    call = engine.call
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        started = CLOCK()
        for _ in range(calls):
            call(client, argv)
        best = min(best, CLOCK() - started)
    return best / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated command names")
    parser.add_argument("--maxmemory", default="")
    parser.add_argument("--policy", default="")
    parser.add_argument("--random-keys", type=int, default=0,
                        help="SET over this many distinct keys (the eviction path)")
    parser.add_argument("--instructions", action="store_true",
                        help="instructions per call under valgrind, not CPU time")
    parser.add_argument("--loop-only", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instructions:
        count_instructions(args)
        return
    options = []
    if args.maxmemory:
        options.append(["maxmemory", args.maxmemory])
    if args.policy:
        options.append(["maxmemory-policy", args.policy])
    names = command_names(args)
    engine, client = build(options)
    if args.loop_only >= 0:  # one run under valgrind (count_instructions)
        argv = {**COMMANDS, **EXTRA}[names[0]]
        for _ in range(2_000 + args.loop_only):
            engine.call(client, argv)
        return
    if args.random_keys:
        # The eviction path: SETs of new keys past maxmemory, each write evicting.
        keys = [b"key:%012d" % i for i in range(args.random_keys)]
        value = b"x" * 100
        call = engine.call
        best = float("inf")
        for _ in range(args.rounds):
            gc.collect()
            started = CLOCK()
            for key in keys:
                call(client, [b"SET", key, value])
            best = min(best, CLOCK() - started)
        evicted = engine.evictor.evicted_keys
        print(f"SET(new keys) {best / len(keys) * 1e6:6.2f} us  evicted={evicted}")
        return
    for name in names:
        print(f"{name:6s} {measure(engine, client, {**COMMANDS, **EXTRA}[name], args.calls, args.rounds):6.2f} us")


def command_names(args: argparse.Namespace) -> list[str]:
    """The commands ``--only`` names, or every geomean command."""
    return [n.strip().upper() for n in args.only.split(",") if n.strip()] or list(COMMANDS)


def count_instructions(args: argparse.Namespace) -> None:
    """Instructions per call of each command: two valgrind runs that differ only in
    ``--calls`` calls (start-up, imports and warm-up cancel out)."""
    names = command_names(args)
    calls = min(args.calls, 10_000)  # valgrind runs Python ~50x slower
    extra = []
    for flag, value in (("--maxmemory", args.maxmemory), ("--policy", args.policy)):
        if value:
            extra += [flag, value]

    def collected(name: str, loops: int) -> int:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             os.path.abspath(__file__), "--only", name, "--loop-only", str(loops), *extra],
            capture_output=True, text=True, check=True)
        match = re.search(r"Collected : (\d+)", out.stderr)
        assert match is not None, out.stderr[-500:]
        return int(match.group(1))

    for name in names:
        per_call = (collected(name, calls) - collected(name, 0)) / calls
        print(f"{name:6s} {per_call:8.0f} instructions")


if __name__ == "__main__":
    main()
