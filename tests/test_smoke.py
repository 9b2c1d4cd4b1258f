"""The core path end to end through redis-py: connect, write, read, errors."""

import pytest
import redis


def test_ping_set_get_roundtrip(r):
    assert r.ping() is True
    assert r.set("k", "v") is True
    assert r.get("k") == b"v"


def test_unknown_command_error_matches_redis(r):
    with pytest.raises(redis.ResponseError) as info:
        r.execute_command("foo", "a", "b")
    assert str(info.value) == "unknown command 'foo', with args beginning with: 'a' 'b' "


def test_wrong_arity_error_matches_redis(r):
    with pytest.raises(redis.ResponseError) as info:
        r.execute_command("get")
    assert str(info.value) == "wrong number of arguments for 'get' command"


def test_pipeline_replies_in_order(r):
    pipe = r.pipeline(transaction=False)
    for i in range(100):
        pipe.set(f"k{i}", i)
        pipe.get(f"k{i}")
    replies = pipe.execute()
    assert replies[1::2] == [str(i).encode() for i in range(100)]


def test_multi_exec_runs_queued_commands(r):
    pipe = r.pipeline(transaction=True)
    pipe.set("a", 1).get("a")
    assert pipe.execute() == [True, b"1"]


def test_hello_3_switches_to_resp3(server):
    client = server.client(protocol=3)
    assert client.ping() is True
    assert client.set("x", "1") is True
    assert client.get("x") == b"1"
