"""The engine on its own, without sockets: commands run through ``Engine.call`` for clients the
test makes, and a persistence backend written here (as a third party would) records what the
engine propagates.  Shows the engine's units: dispatch and refusals, the one propagation
point (what a command did, MULTI/EXEC around a transaction), the blocked clients, the
replayer, and subsystems built with the engine."""

from __future__ import annotations

import pytest
from trioredis import BaseBackend, Block, ErrorReply, dispatch, latency
from trioredis.config import load_config
from trioredis.engine import Engine
from trioredis.log import Log
from trioredis.plugin_manager import make_plugin_manager
from trioredis.resp import NULL_ARRAY, OK, QUEUED


class RecordingBackend(BaseBackend):
    """Keeps every fed effect in memory: what an AOF would append."""

    name = "recording"

    def __init__(self) -> None:
        self.fed: list[tuple[int, list[bytes]]] = []

    def feed(self, db, argv):
        self.fed.append((db, list(argv)))


@pytest.fixture
def engine(tmp_path):
    loaded = load_config(None, [["save", ""], ["appendonly", "no"], ["dir", str(tmp_path)]])
    engine = Engine(loaded, make_plugin_manager(entry_points=False), Log("warning"))
    engine.recording = RecordingBackend()
    engine.persistence.register([engine.recording])
    return engine


def run(engine, client, *words):
    return engine.call(client, [w if isinstance(w, bytes) else w.encode() for w in words])


def test_a_command_runs_and_its_effect_is_fed_to_the_backends(engine):
    client = engine.new_client()
    assert run(engine, client, "SET", "k", "v") == OK
    assert run(engine, client, "get", "k") == b"v"
    assert engine.recording.fed == [(0, [b"SET", b"k", b"v"])]
    assert client.wrote and engine.unflushed


def test_what_a_command_did_is_propagated_not_what_was_sent(engine):
    """SET .. EX becomes SET .. PXAT (an absolute time: replaying later expires at the
    same moment); a read propagates nothing."""
    client = engine.new_client()
    run(engine, client, "SET", "k", "v", "EX", "100")
    run(engine, client, "GET", "k")
    (only,) = [argv for _, argv in engine.recording.fed]
    assert only[:4] == [b"SET", b"k", b"v", b"PXAT"] and int(only[4]) > 0


def test_a_transaction_is_propagated_between_multi_and_exec(engine):
    client = engine.new_client()
    assert run(engine, client, "MULTI") == OK
    assert run(engine, client, "INCR", "n") == QUEUED
    assert run(engine, client, "GET", "n") == QUEUED
    assert run(engine, client, "EXEC") == [1, b"1"]
    assert [argv for _, argv in engine.recording.fed] == [
        [b"MULTI"], [b"INCR", b"n"], [b"EXEC"]]


def test_a_read_only_transaction_propagates_nothing(engine):
    client = engine.new_client()
    for words in (["MULTI"], ["GET", "x"], ["EXEC"]):
        run(engine, client, *words)
    assert engine.recording.fed == []


def test_a_watched_key_changed_by_another_client_aborts_exec(engine):
    watcher, other = engine.new_client(), engine.new_client()
    run(engine, watcher, "WATCH", "k")
    run(engine, watcher, "MULTI")
    run(engine, watcher, "SET", "k", "mine")
    run(engine, other, "SET", "k", "theirs")
    assert run(engine, watcher, "EXEC") is NULL_ARRAY
    assert run(engine, other, "GET", "k") == b"theirs"


def test_a_refusal_pushed_by_a_backend_refuses_writes_only(engine):
    """The refusal is pushed (host.set_refusal), not asked of the backend per write."""
    client = engine.new_client()
    host = engine.persistence.host_for(engine.recording)
    host.set_refusal("MISCONF the disk is gone")
    reply = run(engine, client, "SET", "k", "v")
    assert isinstance(reply, ErrorReply) and bytes(reply) == b"MISCONF the disk is gone"
    assert run(engine, client, "GET", "k") is None
    assert engine.refuse_writes() == "MISCONF the disk is gone"
    host.set_refusal(None)
    assert run(engine, client, "SET", "k", "v") == OK
    assert engine.recording.fed == [(0, [b"SET", b"k", b"v"])]


def test_a_backend_that_stops_feeding_costs_nothing_per_write(engine):
    client = engine.new_client()
    host = engine.persistence.host_for(engine.recording)
    host.set_feeding(False)
    run(engine, client, "SET", "a", "1")
    host.set_feeding(True)
    run(engine, client, "SET", "b", "2")
    assert engine.recording.fed == [(0, [b"SET", b"b", b"2"])]


def test_a_blocked_client_is_served_by_the_next_push_and_its_pop_is_propagated(engine):
    waiting, pushing = engine.new_client(), engine.new_client()
    block = run(engine, waiting, "BLPOP", "queue", "0")
    assert isinstance(block, Block)
    engine.register_blocked(waiting, block)
    assert waiting.blocked
    assert run(engine, pushing, "RPUSH", "queue", "job") == 1
    assert block.waiter is not None and block.waiter.event.is_set()
    assert block.waiter.reply == [b"queue", b"job"]
    # What BLPOP did (a pop) follows the push, as Redis propagates it.
    assert [argv for _, argv in engine.recording.fed] == [
        [b"RPUSH", b"queue", b"job"], [b"LPOP", b"queue"]]


def test_a_blocking_command_inside_multi_answers_at_once(engine):
    client = engine.new_client()
    run(engine, client, "MULTI")
    run(engine, client, "BLPOP", "empty", "0")
    assert run(engine, client, "EXEC") == [NULL_ARRAY]


def test_replayed_commands_run_but_propagate_nothing(engine):
    assert engine.replayer.replay_many([[b"SET", b"a", b"1"], [b"INCR", b"a"]]) is None
    client = engine.new_client()
    assert run(engine, client, "GET", "a") == b"2"
    assert engine.recording.fed == []
    assert engine.dirty == 2


def test_replay_stops_at_the_first_failed_command(engine):
    failed = engine.replayer.replay_many(
        [[b"SET", b"a", b"x"], [b"INCR", b"a"], [b"SET", b"b", b"never"]])
    assert failed is not None and failed[0] == 1
    assert run(engine, engine.new_client(), "EXISTS", "b") == 0


def test_unknown_commands_and_wrong_arity_are_refused_before_running(engine):
    client = engine.new_client()
    assert bytes(run(engine, client, "NOSUCH")).startswith(b"ERR unknown command 'NOSUCH'")
    assert bytes(run(engine, client, "GET")) == (
        b"ERR wrong number of arguments for 'get' command")
    assert engine.stats.errors == 2


def test_the_subsystems_are_built_with_the_engine(engine):
    """Nothing is attached later: scripting (and its function libraries), pub/sub, the
    observer, SCAN's cursors and the backends' owner exist before any command ran."""
    for name in ("scripting", "pubsub", "observer", "scan_snapshots", "persistence",
                 "blocking", "replayer"):
        assert getattr(engine, name) is not None, name
    assert engine.scripting.functions is not None
    client = engine.new_client()
    assert run(engine, client, "EVAL", "return redis.call('SET', KEYS[1], 'x')", "1", "s") == OK
    # A script's effects are propagated as the commands it ran (one alone: no MULTI/EXEC).
    assert engine.recording.fed == [(0, [b"SET", b"s", b"x"])]


def test_the_keyspace_publishes_through_a_notifier_that_holds_no_engine(engine):
    """Design (#13): the keyspace's own events (``new``, ``expired``) go through a notifier
    holding pub/sub and the config only; CONFIG SET hands it the new config."""
    notifier = engine.keyspace.notify
    held = [getattr(notifier, name) for name in notifier.__slots__]
    assert not any(isinstance(value, Engine) for value in held)
    client = engine.new_client()
    assert run(engine, client, "CONFIG", "SET", "notify-keyspace-events", "KEA") == OK
    assert notifier.config is engine.config
    listener = engine.new_client()
    run(engine, listener, "SUBSCRIBE", "__keyevent@0__:new")
    run(engine, client, "SET", "fresh", "v")
    assert engine.pubsub.channels.get(b"__keyevent@0__:new")


def test_a_policy_switch_keeps_the_access_words_and_idletime_works_under_noeviction(engine):
    """OBJECT IDLETIME under noeviction: every access stores the cron's LRU clock."""
    client = engine.new_client()
    run(engine, client, "SET", "k", "v")
    db = engine.keyspace[0]
    assert db.access[b"k"] == engine.keyspace.clock
    db.access[b"k"] -= 5  # five seconds ago, as if the clock had moved on since
    assert run(engine, client, "OBJECT", "IDLETIME", "k") == 5
    run(engine, client, "GET", "k")
    assert run(engine, client, "OBJECT", "IDLETIME", "k") == 0
    run(engine, client, "CONFIG", "SET", "maxmemory-policy", "allkeys-lfu")
    assert b"k" in db.access  # kept, read as an LFU word from now on
    assert isinstance(run(engine, client, "OBJECT", "FREQ", "k"), int)


def test_each_call_lands_in_its_latency_bucket(engine, monkeypatch):
    """The engine counts each call's duration in its command's histogram, bucketed as
    ``latency.record`` buckets it (the engine inlines that arithmetic): durations chosen
    through the engine's clock, at the edges of the buckets and of the 1 ns - 1 s range."""
    durations = [0, 1, 255, 256, 257, 511, 512, 1003, 2007, 45055, 999_999_999, 10**9,
                 3 * 10**9]
    readings = iter([value for duration in durations for value in (10**12, 10**12 + duration)])
    monkeypatch.setattr(dispatch, "perf_counter_ns", lambda: next(readings))
    client = engine.new_client()
    for number in range(len(durations)):
        run(engine, client, "SET", f"k{number}", "v")
    expected: dict[int, int] = {}
    for duration in durations:
        latency.record(expected, duration)
    assert engine.command_record("set")[4] == expected
