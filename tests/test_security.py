"""Attacks on a default server over real sockets: each one is refused or bounded, and the
server goes on answering every other client with its data intact.

One server process for the module (a subprocess, so a frozen or crashed server fails the
test instead of the test run); each test checks afterwards that a fresh connection still
gets PONG within ``ANSWER_WITHIN`` and that the canary key is unchanged.
"""

from __future__ import annotations

import socket
import time

import pytest
from parity import RawClient
from servers import ServerProcess

# Generous for a slow, shared machine; a frozen server takes seconds to minutes.
ANSWER_WITHIN = 3.0
CANARY = b"security:canary"


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    directory = tmp_path_factory.mktemp("security")
    with ServerProcess(str(directory), [["save", ""], ["appendonly", "no"]]) as server:
        with RawClient(server.port) as client:
            assert client.call("SET", CANARY, "alive") == b"+OK\r\n"
        yield server


def still_serving(server: ServerProcess) -> None:
    """A new client gets PONG in time, and the canary is intact."""
    started = time.monotonic()
    with RawClient(server.port, timeout=ANSWER_WITHIN) as client:
        assert client.call("PING") == b"+PONG\r\n"
        assert client.call("GET", CANARY) == b"$5\r\nalive\r\n"
    assert time.monotonic() - started < ANSWER_WITHIN


def send_raw(server: ServerProcess, *pieces: bytes, pause: float = 0.05) -> bytes:
    """Send ``pieces`` (in separate packets), then read until the server closes the
    connection or stays silent for ANSWER_WITHIN; what it sent."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(pause)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


INVALID_MULTIBULK = b"-ERR Protocol error: invalid multibulk length\r\n"


@pytest.mark.parametrize("count", [2**31, 2**32 - 1, 2**32, 3_000_000_000, 2**63 - 1, 2**63,
                                   2**64, 10**30])
def test_a_huge_multibulk_count_is_refused_at_once(target, count):
    started = time.monotonic()
    assert send_raw(target, b"*%d\r\n" % count) == INVALID_MULTIBULK
    assert time.monotonic() - started < ANSWER_WITHIN
    still_serving(target)


def test_a_huge_count_split_across_packets_is_refused(target):
    assert send_raw(target, b"*30", b"00000000\r\n") == INVALID_MULTIBULK
    reply = send_raw(target, b"PING\r\n*1\r\n$1\r\na\r\n*3000", b"000000\r\n")
    assert reply == b"+PONG\r\n-ERR unknown command 'a', with args beginning with: \r\n" + INVALID_MULTIBULK
    still_serving(target)


@pytest.mark.parametrize("header", [b"*", b"~", b">", b"%", b"|"])
def test_a_huge_nested_aggregate_is_refused_at_once(target, header):
    """Redis refuses any aggregate inside a request; hiredis would allocate its slots first."""
    reply = send_raw(target, b"*2\r\n$4\r\nECHO\r\n" + header + b"3000000000\r\n")
    assert reply == b"-ERR Protocol error: expected '$', got '%s'\r\n" % header
    still_serving(target)


def test_int_max_elements_are_accepted_and_bounded_by_the_query_buffer_limit(target):
    """Redis 7 accepts up to INT_MAX arguments; the bytes held for them count against
    client-query-buffer-limit, so tiny arguments cannot grow the server without bound."""
    with RawClient(target.port) as admin:
        assert admin.call("CONFIG", "SET", "client-query-buffer-limit", "1mb") == b"+OK\r\n"
        try:
            with socket.create_connection(("127.0.0.1", target.port), timeout=10) as sock:
                sock.sendall(b"*2147483647\r\n$3\r\nDEL\r\n")
                element = b"$1\r\nk\r\n"
                closed = False
                try:
                    for _ in range(200):  # 200 x 8192 elements: far past 1 MB held
                        sock.sendall(element * 8192)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                if not closed:
                    sock.settimeout(ANSWER_WITHIN)
                    try:
                        closed = sock.recv(1) == b""
                    except ConnectionResetError:
                        closed = True
                assert closed
        finally:
            admin.call("CONFIG", "SET", "client-query-buffer-limit", "1gb")
    still_serving(target)


def test_a_million_argument_command_leaves_others_served(target):
    """The command is read in bounded steps: a PING sent meanwhile is answered in time."""
    count = 1_000_000
    request = b"".join([b"*%d\r\n$3\r\nDEL\r\n" % (count + 1)]
                       + [b"$%d\r\n%b\r\n" % (len(key), key)
                          for key in (b"absent:%d" % i for i in range(count))])
    with socket.create_connection(("127.0.0.1", target.port), timeout=60) as big, \
            RawClient(target.port, timeout=ANSWER_WITHIN) as other:
        view = memoryview(request)
        worst = 0.0
        for offset in range(0, len(request), 1 << 20):
            big.sendall(view[offset:offset + (1 << 20)])
            started = time.monotonic()
            assert other.call("PING") == b"+PONG\r\n"
            worst = max(worst, time.monotonic() - started)
        assert big.recv(100) == b":0\r\n"
        assert worst < ANSWER_WITHIN
    still_serving(target)


HTTP_POST = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1:6379\r\nContent-Type: text/plain\r\n"
             b"Content-Length: 40\r\n\r\nSET security:posted 1\r\nCONFIG SET dir /tmp\r\n")


@pytest.mark.parametrize("request_bytes", [
    HTTP_POST,
    b"post /x HTTP/1.0\r\n\r\nSET security:posted 1\r\n",
    b"Host: evil.example\r\nSET security:posted 1\r\n",
    # The body may come in a later packet: nothing after the request line runs either way.
    b"POST / HTTP/1.1\r\n",
])
def test_an_http_request_closes_the_connection_and_runs_nothing(target, request_bytes):
    with RawClient(target.port) as client:
        directory = client.call("CONFIG", "GET", "dir")
    assert send_raw(target, request_bytes, b"SET security:posted 2\r\n") == b""
    with RawClient(target.port) as client:
        assert client.call("EXISTS", "security:posted") == b":0\r\n"
        assert client.call("CONFIG", "GET", "dir") == directory
    log = target.log()
    assert "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: " \
        "commands to Redis." in log
    # Rate-limited: one line for this wave of requests.
    assert log.count("Possible SECURITY ATTACK") == 1
    still_serving(target)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def abandon_uploads(port: int, count: int, size: int) -> None:
    """``count`` clients each send most of a ``size``-byte argument, then hang up."""
    block = b"x" * (1 << 20)
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"*3\r\n$3\r\nSET\r\n$6\r\nupload\r\n$%d\r\n" % size)
            for _ in range(size // len(block) - 1):
                sock.sendall(block)
            with RawClient(port) as other:  # the upload has been read, whole
                other.call("PING")


def test_abandoned_uploads_are_freed_before_and_after_a_rewrite(tmp_path):
    from servers import wait_for

    with ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "yes"]]) as server:
        pid = server.process.pid
        client = server.client()
        client.set("k", "v")
        baseline = rss_bytes(pid)
        slack = 60 << 20
        for phase in ("before", "after"):
            abandon_uploads(server.port, 5, 100 << 20)
            wait_for(lambda: rss_bytes(pid) < baseline + slack, timeout=10,
                     what=f"memory of abandoned uploads freed ({phase} a rewrite)")
            if phase == "before":
                client.bgrewriteaof()
                wait_for(lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0
                         and client.info("persistence")["aof_rewrite_scheduled"] == 0,
                         timeout=30, what="rewrite done")
        assert client.get("k") == b"v"
        assert not client.exists("upload")


def peak_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_batch_of_big_replies_stops_at_the_output_hard_limit(tmp_path):
    """9,000 GETs of a 100 KB value in one write would build 900 MB of replies; with a 64 MB
    hard limit the client is closed once its replies pass it, and memory stays near that."""
    with ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"],
                                       ["client-output-buffer-limit", "normal 64mb 32mb 10"]]) as server:
        pid = server.process.pid
        with RawClient(server.port) as client:
            assert client.call("SET", "big", b"v" * 100_000) == b"+OK\r\n"
        before = peak_rss_bytes(pid)
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 9000)
            sock.settimeout(ANSWER_WITHIN * 3)
            received = 0
            try:
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
            except ConnectionResetError:
                pass
        assert received < 9000 * 100_000  # closed before every reply was sent
        # 64 MB of replies plus slack (all the replies of one read were 280 MB before).
        assert peak_rss_bytes(pid) - before < 150 << 20
        with RawClient(server.port) as client:
            assert client.call("STRLEN", "big") == b":100000\r\n"


def test_a_big_set_costs_at_most_two_copies_of_its_value(tmp_path):
    """The argument is copied once out of the read buffer, which is dropped at once (it was
    three or four copies: hiredis's buffer, the replay chunks, slices)."""
    size = 200 << 20
    with ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"]]) as server:
        pid = server.process.pid
        before = peak_rss_bytes(pid)
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            sock.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % size)
            block = b"x" * (1 << 20)
            for _ in range(size // len(block)):
                sock.sendall(block)
            sock.sendall(b"\r\n")
            assert sock.recv(100) == b"+OK\r\n"
        assert peak_rss_bytes(pid) - before < size * 2.3
        with RawClient(server.port) as client:
            assert client.call("STRLEN", "big") == b":%d\r\n" % size


def test_a_huge_random_sample_reply_stays_near_its_own_size(tmp_path):
    """SRANDMEMBER with a negative count of millions: the reply (~75 MB here) is encoded a
    slice at a time (one small bytes object per element made the peak 12x the reply)."""
    count = 5_000_000
    with ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"]]) as server:
        pid = server.process.pid
        with RawClient(server.port) as client:
            client.call("SADD", "s", *[b"member:%d" % i for i in range(1000)])
            before = peak_rss_bytes(pid)
            client.send(b"SRANDMEMBER s %d\r\n" % -count)
            client.sock.settimeout(60)
            header = client.sock.recv(64)
            assert header.startswith(b"*%d\r\n$" % count)
            received = len(header)
            while received < count * 14:  # "$10\r\nmember:NNN\r\n" is 14 to 18 bytes
                received += len(client.sock.recv(1 << 20))
        reply_size = count * 17
        assert peak_rss_bytes(pid) - before < reply_size * 4


def test_a_reply_waits_while_its_append_fails_so_kill_9_loses_nothing_acknowledged(tmp_path):
    """Better than Redis: under everysec a write(2) that fails (here EFBIG under a file-size
    limit; a full disk is the same) holds the reply of the write until a retry puts it in
    the file, instead of acknowledging a write a kill -9 would then lose."""
    import signal
    import subprocess

    options = [["save", ""], ["appendonly", "yes"], ["appendfsync", "everysec"]]
    ignore_xfsz = lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # noqa: E731
    server = ServerProcess(str(tmp_path), options, preexec_fn=ignore_xfsz).start()
    try:
        pid = server.process.pid
        with RawClient(server.port) as client:
            assert client.call("SET", "before", "1") == b"+OK\r\n"
        aof = tmp_path / "appendonly.aof"
        limit = aof.stat().st_size + 100
        subprocess.run(["prlimit", "--pid", str(pid), f"--fsize={limit}:unlimited"], check=True)
        writer = RawClient(server.port, timeout=1.5)
        writer.send(encode_set("held", b"v" * 4096))
        with pytest.raises(TimeoutError):
            writer.read_reply()  # no reply while the write is not in the file
        with RawClient(server.port) as other:
            assert other.call("SET", "refused", "1").startswith(
                b"-MISCONF Errors writing to the AOF file:")
            assert other.call("PING") == b"+PONG\r\n"
        subprocess.run(["prlimit", "--pid", str(pid), "--fsize=unlimited"], check=True)
        writer.sock.settimeout(10)
        assert writer.read_reply() == b"+OK\r\n"  # the retry wrote it: now acknowledged
        writer.close()
        server.kill()
        server.start()
        with RawClient(server.port) as client:
            assert client.call("STRLEN", "held") == b":4096\r\n"
            assert client.call("EXISTS", "refused") == b":0\r\n"
    finally:
        server.kill()


def encode_set(key: str, value: bytes) -> bytes:
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(key), key.encode(), len(value),
                                                             value)
