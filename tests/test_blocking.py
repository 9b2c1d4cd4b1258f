"""Blocking list pops with two (or more) clients: served by a push from another client or by
another client's MULTI/EXEC, in the order the clients blocked; timeouts; a client that
disconnects while blocked leaves no waiter behind; and what a blocked pop took is
propagated as the non-blocking pop that happened.

The blocked side runs in a thread (redis-py blocks) or on a low-level connection that sends
now and reads later; the test waits for ``INFO clients`` to count the blocked client before
pushing, so no assertion depends on timing.
"""

import threading
import time

import listhash_recorder
import pytest
import redis
from listhash_recorder import propagated


def wait_blocked_clients(r, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while r.info("clients")["blocked_clients"] != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"blocked_clients never reached {count}")
        time.sleep(0.005)


class InThread:
    """Runs a blocking call in a thread; ``result()`` joins it and returns (or raises)."""

    def __init__(self, call, *args, **kwargs) -> None:
        self.outcome: list = []
        self.thread = threading.Thread(target=self._run, args=(call, args, kwargs), daemon=True)
        self.thread.start()

    def _run(self, call, args, kwargs) -> None:
        try:
            self.outcome.append(("ok", call(*args, **kwargs)))
        except Exception as error:  # handed to the test thread
            self.outcome.append(("error", error))

    def result(self, timeout: float = 10):
        self.thread.join(timeout)
        assert self.outcome, "the blocked call never returned"
        kind, value = self.outcome[0]
        if kind == "error":
            raise value
        return value


def blocked_connection(server, *argv):
    """A raw connection that has sent a (blocking) command and not read its reply yet."""
    connection = redis.Connection(host="127.0.0.1", port=server.port)
    connection.connect()
    connection.send_command(*argv)
    return connection


@pytest.fixture
def other(server):
    client = server.client()
    yield client
    client.close()


# --- served by a push ----------------------------------------------------------------------


def test_blpop_is_served_by_a_push_from_another_client(r, other):
    waiting = InThread(other.blpop, ["k"], timeout=10)
    wait_blocked_clients(r, 1)
    assert r.rpush("k", "a", "b") == 2
    assert waiting.result() == (b"k", b"a")
    assert r.lrange("k", 0, -1) == [b"b"]


def test_brpop_takes_from_the_right(r, other):
    waiting = InThread(other.brpop, ["k"], timeout=10)
    wait_blocked_clients(r, 1)
    r.rpush("k", "a", "b")
    assert waiting.result() == (b"k", b"b")


def test_blpop_on_several_keys_takes_the_one_pushed(r, other):
    waiting = InThread(other.blpop, ["k1", "k2", "k3"], timeout=10)
    wait_blocked_clients(r, 1)
    r.lpush("k2", "x")
    assert waiting.result() == (b"k2", b"x")
    assert r.exists("k2") == 0


def test_blpop_returns_at_once_when_a_list_has_elements(r):
    r.rpush("k2", "x")
    assert r.blpop(["k1", "k2"], timeout=0) == (b"k2", b"x")


def test_blocked_clients_are_served_in_the_order_they_blocked(r, server):
    waiters = []
    for number in range(3):
        waiters.append(blocked_connection(server, "BLPOP", "k", "0"))
        wait_blocked_clients(r, number + 1)
    r.rpush("k", "first", "second", "third")
    assert [w.read_response() for w in waiters] == [
        [b"k", b"first"], [b"k", b"second"], [b"k", b"third"]]
    for waiter in waiters:
        waiter.disconnect()


def test_one_element_serves_only_the_oldest_waiter(r, server):
    first = blocked_connection(server, "BLPOP", "k", "0")
    wait_blocked_clients(r, 1)
    second = blocked_connection(server, "BLPOP", "k", "0")
    wait_blocked_clients(r, 2)
    r.rpush("k", "one")
    assert first.read_response() == [b"k", b"one"]
    wait_blocked_clients(r, 1)
    r.rpush("k", "two")
    assert second.read_response() == [b"k", b"two"]
    first.disconnect()
    second.disconnect()


def test_blmove_is_served_and_its_push_wakes_the_next_waiter(r, server):
    mover = blocked_connection(server, "BLMOVE", "src", "dst", "LEFT", "RIGHT", "0")
    wait_blocked_clients(r, 1)
    popper = blocked_connection(server, "BLPOP", "dst", "0")
    wait_blocked_clients(r, 2)
    r.rpush("src", "x")
    assert mover.read_response() == b"x"
    assert popper.read_response() == [b"dst", b"x"]
    assert r.exists("src", "dst") == 0
    mover.disconnect()
    popper.disconnect()


def test_brpoplpush_is_served(r, other):
    waiting = InThread(other.brpoplpush, "src", "dst", timeout=10)
    wait_blocked_clients(r, 1)
    r.rpush("src", "a", "b")
    assert waiting.result() == b"b"
    assert r.lrange("dst", 0, -1) == [b"b"]


def test_blmpop_is_served_with_up_to_count_elements(r, other):
    waiting = InThread(other.blmpop, 2, 2, "k1", "k2", direction="RIGHT", count=5)
    wait_blocked_clients(r, 1)
    r.rpush("k2", "a", "b", "c")
    assert waiting.result() == [b"k2", [b"c", b"b", b"a"]]


def test_a_push_inside_multi_exec_serves_the_blocked_client_after_exec(r, other):
    waiting = InThread(other.blpop, ["k"], timeout=10)
    wait_blocked_clients(r, 1)
    pipe = r.pipeline(transaction=True)
    pipe.rpush("k", "a")
    pipe.rpush("k", "b")
    assert pipe.execute() == [1, 2]
    assert waiting.result() == (b"k", b"a")
    assert r.lrange("k", 0, -1) == [b"b"]


def test_a_transaction_that_pushes_and_pops_back_leaves_the_client_blocked(r, server):
    waiter = blocked_connection(server, "BLPOP", "k", "0")
    wait_blocked_clients(r, 1)
    pipe = r.pipeline(transaction=True)
    pipe.rpush("k", "gone")
    pipe.lpop("k")
    assert pipe.execute() == [1, b"gone"]
    r.rpush("k", "kept")
    assert waiter.read_response() == [b"k", b"kept"]
    waiter.disconnect()


# --- not blocking --------------------------------------------------------------------------


def test_blocking_pops_time_out_with_a_null_reply(r):
    assert r.blpop(["k"], timeout=0.1) is None
    assert r.brpop(["k"], timeout=0.1) is None
    assert r.blmove("k", "d", 0.1) is None
    assert r.brpoplpush("k", "d", 0.1) is None
    assert r.blmpop(0.1, 1, "k", direction="LEFT") is None


def test_blocking_pops_inside_multi_do_not_block(r):
    pipe = r.pipeline(transaction=True)
    pipe.blpop(["k"], timeout=0)
    pipe.blmove("k", "d", 0)
    pipe.execute_command("BLMPOP", "0", "1", "k", "LEFT")
    assert pipe.execute() == [None, None, None]


@pytest.mark.parametrize(("timeout", "message"), [
    ("x", "timeout is not a float or out of range"),
    ("nan", "timeout is not a float or out of range"),
    (" 1", "timeout is not a float or out of range"),
    ("-1", "timeout is negative"),
    ("inf", "timeout is negative"),
])
def test_timeout_errors(r, timeout, message):
    for argv in (["BLPOP", "k", timeout], ["BRPOP", "k", timeout],
                 ["BLMOVE", "k", "d", "LEFT", "LEFT", timeout], ["BRPOPLPUSH", "k", "d", timeout],
                 ["BLMPOP", timeout, "1", "k", "LEFT"]):
        with pytest.raises(redis.ResponseError) as info:
            r.execute_command(*argv)
        assert str(info.value) == message, argv


def test_blocking_pop_on_a_wrong_type_fails_at_once(r):
    r.set("s", "x")
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE"):
        r.blpop(["nokey", "s"], timeout=0)


def test_client_disconnect_while_blocked_leaves_no_waiter(r, server):
    waiter = blocked_connection(server, "BLPOP", "k", "0")
    wait_blocked_clients(r, 1)
    waiter.disconnect()
    wait_blocked_clients(r, 0)
    r.rpush("k", "x")
    assert r.lrange("k", 0, -1) == [b"x"]  # nobody took it


# --- propagation ---------------------------------------------------------------------------


def test_a_served_blpop_is_propagated_as_lpop_right_after_the_push(recorded):
    client, other = recorded.client(), recorded.client()
    waiting = InThread(other.blpop, ["k"], timeout=10)
    wait_blocked_clients(client, 1)
    client.rpush("k", "a")
    assert waiting.result() == (b"k", b"a")
    assert propagated() == [[b"RPUSH", b"k", b"a"], [b"LPOP", b"k"]]


def test_blocking_commands_propagate_the_non_blocking_pop_that_happened(recorded):
    client = recorded.client()
    client.rpush("l", *"abcdefgh")
    listhash_recorder.PROPAGATED.clear()
    client.blpop(["l"], timeout=0)
    client.brpop(["nokey", "l"], timeout=0)
    client.blmove("l", "m", 0, "LEFT", "RIGHT")
    client.brpoplpush("l", "m", 0)
    client.blmpop(0, 1, "l", direction="LEFT", count=2)
    client.lmpop(1, "l", direction="RIGHT", count=10)
    client.blpop(["l"], timeout=0.05)  # timed out: nothing to propagate
    assert propagated() == [
        [b"LPOP", b"l"],
        [b"RPOP", b"l"],
        [b"LMOVE", b"l", b"m", b"LEFT", b"RIGHT"],
        [b"RPOPLPUSH", b"l", b"m"],
        [b"LPOP", b"l", b"2"],
        [b"RPOP", b"l", b"2"],  # the two left, not the 10 asked for
    ]


def test_a_served_blmove_and_blmpop_propagate_lmove_and_lpop_count(recorded):
    client = recorded.client()
    mover = blocked_connection(recorded, "BLMOVE", "src", "dst", "RIGHT", "LEFT", "0")
    wait_blocked_clients(client, 1)
    client.rpush("src", "x")
    assert mover.read_response() == b"x"
    popper = blocked_connection(recorded, "BLMPOP", "0", "1", "q", "LEFT", "COUNT", "3")
    wait_blocked_clients(client, 1)
    client.rpush("q", "1", "2")
    assert popper.read_response() == [b"q", [b"1", b"2"]]
    assert propagated() == [
        [b"RPUSH", b"src", b"x"],
        [b"LMOVE", b"src", b"dst", b"RIGHT", b"LEFT"],
        [b"RPUSH", b"q", b"1", b"2"],
        [b"LPOP", b"q", b"2"],
    ]
    mover.disconnect()
    popper.disconnect()


def test_a_client_blocked_on_several_keys_takes_from_the_key_that_became_ready(r, other):
    waiting = InThread(other.blpop, ["a", "b"], timeout=10)
    wait_blocked_clients(r, 1)
    pipe = r.pipeline(transaction=True)
    pipe.rpush("b", "from-b")
    pipe.rpush("a", "from-a")
    pipe.execute()
    assert waiting.result() == (b"b", b"from-b")  # as Redis 7.0: b was signalled first
    assert r.lrange("a", 0, -1) == [b"from-a"]


def test_commands_pipelined_behind_a_blocked_pop_run_after_it_is_served(r, server):
    waiter = redis.Connection(host="127.0.0.1", port=server.port)
    waiter.connect()
    waiter.send_packed_command(waiter.pack_commands([("BLPOP", "k", "0"), ("LLEN", "k"), ("PING",)]))
    wait_blocked_clients(r, 1)
    r.rpush("k", "a", "b")
    assert waiter.read_response() == [b"k", b"a"]
    assert waiter.read_response() == 1
    assert waiter.read_response() == b"PONG"
    waiter.disconnect()
