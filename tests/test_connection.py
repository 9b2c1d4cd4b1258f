"""Connection commands: PING ECHO QUIT SELECT AUTH HELLO RESET CLIENT, authentication,
maxclients and idle timeouts."""

from __future__ import annotations

import time

import parity
import pytest
import redis
from parity import RawClient, compare_scripts, encode_command
from servers import ServerThread

reference = parity.reference  # the real Redis, a module-scoped fixture


CONNECTION_SCRIPT = [
    ("PING",), ("PING", "a"), ("PING", "a", "b"), ("ECHO",), ("ECHO", "a"), ("ECHO", "a", "b"),
    ("SELECT",), ("SELECT", "-1"), ("SELECT", "16"), ("SELECT", "abc"), ("SELECT", "1.5"),
    ("SELECT", str(2**40)), ("SELECT", "0"),
    ("AUTH",), ("AUTH", "a"), ("AUTH", "a", "b"), ("AUTH", "default", "x"), ("AUTH", "a", "b", "c"),
    ("HELLO", "1"), ("HELLO", "4"), ("HELLO", "abc"), ("HELLO", "2", "FOO"),
    ("HELLO", "2", "AUTH", "default"), ("HELLO", "2", "SETNAME"),
    ("HELLO", "2", "SETNAME", "bad name"),
    ("CLIENT",), ("CLIENT", "FOO"), ("CLIENT", "SETNAME"), ("CLIENT", "SETNAME", "a", "b"),
    ("CLIENT", "SETNAME", "a b"), ("CLIENT", "SETNAME", "a\nb"), ("CLIENT", "GETNAME"),
    ("CLIENT", "SETNAME", "my-name"), ("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", ""),
    ("CLIENT", "GETNAME"), ("CLIENT", "GETNAME", "x"), ("CLIENT", "ID", "x"),
    ("CLIENT", "LIST", "TYPE", "foo"), ("CLIENT", "LIST", "FOO"), ("CLIENT", "LIST", "ID", "abc"),
    ("CLIENT", "LIST", "ID", "0"), ("CLIENT", "LIST", "ID"), ("CLIENT", "LIST", "TYPE", "master"),
    ("CLIENT", "KILL", "1.2.3.4:5"), ("CLIENT", "KILL", "ID", "abc"), ("CLIENT", "KILL", "ID", "0"),
    ("CLIENT", "KILL", "ID", "999999"), ("CLIENT", "KILL", "FOO", "bar"), ("CLIENT", "KILL", "ID"),
    ("CLIENT", "KILL", "ADDR"), ("CLIENT", "KILL", "TYPE", "foo"),
    ("CLIENT", "KILL", "TYPE", "master"), ("CLIENT", "KILL", "SKIPME", "maybe"),
    ("CLIENT", "NO-EVICT", "maybe"), ("CLIENT", "NO-EVICT", "on"), ("CLIENT", "NO-EVICT", "off"),
    ("CLIENT", "UNBLOCK", "abc"), ("CLIENT", "UNBLOCK", "999999"),
    ("CLIENT", "UNBLOCK", "999999", "FOO"), ("CLIENT", "UNBLOCK", "1", "timeout", "x"),
    ("CLIENT", "REPLY", "FOO"), ("CLIENT", "HELP", "x"), ("CLIENT", "GETREDIR"),
    ("RESET", "x"), ("QUIT",),
]


def test_connection_commands_reply_like_redis_byte_for_byte(server, reference):
    assert compare_scripts(server.port, reference.port, CONNECTION_SCRIPT) == []


def test_hello_replies_with_the_server_map_in_both_protocols(server):
    with RawClient(server.port) as raw:
        reply2 = raw.call("HELLO", "2")
        assert reply2.startswith(b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15")
        reply3 = raw.call("HELLO", "3")
        assert reply3.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n")
        assert b"$5\r\nproto\r\n:3\r\n" in reply3
        assert raw.call("GET", "missing") == b"_\r\n"
        assert raw.call("HELLO") .startswith(b"%7\r\n")  # no version: keeps RESP3
        raw.call("HELLO", "2")
        assert raw.call("GET", "missing") == b"$-1\r\n"


def test_hello_setname_sets_the_client_name(server):
    with RawClient(server.port) as raw:
        raw.call("HELLO", "3", "SETNAME", "worker-1")
        assert raw.call("CLIENT", "GETNAME") == b"$8\r\nworker-1\r\n"


def test_reset_restores_a_fresh_connection_state(server):
    with RawClient(server.port) as raw:
        raw.call("HELLO", "3")
        raw.call("SELECT", "5")
        raw.call("CLIENT", "SETNAME", "x")
        raw.call("WATCH", "k")
        raw.call("MULTI")
        assert raw.call("RESET") == b"+RESET\r\n"
        assert raw.call("GET", "missing") == b"$-1\r\n"  # RESP2 again
        assert raw.call("CLIENT", "GETNAME") == b"$-1\r\n"
        info = raw.call("CLIENT", "INFO")
        assert b" db=0 " in info and b" multi=-1 " in info


def test_quit_answers_ok_then_closes(server):
    with RawClient(server.port) as raw:
        assert raw.call("QUIT") == b"+OK\r\n"
        assert raw.is_closed()


def test_client_list_has_redis_fields_in_order(server, r):
    r.client_setname("lister")
    line = r.execute_command("CLIENT", "LIST").decode().splitlines()[0]
    names = [field.split("=", 1)[0] for field in line.split(" ")]
    assert names[:28] == [
        "id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub", "psub",
        "ssub", "multi", "qbuf", "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp", "obl",
        "oll", "omem", "tot-mem", "events", "cmd", "user", "redir", "resp",
    ]
    assert "name=lister" in line and "cmd=client|list" in line


def test_client_info_shows_lib_name_set_by_redis_py(server):
    """redis-py sends CLIENT SETINFO LIB-NAME/LIB-VER on connect (Redis 7.2's command)."""
    info = server.client().client_info()
    assert info["lib-name"].startswith("redis-py") and info["lib-ver"] == redis.__version__


def test_client_kill_by_id_closes_only_that_client(server):
    with RawClient(server.port) as victim, RawClient(server.port) as killer:
        victim_id = int(victim.call("CLIENT", "ID")[1:-2])
        assert killer.call("CLIENT", "KILL", "ID", victim_id) == b":1\r\n"
        assert victim.is_closed()
        assert killer.call("PING") == b"+PONG\r\n"


def test_client_kill_skipme_no_closes_the_caller_after_its_reply(server):
    with RawClient(server.port) as raw:
        my_id = int(raw.call("CLIENT", "ID")[1:-2])
        assert raw.call("CLIENT", "KILL", "ID", my_id, "SKIPME", "no") == b":1\r\n"
        assert raw.is_closed()


def test_client_list_type_pubsub_and_normal(server):
    parity.require_commands(server.port, "subscribe")
    with RawClient(server.port) as subscriber, RawClient(server.port) as raw:
        subscriber.call("SUBSCRIBE", "news")
        pubsub = raw.call("CLIENT", "LIST", "TYPE", "pubsub")
        normal = raw.call("CLIENT", "LIST", "TYPE", "normal")
        assert pubsub.count(b"id=") == 1 and b"sub=1" in pubsub
        assert normal.count(b"id=") == 1 and b"cmd=client|list" in normal


# --- CLIENT REPLY --------------------------------------------------------------------------
#
# A pipeline is sent whole, then RESET (it ends CLIENT REPLY OFF and answers +RESET) and an
# ECHO of a marker: everything the server sent up to the marker is the stream to check, so
# a missing reply is seen without waiting for it.

END_MARKER = b"$14\r\nend-of-replies\r\n"


def reply_stream(port: int, *commands: str | tuple) -> bytes:
    """The bytes sent back for ``commands`` (a string is split on spaces), pipelined."""
    argvs = [tuple(c.split(" ")) if isinstance(c, str) else c for c in commands]
    argvs += [("RESET",), ("ECHO", "end-of-replies")]
    with RawClient(port) as client:
        client.send(b"".join(encode_command(*argv) for argv in argvs))
        stream = b""
        while not stream.endswith(END_MARKER):
            reply = client.read_reply()
            assert reply, f"connection closed after {stream!r}"
            stream += reply
    return stream[: -len(END_MARKER)]


# (pipeline, what Redis 7.0.15 sends back before +RESET) -- checked with redis-server.
CLIENT_REPLY_CASES = [
    (["CLIENT REPLY OFF", "SET a 1", "GET a", "NOSUCHCOMMAND", "GET", "CLIENT REPLY FOO",
      "CLIENT REPLY ON", "GET a"],
     b"+OK\r\n$1\r\n1\r\n"),
    (["SET a 1", "CLIENT REPLY SKIP", "GET a", "GET a", "CLIENT REPLY SKIP", "NOSUCHCOMMAND",
      "PING"],
     b"+OK\r\n$1\r\n1\r\n+PONG\r\n"),
    # SKIP skips the next command, which may be another SKIP
    (["CLIENT REPLY SKIP", "CLIENT REPLY SKIP", "PING", "PING"], b"+PONG\r\n"),
    # SKIP under OFF does nothing; ON ends both
    (["CLIENT REPLY OFF", "CLIENT REPLY SKIP", "PING", "CLIENT REPLY ON", "PING"],
     b"+OK\r\n+PONG\r\n"),
    (["CLIENT REPLY SKIP", "CLIENT REPLY ON", "PING"], b"+OK\r\n+PONG\r\n"),
    (["CLIENT REPLY SKIP", "CLIENT REPLY OFF", "PING", "CLIENT REPLY ON"], b"+OK\r\n"),
    (["CLIENT REPLY FOO", "CLIENT REPLY", "CLIENT REPLY ON EXTRA", "client reply on"],
     b"-ERR syntax error\r\n"
     b"-ERR wrong number of arguments for 'client|reply' command\r\n"
     b"-ERR wrong number of arguments for 'client|reply' command\r\n+OK\r\n"),
    # In a transaction: SKIP leaves no element in EXEC's array and skips the command after
    # EXEC (Redis's stream is short of an element, and so is ours).
    (["MULTI", "CLIENT REPLY SKIP", "PING", "EXEC", "PING", "PING"],
     b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+PONG\r\n+PONG\r\n"),
    (["CLIENT REPLY OFF", "MULTI", "PING", "EXEC", "CLIENT REPLY ON", "PING"],
     b"+OK\r\n+PONG\r\n"),
    (["CLIENT REPLY SKIP", "MULTI", "PING", "EXEC"], b"+QUEUED\r\n*1\r\n+PONG\r\n"),
    (["MULTI", "CLIENT REPLY ON", "PING", "EXEC"],
     b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n+PONG\r\n"),
    # RESET ends OFF (its +RESET is sent), but not a SKIP that applies to itself
    (["CLIENT REPLY OFF", "RESET", "PING"], b"+RESET\r\n+PONG\r\n"),
    (["CLIENT REPLY SKIP", "RESET", "PING"], b"+PONG\r\n"),
    # (Un)subscribe confirmations are pushes: they still go out under OFF; CLIENT REPLY ON is
    # refused to a RESP2 subscriber, and the refusal is not sent either.
    (["CLIENT REPLY OFF", "SUBSCRIBE ch", "PSUBSCRIBE p*", "CLIENT REPLY ON", "PING",
      "UNSUBSCRIBE ch", "PUNSUBSCRIBE"],
     b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
     b"*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:2\r\n"
     b"*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:1\r\n"
     b"*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:0\r\n"),
    # RESP3 (HELLO's own reply skipped: it holds the client id): a message published to
    # oneself is pushed while the PUBLISH reply is dropped
    (["CLIENT REPLY SKIP", "HELLO 3", "SUBSCRIBE ch", "CLIENT REPLY OFF", "PING",
      "PUBLISH ch me", "CLIENT REPLY ON", "CLIENT REPLY SKIP", "PUBLISH ch again", "PING"],
     b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
     b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nme\r\n+OK\r\n"
     b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nagain\r\n+PONG\r\n"),
]


@pytest.mark.parametrize(("commands", "expected"), CLIENT_REPLY_CASES)
def test_client_reply_drops_replies_as_redis_does(server, commands, expected):
    assert reply_stream(server.port, *commands) == expected + b"+RESET\r\n"


@pytest.mark.parametrize(("commands", "expected"), CLIENT_REPLY_CASES)
def test_client_reply_cases_hold_for_the_reference_redis(reference, commands, expected):
    """The expectations above are what Redis 7.0 does (this fails if one is not)."""
    assert reply_stream(reference.port, *commands) == expected + b"+RESET\r\n"


def test_client_reply_off_still_delivers_messages_from_other_clients(server):
    """Pub/sub messages are pushes, sent whatever CLIENT REPLY says (Redis 7.0.15)."""
    parity.require_commands(server.port, "subscribe")
    with RawClient(server.port) as subscriber, RawClient(server.port) as publisher:
        subscriber.send(encode_command("CLIENT", "REPLY", "OFF")
                        + encode_command("SUBSCRIBE", "news"))
        assert subscriber.read_reply() == b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
        assert publisher.call("PUBLISH", "news", "hello") == b":1\r\n"
        subscriber.send(encode_command("PING") + encode_command("RESET"))
        assert subscriber.read_reply() == b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
        assert subscriber.read_reply() == b"+RESET\r\n"  # PING's reply was dropped


def _wait_blocked_clients(port: int, count: int) -> None:
    with RawClient(port) as admin:
        while b"blocked_clients:%d\r\n" % count not in admin.call("INFO", "clients"):
            time.sleep(0.01)


@pytest.mark.parametrize(("mode", "expected"), [
    ("SKIP", b"+PONG\r\n"),  # the skip applies to the blocked command's late reply
    ("OFF", b"+OK\r\n+PONG\r\n"),
])
def test_client_reply_drops_the_reply_of_a_blocked_command(server, mode, expected):
    with RawClient(server.port) as blocked, RawClient(server.port) as pusher:
        blocked.send(encode_command("CLIENT", "REPLY", mode) + encode_command("BLPOP", "q", "0"))
        _wait_blocked_clients(server.port, 1)
        after = ["PING"] if mode == "SKIP" else ["CLIENT REPLY ON", "PING"]
        blocked.send(b"".join(encode_command(*c.split(" ")) for c in after))
        assert pusher.call("RPUSH", "q", "v") == b":1\r\n"
        stream = b""
        while len(stream) < len(expected):
            reply = blocked.read_reply()
            assert reply, stream
            stream += reply
        assert stream == expected
        assert pusher.call("LLEN", "q") == b":0\r\n"  # the element was popped all the same


def test_client_reply_off_errors_are_still_counted(server):
    with RawClient(server.port) as raw:
        raw.call("CONFIG", "RESETSTAT")
        raw.send(encode_command("CLIENT", "REPLY", "OFF") + encode_command("NOSUCHCOMMAND")
                 + encode_command("GET") + encode_command("CLIENT", "REPLY", "ON"))
        assert raw.read_reply() == b"+OK\r\n"
        assert b"errorstat_ERR:count=2\r\n" in raw.call("INFO", "errorstats")


@pytest.mark.parametrize("mode", ["OFF", "SKIP"])
def test_protocol_error_under_client_reply_off_or_skip_is_not_sent(server, mode):
    """Redis 7.0 sends no error (and then leaves the connection open, reading no more); we
    send none either, and close."""
    with RawClient(server.port) as raw:
        raw.send(encode_command("CLIENT", "REPLY", mode) + b"*abc\r\n")
        assert raw.read_until_closed() == b""


def test_quit_under_client_reply_off_closes_without_a_reply(server):
    """Redis 7.0 leaves such a connection open and reads no more from it; we close it, as
    QUIT asks."""
    with RawClient(server.port) as raw:
        raw.send(encode_command("CLIENT", "REPLY", "OFF") + encode_command("QUIT"))
        assert raw.read_until_closed() == b""


# --- authentication ------------------------------------------------------------------------


@pytest.fixture
def secured(tmp_path):
    with ServerThread([["save", ""], ["dir", str(tmp_path)], ["requirepass", "s3cret"]]) as running:
        running.wait_ready()
        yield running


def test_commands_need_auth_when_requirepass_is_set(secured):
    with RawClient(secured.port) as raw:
        assert raw.call("GET", "k") == b"-NOAUTH Authentication required.\r\n"
        assert raw.call("AUTH", "wrong") == (
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        assert raw.call("AUTH", "bob", "s3cret") == (
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        assert raw.call("HELLO", "3").startswith(b"-NOAUTH HELLO must be called")
        assert raw.call("PING") == b"-NOAUTH Authentication required.\r\n"
        assert raw.call("AUTH", "s3cret") == b"+OK\r\n"
        assert raw.call("GET", "k") == b"$-1\r\n"


def test_hello_auth_authenticates_and_switches_protocol(secured):
    with RawClient(secured.port) as raw:
        reply = raw.call("HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "me")
        assert reply.startswith(b"%7\r\n")
        assert raw.call("CLIENT", "GETNAME") == b"$2\r\nme\r\n"


def test_exec_refused_for_noauth_says_why(secured):
    with RawClient(secured.port) as raw:
        raw.call("MULTI")
        assert raw.call("EXEC") == (
            b"-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n")


def test_redis_py_with_password_works(secured):
    client = secured.client(password="s3cret")
    assert client.set("k", "v") is True


def test_auth_against_reference_with_requirepass(secured, reference):
    """The same conversation with a real Redis that has the same password."""
    with RawClient(reference.port) as admin:
        admin.call("CONFIG", "SET", "requirepass", "s3cret")
    try:
        script = [("GET", "k"), ("AUTH", "wrong"), ("HELLO", "2"), ("MULTI",), ("EXEC",),
                  ("EXEC", "x"), ("AUTH", "default", "nope"), ("AUTH", "s3cret"), ("PING",)]
        with RawClient(secured.port) as ours, RawClient(reference.port) as theirs:
            for args in script:
                assert ours.call(*args) == theirs.call(*args), args
    finally:
        with RawClient(reference.port) as admin:
            admin.call("AUTH", "s3cret")
            admin.call("CONFIG", "SET", "requirepass", "")


# --- limits --------------------------------------------------------------------------------


def test_maxclients_refuses_the_extra_client_with_redis_error(tmp_path):
    with ServerThread([["save", ""], ["dir", str(tmp_path)], ["maxclients", "1"]]) as running:
        running.wait_ready()
        with RawClient(running.port) as first:
            assert first.call("PING") == b"+PONG\r\n"
            with RawClient(running.port) as second:
                assert second.read_until_closed() == b"-ERR max number of clients reached\r\n"
            assert first.call("PING") == b"+PONG\r\n"


def test_idle_client_is_closed_after_timeout(tmp_path):
    with ServerThread([["save", ""], ["dir", str(tmp_path)], ["timeout", "1"]]) as running:
        running.wait_ready()
        with RawClient(running.port) as idle:
            idle.call("PING")
            deadline = time.monotonic() + 10
            assert idle.is_closed(timeout=10)
            assert time.monotonic() < deadline
