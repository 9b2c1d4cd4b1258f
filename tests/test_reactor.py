"""The reactor's edge paths (core/server.py): a client that does not read its replies, a
blocking command in the middle of a pipeline, clients parked for their fsync, many clients
in one turn.  Raw sockets, so the bytes on the wire are what is checked."""

import os
import signal
import socket
import threading

from servers import ServerThread, wait_for
from trioredis.resp import encode_command


def connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return bytes(data)


def test_replies_larger_than_the_kernel_buffer_arrive_whole_and_in_order(server, r):
    """The reactor's send would block: the client waits for EPOLLOUT, then gets the rest."""
    value = bytes(range(256)) * 16384  # 4 MB
    r.set("big", value)
    sock = connect(server)
    with sock:
        sock.sendall(encode_command([b"GET", b"big"]) * 5 + encode_command([b"PING"]))
        expected = (b"$%d\r\n%b\r\n" % (len(value), value)) * 5 + b"+PONG\r\n"
        assert read_exactly(sock, len(expected)) == expected
        sock.sendall(encode_command([b"PING"]))
        assert read_exactly(sock, 7) == b"+PONG\r\n"


def test_commands_pipelined_after_a_blocking_one_wait_for_it(server, r):
    """BLPOP moves the client to a task; the PING sent with it answers after BLPOP's reply,
    and the connection then goes back to the reactor."""
    sock = connect(server)
    with sock:
        sock.sendall(encode_command([b"SET", b"before", b"1"])
                     + encode_command([b"BLPOP", b"queue", b"0"])
                     + encode_command([b"PING"]))
        assert read_exactly(sock, 5) == b"+OK\r\n"
        r.rpush("queue", "job")
        expected = b"*2\r\n$5\r\nqueue\r\n$3\r\njob\r\n+PONG\r\n"
        assert read_exactly(sock, len(expected)) == expected
        sock.sendall(encode_command([b"GET", b"before"]))
        assert read_exactly(sock, 7) == b"$1\r\n1\r\n"


def test_a_blocked_client_that_disconnects_takes_nothing(server, r):
    sock = connect(server)
    sock.sendall(encode_command([b"BLPOP", b"queue", b"0"]))
    wait_for(lambda: r.info("clients")["blocked_clients"] == 1, timeout=10)
    sock.close()
    wait_for(lambda: r.info("clients")["connected_clients"] == 1, timeout=10)
    r.rpush("queue", "job")
    assert r.lrange("queue", 0, -1) == [b"job"]


def test_quit_replies_then_closes(server):
    sock = connect(server)
    with sock:
        sock.sendall(encode_command([b"PING"]) + encode_command([b"QUIT"]) + encode_command([b"PING"]))
        assert read_exactly(sock, 12) == b"+PONG\r\n+OK\r\n"
        assert sock.recv(10) == b""


def test_writers_parked_for_their_fsync_get_their_replies_in_order(tmp_path):
    """appendfsync always: replies to writes wait for the fsync; reads of other clients do
    not; each client's replies stay in order."""
    options = [["save", ""], ["appendonly", "yes"], ["appendfsync", "always"], ["dir", str(tmp_path)]]
    with ServerThread(options) as server:
        server.wait_ready()
        errors: list[str] = []

        def writer(number: int) -> None:
            try:
                sock = connect(server)
                with sock:
                    for round_number in range(20):
                        key = b"w%d" % number
                        sock.sendall(encode_command([b"INCR", key]) + encode_command([b"GET", key]))
                        value = b"%d" % (round_number + 1)
                        expected = b":%b\r\n$%d\r\n%b\r\n" % (value, len(value), value)
                        got = read_exactly(sock, len(expected))
                        if got != expected:
                            errors.append(f"{number}: {got!r} != {expected!r}")
                            return
            except Exception as error:  # reported below, from the test's thread
                errors.append(f"{number}: {error!r}")

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        client = server.client()
        assert [client.get(f"w{n}") for n in range(8)] == [b"20"] * 8


def test_many_clients_pipelining_in_the_same_turns(server):
    errors: list[str] = []

    def run(number: int) -> None:
        try:
            sock = connect(server)
            with sock:
                batch = b"".join(encode_command([b"SET", b"k%d:%d" % (number, i), b"%d" % i])
                                 + encode_command([b"GET", b"k%d:%d" % (number, i)])
                                 for i in range(200))
                sock.sendall(batch)
                expected = b"".join(b"+OK\r\n$%d\r\n%d\r\n" % (len(b"%d" % i), i) for i in range(200))
                if read_exactly(sock, len(expected)) != expected:
                    errors.append(str(number))
        except Exception as error:
            errors.append(f"{number}: {error!r}")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_the_reactor_reads_the_fsync_process_answers_and_lets_go_when_it_dies(tmp_path):
    """appendfsync always: the fsync process's socket is one more descriptor of the reactor's
    epoll (no task per answer); pipelined writes from several clients are answered in order
    through it; when the process is killed the reactor stops watching that descriptor (its
    number may be reused by a client) and replies keep coming through the worker thread."""
    options = [["save", ""], ["appendonly", "yes"], ["appendfsync", "always"], ["dir", str(tmp_path)]]
    with ServerThread(options) as server:
        server.wait_ready()
        fsyncer = next(b for b in server.server.engine.backends if b.name == "aof")._fsyncer
        wait_for(lambda: fsyncer.running, timeout=10, what="the fsync process to start")
        reactor = server.server.reactor
        assert len(reactor.watched) == 1  # the fsync process's socket, read within turns
        socks = [connect(server) for _ in range(4)]
        try:
            for sock in socks:
                sock.sendall(b"".join(encode_command([b"INCR", b"n"]) for _ in range(50)))
            seen = []
            for sock in socks:
                data = b""
                while data.count(b"\r\n") < 50:
                    chunk = sock.recv(65536)
                    assert chunk, "connection closed early"
                    data += chunk
                values = [int(line[1:]) for line in data.split(b"\r\n") if line]
                assert values == sorted(values)  # each client's replies in order
                seen += values
            assert sorted(seen) == list(range(1, 201))
        finally:
            for sock in socks:
                sock.close()
        assert fsyncer.requested > 0
        os.kill(fsyncer.helper_pid, signal.SIGKILL)
        wait_for(lambda: not fsyncer.running, timeout=10, what="the server to see it die")
        wait_for(lambda: not reactor.watched, timeout=10, what="the reactor to stop watching")
        client = server.client(socket_timeout=20)
        assert [client.incr("n") for _ in range(20)] == list(range(201, 221))
