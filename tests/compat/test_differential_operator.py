"""Differential test: what a Redis 7.0 without cluster or modules answers to CLUSTER,
READONLY, READWRITE, MODULE, LOLWUT and the DEBUG subcommands client test suites use, byte
for byte against a real ``redis-server`` (RESP2 and RESP3)."""

from __future__ import annotations

import random
import time

import parity
import pytest
from parity import RawClient, compare_scripts
from servers import ServerThread

reference = parity.reference  # the real Redis, a module-scoped fixture

SCRIPT = [
    ("CLUSTER", "INFO"), ("CLUSTER", "NODES"), ("CLUSTER", "SLOTS"), ("CLUSTER", "HELP"),
    ("CLUSTER", "SHARDS"), ("CLUSTER", "KEYSLOT", "k"), ("CLUSTER", "FOO"),
    ("CLUSTER", "INFO", "x"), ("CLUSTER", "KEYSLOT"), ("CLUSTER",), ("READONLY",),
    ("READWRITE",), ("READONLY", "x"), ("MODULE", "LIST"), ("MODULE", "LIST", "x"),
    ("MODULE", "HELP"), ("MODULE", "LOAD", "/tmp/x.so"), ("MODULE", "LOADEX", "/tmp/x.so"),
    ("MODULE", "UNLOAD", "x"), ("MODULE", "FOO"), ("MODULE",), ("LOLWUT",), ("LOLWUT", "foo"),
    ("LOLWUT", "VERSION", "x"), ("LOLWUT", "VERSION", "7"), ("LOLWUT", "VERSION", "1", "2"),
    ("LOLWUT", "VERSION", "5", "x"), ("LOLWUT", "VERSION", "6", "1", "x"),
    ("LOLWUT", "VERSION", "4"),
    ("DEBUG", "FOO"), ("DEBUG", "SET-ACTIVE-EXPIRE", "0"), ("DEBUG", "SET-ACTIVE-EXPIRE", "1"),
    ("DEBUG", "SET-ACTIVE-EXPIRE"), ("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "100"),
    ("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "abc"), ("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "5gb"),
    ("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "4gb"), ("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "0"),
    ("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "-1"), ("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1k"),
    ("DEBUG", "QUICKLIST-PACKED-THRESHOLD"), ("DEBUG", "STRINGMATCH-LEN"),
    ("DEBUG", "STRINGMATCH-TEST", "x"), ("DEBUG", "CHANGE-REPL-ID"),
    ("DEBUG", "CONFIG-REWRITE-FORCE-ALL"), ("DEBUG", "CONFIG-REWRITE-FORCE-ALL", "x"),
    ("DEBUG", "PAUSE-CRON", "x"), ("DEBUG", "PAUSE-CRON", "0"),
    ("DEBUG", "SET-SKIP-CHECKSUM-VALIDATION", "0"), ("DEBUG", "SET-SKIP-CHECKSUM-VALIDATION"),
    ("DEBUG", "CHANGE-REPL-ID", "x"), ("DEBUG", "OBJECT", "nosuch"), ("DEBUG", "OBJECT"),
    ("DEBUG", "LISTPACK", "nosuch"), ("DEBUG", "ERROR", "hello"), ("DEBUG", "ERROR", "ERR x"),
    ("DEBUG", "ERROR", "WRONGTYPE made\r\nup"), ("DEBUG", "ERROR"), ("RPUSH", "dl", "a"),
    ("DEBUG", "LISTPACK", "dl"), ("HSET", "dh", "a", "b"), ("DEBUG", "LISTPACK", "dh"),
    ("SET", "ds", "1"), ("DEBUG", "LISTPACK", "ds"), ("ZADD", "dz", "1", "a"),
    ("DEBUG", "LISTPACK", "dz"), ("SADD", "dset", "a"), ("DEBUG", "LISTPACK", "dset"),
    ("DEBUG",), ("MULTI",), ("CLUSTER", "INFO"), ("MODULE", "LIST"), ("DEBUG", "ERROR", "x"),
    ("EXEC",),
]


# DEBUG POPULATE: names, values cut or NUL-padded, existing keys skipped, every refusal.
# (Not here: a count like 10**18, which Redis 7.0.15 answers by crashing; see below.)
POPULATE_SCRIPT = [
    ("DEBUG", "POPULATE", "3"), ("MGET", "key:0", "key:1", "key:2", "key:3"),
    ("DEBUG", "POPULATE", "3", "p", "5"), ("MGET", "p:0", "p:1", "p:2"),
    ("DEBUG", "POPULATE", "2", "q", "12"), ("MGET", "q:0", "q:1"),
    ("DEBUG", "POPULATE", "2", "z", "0"), ("MGET", "z:0", "z:1"),
    ("DEBUG", "POPULATE", "abc"), ("DEBUG", "POPULATE", "-1"), ("DEBUG", "POPULATE", "1.5"),
    ("DEBUG", "POPULATE", "99999999999999999999"), ("DEBUG", "POPULATE", ""),
    ("DEBUG", "POPULATE"), ("DEBUG", "POPULATE", "3", "p", "abc"),
    ("DEBUG", "POPULATE", "3", "p", "-1"), ("DEBUG", "POPULATE", "0", "x", "abc"),
    ("DEBUG", "POPULATE", "1", "x", "2", "extra"),
    ("SET", "key:5", "mine"), ("SET", "key:6", "gone", "PX", "1"), ("DEBUG", "SLEEP", "0.01"),
    ("DEBUG", "POPULATE", "8"), ("MGET", "key:5", "key:6", "key:7"), ("DBSIZE",),
    ("DEBUG", "POPULATE", "2", "L" * 130), ("KEYS", "L*"), ("DEBUG", "POPULATE", "1", "a\x00b"),
    ("KEYS", "a*"), ("DEBUG", "POPULATE", "1", ""), ("KEYS", ":*"), ("DEBUG", "DIGEST"),
]


@pytest.fixture(scope="module")
def ours():
    server = ServerThread([["save", ""], ["appendonly", "no"]]).start()
    yield server
    server.stop()


def test_operator_commands_reply_like_redis(ours, reference):
    assert compare_scripts(ours.server.port, reference.port, SCRIPT) == []


def test_operator_commands_reply_like_redis_in_resp3(ours, reference):
    script = [("HELLO", "3")] + [args for args in SCRIPT if args[0] != "HELLO"]
    differences = compare_scripts(ours.server.port, reference.port, script)
    assert [args for args, _, _ in differences] == [("HELLO", "3")]  # server name and version


def test_debug_error_counts_in_no_statistics(ours, reference):
    for port in (ours.server.port, reference.port):
        with RawClient(port) as client:
            client.call("CONFIG", "RESETSTAT")
            assert client.call("DEBUG", "ERROR", "FOO bar") == b"-FOO bar\r\n"
            assert client.call("INFO", "errorstats") == b"$14\r\n# Errorstats\r\n\r\n"
            assert b"cmdstat_debug:calls=1," in client.call("INFO", "commandstats")
            assert b"failed_calls=0" in client.call("INFO", "commandstats")


def test_change_repl_id_gives_a_new_replication_id(ours):
    with RawClient(ours.server.port) as client:
        before = client.call("INFO", "replication")
        assert client.call("DEBUG", "CHANGE-REPL-ID") == b"+OK\r\n"
        after = client.call("INFO", "replication")
    replid = [line for line in before.split(b"\r\n") if line.startswith(b"master_replid:")]
    assert replid and replid[0] not in after


def test_stringmatch_test_runs_the_matcher_fuzzer(ours):
    with RawClient(ours.server.port) as client:
        assert client.call("DEBUG", "STRINGMATCH-TEST") == (
            b"+Apparently Redis did not crash: test passed\r\n")


def test_lolwut_5_and_6_end_with_redis_captions(ours, reference):
    """The art above differs on every call (random, in Redis too): the last lines match."""
    with RawClient(ours.server.port) as mine, RawClient(reference.port) as theirs:
        for version, lines in (("5", 1), ("6", 2)):
            ours_text = mine.call("LOLWUT", "VERSION", version).split(b"\r\n")[1]
            redis_text = theirs.call("LOLWUT", "VERSION", version).split(b"\r\n")[1]
            assert ours_text.split(b"\n")[-lines - 1:] == redis_text.split(b"\n")[-lines - 1:]


def test_debug_populate_like_redis(ours, reference):
    assert compare_scripts(ours.server.port, reference.port, POPULATE_SCRIPT) == []


def test_debug_populate_random_streams_like_redis(ours, reference):
    """Random counts, prefixes and sizes over keys that partly exist: the same dataset
    (DEBUG DIGEST) and the same replies."""
    rng = random.Random(20261203)
    script = []
    for _ in range(60):
        args = ["DEBUG", "POPULATE", str(rng.choice([0, 1, 2, 5, 17, 40]))]
        if rng.random() < 0.7:
            args.append(rng.choice(["key", "p", "q:r", "", "x" * rng.randint(110, 135)]))
            if rng.random() < 0.6:
                args.append(str(rng.choice([0, 1, 4, 7, 9, 30])))
        script.append(tuple(args))
        if rng.random() < 0.3:
            script.append(("SET", f"key:{rng.randint(0, 40)}", "taken"))
        script.append(("DBSIZE",))
    script.append(("DEBUG", "DIGEST"))
    assert compare_scripts(ours.server.port, reference.port, script) == []


def test_debug_populate_touches_watched_keys(ours, reference):
    for port in (ours.server.port, reference.port):
        with RawClient(port) as watcher, RawClient(port) as other:
            watcher.call("FLUSHALL")
            assert watcher.call("WATCH", "key:0") == b"+OK\r\n"
            assert other.call("DEBUG", "POPULATE", "1") == b"+OK\r\n"
            watcher.call("MULTI")
            watcher.call("GET", "key:0")
            assert watcher.call("EXEC") == b"*-1\r\n"


def test_debug_populate_refuses_a_count_this_machine_cannot_hold(ours):
    """Redis 7.0.15 crashes on DEBUG POPULATE 1000000000000000000 (its dictTryExpand check
    does not catch it); here the count is refused before any key is made."""
    with RawClient(ours.server.port) as client:
        client.call("FLUSHALL")
        assert client.call("DEBUG", "POPULATE", "1000000000000000000") == (
            b"-ERR OOM in dictTryExpand\r\n")
        assert client.call("DEBUG", "POPULATE", "1000000", "k", "1000000000000") == (
            b"-ERR OOM in dictTryExpand\r\n")
        assert client.call("DBSIZE") == b":0\r\n"
        assert client.call("PING") == b"+PONG\r\n"


def _payloads(client: RawClient) -> list[bytes]:
    """A key's and the functions' DUMP payloads with their CRC zeroed and with it wrong."""
    client.call("FUNCTION", "FLUSH")
    client.call("FUNCTION", "LOAD", "#!lua name=crclib\nredis.register_function('f', function() return 1 end)")
    client.call("SET", "crc:k", "v")
    wrong = []
    for dumped in (client.call("FUNCTION", "DUMP"), client.call("DUMP", "crc:k")):
        payload = dumped.split(b"\r\n", 1)[1][:-2]
        wrong += [payload[:-8] + b"\0" * 8, payload[:-8] + b"\1" * 8]
    return wrong


def _checksum_session(port: int) -> list[bytes]:
    with RawClient(port) as client:
        function_zero, function_bad, key_zero, key_bad = _payloads(client)
        replies = []
        for skip in ("0", "1", "x", "0"):
            replies.append(client.call("DEBUG", "SET-SKIP-CHECKSUM-VALIDATION", skip))
            for payload in (function_zero, function_bad):
                client.call("FUNCTION", "FLUSH")
                replies.append(client.call("FUNCTION", "RESTORE", payload))
            for payload in (key_zero, key_bad):
                client.call("DEL", "crc:copy")
                replies.append(client.call("RESTORE", "crc:copy", "0", payload))
        replies.append(client.call("DEBUG", "SET-SKIP-CHECKSUM-VALIDATION"))
        client.call("FUNCTION", "FLUSH")
        return replies


def test_restore_checks_checksums_unless_debug_skips_them_like_redis(ours, reference):
    """A zero CRC is a wrong one (FUNCTION RESTORE took it); DEBUG
    SET-SKIP-CHECKSUM-VALIDATION 1 lets both RESTOREs skip the CRC, as Redis's test suite
    uses it to send crafted payloads."""
    assert _checksum_session(ours.server.port) == _checksum_session(reference.port)


def _expired_while_paused(port: int) -> tuple[list[bytes], list[bytes]]:
    with RawClient(port) as client:
        client.call("SELECT", "5")
        client.call("FLUSHDB")
        paused = [client.call("DEBUG", "PAUSE-CRON", "1"), client.call("SET", "pc", "v", "PX", "30")]
        time.sleep(0.4)
        paused.append(client.call("DBSIZE"))  # not expired in the background while paused
        resumed = [client.call("DEBUG", "PAUSE-CRON", "0")]
        deadline = time.monotonic() + 5
        while client.call("DBSIZE") != b":0\r\n" and time.monotonic() < deadline:
            time.sleep(0.05)
        resumed.append(client.call("DBSIZE"))
        resumed.append(client.call("DEBUG", "PAUSE-CRON"))
        return paused, resumed


def test_pause_cron_stops_background_expiry_like_redis(ours, reference):
    assert _expired_while_paused(ours.server.port) == _expired_while_paused(reference.port)
