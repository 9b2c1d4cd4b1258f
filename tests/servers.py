"""Servers for tests: in-process (a trio thread) and as a subprocess (crash tests).

Both talk over real sockets; tests use redis-py and redis-cli against them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable

import hiredis
import redis
import trio
from trioredis import hookimpl
from trioredis.config import load_config
from trioredis.server import Server

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Test servers allow DEBUG (the default, as in Redis 7, is no): many tests use DEBUG RELOAD,
# DIGEST or SLEEP.  A test's own options come later and win.
TEST_DEFAULTS: list[list[str]] = [["enable-debug-command", "yes"]]


class ServerThread:
    """A trioredis server running ``trio.run`` in a thread of the test process, on a port the
    kernel picks.  ``options`` are config lines such as ``[["appendonly", "yes"]]``."""

    def __init__(self, options: Iterable[list[str]] = (), config_path: str | None = None) -> None:
        self.loaded = load_config(config_path, [*TEST_DEFAULTS, *options])
        self.server = Server(self.loaded, ephemeral_port=True)
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._token: trio.lowlevel.TrioToken | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                await nursery.start(self.server.run)
                self._started.set()

        try:
            trio.run(main)
        except BaseException as error:  # reported by stop()
            self.error = error
            self._started.set()

    def start(self) -> ServerThread:
        self._thread.start()
        self._started.wait(30)
        if self.error is not None:
            raise self.error
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.server.ready.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError("server not ready")
            time.sleep(0.01)

    @property
    def port(self) -> int:
        return self.server.port

    def client(self, **kwargs) -> redis.Redis:
        kwargs.setdefault("protocol", 2)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def stop(self) -> None:
        engine = self.server.engine
        if engine is not None and self._token is not None and self._thread.is_alive():
            try:
                trio.from_thread.run_sync(engine.request_shutdown, False, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join(30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float = 30, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; an AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def wait_rewrite_done(client: redis.Redis, timeout: float = 30) -> None:
    """Until INFO persistence shows no AOF rewrite in progress (trioredis or Redis)."""
    wait_for(lambda: not client.info("persistence")["aof_rewrite_in_progress"], timeout,
             "the AOF rewrite to finish")


def console_script(name: str) -> str:
    """The path of an installed console script (``trioredis-check-snapshot``...) next to the
    Python running the tests: the venv's ``bin/``.  Never looked up on PATH, where a global
    install (``/usr/local/bin``, a pyenv shim) would hide a venv that lacks it."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    assert os.access(path, os.X_OK), f"{name} is not installed next to {sys.executable}"
    return path


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m trioredis ARGS`` to its end (``--version``, ``--test-config``...)."""
    return subprocess.run([sys.executable, "-m", "trioredis", *args], capture_output=True,
                          text=True, timeout=timeout)


class ServerProcess:
    """``python -m trioredis`` as a child process, for tests that kill it."""

    def __init__(self, directory: str, options: Iterable[list[str]] = (), config_path: str | None = None,
                 port: int | None = None, preexec_fn=None, env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.options = list(options)
        self.config_path = config_path
        self.preexec_fn = preexec_fn
        self.env = env
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(directory, "server.log")

    def start(self, wait: bool = True, timeout: float = 60) -> ServerProcess:
        args = [sys.executable, "-m", "trioredis"]
        if self.config_path:
            args.append(self.config_path)
        args += ["--port", str(self.port), "--dir", self.directory, "--bind", "127.0.0.1"]
        for words in TEST_DEFAULTS:
            args += ["--" + words[0], *words[1:]]
        for words in self.options:
            args += ["--" + words[0], *words[1:]]
        log = open(self.log_path, "ab")  # noqa: SIM115
        env = dict(os.environ, **(self.env or {}))
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
                                        preexec_fn=self.preexec_fn, env=env)
        log.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def client(self, **kwargs) -> redis.Redis:
        kwargs.setdefault("protocol", 2)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until PING answers PONG (not LOADING)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.client(socket_timeout=2).ping():
                    return
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                pass
            except redis.ResponseError as error:
                if "LOADING" not in str(error):
                    raise
            time.sleep(0.02)
        raise TimeoutError(f"server did not answer PING:\n{self.log()}")

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)

    def stop(self) -> int | None:
        """SIGTERM and wait: the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class PropagationRecorder:
    """A test-only plugin registered on a running server: what the engine propagates, as
    (db, argv) in ``seen``; ``argvs`` drops the db."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, list[bytes]]] = []

    @hookimpl
    def trioredis_command_propagated(self, db, argv):
        self.seen.append((db, list(argv)))

    @property
    def argvs(self) -> list[list[bytes]]:
        return [argv for _db, argv in self.seen]


def record_propagation(server: ServerThread) -> PropagationRecorder:
    """Start recording what ``server`` propagates from now on."""
    recorder = PropagationRecorder()
    engine = server.server.engine
    engine.plugin_manager.register(recorder)
    engine.refresh_hooks()
    return recorder


def exchange(server: ServerThread, *commands: bytes) -> list[object]:
    """Send inline commands on a raw socket: one reply each (hiredis-parsed; an error reply
    becomes its text, prefix included)."""
    reader = hiredis.Reader()
    replies: list[object] = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"".join(c + b"\r\n" for c in commands))
        while len(replies) < len(commands):
            data = sock.recv(65536)
            assert data, replies
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                replies.append(reply)
    return [str(r) if isinstance(r, hiredis.ReplyError) else r for r in replies]
