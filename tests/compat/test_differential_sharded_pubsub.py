"""Differential test: sharded Pub/Sub (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH, PUBSUB
SHARDCHANNELS / SHARDNUMSUB) mixed with classic Pub/Sub, from three clients per server (two
RESP2, one RESP3), as a seeded random stream sent to ours and to a real ``redis-server`` 7.0.

After every command each client sends PING and reads up to its answer: everything a client
received in that step (its reply, messages pushed to it, refusals in subscribed mode) is
compared byte for byte with what the same client of Redis received, except where Redis's
order is its hash table's (PUBSUB SHARDCHANNELS, SUNSUBSCRIBE / UNSUBSCRIBE of everything):
there the same names, and the same counts in order."""

from __future__ import annotations

import random

import hiredis
import parity
import pytest
from parity import RawClient, encode_command
from servers import ServerThread

reference = parity.reference  # the real Redis, a module-scoped fixture

SEEDS = tuple(range(1, 5))
COMMANDS_PER_SEED = 400
CHANNELS = [b"a", b"b", b"c", b"{x}d", b""]
PONGS = (b"+PONG\r\n", b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")


@pytest.fixture(scope="module")
def ours():
    server = ServerThread([["save", ""], ["appendonly", "no"]]).start()
    yield server
    server.stop()


def _command(rng: random.Random) -> list[bytes]:
    channels = [rng.choice(CHANNELS) for _ in range(rng.randint(0, 3))]
    roll = rng.random()
    if roll < 0.2:
        return [b"SSUBSCRIBE", *(channels or [b"a"])]
    if roll < 0.32:
        return [b"SUNSUBSCRIBE", *channels]
    if roll < 0.55:
        return [b"SPUBLISH", rng.choice(CHANNELS), b"m%d" % rng.randint(0, 99)]
    if roll < 0.62:
        return [b"PUBSUB", b"SHARDCHANNELS", *([rng.choice([b"*", b"a*", b"{x}*", b"?"])]
                                                if rng.random() < 0.5 else [])]
    if roll < 0.68:
        return [b"PUBSUB", b"SHARDNUMSUB", *channels]
    if roll < 0.75:
        return [b"SUBSCRIBE", *(channels or [b"a"])]
    if roll < 0.8:
        return [b"UNSUBSCRIBE", *channels]
    if roll < 0.88:
        return [b"PUBLISH", rng.choice(CHANNELS), b"p%d" % rng.randint(0, 99)]
    if roll < 0.92:
        return [b"GET", b"k"]  # refused while a RESP2 client is subscribed
    if roll < 0.96:
        return [b"SSUBSCRIBE"]  # arity
    return [b"SPUBLISH", b"a"]  # arity


def _step(clients: list[RawClient], who: int, argv: list[bytes]) -> list[bytes]:
    """Send ``argv`` from client ``who``, then PING from every client: what each received."""
    clients[who].send(encode_command(*argv))
    received = []
    for client in clients:
        client.send(encode_command(b"PING"))
        replies = []
        while True:
            reply = client.read_reply()
            assert reply, "connection closed"
            if reply in PONGS:
                break
            replies.append(reply)
        received.append(b"".join(replies))
    return received


def _unordered(argv: list[bytes]) -> bool:
    return argv[:2] == [b"PUBSUB", b"SHARDCHANNELS"] or argv in ([b"SUNSUBSCRIBE"],
                                                                  [b"UNSUBSCRIBE"])


def _normalized(data: bytes):
    """Replies whose order is a hash table's: the names sorted, the counts kept in order."""
    reader = hiredis.Reader()
    reader.feed(data)
    replies = []
    while (reply := reader.gets()) is not False:
        replies.append(reply)
    if any(not isinstance(reply, list) for reply in replies):  # refused: the bytes
        return data
    if len(replies) == 1 and all(isinstance(item, bytes) for item in replies[0]):
        return sorted(replies[0])  # a list of channels
    return (sorted(reply[1] or b"" for reply in replies), [reply[2] for reply in replies],
            [reply[0] for reply in replies])


def _connect(port: int) -> list[RawClient]:
    clients = [RawClient(port) for _ in range(3)]
    assert clients[2].call(b"HELLO", b"3").startswith(b"%")
    return clients


@pytest.mark.parametrize("seed", SEEDS)
def test_sharded_pubsub_stream_matches_redis(ours, reference, seed):
    rng = random.Random(seed)
    mine, theirs = _connect(ours.server.port), _connect(reference.port)
    try:
        for number in range(COMMANDS_PER_SEED):
            who = rng.randrange(3)
            argv = _command(rng)
            got, expected = _step(mine, who, argv), _step(theirs, who, argv)
            if _unordered(argv):
                got[who], expected[who] = _normalized(got[who]), _normalized(expected[who])
            assert got == expected, (seed, number, who, argv)
    finally:
        for client in mine + theirs:
            client.close()


def test_the_stream_covers_every_sharded_command():
    rng = random.Random(SEEDS[0])
    seen = {tuple(_command(rng)[:2]) for _ in range(COMMANDS_PER_SEED)}
    names = {argv[0] for argv in seen} | {argv[1] for argv in seen if argv[0] == b"PUBSUB"}
    assert {b"SSUBSCRIBE", b"SUNSUBSCRIBE", b"SPUBLISH", b"SHARDCHANNELS", b"SHARDNUMSUB"} <= names


def test_sharded_commands_inside_multi_as_redis(ours, reference):
    """SSUBSCRIBE is refused inside EXEC (Redis 7.0 lets SUBSCRIBE through, not it);
    SPUBLISH, SUNSUBSCRIBE and PUBSUB SHARD* run there."""
    script = [("MULTI",), ("SSUBSCRIBE", "a", "b"), ("SPUBLISH", "a", "m"),
              ("PUBSUB", "SHARDNUMSUB", "a"), ("SUNSUBSCRIBE", "a"), ("EXEC",), ("SUNSUBSCRIBE",),
              ("MULTI",), ("SPUBLISH", "x", "y"), ("PUBSUB", "SHARDCHANNELS"), ("EXEC",)]
    assert parity.compare_scripts(ours.server.port, reference.port, script) == []
