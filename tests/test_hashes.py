"""Hash commands through redis-py, with Redis 7.0's replies and errors; HINCRBYFLOAT's long
double arithmetic and its propagation as HSET."""

import pytest
import redis
from listhash_recorder import propagated

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def error_of(call, *args):
    with pytest.raises(redis.ResponseError) as info:
        call(*args)
    return str(info.value)


@pytest.fixture
def raw(server):
    """A client that leaves replies as sent (no float or OK conversion)."""
    client = server.client()
    client.response_callbacks.clear()
    yield client
    client.close()


@pytest.fixture
def h(r):
    r.hset("h", mapping={"a": "1", "b": "2", "c": "3"})
    return r


def test_hset_counts_only_new_fields(r):
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", mapping={"a": "10", "c": "3"}) == 1
    assert r.hgetall("h") == {b"a": b"10", b"b": b"2", b"c": b"3"}


def test_hset_and_hmset_refuse_a_field_without_value(r):
    assert error_of(r.execute_command, "HSET", "h", "a") == (
        "wrong number of arguments for 'hset' command")
    assert error_of(r.execute_command, "HSET", "h", "a", "1", "b") == (
        "wrong number of arguments for 'hset' command")
    assert error_of(r.execute_command, "HMSET", "h", "a", "1", "b") == (
        "wrong number of arguments for 'hmset' command")
    assert r.exists("h") == 0


def test_hmset_replies_ok(raw):
    assert raw.execute_command("HMSET", "h", "a", "1", "b", "2") == b"OK"
    assert raw.execute_command("HLEN", "h") == 2


def test_hsetnx_sets_only_a_missing_field(r):
    assert r.hsetnx("h", "a", "1") == 1
    assert r.hsetnx("h", "a", "2") == 0
    assert r.hget("h", "a") == b"1"


def test_hget_hmget_on_missing_fields_and_keys(h):
    assert h.hget("h", "a") == b"1"
    assert h.hget("h", "zz") is None
    assert h.hget("nokey", "a") is None
    assert h.hmget("h", ["a", "zz", "c"]) == [b"1", None, b"3"]
    assert h.hmget("nokey", ["a", "b"]) == [None, None]


def test_hdel_counts_removed_fields_and_deletes_an_empty_hash(h):
    assert h.hdel("h", "a", "zz") == 1
    assert h.hdel("nokey", "a") == 0
    assert h.hdel("h", "b", "c", "b") == 2
    assert h.exists("h") == 0


def test_hlen_hstrlen_hexists(h):
    h.hset("h", "long", "hello")
    assert h.hlen("h") == 4
    assert h.hlen("nokey") == 0
    assert h.hstrlen("h", "long") == 5
    assert h.hstrlen("h", "zz") == 0
    assert h.hstrlen("nokey", "zz") == 0
    assert h.hexists("h", "a") is True
    assert h.hexists("h", "zz") is False
    assert h.hexists("nokey", "a") is False


def test_hkeys_hvals_hgetall_keep_insertion_order(h):
    h.hset("h", "a", "one")  # an update keeps the field's place
    assert h.hkeys("h") == [b"a", b"b", b"c"]
    assert h.hvals("h") == [b"one", b"2", b"3"]
    assert list(h.hgetall("h").items()) == [(b"a", b"one"), (b"b", b"2"), (b"c", b"3")]
    assert h.hkeys("nokey") == []
    assert h.hvals("nokey") == []
    assert h.hgetall("nokey") == {}


def test_hgetall_is_a_map_in_resp3(server):
    client = server.client(protocol=3)
    client.hset("h", mapping={"a": "1", "b": "2"})
    assert client.hgetall("h") == {b"a": b"1", b"b": b"2"}
    assert client.execute_command("HGETALL", "h") == {b"a": b"1", b"b": b"2"}
    client.close()


def test_wrong_type_is_refused_by_every_hash_command(r):
    r.rpush("l", "x")
    calls = [
        (r.hset, "l", "f", "v"), (r.hsetnx, "l", "f", "v"), (r.hget, "l", "f"),
        (r.hmget, "l", ["f"]), (r.hdel, "l", "f"), (r.hlen, "l"), (r.hstrlen, "l", "f"),
        (r.hexists, "l", "f"), (r.hkeys, "l"), (r.hvals, "l"), (r.hgetall, "l"),
        (r.hincrby, "l", "f", 1), (r.hincrbyfloat, "l", "f", 1), (r.hrandfield, "l"),
        (r.hscan, "l", 0), (r.execute_command, "HMSET", "l", "f", "v"),
    ]
    for call, *args in calls:
        assert error_of(call, *args) == WRONGTYPE, call


# --- HINCRBY / HINCRBYFLOAT ----------------------------------------------------------------


def test_hincrby(r):
    assert r.hincrby("h", "n", 5) == 5
    assert r.hincrby("h", "n", -7) == -2
    assert r.hget("h", "n") == b"-2"


def test_hincrby_errors(r):
    r.hset("h", mapping={"s": "abc", "f": "5.0", "big": "9223372036854775807", "lead": "05"})
    assert error_of(r.hincrby, "h", "s", 1) == "hash value is not an integer"
    assert error_of(r.hincrby, "h", "f", 1) == "hash value is not an integer"
    assert error_of(r.hincrby, "h", "lead", 1) == "hash value is not an integer"
    assert error_of(r.hincrby, "h", "big", 1) == "increment or decrement would overflow"
    assert error_of(r.hincrby, "h", "n", "x") == "value is not an integer or out of range"
    assert r.hget("h", "big") == b"9223372036854775807"


@pytest.mark.parametrize(("start", "increment", "expected"), [
    (None, "1.5", b"1.5"),
    ("0.1", "0.2", b"0.3"),  # long double: not 0.30000000000000004
    ("1000", "0.1", b"1000.09999999999999998"),
    ("10", "-10", b"0"),
    ("1.0e3", "1", b"1001"),
    (None, "1e20", b"100000000000000000000"),
    ("5", "1e-20", b"5"),
    (None, "0x10", b"16"),
])
def test_hincrbyfloat_prints_what_redis_prints(raw, start, increment, expected):
    if start is not None:
        raw.execute_command("HSET", "h", "f", start)
    assert raw.execute_command("HINCRBYFLOAT", "h", "f", increment) == expected
    assert raw.execute_command("HGET", "h", "f") == expected


def test_hincrbyfloat_errors(r):
    r.hset("h", mapping={"s": "abc", "sp": " 1", "inf": "inf"})
    assert error_of(r.hincrbyfloat, "h", "s", 1) == "hash value is not a float"
    assert error_of(r.hincrbyfloat, "h", "sp", 1) == "hash value is not a float"
    assert error_of(r.hincrbyfloat, "h", "inf", 1) == "increment would produce NaN or Infinity"
    assert error_of(r.hincrbyfloat, "h", "f", "x") == "value is not a valid float"
    assert error_of(r.hincrbyfloat, "h", "f", "nan") == "value is not a valid float"
    assert error_of(r.hincrbyfloat, "h", "f", "inf") == "value is NaN or Infinity"
    assert error_of(r.hincrbyfloat, "nokey", "f", "inf") == "value is NaN or Infinity"
    assert r.exists("nokey") == 0


# --- HRANDFIELD ----------------------------------------------------------------------------


def test_hrandfield_without_count_returns_one_field(h):
    assert h.hrandfield("h") in (b"a", b"b", b"c")
    assert h.hrandfield("nokey") is None


def test_hrandfield_positive_count_returns_distinct_fields(h):
    fields = h.hrandfield("h", 2)
    assert len(fields) == 2 and len(set(fields)) == 2 and set(fields) <= {b"a", b"b", b"c"}
    assert h.hrandfield("h", 10) == [b"a", b"b", b"c"]  # the whole hash, in order
    assert h.hrandfield("h", 0) == []
    assert h.hrandfield("nokey", 5) == []


def test_hrandfield_negative_count_may_repeat(h):
    fields = h.hrandfield("h", -20)
    assert len(fields) == 20 and set(fields) <= {b"a", b"b", b"c"}


def test_hrandfield_withvalues_pairs_fields_with_their_values(h, server):
    flat = h.hrandfield("h", -6, withvalues=True)
    assert len(flat) == 12
    pairs = list(zip(flat[::2], flat[1::2], strict=True))
    assert all(h.hget("h", field) == value for field, value in pairs)
    client = server.client(protocol=3)
    nested = client.execute_command("HRANDFIELD", "h", "2", "WITHVALUES")
    assert len(nested) == 2 and all(len(pair) == 2 for pair in nested)
    client.close()


def test_hrandfield_errors(h):
    assert error_of(h.execute_command, "HRANDFIELD", "h", "x") == (
        "value is not an integer or out of range")
    assert error_of(h.execute_command, "HRANDFIELD", "h", "1", "foo") == "syntax error"
    assert error_of(h.execute_command, "HRANDFIELD", "h", "-9223372036854775808") == (
        "value is out of range, value must between -9223372036854775807 and "
        "9223372036854775807")
    assert error_of(h.execute_command, "HRANDFIELD", "h", "-9223372036854775807",
                    "WITHVALUES") == "value is out of range"


# --- HSCAN ---------------------------------------------------------------------------------


def test_hscan_small_hash_comes_whole_with_cursor_zero(h):
    assert h.hscan("h", 0) == (0, {b"a": b"1", b"b": b"2", b"c": b"3"})
    assert h.hscan("h", 0, match="[ab]") == (0, {b"a": b"1", b"b": b"2"})
    assert h.hscan("h", 0, count=1) == (0, {b"a": b"1", b"b": b"2", b"c": b"3"})
    assert h.hscan("nokey", 0) == (0, {})


def test_hscan_large_hash_walks_every_field_with_count(r):
    r.hset("big", mapping={f"f{i}": i for i in range(1000)})  # past 512: hashtable
    seen = {}
    cursor, calls = 0, 0
    while True:
        cursor, batch = r.hscan("big", cursor, count=50)
        seen.update(batch)
        calls += 1
        if cursor == 0:
            break
    assert calls > 1
    assert seen == {b"f%d" % i: b"%d" % i for i in range(1000)}
    assert r.hscan("big", 0, match="f49?", count=1000)[1] == {
        b"f%d" % i: b"%d" % i for i in range(490, 500)}


def test_hscan_errors(h):
    assert error_of(h.execute_command, "HSCAN", "h", "x") == "invalid cursor"
    assert error_of(h.execute_command, "HSCAN", "h", "0", "COUNT", "0") == "syntax error"
    assert error_of(h.execute_command, "HSCAN", "h", "0", "FOO", "1") == "syntax error"
    assert error_of(h.execute_command, "HSCAN", "h", "0", "MATCH") == "syntax error"
    assert h.execute_command("HSCAN", "nokey", "0", "FOO") == (0, {})


# --- propagation ---------------------------------------------------------------------------


def test_hincrbyfloat_is_propagated_as_hset_of_the_result(recorded):
    client = recorded.client()
    client.hset("h", "f", "0.1")
    client.hincrbyfloat("h", "f", "0.2")
    client.hincrby("h", "n", 3)
    client.close()
    assert propagated() == [
        [b"HSET", b"h", b"f", b"0.1"],
        [b"HSET", b"h", b"f", b"0.3"],
        [b"HINCRBY", b"h", b"n", b"3"],
    ]


def test_hash_commands_publish_redis_keyspace_events(r):
    from test_lists import keyevents

    def actions(r):
        r.hset("h", "f", "1")
        r.hincrbyfloat("h", "f", 1)
        r.hdel("h", "f", "g")
        r.hsetnx("h", "a", "1")
        r.hsetnx("h", "a", "1")  # nothing set: no event
        r.hincrby("h", "a", 1)
        r.hdel("h", "zz")  # nothing deleted: no event

    assert keyevents(r, actions) == [
        ("hset", "h"), ("hincrbyfloat", "h"), ("hdel", "h"), ("del", "h"), ("hset", "h"),
        ("hincrby", "h"),
    ]
