"""Differential test: what a Redis 7.0 without cluster or modules answers to CLUSTER,
READONLY, READWRITE, MODULE, LOLWUT and the DEBUG subcommands client test suites use, byte
for byte against a real ``redis-server`` (RESP2 and RESP3)."""

from __future__ import annotations

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
    ("DEBUG", "CHANGE-REPL-ID", "x"), ("DEBUG", "OBJECT", "nosuch"), ("DEBUG", "OBJECT"),
    ("DEBUG", "LISTPACK", "nosuch"), ("DEBUG", "ERROR", "hello"), ("DEBUG", "ERROR", "ERR x"),
    ("DEBUG", "ERROR", "WRONGTYPE made\r\nup"), ("DEBUG", "ERROR"), ("RPUSH", "dl", "a"),
    ("DEBUG", "LISTPACK", "dl"), ("HSET", "dh", "a", "b"), ("DEBUG", "LISTPACK", "dh"),
    ("SET", "ds", "1"), ("DEBUG", "LISTPACK", "ds"), ("ZADD", "dz", "1", "a"),
    ("DEBUG", "LISTPACK", "dz"), ("SADD", "dset", "a"), ("DEBUG", "LISTPACK", "dset"),
    ("DEBUG",), ("MULTI",), ("CLUSTER", "INFO"), ("MODULE", "LIST"), ("DEBUG", "ERROR", "x"),
    ("EXEC",),
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
