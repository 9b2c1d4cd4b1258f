"""Pub/Sub through redis-py's PubSub API and through raw sockets, where the expected bytes
are what Redis 7.0.15 sends for the same requests (captured from redis-server)."""

from __future__ import annotations

import socket
import time

import pytest
import redis
import trio
from servers import wait_for
from trioredis.glob import compile_glob
from trioredis.pubsub import keyspace_event_flags, notify_keyspace_event


@pytest.fixture
def rc(shared_server):
    client = shared_server.client()
    yield client
    client.close()


def exchange(port: int, request: bytes, expected: bytes, timeout: float = 5) -> bytes:
    """Send ``request`` on a fresh connection; read until as many bytes as ``expected`` came
    (or the timeout), so a test compares whole replies without sleeping."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        deadline = time.monotonic() + timeout
        while len(received) < len(expected) and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def next_message(pubsub: redis.client.PubSub) -> dict:
    message = pubsub.get_message(timeout=5)
    assert message is not None, "no message within 5 s"
    return message


# --- redis-py ------------------------------------------------------------------------------


def test_subscriber_receives_published_message(rc):
    pubsub = rc.pubsub()
    pubsub.subscribe("news")
    assert next_message(pubsub) == {"type": "subscribe", "pattern": None, "channel": b"news",
                                    "data": 1}
    assert rc.publish("news", "hello") == 1
    assert next_message(pubsub) == {"type": "message", "pattern": None, "channel": b"news",
                                    "data": b"hello"}
    pubsub.close()


def test_pattern_subscriber_receives_pmessage(rc):
    pubsub = rc.pubsub()
    pubsub.psubscribe("sport.*")
    assert next_message(pubsub)["type"] == "psubscribe"
    assert rc.publish("sport.tennis", "ace") == 1
    assert rc.publish("weather", "rain") == 0
    assert next_message(pubsub) == {"type": "pmessage", "pattern": b"sport.*",
                                    "channel": b"sport.tennis", "data": b"ace"}
    pubsub.close()


def test_publish_counts_channel_and_pattern_receivers(rc, shared_server):
    first, second = rc.pubsub(), shared_server.client().pubsub()
    first.subscribe("count.a")
    second.subscribe("count.a")
    second.psubscribe("count.*")
    for pubsub, expected in ((first, 1), (second, 2)):
        for _ in range(expected):
            next_message(pubsub)
    assert rc.publish("count.a", "x") == 3
    assert next_message(first)["data"] == b"x"
    got = {next_message(second)["type"], next_message(second)["type"]}
    assert got == {"message", "pmessage"}
    first.close()
    second.close()


def test_pubsub_introspection(rc, shared_server):
    listener = shared_server.client().pubsub()
    listener.subscribe("intro.one", "intro.two")
    listener.psubscribe("intro.*", "other.*")
    for _ in range(4):
        next_message(listener)
    channels = rc.pubsub_channels("intro.*")
    assert sorted(channels) == [b"intro.one", b"intro.two"]
    assert rc.pubsub_numsub("intro.one", "nobody") == [(b"intro.one", 1), (b"nobody", 0)]
    assert rc.pubsub_numpat() >= 2
    info = rc.info("stats")
    assert info["pubsub_channels"] >= 2 and info["pubsub_patterns"] >= 2
    listener.close()


def test_disconnected_subscriber_is_forgotten(rc, shared_server):
    listener = shared_server.client().pubsub()
    listener.subscribe("gone")
    next_message(listener)
    assert rc.pubsub_numsub("gone") == [(b"gone", 1)]
    listener.close()
    wait_for(lambda: rc.pubsub_numsub("gone") == [(b"gone", 0)], timeout=5)
    assert rc.publish("gone", "x") == 0


def test_resp3_client_receives_push_messages(shared_server):
    client = shared_server.client(protocol=3)
    pubsub = client.pubsub()
    pubsub.subscribe("push.ch")
    assert next_message(pubsub)["type"] == "subscribe"
    assert shared_server.client().publish("push.ch", "v") == 1
    assert next_message(pubsub)["data"] == b"v"
    pubsub.close()
    client.close()


def test_reset_drops_subscriptions(rc, shared_server):
    expected = (b"*3\r\n$9\r\nsubscribe\r\n$7\r\nreset.a\r\n:1\r\n+RESET\r\n"
                b"*2\r\n$7\r\nreset.a\r\n:0\r\n")
    request = b"SUBSCRIBE reset.a\r\nRESET\r\nPUBSUB NUMSUB reset.a\r\n"
    assert exchange(shared_server.port, request, expected) == expected


# --- exact bytes, as Redis 7.0.15 sends them ----------------------------------------------


def test_subscribe_and_unsubscribe_replies_match_redis(shared_server):
    request = (b"UNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nSUBSCRIBE a b a\r\nPSUBSCRIBE x*\r\n"
               b"UNSUBSCRIBE b a\r\nPUNSUBSCRIBE\r\nUNSUBSCRIBE zz\r\nPING\r\n")
    expected = (
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n"
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$10\r\npsubscribe\r\n$2\r\nx*\r\n:3\r\n"
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n"
        b"*3\r\n$12\r\npunsubscribe\r\n$2\r\nx*\r\n:0\r\n*3\r\n$11\r\nunsubscribe\r\n$2\r\nzz\r\n:0\r\n"
        b"+PONG\r\n"
    )
    assert exchange(shared_server.port, request, expected) == expected


def test_subscribed_resp2_client_is_restricted_like_redis(shared_server):
    request = b"SUBSCRIBE a\r\nPING\r\nPING hi\r\nGET a\r\n"
    expected = (
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
        b"RESET are allowed in this context\r\n"
    )
    assert exchange(shared_server.port, request, expected) == expected


def test_resp3_publish_to_own_channel_pushes_before_reply(shared_server):
    request = (b"HELLO 3\r\nSUBSCRIBE own\r\nPUBLISH own hi\r\nPSUBSCRIBE ow*\r\n"
               b"PUBLISH own x\r\nUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nGET own\r\n")
    tail = (
        b">3\r\n$9\r\nsubscribe\r\n$3\r\nown\r\n:1\r\n"
        b">3\r\n$7\r\nmessage\r\n$3\r\nown\r\n$2\r\nhi\r\n:1\r\n"
        b">3\r\n$10\r\npsubscribe\r\n$3\r\now*\r\n:2\r\n"
        b">3\r\n$7\r\nmessage\r\n$3\r\nown\r\n$1\r\nx\r\n"
        b">4\r\n$8\r\npmessage\r\n$3\r\now*\r\n$3\r\nown\r\n$1\r\nx\r\n:2\r\n"
        b">3\r\n$11\r\nunsubscribe\r\n$3\r\nown\r\n:1\r\n"
        b">3\r\n$12\r\npunsubscribe\r\n$3\r\now*\r\n:0\r\n"
        b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n_\r\n"
    )
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while not received.endswith(tail):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert received.startswith(b"%7\r\n")


def test_subscribe_inside_multi_replies_inside_exec(shared_server):
    expected = b"+OK\r\n+QUEUED\r\n*1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nm\r\n:1\r\n"
    assert exchange(shared_server.port, b"MULTI\r\nSUBSCRIBE m\r\nEXEC\r\n", expected) == expected


def test_pubsub_errors_match_redis(rc):
    cases = {
        ("pubsub", "numpat", "x"): "wrong number of arguments for 'pubsub|numpat' command",
        ("pubsub", "channels", "a", "b"):
            "unknown subcommand or wrong number of arguments for 'channels'. Try PUBSUB HELP.",
        ("pubsub", "foo"): "unknown subcommand 'foo'. Try PUBSUB HELP.",
        ("publish", "a"): "wrong number of arguments for 'publish' command",
        ("subscribe",): "wrong number of arguments for 'subscribe' command",
    }
    for args, message in cases.items():
        with pytest.raises(redis.ResponseError) as info:
            rc.execute_command(*args)
        assert str(info.value) == message
    assert rc.execute_command("pubsub", "numsub") == []
    assert rc.execute_command("pubsub", "help")[0].startswith(b"PUBSUB <subcommand>")


# --- glob patterns as Redis's stringmatchlen -----------------------------------------------


@pytest.mark.parametrize(("pattern", "text", "matches"), [
    (b"h?llo", b"hello", True),
    (b"h*llo", b"heeeello", True),
    (b"h[ae]llo", b"hallo", True),
    (b"h[ae]llo", b"hillo", False),
    (b"h[^e]llo", b"hallo", True),
    (b"h[^e]llo", b"hello", False),
    (b"h[a-b]llo", b"hbllo", True),
    (b"h[b-a]llo", b"hbllo", True),
    (b"h\\*llo", b"h*llo", True),
    (b"h\\*llo", b"hallo", False),
    (b"a.b", b"axb", False),
    (b"*", b"line\nbreak", True),
    (b"[]x", b"x", False),
    (b"news.[", b"news.[", False),
])
def test_glob_matches_like_redis(pattern, text, matches):
    assert bool(compile_glob(pattern).matches(text)) is matches


# --- keyspace notifications (the mechanism commands call) ----------------------------------


def _notify(server, event_class, event, key, db=0):
    """Call notify_keyspace_event on the server's trio thread, as a command would."""
    engine = server.server.engine
    trio.from_thread.run_sync(
        lambda: notify_keyspace_event(engine, event_class, event, key, db),
        trio_token=server._token)


def test_keyspace_notifications_use_redis_channels(rc, shared_server):
    listener = shared_server.client().pubsub()
    listener.psubscribe("__key*@*__:*")
    next_message(listener)
    try:
        rc.config_set("notify-keyspace-events", "KEA")
        _notify(shared_server, "$", b"set", b"user:1", 3)
        first, second = next_message(listener), next_message(listener)
        assert (first["channel"], first["data"]) == (b"__keyspace@3__:user:1", b"set")
        assert (second["channel"], second["data"]) == (b"__keyevent@3__:set", b"user:1")
        rc.config_set("notify-keyspace-events", "Eg")  # only generic events, only keyevent
        _notify(shared_server, "$", b"set", b"skipped", 0)
        _notify(shared_server, "g", b"del", b"gone", 0)
        message = next_message(listener)
        assert (message["channel"], message["data"]) == (b"__keyevent@0__:del", b"gone")
    finally:
        rc.config_set("notify-keyspace-events", "")
        listener.close()


@pytest.mark.parametrize(("setting", "letters"), [
    ("", ""), ("K", ""), ("g", ""), ("KA", "KA"), ("Ex", "Ex"), ("KEA", "KEA"), ("AKm", "AKm"),
])
def test_keyspace_event_flags(setting, letters):
    expected = set(letters.replace("A", "g$lshzxetd"))
    assert keyspace_event_flags(setting) == expected


def test_fan_out_keeps_every_subscriber_in_publish_order(rc, shared_server):
    """20 subscribers, 200 pipelined PUBLISHes: each subscriber gets every message, in order."""
    subscribers = []
    confirmation = b"*3\r\n$9\r\nsubscribe\r\n$3\r\nfan\r\n:1\r\n"
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", shared_server.port), timeout=10)
        sock.sendall(b"SUBSCRIBE fan\r\n")
        received = b""
        while len(received) < len(confirmation):
            received += sock.recv(65536)
        assert received == confirmation
        subscribers.append(sock)
    try:
        pipe = rc.pipeline(transaction=False)
        for i in range(200):
            pipe.publish("fan", f"m{i}")
        assert pipe.execute() == [20] * 200
        expected = b"".join(
            b"*3\r\n$7\r\nmessage\r\n$3\r\nfan\r\n$%d\r\n%b\r\n" % (len(m), m)
            for m in (f"m{i}".encode() for i in range(200)))
        for sock in subscribers:
            received = b""
            while len(received) < len(expected):
                chunk = sock.recv(65536)
                assert chunk
                received += chunk
            assert received == expected
    finally:
        for sock in subscribers:
            sock.close()
