"""The server under an operator's tools: signals, logrotate, ``daemonize``, systemd's
``Type=notify``.  Real processes, real signals, a real datagram socket as NOTIFY_SOCKET."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile

import pytest
import redis
from parity import ReferenceRedis
from servers import REPO, ServerProcess, console_script, free_port, run_cli, wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sighup_is_ignored_and_the_pidfile_stays(tmp_path):
    pidfile = tmp_path / "server.pid"
    with ServerProcess(str(tmp_path), [["pidfile", str(pidfile)]]) as server:
        assert int(pidfile.read_text()) == server.process.pid
        server.process.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert server.process.poll() is None
        assert server.client().ping()
        assert server.stop() == 0
    assert not pidfile.exists()


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2])
def test_sigusr_ends_the_process_as_redis_does(tmp_path, signum):
    """Redis 7.0 installs no handler for SIGUSR1/SIGUSR2 in its main process: the default
    action ends it.  Same outcome, checked against redis-server itself."""
    with ServerProcess(str(tmp_path)) as server:
        server.process.send_signal(signum)
        assert server.process.wait(30) == -signum
    if shutil.which("redis-server") is None:
        return
    with ReferenceRedis() as reference:
        os.kill(reference.process.pid, signum)
        assert reference.process.wait(30) == -signum


def test_a_renamed_log_file_is_recreated_on_the_next_line(tmp_path):
    """logrotate's create mode: rename, then the server's next line starts a new file."""
    logfile = tmp_path / "trioredis.log"
    with ServerProcess(str(tmp_path), [["logfile", str(logfile)]]) as server:
        wait_for(lambda: b"Ready to accept connections" in logfile.read_bytes(), what="the log")
        rotated = tmp_path / "trioredis.log.1"
        os.rename(logfile, rotated)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(60) == 0
    assert b"Ready to accept connections" in rotated.read_bytes()
    assert b"Received SIGTERM" not in rotated.read_bytes()
    text = logfile.read_text()
    assert "Received SIGTERM scheduling shutdown..." in text and "bye bye" in text


def test_daemonize_forks_and_the_pidfile_names_the_daemon(tmp_path):
    port = free_port()
    pidfile = tmp_path / "daemon.pid"
    logfile = tmp_path / "daemon.log"
    started = subprocess.run(
        [sys.executable, "-m", "trioredis", "--port", str(port), "--bind", "127.0.0.1",
         "--dir", str(tmp_path), "--daemonize", "yes", "--pidfile", str(pidfile),
         "--logfile", str(logfile)], capture_output=True, text=True, timeout=60)
    # The command returns at once, successfully and silently, as redis-server's does.
    assert started.returncode == 0 and started.stdout == "" and started.stderr == ""
    wait_for(lambda: pidfile.exists() and pidfile.read_text().endswith("\n"), what="pidfile")
    pid = int(pidfile.read_text())
    try:
        client = redis.Redis(port=port)
        wait_for(lambda: _ping(client), what="the daemon to answer")
        assert client.info("server")["process_id"] == pid
        # Detached: its own session, stdio on /dev/null, logging to its file.
        assert os.getsid(pid) != os.getsid(0)
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
        assert f"pid={pid}" in logfile.read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not _alive(pid), what="the daemon to exit")
    assert not pidfile.exists()


def _ping(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except (redis.ConnectionError, redis.BusyLoadingError):
        return False


def _notify_socket(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    return sock


def _messages_until(sock: socket.socket, wanted: str) -> list[str]:
    messages: list[str] = []
    while wanted not in messages:
        messages.append(sock.recv(4096).decode())
    return messages


def _aof_with_keys(directory, keys: int) -> None:
    """An AOF to load, long enough that readiness before loading would be seen."""
    chunks = [b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n"]
    for index in range(keys):
        key = b"key:%d" % index
        chunks.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$5\r\nvalue\r\n" % (len(key), key))
    (directory / "appendonly.aof").write_bytes(b"".join(chunks))


@pytest.mark.parametrize("supervised", ["systemd", "auto"])
def test_systemd_hears_ready_after_loading_and_stopping_at_shutdown(tmp_path, supervised):
    keys = 100_000
    _aof_with_keys(tmp_path, keys)
    with _notify_socket(str(tmp_path / "notify")) as sock:
        server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""],
                                               ["supervised", supervised],
                                               ["daemonize", "yes"]],
                               env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
        server.start(wait=False)
        try:
            messages = _messages_until(sock, "READY=1\n")
            # Loading is over when READY=1 arrives: every key is there, no LOADING error.
            assert server.client().dbsize() == keys
            assert server.client().info("server")["process_supervised"] == "systemd"
            assert messages[0] == "STATUS=trioredis is loading...\n"
            assert messages[-2:] == ["STATUS=Ready to accept connections\n", "READY=1\n"]
            # Supervised: in the foreground despite daemonize yes, as redis-server.
            assert server.process.poll() is None
            assert "Supervised by systemd" in server.log()
            server.process.send_signal(signal.SIGTERM)
            assert _messages_until(sock, "STOPPING=1\n")[-1] == "STOPPING=1\n"
            assert server.process.wait(60) == 0
        finally:
            server.kill()


def test_notify_socket_in_the_abstract_namespace(tmp_path):
    name = f"@trioredis-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:])
        sock.settimeout(60)
        with ServerProcess(str(tmp_path), [["supervised", "systemd"]],
                           env={"NOTIFY_SOCKET": name}) as server:
            assert "READY=1\n" in _messages_until(sock, "READY=1\n")
            assert server.stop() == 0


def test_supervised_systemd_without_notify_socket_runs_unsupervised(tmp_path):
    env = {"NOTIFY_SOCKET": ""}
    with ServerProcess(str(tmp_path), [["supervised", "systemd"]], env=env) as server:
        assert server.client().ping()
        assert "NOTIFY_SOCKET environment variable not found" in server.log()


@pytest.mark.parametrize(("option", "path"), [("--print-default-config", "config/trioredis.conf"),
                                              ("--print-systemd-unit", "config/trioredis.service")])
def test_the_installed_package_prints_its_config_and_unit(option, path):
    printed = run_cli(option)
    assert printed.returncode == 0
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        assert printed.stdout == handle.read()


def test_the_wheel_ships_the_default_config_and_the_unit(tmp_path):
    """The files are package data of trioredis.defaults (symlinks into config/): a wheel
    built from the checkout must hold them, not only the editable install."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(tmp_path), REPO], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("trioredis-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "trioredis/defaults/trioredis.conf" in names
    assert "trioredis/defaults/trioredis.service" in names


def test_the_systemd_unit_is_valid_and_its_command_line_parses(tmp_path):
    with open(os.path.join(REPO, "config", "trioredis.service"), encoding="utf-8") as handle:
        unit = handle.read()
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    words = exec_start.removeprefix("ExecStart=").split()
    assert words[0] == "/opt/trioredis/bin/trioredis-server"
    assert "Type=notify" in unit and "--supervised systemd" in exec_start
    # Its options, against the default config, pass the server's own check.
    data = tmp_path / "data"
    checked = run_cli("--test-config", os.path.join(REPO, "config", "trioredis.conf"),
                      *[str(data) if word == "/var/lib/trioredis" else word for word in words[2:]])
    assert checked.returncode == 0, checked.stderr
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    local = tmp_path / "trioredis.service"
    local.write_text(unit.replace(words[0], console_script("trioredis-server")))
    verified = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True,
                              timeout=60)
    assert verified.returncode == 0, verified.stderr


def test_info_executable_is_the_program_started_not_a_path_under_dir(tmp_path):
    """Started by its bare name from PATH, in a directory it then leaves for ``dir``."""
    port = free_port()
    script = console_script("trioredis-server")
    env = dict(os.environ, PATH=os.path.dirname(script) + os.pathsep + os.environ["PATH"])
    process = subprocess.Popen(["trioredis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--dir", "data", "--save", ""], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        wait_for(lambda: _ping(client), what="the server")
        assert client.info("server")["executable"] == os.path.realpath(script)
        assert os.path.isfile(client.info("server")["executable"])
    finally:
        process.terminate()
        process.wait(60)


def test_upstart_sees_the_server_stop_itself_once_then_it_serves(tmp_path):
    """``expect stop``: the job stops itself (SIGSTOP) when ready; upstart then continues
    it.  Redis does it before loading, as here."""
    server = ServerProcess(str(tmp_path), [["supervised", "upstart"]],
                           env={"UPSTART_JOB": "trioredis"})
    server.start(wait=False)
    try:
        pid = server.process.pid
        wait_for(lambda: _state(pid) == "T", what="the server to stop itself")
        os.kill(pid, signal.SIGCONT)
        server.wait_ready()
        assert server.client().info("server")["process_supervised"] == "upstart"
        assert "supervised by upstart, will stop to signal readiness." in server.log()
        assert server.stop() == 0
    finally:
        server.kill()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0]


def test_a_log_file_that_cannot_be_opened_stops_start_up(tmp_path):
    """Opened per line, the log file is still tried once at start-up, as redis-server does."""
    result = run_cli("--port", "0", "--unixsocket", str(tmp_path / "s.sock"),
                     "--logfile", str(tmp_path / "missing" / "trioredis.log"))
    assert result.returncode == 1
    assert "Can't open the log file: No such file or directory" in result.stderr
