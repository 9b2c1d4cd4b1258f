"""Hostile input: random and mutated RESP/inline streams, cut at random recv boundaries.

Two layers.  Sans-IO: :class:`trioredis.resp.RequestParser` (hiredis fast path plus the exact
fallback) fed a stream in random pieces must return the same commands, then the same
``ProtocolError``, as :class:`ExactParser` (Redis's rules) fed the whole stream at once.
Live: the same streams sent to a running server answer exactly one reply per command the exact
parser finds, then ``-ERR Protocol error: ...`` and a close when the stream is bad; the server
keeps running and a second client's data and PING are untouched.

Examples are bounded (sizes and counts) so the file runs in well under 30 seconds; the
coverage-guided search lives in ``fuzz/`` (atheris).
"""

from __future__ import annotations

import socket

import hiredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import ServerThread
from trioredis.resp import ExactParser, ProtocolError, RequestParser

# Words a mutation splices in: the bytes where parsers disagree.
TOKENS = [
    b"*", b"$", b"\r\n", b"\n", b"\r", b"*-1\r\n", b"$-1\r\n", b"*0\r\n", b"$0\r\n\r\n",
    b"*1\r\n", b"$3\r\n", b":1\r\n", b"+OK\r\n", b"-ERR x\r\n", b"_\r\n", b",1.5\r\n",
    b"%1\r\n", b"~1\r\n", b"#t\r\n", b">1\r\n", b"|1\r\n", b"(1\r\n", b"=5\r\ntxt:a\r\n",
    b"!3\r\nerr\r\n", b'"', b"'", b"\\x4", b"\\", b" ", b"\x00", b"*99999999\r\n",
    b"*1048577\r\n", b"$536870913\r\n", b"$9999999999\r\n", b"*+1\r\n", b"$01\r\n",
    b"*9223372036854775808\r\n", b"$-2\r\n", b"\xff\xfe",
]

# Commands the streams are made of: none blocks, none touches the other client's key.
VERBS = [
    b"PING", b"ECHO", b"SET", b"GET", b"DEL", b"EXISTS", b"INCR", b"APPEND", b"NOSUCH",
    b"LPUSH", b"LRANGE", b"HSET", b"HGETALL", b"SADD", b"SMEMBERS", b"ZADD", b"ZRANGE",
    b"EXPIRE", b"TTL", b"TYPE", b"STRLEN", b"INCRBYFLOAT", b"GETRANGE", b"MGET", b"MULTI",
    b"EXEC", b"DISCARD",
]
args = st.binary(max_size=12).map(lambda value: b"fuzz:" + value)
commands = st.tuples(st.sampled_from(VERBS), st.lists(args, max_size=3)).map(
    lambda parts: [parts[0], *parts[1]]
)


def encode_resp(argv: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in argv)


def encode_inline(argv: list[bytes]) -> bytes:
    return b" ".join(b'"' + a.hex().encode() + b'"' for a in argv[1:]).join([argv[0] + b" ", b"\r\n"])


@st.composite
def streams(draw) -> bytes:
    """A valid pipeline (RESP and inline commands), then a few mutations."""
    parts = []
    for argv in draw(st.lists(commands, max_size=6)):
        parts.append(encode_inline(argv) if draw(st.booleans()) else encode_resp(argv))
    data = bytearray(b"".join(parts))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "flip", "random"]))
        if kind == "insert":
            data[position:position] = draw(st.sampled_from(TOKENS))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif kind == "flip" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        else:
            data[position:position] = draw(st.binary(max_size=16))
    return bytes(data)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    pieces, start = [], 0
    for point in points + [len(data)]:
        pieces.append(data[start:point])
        start = point
    return [piece for piece in pieces if piece]


def exact_outcome(data: bytes) -> tuple[list[list[bytes]], str | None]:
    """What Redis's rules make of the whole stream: the commands, then the protocol error."""
    return exact_parse(data)[:2]


def exact_parse(data: bytes) -> tuple[list[list[bytes]], str | None, int]:
    """The commands, the protocol error, and how many bulks lacked their CRLF."""
    parser = ExactParser()
    parser.feed(data)
    found: list[list[bytes]] = []
    while True:
        try:
            argv = parser.gets()
        except ProtocolError as error:
            return found, str(error), parser.loose_terminators
        if argv is None:
            return found, None, parser.loose_terminators
        found.append(argv)


def assert_parses_like_redis(pieces: list[bytes]) -> None:
    """Same outcome as ExactParser on the whole stream; when a bulk lacked its CRLF (Redis
    skips those two bytes unchecked, hiredis may read what follows differently: see
    ``ExactParser.loose_terminators``) only the absence of a crash is asked."""
    found, error, loose = exact_parse(b"".join(pieces))
    got = chunked_outcome(pieces)
    if not loose:
        assert got == (found, error)


def chunked_outcome(pieces: list[bytes]) -> tuple[list[list[bytes]], str | None]:
    parser = RequestParser()
    found: list[list[bytes]] = []
    for piece in pieces:
        parser.feed(piece)
        while True:
            try:
                argv = parser.gets()
            except ProtocolError as error:
                return found, str(error)
            if argv is None:
                break
            found.append(argv)
    return found, None


# --- sans-IO ---------------------------------------------------------------------------------


@settings(max_examples=1500, deadline=None)
@given(data=streams(), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_split_stream_parses_like_redis_parser_on_whole_stream(data, cuts):
    assert_parses_like_redis(chunked(data, cuts))


@settings(max_examples=600, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=6))
def test_random_bytes_parse_like_redis_parser(data, cuts):
    assert_parses_like_redis(chunked(data, cuts))


@settings(max_examples=300, deadline=None)
@given(data=streams())
def test_byte_at_a_time_parses_like_whole_stream(data):
    assert_parses_like_redis([data[i : i + 1] for i in range(len(data))])


# --- regressions the fuzzer found ------------------------------------------------------------


@pytest.mark.parametrize(
    "pieces",
    [
        [b"*1\r\n$4\r\nPING\r\n+OK\r\n"],  # hiredis would take a simple string as an argument
        [b"*1\r\n", b"$4\r\nPI", b"NG\r\n*1\r\n:1\r\n"],
        [b"*2\r\n$3\r\nGET\r\n$-1\r\n"],
        [b"*1\r\n$3\r\nfoo\r\n", b"\r\n"],  # a blank line between commands is skipped
        [b"*", b"*1\r\n$4\r\nPING\r\n"],  # hiredis had consumed the '*' of a bad count
        [b"*2\r\n$1\r\na\r\n", b"$-1\r\n"],  # has_data() is False inside an array
        [b"*0\r\n$913", b"\r\n"],  # inline for Redis, a bulk reply hiredis would wait on
        [b"*2\r\n$1\r\na\r\n*1\r\n"],  # a nested array: refused at once, not awaited
        [b"*", b"9999", b"9999", b"\r\n"],  # the screen must see a count cut in pieces
        [b"*2\r\n$4\r\n*PING\r\n$5\r\nfuzz:\r\n"],  # "got '\n'" broke the reply line
    ],
)
def test_known_tricky_streams_parse_like_redis(pieces):
    assert chunked_outcome(pieces) == exact_outcome(b"".join(pieces))


# --- live server -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuzz")
    with ServerThread([["save", ""], ["dir", str(directory)]]) as running:
        running.wait_ready()
        bystander = running.client()
        bystander.set("bystander", b"intact")
        yield running, bystander
        bystander.close()


def read_replies(sock: socket.socket) -> tuple[list[object], bool]:
    """Every reply until the server closes (or resets) the connection."""
    reader = hiredis.Reader()
    replies: list[object] = []
    reset = False
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            reset = True
            break
        if not data:
            break
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    return replies, reset


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=streams(), cuts=st.lists(st.integers(0, 400), max_size=4))
def test_server_answers_one_reply_per_command_then_protocol_error(live, data, cuts):
    running, bystander = live
    expected, error, loose = exact_parse(data)
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for piece in chunked(data, cuts):
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)  # end of stream: the server closes after its replies
        except OSError:  # the server already closed after a protocol error: reset or EPIPE
            pass
        replies, reset = read_replies(sock)
    wanted = len(expected) + (error is not None)
    if loose:  # see assert_parses_like_redis: only the bystander and the server are checked
        pass
    elif reset:  # data the server never read was discarded with the close: a prefix arrived
        assert len(replies) <= wanted
    else:
        assert len(replies) == wanted
    if error is not None and not reset and not loose:
        last = replies[-1]
        assert isinstance(last, hiredis.ReplyError)
        assert str(last) == f"ERR Protocol error: {error}"
    internal = [r for r in replies if str(r).startswith("ERR internal error")]
    assert not internal, internal  # a handler raised: the engine's safety net caught a bug
    assert bystander.ping() is True
    assert bystander.get("bystander") == b"intact"
    assert running._thread.is_alive() and running.error is None


def test_protocol_error_reply_stays_one_line_and_bystander_unaffected(live):
    running, bystander = live
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(b"*2\r\n$4\r\n*PING\r\n$5\r\nfuzz:\r\n")
        replies, _ = read_replies(sock)
    assert [str(reply) for reply in replies] == ["ERR Protocol error: expected '$', got ' '"]
    assert bystander.get("bystander") == b"intact"


def test_array_split_inside_then_null_bulk_is_refused_like_redis(live):
    running, _ = live
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(b"*2\r\n$4\r\nECHO\r\n")
        sock.sendall(b"$-1\r\n")
        replies, _ = read_replies(sock)
    assert [str(reply) for reply in replies] == ["ERR Protocol error: invalid bulk length"]
