"""MULTI/EXEC/DISCARD/WATCH: queueing, EXECABORT, WATCH invalidation by other clients,
expiry and flushes, and propagation as one MULTI/EXEC block."""

from __future__ import annotations

import time

import parity
import pytest
from parity import RawClient, compare_scripts
from servers import record_propagation

reference = parity.reference  # the real Redis, a module-scoped fixture


TRANSACTION_SCRIPT = [
    ("EXEC",), ("DISCARD",), ("EXEC", "x"), ("MULTI", "x"), ("MULTI",), ("MULTI",),
    ("SET", "a", "1"), ("INCR", "a"), ("GET", "a"), ("EXEC",), ("EXEC",),
    # A command that fails to queue dooms the transaction.
    ("MULTI",), ("FOO", "bar"), ("SET", "a", "2"), ("EXEC",), ("GET", "a"),
    ("MULTI",), ("GET",), ("EXEC",),
    ("MULTI",), ("SAVE",), ("EXEC",),
    ("MULTI",), ("DISCARD", "x"), ("EXEC",),
    # A refused EXEC discards the transaction and says why.
    ("MULTI",), ("SET", "b", "1"), ("EXEC", "x"), ("EXEC",), ("EXISTS", "b"),
    # Runtime errors do not stop the other commands.
    ("MULTI",), ("SET", "c", "1"), ("INCR", "c"), ("SET", "c", "x"), ("INCR", "c"),
    ("GET", "c"), ("EXEC",),
    ("MULTI",), ("WATCH", "a"), ("MULTI",), ("UNWATCH",), ("PING",), ("EXEC",),
    ("MULTI",), ("EXEC",), ("MULTI",), ("SET", "d", "1"), ("DISCARD",), ("EXISTS", "d"),
    ("WATCH",), ("UNWATCH", "x"), ("WATCH", "a", "b"), ("UNWATCH",),
    ("MULTI",), ("SELECT", "3"), ("SET", "e", "1"), ("EXEC",), ("EXISTS", "e"),
    ("SELECT", "3"), ("EXISTS", "e"), ("SELECT", "9"),
    ("MULTI",), ("AUTH", "x"), ("EXEC",),
]


def test_transaction_replies_like_redis_byte_for_byte(server, reference):
    assert compare_scripts(server.port, reference.port, TRANSACTION_SCRIPT) == []


# Redis never forks inside EXEC: BGSAVE (with or without SCHEDULE) and BGREWRITEAOF answer
# "scheduled" there and run afterwards.  (The second transaction is refused as a whole, so no
# reply depends on whether the first one's child has started yet.)
BACKGROUND_IN_MULTI_SCRIPT = [
    ("MULTI",), ("SET", "bg", "1"), ("BGSAVE",), ("BGREWRITEAOF",), ("EXEC",),
    ("MULTI",), ("BGSAVE", "SCHEDULE"), ("SAVE",), ("EXEC",),
]


def test_bgsave_and_bgrewriteaof_inside_multi_are_scheduled_like_redis(server, reference, r):
    saves, rewrites = (r.info("persistence")[field] for field in ("rdb_saves", "aof_rewrites"))
    assert compare_scripts(server.port, reference.port, BACKGROUND_IN_MULTI_SCRIPT) == []
    deadline = time.monotonic() + 20
    while (r.info("persistence")["rdb_saves"] <= saves
           or r.info("persistence")["aof_rewrites"] <= rewrites):
        assert time.monotonic() < deadline, "the scheduled BGSAVE and BGREWRITEAOF did not run"
        time.sleep(0.02)


def _watch_scenarios(port: int) -> dict[str, bytes]:
    """The EXEC reply after each way of touching (or not) a watched key, on one server."""
    results = {}
    with RawClient(port) as a, RawClient(port) as b:
        a.call("FLUSHALL")

        def run(name, prepare, disturb):
            prepare()
            disturb()
            a.call("MULTI")
            a.call("PING")
            results[name] = a.call("EXEC")

        run("other client sets", lambda: a.call("WATCH", "k"), lambda: b.call("SET", "k", "1"))
        run("same client sets", lambda: a.call("WATCH", "y"), lambda: a.call("SET", "y", "1"))
        run("untouched", lambda: a.call("WATCH", "u"), lambda: b.call("SET", "other", "1"))
        run("flushall, key missing", lambda: a.call("WATCH", "nokey"),
            lambda: b.call("FLUSHALL"))
        run("flushall, key present",
            lambda: (a.call("SET", "x", "1"), a.call("WATCH", "x")), lambda: b.call("FLUSHALL"))
        run("flushdb, key present",
            lambda: (a.call("SET", "x", "1"), a.call("WATCH", "x")), lambda: b.call("FLUSHDB"))
        run("other db", lambda: a.call("WATCH", "z"),
            lambda: (b.call("SELECT", "1"), b.call("SET", "z", "1"), b.call("SELECT", "0")))
        run("swapdb", lambda: a.call("WATCH", "z"), lambda: b.call("SWAPDB", "0", "1"))
        run("del of a missing key", lambda: a.call("WATCH", "q"), lambda: b.call("DEL", "q"))
        run("expire command",
            lambda: (a.call("SET", "w", "1"), a.call("WATCH", "w")),
            lambda: b.call("EXPIRE", "w", "100"))
        run("key expires",
            lambda: (a.call("SET", "t", "v", "PX", "300"), a.call("WATCH", "t")),
            lambda: time.sleep(0.35))  # 300 ms: still alive when watched on a busy machine
        run("expired before watch",
            lambda: (a.call("SET", "e", "v", "PX", "10"), time.sleep(0.03), a.call("WATCH", "e")),
            lambda: None)
        run("unwatch", lambda: (a.call("WATCH", "k2"), a.call("UNWATCH")),
            lambda: b.call("SET", "k2", "1"))
    return results


def test_watch_invalidation_like_redis(server, reference):
    assert _watch_scenarios(server.port) == _watch_scenarios(reference.port)


def test_watch_is_invalidated_by_another_client(server, r):
    other = server.client()
    r.set("balance", 10)
    with r.pipeline() as pipe:
        pipe.watch("balance")
        other.set("balance", 20)
        pipe.multi()
        pipe.set("balance", 0)
        with pytest.raises(Exception, match="Watched variable changed"):
            pipe.execute()
    assert r.get("balance") == b"20"


def test_discard_forgets_queue_and_watches(server, r):
    other = server.client()
    with RawClient(server.port) as raw:
        raw.call("WATCH", "k")
        raw.call("MULTI")
        raw.call("SET", "k", "mine")
        assert raw.call("DISCARD") == b"+OK\r\n"
        other.set("k", "theirs")
        raw.call("MULTI")
        raw.call("GET", "k")
        assert raw.call("EXEC") == b"*1\r\n$6\r\ntheirs\r\n"


def test_transaction_propagates_as_one_multi_exec_block(server, r):
    recorder = record_propagation(server)
    pipe = r.pipeline(transaction=True)
    pipe.set("a", "1").incr("a").get("a").expire("a", 100)
    assert pipe.execute() == [True, 2, b"2", True]
    names = [argv[0] for _db, argv in recorder.seen]
    assert names == [b"MULTI", b"SET", b"INCRBY", b"PEXPIREAT", b"EXEC"]


def test_read_only_transaction_propagates_nothing(server, r):
    recorder = record_propagation(server)
    pipe = r.pipeline(transaction=True)
    pipe.get("a").exists("a")
    pipe.execute()
    assert recorder.seen == []


def test_aborted_transaction_propagates_nothing(server):
    recorder = record_propagation(server)
    with RawClient(server.port) as raw:
        raw.call("MULTI")
        raw.call("SET", "a", "1")
        raw.call("NOSUCHCOMMAND")
        assert raw.call("EXEC").startswith(b"-EXECABORT")
    assert recorder.seen == []


def test_blocking_pop_inside_multi_does_not_block(server):
    parity.require_commands(server.port, "blpop")
    with RawClient(server.port) as raw:
        raw.call("MULTI")
        raw.call("BLPOP", "empty", "0")
        assert raw.call("EXEC") == b"*1\r\n*-1\r\n"


# --- differential: random transaction scripts against the real Redis -----------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TK = st.sampled_from(["a", "b"])
TX_COMMANDS = st.one_of(
    st.just(("MULTI",)), st.just(("EXEC",)), st.just(("DISCARD",)), st.just(("UNWATCH",)),
    st.tuples(st.just("WATCH"), TK), st.tuples(st.just("SET"), TK, st.sampled_from(["1", "x"])),
    st.tuples(st.just("INCR"), TK), st.tuples(st.just("GET"), TK), st.tuples(st.just("DEL"), TK),
    st.just(("GET",)), st.just(("NOSUCH", "x")), st.just(("EXEC", "x")),
    st.tuples(st.just("SELECT"), st.sampled_from(["9", "3"])), st.just(("PING",)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(script=st.lists(TX_COMMANDS, min_size=1, max_size=20))
def test_random_transaction_scripts_match_redis(server, reference, script):
    script = [*script, ("EXEC",), ("DISCARD",), ("UNWATCH",)]
    assert compare_scripts(server.port, reference.port, script) == []
