"""A/B of two trees of trioredis beside Redis, interleaved: is a change within noise?

    python bench/ab.py c095849                      # this tree against commit c095849
    python bench/ab.py HEAD~3 --mode "appendfsync always" --rounds 5

The baseline is checked out (``git worktree add --detach``) into a scratch folder and run
from there (a folder holding ``trioredis`` -> its ``core``, ``core/plugins`` -> its
``plugins``, first on PYTHONPATH), so both servers use this tree's venv and dependencies.
Each round runs redis-benchmark once against Redis, the baseline and this tree, in turn (the
two trees swap places every other round), with ``bench/run.py``'s shape and request counts
for the nine geomean commands; the table gives the medians and ``this/baseline`` per
command.

Why a tool of its own: on a shared 2-CPU machine the ratio to Redis of one server moves by
10-20% between runs of ``make bench``; only servers measured in the same rounds separate a
5% change from the weather (2026-12-03: two such runs of the same trees read -11% and -3%).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/run.py: Server, run_benchmark, shapes)

ROOT = Path(__file__).resolve().parent.parent
NINE = ["set", "get", "incr", "lpush", "rpop", "sadd", "hset", "zadd", "mset"]


def baseline_package(revision: str, scratch: Path) -> Path:
    """A PYTHONPATH folder whose ``trioredis`` is ``revision``'s tree."""
    tree = scratch / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force",
                    str(tree), revision], check=True, capture_output=True)
    package = scratch / "package"
    package.mkdir()
    (package / "trioredis").symlink_to(tree / "core")
    if not (tree / "core" / "plugins").exists():
        (tree / "core" / "plugins").symlink_to(tree / "plugins")
    return package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("baseline", help="git revision to compare this tree with")
    parser.add_argument("--mode", default="appendonly no", choices=list(bench.PERSISTENCE))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tests", default=",".join(NINE))
    args = parser.parse_args()
    tests = args.tests.split(",")
    shape = bench.SHAPES[0]  # -c 50 -P 1
    options = bench.PERSISTENCE[args.mode]
    scratch = Path(tempfile.mkdtemp(prefix="trioredis-ab-"))
    servers: dict[str, bench.Server] = {}
    results: dict[str, dict[str, list[float]]] = {}
    try:
        package = baseline_package(args.baseline, scratch)
        servers = {"redis": bench.Server("redis", scratch / "redis", options),
                   "baseline": bench.Server("trio", scratch / "baseline", options,
                                            {**os.environ, "PYTHONPATH": str(package)}),
                   "this": bench.Server("trio", scratch / "this", options)}
        for name, server in servers.items():
            if not server.start():
                raise SystemExit(f"{name} did not start; see {server.directory}")
        for round_number in range(args.rounds):
            print(f"round {round_number + 1}/{args.rounds}", file=sys.stderr, flush=True)
            # The two trees swap places every round: whichever runs second in a pair was
            # measured faster by up to 14% (2026-12-03), more than the changes judged here.
            order = ["redis", "baseline", "this"] if round_number % 2 == 0 else [
                "redis", "this", "baseline"]
            for name in order:
                server = servers[name]
                requests = shape.requests_for("redis" if name == "redis" else "trio", False,
                                              args.mode)
                got = bench.run_benchmark(server.port, tests, shape, requests)
                bench.command(server.port, b"FLUSHALL")
                for test, sample in got.items():
                    results.setdefault(name, {}).setdefault(test, []).append(sample.rps)
    finally:
        for server in servers.values():
            server.stop()
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                        str(scratch / "tree")], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{args.mode}, -c 50 -P 1, {args.rounds} rounds, medians; baseline {args.baseline}")
    print("| test | Redis | baseline | this | baseline/Redis | this/Redis | this/baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ratios: dict[str, list[float]] = {"baseline": [], "this": []}
    for test in results.get("redis", {}):
        medians = {name: statistics.median(results.get(name, {}).get(test, [0.0]))
                   for name in servers}
        if not all(medians.values()):
            continue
        for name in ratios:
            ratios[name].append(medians[name] / medians["redis"])
        print(f"| {test} | {medians['redis']:,.0f} | {medians['baseline']:,.0f} | "
              f"{medians['this']:,.0f} | {ratios['baseline'][-1]:.2f}x | {ratios['this'][-1]:.2f}x"
              f" | {medians['this'] / medians['baseline']:.2f} |")
    if ratios["this"]:
        base, this = (statistics.geometric_mean(ratios[name]) for name in ("baseline", "this"))
        print(f"| **geomean** | | | | **{base:.3f}x** | **{this:.3f}x** | **{this / base:.3f}** |")


if __name__ == "__main__":
    main()
