"""The command line: ``python -m trioredis`` version, --test-config, start-up with the
documented config, SIGTERM, and the real redis-cli and redis-benchmark against it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from parity import RawClient, encode_command
from servers import REPO, ServerProcess, run_cli
from trioredis import REDIS_VERSION, __version__

DEFAULT_CONFIG = os.path.join(REPO, "config", "trioredis.conf")


def test_version_flag_prints_both_versions():
    result = run_cli("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout and REDIS_VERSION in result.stdout
    assert run_cli("-v").returncode == 0


def test_help_flag_shows_usage():
    result = run_cli("--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_test_config_passes_for_the_documented_file():
    result = run_cli("--test-config", DEFAULT_CONFIG)
    assert result.returncode == 0, result.stderr
    assert "Configuration test passed" in result.stdout


def test_test_config_fails_with_file_and_line(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("port 7000\nmaxclients lots\n")
    result = run_cli("--test-config", str(path))
    assert result.returncode == 1
    assert f"{path}:2: argument couldn't be parsed into an integer" in result.stderr


def test_bad_command_line_option_stops_start_up():
    result = run_cli("--port", "nope")
    assert result.returncode == 1
    assert "command line: argument couldn't be parsed into an integer" in result.stderr


@pytest.fixture(scope="module")
def process(tmp_path_factory):
    """The server as users start it: the documented config file, overridden where a test
    machine needs it (own port and directory)."""
    directory = str(tmp_path_factory.mktemp("cli-server"))
    running = ServerProcess(directory, [["save", ""]], config_path=DEFAULT_CONFIG)
    running.start()
    yield running
    running.stop()


def test_started_with_the_default_config_answers_ping(process):
    client = process.client()
    assert client.ping() is True
    assert client.config_get("appendonly") == {"appendonly": "yes"}


def test_start_up_banner_names_version_port_and_backends(process):
    log = process.log()
    assert f"version={__version__}" in log and f"port={process.port}" in log
    assert "Persistence backends loaded" in log and "Ready to accept connections" in log


def test_sigterm_exits_zero(tmp_path):
    running = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"]]).start()
    assert running.client().ping() is True
    assert running.stop() == 0
    assert "ready to exit, bye bye" in running.log()


def test_sigint_exits_zero(tmp_path):
    running = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"]]).start()
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(60) == 0


def test_shutdown_command_exits_zero(tmp_path):
    running = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"]]).start()
    with RawClient(running.port) as raw:
        raw.send(encode_command("SHUTDOWN", "NOSAVE"))
        assert raw.read_until_closed() == b""  # no reply: the connection just closes
    assert running.process.wait(60) == 0


def test_redis_cli_works_against_the_server(process, redis_cli):
    def cli(*args: str) -> str:
        result = subprocess.run([redis_cli, "-p", str(process.port), *args],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert cli("PING") == "PONG\n"
    assert cli("SET", "cli:key", "hello world") == "OK\n"
    assert cli("GET", "cli:key") == "hello world\n"
    assert cli("INCR", "cli:n") == "1\n"
    assert cli("GET", "nothing") == "\n"
    assert cli("--no-raw", "GET", "nothing") == "(nil)\n"
    assert cli("--no-raw", "INCR", "wrong type here") .startswith("(integer)")
    assert cli("--no-raw", "LPUSH", "cli:key", "x").startswith("(error) WRONGTYPE")
    assert "redis_version:7.0.15" in cli("INFO", "server")
    assert cli("DBSIZE").strip().isdigit()


def test_redis_cli_interactive_session_with_hints(process, redis_cli):
    """redis-cli reads COMMAND DOCS for its hints at start-up; a session typed on stdin
    must work."""
    result = subprocess.run([redis_cli, "-p", str(process.port)], input="SET a 1\nGET a\n",
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["OK", "1"]


def test_redis_benchmark_runs_to_the_end(process):
    benchmark = shutil.which("redis-benchmark")
    if benchmark is None:
        pytest.skip("redis-benchmark is not installed (Debian package redis-tools)")
    result = subprocess.run(
        [benchmark, "-p", str(process.port), "-t", "set,get,incr,mset", "-n", "2000", "-q"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for name in ("SET", "GET", "INCR", "MSET"):
        assert f"{name}:" in result.stdout or f"{name} (" in result.stdout, result.stdout


def test_redis_cli_shows_argument_hints_as_for_redis(process, redis_cli):
    """Typed into an interactive redis-cli (in tmux, as a person would), ``SET `` shows the
    argument hint redis-cli builds from COMMAND DOCS."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed: the interactive redis-cli check needs a terminal")
    session = f"trioredis-hints-{os.getpid()}"
    subprocess.run([tmux, "new-session", "-d", "-s", session, "-x", "160", "-y", "10",
                    f"{redis_cli} -p {process.port}"], check=True, timeout=30)
    try:
        screen = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not screen.rstrip().endswith(">"):  # the prompt
            screen = subprocess.run([tmux, "capture-pane", "-t", session, "-p"],
                                    capture_output=True, text=True, timeout=30).stdout
            time.sleep(0.1)
        subprocess.run([tmux, "send-keys", "-t", session, "SET "], check=True, timeout=30)
        while time.monotonic() < deadline and "key value" not in screen:
            time.sleep(0.1)
            screen = subprocess.run([tmux, "capture-pane", "-t", session, "-p"],
                                    capture_output=True, text=True, timeout=30).stdout
        assert "SET key value [NX|XX] [GET]" in screen, screen
        # A nested argument structure and a subcommand, from the signatures' declarations.
        for typed, hint in (("XADD ", "[MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field"),
                            ("CONFIG GET ", "parameter [parameter ...]")):
            subprocess.run([tmux, "send-keys", "-t", session, "C-u", typed], check=True,
                           timeout=30)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and hint not in screen:
                time.sleep(0.1)
                screen = subprocess.run([tmux, "capture-pane", "-t", session, "-p"],
                                        capture_output=True, text=True, timeout=30).stdout
            assert hint in screen, screen
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], timeout=30)
