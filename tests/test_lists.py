"""List commands through redis-py, with Redis 7.0's replies for the edge cases: negative and
out-of-range indexes, counts, wrong types, and a list deleted once empty."""

import socket

import pytest
import redis

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def error_of(call, *args):
    with pytest.raises(redis.ResponseError) as info:
        call(*args)
    return str(info.value)


def raw_reply(server, *argv: bytes) -> bytes:
    """The exact RESP2 bytes of one reply (null bulk and null array look alike in redis-py)."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in argv))
        return sock.recv(65536)


@pytest.fixture
def abc(r):
    r.rpush("l", "a", "b", "c")
    return r


# --- pushes and pops -----------------------------------------------------------------------


def test_lpush_prepends_each_argument_in_turn(r):
    assert r.lpush("l", "a", "b", "c") == 3
    assert r.lrange("l", 0, -1) == [b"c", b"b", b"a"]
    assert r.rpush("l", "x", "y") == 5
    assert r.lrange("l", 0, -1) == [b"c", b"b", b"a", b"x", b"y"]


def test_pushx_only_pushes_onto_an_existing_list(r):
    assert r.lpushx("l", "a") == 0
    assert r.rpushx("l", "a") == 0
    assert r.exists("l") == 0
    r.rpush("l", "a")
    assert r.lpushx("l", "z", "y") == 3
    assert r.rpushx("l", "b") == 4
    assert r.lrange("l", 0, -1) == [b"y", b"z", b"a", b"b"]


def test_pop_without_count_returns_one_element_or_null(abc, server):
    assert abc.lpop("l") == b"a"
    assert abc.rpop("l") == b"c"
    assert abc.lpop("nokey") is None
    assert raw_reply(server, b"LPOP", b"nokey") == b"$-1\r\n"


def test_pop_with_count_returns_an_array(abc):
    assert abc.rpop("l", 2) == [b"c", b"b"]
    assert abc.lpop("l", 10) == [b"a"]
    assert abc.exists("l") == 0


def test_pop_with_count_on_missing_key_is_a_null_array(r, server):
    assert raw_reply(server, b"LPOP", b"nokey", b"2") == b"*-1\r\n"
    assert raw_reply(server, b"RPOP", b"nokey", b"0") == b"*-1\r\n"


def test_pop_with_count_zero_is_an_empty_array(abc, server):
    assert raw_reply(server, b"LPOP", b"l", b"0") == b"*0\r\n"
    assert abc.llen("l") == 3


def test_pop_count_must_be_positive(abc):
    message = "value is out of range, must be positive"
    assert error_of(abc.lpop, "l", -1) == message
    assert error_of(abc.execute_command, "RPOP", "l", "x") == message
    assert error_of(abc.execute_command, "LPOP", "l", "1", "2") == (
        "wrong number of arguments for 'lpop' command")


def test_list_is_deleted_when_its_last_element_is_popped(r):
    r.rpush("l", "only")
    assert r.lpop("l") == b"only"
    assert r.exists("l") == 0


def test_wrong_type_is_refused_by_every_list_command(r):
    r.set("s", "x")
    calls = [
        (r.lpush, "s", "a"), (r.rpush, "s", "a"), (r.lpushx, "s", "a"), (r.rpushx, "s", "a"),
        (r.lpop, "s"), (r.rpop, "s"), (r.llen, "s"), (r.lrange, "s", 0, -1),
        (r.lindex, "s", 0), (r.lset, "s", 0, "a"), (r.linsert, "s", "BEFORE", "a", "b"),
        (r.lrem, "s", 0, "a"), (r.ltrim, "s", 0, 1), (r.lpos, "s", "a"),
        (r.lmove, "s", "d"), (r.rpoplpush, "s", "d"), (r.execute_command, "LMPOP", 1, "s", "LEFT"),
    ]
    for call, *args in calls:
        assert error_of(call, *args) == WRONGTYPE, call
    r.rpush("l", "a")
    assert error_of(r.lmove, "l", "s") == WRONGTYPE
    assert r.lrange("l", 0, -1) == [b"a"]  # nothing taken when the destination is refused


# --- reading -------------------------------------------------------------------------------


def test_llen(abc):
    assert abc.llen("l") == 3
    assert abc.llen("nokey") == 0


@pytest.mark.parametrize(("start", "end", "expected"), [
    (0, -1, [b"a", b"b", b"c"]),
    (-2, -1, [b"b", b"c"]),
    (-100, 100, [b"a", b"b", b"c"]),
    (1, 1, [b"b"]),
    (2, 1, []),
    (5, 10, []),
    (-1, -3, []),
    (0, -4, []),
])
def test_lrange_indexes(abc, start, end, expected):
    assert abc.lrange("l", start, end) == expected


def test_lrange_refuses_a_non_integer_index_even_on_a_missing_key(r):
    assert r.lrange("nokey", 0, -1) == []
    assert error_of(r.lrange, "nokey", "a", 1) == "value is not an integer or out of range"


def test_lrange_on_a_long_list_from_either_end(r):
    r.rpush("l", *range(1000))
    assert r.lrange("l", 990, 995) == [b"%d" % i for i in range(990, 996)]
    assert r.lrange("l", 3, 5) == [b"3", b"4", b"5"]
    assert r.lrange("l", -3, -1) == [b"997", b"998", b"999"]


def test_lindex(abc):
    assert abc.lindex("l", 0) == b"a"
    assert abc.lindex("l", -1) == b"c"
    assert abc.lindex("l", 3) is None
    assert abc.lindex("l", -4) is None
    assert abc.lindex("nokey", 0) is None
    assert error_of(abc.lindex, "l", "x") == "value is not an integer or out of range"


def test_lpos_finds_first_match_and_honours_rank_count_maxlen(r):
    r.rpush("l", "a", "b", "a", "c", "a")
    assert r.lpos("l", "a") == 0
    assert r.lpos("l", "a", rank=2) == 2
    assert r.lpos("l", "a", rank=-1) == 4
    assert r.lpos("l", "a", count=0) == [0, 2, 4]
    assert r.lpos("l", "a", count=2, rank=-1) == [4, 2]
    assert r.lpos("l", "a", count=0, maxlen=2) == [0]
    assert r.lpos("l", "a", rank=2, maxlen=2) is None
    assert r.lpos("l", "z") is None
    assert r.lpos("l", "z", count=0) == []
    assert r.lpos("nokey", "a") is None
    assert r.lpos("nokey", "a", count=1) == []


def test_lpos_errors(abc):
    assert error_of(abc.lpos, "l", "a", 0) == (
        "RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
        "or use negative to start from the end of the list")
    assert error_of(abc.lpos, "l", "a", None, -1) == "COUNT can't be negative"
    assert error_of(abc.lpos, "l", "a", None, None, -1) == "MAXLEN can't be negative"
    assert error_of(abc.execute_command, "LPOS", "l", "a", "FOO", "1") == "syntax error"
    assert error_of(abc.execute_command, "LPOS", "l", "a", "COUNT") == "syntax error"


# --- changing in place ---------------------------------------------------------------------


def test_lset(abc):
    assert abc.lset("l", 0, "A") is True
    assert abc.lset("l", -1, "C") is True
    assert abc.lrange("l", 0, -1) == [b"A", b"b", b"C"]
    assert error_of(abc.lset, "l", 3, "x") == "index out of range"
    assert error_of(abc.lset, "l", -4, "x") == "index out of range"
    assert error_of(abc.lset, "nokey", 0, "x") == "no such key"


def test_linsert(abc):
    assert abc.linsert("l", "BEFORE", "b", "x") == 4
    assert abc.linsert("l", "after", "c", "y") == 5
    assert abc.lrange("l", 0, -1) == [b"a", b"x", b"b", b"c", b"y"]
    assert abc.linsert("l", "BEFORE", "zz", "x") == -1
    assert abc.linsert("nokey", "BEFORE", "a", "x") == 0
    assert error_of(abc.execute_command, "LINSERT", "l", "MIDDLE", "a", "x") == "syntax error"


def test_lrem_by_count_sign(r):
    r.rpush("l", "a", "b", "a", "c", "a")
    assert r.lrem("l", 1, "a") == 1
    assert r.lrange("l", 0, -1) == [b"b", b"a", b"c", b"a"]
    assert r.lrem("l", -1, "a") == 1
    assert r.lrange("l", 0, -1) == [b"b", b"a", b"c"]
    assert r.lrem("l", 0, "zz") == 0
    assert r.lrem("l", 0, "a") == 1
    assert r.lrem("nokey", 0, "a") == 0
    assert r.lrem("l", 0, "b") + r.lrem("l", 0, "c") == 2
    assert r.exists("l") == 0


def test_ltrim(r):
    r.rpush("l", *"abcdef")
    assert r.ltrim("l", 1, -2) is True
    assert r.lrange("l", 0, -1) == [b"b", b"c", b"d", b"e"]
    assert r.ltrim("l", -100, 100) is True
    assert r.llen("l") == 4
    assert r.ltrim("l", 3, 1) is True
    assert r.exists("l") == 0
    assert r.ltrim("nokey", 0, 1) is True
    assert error_of(r.ltrim, "nokey", "a", 1) == "value is not an integer or out of range"


# --- moving --------------------------------------------------------------------------------


def test_lmove_all_four_directions(r):
    r.rpush("src", "1", "2", "3", "4")
    assert r.lmove("src", "dst", "LEFT", "RIGHT") == b"1"
    assert r.lmove("src", "dst", "RIGHT", "LEFT") == b"4"
    assert r.lmove("src", "dst", "LEFT", "LEFT") == b"2"
    assert r.lmove("src", "dst", "RIGHT", "RIGHT") == b"3"
    assert r.lrange("dst", 0, -1) == [b"2", b"4", b"1", b"3"]
    assert r.exists("src") == 0
    assert r.lmove("src", "dst") is None
    assert error_of(r.execute_command, "LMOVE", "dst", "x", "UP", "LEFT") == "syntax error"


def test_lmove_on_one_list_rotates_it(r):
    r.rpush("l", "a", "b", "c")
    assert r.lmove("l", "l", "LEFT", "RIGHT") == b"a"
    assert r.lrange("l", 0, -1) == [b"b", b"c", b"a"]
    r.delete("l")
    r.rpush("l", "only")
    assert r.rpoplpush("l", "l") == b"only"
    assert r.lrange("l", 0, -1) == [b"only"]


def test_rpoplpush(abc):
    assert abc.rpoplpush("l", "other") == b"c"
    assert abc.lrange("other", 0, -1) == [b"c"]
    assert abc.rpoplpush("nokey", "other") is None


def test_lmpop_pops_from_the_first_non_empty_list(r):
    r.rpush("b", "1", "2", "3")
    assert r.lmpop(2, "a", "b", direction="LEFT") == [b"b", [b"1"]]
    assert r.lmpop(2, "a", "b", direction="RIGHT", count=10) == [b"b", [b"3", b"2"]]
    assert r.exists("b") == 0
    assert r.lmpop(2, "a", "b", direction="LEFT") is None


def test_lmpop_errors(r):
    assert error_of(r.execute_command, "LMPOP", "0", "a", "LEFT") == "numkeys should be greater than 0"
    assert error_of(r.execute_command, "LMPOP", "x", "a", "LEFT") == "numkeys should be greater than 0"
    assert error_of(r.execute_command, "LMPOP", "2", "a", "LEFT") == "syntax error"
    assert error_of(r.execute_command, "LMPOP", "1", "a", "MIDDLE") == "syntax error"
    assert error_of(r.execute_command, "LMPOP", "1", "a", "LEFT", "COUNT", "0") == (
        "count should be greater than 0")
    assert error_of(r.execute_command, "LMPOP", "1", "a", "LEFT", "COUNT", "1", "COUNT", "1") == (
        "syntax error")


def test_lmpop_missing_keys_reply_a_null_array(server):
    assert raw_reply(server, b"LMPOP", b"1", b"nokey", b"LEFT") == b"*-1\r\n"


def test_resp3_null_and_nested_replies(server):
    client = server.client(protocol=3)
    client.rpush("l", "a", "b")
    assert client.lpop("nokey", 2) is None
    assert client.lmpop(1, "l", direction="LEFT", count=5) == [b"l", [b"a", b"b"]]
    client.close()


def keyevents(r, actions):
    """The (event, key) keyspace notifications that ``actions(r)`` publishes."""
    r.config_set("notify-keyspace-events", "Elgh")
    pubsub = r.pubsub()
    pubsub.psubscribe("__keyevent@0__:*")
    assert pubsub.get_message(timeout=5)["type"] == "psubscribe"
    actions(r)
    r.publish("__keyevent@0__:end", "end")  # a marker: every event before it has arrived
    events = []
    while True:
        message = pubsub.get_message(timeout=5)
        event = message["channel"].rsplit(b":", 1)[-1].decode()
        if event == "end":
            break
        events.append((event, message["data"].decode()))
    pubsub.close()
    return events


def test_list_commands_publish_redis_keyspace_events_in_order(r):
    def actions(r):
        r.rpush("src", "x")
        r.lmove("src", "dst", "LEFT", "RIGHT")
        r.ltrim("dst", 0, 5)
        r.lrem("dst", 0, "x")
        r.rpush("l", "a")
        r.blpop(["l"], 0)
        r.rpush("l", "a", "b")
        r.lset("l", 0, "z")
        r.linsert("l", "BEFORE", "z", "y")
        r.lmpop(1, "l", direction="RIGHT", count=5)

    # As Redis 7.0.15 publishes them (checked against redis-server).
    assert keyevents(r, actions) == [
        ("rpush", "src"), ("rpush", "dst"), ("lpop", "src"), ("del", "src"), ("ltrim", "dst"),
        ("lrem", "dst"), ("del", "dst"), ("rpush", "l"), ("lpop", "l"), ("del", "l"),
        ("rpush", "l"), ("lset", "l"), ("linsert", "l"), ("rpop", "l"), ("del", "l"),
    ]
