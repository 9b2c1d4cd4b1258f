"""CLIENT LIST / CLIENT INFO memory fields against redis-server 7.0.15: the fields this
server fills from its own state take Redis's values where both count the same thing (the
asking client's ``argv-mem``, a MULTI client's ``multi-mem``, zeros for an idle client), and
a subscriber that stops reading shows its backlog in ``omem``/``oll`` on both servers (the
block count differs: see the backlog test)."""

from __future__ import annotations

import shutil
import socket
import time

import pytest
from parity import RawClient, server_beside_redis
from trioredis.client_memory import REPLY_CHUNK_BYTES, reply_buffers

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")

QUEUED = [["SET", "k", "v"], ["HSET", "h", "field", "x" * 300], ["LPUSH", "l", "a", "b", "c"],
          ["CLIENT", "INFO"]]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with server_beside_redis(str(tmp_path_factory.mktemp("ours"))) as (ours, ref):
        yield ours.port, ref.port


def _fields(reply: bytes) -> dict[str, dict[str, str]]:
    text = reply.split(b"\r\n", 1)[1].decode()
    found = {}
    for line in text.strip().split("\n"):
        fields = dict(pair.split("=", 1) for pair in line.split(" "))
        found[fields["name"] or fields["cmd"]] = fields
    return found


def _scene(port: int) -> dict[str, dict[str, str]]:
    """An idle named client, one in MULTI with queued commands, and the asking client's own
    CLIENT LIST (plain, by type and by id) and CLIENT INFO."""
    with RawClient(port) as idle, RawClient(port) as queuing, RawClient(port) as asking:
        idle.call("CLIENT", "SETNAME", "idle")
        idle.call("GET", "nothing")
        queuing.call("CLIENT", "SETNAME", "queuing")
        queuing.call("MULTI")
        for argv in QUEUED:
            assert queuing.call(*argv) == b"+QUEUED\r\n"
        seen = _fields(asking.call("CLIENT", "LIST"))
        own_id = asking.call("CLIENT", "ID")[1:-2].decode()
        seen["by-type"] = _fields(asking.call("CLIENT", "LIST", "TYPE", "normal"))["client|list"]
        seen["by-id"] = _fields(asking.call("CLIENT", "LIST", "ID", own_id, "12345"))["client|list"]
        # The ids differ between the servers, and so their lengths: count without it.
        seen["by-id"]["argv-mem"] = str(int(seen["by-id"]["argv-mem"]) - len(own_id))
        seen["info"] = _fields(b"$0\r\n" + asking.call("CLIENT", "INFO").split(b"\r\n", 1)[1])[
            "client|info"]
        queuing.call("DISCARD")
    return seen


def test_memory_fields_take_redis_values_where_both_count_the_same(servers):
    ours, theirs = (_scene(port) for port in servers)
    compared = 0
    for who, fields in (("idle", ("qbuf", "argv-mem", "multi-mem", "obl", "oll", "omem", "events")),
                        ("queuing", ("multi", "argv-mem", "multi-mem", "obl", "oll", "omem")),
                        ("client|list", ("qbuf", "argv-mem", "multi-mem", "obl", "oll", "omem")),
                        ("by-type", ("qbuf", "argv-mem")), ("by-id", ("argv-mem",)),
                        ("info", ("qbuf", "argv-mem", "multi-mem", "obl", "oll", "omem"))):
        for field in fields:
            assert ours[who][field] == theirs[who][field], (who, field)
            compared += 1
    assert int(theirs["queuing"]["multi-mem"]) > 300 and int(theirs["client|list"]["argv-mem"]) == 10
    assert compared == 28


def _backlog(port: int) -> dict[str, str]:
    """A subscriber that stops reading while 64 KB messages pile up for it."""
    subscriber = socket.create_connection(("127.0.0.1", port))
    subscriber.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    subscriber.sendall(b"CLIENT SETNAME slow\r\nSUBSCRIBE ch\r\n")
    time.sleep(0.2)
    try:
        with RawClient(port) as publisher:
            for _ in range(200):
                publisher.call("PUBLISH", "ch", "m" * 65536)
            time.sleep(0.2)
            return _fields(publisher.call("CLIENT", "LIST", "TYPE", "pubsub"))["slow"]
    finally:
        subscriber.close()


def test_a_subscriber_that_stops_reading_shows_its_backlog_as_redis_does(servers):
    ours, theirs = (_backlog(port) for port in servers)
    for fields in (ours, theirs):
        assert int(fields["oll"]) >= 1 and int(fields["omem"]) > 10 * 65536, fields
        assert int(fields["tot-mem"]) >= int(fields["omem"])
    # Redis keeps one block per 64 KB message; here the transport joins what it could not
    # send into one leftover, so the same backlog is fewer, larger blocks.
    assert int(theirs["oll"]) > 10
    assert ours["events"] == theirs["events"] == "rw"


def test_reply_placement_follows_redis_blocks():
    assert reply_buffers([]) == (0, 0, 0)
    assert reply_buffers([b"x" * 100, b"y" * 200]) == (300, 0, 0)
    # The fixed buffer fills first; a reply that does not fit opens the list, and once the
    # list exists every reply goes there, into the last block's free room first.
    assert reply_buffers([b"x" * 16000, b"y" * 1000, b"z" * 10]) == (16000, 1, REPLY_CHUNK_BYTES)
    assert reply_buffers([b"x" * 70000, b"y" * 5]) == (0, 2, 70000 + REPLY_CHUNK_BYTES)
