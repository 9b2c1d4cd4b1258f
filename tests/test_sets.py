"""Set commands through redis-py, with Redis 7.0's replies for the edge cases: wrong types,
missing keys, counts (negative SRANDMEMBER, SPOP with a count), a set deleted once empty, the
STORE variants, RESP3 set replies, and SPOP propagated as the SREM of what it popped."""

from __future__ import annotations

import socket

import listhash_recorder
import pytest
import redis
from listhash_recorder import propagated
from servers import ServerThread, wait_rewrite_done

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def error_of(call, *args):
    with pytest.raises(redis.ResponseError) as info:
        call(*args)
    return str(info.value)


def cmd(r, *args):
    """A reply as parsed, without redis-py's per-command callbacks (which make sets)."""
    connection = r.connection_pool.get_connection()
    try:
        connection.send_command(*args)
        return connection.read_response()
    finally:
        r.connection_pool.release(connection)


def raw(server, *argv: str, resp3: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        data = b""
        if resp3:
            sock.sendall(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n")
            while not data.endswith(b"*0\r\n"):  # HELLO's reply ends with modules: []
                data += sock.recv(65536)
        parts = [a.encode() for a in argv]
        sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in parts))
        return sock.recv(65536)


@pytest.fixture
def abc(r):
    r.sadd("s", "a", "b", "c")
    return r


# --- SADD SREM SCARD SISMEMBER SMISMEMBER SMEMBERS ----------------------------------------


def test_sadd_counts_only_new_members(r):
    assert r.sadd("s", "a", "b", "a") == 2
    assert r.sadd("s", "b", "c") == 1
    assert r.smembers("s") == {b"a", b"b", b"c"}
    assert r.scard("s") == 3


def test_srem_counts_removed_and_deletes_the_empty_set(abc):
    assert abc.srem("s", "a", "x", "a") == 1
    assert abc.srem("s", "b", "c") == 2
    assert abc.exists("s") == 0
    assert abc.srem("s", "a") == 0


def test_membership_queries(abc):
    assert abc.sismember("s", "a") == 1 and abc.sismember("s", "x") == 0
    assert abc.smismember("s", ["a", "x", "c"]) == [1, 0, 1]
    assert abc.smismember("nokey", ["a"]) == [0]
    assert abc.sismember("nokey", "a") == 0
    assert abc.scard("nokey") == 0
    assert abc.smembers("nokey") == set()


def test_a_small_set_of_integers_replies_in_numeric_order_like_a_redis_intset(r):
    r.sadd("ints", 10, 3, -7, 1, 2)
    assert cmd(r, "SMEMBERS", "ints") == [b"-7", b"1", b"2", b"3", b"10"]
    assert cmd(r, "SUNION", "ints", "nokey") == [b"-7", b"1", b"2", b"3", b"10"]
    assert cmd(r, "SSCAN", "ints", "0") == [b"0", [b"-7", b"1", b"2", b"3", b"10"]]
    r.sadd("ints", "01")  # not an integer as Redis reads one: a hash table, any order
    assert sorted(cmd(r, "SMEMBERS", "ints")) == [b"-7", b"01", b"1", b"10", b"2", b"3"]


def test_smembers_is_a_resp3_set(server, abc):
    reply = raw(server, "SMEMBERS", "s", resp3=True)
    assert reply.startswith(b"~3\r\n")
    assert raw(server, "SMEMBERS", "nokey", resp3=True) == b"~0\r\n"
    assert raw(server, "SMEMBERS", "nokey") == b"*0\r\n"


def test_every_command_refuses_a_wrong_type(r):
    r.set("str", "x")
    for call, args in [
        (r.sadd, ("str", "a")), (r.srem, ("str", "a")), (r.scard, ("str",)),
        (r.sismember, ("str", "a")), (r.smismember, ("str", ["a"])), (r.smembers, ("str",)),
        (r.spop, ("str",)), (r.srandmember, ("str",)), (r.sinter, (["str"],)),
        (r.sunion, (["str"],)), (r.sdiff, (["str"],)), (r.sinterstore, ("d", ["str"])),
        (r.sunionstore, ("d", ["str"])), (r.sdiffstore, ("d", ["str"])),
        (r.sintercard, (1, ["str"])), (r.sscan, ("str",)),
    ]:
        assert error_of(call, *args) == WRONGTYPE, call


# --- SMOVE ---------------------------------------------------------------------------------


def test_smove_moves_and_deletes_an_emptied_source(abc):
    assert abc.smove("s", "t", "a") == 1
    assert abc.smove("s", "t", "x") == 0
    assert abc.smove("nokey", "t", "a") == 0
    assert abc.smembers("t") == {b"a"}
    abc.sadd("t", "b")
    assert abc.smove("s", "t", "b") == 1  # already in the destination: still 1
    assert abc.smove("s", "t", "c") == 1
    assert abc.exists("s") == 0
    assert abc.smembers("t") == {b"a", b"b", b"c"}


def test_smove_to_itself_and_wrong_types(abc):
    assert abc.smove("s", "s", "a") == 1
    assert abc.smove("s", "s", "x") == 0
    abc.set("str", "x")
    assert error_of(abc.smove, "s", "str", "a") == WRONGTYPE
    assert error_of(abc.smove, "str", "s", "a") == WRONGTYPE
    assert abc.smove("nokey", "str", "a") == 0  # a missing source answers before type checks


# --- SPOP SRANDMEMBER ----------------------------------------------------------------------


def test_spop_without_count(abc):
    popped = {abc.spop("s") for _ in range(3)}
    assert popped == {b"a", b"b", b"c"}
    assert abc.exists("s") == 0
    assert abc.spop("s") is None


def test_spop_with_count(abc, server):
    assert len(set(abc.spop("s", 2))) == 2
    assert abc.scard("s") == 1
    assert abc.spop("s", 0) == []
    assert len(abc.spop("s", 10)) == 1
    assert abc.exists("s") == 0
    assert raw(server, "SPOP", "nokey", "3", resp3=True) == b"~0\r\n"
    assert error_of(cmd, abc, "SPOP", "s", "-1") == "value is out of range, must be positive"
    assert error_of(cmd, abc, "SPOP", "s", "1", "2") == "syntax error"


def test_spop_drains_a_large_set_once_each_and_srandmember_sees_new_members(r):
    r.sadd("big", *range(3000))
    pipe = r.pipeline(transaction=False)
    for _ in range(2990):
        pipe.spop("big")
    popped = pipe.execute()
    assert len(set(popped)) == 2990
    left = r.smembers("big")
    assert len(left) == 10 and not left & set(popped)
    r.sadd("many", *range(2000))
    sample = r.srandmember("many", 300)
    assert len(set(sample)) == 300 and {int(m) for m in sample} <= set(range(2000))
    assert len(r.srandmember("many", -3000)) == 3000
    popped = r.spop("many", 100)
    assert len(set(popped)) == 100 and r.scard("many") == 1900
    r.sadd("many", *popped)
    r.srandmember("many")
    r.srem("many", 0)
    r.sadd("many", "new")  # same size, one member swapped
    pipe = r.pipeline(transaction=False)
    for _ in range(20000):
        pipe.srandmember("many")
    assert b"new" in set(pipe.execute())


def test_srandmember_counts(abc, server):
    assert abc.srandmember("s") in (b"a", b"b", b"c")
    assert sorted(abc.srandmember("s", 2)) != [] and len(set(abc.srandmember("s", 2))) == 2
    assert sorted(abc.srandmember("s", 10)) == [b"a", b"b", b"c"]
    repeated = abc.srandmember("s", -10)
    assert len(repeated) == 10 and set(repeated) <= {b"a", b"b", b"c"}
    assert abc.srandmember("s", 0) == []
    assert abc.srandmember("nokey") is None and abc.srandmember("nokey", 5) == []
    assert raw(server, "SRANDMEMBER", "s", "1", resp3=True)[:1] == b"*"  # an array, not a set
    assert error_of(cmd, abc, "SRANDMEMBER", "s", "x") == "value is not an integer or out of range"
    assert error_of(cmd, abc, "SRANDMEMBER", "s", "-9223372036854775808") == (
        "value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    assert abc.scard("s") == 3


# --- SINTER SUNION SDIFF and their STORE and CARD variants ---------------------------------


@pytest.fixture
def three(r):
    r.sadd("s1", "a", "b", "c", "d")
    r.sadd("s2", "c", "d", "e")
    r.sadd("s3", "a", "c", "e")
    return r


def test_sinter_sunion_sdiff(three):
    assert three.sinter(["s1", "s2"]) == {b"c", b"d"}
    assert three.sinter(["s1", "s2", "s3"]) == {b"c"}
    assert three.sinter(["s1", "nokey"]) == set()
    assert three.sunion(["s1", "s2", "nokey"]) == {b"a", b"b", b"c", b"d", b"e"}
    assert three.sdiff(["s1", "s2", "s3"]) == {b"b"}
    assert three.sdiff(["nokey", "s1"]) == set()
    assert three.sdiff(["s1"]) == {b"a", b"b", b"c", b"d"}


def test_a_missing_key_does_not_hide_a_wrong_type_later(three):
    three.set("str", "x")
    assert error_of(three.sinter, ["nokey", "str"]) == WRONGTYPE
    assert error_of(three.sdiff, ["nokey", "str"]) == WRONGTYPE


def test_store_variants_replace_or_delete_the_destination(three):
    three.set("dst", "a string")
    three.expire("dst", 100)
    assert three.sinterstore("dst", ["s1", "s2"]) == 2
    assert three.smembers("dst") == {b"c", b"d"} and three.ttl("dst") == -1
    assert three.sunionstore("dst", ["s2", "s3"]) == 4
    assert three.sdiffstore("dst", ["s1", "s2"]) == 2
    assert three.smembers("dst") == {b"a", b"b"}
    assert three.sinterstore("dst", ["s1", "nokey"]) == 0
    assert three.exists("dst") == 0
    assert three.sdiffstore("dst", ["s1", "s1"]) == 0
    # A source that is also the destination is read before it is replaced.
    assert three.sunionstore("s1", ["s1", "s2"]) == 5


def test_sintercard_with_limit_and_its_errors(three):
    assert three.sintercard(2, ["s1", "s2"]) == 2
    assert three.sintercard(2, ["s1", "s2"], limit=1) == 1
    assert three.sintercard(2, ["s1", "s2"], limit=0) == 2
    assert three.sintercard(2, ["s1", "nokey"]) == 0
    assert error_of(cmd, three, "SINTERCARD", "0", "s1") == "numkeys should be greater than 0"
    assert error_of(cmd, three, "SINTERCARD", "x", "s1") == "numkeys should be greater than 0"
    assert error_of(cmd, three, "SINTERCARD", "3", "s1") == (
        "Number of keys can't be greater than number of args")
    assert error_of(cmd, three, "SINTERCARD", "1", "s1", "LIMIT", "-1") == "LIMIT can't be negative"
    assert error_of(cmd, three, "SINTERCARD", "1", "s1", "LIMIT", "x") == "LIMIT can't be negative"
    assert error_of(cmd, three, "SINTERCARD", "1", "s1", "COUNT", "1") == "syntax error"


# --- SSCAN ---------------------------------------------------------------------------------


def test_sscan_returns_a_small_intset_whole_and_walks_a_large_set(r):
    r.sadd("ints", 3, 1, 2)
    cursor, members = r.sscan("ints", 0, count=1)
    assert cursor == 0 and sorted(members) == [b"1", b"2", b"3"]
    r.sadd("big", *[f"m{i}" for i in range(500)])
    assert set(r.sscan_iter("big", count=7)) == {f"m{i}".encode() for i in range(500)}
    assert set(r.sscan_iter("big", match="m1?")) == {f"m1{i}".encode() for i in range(10)}
    assert r.sscan("nokey", 0) == (0, [])
    assert error_of(cmd, r, "SSCAN", "big", "0", "COUNT", "0") == "syntax error"
    assert error_of(cmd, r, "SSCAN", "big", "abc") == "invalid cursor"


# --- propagation ---------------------------------------------------------------------------


def test_spop_is_propagated_as_the_srem_of_what_it_popped(recorded):
    client = recorded.client()
    client.sadd("s", *"abcdef")
    listhash_recorder.PROPAGATED.clear()
    one = client.spop("s")
    two = client.spop("s", 2)
    rest = client.spop("s", 10)
    client.spop("s")  # nothing left: nothing propagated
    assert propagated() == [[b"SREM", b"s", one], [b"SREM", b"s", *two], [b"DEL", b"s"]]
    assert sorted([one, *two, *rest]) == [b"a", b"b", b"c", b"d", b"e", b"f"]


def test_writes_that_change_nothing_are_not_propagated(recorded):
    client = recorded.client()
    client.sadd("s", "a")
    listhash_recorder.PROPAGATED.clear()
    client.sadd("s", "a")
    client.srem("s", "x")
    client.smove("s", "t", "x")
    client.sinterstore("d", ["s", "nokey"])  # empty result, no destination to delete
    assert propagated() == []
    client.smove("s", "t", "a")
    assert propagated() == [[b"SMOVE", b"s", b"t", b"a"]]


# --- rewrite and restart -------------------------------------------------------------------


def test_rewrite_and_restart_rebuild_the_same_sets(tmp_path):

    import hiredis

    options = [["appendonly", "yes"], ["save", ""], ["dir", str(tmp_path)]]
    members = 100_000
    with ServerThread(options) as server:
        server.wait_ready()
        r = server.client()
        r.sadd("big", *[f"m{i}" for i in range(members)])
        r.sadd("ints", *range(100))
        before = r.execute_command("DEBUG", "DIGEST")
        r.bgrewriteaof()
        wait_rewrite_done(r, timeout=60)
    reader = hiredis.Reader()
    reader.feed((tmp_path / "appendonly.aof").read_bytes())
    commands = []
    while (argv := reader.gets()) is not False:
        commands.append(argv)
    big = [argv for argv in commands if argv[0].upper() == b"SADD" and argv[1] == b"big"]
    assert len(big) == -(-members // 64)  # ceil(n / 64): at most 64 members per SADD
    with ServerThread(options) as server:
        server.wait_ready()
        r = server.client()
        assert r.execute_command("DEBUG", "DIGEST") == before
        assert r.scard("big") == members


def test_a_store_command_invalidates_watch_on_its_destination(r, server):
    r.sadd("src", "a")
    other = server.client()
    pipe = r.pipeline(transaction=True)
    pipe.watch("dst")
    other.sunionstore("dst", ["src"])
    pipe.multi()
    pipe.scard("src")
    with pytest.raises(redis.WatchError):
        pipe.execute()
    other.close()
