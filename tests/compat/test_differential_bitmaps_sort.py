"""Differential test: seeded random streams of bitmap commands (SETBIT GETBIT BITCOUNT BITPOS
BITOP BITFIELD BITFIELD_RO) and of SORT / SORT_RO, errors included, sent to our server and to
a real ``redis-server`` (7.0); every reply compared byte for byte, and after every write the
raw bytes of the value it wrote (GET of a bitmap, LRANGE of a STORE destination).

SORT of a set in its native order (``BY nosort`` without STORE) is compared as an unordered
list: Redis replies in its hash table's order.  Everything else is exact, including the
order of ties (equal scores fall back to the element's bytes; ALPHA with equal BY weights
keeps the source order in both).
"""

from __future__ import annotations

import random

import parity
import pytest
import redis
from parity import RawClient, reply_end

reference = parity.reference  # the real Redis, a module-scoped fixture

SEEDS = tuple(range(1, 7))
COMMANDS_PER_SEED = 1200

BITMAP_KEYS = [b"b1", b"b2", b"b3", b"b4"]
OTHER_KEYS = [b"list", b"missing"]
BIT_OFFSETS = [b"0", b"1", b"7", b"8", b"15", b"31", b"63", b"64", b"100", b"255", b"-1",
               b"4294967296", b"x", b"1.5", b"", b"+3", b"007"]
INDEXES = [b"0", b"1", b"2", b"-1", b"-2", b"-3", b"5", b"-100", b"100", b"7", b"-9", b"x",
           b"9223372036854775807", b"-9223372036854775808"]
UNITS = [b"BIT", b"BYTE", b"bit", b"byte", b"bits", b""]
TYPES = [b"u1", b"u3", b"u7", b"u8", b"u9", b"u15", b"u16", b"u31", b"u32", b"u33", b"u63",
         b"i1", b"i2", b"i7", b"i8", b"i9", b"i16", b"i32", b"i33", b"i63", b"i64"]
BAD_TYPES = [b"u64", b"i65", b"u0", b"i0", b"I8", b"U8", b"x8", b"u", b"i-1", b"u8x"]
FIELD_OFFSETS = [b"0", b"1", b"3", b"5", b"7", b"8", b"13", b"31", b"63", b"64", b"70", b"#0",
                 b"#1", b"#2", b"#5", b"#9"]
BAD_FIELD_OFFSETS = [b"-1", b"x", b"#", b"#-1", b"#x", b"4294967296", b"##1",
                     b"#9223372036854775807"]
FIELD_VALUES = [b"0", b"1", b"-1", b"2", b"-2", b"7", b"8", b"100", b"127", b"128", b"-128",
                b"-129", b"255", b"256", b"1000", b"65535", b"-65536", b"2147483647",
                b"-2147483648", b"4294967295", b"4294967296", b"9223372036854775807",
                b"-9223372036854775808", b"4611686018427387904", b"-4611686018427387905"]
STRINGS = [b"", b"a", b"foobar", b"\x00", b"\xff", b"\xff\xff\x00", b"\x01\x02\x03\x04",
           b"\xf0" * 9, b"\x00" * 5 + b"\x80", b"12", b"-7"]


def _value(rng: random.Random) -> bytes:
    return rng.choice(FIELD_VALUES + [b"x", b"1.0", b""]) if rng.random() < 0.05 \
        else rng.choice(FIELD_VALUES)


def _bitmap_key(rng: random.Random) -> bytes:
    return rng.choice(OTHER_KEYS) if rng.random() < 0.04 else rng.choice(BITMAP_KEYS)


def _range(rng: random.Random, most: int) -> list[bytes]:
    """0..most optional range words (start, end, unit)."""
    count = rng.choice([0, 0, 1, 2, 2, 3, 3, 4][: most + 4])
    words = [rng.choice(INDEXES) for _ in range(min(count, 2))]
    if count >= 3:
        words.append(rng.choice(UNITS) if rng.random() < 0.9 else b"x")
    if count >= 4:
        words.append(b"BIT")
    return words[:most] if rng.random() < 0.95 else words


def _bitfield_ops(rng: random.Random, read_only: bool) -> list[bytes]:
    words: list[bytes] = []
    for _ in range(rng.randint(0 if rng.random() < 0.05 else 1, 4)):
        roll = rng.random()
        bad = rng.random() < 0.04
        kind = rng.choice(BAD_TYPES) if bad and rng.random() < 0.5 else rng.choice(TYPES)
        offset = rng.choice(BAD_FIELD_OFFSETS) if bad else rng.choice(FIELD_OFFSETS)
        if roll < 0.15:
            words += [b"OVERFLOW", rng.choice([b"WRAP", b"SAT", b"FAIL", b"wrap", b"sat",
                                               b"fail"] + ([b"nope"] if bad else []))]
        elif roll < 0.45 or (read_only and rng.random() < 0.9):
            words += [rng.choice([b"GET", b"get"]), kind, offset]
        elif roll < 0.7:
            words += [b"SET", kind, offset, _value(rng)]
        elif roll < 0.97:
            words += [b"INCRBY", kind, offset, _value(rng)]
        else:
            words += rng.choice([[b"GET", kind], [b"SET", kind, offset], [b"NOPE", kind, offset]])
    return words


def _bitmap_command(rng: random.Random) -> list[bytes]:
    key = _bitmap_key(rng)
    pick = rng.randrange(20)
    if pick < 5:
        value = rng.choice([b"0", b"1"]) if rng.random() < 0.95 else rng.choice([b"2", b"-1", b"x"])
        offset = rng.choice(BIT_OFFSETS) if rng.random() < 0.9 else b"%d" % rng.randrange(400)
        return [b"SETBIT", key, offset, value]
    if pick == 5:
        return [b"GETBIT", key, rng.choice(BIT_OFFSETS)]
    if pick in (6, 7):
        return [b"BITCOUNT", key, *_range(rng, 3)]
    if pick in (8, 9):
        bit = rng.choice([b"0", b"1"]) if rng.random() < 0.95 else rng.choice([b"2", b"x", b"-1"])
        return [b"BITPOS", key, bit, *_range(rng, 3)]
    if pick in (10, 11):
        operation = rng.choice([b"AND", b"OR", b"XOR", b"NOT", b"and", b"not"])
        if rng.random() < 0.03:
            operation = b"NAND"
        count = 1 if operation.lower() == b"not" and rng.random() < 0.9 else rng.randint(1, 3)
        return [b"BITOP", operation, _bitmap_key(rng), *[_bitmap_key(rng) for _ in range(count)]]
    if pick in (12, 13, 14):
        return [b"BITFIELD", key, *_bitfield_ops(rng, False)]
    if pick == 15:
        return [b"BITFIELD_RO", key, *_bitfield_ops(rng, True)]
    if pick == 16:
        return [rng.choice([b"SET", b"APPEND"]), key, rng.choice(STRINGS)]
    if pick == 17:
        return [b"SETRANGE", key, rng.choice([b"0", b"3", b"9"]), rng.choice(STRINGS[1:])]
    if pick == 18:
        return [b"DEL", key] if rng.random() < 0.3 else [b"GETBIT", key, b"%d" % rng.randrange(80)]
    return [b"EXPIRE", key, b"1000"] if rng.random() < 0.3 else [b"TTL", key]


def _describe(differences: list[tuple]) -> str:
    lines = [f"{len(differences)} replies differ; the first ones:"]
    for protocol, command, mine, real in differences[:8]:
        lines.append(f"RESP{protocol} {b' '.join(command)!r}\n  ours:  {mine!r}\n  redis: {real!r}")
    return "\n".join(lines)


def _fresh(ours: RawClient, theirs: RawClient, protocol: int) -> None:
    for client in (ours, theirs):
        client.call(b"SELECT", b"9")
        client.call(b"FLUSHDB")
        if protocol == 3:
            client.call(b"HELLO", b"3")


def _compare(ours: RawClient, theirs: RawClient, protocol: int, command: list[bytes],
             differences: list[tuple], unordered: bool = False) -> bytes:
    mine, real = ours.call(*command), theirs.call(*command)
    if unordered and mine[:1] != b"-":
        mine_sorted, real_sorted = sorted(_elements(mine)), sorted(_elements(real))
        if mine[:1] != real[:1] or mine_sorted != real_sorted:
            differences.append((protocol, command, mine, real))
    elif mine != real:
        differences.append((protocol, command, mine, real))
    return real


def _elements(raw: bytes) -> list[bytes]:
    if raw[:1] not in (b"*", b"~"):
        return [raw]
    line_end = raw.index(b"\r\n")
    position, found = line_end + 2, []
    for _ in range(max(int(raw[1:line_end]), 0)):
        end = reply_end(raw, position)
        found.append(raw[position:end])
        position = end
    return found


_BITMAP_WRITES = {b"SETBIT": 1, b"BITOP": 2, b"BITFIELD": 1, b"SET": 1, b"APPEND": 1,
                  b"SETRANGE": 1}


@pytest.mark.parametrize("seed", SEEDS)
def test_random_bitmap_commands_reply_and_store_like_redis(server, reference, seed):
    rng = random.Random(seed)
    protocol = 3 if seed % 2 == 0 else 2
    differences: list[tuple] = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        _fresh(ours, theirs, protocol)
        for client in (ours, theirs):
            client.call(b"RPUSH", b"list", b"a")
        for _ in range(COMMANDS_PER_SEED):
            if rng.random() < 0.03:
                commands = [[b"MULTI"], *[_bitmap_command(rng) for _ in range(3)], [b"EXEC"]]
                for command in commands:
                    _compare(ours, theirs, protocol, command, differences)
                continue
            command = _bitmap_command(rng)
            _compare(ours, theirs, protocol, command, differences)
            written = _BITMAP_WRITES.get(command[0])
            if written is not None:
                _compare(ours, theirs, protocol, [b"GET", command[written]], differences)
        for key in BITMAP_KEYS:
            _compare(ours, theirs, protocol, [b"GET", key], differences)
    assert not differences, _describe(differences)


# --- SORT ----------------------------------------------------------------------------------

SORT_SOURCES = [b"l1", b"l2", b"s1", b"s2", b"z1", b"z2"]
ELEMENTS = [b"1", b"2", b"3", b"10", b"-5", b"0", b"2.5", b"1e3", b"7", b"-0", b"0x10", b"3"]
WORDS = [b"a", b"b", b"ab", b"B", b"zz", b"", b"10", b"2", b"\xff", b"a b"]


def _sort_setup(rng: random.Random) -> list[list[bytes]]:
    """Sources: lists and sorted sets (ordered), sets; numbers or words; weights as strings
    (``w_<e>``) and hash fields (``h_<e>`` -> ``f``), some missing, some not numbers."""
    commands = []
    for key in SORT_SOURCES:
        pool = ELEMENTS if rng.random() < 0.7 else WORDS
        members = [rng.choice(pool) for _ in range(rng.randint(0, 8))]
        if not members:
            continue
        if key[:1] == b"l":
            commands.append([b"RPUSH", key, *members])
        elif key[:1] == b"s":
            commands.append([b"SADD", key, *members])
        else:
            pairs = [part for member in members
                     for part in (rng.choice([b"1", b"2", b"0", b"-1.5"]), member)]
            commands.append([b"ZADD", key, *pairs])
    weights = [b"1", b"2", b"3", b"-1", b"0.5", b"1e2", b"", b" 4", b"0x1A", b"5", b"5", b"z"]
    for element in set(ELEMENTS + WORDS):
        roll = rng.random()
        if roll < 0.7:
            weight = rng.choice(weights) if rng.random() < 0.9 else rng.choice(weights[:10])
            commands.append([b"SET", b"w_" + element, weight])
        if rng.random() < 0.6:
            commands.append([b"HSET", b"h_" + element, b"f", rng.choice(weights[:10]),
                             b"g", rng.choice(WORDS)])
    commands.append([b"SET", b"str", b"v"])
    return commands


def _sort_command(rng: random.Random) -> tuple[list[bytes], bool, bytes | None]:
    """A SORT or SORT_RO, whether its reply order is unspecified (a set, not sorted), and
    its STORE destination."""
    key = rng.choice(SORT_SOURCES) if rng.random() < 0.95 else rng.choice([b"str", b"nokey"])
    options: list[list[bytes]] = []
    by = None
    if rng.random() < 0.4:
        by = rng.choice([b"w_*", b"h_*->f", b"h_*->g", b"nosort", b"w_*x", b"*", b"h_*->"])
        options.append([b"BY", by])
    if rng.random() < 0.4:
        options.append([b"ALPHA"])
    if rng.random() < 0.35:
        options.append([rng.choice([b"ASC", b"DESC", b"desc"])])
    if rng.random() < 0.35:
        options.append([b"LIMIT", rng.choice([b"0", b"1", b"2", b"-1", b"10", b"x"]),
                        rng.choice([b"0", b"1", b"3", b"-1", b"100"])])
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        options.append([b"GET", rng.choice([b"#", b"w_*", b"h_*->f", b"nostar", b"h_*->g"])])
    store = rng.random() < 0.25
    read_only = not store and rng.random() < 0.2
    destination = rng.choice([b"dst", b"dst2", b"l2"]) if store else None
    if destination is not None:
        options.append([b"STORE", destination])
    rng.shuffle(options)
    if rng.random() < 0.03:  # an option without its arguments, or an unknown one
        options.append([rng.choice([b"BY", b"LIMIT", b"NOPE", b"STORE", b"GET"])])
    command = [b"SORT_RO" if read_only else b"SORT", key, *[w for o in options for w in o]]
    alpha = any(o == [b"ALPHA"] for o in options)
    # Unspecified order: a set left in its native order (BY without '*', not stored).
    native_set = key[:1] == b"s" and by is not None and b"*" not in by and not store
    # ALPHA with BY: equal weights keep the source order, which for a set or a sorted set
    # is Redis's hash order (it reads a sorted set from its dict); with a LIMIT, Redis sorts
    # partially (quicksort), which leaves ties in any order.
    tied = alpha and by is not None and b"*" in by and (key[:1] in (b"s", b"z") or any(
        o[0] == b"LIMIT" for o in options))
    return command, native_set or tied, destination


@pytest.mark.parametrize("seed", SEEDS)
def test_random_sorts_reply_and_store_like_redis(server, reference, seed):
    rng = random.Random(seed)
    protocol = 3 if seed % 2 == 0 else 2
    differences: list[tuple] = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        _fresh(ours, theirs, protocol)
        for _round in range(6):
            for client in (ours, theirs):
                client.call(b"FLUSHDB")
            for command in _sort_setup(rng):
                _compare(ours, theirs, protocol, command, differences)
            for _ in range(COMMANDS_PER_SEED // 6):
                if rng.random() < 0.03:  # a transaction of ordered sorts
                    queued = [_sort_command(rng) for _ in range(4)]
                    commands = [[b"MULTI"], *[c for c, unordered, _ in queued if not unordered],
                                [b"EXEC"]]
                    for command in commands:
                        _compare(ours, theirs, protocol, command, differences)
                    continue
                command, unordered, destination = _sort_command(rng)
                if unordered and (destination is not None or rng.random() < 0.5):
                    continue  # a destination that differs would make the rest differ
                if unordered and b"LIMIT" in command:
                    # Which elements a LIMIT keeps depends on that order: compare the size.
                    mine, real = ours.call(*command), theirs.call(*command)
                    if (mine[:1], len(_elements(mine))) != (real[:1], len(_elements(real))):
                        differences.append((protocol, command, mine, real))
                    continue
                _compare(ours, theirs, protocol, command, differences, unordered)
                if destination is not None and not unordered:
                    _compare(ours, theirs, protocol, [b"LRANGE", destination, b"0", b"-1"],
                             differences)
                    _compare(ours, theirs, protocol, [b"TTL", destination], differences)
    assert not differences, _describe(differences)


# --- fixed scripts ---------------------------------------------------------------------------

NEW_COMMANDS = [b"setbit", b"getbit", b"bitcount", b"bitpos", b"bitop", b"bitfield",
                b"bitfield_ro", b"sort", b"sort_ro"]


def test_command_info_declares_arity_flags_keys_and_categories_as_redis(server, reference):
    ours, theirs = server.client(), reference.client()
    try:
        for name in NEW_COMMANDS:
            mine = ours.execute_command("COMMAND", "INFO", name)
            real = theirs.execute_command("COMMAND", "INFO", name)
            # name, arity, flags, first key, last key, step, ACL categories
            assert _info_head(mine) == _info_head(real), name
    finally:
        ours.close()
        theirs.close()


def _info_head(reply: dict) -> tuple:
    """redis-py's parsed COMMAND INFO: {name: {field: value}}."""
    ((name, entry),) = reply.items()
    return (name, entry["arity"], entry["flags"], entry["first_key_pos"],
            entry["last_key_pos"], entry["step_count"], entry["acl_categories"])


GETKEYS_SCRIPT = [
    [b"COMMAND", b"GETKEYS", *command] for command in (
        [b"SORT", b"a"], [b"SORT", b"a", b"STORE", b"d"],
        [b"SORT", b"a", b"BY", b"x", b"GET", b"y", b"STORE", b"d", b"LIMIT", b"0", b"1",
         b"store", b"e"],
        [b"SORT", b"a", b"LIMIT", b"store", b"1", b"store", b"d"], [b"SORT", b"a", b"GET", b"store"],
        [b"SORT", b"a", b"STORE"], [b"SORT", b"a", b"by", b"store", b"store", b"x"],
        [b"SORT_RO", b"a", b"BY", b"w_*"], [b"BITOP", b"AND", b"d", b"a", b"b", b"c"],
        [b"BITOP", b"NOT", b"d", b"a"], [b"BITFIELD", b"k", b"GET", b"u8", b"0"],
        [b"BITFIELD_RO", b"k", b"GET", b"u8", b"0"], [b"SETBIT", b"k", b"1", b"1"],
        [b"GETBIT", b"k", b"1"], [b"BITCOUNT", b"k"], [b"BITPOS", b"k", b"1"],
    )
]


def test_command_getkeys_finds_sort_and_bitmap_keys_like_redis(server, reference):
    differences: list[tuple] = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        for command in GETKEYS_SCRIPT:
            _compare(ours, theirs, 2, command, differences)
    assert not differences, _describe(differences)


ACL_SCRIPT = [
    [b"ACL", b"SETUSER", b"limited", b"on", b"nopass", b"~l*", b"~d*", b"+@all"],
    [b"ACL", b"SETUSER", b"reader", b"on", b"nopass", b"%R~*", b"~d*", b"+@all"],
    [b"RPUSH", b"l1", b"3", b"1", b"2"], [b"SET", b"w_1", b"9"],
    [b"AUTH", b"limited", b"x"],
    [b"SORT", b"l1"], [b"SORT", b"l1", b"BY", b"w_*"], [b"SORT", b"l1", b"BY", b"nosort"],
    [b"SORT", b"l1", b"GET", b"#"], [b"SORT", b"l1", b"GET", b"w_*"],
    [b"SORT_RO", b"l1", b"BY", b"w_*"], [b"SORT", b"l1", b"STORE", b"dst"],
    [b"SORT", b"l1", b"STORE", b"secret"], [b"SORT", b"secret"],
    [b"SORT", b"l1", b"LIMIT", b"x", b"1", b"BY", b"w_*"],
    # Read access to every key (%R~*) is enough for the patterns.
    [b"AUTH", b"reader", b"x"],
    [b"SORT_RO", b"l1", b"BY", b"w_*", b"GET", b"w_*"], [b"SORT_RO", b"l1", b"GET", b"#"],
    # The sorted key and BITOP's sources are only read: write permission is for the
    # destination alone.
    [b"SORT", b"l1", b"BY", b"w_*", b"STORE", b"dst"], [b"SORT", b"l1", b"STORE", b"l9"],
    [b"BITOP", b"OR", b"dbits", b"w_1", b"nokey"], [b"BITOP", b"OR", b"w_1", b"dbits"],
    [b"AUTH", b"default", b"x"],
]


def test_sort_patterns_need_access_to_every_key_as_in_redis(server, reference):
    differences: list[tuple] = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        _fresh(ours, theirs, 2)
        for command in ACL_SCRIPT:
            mine, real = ours.call(*command), theirs.call(*command)
            if command[:2] == [b"AUTH", b"default"]:
                continue  # no password set: both refuse, in their own words
            if mine != real:
                differences.append((2, command, mine, real))
        for client in (ours, theirs):
            client.call(b"ACL", b"DELUSER", b"limited", b"reader")
    assert not differences, _describe(differences)


NOTIFY_SCRIPT = [
    [b"SETBIT", b"b", b"3", b"1"], [b"SETBIT", b"b", b"3", b"1"], [b"SETBIT", b"b", b"30", b"0"],
    [b"BITOP", b"OR", b"d", b"b", b"nokey"], [b"BITOP", b"AND", b"d", b"nokey"],
    [b"BITOP", b"AND", b"d", b"nokey"], [b"BITFIELD", b"f", b"SET", b"u8", b"0", b"1"],
    [b"BITFIELD", b"f", b"GET", b"u8", b"0"], [b"BITFIELD", b"f", b"SET", b"u8", b"0", b"1"],
    [b"BITFIELD", b"g", b"OVERFLOW", b"FAIL", b"INCRBY", b"u2", b"0", b"9"],
    [b"BITFIELD", b"g", b"OVERFLOW", b"FAIL", b"INCRBY", b"u2", b"100", b"9"],
    [b"RPUSH", b"l", b"2", b"1"], [b"SORT", b"l", b"STORE", b"s"], [b"SORT", b"l"],
    [b"SORT", b"nokey", b"STORE", b"s"], [b"SORT", b"nokey", b"STORE", b"s"],
    [b"SORT", b"l", b"LIMIT", b"0", b"0", b"STORE", b"l"],
]


@pytest.mark.parametrize("flags", [b"KEA", b"KEAnm"])
def test_keyspace_notifications_name_the_events_redis_names(server, reference, flags):
    """``n`` adds ``new`` for created keys, ``m`` a ``keymiss`` for every read lookup that
    found nothing (BY and GET patterns included)."""
    script = NOTIFY_SCRIPT + [
        [b"SET", b"w_1", b"3"], [b"SORT", b"l", b"BY", b"w_*", b"GET", b"#", b"GET", b"h_*->f"],
        [b"BITCOUNT", b"nokey"], [b"GETBIT", b"nokey", b"1"], [b"SORT_RO", b"nokey"],
    ]
    assert parity.keyspace_events(server.port, script, flags) == parity.keyspace_events(reference.port, script, flags)


EDGE_SCRIPT = [
    # The 512 MB limit follows proto-max-bulk-len, as in Redis.
    [b"SETBIT", b"k", b"4294967296", b"1"], [b"GETBIT", b"k", b"4294967296"],
    [b"CONFIG", b"SET", b"proto-max-bulk-len", b"1048576"],
    [b"SETBIT", b"k", b"8388608", b"1"], [b"SETBIT", b"k", b"8388607", b"1"], [b"STRLEN", b"k"],
    [b"BITFIELD", b"k", b"SET", b"u8", b"8388608", b"1"],
    [b"BITFIELD", b"k", b"SET", b"u8", b"#1048576", b"1"],
    [b"BITFIELD", b"k", b"GET", b"i64", b"#131071"], [b"BITCOUNT", b"k"],
    [b"BITPOS", b"k", b"1"], [b"BITPOS", b"k", b"0", b"-1"], [b"BITPOS", b"k", b"1", b"-1", b"-1", b"BIT"],
    [b"BITCOUNT", b"k", b"-8", b"-1", b"BIT"], [b"DEL", b"k"],
    [b"CONFIG", b"SET", b"proto-max-bulk-len", b"536870912"],
    # Bitfields at every width straddling byte boundaries.
    *[[b"BITFIELD", b"w", b"SET", kind, offset, value, b"GET", kind, offset,
       b"INCRBY", kind, offset, b"1"]
      for kind in (b"i64", b"u63", b"i33", b"u17", b"i5")
      for offset in (b"0", b"3", b"61")
      for value in (b"-1", b"9223372036854775807", b"-9223372036854775808", b"12345")],
    [b"GET", b"w"],
    [b"BITFIELD", b"w", b"OVERFLOW", b"SAT", b"INCRBY", b"i64", b"0", b"9223372036854775807",
     b"INCRBY", b"i64", b"0", b"-9223372036854775808", b"INCRBY", b"u63", b"0", b"-1",
     b"OVERFLOW", b"WRAP", b"INCRBY", b"i64", b"0", b"9223372036854775807",
     b"OVERFLOW", b"FAIL", b"INCRBY", b"i64", b"0", b"9223372036854775807"],
    # SORT weights as strtod reads them.  Redis tests errno for ERANGE without clearing it
    # first, so once an overflow was seen every later SORT by weight fails too: the
    # overflowing weights come last.
    [b"RPUSH", b"n", b"1", b"2", b"3", b"4"], [b"SET", b"v_1", b"0x1p-3"], [b"SET", b"v_2", b"  7"],
    [b"SET", b"v_3", b"inf"], [b"SET", b"v_4", b"-inf"], [b"SORT", b"n", b"BY", b"v_*"],
    [b"SET", b"v_2", b"0.0e5"], [b"SORT", b"n", b"BY", b"v_*", b"DESC"],
    [b"SORT", b"n", b"BY", b"nosort", b"BY", b"v_*", b"DESC"],
    [b"SORT", b"n", b"BY", b"v_*->", b"GET", b"#", b"GET", b"v_*"],
    [b"SET", b"v_2", b"nan"], [b"SORT", b"n", b"BY", b"v_*"],
    [b"SET", b"v_2", b"7 "], [b"SORT", b"n", b"BY", b"v_*"], [b"SET", b"v_2", b"7"],
    [b"ZADD", b"z", b"3", b"a", b"1", b"b", b"2", b"c"],
    [b"SORT", b"z", b"BY", b"nosort", b"LIMIT", b"1", b"5"],
    [b"SORT", b"z", b"BY", b"nosort", b"DESC", b"LIMIT", b"1", b"1"],
    [b"SORT", b"z", b"ALPHA", b"DESC"], [b"SORT", b"z"],
    # Redis 7.0 converts a listpack sorted set to a skiplist for SORT (not on a syntax error).
    [b"OBJECT", b"ENCODING", b"z"], [b"ZADD", b"z2", b"1", b"a"], [b"ZADD", b"z3", b"1", b"a"],
    [b"SORT_RO", b"z2", b"ALPHA", b"LIMIT", b"5", b"1"], [b"SORT", b"z3", b"FOO"],
    [b"OBJECT", b"ENCODING", b"z2"], [b"OBJECT", b"ENCODING", b"z3"],
    # In a script, a set's native order is sorted ALPHA, as with STORE.
    [b"SADD", b"sw", b"kiwi", b"fig", b"apple", b"date", b"plum", b"lime", b"pear", b"10", b"2"],
    [b"EVAL", b"return redis.call('sort', KEYS[1], 'BY', 'nosort')", b"1", b"sw"],
    [b"EVAL", b"return redis.call('sort_ro', KEYS[1], 'BY', 'nosort', 'DESC', 'LIMIT', 1, 3)",
     b"1", b"sw"],
    [b"SADD", b"st", b"c", b"a", b"b"], [b"SORT", b"st", b"BY", b"nosort", b"STORE", b"o"],
    [b"LRANGE", b"o", b"0", b"-1"], [b"SORT_RO", b"st", b"ALPHA", b"STORE", b"o"],
    [b"SET", b"o", b"x"], [b"EXPIRE", b"o", b"100"], [b"SORT", b"st", b"ALPHA", b"STORE", b"o"],
    [b"TTL", b"o"], [b"TYPE", b"o"],
    # ALPHA ends a comparison at a NUL byte (strcoll), except with STORE (memcmp).
    [b"RPUSH", b"nul", b"a\x00c", b"a\x00b", b"a", b"a\x00a", b"\x00z", b"b"],
    [b"SORT", b"nul", b"ALPHA"], [b"SORT", b"nul", b"ALPHA", b"DESC"],
    [b"SORT", b"nul", b"ALPHA", b"STORE", b"nul2"], [b"LRANGE", b"nul2", b"0", b"-1"],
    [b"MSET", b"nw_a", b"x\x00b", b"nw_b", b"x\x00a", b"nw_a\x00c", b"x"],
    [b"SORT", b"nul", b"BY", b"nw_*", b"ALPHA"],
    [b"SORT", b"nul", b"BY", b"nw_*", b"ALPHA", b"STORE", b"nul3"], [b"LRANGE", b"nul3", b"0", b"-1"],
    # A small set of integers is an intset in Redis: its native order is ascending.
    [b"SADD", b"ints", b"30", b"-4", b"7", b"100", b"0", b"12"], [b"SORT", b"ints", b"BY", b"x"],
    [b"SORT", b"ints", b"BY", b"x", b"DESC", b"LIMIT", b"1", b"3"],
    [b"SORT", b"ints", b"BY", b"nokey_*", b"ALPHA"], [b"SORT", b"ints", b"BY", b"nokey_*"],
    [b"SET", b"v_2", b"1e400"], [b"SORT", b"n", b"BY", b"v_*"],
]


def test_edge_cases_reply_like_redis(server, reference):
    differences: list[tuple] = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        for protocol in (2, 3):
            _fresh(ours, theirs, protocol)
            for command in EDGE_SCRIPT:
                _compare(ours, theirs, protocol, command, differences)
    assert not differences, _describe(differences)


def test_redis_py_reads_bitmaps_and_sorts_like_redis(server, reference):
    """The same calls through redis-py's own helpers give the same Python values."""
    results = []
    for client in (server.client(), reference.client()):
        assert isinstance(client, redis.Redis)
        client.select(9)
        client.flushdb()
        client.setbit("bm", 5, 1)
        client.rpush("l", 3, 1, 2)
        field = client.bitfield("bf")
        field.set("u8", 0, 255).incrby("i8", 8, -3, overflow="SAT").get("u4", 4)
        results.append((client.get("bm"), client.bitcount("bm"), client.bitpos("bm", 1),
                        field.execute(), client.sort("l", desc=True),
                        client.sort("l", store="sorted"), client.lrange("sorted", 0, -1)))
        client.close()
    assert results[0] == results[1]


def _large_bitmap_command(rng: random.Random, size: int) -> list[bytes]:
    """Commands on bitmaps of a few hundred KB, so ranges cross BITPOS's 64 KB blocks."""
    key = rng.choice([b"L1", b"L2"])
    bits = size * 8

    def index(unit_bits: bool) -> bytes:
        total = bits if unit_bits else size
        around = rng.choice([0, 65536, 131072, total // 2, total - 1, 8, 7])
        if unit_bits and around in (65536, 131072):
            around *= 8
        value = max(0, min(total + 10, around + rng.randint(-9, 9)))
        return b"%d" % (-value if rng.random() < 0.3 else value)

    pick = rng.randrange(8)
    if pick == 0:
        return [b"SETBIT", key, b"%d" % rng.randrange(bits), rng.choice([b"0", b"1"])]
    if pick == 1:
        fill = rng.choice([b"\x00", b"\xff"]) * rng.randint(1, 140_000)
        return [b"SETRANGE", key, b"%d" % rng.randrange(size - len(fill) + 1 if len(fill) < size else 1), fill]
    if pick in (2, 3):
        unit_bits = rng.random() < 0.5
        return [b"BITPOS", key, rng.choice([b"0", b"1"]), index(unit_bits),
                *([index(unit_bits), b"BIT" if unit_bits else b"BYTE"] if rng.random() < 0.7 else [])]
    if pick in (4, 5):
        unit_bits = rng.random() < 0.5
        return [b"BITCOUNT", key, index(unit_bits), index(unit_bits), b"BIT" if unit_bits else b"BYTE"]
    if pick == 6:
        return [b"BITOP", rng.choice([b"AND", b"OR", b"XOR"]), b"L3", b"L1", b"L2"]
    return [b"BITFIELD", key, b"INCRBY", b"i64", index(True).lstrip(b"-"), b"%d" % rng.randint(-9, 9)]


def test_large_bitmaps_across_scan_blocks_reply_like_redis(server, reference):
    rng = random.Random(11)
    size = 300_000
    differences: list[tuple] = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        _fresh(ours, theirs, 2)
        for command in ([b"SETRANGE", b"L1", b"%d" % (size - 1), b"\x00"],
                        [b"SETRANGE", b"L2", b"%d" % (size - 1), b"\xff"],
                        [b"SETRANGE", b"L2", b"0", b"\xff" * 200_000]):
            _compare(ours, theirs, 2, command, differences)
        for _ in range(300):
            command = _large_bitmap_command(rng, size)
            _compare(ours, theirs, 2, command, differences)
        for key in (b"L1", b"L2", b"L3"):
            mine, real = ours.call(b"GET", key), theirs.call(b"GET", key)
            if mine != real:
                differences.append((2, [b"GET", key], mine[:40], real[:40]))
    assert not differences, _describe(differences)


WATCH_CASES = [
    # (watched key, command another client runs): only a written key aborts the EXEC.
    (b"src", [b"SORT", b"src", b"STORE", b"dst"]), (b"dst", [b"SORT", b"src", b"STORE", b"dst"]),
    (b"src", [b"SORT", b"src"]), (b"bits", [b"BITOP", b"NOT", b"dbits", b"bits"]),
    (b"dbits", [b"BITOP", b"NOT", b"dbits", b"bits"]), (b"bits", [b"SETBIT", b"bits", b"0", b"1"]),
    (b"bits", [b"SETBIT", b"bits", b"1", b"1"]),
]


def test_watch_sees_only_the_keys_a_command_writes_as_in_redis(server, reference):
    differences: list[tuple] = []
    for port, results in ((server.port, []), (reference.port, [])):
        with RawClient(port) as watcher, RawClient(port) as other:
            for client in (watcher, other):
                client.call(b"SELECT", b"9")
            for watched, command in WATCH_CASES:
                other.call(b"FLUSHDB")
                other.call(b"RPUSH", b"src", b"2", b"1")
                other.call(b"SET", b"bits", b"\x02")
                watcher.call(b"WATCH", watched)
                results.append(other.call(*command))
                watcher.call(b"MULTI")
                watcher.call(b"PING")
                results.append(watcher.call(b"EXEC"))
        differences.append(results)
    ours, theirs = differences
    assert ours == theirs


def _hits_and_misses(client: RawClient) -> tuple[int, int]:
    import re

    info = client.call(b"INFO", b"stats")
    hits = re.search(rb"keyspace_hits:(\d+)", info)
    misses = re.search(rb"keyspace_misses:(\d+)", info)
    return int(hits.group(1)), int(misses.group(1))


LOOKUP_SCRIPT = [
    [b"SETBIT", b"b", b"1", b"1"], [b"SETBIT", b"nokey1", b"1", b"0"], [b"GETBIT", b"b", b"1"],
    [b"GETBIT", b"nokey", b"1"], [b"BITCOUNT", b"b"], [b"BITCOUNT", b"nokey"],
    [b"BITPOS", b"b", b"1"], [b"BITPOS", b"nokey", b"0"], [b"BITOP", b"OR", b"d", b"b", b"nokey"],
    [b"BITFIELD", b"b", b"GET", b"u8", b"0"], [b"BITFIELD", b"nokey", b"GET", b"u8", b"0"],
    [b"BITFIELD", b"b", b"SET", b"u8", b"0", b"1"], [b"BITFIELD_RO", b"b", b"GET", b"u8", b"0"],
    [b"RPUSH", b"l", b"2", b"1", b"3"], [b"SET", b"w_1", b"5"], [b"HSET", b"h_2", b"f", b"1"],
    [b"SORT", b"l"], [b"SORT", b"nokey"], [b"SORT", b"l", b"BY", b"w_*"],
    [b"SORT", b"l", b"BY", b"h_*->f", b"GET", b"#", b"GET", b"w_*"],
    [b"SORT", b"l", b"BY", b"nosort", b"GET", b"h_*->f", b"STORE", b"dst"],
    [b"SORT_RO", b"l", b"LIMIT", b"0", b"1", b"GET", b"w_*"],
]


def test_lookups_count_keyspace_hits_and_misses_like_redis(server, reference):
    differences: list[tuple] = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        _fresh(ours, theirs, 2)
        for command in LOOKUP_SCRIPT:
            deltas = []
            for client in (ours, theirs):
                hits, misses = _hits_and_misses(client)
                client.call(*command)
                after_hits, after_misses = _hits_and_misses(client)
                deltas.append(b"hits +%d misses +%d" % (after_hits - hits, after_misses - misses))
            if deltas[0] != deltas[1]:
                differences.append((2, command, deltas[0], deltas[1]))
    assert not differences, _describe(differences)
