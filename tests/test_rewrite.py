"""The one command encoder (``trioredis.resp``) and the one rewriter of built-in values
(``trioredis.rewrite``): each fast path gives the bytes of its general form.

The AOF feeds every write through ``append_command`` and rewrites through ``encode_builtin`` /
``encode_keys``; DEBUG DIGEST and the ``trioredis_rewrite_value`` hook use ``rewrite_builtin``.
Seeded random values at the boundaries that matter (64 items per command, 64 arguments and
1024-byte arguments where the precomputed headers end), compared with an encoder written here
from the RESP rules alone.
"""

from __future__ import annotations

import random
from collections import deque

import pytest
from servers import ServerThread, wait_for
from trioredis import ZSet, append_command, encode_command
from trioredis.rewrite import ITEMS_PER_COMMAND, encode_builtin, encode_keys, rewrite_builtin
from trioredis.stream import Stream

SIZES = [0, 1, 5, 63, 64, 65, 127, 128, 129, 200]
LENGTHS = [0, 1, 9, 10, 99, 100, 1023, 1024, 1025, 70_000]


def reference_command(argv: list[bytes]) -> bytes:
    """RESP of a command, spelled out: ``*<argc>`` then ``$<len>`` and the bytes of each."""
    out = b"*" + str(len(argv)).encode() + b"\r\n"
    for arg in argv:
        out += b"$" + str(len(arg)).encode() + b"\r\n" + arg + b"\r\n"
    return out


def blob(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice(LENGTHS[:-1]))


def values(rng: random.Random):
    """One value of each built-in type, of a random size."""
    size = rng.choice(SIZES)
    yield b"".join(blob(rng) for _ in range(rng.randrange(3)))
    yield deque(blob(rng) for _ in range(size))
    yield {b"f%d" % i: blob(rng) for i in range(size)}
    yield {b"m%d" % rng.randrange(10**6) for _ in range(size)} or {b"one"}
    scores = [0.0, -0.0, 1.5, float("inf"), float("-inf"), 0.1, 1e300, 5e-324, 2.0**63, -7.0]
    yield ZSet((b"e%d" % i, rng.choice(scores)) for i in range(max(size, 1)))


@pytest.mark.parametrize("seed", range(20))
def test_append_command_and_encode_command_write_what_resp_spells(seed):
    rng = random.Random(seed)
    for _ in range(50):
        argv = [rng.randbytes(rng.choice(LENGTHS)) for _ in range(rng.choice([0, 1, 3, 63, 64, 65, 300]))]
        buffer = bytearray(b"before")
        append_command(buffer, argv)
        assert bytes(buffer) == b"before" + reference_command(argv)
        assert encode_command(argv) == reference_command(argv)
        assert encode_command(iter(argv)) == reference_command(argv)  # any iterable


@pytest.mark.parametrize("seed", range(20))
def test_the_rewrite_fast_path_encodes_the_commands_of_rewrite_builtin(seed):
    rng = random.Random(seed)
    for expire_ms in (None, 4102444800123):
        for value in values(rng):
            key = rng.choice([b"k", b"key:" + rng.randbytes(rng.choice([10, 1030]))])
            commands = rewrite_builtin(key, value, expire_ms)
            assert commands is not None
            assert encode_builtin(key, value, expire_ms) == b"".join(map(reference_command, commands))


def test_rewrite_builtin_splits_every_collection_in_commands_of_at_most_64_items():
    items = [b"%d" % i for i in range(2 * ITEMS_PER_COMMAND + 1)]
    hashed = rewrite_builtin(b"h", {item: b"v" for item in items}, 99)
    assert [len(argv) for argv in hashed] == [2 + 128, 2 + 128, 2 + 2, 3]
    assert hashed[-1] == [b"PEXPIREAT", b"h", b"99"]
    assert hashed[2] == [b"HSET", b"h", items[-1], b"v"]
    listed = rewrite_builtin(b"l", deque(items), None)
    assert [argv[:2] for argv in listed] == [[b"RPUSH", b"l"]] * 3
    assert [item for argv in listed for item in argv[2:]] == items
    scored = rewrite_builtin(b"z", ZSet([(b"a", float("-inf")), (b"b", 0.1), (b"c", float("inf"))]), None)
    assert scored == [[b"ZADD", b"z", b"-inf", b"a", b"0.1", b"b", b"inf", b"c"]]
    assert rewrite_builtin(b"s", b"text", None) == [[b"SET", b"s", b"text"]]
    assert rewrite_builtin(b"x", object(), None) is None
    assert encode_builtin(b"x", object(), 5) is None


def test_a_stream_takes_the_fast_path_with_the_same_commands():
    stream = Stream()
    for number in range(1, 5):
        stream.append((number << 64) | 1, [b"field", b"%d" % number], 4096, 100)
        stream.last_id = (number << 64) | 1
        stream.entries_added += 1
    commands = rewrite_builtin(b"s", stream, 7)
    assert [argv[0] for argv in commands] == [b"XADD"] * 4 + [b"XSETID", b"PEXPIREAT"]
    assert encode_builtin(b"s", stream, 7) == b"".join(map(reference_command, commands))


def test_encode_keys_writes_strings_then_other_keys_and_leaves_timed_keys_out():
    plugin_value = object()
    batch = [(b"a", b"1"), (b"l", deque([b"x"])), (b"t", b"timed"), (b"p", plugin_value), (b"b", b"2")]
    seen = []

    def other(key, value):
        seen.append((key, value))
        return b"<plugin>"

    got = encode_keys(batch, {b"t": 123}, other)
    assert seen == [(b"p", plugin_value)]
    assert got == b"".join([reference_command([b"SET", b"a", b"1"]), reference_command([b"SET", b"b", b"2"]),
                            reference_command([b"RPUSH", b"l", b"x"]), b"<plugin>"])


def test_a_rewritten_aof_holds_the_fast_path_bytes_and_reloads_the_same_dataset(tmp_path):
    """Over a real socket: BGREWRITEAOF writes SELECT, then each key as rewrite_builtin's
    commands, and a restart on that file gives the same DEBUG DIGEST."""
    options = [["appendonly", "yes"], ["save", ""], ["dir", str(tmp_path)]]
    with ServerThread(options) as server:
        server.wait_ready()
        r = server.client()
        r.set("s", b"x" * 2000)
        r.rpush("l", *[b"%d" % i for i in range(130)])
        r.hset("h", mapping={b"f%d" % i: b"v" for i in range(65)})
        r.zadd("z", {"lo": float("-inf"), "mid": 0.1, "hi": float("inf")})
        r.pexpireat("h", 4102444800123)
        digest = r.execute_command("DEBUG", "DIGEST")
        r.bgrewriteaof()
        wait_for(lambda: not r.info("persistence")["aof_rewrite_in_progress"]
                 and not r.info("persistence")["aof_rewrite_scheduled"])
        data = (tmp_path / "appendonly.aof").read_bytes()
    # Strings of a batch come first, then the other keys without a TTL, then the timed ones.
    assert data.startswith(reference_command([b"SELECT", b"0"])
                           + reference_command([b"SET", b"s", b"x" * 2000]))
    for argv in (rewrite_builtin(b"l", deque([b"%d" % i for i in range(130)]), None)
                 + rewrite_builtin(b"z", ZSet([(b"lo", float("-inf")), (b"mid", 0.1), (b"hi", float("inf"))]), None)
                 + rewrite_builtin(b"h", {b"f%d" % i: b"v" for i in range(65)}, 4102444800123)):
        assert reference_command(argv) in data
    with ServerThread(options) as server:
        server.wait_ready()
        assert server.client().execute_command("DEBUG", "DIGEST") == digest
