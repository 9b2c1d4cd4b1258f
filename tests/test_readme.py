"""The README, followed from top to bottom as a new user would: `make run`, redis-cli, the
config check, the AOF repair and snapshot check commands, and a clean shutdown.

Runs the README's own commands (`make run` with extra options only for a free port and a
scratch directory), so a README that drifts from the code fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from servers import REPO, free_port

README = os.path.join(REPO, "README.md")


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_readme_starts_with_the_two_commands():
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    first = code_blocks(text)[0]
    assert first.splitlines()[0].startswith("make run")
    assert first.splitlines()[1].startswith("make test")
    # make run builds the server's venv without the test extras; make test adds them.
    makefile_text = open(os.path.join(REPO, "Makefile"), encoding="utf-8").read()
    assert re.search(r"^run: \$\(BIN\)/trioredis-server$", makefile_text, flags=re.M)
    assert "pip install --quiet -e .\n" in makefile_text
    makefile = open(os.path.join(REPO, "Makefile"), encoding="utf-8").read()
    assert re.search(r"^run:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as handle:
        assert "make test" in handle.read()


def _cli(port: int, *args: str) -> str:
    result = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                            text=True, timeout=30)
    return result.stdout.strip()


def test_readme_commands_work_from_top_to_bottom(tmp_path):
    if shutil.which("make") is None or shutil.which("redis-cli") is None:
        pytest.skip("needs make and redis-cli (Debian redis-tools; `make test` installs it)")
    port = free_port()
    data = tmp_path / "data"
    # `make run ARGS="--port 7000"` as the README shows it for running beside a Redis, on a
    # free port instead of 7000, plus a scratch directory.
    with open(README, encoding="utf-8") as handle:
        blocks = code_blocks(handle.read())
    (beside,) = [block for block in blocks if block.startswith('make run ARGS="--port 7000"')]
    assert "redis-cli -p 7000 ping" in beside
    server = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"ARGS=--port {port} --dir {data}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600  # a fresh machine builds .venv first
        while _cli(port, "ping") != "PONG":
            assert server.poll() is None, server.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "make run did not answer PING"
            time.sleep(0.2)
        # "Connect" section: the session shown in the README.
        assert _cli(port, "SET", "greeting", "hello") == "OK"
        assert _cli(port, "GET", "greeting") == "hello"
        # Default config is AOF everysec.
        assert _cli(port, "CONFIG", "GET", "appendonly") == "appendonly\nyes"
        assert _cli(port, "CONFIG", "GET", "appendfsync") == "appendfsync\neverysec"
        assert _cli(port, "SAVE") == "OK"  # an explicit snapshot, for the check command below
        assert _cli(port, "shutdown") == ""
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    bin_dir = os.path.join(REPO, ".venv", "bin")
    check = subprocess.run([os.path.join(bin_dir, "trioredis-server"), "--test-config",
                            os.path.join(REPO, "config", "trioredis.conf")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    # "Repair an AOF": back up, then check-aof --fix on a file with a torn last command.
    aof = data / "appendonly.aof"
    original = aof.read_bytes()
    assert original.count(b"greeting") >= 1
    aof.write_bytes(original + b"*3\r\n$3\r\nSET\r\n$4\r\ntorn")
    shutil.copy(aof, str(aof) + ".bak")
    fixed = subprocess.run([os.path.join(bin_dir, "trioredis-check-aof"), "--fix", "-y", str(aof)],
                           capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert aof.read_bytes() == original
    snapshot = subprocess.run(["redis-check-rdb", str(data / "dump.rdb")],
                              capture_output=True, text=True, timeout=60)
    assert snapshot.returncode == 0, snapshot.stdout + snapshot.stderr
    assert "RDB looks OK" in snapshot.stdout
    # "Run as a service": the packaged config and unit, printed where the README says.
    (service,) = [block for block in blocks if "--print-systemd-unit" in block]
    for line in service.splitlines():
        subprocess.run(line.replace(".venv/bin/", bin_dir + "/"), shell=True, cwd=tmp_path,
                       check=True, timeout=60)
    assert (tmp_path / "trioredis.conf").read_text() == open(
        os.path.join(REPO, "config", "trioredis.conf"), encoding="utf-8").read()
    assert "Type=notify" in (tmp_path / "trioredis.service").read_text()


def test_ci_finds_every_console_script_in_the_venv_with_a_minimal_path(tmp_path):
    """`.ci/run` tests with the system's PATH plus .venv/bin only; its check fails when a
    console script would come from anywhere but the venv."""
    venv_bin = os.path.join(REPO, ".venv", "bin")
    if os.path.dirname(sys.executable) != venv_bin:
        pytest.skip("tests not run from the project's .venv (make setup)")
    script = os.path.join(REPO, ".ci", "run")
    result = subprocess.run([script, "--check-only"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")})
    assert result.returncode == 0, result.stderr
    # A project whose venv lacks a console script: reported, not found elsewhere on PATH.
    shutil.copytree(os.path.join(REPO, ".ci"), tmp_path / ".ci")
    shutil.copy(os.path.join(REPO, "pyproject.toml"), tmp_path)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    os.symlink(os.path.join(venv_bin, "trioredis-server"), tmp_path / ".venv/bin/trioredis-server")
    result = subprocess.run([str(tmp_path / ".ci" / "run"), "--check-only"], capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "console script trioredis-check-aof resolves to" in result.stderr
