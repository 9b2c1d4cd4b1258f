"""Inline commands with quotes (Redis's sdssplitargs: "double quotes" with \\n \\xHH escapes,
'single quotes', a closing quote that must end the word) against redis-server 7.0.15: seeded
random lines, the same raw reply bytes, including the protocol error that closes the
connection on unbalanced quotes."""

from __future__ import annotations

import random
import shutil

import pytest
from parity import RawClient, server_beside_redis

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")

# Bytes that make quoting interesting (no CR/LF: they end the line; no NUL: Redis reads the
# line as a C string there, a difference this test is not about).
ALPHABET = [b" ", b" ", b"\t", b"a", b"b", b"\\", b"x", b"4", b"1", b"f", b"G", b"n", b"t",
            b'"', b'"', b"'", b"'"]
LINES_PER_SEED = 300


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with server_beside_redis(str(tmp_path_factory.mktemp("inline"))) as pair:
        yield pair


DOUBLE_PIECES = [b"a", b"b c", b"\\n", b"\\r", b"\\t", b"\\b", b"\\a", b"\\x41", b"\\x7e",
                 b"\\x4G", b"\\x", b"\\\\", b'\\"', b"'", b"\\q", b"\t"]
SINGLE_PIECES = [b"a", b"b c", b"\\'", b'"', b"\\n", b"\\", b"\t"]


def random_word(rng: random.Random) -> bytes:
    """A plain word, a double- or single-quoted one (sometimes after a plain prefix, or with
    a letter right after the closing quote: an error), or random bytes."""
    kind = rng.random()
    if kind < 0.25:
        return b"".join(rng.choice([b"a", b"x", b"G", b"4", b"\\"]) for _ in range(rng.randrange(1, 5)))
    if kind < 0.85:
        quote, pieces = (b'"', DOUBLE_PIECES) if kind < 0.6 else (b"'", SINGLE_PIECES)
        body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 5)))
        prefix = b"ab" if rng.random() < 0.15 else b""
        suffix = b"z" if rng.random() < 0.1 else b""
        closing = quote if rng.random() < 0.93 else b""
        return prefix + quote + body + closing + suffix
    return b"".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 8)))


def random_line(rng: random.Random) -> bytes:
    """``RPUSH l`` and random words: the list then shows every word as the server split it."""
    words = [random_word(rng) for _ in range(rng.randrange(0, 5))]
    return b"RPUSH l " + b"".join(word + rng.choice([b" ", b"\t", b"  "]) for word in words)


def run_line(client: RawClient, line: bytes) -> tuple[bytes, bytes, bool]:
    """RPUSH's reply, the list as split (LRANGE, then DEL), and whether the connection was
    closed (a protocol error)."""
    client.send(line + b"\r\n")
    reply = client.read_reply()
    if reply.startswith(b"-ERR Protocol error"):
        return reply, b"", client.is_closed()
    return reply, client.call("LRANGE", "l", 0, -1) + client.call("DEL", "l"), False


@pytest.mark.parametrize("seed", [1, 2])
def test_random_quoted_inline_lines_split_as_redis_splits_them(servers, seed):
    ours, ref = servers
    rng = random.Random(seed)
    differences = []
    clients = {port: RawClient(port) for port in (ours.port, ref.port)}
    try:
        for _ in range(LINES_PER_SEED):
            line = random_line(rng)
            results = {}
            for port in clients:
                results[port] = run_line(clients[port], line)
                if results[port][2]:  # closed after the protocol error: a new connection
                    clients[port].close()
                    clients[port] = RawClient(port)
            if results[ours.port] != results[ref.port]:
                differences.append((line, results[ours.port], results[ref.port]))
    finally:
        for client in clients.values():
            client.close()
    assert not differences, differences[:5]
