"""Replication with real Redis, both ways, over loopback: a redis-server replica of a
trioredis master, a trioredis replica of a redis-server master, trioredis of trioredis;
seeded random write streams of every type, then the datasets compared key by key; a link cut
mid-stream continues with a partial resync; WAIT counts acknowledgements; ``redis-cli --rdb``
takes a backup redis-server loads; ROLE and INFO replication have Redis's shape."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time

import pytest
import redis
from parity import RawClient, ReferenceRedis
from rdb_helpers import dataset_of_server
from servers import ServerProcess, free_port, wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")

WRITES = 12_000
# The master needs no disk, and a Redis master must not wait 5 s before a diskless sync.
QUICK_REDIS = ("--repl-diskless-sync-delay", "0")
QUIET = [["save", ""], ["appendonly", "no"]]


# --- writes of every type ----------------------------------------------------------------------


def random_writes(seed: int, count: int) -> list[list[str | bytes]]:
    """A seeded stream of writes of every type, in a few databases, with expiries, random
    commands propagated as their effect (SPOP, SRANDMEMBER-free), MULTI/EXEC and scripts."""
    rng = random.Random(seed)
    out: list[list] = []
    for _ in range(count):
        n = rng.randrange(40)
        key = lambda prefix, n=n: f"{prefix}{rng.randrange(n + 5)}"  # noqa: E731
        value = f"v{rng.randrange(1000)}"
        pick = rng.randrange(30)
        if pick == 0:
            out.append(["SELECT", str(rng.choice((0, 0, 0, 1, 5)))])
        elif pick == 1:
            out.append(["SET", key("s"), value])
        elif pick == 2:
            out.append(["INCRBY", key("n"), str(rng.randrange(-5, 50))])
        elif pick == 3:
            out.append(["APPEND", key("s"), value])
        elif pick == 4:
            out.append(["SET", key("t"), value, "EX", str(rng.randrange(100, 1000))])
        elif pick == 5:
            out.append(["RPUSH", key("l"), value, value + "x"])
        elif pick == 6:
            out.append(["LPOP", key("l")])
        elif pick == 7:
            out.append(["HSET", key("h"), f"f{rng.randrange(20)}", value])
        elif pick == 8:
            out.append(["HINCRBY", key("h"), f"c{rng.randrange(3)}", "1"])
        elif pick == 9:
            out.append(["SADD", key("set"), *[f"m{rng.randrange(60)}" for _ in range(3)]])
        elif pick == 10:
            out.append(["SPOP", key("set")])
        elif pick == 11:
            out.append(["ZADD", key("z"), str(rng.randrange(100)), f"m{rng.randrange(50)}"])
        elif pick == 12:
            out.append(["ZINCRBY", key("z"), "1.5", f"m{rng.randrange(50)}"])
        elif pick == 13:
            out.append(["ZPOPMIN", key("z")])
        elif pick == 14:
            out.append(["DEL", key(rng.choice("slhz"))])
        elif pick == 15:
            out.append(["EXPIRE", key(rng.choice(("s", "l", "h", "set", "z"))),
                        str(rng.randrange(100, 5000))])
        elif pick == 16:
            out.append(["PERSIST", key("t")])
        elif pick == 17:
            out.append(["LMOVE", key("l"), key("l"), "LEFT", "RIGHT"])
        elif pick == 18:
            out.append(["SINTERSTORE", key("set"), key("set"), key("set")])
        elif pick == 19:
            out.append(["MULTI"])
            out.append(["INCR", key("n")])
            out.append(["RPUSH", key("l"), value])
            out.append(["EXEC"])
        elif pick == 20:
            out.append(["EVAL", "redis.call('SET', KEYS[1], ARGV[1]); "
                        "return redis.call('INCR', KEYS[2])", "2", key("s"), key("n"), value])
        elif pick == 21:
            out.append(["SETRANGE", key("s"), str(rng.randrange(10)), value])
        elif pick == 22:
            out.append(["HDEL", key("h"), f"f{rng.randrange(20)}"])
        elif pick == 23:
            out.append(["SREM", key("set"), f"m{rng.randrange(60)}"])
        elif pick == 24:
            out.append(["ZREMRANGEBYSCORE", key("z"), "0", str(rng.randrange(10))])
        elif pick == 25:
            out.append(["RENAME", key("s"), key("s")])
        elif pick == 26:
            out.append(["INCRBYFLOAT", key("f"), "0.25"])
        elif pick == 27:
            out.append(["LTRIM", key("l"), "0", str(rng.randrange(10))])
        elif pick == 28:
            out.append(["PEXPIREAT", key("s"), str(int(time.time() * 1000) + 10**7)])
        else:
            out.append(["XADD", key("x"), "*", "field", value])
    return out


def apply_writes(port: int, writes: list[list]) -> None:
    """Send ``writes`` on one connection (pipelined in batches), ignoring error replies
    (WRONGTYPE and the like are part of a random stream)."""
    client = redis.Redis(port=port, protocol=2, socket_timeout=60)
    connection = client.connection_pool.get_connection()
    try:
        for start in range(0, len(writes), 500):
            batch = writes[start:start + 500]
            connection.send_packed_command(connection.pack_commands(batch))
            for _ in batch:
                try:
                    connection.read_response()
                except redis.ResponseError:
                    pass
    finally:
        client.connection_pool.release(connection)
        client.close()


def dataset(port: int) -> dict:
    """Every key with its type, value and expiry (streams by their entries)."""
    found = dataset_of_server(port)
    for (db, key), (kind, _value, expire) in list(found.items()):
        if kind == "stream":
            client = redis.Redis(port=port, db=db, protocol=2)
            found[(db, key)] = (kind, client.xrange(key), expire)
            client.close()
    return found


def offset(client: redis.Redis, field: str) -> int:
    return int(client.info("replication").get(field, -1))


def wait_caught_up(master: redis.Redis, replica: redis.Redis, timeout: float = 60) -> None:
    """Until the replica processed the master's whole stream."""
    wait_for(lambda: offset(replica, "slave_repl_offset")
             == offset(master, "master_repl_offset")
             and replica.info("replication")["master_link_status"] == "up",
             timeout, "the replica to catch up")


def assert_same_dataset(first: int, second: int) -> None:
    ours, theirs = dataset(first), dataset(second)
    assert ours.keys() == theirs.keys()
    different = [key for key in ours if ours[key] != theirs[key]]
    assert not different, (different[:5], [(ours[k], theirs[k]) for k in different[:3]])


@pytest.fixture
def master(tmp_path):
    directory = tmp_path / "master"
    directory.mkdir()
    with ServerProcess(str(directory), QUIET) as running:
        yield running


def _trioredis_replica(tmp_path, name: str, master_port: int) -> ServerProcess:
    directory = tmp_path / name
    directory.mkdir()
    return ServerProcess(str(directory), [*QUIET, ["replicaof", "127.0.0.1", str(master_port)]])


# --- a redis-server replica of a trioredis master --------------------------------------------


def test_redis_replica_of_trioredis_master_holds_the_same_dataset(master):
    apply_writes(master.port, random_writes(1, 3000))
    with ReferenceRedis("--replicaof", "127.0.0.1", str(master.port)) as replica:
        ours, theirs = master.client(), replica.client()
        wait_caught_up(ours, theirs)
        apply_writes(master.port, random_writes(2, WRITES))
        wait_caught_up(ours, theirs)
        assert_same_dataset(master.port, replica.port)
        info = ours.info("replication")
        assert info["connected_slaves"] == 1
        assert info["slave0"]["state"] == "online"
        assert info["slave0"]["offset"] == info["master_repl_offset"]
        assert ours.info("stats")["sync_full"] == 1


def test_redis_replica_continues_with_a_partial_resync_after_its_link_is_cut(master):
    with ReferenceRedis("--replicaof", "127.0.0.1", str(master.port)) as replica:
        ours, theirs = master.client(), replica.client()
        apply_writes(master.port, random_writes(3, 2000))
        wait_caught_up(ours, theirs)
        writer = random_writes(4, 4000)
        apply_writes(master.port, writer[:2000])
        # Cut the link mid-stream from the replica's side: it reconnects with PSYNC.
        assert theirs.execute_command("CLIENT", "KILL", "TYPE", "master") == 1
        apply_writes(master.port, writer[2000:])
        wait_caught_up(ours, theirs)
        stats = ours.info("stats")
        assert stats["sync_partial_ok"] == 1
        assert stats["sync_full"] == 1
        assert_same_dataset(master.port, replica.port)


def test_wait_returns_the_number_of_replicas_that_acknowledged(master, tmp_path):
    ours = master.client()
    assert ours.execute_command("WAIT", 1, 100) == 0  # none attached: the timeout runs out
    with ReferenceRedis("--replicaof", "127.0.0.1", str(master.port)) as replica, \
            _trioredis_replica(tmp_path, "replica", master.port) as second:
        wait_caught_up(ours, replica.client())
        wait_caught_up(ours, second.client())
        ours.set("k", "v")
        started = time.monotonic()
        assert ours.execute_command("WAIT", 2, 5000) == 2
        assert time.monotonic() - started < 4  # the GETACK answered, not the timeout
        ours.set("k", "w")
        assert ours.execute_command("WAIT", 3, 300) == 2  # only two exist
        pipe = ours.pipeline(transaction=True)
        pipe.set("k", "x")
        pipe.execute_command("WAIT", 2, 0)
        assert pipe.execute()[1] <= 2  # inside MULTI: answered at once


def test_min_replicas_to_write_refuses_writes_without_enough_good_replicas(master):
    ours = master.client()
    ours.config_set("min-replicas-to-write", 1)
    with pytest.raises(redis.ResponseError, match="Not enough good replicas to write."):
        ours.set("k", "v")
    with RawClient(master.port) as raw:
        assert raw.call("SET", "k", "v") == b"-NOREPLICAS Not enough good replicas to write.\r\n"
    with ReferenceRedis("--replicaof", "127.0.0.1", str(master.port)) as replica:
        wait_caught_up(ours, replica.client())
        wait_for(lambda: ours.info("replication").get("min_slaves_good_slaves") == 1, 10,
                 "a good replica")
        assert ours.set("k", "v")


# --- a trioredis replica of a redis-server master --------------------------------------------


def test_trioredis_replica_of_redis_master_holds_the_same_dataset(tmp_path):
    with ReferenceRedis(*QUICK_REDIS) as source:
        apply_writes(source.port, random_writes(5, 3000))
        with _trioredis_replica(tmp_path, "replica", source.port) as replica:
            theirs, ours = source.client(), replica.client()
            wait_caught_up(theirs, ours)
            apply_writes(source.port, random_writes(6, WRITES))
            wait_caught_up(theirs, ours)
            assert_same_dataset(source.port, replica.port)
            with RawClient(replica.port) as raw:
                assert raw.call("SET", "k", "v") == (
                    b"-READONLY You can't write against a read only replica.\r\n")
            # Cut the link: the replica continues where it was.
            theirs.execute_command("CLIENT", "KILL", "TYPE", "replica")
            apply_writes(source.port, random_writes(7, 1000))
            wait_caught_up(theirs, ours)
            assert theirs.info("stats")["sync_partial_ok"] == 1
            assert_same_dataset(source.port, replica.port)


def test_trioredis_replica_of_trioredis_master_has_the_same_digest(master, tmp_path):
    apply_writes(master.port, random_writes(8, 2000))
    with _trioredis_replica(tmp_path, "replica", master.port) as replica:
        ours, theirs = master.client(), replica.client()
        wait_caught_up(ours, theirs)
        apply_writes(master.port, random_writes(9, WRITES))
        wait_caught_up(ours, theirs)
        assert ours.execute_command("DEBUG", "DIGEST") == theirs.execute_command("DEBUG", "DIGEST")
        assert_same_dataset(master.port, replica.port)
        with RawClient(replica.port) as raw:
            assert b"$4\r\nrole\r\n$7\r\nreplica\r\n" in raw.call("HELLO", "2")
        # Promotion: a new id, the old one valid up to the offset reached.
        old_id = ours.info("replication")["master_replid"]
        reached = offset(ours, "master_repl_offset")
        assert theirs.execute_command("REPLICAOF", "NO", "ONE") == b"OK"
        info = theirs.info("replication")
        assert info["role"] == "master"
        assert info["master_replid2"] == old_id
        assert info["second_repl_offset"] == reached + 1
        assert theirs.set("k", "now writable")


def test_a_replica_over_maxmemory_evicts_nothing_of_its_own(master, tmp_path):
    """replica-ignore-maxmemory yes (Redis's default): the master's dataset is the truth."""
    master.client().mset({f"big:{i}": "x" * 1000 for i in range(3000)})
    with _trioredis_replica(tmp_path, "small", master.port) as replica:
        ours, theirs = master.client(), replica.client()
        theirs.config_set("maxmemory-policy", "allkeys-lru")
        theirs.config_set("maxmemory", "1mb")
        wait_caught_up(ours, theirs)
        ours.set("after", "1")
        wait_caught_up(ours, theirs)
        assert theirs.dbsize() == ours.dbsize() == 3001
        assert theirs.info("stats")["evicted_keys"] == 0


# --- backups and shapes ------------------------------------------------------------------------


def test_redis_cli_rdb_takes_a_backup_that_redis_server_loads(master, tmp_path):
    apply_writes(master.port, random_writes(10, 3000))
    backup = tmp_path / "backup.rdb"
    done = subprocess.run(["redis-cli", "-p", str(master.port), "--rdb", str(backup)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Transfer finished with success" in done.stdout + done.stderr
    checked = subprocess.run(["redis-check-rdb", str(backup)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    directory = tmp_path / "restored"
    directory.mkdir()
    os.replace(backup, directory / "dump.rdb")
    with ReferenceRedis("--dbfilename", "dump.rdb", directory=str(directory)) as restored:
        assert_same_dataset(master.port, restored.port)
    # rdb-only: the master did not keep the backup's connection as a replica.
    assert master.client().info("replication")["connected_slaves"] == 0


def _shape(info: dict) -> list[str]:
    """INFO replication's field names, replica lines reduced to their own field names."""
    names = []
    for name, value in info.items():
        if isinstance(value, dict):
            names.append(f"{name[:5]}:{','.join(value)}")
        else:
            names.append(name)
    return list(dict.fromkeys(names))  # one line per kind (the masters' replica counts differ)


def test_role_and_info_replication_have_redis_shape(master, tmp_path):
    with ReferenceRedis(*QUICK_REDIS) as source, \
            ReferenceRedis("--replicaof", "127.0.0.1", str(master.port)) as redis_replica, \
            _trioredis_replica(tmp_path, "replica", source.port) as our_replica, \
            ReferenceRedis("--replicaof", "127.0.0.1", str(source.port)) as their_replica:
        ours, theirs = master.client(), source.client()
        wait_caught_up(ours, redis_replica.client())
        wait_caught_up(theirs, our_replica.client())
        wait_caught_up(theirs, their_replica.client())
        # As a master with one replica.
        assert _shape(ours.info("replication")) == _shape(
            redis_replica_master_info(theirs, their_replica.port))
        role = ours.execute_command("ROLE")
        assert role[0] == b"master" and role[1] == offset(ours, "master_repl_offset")
        assert role[2] == [[b"127.0.0.1", str(redis_replica.port).encode(),
                            str(role[1]).encode()]]
        # As a replica, connected.
        assert _shape(our_replica.client().info("replication")) == _shape(
            their_replica.client().info("replication"))
        with RawClient(our_replica.port) as raw_ours, RawClient(their_replica.port) as raw_theirs:
            ours_role, theirs_role = raw_ours.call("ROLE"), raw_theirs.call("ROLE")
        # Same master, same state: everything up to the offset is equal.
        assert ours_role.split(b"\r\n")[:9] == theirs_role.split(b"\r\n")[:9]


def redis_replica_master_info(client: redis.Redis, replica_port: int) -> dict:
    """The reference master's INFO replication once its replica is online."""
    wait_for(lambda: client.info("replication").get("slave0", {}).get("state") == "online",
             30, "the replica online")
    return client.info("replication")


def test_replication_commands_reply_as_redis(tmp_path):
    commands = [
        ("REPLCONF",), ("REPLCONF", "a"), ("REPLCONF", "listening-port", "x"),
        ("REPLCONF", "foo", "bar"), ("REPLCONF", "rdb-only", "2"),
        ("REPLCONF", "rdb-only", "x"), ("REPLCONF", "rdb-filter-only", "bad"),
        ("REPLCONF", "rdb-filter-only", "functions"), ("REPLCONF", "capa", "foo"),
        ("REPLCONF", "listening-port", "7000", "capa", "eof"),
        ("REPLICAOF", "a"), ("REPLICAOF", "a", "b"), ("REPLICAOF", "localhost", "99999"),
        ("REPLICAOF", "no", "one"), ("SLAVEOF", "NO", "ONE"), ("ROLE", "x"), ("ROLE",),
        ("WAIT", "a", "1"), ("WAIT", "1", "a"), ("WAIT", "1", "-1"), ("WAIT", "0", "0"),
        ("PSYNC", "a"), ("PSYNC", "a", "b"), ("SYNC", "x"),
        ("MULTI",), ("SYNC",), ("PSYNC", "?", "-1"), ("REPLICAOF", "no", "one"), ("EXEC",),
    ]
    directory = tmp_path / "ours"
    directory.mkdir()
    with ReferenceRedis() as reference, ServerProcess(str(directory), QUIET) as server:
        with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
            for command in commands:
                mine, redis_reply = ours.call(*command), theirs.call(*command)
                assert mine == redis_reply, (command, mine, redis_reply)


def test_waitaof_counts_replicas_whose_aof_fsynced_the_writes(master, tmp_path):
    directory = tmp_path / "durable"
    directory.mkdir()
    master.client().set("before", "the sync")
    # The disk-style transfer ($<len> then the RDB) instead of the diskless EOF-marked one.
    master.client().config_set("repl-diskless-sync", "no")
    options = [["save", ""], ["appendonly", "yes"], ["appendfsync", "always"],
               ["replicaof", "127.0.0.1", str(master.port)]]
    with ServerProcess(str(directory), options) as durable, \
            ReferenceRedis("--replicaof", "127.0.0.1", str(master.port)) as redis_replica:
        ours = master.client()
        wait_caught_up(ours, durable.client())
        wait_caught_up(ours, redis_replica.client())
        ours.set("k", "v")
        # Redis 7.0's replica acknowledges but reports no fsync (no FACK): one of two counts.
        assert ours.execute_command("WAITAOF", 0, 1, 5000) == [0, 1]
        assert ours.execute_command("WAITAOF", 0, 2, 300) == [0, 1]
        assert ours.execute_command("WAIT", 2, 5000) == 2
        with pytest.raises(redis.ResponseError, match="cannot be used with replica instances"):
            durable.client().execute_command("WAITAOF", 0, 1, 10)
        # The replica's AOF holds the synced dataset (rewritten after the sync) and the stream.
        durable.kill()
        restarted = ServerProcess(str(directory), [["save", ""], ["appendonly", "yes"]])
        with restarted:
            assert restarted.client().get("k") == b"v"
            assert restarted.client().get("before") == b"the sync"


def test_a_replica_whose_master_is_down_answers_as_redis(tmp_path):
    """Both replicas follow a port where nothing listens: the same replies, MASTERDOWN once
    replica-serve-stale-data is no, READONLY for writes, and ROLE's connect state."""
    dead = str(free_port())
    directory = tmp_path / "ours"
    directory.mkdir()
    commands = [("GET", "k"), ("SET", "k", "v"), ("PING",), ("ROLE",), ("INFO", "keyspace"),
                ("CONFIG", "SET", "replica-serve-stale-data", "no"), ("GET", "k"),
                ("SET", "k", "v"), ("PING",), ("ROLE",), ("DBSIZE",), ("ECHO", "x"),
                ("WAIT", "0", "0"),
                ("CONFIG", "SET", "replica-serve-stale-data", "yes"), ("GET", "k"),
                ("REPLICAOF", "127.0.0.1", dead)]
    with ReferenceRedis("--replicaof", "127.0.0.1", dead) as reference, \
            ServerProcess(str(directory), [*QUIET, ["replicaof", "127.0.0.1", dead]]) as server:
        with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
            for command in commands:
                mine, redis_reply = ours.call(*command), theirs.call(*command)
                if command == ("ROLE",):  # connect or connecting: the retry's timing
                    mine, redis_reply = mine.split(b"\r\n")[:7], redis_reply.split(b"\r\n")[:7]
                assert mine == redis_reply, (command, mine, redis_reply)


def test_old_style_sync_sends_the_rdb_then_the_stream_with_select(master):
    """SYNC over a raw socket, as a pre-PSYNC replica: ``$<len>`` and an RDB holding the
    dataset, then each write as a command, after a SELECT of its database."""
    from trioredis.rdb import read_rdb

    ours = master.client()
    ours.set("before", "1")
    with RawClient(master.port) as raw:
        raw.send(b"SYNC\r\n")
        while not raw.buffer.lstrip(b"\n").startswith(b"$") or b"\r\n" not in raw.buffer:
            assert raw._fill()
        raw.buffer = raw.buffer.lstrip(b"\n")
        header, _, raw.buffer = raw.buffer.partition(b"\r\n")
        size = int(header[1:])
        while len(raw.buffer) < size:
            assert raw._fill()
        rdb, raw.buffer = raw.buffer[:size], raw.buffer[size:]
        assert [(db, key, value) for db, key, value, _ in read_rdb(rdb)] == [
            (0, b"before", b"1")]
        redis.Redis(port=master.port, db=3, protocol=2).set("after", "2")
        expected = (b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
                    b"*3\r\n$3\r\nSET\r\n$5\r\nafter\r\n$1\r\n2\r\n")
        while len(raw.buffer) < len(expected):
            assert raw._fill()
        assert raw.buffer == expected


def test_a_partial_resync_goes_on_in_the_database_and_transaction_it_was_in(master, tmp_path):
    """The stream after +CONTINUE has no SELECT: the replica keeps the database the stream
    selected; a MULTI cut in the middle is received again whole."""
    with _trioredis_replica(tmp_path, "replica", master.port) as replica:
        ours, theirs = master.client(db=5), replica.client(db=5)
        ours.set("a", "1")
        wait_caught_up(ours, theirs)
        assert theirs.execute_command("CLIENT", "KILL", "TYPE", "master") == 1
        ours.set("b", "2")
        pipe = ours.pipeline(transaction=True)
        pipe.incr("n").incr("n")
        pipe.execute()
        wait_caught_up(ours, theirs)
        assert theirs.mget("a", "b", "n") == [b"1", b"2", b"2"]
        assert redis.Redis(port=replica.port, protocol=2).dbsize() == 0
        assert ours.info("stats")["sync_partial_ok"] == 1


def test_a_replica_passes_the_stream_on_to_its_own_replica(master, tmp_path):
    """trioredis master -> trioredis replica -> redis-server replica: the middle one
    forwards the master's stream as it came, so offsets match all the way down."""
    apply_writes(master.port, random_writes(11, 1000))
    with _trioredis_replica(tmp_path, "middle", master.port) as middle:
        ours, between = master.client(), middle.client()
        wait_caught_up(ours, between)
        with ReferenceRedis("--replicaof", "127.0.0.1", str(middle.port)) as last:
            apply_writes(master.port, random_writes(12, 3000))
            wait_caught_up(ours, between)
            wait_caught_up(ours, last.client())
            assert offset(between, "master_repl_offset") == offset(ours, "master_repl_offset")
            assert_same_dataset(master.port, last.port)


def test_replicas_that_sync_under_a_running_writer_end_with_the_masters_dataset(master, tmp_path):
    """Writes (INCR: not idempotent) run while two replicas make their full sync: the RDB
    holds exactly the dataset at the offset +FULLRESYNC names, and the stream right after
    the RDB is neither lost nor read as part of it."""
    import threading

    apply_writes(master.port, random_writes(13, 2000))
    stop = threading.Event()

    def writer() -> None:
        client = master.client()
        rng = random.Random(14)
        while not stop.is_set():
            pipe = client.pipeline(transaction=False)
            for _ in range(50):
                pipe.incr(f"counter{rng.randrange(20)}")
                pipe.rpush(f"log{rng.randrange(5)}", rng.randrange(1000))
            pipe.execute()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with ReferenceRedis("--replicaof", "127.0.0.1", str(master.port)) as redis_replica, \
                _trioredis_replica(tmp_path, "replica", master.port) as replica:
            ours = master.client()
            wait_for(lambda: redis_replica.client().info("replication")["master_link_status"]
                     == "up" and replica.client().info("replication")["master_link_status"]
                     == "up", 60, "both replicas to sync")
            time.sleep(0.5)
            stop.set()
            thread.join(30)
            wait_caught_up(ours, redis_replica.client())
            wait_caught_up(ours, replica.client())
            assert_same_dataset(master.port, redis_replica.port)
            assert_same_dataset(master.port, replica.port)
    finally:
        stop.set()
        thread.join(30)


def test_replicas_authenticate_with_masterauth_and_masteruser(tmp_path):
    """A master with a password (and an ACL user): redis-server and trioredis replicas get in
    with masterauth (masteruser), and without it they stay out."""
    directory = tmp_path / "master"
    directory.mkdir()
    with ServerProcess(str(directory), QUIET) as master:
        master.client().config_set("requirepass", "s3cret")
        ours = master.client(password="s3cret")
        ours.execute_command("ACL", "SETUSER", "repl", "on", ">pw", "+@all", "~*")
        ours.set("k", "v")
        with ReferenceRedis("--replicaof", "127.0.0.1", str(master.port),
                            "--masterauth", "s3cret") as redis_replica, \
                ServerProcess(str(tmp_path), [*QUIET, ["replicaof", "127.0.0.1", str(master.port)],
                                              ["masteruser", "repl"], ["masterauth", "pw"]]
                              ) as replica, \
                ReferenceRedis("--replicaof", "127.0.0.1", str(master.port)) as outsider:
            wait_caught_up(ours, redis_replica.client())
            wait_caught_up(ours, replica.client())
            assert redis_replica.client().get("k") == replica.client().get("k") == b"v"
            time.sleep(1)
            assert outsider.client().info("replication")["master_link_status"] == "down"
            assert ours.info("replication")["connected_slaves"] == 2
