"""DUMP and RESTORE over real sockets: payloads both ways with redis-server 7.0.15, RESTORE's
options and errors byte for byte with Redis, what it propagates (the AOF replays it to the
same deadline), keyspace notifications as Redis publishes them, inside MULTI, and hostile
payloads answered with an error while the server lives on."""

from __future__ import annotations

import random
import shutil
import struct
import time

import pytest
import redis
from parity import RawClient, ReferenceRedis
from rdb_helpers import canonical, random_dataset
from servers import ServerProcess, ServerThread, free_port, record_propagation
from test_notifications import notifications
from trioredis.rdb import dump_payload, load_payload
from trioredis.rdb.checksum import crc64

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")


@pytest.fixture(scope="module")
def reference():
    with ReferenceRedis() as ref:
        yield ref


def _fill(client: redis.Redis) -> None:
    client.flushall()
    client.set("s", "hello")
    client.set("n", "42")
    client.set("long", "xyz" * 500)
    client.rpush("l", *[b"item%d" % i for i in range(3000)])
    client.hset("h", mapping={"a": "1", "b": "two"})
    client.sadd("si", 1, 2, 3)
    client.sadd("ss", "a", "b")
    client.zadd("z", {"a": 1, "b": 2.5})
    client.zadd("zl", {b"m%d" % i: i / 7 for i in range(500)})


def test_dump_of_each_type_equals_redis_and_restores_both_ways(r, reference):
    ref = reference.client()
    _fill(r)
    _fill(ref)
    for key in [b"s", b"n", b"long", b"l", b"h", b"si", b"ss", b"z", b"zl"]:
        ours, theirs = r.dump(key), ref.dump(key)
        if key != b"ss":  # a hash-table set: its order is the hash table's
            assert ours == theirs, key
        r.restore(key + b":from-redis", 0, theirs)
        ref.restore(key + b":from-us", 0, ours)
        if key != b"ss":
            assert r.dump(key + b":from-redis") == ours
            assert ref.dump(key + b":from-us") == theirs
        else:  # the same members; the restored table may iterate in another order
            assert r.smembers(key + b":from-redis") == r.smembers(key)
            assert ref.smembers(key + b":from-us") == ref.smembers(key)
    assert r.dump("missing") is None


SCRIPT = [
    ("SET", "taken", "v"),
    ("RESTORE", "taken", "0", "{s}"),
    ("RESTORE", "taken", "0", "{s}", "REPLACE"),
    ("GET", "taken"),
    ("RESTORE", "t1", "-5", "{s}"),
    ("RESTORE", "t1", "x", "{s}"),
    ("RESTORE", "t1", "0", "{s}", "REPLACE", "ABSTTL", "IDLETIME", "10"),
    ("RESTORE", "t2", "0", "{s}", "IDLETIME", "-1"),
    ("RESTORE", "t2", "0", "{s}", "IDLETIME", "x"),
    ("RESTORE", "t2", "0", "{s}", "IDLETIME"),
    ("RESTORE", "t2", "0", "{s}", "FREQ", "256"),
    ("RESTORE", "t2", "0", "{s}", "FREQ", "-1"),
    ("RESTORE", "t2", "0", "{s}", "FREQ", "5", "IDLETIME", "5"),
    ("RESTORE", "t2", "0", "{s}", "IDLETIME", "5", "FREQ", "5"),
    ("RESTORE", "t2", "0", "{s}", "NOPE"),
    ("RESTORE", "t2", "0", "{s}", "FREQ", "255"),
    ("RESTORE", "t3", "0", "garbage"),
    ("RESTORE", "t3", "0", ""),
    ("RESTORE", "t3", "0", "{bad-crc}"),
    ("RESTORE", "t3", "0", "{future}"),
    ("RESTORE", "t3", "0", "{bad-body}"),
    ("RESTORE", "t3", "0", "{empty-set}"),
    ("EXISTS", "t3"),
    ("RESTORE", "t3", "0", "{trailing}"),  # Redis ignores bytes after the value
    ("GET", "t3"),
    ("RESTORE", "t4", "100000", "{s}"),
    ("PTTL", "t4"),
    ("RESTORE", "t5", "1", "{s}", "ABSTTL"),
    ("EXISTS", "t5"),
    ("RESTORE", "t4", "1", "{s}", "ABSTTL", "REPLACE"),
    ("EXISTS", "t4"),
    ("RESTORE", "t6", "9223372036854775807", "{s}"),
    ("EXISTS", "t6"),
    ("RESTORE", "t7", "9223372036854775807", "{s}", "ABSTTL"),
    ("PEXPIRETIME", "t7"),
    ("RESTORE", "t8", "9223372036854775808", "{s}"),
    ("RESTORE",),
    ("RESTORE", "a", "0"),
    ("DUMP",),
    ("DUMP", "a", "b"),
    ("MULTI",),
    ("RESTORE", "m", "0", "{s}"),
    ("DUMP", "m"),
    ("RESTORE", "m", "0", "{s}"),
    ("EXEC",),
]


def _payloads() -> dict[str, bytes]:
    good = dump_payload(b"restored")
    body = good[:-10]

    def sealed(head: bytes) -> bytes:
        return head + struct.pack("<Q", crc64(head))

    return {
        "{s}": good,
        "{bad-crc}": good[:-1] + bytes((good[-1] ^ 1,)),
        "{future}": sealed(body + b"\x0b\x00"),
        "{bad-body}": sealed(b"\x00\x30ab" + b"\x0a\x00"),
        "{empty-set}": sealed(b"\x02\x00" + b"\x0a\x00"),
        "{trailing}": sealed(body + b"x" + b"\x0a\x00"),
    }


def _run(port: int, script) -> list[bytes]:
    payloads = _payloads()
    replies = []
    with RawClient(port) as client:
        client.call("FLUSHALL")
        for step in script:
            args = [payloads.get(arg, arg) for arg in step]
            reply = client.call(*args)
            if step[0] == "PTTL":  # the clocks differ by a few ms: compare the order of size
                reply = b":~%d\r\n" % round(int(reply[1:-2]), -4)
            replies.append(reply)
    return replies


def test_restore_options_and_errors_match_redis(server, reference):
    assert _run(server.port, SCRIPT) == _run(reference.port, SCRIPT)


def test_restore_propagates_an_absolute_ttl(server):
    recorder = record_propagation(server)
    client = server.client()
    payload = dump_payload(b"v")
    before = int(time.time() * 1000)
    client.restore("plain", 0, payload)
    client.restore("ttl", 50_000, payload, idletime=3)
    client.restore("abs", 4102444800000, payload, absttl=True)
    client.set("gone", "x")
    client.restore("gone", 1, payload, replace=True, absttl=True)  # expired on arrival
    client.restore("never", 1, payload, absttl=True)  # nothing existed, nothing happens
    seen = recorder.argvs
    assert seen[0] == [b"RESTORE", b"plain", b"0", payload]
    name, key, when, sent, *rest = seen[1]
    assert (name, key, sent, rest) == (b"RESTORE", b"ttl", payload, [b"IDLETIME", b"3", b"ABSTTL"])
    assert before + 50_000 <= int(when) <= int(time.time() * 1000) + 50_000
    assert client.pexpiretime("ttl") == int(when)
    assert seen[2] == [b"RESTORE", b"abs", b"4102444800000", payload, b"ABSTTL"]
    assert seen[3] == [b"SET", b"gone", b"x"]
    assert seen[4] == [b"DEL", b"gone"]
    assert len(seen) == 5


def test_restored_keys_survive_an_aof_restart_with_their_deadline(tmp_path):
    values = random_dataset(seed=21, databases=(0,))
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""]]).start()
    try:
        client = server.client()
        for (_db, key), (value, _expire) in values.items():
            client.restore(key, 10**8, dump_payload(value))
        deadlines = {key: client.pexpiretime(key) for (_db, key) in values}
        server.stop()
        server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""]]).start()
        client = server.client()
        for (_db, key), (value, _expire) in values.items():
            assert client.pexpiretime(key) == deadlines[key]
            payload = client.dump(key)
            assert canonical(load_payload(payload)) == canonical(value)
    finally:
        server.stop()


ABC = dump_payload(b"abc")
RESTORE_EVENTS = [
    ("SET", "k", "v"),
    ("RESTORE", "k", "0", ABC),
    ("RESTORE", "k", "0", ABC, "REPLACE"),
    ("RESTORE", "k2", "100000", ABC),
    ("RESTORE", "k", "1", ABC, "REPLACE", "ABSTTL"),
    ("RESTORE", "k3", "1", ABC, "ABSTTL"),
    ("DUMP", "nothing"),
]


def test_restore_notifications_match_redis(reference):
    with ServerThread([["save", ""], ["appendonly", "no"]]) as ours:
        ours.wait_ready()
        for setting in ("KEA", "KEAm", "Kg"):
            expected = notifications(reference.port, RESTORE_EVENTS, setting)
            assert notifications(ours.port, RESTORE_EVENTS, setting) == expected
            assert expected or setting == "Kg"


def test_hostile_payloads_get_bad_data_format_and_the_server_lives(r):
    rng = random.Random(4)
    good = [dump_payload(value) for value, _ in random_dataset(seed=8, databases=(0,)).values()]
    answers = set()
    for index in range(500):
        body = bytearray(rng.choice(good)[:-10])
        for _ in range(rng.randint(1, 3)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        if rng.random() < 0.2:
            body[1:1] = b"\x80\xff\xff\xff\xff"  # a 4 GB length
        head = bytes(body) + b"\x0a\x00"
        try:
            r.restore(b"h%d" % index, 0, head + struct.pack("<Q", crc64(head)))
            answers.add("OK")
        except redis.ResponseError as error:
            answers.add(str(error))
    assert answers <= {"OK", "Bad data format"}
    assert "Bad data format" in answers
    assert r.ping()


# --- MIGRATE to a real redis-server ---------------------------------------------------------


def _migrate_script(target_port: int, db: int, dead_port: int) -> list[tuple]:
    def migrate(*rest):
        return ("MIGRATE", "127.0.0.1", str(target_port), *rest)

    return [
        ("SET", "k", "v1"),
        ("RPUSH", "l", "a", "b", "c"),
        ("ZADD", "z", "1", "a", "2", "b"),
        ("HSET", "h", "f", "v"),
        ("SET", "ttl", "x", "PX", "100000"),
        migrate("k", str(db), "5000"),  # the target wants a password
        migrate("k", str(db), "5000", "AUTH", "wrong"),
        migrate("k", str(db), "5000", "AUTH", "secret"),
        ("EXISTS", "k"),
        migrate("missing", str(db), "5000", "AUTH", "secret"),
        ("SET", "k", "v2"),
        migrate("k", str(db), "5000", "AUTH", "secret"),  # BUSYKEY over there
        ("EXISTS", "k"),
        migrate("k", str(db), "5000", "AUTH", "secret", "REPLACE", "COPY"),
        ("EXISTS", "k"),
        migrate("", str(db), "0", "AUTH2", "mover", "pw2", "KEYS", "l", "z", "nothing", "ttl"),
        ("EXISTS", "l", "z", "ttl"),
        migrate("", str(db), "5000", "AUTH2", "mover", "pw2", "COPY", "KEYS", "h"),
        migrate("h", str(db), "5000", "KEYS", "h"),
        migrate("h", str(db), "5000", "AUTH"),
        migrate("h", str(db), "5000", "AUTH2", "mover"),
        migrate("h", str(db), "5000", "NOPE"),
        migrate("h", str(db), "x"),
        migrate("h", "x", "5000"),
        migrate("missing", "x", "5000"),
        ("MIGRATE", "127.0.0.1", str(dead_port), "h", str(db), "200"),
        ("MIGRATE", "256.1.1.1", "6379", "h", str(db), "200"),
        ("MIGRATE", "127.0.0.1", "abc", "h", str(db), "200"),
        ("MIGRATE", "127.0.0.1", "5"),
        ("EXISTS", "h"),
    ]


def test_migrate_to_redis_matches_redis(server, reference):
    dead_port = free_port()
    with ReferenceRedis() as target:
        redis.Redis(port=target.port).config_set("requirepass", "secret")
        admin = redis.Redis(port=target.port, password="secret")
        admin.acl_setuser("mover", enabled=True, passwords=["+pw2"], keys=["*"],
                          commands=["+@all"])
        replies = []
        for source, db in ((reference, 2), (server, 1)):
            script = _migrate_script(target.port, db, dead_port)
            with RawClient(source.port) as client:
                client.call("FLUSHALL")
                replies.append([client.call(*step) for step in script])
        theirs, ours = replies
        assert ours == theirs
        assert b"+OK\r\n" in ours and b"+NOKEY\r\n" in ours
        moved = {}
        for db in (1, 2):
            client = redis.Redis(port=target.port, password="secret", db=db)
            moved[db] = {key: (client.dump(key), client.pttl(key) > 90_000) for key in client.keys()}
        assert moved[1] == moved[2]
        assert set(moved[1]) == {b"k", b"l", b"z", b"h", b"ttl"}
        assert moved[1][b"ttl"][1]


def test_migrate_propagates_del_of_the_moved_keys_only(server):
    recorder = record_propagation(server)
    client = server.client()
    client.set("a", "1")
    client.set("b", "2")
    with ReferenceRedis() as target:
        redis.Redis(port=target.port).set("b", "taken")
        with pytest.raises(redis.ResponseError, match="BUSYKEY"):
            client.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                                   "KEYS", "a", "b")
        client.set("c", "3")
        client.execute_command("MIGRATE", "127.0.0.1", target.port, "c", 0, 5000, "COPY")
    assert recorder.argvs == [[b"SET", b"a", b"1"], [b"SET", b"b", b"2"], [b"DEL", b"a"],
                              [b"SET", b"c", b"3"]]
    assert client.exists("a", "b", "c") == 2


def test_command_info_of_dump_restore_migrate_matches_redis(r, reference):
    """Name, arity, flags, key positions and ACL categories (tips and key specs aside)."""
    def info(client):
        found = client.execute_command("COMMAND", "INFO", "dump", "restore", "migrate")
        return {name: {field: value for field, value in entry.items()
                       if field not in ("tips", "key_specifications")}
                for name, entry in found.items()}

    ours, theirs = info(r), info(reference.client())
    assert set(ours) == {"dump", "restore", "migrate"}
    assert ours == theirs
