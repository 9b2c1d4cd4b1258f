"""Parity with the real Redis: raw RESP clients and a Debian ``redis-server`` to compare with.

``RawClient`` sends commands and returns each reply as the exact bytes the server sent, so a
test compares byte for byte (error strings, nulls, integer vs bulk).  ``reference`` is a
module-scoped real Redis 7 (skipped when ``redis-server`` is not installed).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from servers import ServerThread, free_port


def encode_command(*args) -> bytes:
    parts = []
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(raw), raw))
    return b"*%d\r\n" % len(args) + b"".join(parts)


class RawClient:
    """One connection; replies as raw RESP bytes."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, *args) -> bytes:
        self.send(encode_command(*args))
        return self.read_reply()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def read_reply(self) -> bytes:
        """The next whole reply's bytes; b"" when the server closed the connection first."""
        while True:
            end = reply_end(self.buffer, 0)
            if end is not None:
                reply, self.buffer = self.buffer[:end], self.buffer[end:]
                return reply
            if not self._fill():
                rest, self.buffer = self.buffer, b""
                return rest

    def read_until_closed(self, timeout: float = 5) -> bytes:
        """Everything until the server closes the connection."""
        self.sock.settimeout(timeout)
        while self._fill():
            pass
        rest, self.buffer = self.buffer, b""
        return rest

    def is_closed(self, timeout: float = 5) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def held(client: RawClient, timeout: float = 0.15) -> bool:
    """Whether ``client``'s pending command got no reply within ``timeout`` (a command held
    by CLIENT PAUSE); bytes that did arrive stay in its buffer."""
    client.sock.settimeout(timeout)
    try:
        client.buffer += client.sock.recv(65536)
        return False
    except TimeoutError:
        return True
    finally:
        client.sock.settimeout(10)

def reply_end(buffer: bytes, pos: int) -> int | None:
    """Where the RESP reply starting at ``pos`` ends, or None when it is incomplete."""
    line_end = buffer.find(b"\r\n", pos)
    if line_end < 0:
        return None
    kind = buffer[pos : pos + 1]
    after = line_end + 2
    if kind in (b"+", b"-", b":", b"_", b",", b"#", b"("):
        return after
    count = int(buffer[pos + 1 : line_end])
    if kind in (b"$", b"=", b"!"):
        if count < 0:
            return after
        end = after + count + 2
        return end if len(buffer) >= end else None
    if kind in (b"*", b"~", b">", b"%", b"|"):
        if count < 0:
            return after
        items = count * 2 if kind in (b"%", b"|") else count
        for _ in range(items):
            after = reply_end(buffer, after)
            if after is None:
                return None
        return after
    raise ValueError(f"not RESP: {buffer[pos:pos + 40]!r}")


class ReferenceRedis:
    """A real redis-server in a subprocess (no persistence unless ``options`` ask for it:
    ``"--appendonly", "yes"``), in ``directory`` or a temporary one of its own.  Ready once
    PING answers PONG (not while it loads).  ``config_path``: a config file read first (CONFIG
    REWRITE needs one).  A context manager."""

    def __init__(self, *options: str, directory: str | None = None,
                 config_path: str | None = None) -> None:
        self.owns_directory = directory is None
        self.directory = str(directory) if directory is not None else tempfile.mkdtemp(
            prefix="trioredis-ref-")
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", *([str(config_path)] if config_path else []), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory, "--enable-debug-command", "yes",
             *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with RawClient(self.port) as client:
                    if client.call("PING") == b"+PONG\r\n":
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise TimeoutError("redis-server did not start")
            time.sleep(0.02)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, protocol=2)

    def __enter__(self) -> ReferenceRedis:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def reference():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: parity with the real Redis is not checked")
    ref = ReferenceRedis()
    yield ref
    ref.stop()


def compare_scripts(our_port: int, reference_port: int, script: list[tuple]) -> list[tuple]:
    """Run ``script`` (commands) on a fresh db 9 of both servers; the commands whose replies
    differ, as (command, ours, theirs)."""
    differences = []
    with RawClient(our_port) as ours, RawClient(reference_port) as theirs:
        for client in (ours, theirs):
            client.call("SELECT", 9)
            client.call("FLUSHALL")
        for args in script:
            mine, real = ours.call(*args), theirs.call(*args)
            if mine != real:
                differences.append((args, mine, real))
    return differences


def require_commands(port: int, *names: str) -> None:
    """Fail at once, with a clear message, when our server lacks a command a script needs
    (every command group is built: a missing one is a regression, never a reason to skip)."""
    with RawClient(port) as client:
        reply = client.call("COMMAND", "INFO", *names)
    assert b"$-1\r\n" not in reply, f"a command the script needs is missing: {' '.join(names)}"


def parse_resp3(data: bytes):
    """One RESP3 reply (maps, sets, arrays, bulk and simple strings, integers, nulls) as
    Python values with trioredis's reply types, so it compares field by field and encodes
    back to RESP2 or RESP3."""
    value, end = _parse_resp3_at(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after a RESP3 value")
    return value


def _parse_resp3_at(data: bytes, pos: int):
    from trioredis.resp import Map, SetReply, Status

    line_end = data.index(b"\r\n", pos)
    kind, text = data[pos : pos + 1], data[pos + 1 : line_end]
    after = line_end + 2
    if kind == b"+":
        return Status(text), after
    if kind == b":":
        return int(text), after
    if kind == b"_":
        return None, after
    if kind == b"$":
        size = int(text)
        if size < 0:
            return None, after
        return data[after : after + size], after + size + 2
    count = int(text)
    items = []
    for _ in range(count * 2 if kind == b"%" else max(count, 0)):
        item, after = _parse_resp3_at(data, after)
        items.append(item)
    if kind == b"%":
        return Map(zip(items[0::2], items[1::2], strict=True)), after
    if kind == b"~":
        return SetReply(items), after
    if kind == b"*":
        return items if count >= 0 else None, after
    raise ValueError(f"unexpected RESP3 type {kind!r}")


def keyspace_events(port: int, script: list[list[bytes]], flags: bytes = b"KEA") -> list[bytes]:
    """The keyspace and keyevent messages ``script`` publishes in database 9 (emptied first)
    with ``notify-keyspace-events`` set to ``flags``, in order, as raw replies."""
    with RawClient(port) as subscriber, RawClient(port) as writer:
        writer.call(b"CONFIG", b"SET", b"notify-keyspace-events", flags)
        writer.call(b"SELECT", b"9")
        writer.call(b"FLUSHDB")
        subscriber.call(b"PSUBSCRIBE", b"__key*@9__:*")
        for command in script:
            writer.call(*command)
        writer.call(b"CONFIG", b"SET", b"notify-keyspace-events", b"")
        subscriber.send(encode_command(b"PING"))
        messages = []
        while (message := subscriber.read_reply()) and b"pong" not in message:
            messages.append(message)
    return messages


@contextmanager
def server_beside_redis(directory: str) -> Iterator[tuple[ServerThread, ReferenceRedis]]:
    """A trioredis server (in a thread, nothing persisted, files in ``directory``) and a
    reference redis-server, for module fixtures of differential tests: ``(ours, ref)``."""
    with ReferenceRedis() as ref:
        ours = ServerThread([["dir", directory], ["save", ""], ["appendonly", "no"]]).start()
        ours.wait_ready()
        try:
            yield ours, ref
        finally:
            ours.stop()
