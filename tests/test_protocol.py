"""The wire protocol over real sockets: every malformed request gets Redis's exact error and
closes only that client; inline commands with quotes; pipelined batches split at every byte
give the same replies; RESP3 reply types."""

from __future__ import annotations

import socket
import time

import parity
import pytest
from parity import RawClient, encode_command

reference = parity.reference  # the real Redis, a module-scoped fixture


def exchange(port: int, data: bytes, wait: float = 2.0) -> bytes:
    """Send ``data`` on a fresh connection; everything received, then ``<CLOSED>`` if the
    server closed the connection or ``<OPEN>`` if it was still open after ``wait``."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(wait)
        sock.sendall(data)
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return received + b"<CLOSED>"
                received += chunk
        except TimeoutError:
            return received + b"<OPEN>"
        except ConnectionResetError:
            return received + b"<CLOSED>"


def protocol_error(reason: str) -> bytes:
    return b"-ERR Protocol error: " + reason.encode() + b"\r\n<CLOSED>"


MALFORMED = {
    "multibulk count not a number": (b"*abc\r\n", protocol_error("invalid multibulk length")),
    "bulk length not a number": (b"*1\r\n$abc\r\n", protocol_error("invalid bulk length")),
    "negative bulk length": (b"*1\r\n$-1\r\n", protocol_error("invalid bulk length")),
    "bulk over proto-max-bulk-len": (b"*1\r\n$536870913\r\n",
                                     protocol_error("invalid bulk length")),
    "element is not a bulk": (b"*1\r\nPING\r\n", protocol_error("expected '$', got 'P'")),
    "integer element": (b"*1\r\n:1\r\n", protocol_error("expected '$', got ':'")),
    "inline line over 64 KiB": (b"A" * (65 * 1024), protocol_error("too big inline request")),
    "multibulk count line over 64 KiB": (b"*" + b"1" * (65 * 1024),
                                         protocol_error("too big mbulk count string")),
    "bulk count line over 64 KiB": (b"*1\r\n$" + b"1" * (65 * 1024),
                                    protocol_error("too big bulk count string")),
    "unbalanced double quotes": (b'SET "a b\r\n', protocol_error("unbalanced quotes in request")),
    "closing quote followed by a letter": (b'SET "a"b c\r\n',
                                           protocol_error("unbalanced quotes in request")),
    "unbalanced single quotes": (b"SET 'a\r\n", protocol_error("unbalanced quotes in request")),
    "garbage after a good command": (b"PING\r\n*1\r\n$x\r\n",
                                     b"+PONG\r\n" + protocol_error("invalid bulk length")),
    "bad count after a good multibulk": (b"*1\r\n$4\r\nPING\r\n*x\r\n",
                                         b"+PONG\r\n" + protocol_error("invalid multibulk length")),
}

HARMLESS = {
    "empty multibulk is skipped": (b"*0\r\n*1\r\n$4\r\nPING\r\n", b"+PONG\r\n<OPEN>"),
    "negative multibulk is skipped": (b"*-1\r\n*1\r\n$4\r\nPING\r\n", b"+PONG\r\n<OPEN>"),
    "blank lines are skipped": (b"\r\n\r\nPING\r\n", b"+PONG\r\n<OPEN>"),
    "bulk terminator is not checked": (b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n",
                                       b"+PONG\r\n+PONG\r\n<OPEN>"),
    "inline escapes in double quotes": (b'ECHO "a\\x41\\n\\t"\r\n', b"$4\r\naA\n\t\r\n<OPEN>"),
    "escaped quote in single quotes": (b"ECHO 'it\\'s'\r\n", b"$4\r\nit's\r\n<OPEN>"),
    "inline unknown command": (
        b"FOO bar baz\r\n",
        b"-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n<OPEN>"),
    "inline with LF only": (b"PING\nPING\n", b"+PONG\r\n+PONG\r\n<OPEN>"),
    "leading space makes it inline": (
        b" *1\r\n$4\r\nPING\r\n",
        b"-ERR unknown command '*1', with args beginning with: \r\n"
        b"-ERR unknown command '$4', with args beginning with: \r\n+PONG\r\n<OPEN>"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_request_gets_redis_error_and_closes(server, name):
    data, expected = MALFORMED[name]
    assert exchange(server.port, data) == expected


@pytest.mark.parametrize("name", sorted(HARMLESS))
def test_unusual_but_valid_requests_are_served(server, name):
    data, expected = HARMLESS[name]
    assert exchange(server.port, data, wait=0.15) == expected


def test_protocol_replies_match_the_real_redis(server, reference):
    for name, (data, _expected) in {**MALFORMED, **HARMLESS}.items():
        wait = 2.0 if name in MALFORMED else 0.15
        assert exchange(server.port, data, wait) == exchange(reference.port, data, wait), name


def test_multibulk_count_over_int_max_is_refused(server):
    """Redis 7.0 accepts up to INT_MAX elements (the query buffer limit bounds the bytes)."""
    assert exchange(server.port, b"*2147483648\r\n") == protocol_error("invalid multibulk length")
    # The limit itself is accepted: the server waits for the elements.
    assert exchange(server.port, b"*2147483647\r\n", wait=0.3) == b"<OPEN>"


def test_query_buffer_limit_closes_the_client(server):
    with RawClient(server.port) as admin:
        admin.call("CONFIG", "SET", "client-query-buffer-limit", "1mb")
        with socket.create_connection(("127.0.0.1", server.port)) as greedy:
            greedy.settimeout(5)
            greedy.sendall(b"*2\r\n$4\r\nECHO\r\n$3000000\r\n")
            closed = False
            try:
                for _ in range(100):
                    greedy.sendall(b"x" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            if not closed:
                try:
                    closed = greedy.recv(100) == b""
                except ConnectionResetError:
                    closed = True
            assert closed
        assert admin.call("PING") == b"+PONG\r\n"


def test_garbage_from_one_client_does_not_touch_another(server):
    """A second client, in the middle of a command, finishes it after the first client is
    thrown out for a protocol error; its data is intact."""
    with RawClient(server.port) as good:
        good.call("SET", "mine", "safe")
        half = encode_command("SET", "mine", "updated")
        good.send(half[:15])
        assert exchange(server.port, b"*1\r\n$-5\r\n") == protocol_error("invalid bulk length")
        good.send(half[15:])
        assert good.read_reply() == b"+OK\r\n"
        assert good.call("GET", "mine") == b"$7\r\nupdated\r\n"
        assert good.call("DBSIZE") == b":1\r\n"


# --- pipelining ----------------------------------------------------------------------------

PIPELINE = (
    encode_command("SET", "k", "v" * 20)
    + b"PING\r\n"
    + encode_command("GET", "k")
    + encode_command("INCR", "n")
    + b'ECHO "two words"\r\n'
    + encode_command("MSET", "a", "1", "b", "")
    + encode_command("MGET", "a", "b", "missing")
    + encode_command("APPEND", "k", "\r\n*1\r\n$4\r\n")  # protocol-looking bytes in a value
    + encode_command("STRLEN", "k")
    + encode_command("DEL", "k", "a", "b", "n")
)


def _replies(port: int, chunks: list[bytes], expected_replies: int) -> bytes:
    with RawClient(port) as raw:
        raw.call("FLUSHDB")
        for chunk in chunks:
            raw.send(chunk)
            time.sleep(0.0005)  # let the server read each part on its own
        return b"".join(raw.read_reply() for _ in range(expected_replies))


def test_pipeline_split_at_every_byte_gives_the_same_replies(server, reference):
    count = 10
    whole = _replies(server.port, [PIPELINE], count)
    assert whole == _replies(reference.port, [PIPELINE], count)
    for cut in range(1, len(PIPELINE)):
        assert _replies(server.port, [PIPELINE[:cut], PIPELINE[cut:]], count) == whole, cut


def test_pipeline_sent_byte_by_byte(server):
    count = 10
    whole = _replies(server.port, [PIPELINE], count)
    assert _replies(server.port, [bytes([b]) for b in PIPELINE], count) == whole


def test_many_commands_in_one_send_are_all_answered(server):
    batch = b"".join(encode_command("INCR", "counter") for _ in range(5000))
    with RawClient(server.port) as raw:
        raw.send(batch)
        replies = [raw.read_reply() for _ in range(5000)]
    assert replies[-1] == b":5000\r\n"


# --- RESP3 ---------------------------------------------------------------------------------


def test_resp3_reply_types(server, reference):
    script = [("HELLO", "3"), ("GET", "missing"), ("SET", "k", "1"), ("INCRBYFLOAT", "k", "0.5"),
              ("CONFIG", "GET", "maxmemory"), ("MGET", "k", "missing"), ("EXISTS", "k"),
              ("OBJECT", "ENCODING", "missing"), ("LCS", "k", "k", "IDX"),
              ("MULTI",), ("GET", "missing"), ("EXEC",), ("TYPE", "k"), ("SCAN", "0"),
              ("TTL", "k"), ("OBJECT", "HELP"), ("COMMAND", "INFO", "nosuch"),
              ("INFO", "nosuch"), ("CLIENT", "GETNAME"), ("WATCH", "k"), ("SET", "k", "2"),
              ("MULTI",), ("EXEC",), ("HELLO", "2"), ("GET", "missing")]
    differences = parity.compare_scripts(server.port, reference.port, script)
    assert [d for d in differences if d[0][0] != "HELLO"] == []


# --- a client that has yet to authenticate -------------------------------------------------


@pytest.fixture
def secured(tmp_path):
    from servers import ServerThread

    with ServerThread([["save", ""], ["dir", str(tmp_path)], ["requirepass", "pw"]]) as running:
        running.wait_ready()
        yield running


def test_unauthenticated_client_gets_redis_7_limits(secured):
    """Redis 7.0.15 refuses more than 10 elements or a bulk over 16384 bytes before AUTH."""
    assert exchange(secured.port, b"*11\r\n") == protocol_error("unauthenticated multibulk length")
    assert exchange(secured.port, b"*1\r\n$16385\r\n") == protocol_error(
        "unauthenticated bulk length")
    assert exchange(secured.port, b"*1\r\n$16384\r\n", wait=0.2) == b"<OPEN>"
    big = encode_command("SET", "k", "x" * 100_000)
    assert exchange(secured.port, encode_command("AUTH", "pw") + big, wait=0.3) == (
        b"+OK\r\n+OK\r\n<OPEN>")
    assert exchange(secured.port, b"AUTH pw\r\n" + encode_command("MSET", *"abcdefghijkl"),
                    wait=0.3) == b"+OK\r\n+OK\r\n<OPEN>"


def test_unauthenticated_limits_match_redis(secured, reference):
    with RawClient(reference.port) as admin:
        admin.call("CONFIG", "SET", "requirepass", "pw")
    try:
        for data in (b"*11\r\n", b"*1\r\n$16385\r\n", b"*3\r\n$4\r\nAUTH\r\n$20000\r\n",
                     b"AUTH pw\r\n*11\r\n$4\r\nMSET\r\n", b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
                     b"*1\r\n$16385\r\n"):
            assert exchange(secured.port, data, 0.3) == exchange(reference.port, data, 0.3), data
    finally:
        with RawClient(reference.port) as admin:
            admin.call("AUTH", "pw")
            admin.call("CONFIG", "SET", "requirepass", "")
