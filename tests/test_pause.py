"""CLIENT PAUSE / UNPAUSE over real sockets: held writes are served in arrival order after
the pause, reads go on under WRITE, ALL holds everything, keys do not expire while paused,
and a held client is shown as Redis 7.0 shows it (not blocked)."""

from __future__ import annotations

import time

import pytest
from parity import RawClient, encode_command, held
from servers import record_propagation


@pytest.fixture
def admin(server):
    client = RawClient(server.port)
    yield client
    client.close()


def test_writes_wait_and_are_served_in_arrival_order_after_unpause(server, admin):
    assert admin.call("CLIENT", "PAUSE", "10000", "WRITE") == b"+OK\r\n"
    writers = [RawClient(server.port) for _ in range(6)]
    for index, writer in enumerate(writers):
        writer.send(encode_command("RPUSH", "order", str(index)))
        time.sleep(0.02)  # arrival order
    assert all(held(writer, 0.05) for writer in writers)
    assert admin.call("LRANGE", "order", "0", "-1") == b"*0\r\n"  # reads go on
    assert admin.call("CLIENT", "UNPAUSE") == b"+OK\r\n"
    assert [writer.read_reply() for writer in writers] == [b":%d\r\n" % n for n in range(1, 7)]
    assert admin.call("LRANGE", "order", "0", "-1") == (
        b"*6\r\n" + b"".join(b"$1\r\n%d\r\n" % n for n in range(6)))
    for writer in writers:
        writer.close()


def test_the_pause_ends_by_itself_when_its_time_runs_out(server, admin):
    admin.call("CLIENT", "PAUSE", "300", "WRITE")
    writer = RawClient(server.port)
    started = time.monotonic()
    assert writer.call("SET", "k", "v") == b"+OK\r\n"
    assert 0.25 <= time.monotonic() - started < 3
    writer.close()


def test_write_mode_holds_publish_and_writing_scripts_not_reads_or_no_writes_scripts(server, admin):
    admin.call("CLIENT", "PAUSE", "10000", "WRITE")
    cases = {
        ("PUBLISH", "ch", "m"): True,
        ("EVAL", "return 1", "0"): True,
        ("EVAL", "#!lua flags=no-writes\nreturn 1", "0"): False,
        ("EVAL_RO", "return 1", "0"): False,
        ("PFCOUNT", "hll"): True,
        ("GET", "k"): False,
        ("PING",): False,
        ("CLIENT", "ID"): False,
    }
    clients = []
    for argv, expected in cases.items():
        client = RawClient(server.port)
        clients.append(client)
        client.send(encode_command(*argv))
        assert held(client) is expected, argv
    admin.call("CLIENT", "UNPAUSE")
    for client in clients:
        client.close()


def test_all_mode_holds_every_command_even_unpause(server, admin):
    admin.call("CLIENT", "PAUSE", "400", "ALL")
    reader = RawClient(server.port)
    reader.send(encode_command("PING"))
    other = RawClient(server.port)
    other.send(encode_command("CLIENT", "UNPAUSE"))
    assert held(reader) and held(other)
    reader.sock.settimeout(3)
    assert reader.read_reply() == b"+PONG\r\n"
    assert other.read_reply() == b"+OK\r\n"
    reader.close()
    other.close()


def test_a_write_queued_in_multi_waits_and_exec_of_reads_does_not(server, admin):
    client = RawClient(server.port)
    assert client.call("MULTI") == b"+OK\r\n"
    admin.call("CLIENT", "PAUSE", "10000", "WRITE")
    assert client.call("GET", "k") == b"+QUEUED\r\n"
    assert client.call("EXEC") == b"*1\r\n$-1\r\n"
    client.call("MULTI")
    client.send(encode_command("SET", "k", "1"))
    assert held(client)
    admin.call("CLIENT", "UNPAUSE")
    assert client.read_reply() == b"+QUEUED\r\n"
    assert client.call("EXEC") == b"*1\r\n+OK\r\n"
    client.close()


def test_keys_do_not_expire_while_paused(server, admin):
    recorder = record_propagation(server)
    admin.call("SET", "short", "1", "PX", "50")
    admin.call("CLIENT", "PAUSE", "10000", "WRITE")
    time.sleep(0.4)  # several active expiry cycles
    assert admin.call("GET", "short") == b"$-1\r\n"  # logically gone...
    assert admin.call("DBSIZE") == b":1\r\n"  # ...but not deleted
    assert [b"DEL", b"short"] not in recorder.argvs
    admin.call("CLIENT", "UNPAUSE")
    admin.call("GET", "short")
    assert admin.call("DBSIZE") == b":0\r\n"
    assert [b"DEL", b"short"] in recorder.argvs


def test_a_held_client_is_not_shown_blocked(server, admin):
    admin.call("CLIENT", "PAUSE", "10000", "WRITE")
    writer = RawClient(server.port)
    writer_id = int(writer.call("CLIENT", "ID")[1:-2])
    writer.send(encode_command("SET", "k", "v"))
    assert held(writer)
    line = [entry for entry in admin.call("CLIENT", "LIST").split(b"\n")
            if entry.startswith(b"id=%d " % writer_id)][0]
    assert b" flags=N " in line and b" cmd=set " in line
    assert b"blocked_clients:0" in admin.call("INFO", "clients")
    admin.call("CLIENT", "UNPAUSE")
    assert writer.read_reply() == b"+OK\r\n"
    writer.close()


def test_a_held_client_that_disconnects_is_forgotten(server, admin):
    admin.call("CLIENT", "PAUSE", "10000", "WRITE")
    writer = RawClient(server.port)
    writer.send(encode_command("SET", "gone", "1"))
    assert held(writer)
    writer.close()
    time.sleep(0.1)
    admin.call("CLIENT", "UNPAUSE")
    assert admin.call("EXISTS", "gone") == b":0\r\n"


def test_a_held_blocking_pop_blocks_after_the_pause_in_its_turn(server, admin):
    admin.call("CLIENT", "PAUSE", "10000", "WRITE")
    popper = RawClient(server.port)
    popper.send(encode_command("BLPOP", "jobs", "5"))
    assert held(popper)
    admin.call("CLIENT", "UNPAUSE")
    assert held(popper, 0.1)  # now blocked on the empty list
    admin.call("RPUSH", "jobs", "a")
    assert popper.read_reply() == b"*2\r\n$4\r\njobs\r\n$1\r\na\r\n"
    popper.close()


def test_pause_arguments_are_checked_as_redis(admin):
    assert admin.call("CLIENT", "PAUSE", "abc") == (
        b"-ERR timeout is not an integer or out of range\r\n")
    assert admin.call("CLIENT", "PAUSE", "-1") == b"-ERR timeout is negative\r\n"
    assert admin.call("CLIENT", "PAUSE", "abc", "foo") == (
        b"-ERR CLIENT PAUSE mode must be WRITE or ALL\r\n")
    assert admin.call("CLIENT", "PAUSE", "1", "WRITE", "x") == (
        b"-ERR unknown subcommand or wrong number of arguments for 'PAUSE'. Try CLIENT HELP.\r\n")
    # Redis adds now to the timeout: past 2**63 ms it wraps into the past and pauses nothing.
    assert admin.call("CLIENT", "PAUSE", "9223372036854775807") == b"+OK\r\n"
    assert admin.call("PING") == b"+PONG\r\n"
