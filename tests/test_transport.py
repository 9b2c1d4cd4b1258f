"""The transport (``trioredis.server``) and the persistence contract meeting in it: replies to
writes wait for the tickets a backend's ``flush()`` returned, whoever wrote the backend.

The backend here is a third party's: the test plugin ``tests/plugins/trioredis_groupcommit.py``
(``loadplugin trioredis_groupcommit``), which returns an ``EventTicket`` per flush under its own
option ``groupcommit-sync always`` and fsyncs once for every ticket of a round.  A real server
serves real sockets; ``groupcommit-hold yes`` holds the plugin's fsync so a test can see a
reply wait for it."""

from __future__ import annotations

import os
import socket
import sys

import pytest
from parity import RawClient, encode_command
from servers import ServerThread, wait_for

TEST_PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugins")
HELD = 0.3  # seconds a held reply is watched for: it must not arrive


@pytest.fixture
def groupcommit(monkeypatch, tmp_path):
    """A server with the group-commit plugin loaded, its option at the default (always)."""
    monkeypatch.syspath_prepend(TEST_PLUGINS)
    options = [["save", ""], ["appendonly", "no"], ["dir", str(tmp_path)],
               ["loadplugin", "trioredis_groupcommit"]]
    with ServerThread(options) as running:
        running.wait_ready()
        yield running
    sys.modules.pop("trioredis_groupcommit", None)


def no_reply_within(raw: RawClient, seconds: float) -> bool:
    raw.sock.settimeout(seconds)
    try:
        data = raw.sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return True
    finally:
        raw.sock.settimeout(10)
    return data == b""


def backend(server):
    (found,) = [b for b in server.server.engine.backends if b.name == "groupcommit"]
    return found


def test_the_plugin_option_is_a_config_option(groupcommit):
    client = groupcommit.client()
    assert client.config_get("groupcommit-sync") == {"groupcommit-sync": "always"}
    assert client.config_set("groupcommit-sync", "no")
    assert client.config_get("groupcommit-*")["groupcommit-sync"] == "no"
    assert client.config_set("groupcommit-sync", "always")


@pytest.mark.parametrize("notify", ["yes", "no"])
def test_a_write_waits_for_a_third_party_backends_ticket(groupcommit, notify):
    """With ``notify`` the ticket calls the transport back (durable_or_notify); without, the
    transport awaits its ``wait()`` in a task: either way the writer's reply waits for it.
    Only a ticket that can call back holds the replies of other clients too (a GET that would
    reveal the write): one that answers None is how the AOF says "reads need not wait"
    (everysec), as documented for ``Ticket.durable_or_notify``."""
    admin = groupcommit.client()
    admin.config_set("groupcommit-notify", notify)
    admin.config_set("groupcommit-hold", "yes")
    with RawClient(groupcommit.port) as writer, RawClient(groupcommit.port) as reader:
        writer.send(encode_command("SET", "k", "v"))
        assert no_reply_within(writer, HELD)  # written, not yet durable: no reply
        assert backend(groupcommit).pending  # the ticket its flush returned is waiting
        reader.send(encode_command("GET", "k"))
        if notify == "yes":
            assert no_reply_within(reader, HELD)  # reads after writes wait too
        else:
            assert reader.read_reply() == b"$1\r\nv\r\n"
        with RawClient(groupcommit.port) as releaser:
            releaser.send(encode_command("CONFIG", "SET", "groupcommit-hold", "no"))
            assert releaser.read_reply() == b"+OK\r\n"
        assert writer.read_reply() == b"+OK\r\n"
        if notify == "yes":
            assert reader.read_reply() == b"$1\r\nv\r\n"
    info = admin.info("persistence")
    assert info["groupcommit_tickets"] >= 1 and info["groupcommit_rounds"] >= 1
    with open(backend(groupcommit).path, "rb") as handle:
        assert handle.read().endswith(encode_command("SET", "k", "v"))


def test_one_sync_round_releases_every_writer_that_waited(groupcommit):
    """Group commit: writers of several turns wait behind one held round; when it runs, one
    fsync makes all their tickets durable and every reply leaves."""
    admin = groupcommit.client()
    admin.config_set("groupcommit-hold", "yes")
    plugin = backend(groupcommit)
    rounds_before, tickets_before = plugin.rounds, plugin.tickets
    writers = [RawClient(groupcommit.port) for _ in range(5)]
    try:
        for index, writer in enumerate(writers):
            writer.send(encode_command("INCR", f"c{index}"))
            # Each writer's turn flushes and gets a ticket of its own.
            wanted = tickets_before + index + 1
            wait_for(lambda wanted=wanted: plugin.tickets == wanted, what="the flush")
        assert all(no_reply_within(writer, 0.05) for writer in writers)
        admin_raw = RawClient(groupcommit.port)
        admin_raw.send(encode_command("CONFIG", "SET", "groupcommit-hold", "no"))
        assert admin_raw.read_reply() == b"+OK\r\n"
        admin_raw.close()
        assert [writer.read_reply() for writer in writers] == [b":1\r\n"] * 5
    finally:
        for writer in writers:
            writer.close()
    assert plugin.rounds - rounds_before == 1


def test_before_sleep_follows_the_rounds_flushes(groupcommit):
    """The backend's before_sleep() runs after the round that flushed, before the loop waits
    (the AOF starts its fsync there under ``always``): each round of writes is followed by one
    call, and a round without writes calls it without a flush before."""
    plugin = backend(groupcommit)
    client = groupcommit.client()
    client.config_set("groupcommit-sync", "no")
    for index in range(3):
        before = plugin.sleeps_after_flush
        assert client.set(f"k{index}", "v")
        wait_for(lambda before=before: plugin.sleeps_after_flush == before + 1,
                 what="before_sleep after the flush")
        assert not plugin.flushed_since_sleep
    client.ping()
    wait_for(lambda: not plugin.flushed_since_sleep, what="the round's end")
    assert plugin.sleeps_after_flush == before + 1


def test_without_tickets_replies_do_not_wait(groupcommit):
    client = groupcommit.client()
    client.config_set("groupcommit-sync", "no")
    client.config_set("groupcommit-hold", "yes")
    assert client.set("k", "v")  # no ticket: the reply leaves after write(2) alone
    assert backend(groupcommit).pending == []


def test_a_backend_that_stops_feeding_sees_no_writes(groupcommit):
    """``host.set_feeding(False)`` (pushed by the plugin on its own option) takes the backend
    off the per-write path."""
    client = groupcommit.client()
    client.config_set("groupcommit-enabled", "no")
    client.set("unseen", "1")
    client.config_set("groupcommit-enabled", "yes")
    client.set("seen", "1")
    with open(backend(groupcommit).path, "rb") as handle:
        data = handle.read()
    assert b"seen" in data and b"unseen" not in data


def test_pipelined_replies_leave_in_order_in_one_turn(server):
    with RawClient(server.port) as raw:
        raw.send(encode_command("INCR", "n") * 100)
        assert [raw.read_reply() for _ in range(100)] == [b":%d\r\n" % i for i in range(1, 101)]


def test_a_blocked_client_moves_to_a_task_and_others_are_still_served(server):
    with RawClient(server.port) as blocked, RawClient(server.port) as other:
        blocked.send(encode_command("BLPOP", "q", "0"))
        wait_for(lambda: any(c.blocked for c in server.server.engine.clients.values()),
                 what="the client to block")
        assert other.call("PING") == b"+PONG\r\n"
        assert other.call("RPUSH", "q", "x") == b":1\r\n"
        assert blocked.read_reply() == b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n"
