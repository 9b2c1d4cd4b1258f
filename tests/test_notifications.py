"""Keyspace notifications (``notify-keyspace-events``) of string and generic key commands,
key creation (``new``), expiry (``expired``) and key misses (``keymiss``, class ``m``),
compared message by message with what Redis 7.0.15 publishes for the same script (a
redis-server started by the test); CONFIG GET's spelling of the setting, as Redis's.

Each server gets the same commands on one connection while a second connection is
psubscribed to ``__key*__:*``; a marker published at the end tells the reader that every
notification before it has arrived, so nothing here sleeps to wait for messages."""

from __future__ import annotations

import shutil
import time

import pytest
import redis
from parity import ReferenceRedis
from servers import ServerThread

SETTING = "KEAn"  # every class Redis 7.0 has but key-miss, with the 'new' class of 7.0
# Narrower settings: each event must belong to Redis's class ("expire" generic, "expired"
# its own, "new" its own...) and go to the channels chosen.
SETTINGS = [SETTING, "K$", "Egx", "Kn", "KEg$"]
MARKER = b"__keyspace@0__:zz-end-of-script"

# (command...) runs on db 0 unless a SELECT says otherwise; ("sleep", seconds) waits so that
# keys with a short TTL are past it (lazy expiry on the next access publishes "expired").
SCRIPT: list[tuple] = [
    # strings
    ("SET", "s", "1"),
    ("SET", "s", "2"),
    ("SET", "s", "3", "NX"),
    ("SET", "s", "4", "XX"),
    ("SET", "nx", "v", "NX"),
    ("SET", "xx", "v", "XX"),
    ("SET", "s", "5", "GET"),
    ("SET", "s", "6", "EX", "100"),
    ("SET", "s", "7", "KEEPTTL"),
    ("SET", "s", "8", "PX", "100000", "GET"),
    ("SETNX", "s", "x"),
    ("SETNX", "snx", "x"),
    ("SETEX", "sex", "100", "v"),
    ("PSETEX", "psex", "100000", "v"),
    ("GETSET", "s", "9"),
    ("GETSET", "gs-new", "9"),
    ("GETDEL", "s"),
    ("GETDEL", "s"),
    ("SET", "g", "v"),
    ("GETEX", "g"),
    ("GETEX", "g", "EX", "100"),
    ("GETEX", "g", "PX", "100000"),
    ("GETEX", "g", "EXAT", "99999999999"),
    ("GETEX", "g", "PERSIST"),
    ("GETEX", "g", "PERSIST"),
    ("GETEX", "g", "PXAT", "1"),
    ("GETEX", "missing", "EX", "100"),
    ("MSET", "m1", "a", "m2", "b", "m1", "c"),
    ("MSETNX", "m1", "a", "m3", "b"),
    ("MSETNX", "m3", "a", "m4", "b"),
    ("APPEND", "ap", "x"),
    ("APPEND", "ap", "y"),
    ("SETRANGE", "sr", "3", "abc"),
    ("SETRANGE", "sr", "0", "z"),
    ("SETRANGE", "sr", "0", ""),
    ("SETRANGE", "sr-empty", "0", ""),
    ("INCR", "n"),
    ("DECR", "n"),
    ("INCRBY", "n", "5"),
    ("DECRBY", "n", "2"),
    ("INCRBYFLOAT", "f", "1.5"),
    ("INCRBYFLOAT", "f", "1.5"),
    ("INCR", "sr"),
    ("GET", "n"),
    ("STRLEN", "n"),
    ("GETRANGE", "n", "0", "1"),
    ("MGET", "n", "f"),
    ("LCS", "m1", "m2"),
    # generic
    ("DEL", "n", "f", "nothing"),
    ("UNLINK", "m1", "m2"),
    ("EXISTS", "m3"),
    ("TOUCH", "m3"),
    ("TYPE", "m3"),
    ("SET", "r1", "v"),
    ("RENAME", "r1", "r2"),
    ("SET", "r3", "w"),
    ("RENAME", "r2", "r3"),
    ("RENAME", "r3", "r3"),
    ("RENAMENX", "r3", "r4"),
    ("SET", "r5", "v"),
    ("RENAMENX", "r4", "r5"),
    ("RENAMENX", "r4", "r4"),
    ("RENAME", "nothing", "r6"),
    ("COPY", "r4", "c1"),
    ("COPY", "r4", "c1"),
    ("COPY", "r5", "c1", "REPLACE"),
    ("COPY", "r5", "c2", "DB", "1"),
    ("COPY", "nothing", "c3"),
    ("MOVE", "c1", "1"),
    ("MOVE", "c2", "1"),
    ("SET", "e", "v"),
    ("EXPIRE", "e", "100"),
    ("EXPIRE", "e", "100", "NX"),
    ("PEXPIRE", "e", "100000", "XX"),
    ("EXPIREAT", "e", "99999999999"),
    ("PEXPIREAT", "e", "99999999999000", "GT"),
    ("TTL", "e"),
    ("PERSIST", "e"),
    ("PERSIST", "e"),
    ("EXPIRE", "nothing", "100"),
    ("EXPIRE", "e", "-1"),
    ("SET", "e", "v"),
    ("PEXPIREAT", "e", "1"),
    ("SET", "e", "v"),
    ("EXPIREAT", "e", "1"),
    # lazy expiry: the next access deletes the key and publishes "expired" (active expiry
    # paused, or it could delete them first and in another order)
    ("DEBUG", "SET-ACTIVE-EXPIRE", "0"),
    # An expiry already past: Redis keeps the key until its next access ("expired" then),
    # we delete it at once and publish "expired" then: the same sequence either way.
    ("SET", "past", "v", "EXAT", "1"),
    ("GET", "past"),
    ("SET", "past2", "v", "PXAT", "1", "GET"),
    ("EXISTS", "past2"),
    # (PX 50, not 1: a TTL already past when SET checks it deletes the key at once here)
    *[("SET", f"lazy{n}", "v", "PX", "50") for n in range(1, 17)],
    ("SET", "plain", "v"),
    ("SELECT", "1"),
    ("SET", "lazy-db1", "v", "PX", "50"),
    ("SELECT", "0"),
    ("sleep", 0.2),
    ("GET", "lazy1"),
    ("SET", "lazy2", "again"),
    ("EXISTS", "lazy3"),
    ("INCR", "lazy4"),
    ("MSET", "lazy5", "a", "lazy6", "b"),
    ("RENAME", "plain", "lazy7"),
    ("DEL", "lazy8"),
    ("SET", "lazy9", "v", "XX"),
    ("GETSET", "lazy10", "v"),
    ("COPY", "lazy7", "lazy11"),
    ("APPEND", "lazy12", "x"),
    ("SETRANGE", "lazy13", "0", "a"),
    ("EXPIRE", "lazy14", "100"),
    ("MSETNX", "lazy15", "a", "fresh", "b"),
    ("MOVE", "lazy7", "1"),
    ("MOVE", "lazy-db1", "1"),
    ("SELECT", "1"),
    ("GET", "lazy-db1"),
    ("SELECT", "0"),
    ("PERSIST", "lazy16"),
    ("DEBUG", "SET-ACTIVE-EXPIRE", "1"),
    # other types: the 'new' event on creation, before the type's own event
    ("RPUSH", "list", "a"),
    ("HSET", "hash", "f", "v"),
    ("SADD", "set", "m"),
    ("ZADD", "zset", "1", "m"),
    ("RENAME", "list", "list2"),
    ("MOVE", "hash", "1"),
    ("COPY", "set", "set2"),
    ("DEL", "list2", "set", "set2", "zset"),
    # commands of other types that create their destination: "new" first there too
    ("LPUSH", "l1", "a", "b"),
    ("LMOVE", "l1", "l2", "LEFT", "RIGHT"),
    ("RPOPLPUSH", "l1", "l3"),
    ("LPUSHX", "nol", "a"),
    ("HINCRBY", "h2", "f", "1"),
    ("HINCRBYFLOAT", "h3", "f", "1.5"),
    ("HSETNX", "h4", "f", "v"),
    ("SADD", "s1", "a", "b"),
    ("SADD", "s2", "b"),
    ("SINTERSTORE", "s3", "s1", "s2"),
    ("SUNIONSTORE", "s3", "s1", "s2"),
    ("SDIFFSTORE", "s4", "s1", "s2"),
    ("SMOVE", "s1", "s5", "a"),
    ("SINTERSTORE", "s3", "s1", "nothing"),
    ("ZADD", "z1", "1", "a", "2", "b"),
    ("ZINCRBY", "z2", "1", "a"),
    ("ZUNIONSTORE", "z3", "2", "z1", "z2"),
    ("ZRANGESTORE", "z5", "z1", "0", "-1"),
    ("ZRANGESTORE", "z5", "z1", "5", "9"),
    # in another database
    ("SELECT", "1"),
    ("SET", "db1", "v"),
    ("DEL", "db1", "c1", "c2", "hash"),
    ("SELECT", "0"),
    # inside MULTI/EXEC the events come as the queued commands run
    ("MULTI",),
    ("SET", "tx", "1"),
    ("INCR", "tx"),
    ("EXPIRE", "tx", "100"),
    ("DEL", "tx"),
    ("EXEC",),
    # SWAPDB, FLUSHDB and FLUSHALL publish no keyspace event in 7.0
    ("SET", "sw", "v"),
    ("SWAPDB", "0", "1"),
    ("SWAPDB", "0", "1"),
    ("DEL", "sw"),
    ("SET", "fl", "v"),
    ("FLUSHDB", "ASYNC"),
    ("SET", "fl", "v"),
    ("FLUSHDB",),
    ("SET", "fl", "v"),
    ("FLUSHALL",),
    ("SET", "after", "v"),
]


def notifications(port: int, script: list[tuple], setting: str = SETTING
                  ) -> list[tuple[bytes, bytes, bytes]]:
    """Run ``script`` on the server at ``port`` with ``notify-keyspace-events`` set to
    ``setting`` and return the (pattern, channel, message) notifications it published, in
    order."""
    client = redis.Redis(port=port, protocol=2)
    listener = client.pubsub()
    try:
        client.config_set("notify-keyspace-events", setting)
        client.flushall()
        listener.psubscribe("__key*__:*")
        assert listener.get_message(timeout=5)["type"] == "psubscribe"
        for step in script:
            if step[0] == "sleep":
                time.sleep(step[1])
                continue
            try:
                client.execute_command(*step)
            except redis.ResponseError:
                pass
        client.execute_command("SELECT", "0")
        client.publish(MARKER, b"end")
        received = []
        while True:
            message = listener.get_message(timeout=5)
            assert message is not None, "the end marker did not arrive"
            if message["channel"] == MARKER:
                break
            received.append((message["pattern"], message["channel"], message["data"]))
        return received
    finally:
        listener.close()
        client.config_set("notify-keyspace-events", "")
        client.close()


@pytest.fixture(scope="module")
def reference_port():
    """A redis-server 7.0 of our own (skips when it is not installed)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    with ReferenceRedis("--notify-keyspace-events", SETTING) as redis_server:
        yield redis_server.port


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    directory = tmp_path_factory.mktemp("notifications")
    with ServerThread([["save", ""], ["appendonly", "no"], ["dir", str(directory)],
                       ["notify-keyspace-events", SETTING]]) as running:
        running.wait_ready()
        yield running


@pytest.mark.parametrize("setting", SETTINGS)
def test_notification_sequence_matches_redis(reference_port, ours, setting):
    expected = notifications(reference_port, SCRIPT, setting)
    got = notifications(ours.port, SCRIPT, setting)
    assert got == expected
    if setting == SETTING:
        assert len(expected) > 300  # the script did publish (both servers answered it)


def test_active_expiry_publishes_expired(ours):
    """A key nobody touches after its TTL is deleted by the server cron: ``expired`` is
    published then too (on both channels, after the key is gone)."""
    client = ours.client()
    listener = client.pubsub()
    try:
        client.config_set("notify-keyspace-events", "KEx")
        listener.psubscribe("__key*__:*")
        assert listener.get_message(timeout=5)["type"] == "psubscribe"
        client.set("short-lived", "v", px=1)
        messages = []
        while len(messages) < 2:
            message = listener.get_message(timeout=10)
            assert message is not None, "no expired event from active expiry"
            messages.append((message["channel"], message["data"]))
        assert messages == [
            (b"__keyspace@0__:short-lived", b"expired"),
            (b"__keyevent@0__:expired", b"short-lived"),
        ]
        assert client.exists("short-lived") == 0
    finally:
        listener.close()
        client.config_set("notify-keyspace-events", "")
        client.close()


# --- key misses (class m) ------------------------------------------------------------------

# Reads that find no key publish "keymiss" (Redis's lookupKeyRead); writes, DEL/EXPIRE-like
# commands and OBJECT do not.  "A" does not include m.
KEYMISS_SETTINGS = ["KEm", "Km", "Em", "KEA", "KEAm", "Elm"]
KEYMISS_SCRIPT: list[tuple] = [
    ("SET", "str", "v"), ("RPUSH", "list", "a"), ("HSET", "hash", "f", "v"),
    ("SADD", "set", "m"), ("ZADD", "zset", "1", "m"),
    # reads of a missing key
    ("GET", "k1"), ("MGET", "k2", "str", "k3"), ("STRLEN", "k4"), ("GETRANGE", "k5", "0", "1"),
    ("SUBSTR", "k5", "0", "1"), ("LCS", "k6", "str"), ("GETDEL", "k7"), ("GETEX", "k8"),
    ("GETSET", "k9", "v"), ("SET", "k10", "v", "GET"), ("EXISTS", "k11", "str", "k12"),
    ("TYPE", "k13"), ("TTL", "k14"), ("PTTL", "k15"), ("EXPIRETIME", "k16"),
    ("PEXPIRETIME", "k16"), ("TOUCH", "k17", "str"), ("COPY", "k18", "dst"),
    ("HGET", "h1", "f"), ("HMGET", "h2", "f"), ("HGETALL", "h3"), ("HLEN", "h4"),
    ("HKEYS", "h5"), ("HVALS", "h6"), ("HEXISTS", "h7", "f"), ("HSTRLEN", "h8", "f"),
    ("HRANDFIELD", "h9"), ("HRANDFIELD", "h9", "2"), ("HSCAN", "h10", "0"),
    ("LRANGE", "l1", "0", "-1"), ("LLEN", "l2"), ("LINDEX", "l3", "0"), ("LPOS", "l4", "a"),
    ("SMEMBERS", "s1"), ("SCARD", "s2"), ("SISMEMBER", "s3", "m"), ("SMISMEMBER", "s4", "m"),
    ("SRANDMEMBER", "s5"), ("SSCAN", "s6", "0"), ("SUNION", "s7", "set"),
    ("SINTER", "set", "s8"), ("SDIFF", "s9", "set"), ("SINTERCARD", "2", "set", "s10"),
    ("SUNIONSTORE", "dst2", "s11", "set"), ("SINTERSTORE", "dst3", "set", "s12"),
    ("SDIFFSTORE", "dst4", "s13"),
    ("ZRANGE", "z1", "0", "-1"), ("ZCARD", "z2"), ("ZSCORE", "z3", "m"), ("ZMSCORE", "z4", "m"),
    ("ZRANK", "z5", "m"), ("ZCOUNT", "z6", "0", "1"), ("ZRANDMEMBER", "z7"),
    ("ZSCAN", "z8", "0"), ("ZUNION", "2", "zset", "z9"), ("ZINTERCARD", "2", "zset", "z10"),
    ("ZUNIONSTORE", "dst5", "2", "z11", "zset"), ("ZRANGESTORE", "dst6", "z12", "0", "-1"),
    # a key that is there, whatever the field or type: no miss
    ("GET", "str"), ("HGET", "hash", "nofield"), ("LINDEX", "list", "9"), ("GET", "hash"),
    ("SISMEMBER", "set", "x"), ("ZSCORE", "zset", "x"),
    # writes and lookups that are not reads: no miss
    ("DEL", "w1"), ("UNLINK", "w1"), ("EXPIRE", "w2", "10"), ("PERSIST", "w3"),
    ("RENAME", "w4", "w5"), ("MOVE", "w6", "1"), ("INCR", "w7"), ("APPEND", "w8", "x"),
    ("SETNX", "w9", "x"), ("LPOP", "w10"), ("RPOPLPUSH", "w11", "w12"), ("LPUSHX", "w13", "a"),
    ("HDEL", "w14", "f"), ("HINCRBY", "w15", "f", "1"), ("SREM", "w16", "m"), ("SPOP", "w17"),
    ("SMOVE", "w18", "set", "m"), ("ZREM", "w19", "m"), ("ZPOPMIN", "w20"),
    ("OBJECT", "ENCODING", "w21"), ("WATCH", "w22"), ("UNWATCH",),
    # an expired key read: "expired", then the miss
    ("DEBUG", "SET-ACTIVE-EXPIRE", "0"),
    ("SET", "gone", "v", "PX", "20"),
    ("sleep", 0.1),
    ("GET", "gone"),
    ("DEBUG", "SET-ACTIVE-EXPIRE", "1"),
    # in another database, and inside a transaction
    ("SELECT", "1"), ("GET", "db1-miss"), ("SELECT", "0"),
    ("MULTI",), ("GET", "tx-miss"), ("HGET", "tx-miss2", "f"), ("EXEC",),
]


@pytest.mark.parametrize("setting", KEYMISS_SETTINGS)
def test_keymiss_notifications_match_redis(reference_port, ours, setting):
    expected = notifications(reference_port, KEYMISS_SCRIPT, setting)
    got = notifications(ours.port, KEYMISS_SCRIPT, setting)
    assert got == expected
    if setting == "KEm":
        assert sum(message == b"keymiss" for _, _, message in expected) >= 60


def test_get_of_a_missing_key_publishes_keymiss_only_with_class_m(ours):
    """The GET fast path and read_key both publish; ``A`` alone does not include ``m``."""
    pattern = b"__key*__:*"
    assert notifications(ours.port, [("GET", "nope"), ("HGET", "nope2", "f")], "KEm") == [
        (pattern, b"__keyspace@0__:nope", b"keymiss"),
        (pattern, b"__keyevent@0__:keymiss", b"nope"),
        (pattern, b"__keyspace@0__:nope2", b"keymiss"),
        (pattern, b"__keyevent@0__:keymiss", b"nope2"),
    ]
    assert notifications(ours.port, [("GET", "nope"), ("HGET", "nope2", "f")], "KEA") == []


# (CONFIG SET value, what CONFIG GET then answers in Redis 7.0.15): the classes first ("A"
# when all it stands for are on, and then no "n"), then K, E, m.
KEYSPACE_EVENTS_DISPLAY = [
    ("KEA", "AKE"), ("KEAm", "AKEm"), ("mAKE", "AKEm"), ("Em", "Em"), ("m", "m"),
    ("Km", "Km"), ("KEAn", "AKE"), ("nm", "nm"), ("KEx", "xKE"), ("g$lshzxetd", "A"),
    ("g$lshzxetdK", "AK"), ("mKElgshzxetdn", "glshzxetdnKEm"), ("mm", "m"), ("AA", "A"),
    ("K", "K"), ("", ""),
]


@pytest.mark.parametrize(("value", "shown"), KEYSPACE_EVENTS_DISPLAY)
def test_config_get_shows_keyspace_events_as_redis(ours, reference_port, value, shown):
    for port in (ours.port, reference_port):
        client = redis.Redis(port=port, decode_responses=True)
        try:
            client.config_set("notify-keyspace-events", value)
            assert client.config_get("notify-keyspace-events") == {
                "notify-keyspace-events": shown}, port
        finally:
            client.config_set("notify-keyspace-events", "")
            client.close()


def test_config_set_refuses_an_unknown_event_class(ours):
    client = ours.client()
    try:
        client.config_set("notify-keyspace-events", "KEm")
        with pytest.raises(redis.ResponseError) as refused:
            client.config_set("notify-keyspace-events", "KEQ")
        assert str(refused.value) == (
            "CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - "
            "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
        assert client.config_get("notify-keyspace-events") == {
            "notify-keyspace-events": "KEm"}
    finally:
        client.config_set("notify-keyspace-events", "")
        client.close()


def test_keyspace_events_with_new_class_still_publish_new_though_shown_as_a(ours):
    """"KEAn" reads back as "AKE" (Redis prints no "n" after "A") yet "new" stays on."""
    pattern = b"__key*__:*"
    assert notifications(ours.port, [("SET", "fresh", "v")], "KEAn") == [
        (pattern, b"__keyspace@0__:fresh", b"new"),
        (pattern, b"__keyevent@0__:new", b"fresh"),
        (pattern, b"__keyspace@0__:fresh", b"set"),
        (pattern, b"__keyevent@0__:set", b"fresh"),
    ]
