"""The bulk AOF replay path (issue 7's replay target): the scanner's batches and the engine's
``replay_many`` must give the same dataset, offsets and verdicts as running the file command
by command, on files big enough to span many batches and hiredis feeds."""

from __future__ import annotations

import random

import hiredis
import pytest
from servers import ServerProcess, ServerThread
from trioredis import encode_command
from trioredis.plugins.aof.loading import BATCH_COMMANDS, AofCorruption, AofScanner

AOF = "appendonly.aof"


def mixed_commands(seed: int, count: int) -> list[list[bytes]]:
    """SETs of small, empty, CRLF-holding and past-the-digit-table values, with transactions,
    SELECTs and collection writes in between."""
    rng = random.Random(seed)
    commands: list[list[bytes]] = [[b"SELECT", b"0"]]
    for i in range(count):
        roll = rng.random()
        key = b"key:%d" % rng.randrange(count // 2 + 1)
        if roll < 0.01:
            commands += [[b"MULTI"], [b"set", key, b"t%d" % i], [b"INCR", b"counter"], [b"exec"]]
        elif roll < 0.02:
            commands.append([b"SET", key, b"x" * rng.choice([16383, 16384, 70000])])
        elif roll < 0.05:
            commands.append([b"RPUSH", b"list", *(b"e%d" % n for n in range(rng.randrange(1, 40)))])
        elif roll < 0.06:
            commands.append([b"SELECT", b"%d" % rng.randrange(3)])
        else:
            value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            commands.append([b"SET", key, value + b"\r\n*1\r\n" * rng.randrange(2)])
    commands.append([b"SELECT", b"0"])
    return commands


def scan(data: bytes, chunk: int) -> tuple[AofScanner, list[list[bytes]]]:
    scanner = AofScanner()
    seen: list[list[bytes]] = []
    for start in range(0, len(data), chunk):
        scanner.feed(data[start:start + chunk])
        for batch in scanner.batches():
            assert batch and len(batch) <= BATCH_COMMANDS + 1024
            seen += batch
    return scanner, seen


@pytest.mark.parametrize("chunk", [1 << 20, 4093, 1 << 14])
def test_batches_hold_every_command_once_in_order_with_the_exact_end(chunk):
    commands = mixed_commands(7, 6000)
    data = b"".join(map(encode_command, commands))
    scanner, seen = scan(data, chunk)
    assert seen == commands
    assert scanner.consumed == len(data)
    end = scanner.finish(b"")
    assert (end.valid_size, end.torn, end.commands) == (len(data), False, len(commands))


def test_an_unfinished_transaction_after_many_batches_is_cut_before_its_multi():
    commands = mixed_commands(11, 5000)
    whole = b"".join(map(encode_command, commands))
    block = encode_command([b"MULTI"]) + encode_command([b"SET", b"a", b"1"])
    torn = encode_command([b"SET", b"b", b"2"])[:-3]
    scanner, seen = scan(whole + block + torn, 1 << 20)
    end = scanner.finish(torn)
    assert seen == [*commands, [b"MULTI"], [b"SET", b"a", b"1"]]
    assert (end.valid_size, end.unfinished_multi_at, end.torn) == (len(whole), len(whole), True)


@pytest.mark.parametrize("bad, reason", [
    (b"*2\r\n$3\r\nGET\r\n:5\r\n", "not an array of bulk strings"),
    (b"*0\r\n", "not an array of bulk strings"),
    (b":12\r\n", "not an array of bulk strings"),
    (b"*1\r\n$x4\r\nPING\r\n", "Bad file format ("),
])
def test_damage_deep_in_a_big_file_is_named_at_its_exact_offset(bad, reason):
    commands = mixed_commands(3, 4000)
    good = b"".join(map(encode_command, commands))
    data = good + bad + b"".join(map(encode_command, commands[:50]))
    with pytest.raises(AofCorruption) as caught:
        scan(data, 1 << 20)
    assert caught.value.offset == len(good)
    assert reason in str(caught.value)


def test_a_status_element_is_not_canonical_and_is_refused():
    """``+OK`` parses as bytes like ``$2 OK``; only the size tells them apart."""
    commands = mixed_commands(5, 3000)
    good = b"".join(map(encode_command, commands))
    data = good + b"*2\r\n$3\r\nGET\r\n+k\r\n" + b"".join(map(encode_command, commands[:3000]))
    with pytest.raises(AofCorruption):
        scanner, _ = scan(data, 1 << 20)
        scanner.finish(b"")


def test_a_file_of_many_batches_loads_to_the_same_dataset_as_live_commands(tmp_path):
    commands = mixed_commands(23, 8000)
    commands += [[b"SET", b"ttl", b"v"], [b"PEXPIREAT", b"ttl", b"99999999999999"],
                 [b"SELECT", b"2"], [b"SADD", b"s", b"a", b"b"], [b"SELECT", b"0"]]
    (tmp_path / AOF).write_bytes(b"".join(map(encode_command, commands)))
    with ServerThread([["appendonly", "yes"], ["save", ""], ["dir", str(tmp_path)]]) as loaded:
        r = loaded.client()
        assert r.execute_command("PEXPIRETIME", "ttl") == 99999999999999
        r.delete("ttl")  # DEBUG DIGEST of a key with a TTL is not stable from one call to the next
        replayed = r.execute_command("DEBUG", "DIGEST")
        assert r.execute_command("SELECT", 2) and r.smembers("s") == {b"a", b"b"}
    with ServerThread([["save", ""], ["dir", str(tmp_path / "live")]]) as live:
        r = live.client()
        for argv in commands:
            r.execute_command(*argv)
        r.execute_command("SELECT", 0)
        r.delete("ttl")
        assert r.execute_command("DEBUG", "DIGEST") == replayed


def test_a_command_failing_deep_in_a_batch_stops_the_load_naming_its_offset(tmp_path, spawned):
    prefix = b"".join(encode_command([b"SET", b"k%d" % i, b"v"]) for i in range(3000))
    prefix += encode_command([b"SET", b"s", b"abc"])
    data = prefix + encode_command([b"INCR", b"s"]) + encode_command([b"SET", b"z", b"1"]) * 500
    (tmp_path / AOF).write_bytes(data)
    server = ServerProcess(str(tmp_path), [["appendonly", "yes"], ["save", ""]])
    spawned.append(server)
    server.start(wait=False)
    assert server.process.wait(30) != 0
    log = server.log()
    assert f"at offset {len(prefix)}: Error replaying 'INCR'" in log
    assert (tmp_path / AOF).read_bytes() == data


def test_hiredis_and_the_scanner_agree_on_a_random_big_file():
    commands = mixed_commands(31, 3000)
    data = b"".join(map(encode_command, commands))
    reader = hiredis.Reader()
    reader.feed(data)
    expected = []
    while (argv := reader.gets()) is not False:
        expected.append(argv)
    assert scan(data, 1 << 16)[1] == expected
