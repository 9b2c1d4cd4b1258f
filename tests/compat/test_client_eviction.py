"""Client eviction (``maxmemory-clients``, Redis 7.0) over real sockets, the same scenario
sent to trioredis and to a real redis-server: a client holding a large query buffer (a bulk
string half sent) or a large output buffer (replies it does not read) is disconnected, one
with ``CLIENT NO-EVICT on`` is not (but still counts, so a small evictable one goes instead),
INFO's ``evicted_clients`` counts them and the log says ``Evicting client: <CLIENT LIST
line>``.  Which connections end up closed, and the counter, are compared between servers."""

from __future__ import annotations

import socket
import time

import pytest
from parity import RawClient, ReferenceRedis, encode_command
from servers import ServerProcess

LIMIT = "1mb"
BIG = 3 * 1024 * 1024


@pytest.fixture
def servers(tmp_path):
    ours = ServerProcess(str(tmp_path), [["save", ""], ["appendonly", "no"],
                                         ["maxmemory-clients", LIMIT]]).start()
    theirs = ReferenceRedis("--maxmemory-clients", LIMIT)
    try:
        yield ours, theirs
    finally:
        ours.stop()
        theirs.stop()


def _evicted(port: int) -> int:
    with RawClient(port) as client:
        info = client.call("INFO", "stats").decode()
    return int(info.split("evicted_clients:")[1].split("\r\n")[0])


def _closed(client: RawClient, timeout: float = 3) -> bool:
    """Whether the server closed ``client`` (reading past whatever replies were queued)."""
    return client.is_closed(timeout)


def _half_sent_bulk(port: int) -> socket.socket:
    """A connection that announced a bulk of BIG bytes and sent all but the last one."""
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % BIG)
        sock.sendall(b"x" * (BIG - 1))
    except (BrokenPipeError, ConnectionResetError):
        pass  # evicted while it was still sending: _gone() sees it closed
    return sock


def _gone(sock: socket.socket, timeout: float = 5) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (TimeoutError, BlockingIOError):
        return False


def _query_buffer_scenario(port: int) -> tuple[bool, bool, int]:
    """A client with a 3 MB half-sent request, beside an idle one: (the big one closed, the
    idle one closed, evicted_clients)."""
    with RawClient(port) as idle:
        assert idle.call("PING") == b"+PONG\r\n"
        big = _half_sent_bulk(port)
        try:
            big_closed = _gone(big)
        finally:
            big.close()
        time.sleep(0.3)
        idle_alive = idle.call("PING") == b"+PONG\r\n"
        return big_closed, not idle_alive, _evicted(port)


def test_a_client_with_a_huge_query_buffer_is_evicted_as_in_redis(servers):
    ours, theirs = servers
    assert _query_buffer_scenario(ours.port) == _query_buffer_scenario(theirs.port) == (
        True, False, 1)
    with open(ours.log_path, encoding="utf-8", errors="replace") as log:
        lines = [line for line in log if "Evicting client: " in line]
    assert len(lines) == 1 and "id=" in lines[0] and "tot-mem=" in lines[0]


def _no_evict_scenario(port: int) -> tuple[bool, bool, int]:
    """A NO-EVICT client holds a 3 MB half-sent request; a small normal client is evicted in
    its place (the no-evict one still counts): (no-evict closed, small closed, evicted)."""
    protected = socket.create_connection(("127.0.0.1", port))
    try:
        protected.sendall(encode_command("CLIENT", "NO-EVICT", "on"))
        assert protected.recv(100) == b"+OK\r\n"
        with RawClient(port) as small:
            assert small.call("PING") == b"+PONG\r\n"
            protected.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % BIG)
            protected.sendall(b"x" * (BIG - 1))
            small_closed = _closed(small)
            protected_closed = _gone(protected, timeout=0.5)
    finally:
        protected.close()
    # Asked once the big request is gone: any connection made before would be evicted too.
    time.sleep(0.3)
    return protected_closed, small_closed, _evicted(port)


def test_a_no_evict_client_is_kept_and_a_small_evictable_one_goes_instead(servers):
    ours, theirs = servers
    mine, reference = _no_evict_scenario(ours.port), _no_evict_scenario(theirs.port)
    assert mine[:2] == reference[:2] == (False, True)
    assert mine[2] >= 1 and reference[2] >= 1


def _listed(port: int, client_id: int) -> bool:
    with RawClient(port) as other:
        return b"id=%d " % client_id in other.call("CLIENT", "LIST")


def _output_buffer_scenario(port: int) -> tuple[bool, int]:
    """A client pipelines GETs of a 512 KB value and reads nothing: (gone from CLIENT LIST
    within 5 s, evicted).  Its socket is not read to the end: what the kernel still holds
    drains slowly to a receiver that does not read."""
    with RawClient(port) as setup:
        setup.call("DEL", "big")
        for _ in range(4):  # in pieces: a 1 MB request would be evicted itself
            assert setup.call("APPEND", "big", "v" * (128 * 1024)).startswith(b":")
        before = _evicted(port)
    with RawClient(port) as greedy:
        client_id = int(greedy.call("CLIENT", "ID")[1:-2])
        greedy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        greedy.send(encode_command("GET", "big") * 80)
        deadline = time.monotonic() + 5
        while _listed(port, client_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        return not _listed(port, client_id), _evicted(port) - before


def test_a_client_not_reading_its_replies_is_evicted_as_in_redis(servers):
    ours, theirs = servers
    assert _output_buffer_scenario(ours.port) == _output_buffer_scenario(theirs.port) == (True, 1)
