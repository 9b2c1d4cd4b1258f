#!/usr/bin/env python3
"""Randomized crash soak (issue 6, point 4): `make soak`, or `python3 scripts/soak.py --help`.

Bounded by a round count and a time limit (defaults 200 rounds / 300 s, whichever ends first).
Each round picks an fsync policy (always, everysec, no: one data directory and one server per
policy, ``appendonly yes``) and a fault, runs 4 numbered writers from tests/crash/workload.py,
injects the fault, restarts the server on the same directory and checks every writer's keys:

- ``writes``: kill -9 while the writers run;
- ``rewrite``: BGREWRITEAOF, then kill -9 of the server a random moment later;
- ``rewrite-child``: BGREWRITEAOF, kill -9 of the rewrite child (a child of the server), then
  of the server;
- ``bgsave``: BGSAVE (the snapshot backend next to the AOF), then kill -9 a moment later;
- ``loading``: kill -9, then kill -9 again while the restart is still loading (INFO
  loading:1), then restart for good;
- ``torn-tail``: kill -9, then truncate the AOF at a random offset inside its last command (a
  write torn by a power cut): that one command may go (counted as ``torn_allowed``, under every
  policy), everything before it must stay;
- ``power-loss`` (when gcc can build the fsync shim of tests/crash/test_power_loss.py, which
  every server then runs under): kill -9, then every AOF is cut back to the size its last
  fsync covered.  Under ``always`` nothing acknowledged may go; under ``everysec`` only writes
  acknowledged within 2.5 s of the cut (``lost_allowed``; an older one is
  ``everysec_over_bound``, a failure); under ``no`` any acknowledged suffix may go
  (``lost_allowed``).  Earlier rounds' writes that a cut takes back (acknowledged before an
  earlier kill -9, never fsynced since) are counted apart, as ``power_lost_earlier_rounds``
  (a failure only under ``always``).  Whatever is lost, each writer's state must still be a prefix.

Figures printed at the end: rounds, acked writes, lost writes per policy, writes lost as the
policy allows on a power cut, phantoms, holes (state not a prefix of what was sent, or a half
transaction), failed restarts.  Exit status 1 when any acknowledged write is lost under
``always``, or on any phantom, hole, everysec loss over its bound or failed restart.  (A kill -9 should lose nothing under everysec/no either: write(2) precedes every
reply; their losses are printed separately.)  Everything runs on 127.0.0.1, and every server
started is killed before exiting.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "tests"), os.path.join(REPO, "tests", "crash")]

import redis  # noqa: E402
from servers import ServerProcess  # noqa: E402
from workload import (  # noqa: E402
    Writer,
    applied_operations,
    expected_state,
    no_retry_client,
    preload,
    read_state,
    surviving_prefix,
    wait_loaded,
)

POLICIES = ("always", "everysec", "no")
FAULTS = ("writes", "rewrite", "rewrite-child", "bgsave", "loading", "torn-tail", "power-loss")
EVERYSEC_LOSS_BOUND = 2.5  # seconds, as tests/crash/test_power_loss.py
WRITERS = 4
AOF = "appendonly.aof"


def build_shim(directory: str) -> str | None:
    """The fsync-recording LD_PRELOAD shim of the power-loss suite, or None without gcc."""
    from test_power_loss import SHIM

    source = os.path.join(directory, "fsync_shim.c")
    library = os.path.join(directory, "fsync_shim.so")
    with open(source, "w") as handle:
        handle.write(SHIM)
    try:
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", library, source, "-ldl"],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return library


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    task_dir = f"/proc/{pid}/task"
    try:
        tasks = os.listdir(task_dir)
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"{task_dir}/{task}/children") as handle:
                found += [int(word) for word in handle.read().split()]
        except OSError:
            pass
    return found


def loading(port: int) -> bool | None:
    """INFO persistence's loading field over a raw socket (None: no answer yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"INFO persistence\r\n")
            data = sock.recv(65536)
    except OSError:
        return None
    if b"loading:1" in data:
        return True
    if b"loading:0" in data:
        return False
    return None


def last_command_offset(path: str) -> tuple[int, int]:
    """(start, end) of the last complete command in the AOF, by scanning the RESP frames."""
    with open(path, "rb") as handle:
        data = handle.read()
    position = last = 0
    end = len(data)
    while position < end:
        start = position
        newline = data.index(b"\r\n", position)
        count = int(data[position + 1:newline])
        position = newline + 2
        for _ in range(count):
            newline = data.index(b"\r\n", position)
            length = int(data[position + 1:newline])
            position = newline + 2 + length + 2
        if position > end:
            break
        last = start
    return last, min(position, end)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.root = tempfile.mkdtemp(prefix="trioredis-soak-")
        self.servers: dict[str, ServerProcess] = {}
        self.shim = None if args.no_power_loss else build_shim(self.root)
        self.fsync_log = os.path.join(self.root, "fsync.log")
        self.faults_enabled = FAULTS if self.shim else FAULTS[:-1]
        self.lost_allowed = Counter()
        self.everysec_over_bound = 0
        self.worst_everysec_span = 0.0
        self.power_lost_earlier = 0
        self.running: ServerProcess | None = None
        self.verified: dict[str, list[tuple[Writer, int]]] = {policy: [] for policy in POLICIES}
        self.rounds = 0
        self.acked = Counter()
        self.lost = Counter()
        self.torn_allowed = 0
        self.phantom = 0
        self.holes: list[str] = []
        self.failed_restarts: list[str] = []
        self.faults = Counter()
        self.fault_landed = Counter()  # a rewrite/save/load was really in progress at the kill

    # --- servers ----------------------------------------------------------------------------

    def server_for(self, policy: str) -> ServerProcess:
        server = self.servers.get(policy)
        if server is None:
            directory = os.path.join(self.root, policy)
            os.mkdir(directory)
            env = ({"LD_PRELOAD": self.shim, "FSYNC_SHIM_LOG": self.fsync_log}
                   if self.shim else None)
            server = ServerProcess(directory, [["appendonly", "yes"], ["appendfsync", policy],
                                               ["save", ""],
                                               ["auto-aof-rewrite-percentage", "0"]], env=env)
            self.servers[policy] = server
            server.start(wait=False)
            wait_loaded(server, timeout=120)
            preload(server.port, self.args.preload)
        elif server.process is None or server.process.poll() is not None:
            server.start(wait=False)
            wait_loaded(server, timeout=120)
        if self.running is not None and self.running is not server:
            self.running.stop()
        self.running = server
        return server

    def restart(self, server: ServerProcess, policy: str, fault: str) -> bool:
        try:
            server.start(wait=False)
            wait_loaded(server, timeout=120)
            return True
        except (RuntimeError, TimeoutError) as error:
            self.failed_restarts.append(f"round {self.rounds} {policy}/{fault}: {error}\n"
                                        + server.log()[-1500:])
            server.kill()
            return False

    # --- one round --------------------------------------------------------------------------

    def round(self) -> bool:
        policy = self.rng.choice(POLICIES)
        fault = self.rng.choice(self.faults_enabled)
        self.faults[fault] += 1
        server = self.server_for(policy)
        stop = threading.Event()
        prefix = f"r{self.rounds}"
        writers = [Writer(server.port, f"{prefix}:w{w}", stop) for w in range(WRITERS)]
        for writer in writers:
            writer.start()
        time.sleep(self.rng.uniform(0.1, 0.5))
        control = no_retry_client(server.port, socket_timeout=10)
        try:
            if fault in ("rewrite", "rewrite-child"):
                try:
                    control.bgrewriteaof()
                except redis.ResponseError:
                    pass
            elif fault == "bgsave":
                try:
                    control.bgsave()
                except redis.ResponseError:
                    pass
            if fault == "rewrite-child":
                deadline = time.monotonic() + 5
                child: list[int] = []
                while not child and time.monotonic() < deadline:
                    child = children_of(server.process.pid)
                if child:
                    self.fault_landed[fault] += 1
                    os.kill(child[0], signal.SIGKILL)
                time.sleep(self.rng.uniform(0.05, 0.2))  # writes go on to the old file
            elif fault == "rewrite":
                time.sleep(self.rng.uniform(0.0, 0.3))
                if children_of(server.process.pid):
                    self.fault_landed[fault] += 1
            elif fault == "bgsave":  # a save of the preload takes only tens of ms
                deadline = time.monotonic() + 2
                while not children_of(server.process.pid) and time.monotonic() < deadline:
                    time.sleep(0.001)
                time.sleep(self.rng.uniform(0.0, 0.02))
                if children_of(server.process.pid):
                    self.fault_landed[fault] += 1
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        finally:
            control.close()
        server.kill()
        killed_at = time.monotonic()
        stop.set()
        for writer in writers:
            writer.join(30)
            if writer.error is not None:
                self.holes.append(f"{writer.prefix}: writer error {writer.error!r}")
        directory = server.directory
        torn = False
        if fault == "torn-tail":
            path = os.path.join(directory, AOF)
            start, end = last_command_offset(path)
            if end - start > 1:
                os.truncate(path, self.rng.randrange(start + 1, end))
                torn = True
        if fault == "power-loss":
            from test_power_loss import lose_power

            lose_power(directory, self.fsync_log)
        if fault == "loading":
            server.start(wait=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and server.process.poll() is None:
                state = loading(server.port)
                if state is not None:
                    if state:
                        self.fault_landed[fault] += 1
                    break
                time.sleep(0.002)
            server.kill()
        if not self.restart(server, policy, fault):
            return False
        self.check(server, policy, writers, torn, killed_at if fault == "power-loss" else None)
        return True

    def check(self, server: ServerProcess, policy: str, writers: list[Writer],
              torn: bool, power_cut_at: float | None) -> None:
        client = no_retry_client(server.port)
        try:
            history = list(self.verified[policy])
            allowance = 1 if torn else 0
            for writer in writers:
                self.acked[policy] += writer.acked
                survived = surviving_prefix(client, writer.prefix, writer.sent)
                if survived is None:
                    applied = applied_operations(read_state(client, writer.prefix),
                                                 writer.prefix)
                    self.phantom += max(0, applied - writer.sent)
                    self.holes.append(f"{writer.prefix} ({policy}): not a prefix: "
                                      f"{read_state(client, writer.prefix)!r}"[:1500])
                    continue
                if survived > writer.sent:
                    self.phantom += survived - writer.sent
                missing = max(0, writer.acked - survived)
                excused = min(missing, allowance)
                allowance -= excused
                self.torn_allowed += excused
                self.account(policy, writer, survived, missing - excused, power_cut_at)
                # Later rounds compare against what survived (a power cut may take back
                # writes), not against what was acknowledged.
                self.verified[policy].append((writer, survived))
            if power_cut_at is not None:
                # A power cut can take back earlier rounds' writes too (never fsynced under
                # `no`): every earlier writer must still be a prefix, and its losses count.
                for index, (writer, before) in enumerate(history):
                    now = surviving_prefix(client, writer.prefix, before)
                    if now is None:
                        self.holes.append(f"{writer.prefix} ({policy}) not a prefix after a "
                                          "power cut")
                        continue
                    lost_acked = max(0, min(before, writer.acked) - now)
                    if lost_acked and policy != "always":
                        # Acknowledged before an earlier kill -9 and still only in the page
                        # cache when the power went: allowed, but not bounded by everysec's
                        # 2 s (that bound holds for a server that lives).
                        self.power_lost_earlier += lost_acked
                    else:
                        self.account(policy, writer, now, lost_acked, power_cut_at)
                    self.verified[policy][index] = (writer, now)
                return
            # Earlier rounds' survivors on this directory stay exactly as they were (a sample).
            for writer, operations in self.rng.sample(history, min(8, len(history))):
                if read_state(client, writer.prefix) != expected_state(writer.prefix,
                                                                       operations):
                    self.holes.append(f"{writer.prefix} ({policy}) changed after a later crash")
        finally:
            client.close()

    def account(self, policy: str, writer: Writer, survived: int, missing: int,
                power_cut_at: float | None) -> None:
        """Count ``missing`` acknowledged operations of ``writer`` as lost, or as lost the way
        the policy allows when a power cut took them."""
        if missing <= 0:
            return
        if power_cut_at is not None and policy != "always":
            if policy == "everysec":
                span = power_cut_at - writer.ack_times[survived]
                self.worst_everysec_span = max(self.worst_everysec_span, span)
                if span > EVERYSEC_LOSS_BOUND:
                    self.everysec_over_bound += missing
            self.lost_allowed[policy] += missing
            return
        self.lost[policy] += missing

    # --- the whole run ------------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        try:
            while (self.rounds < self.args.rounds
                   and time.monotonic() - started < self.args.time_limit):
                ok = self.round()
                self.rounds += 1
                if self.args.verbose or self.rounds % 20 == 0:
                    self.report(time.monotonic() - started, final=False)
                if not ok:
                    break
        finally:
            for server in self.servers.values():
                server.kill()
            if not self.args.keep:
                shutil.rmtree(self.root, ignore_errors=True)
        elapsed = time.monotonic() - started
        self.report(elapsed, final=True)
        for line in (self.holes + self.failed_restarts)[:10]:
            print("  " + line.replace("\n", "\n    "))
        bad = (self.lost["always"] or self.phantom or self.holes or self.failed_restarts
               or self.everysec_over_bound)
        return 1 if bad else 0

    def report(self, elapsed: float, final: bool) -> None:
        acked = sum(self.acked.values())
        line = (f"soak seed={self.args.seed} rounds={self.rounds} elapsed={elapsed:.0f}s "
                f"acked={acked} (always={self.acked['always']} "
                f"everysec={self.acked['everysec']} no={self.acked['no']}) "
                f"lost_always={self.lost['always']} lost_everysec={self.lost['everysec']} "
                f"lost_no={self.lost['no']} torn_allowed={self.torn_allowed} "
                f"power_lost_allowed_everysec={self.lost_allowed['everysec']} "
                f"power_lost_allowed_no={self.lost_allowed['no']} "
                f"worst_everysec_span={self.worst_everysec_span:.2f}s "
                f"everysec_over_bound={self.everysec_over_bound} "
                f"power_lost_earlier_rounds={self.power_lost_earlier} "
                f"phantom={self.phantom} holes={len(self.holes)} "
                f"failed_restarts={len(self.failed_restarts)}")
        print(line, flush=True)
        if final:
            faults = " ".join(f"{fault}={self.faults[fault]}"
                              + (f"(landed {self.fault_landed[fault]})"
                                 if fault in ("rewrite", "rewrite-child", "bgsave", "loading")
                                 else "")
                              for fault in self.faults_enabled)
            print(f"soak faults: {faults}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="at most this many rounds")
    parser.add_argument("--time-limit", type=float, default=300,
                        help="seconds; no new round starts after this")
    parser.add_argument("--seed", type=int, default=int(time.time_ns() % 1_000_000))
    parser.add_argument("--preload", type=int, default=50_000,
                        help="keys written first in each directory (makes rewrites, saves "
                             "and loads take long enough to be hit)")
    parser.add_argument("--no-power-loss", action="store_true",
                        help="leave out the power-loss fault (and the LD_PRELOAD fsync shim)")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument("--verbose", action="store_true", help="a line after every round")
    return Soak(parser.parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
