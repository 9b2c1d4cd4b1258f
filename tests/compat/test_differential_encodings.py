"""OBJECT ENCODING of hashes, sets and sorted sets against redis-server 7.0.15: the thresholds
come from the live config (set with CONFIG SET, under their 7.0 and their old ``ziplist``
names) and the history counts (Redis never converts back).  Seeded random streams of writes
that grow and shrink values past the thresholds, with RENAME, COPY, MOVE, SWAPDB, DEL,
RESTORE and the STORE commands, then OBJECT ENCODING and the DUMP payload's type byte of
every key, compared with Redis reply by reply."""

from __future__ import annotations

import random
import shutil

import pytest
from parity import RawClient, ReferenceRedis, server_beside_redis
from servers import ServerProcess

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")

SEEDS = [1, 2, 3, 4, 5, 6]
KEYS = [b"h1", b"h2", b"s1", b"s2", b"z1", b"z2"]
THRESHOLDS = [
    (b"hash-max-listpack-entries", [b"4", b"8", b"512"]),
    (b"hash-max-ziplist-value", [b"5", b"10", b"64"]),
    (b"set-max-intset-entries", [b"4", b"8", b"512"]),
    (b"zset-max-listpack-entries", [b"4", b"8", b"128"]),
    (b"zset-max-ziplist-value", [b"5", b"10", b"64"]),
]


def _element(rng: random.Random) -> bytes:
    # A small universe, so removals hit what was added and values shrink back often.
    roll = rng.random()
    if roll < 0.55:
        return b"%d" % rng.randrange(-4, 5)
    if roll < 0.85:
        return b"m%d" % rng.randrange(5)
    return b"long-%d-" % rng.randrange(2) + b"x" * rng.choice([3, 70])


def _script(seed: int) -> list[list[bytes]]:
    rng = random.Random(seed)
    commands = [[b"CONFIG", b"SET", name, rng.choice(values)] for name, values in THRESHOLDS]
    for _ in range(600):
        roll = rng.random()
        h, s, z = rng.choice(KEYS[:2]), rng.choice(KEYS[2:4]), rng.choice(KEYS[4:])
        element = _element(rng)
        if roll < 0.12:
            commands.append([b"HSET", h, element, _element(rng)])
        elif roll < 0.17:
            commands.append([b"HSETNX", h, element, _element(rng)])
        elif roll < 0.2:
            commands.append([b"HINCRBY", h, element, b"%d" % rng.randrange(-5, 5)])
        elif roll < 0.22:
            commands.append([b"HINCRBYFLOAT", h, element, b"1.5"])
        elif roll < 0.32:
            commands.append([b"HDEL", h, element, _element(rng)])
        elif roll < 0.44:
            commands.append([b"SADD", s, element, _element(rng)])
        elif roll < 0.54:
            commands.append([b"SREM", s, element, _element(rng), _element(rng)])
        elif roll < 0.57:
            commands.append([b"SMOVE", b"s1", b"s2", element])
        elif roll < 0.6:
            commands.append([rng.choice([b"SINTERSTORE", b"SUNIONSTORE", b"SDIFFSTORE"]),
                             s, b"s1", b"s2"])
        elif roll < 0.7:
            commands.append([b"ZADD", z, b"%d" % rng.randrange(9), element])
        elif roll < 0.78:
            commands.append([b"ZREM", z, element, _element(rng)])
        elif roll < 0.8:
            commands.append([b"RENAME", rng.choice(KEYS), rng.choice(KEYS)])
        elif roll < 0.82:
            commands.append([b"COPY", rng.choice(KEYS), rng.choice(KEYS), b"REPLACE"])
        elif roll < 0.835:
            key = rng.choice(KEYS)
            commands += [[b"MOVE", key, b"1"], [b"SELECT", b"1"], [b"MOVE", key, b"0"],
                         [b"SELECT", b"0"]]
        elif roll < 0.845:
            commands += [[b"SWAPDB", b"0", b"1"], [b"SWAPDB", b"1", b"0"]]
        elif roll < 0.85:
            commands.append([b"DEL", rng.choice(KEYS)])
        elif roll < 0.86:
            commands.append([b"RESTORE-DUMP", rng.choice(KEYS)])
        else:
            commands.append([b"OBJECT", b"ENCODING", rng.choice(KEYS)])
        # Each write is followed by the encoding of what it wrote: a conversion (or one
        # Redis would not make) shows at once, before a later write hides it.
        written = commands[-1]
        if written[0] in (b"HSET", b"HSETNX", b"HINCRBY", b"HINCRBYFLOAT", b"HDEL", b"SADD",
                          b"SREM", b"ZADD", b"ZREM"):
            commands.append([b"OBJECT", b"ENCODING", written[1]])
        elif written[0] == b"SMOVE":
            commands.append([b"OBJECT", b"ENCODING", b"s2"])
        elif written[0] in (b"RENAME", b"COPY", b"SINTERSTORE", b"SUNIONSTORE", b"SDIFFSTORE"):
            commands.append([b"OBJECT", b"ENCODING", written[1 if written[0][0:1] == b"S" else 2]])
    for key in KEYS:
        commands.append([b"OBJECT", b"ENCODING", key])
        commands.append([b"DUMP-TYPE", key])
    return commands


def _replies(port: int, commands: list[list[bytes]]) -> list[bytes]:
    """Every reply; ``RESTORE-DUMP key`` is DUMP then RESTORE ... REPLACE of the payload (a
    value rebuilt from its DUMP), ``DUMP-TYPE key`` the type byte of the key's payload."""
    replies = []
    with RawClient(port) as client:
        client.call(b"FLUSHALL")
        for argv in commands:
            if argv[0] in (b"RESTORE-DUMP", b"DUMP-TYPE"):
                dump = client.call(b"DUMP", argv[1])
                if dump.startswith(b"$-1"):
                    replies.append(dump)
                    continue
                payload = dump[dump.index(b"\r\n") + 2:-2]
                if argv[0] == b"DUMP-TYPE":
                    replies.append(payload[:1])
                else:
                    replies.append(client.call(b"RESTORE", argv[1], b"0", payload, b"REPLACE"))
            else:
                replies.append(client.call(*argv))
        for name, _values in THRESHOLDS:
            client.call(b"CONFIG", b"SET", name, dict(THRESHOLDS)[name][-1])
    return replies


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with server_beside_redis(str(tmp_path_factory.mktemp("ours"))) as (ours, ref):
        yield ours.port, ref.port


@pytest.mark.parametrize("seed", SEEDS)
def test_object_encoding_follows_config_and_history_as_redis(servers, seed):
    ours, theirs = servers
    commands = _script(seed)
    mine, expected = _replies(ours, commands), _replies(theirs, commands)
    encodings = 0
    for argv, got, want in zip(commands, mine, expected, strict=True):
        assert got == want, argv
        if argv[:2] == [b"OBJECT", b"ENCODING"] and b"hashtable" in want:
            encodings += 1
    assert encodings > 3  # the streams do reach hash tables


def test_a_hash_that_shrinks_stays_a_hash_table_and_a_new_one_starts_compact(servers):
    ours, theirs = servers
    script = [[b"CONFIG", b"SET", b"hash-max-ziplist-entries", b"2"],
              [b"HSET", b"h", b"a", b"1", b"b", b"2", b"c", b"3"],
              [b"OBJECT", b"ENCODING", b"h"], [b"HDEL", b"h", b"a", b"b"],
              [b"OBJECT", b"ENCODING", b"h"], [b"RENAME", b"h", b"g"],
              [b"OBJECT", b"ENCODING", b"g"], [b"DEL", b"g"], [b"HSET", b"g", b"a", b"1"],
              [b"OBJECT", b"ENCODING", b"g"], [b"SADD", b"s", b"1", b"x"], [b"SREM", b"s", b"x"],
              [b"OBJECT", b"ENCODING", b"s"], [b"DUMP-TYPE", b"s"],
              [b"CONFIG", b"SET", b"set-max-intset-entries", b"1"], [b"SADD", b"t", b"1", b"2"],
              [b"OBJECT", b"ENCODING", b"t"],
              [b"CONFIG", b"SET", b"hash-max-listpack-entries", b"512"],
              [b"CONFIG", b"SET", b"set-max-intset-entries", b"512"]]
    mine, expected = _replies(ours, script), _replies(theirs, script)
    assert mine == expected
    assert expected[2] == expected[4] == expected[6] == b"$9\r\nhashtable\r\n"
    assert expected[9] == b"$8\r\nlistpack\r\n"
    assert expected[12] == expected[16] == b"$9\r\nhashtable\r\n"


def test_debug_reload_builds_by_shape_and_keeps_hash_tables_born_there(servers):
    """DEBUG RELOAD: a hash that shrank back comes back compact (the loader builds by shape),
    a set loaded as a hash table stays one when it shrinks afterwards, as in Redis."""
    ours, theirs = servers
    script = [[b"CONFIG", b"SET", b"hash-max-listpack-entries", b"2"],
              [b"HSET", b"h", b"a", b"1", b"b", b"2", b"c", b"3"], [b"HDEL", b"h", b"a", b"b"],
              [b"OBJECT", b"ENCODING", b"h"], [b"SADD", b"s", b"1", b"x"],
              [b"DEBUG", b"RELOAD"], [b"OBJECT", b"ENCODING", b"h"],
              [b"OBJECT", b"ENCODING", b"s"], [b"SREM", b"s", b"x"],
              [b"OBJECT", b"ENCODING", b"s"], [b"DUMP-TYPE", b"s"],
              [b"CONFIG", b"SET", b"hash-max-listpack-entries", b"512"]]
    mine, expected = _replies(ours, script), _replies(theirs, script)
    assert mine == expected
    assert expected[3] == b"$9\r\nhashtable\r\n" and expected[6] == b"$8\r\nlistpack\r\n"
    assert expected[9] == b"$9\r\nhashtable\r\n"


AOF_SCRIPT = [[b"HSET", b"h", b"a", b"1", b"b", b"2", b"c", b"3"], [b"HDEL", b"h", b"a", b"b"],
              [b"SADD", b"s", b"1", b"x"], [b"SREM", b"s", b"x"], [b"HSET", b"g", b"a", b"1"]]
AOF_READS = [[b"OBJECT", b"ENCODING", key] for key in (b"h", b"s", b"g")]


def test_a_restart_from_the_aof_replays_the_history_as_redis(tmp_path):
    """The AOF replays the writes that converted a value, so after a restart a hash that
    shrank is still a hash table, on both servers."""
    options = ["--appendonly", "yes", "--hash-max-listpack-entries", "2"]
    answers = []
    for kind in ("redis", "ours"):
        directory = tmp_path / kind
        directory.mkdir()
        for run in range(2):
            if kind == "redis":
                server = ReferenceRedis(*options, directory=str(directory))
                port, stop = server.port, server.stop
            else:
                process = ServerProcess(str(directory), [["save", ""], ["appendonly", "yes"],
                                                         ["hash-max-listpack-entries", "2"]])
                process.start()
                port, stop = process.port, process.stop
            try:
                script = AOF_SCRIPT + AOF_READS if run == 0 else AOF_READS
                replies = _replies_without_flush(port, script)
            finally:
                stop()
        answers.append(replies)
    assert answers[0] == answers[1]
    assert answers[0] == [b"$9\r\nhashtable\r\n", b"$9\r\nhashtable\r\n", b"$8\r\nlistpack\r\n"]


def _replies_without_flush(port: int, script: list[list[bytes]]) -> list[bytes]:
    with RawClient(port) as client:
        replies = [client.call(*argv) for argv in script]
    return replies[-len(AOF_READS):]


def test_dump_rdb_writes_a_shrunk_hash_as_a_hash_table_as_redis(tmp_path):
    """In a dump.rdb, a key's record type is its encoding: a hash that shrank back is written
    as a hash table (type 4), a small one as a listpack (type 16), on both servers."""
    script = [[b"HSET", b"h", b"a", b"1", b"b", b"2", b"c", b"3"], [b"HDEL", b"h", b"a", b"b"],
              [b"HSET", b"g", b"a", b"1"], [b"SAVE"]]
    files = []
    for kind in ("redis", "ours"):
        directory = tmp_path / kind
        directory.mkdir()
        if kind == "redis":
            server = ReferenceRedis("--hash-max-listpack-entries", "2", directory=str(directory))
            port, stop = server.port, server.stop
        else:
            process = ServerProcess(str(directory), [["save", ""], ["appendonly", "no"],
                                                     ["dbfilename", "dump.rdb"],
                                                     ["hash-max-listpack-entries", "2"]])
            process.start()
            port, stop = process.port, process.stop
        try:
            _replies_without_flush(port, script + AOF_READS)
        finally:
            stop()
        files.append((directory / "dump.rdb").read_bytes())
    for data in files:
        assert b"\x04\x01h" in data and b"\x10\x01g" in data


@pytest.mark.parametrize("size", [b"3", b"1", b"-1", b"-5", b"-2"])
def test_list_dump_follows_list_max_listpack_size_as_redis(servers, size):
    """A list's quicklist nodes are cut by the live list-max-listpack-size (its old name too):
    the DUMP payloads are the same bytes."""
    ours, theirs = servers
    items = [b"item-%d" % i + b"x" * (i * 37 % 300) for i in range(200)]
    script = [[b"CONFIG", b"SET", b"list-max-ziplist-size", size], [b"RPUSH", b"l", *items],
              [b"DUMP", b"l"], [b"CONFIG", b"SET", b"list-max-listpack-size", b"-2"]]
    mine, expected = _replies(ours, script), _replies(theirs, script)
    assert mine == expected
    assert len(expected[2]) > 1000


def test_raising_a_threshold_leaves_hash_tables_as_they_are(servers):
    """CONFIG SET to a higher threshold converts nothing back, on both servers: every hash
    table here was marked when it became one (by growth, STORE or RESTORE)."""
    ours, theirs = servers
    script = [[b"CONFIG", b"SET", b"hash-max-listpack-entries", b"2"],
              [b"CONFIG", b"SET", b"set-max-intset-entries", b"2"],
              [b"HSET", b"h", b"a", b"1", b"b", b"2", b"c", b"3"],
              [b"SADD", b"s", b"1", b"2", b"3"], [b"SUNIONSTORE", b"u", b"s"],
              [b"RESTORE-DUMP", b"h"],
              [b"CONFIG", b"SET", b"hash-max-listpack-entries", b"512"],
              [b"CONFIG", b"SET", b"set-max-intset-entries", b"512"],
              *([b"OBJECT", b"ENCODING", key] for key in (b"h", b"s", b"u")),
              [b"HSET", b"h", b"d", b"4"], [b"OBJECT", b"ENCODING", b"h"]]
    mine, expected = _replies(ours, script), _replies(theirs, script)
    assert mine == expected
    assert expected[8:11] == [b"$9\r\nhashtable\r\n"] * 3


def test_lowering_a_threshold_converts_on_the_next_write_as_redis(servers):
    """CONFIG SET to a lower threshold leaves compact values compact until a write to them
    converts them, on both servers."""
    ours, theirs = servers
    script = [[b"HSET", b"h", b"a", b"1", b"b", b"2", b"c", b"3"],
              [b"HSET", b"v", b"a", b"x" * 20], [b"SADD", b"s", b"1", b"2", b"3"],
              [b"CONFIG", b"SET", b"hash-max-listpack-entries", b"2"],
              [b"CONFIG", b"SET", b"hash-max-listpack-value", b"5"],
              [b"CONFIG", b"SET", b"set-max-intset-entries", b"2"],
              *([b"OBJECT", b"ENCODING", key] for key in (b"h", b"v", b"s")),
              [b"DUMP-TYPE", b"h"],
              [b"HSET", b"h", b"a", b"9"], [b"HSET", b"v", b"b", b"y"], [b"SADD", b"s", b"1"],
              *([b"OBJECT", b"ENCODING", key] for key in (b"h", b"v", b"s")),
              [b"SADD", b"s", b"4"], [b"OBJECT", b"ENCODING", b"s"],
              [b"CONFIG", b"SET", b"hash-max-listpack-entries", b"512"],
              [b"CONFIG", b"SET", b"hash-max-listpack-value", b"64"],
              [b"CONFIG", b"SET", b"set-max-intset-entries", b"512"]]
    mine, expected = _replies(ours, script), _replies(theirs, script)
    for argv, got, want in zip(script, mine, expected, strict=True):
        assert got == want, argv
    assert expected[6:9] == [b"$8\r\nlistpack\r\n", b"$8\r\nlistpack\r\n", b"$6\r\nintset\r\n"]
