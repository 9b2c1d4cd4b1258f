"""redis-server's command-line conventions, as a supervisor (systemd, runit, Kubernetes) and an
operator rely on them: --help/--version, --test-config's verdict with file:line, the pidfile
written at start and removed at exit, the log going to ``logfile``, exit 1 with one ``# Fatal:``
line when the port is taken, exit 0 on SIGTERM, and a progress line (percent, ETA) at most once
a second while a long AOF loads."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
from servers import ServerProcess, console_script, run_cli, wait_for
from trioredis import __version__


def test_help_names_every_mode():
    result = run_cli("--help")
    assert result.returncode == 0
    for mode in ("--version", "--help", "--test-config"):
        assert mode in result.stdout


def test_version_exits_zero():
    result = run_cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_test_config_bad_file_names_file_and_line(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("# comment\nport 7000\nno-such-directive yes\n")
    result = run_cli("--test-config", str(path))
    assert result.returncode == 1
    assert f"{path}:3:" in result.stderr
    assert "no-such-directive" in result.stderr


def test_test_config_good_file_exits_zero(tmp_path):
    path = tmp_path / "good.conf"
    path.write_text("port 7000\nappendonly yes\nappendfsync always\nsave \"\"\n")
    result = run_cli("--test-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "Configuration test passed" in result.stdout


def test_pidfile_written_and_removed_and_sigterm_exits_zero(tmp_path):
    pidfile = tmp_path / "trioredis.pid"
    server = ServerProcess(str(tmp_path), [["save", ""], ["pidfile", str(pidfile)]])
    try:
        server.start()
        assert pidfile.read_text().strip() == str(server.process.pid)
    finally:
        code = server.stop()  # SIGTERM
        server.kill()
    assert code == 0, server.log()
    assert not pidfile.exists()


def test_log_goes_to_logfile(tmp_path):
    logfile = tmp_path / "trioredis.log"
    server = ServerProcess(str(tmp_path), [["save", ""], ["logfile", str(logfile)]])
    try:
        server.start()
        # PING may answer a moment before the line is written (the backends start between).
        wait_for(lambda: "Ready to accept connections" in logfile.read_text(), what="the log")
        assert "Ready to accept connections" not in server.log()  # not on stdout
    finally:
        server.stop()
        server.kill()
    assert "bye bye" in logfile.read_text()


def test_port_taken_exits_one_with_a_fatal_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "trioredis", "--port", str(port), "--bind", "127.0.0.1",
             "--dir", str(tmp_path), "--save", ""],
            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    fatal = [line for line in result.stderr.splitlines() if line.startswith("# Fatal:")]
    assert len(fatal) == 1, result.stderr
    assert "Address already in use" in fatal[0]
    assert "Traceback" not in result.stderr + result.stdout


def write_aof(path: str, keys: int) -> None:
    """An AOF of ``keys`` SETs, written directly (a server writing it would take longer)."""
    chunk = bytearray()
    with open(path, "wb") as handle:
        for index in range(keys):
            key = b"key:%d" % index
            chunk += b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$5\r\nvalue\r\n" % (len(key), key)
            if len(chunk) > 1 << 20:
                handle.write(chunk)
                chunk.clear()
        handle.write(chunk)


PROGRESS = re.compile(r"^\d+:M (\d+ \w+ \d+ \d+:\d+:\d+\.\d+) \* Loading: (\d+\.\d)% \(ETA (\d+)s\)$")
LOADED = re.compile(r"DB loaded from disk: (\d+\.\d+) seconds")


def load_and_log(directory, keys: int) -> tuple[float, list[re.Match], str]:
    """Start a server on an AOF of ``keys`` SETs: the load's seconds, its progress lines and
    the whole log."""
    os.makedirs(directory, exist_ok=True)
    write_aof(os.path.join(directory, "appendonly.aof"), keys)
    server = ServerProcess(str(directory), [["appendonly", "yes"], ["save", ""]])
    try:
        server.start(timeout=120)
        assert server.client(socket_timeout=10).dbsize() == keys
    finally:
        server.kill()
    log = server.log()
    seconds = float(LOADED.search(log).group(1))
    return seconds, [match for match in map(PROGRESS.match, log.splitlines()) if match], log


def test_long_load_logs_progress_with_eta_at_most_once_a_second(tmp_path):
    keys = 1_000_000
    seconds, progress, log = load_and_log(tmp_path / "first", keys)
    if seconds < 1.5:
        # A fast machine: a bigger file, sized from the measured rate to load in about 3 s
        # (a load under a second logs no progress line, by design).
        keys = min(4_000_000, int(keys * 3 / max(seconds, 0.1)))
        seconds, progress, log = load_and_log(tmp_path / "second", keys)
    assert progress, log
    percents = [float(match.group(2)) for match in progress]
    assert percents == sorted(percents) and all(0 < p < 100 for p in percents)
    # At most one line a second: n lines need at least n-1 seconds of loading.
    assert len(progress) <= int(seconds) + 1, log


@pytest.mark.parametrize("script", ["trioredis-server", "trioredis-check-aof",
                                    "trioredis-check-snapshot"])
def test_console_scripts_are_installed(script):
    """The names an operator types (pip install puts them in the environment's bin/): the
    server answers --version, the checkers print their usage and refuse to run without a
    file.  Taken from the venv running the tests, never from PATH (a global install there
    would hide a missing one)."""
    path = console_script(script)
    if script == "trioredis-server":
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and __version__ in result.stdout
    else:
        result = subprocess.run([path], capture_output=True, text=True, timeout=60)
        assert result.returncode != 0
        assert "Usage:" in result.stdout + result.stderr
