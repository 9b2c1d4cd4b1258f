"""Busy scripts: a script past ``busy-reply-threshold`` must not freeze the server.  Other
clients get -BUSY within the threshold plus a margin, SCRIPT KILL / FUNCTION KILL stop a
script that has not written, one that wrote is UNKILLABLE, SHUTDOWN NOSAVE still works."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from servers import ServerProcess, ServerThread

THRESHOLD_MS = 200
# Runners wait as long as their script runs, and never resend it (redis-py 8 would, after
# its default 5 s timeout: the resent script would meet the first one still running).
NO_RETRY = Retry(NoBackoff(), 0)
MARGIN_S = 2.0

BUSY_EVAL = "Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
BUSY_FUNCTION = (
    "Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.")


@pytest.fixture
def server(tmp_path):
    with ServerThread([["busy-reply-threshold", str(THRESHOLD_MS)], ["save", ""],
                       ["appendonly", "no"], ["dir", str(tmp_path)]]) as running:
        yield running


def _run_in_background(call) -> tuple[threading.Thread, list]:
    outcome: list = []

    def target() -> None:
        try:
            outcome.append(call())
        except Exception as error:  # noqa: BLE001 - the test looks at it
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _wait_busy(client: redis.Redis) -> float:
    """Seconds until the server answers BUSY."""
    started = time.monotonic()
    while time.monotonic() - started < THRESHOLD_MS / 1000 + MARGIN_S:
        try:
            client.ping()
        except redis.exceptions.BusyLoadingError:
            raise
        except redis.ResponseError as error:
            if str(error).startswith("Redis is busy") or "BUSY" in str(error):
                return time.monotonic() - started
            raise
        time.sleep(0.02)
    raise AssertionError("no BUSY reply in time")


def test_endless_script_gets_busy_replies_then_script_kill_ends_it(server):
    runner = server.client(retry=NO_RETRY, socket_timeout=None)
    other = server.client()
    started = time.monotonic()
    thread, outcome = _run_in_background(lambda: runner.eval("local i = 0 while true do i = i + 1 end", 0))
    time.sleep(0.05)
    _wait_busy(other)
    assert time.monotonic() - started < THRESHOLD_MS / 1000 + MARGIN_S
    with pytest.raises(redis.ResponseError, match="busy running a script. You can only call SCRIPT"):
        other.get("x")
    with pytest.raises(redis.ResponseError, match="busy"):
        other.execute_command("FUNCTION", "KILL")
    # A new connection is accepted and answered too.
    fresh = server.client()
    with pytest.raises(redis.ResponseError, match="busy"):
        fresh.set("x", "1")
    assert other.execute_command("SCRIPT", "KILL") == b"OK"
    thread.join(10)
    assert not thread.is_alive()
    error = outcome[0]
    assert isinstance(error, redis.ResponseError)
    assert str(error).startswith("Script killed by user with SCRIPT KILL... script: ")
    assert str(error).endswith(", on @user_script:1.")
    assert other.ping() is True
    assert fresh.get("x") is None


def test_a_killed_script_cannot_catch_the_kill_with_pcall(server):
    runner = server.client(retry=NO_RETRY, socket_timeout=None)
    other = server.client()
    thread, outcome = _run_in_background(lambda: runner.eval(
        "while true do pcall(function() while true do end end) end", 0))
    _wait_busy(other)
    assert other.execute_command("SCRIPT", "KILL") == b"OK"
    thread.join(10)
    assert not thread.is_alive()
    assert "Script killed by user" in str(outcome[0])


def test_a_script_that_wrote_is_unkillable_but_shutdown_nosave_stops_the_server(tmp_path):
    with ServerProcess(str(tmp_path), [["busy-reply-threshold", str(THRESHOLD_MS)],
                                       ["appendonly", "yes"], ["save", ""]]) as process:
        runner = process.client(retry=NO_RETRY, socket_timeout=None)
        other = process.client()
        thread, outcome = _run_in_background(lambda: runner.eval(
            "redis.call('SET', 'w', '1') while true do end", 0))
        _wait_busy(other)
        with pytest.raises(redis.ResponseError, match="UNKILLABLE Sorry the script already"):
            other.execute_command("SCRIPT", "KILL")
        with pytest.raises(redis.ResponseError, match="busy"):
            other.execute_command("SHUTDOWN")
        try:
            other.execute_command("SHUTDOWN", "NOSAVE")
        except redis.ConnectionError:
            pass
        assert process.process.wait(timeout=20) is not None
        thread.join(10)
        # As in Redis, the stopped script's writes never reached the AOF.
        process.start()
        assert process.client().get("w") is None


def test_busy_function_answers_with_the_function_text_and_function_kill(server):
    admin = server.client()
    admin.function_load(
        "#!lua name=spin\nredis.register_function('spin', function() while true do end end)")
    runner = server.client(retry=NO_RETRY, socket_timeout=None)
    other = server.client()
    thread, outcome = _run_in_background(lambda: runner.fcall("spin", 0))
    _wait_busy(other)
    with pytest.raises(redis.ResponseError) as info:
        other.get("x")
    assert BUSY_FUNCTION in str(info.value)
    stats = other.execute_command("FUNCTION", "STATS")
    assert b"spin" in repr(stats).encode()
    assert other.execute_command("FUNCTION", "KILL") == b"OK"
    thread.join(10)
    assert "Script killed by user with FUNCTION KILL..." in str(outcome[0])
    admin.function_flush()


def test_a_short_script_is_never_busy(server):
    client = server.client()
    assert client.eval("local n = 0 for i = 1, 100000 do n = n + i end return n", 0) == 5000050000


def test_a_library_that_loops_at_load_is_stopped(server):
    client = server.client()
    started = time.monotonic()
    with pytest.raises(redis.ResponseError,
                       match="Error registering functions: ERR FUNCTION LOAD timeout"):
        client.function_load("#!lua name=forever\nwhile true do end")
    assert time.monotonic() - started < 5
    assert client.ping() is True
