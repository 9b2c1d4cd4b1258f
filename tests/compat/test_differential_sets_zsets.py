"""Differential test: a seeded random stream of set and sorted set commands, errors included,
sent to our server and to a real ``redis-server`` (7.0), every reply compared byte for byte.

Replies whose order Redis leaves unspecified (SMEMBERS, SINTER..., a whole-set SPOP) are
compared as sorted lists of their elements, with the same RESP type byte; random choices
(SRANDMEMBER, ZRANDMEMBER with a negative count) are compared by size only and never change
the dataset; a scan is compared by what a whole iteration returns.  Commands Redis 7.0 does
not have (ZRANK ... WITHSCORE is 7.2) are left out.
"""

from __future__ import annotations

import random

import parity
import pytest
from parity import RawClient, reply_end

reference = parity.reference  # the real Redis, a module-scoped fixture

SEEDS = tuple(range(1, 7))
COMMANDS_PER_SEED = 1500

SET_KEYS = [b"s1", b"s2", b"s3", b"s4"]
ZSET_KEYS = [b"z1", b"z2", b"z3", b"z4"]
OTHER_KEYS = [b"str", b"missing"]
# Members stay short so every sorted set is a listpack in Redis: with mixed scores, Redis's
# lex ranges over a skiplist depend on its random node levels (they assume equal scores).
MEMBERS = [b"a", b"b", b"c", b"d", b"e", b"f", b"1", b"2", b"10", b"-3", b"", b"x" * 60]
SCORES = [
    b"0", b"1", b"2", b"3", b"-1", b"1.5", b"0.1", b"1.1", b"1e20", b"-2.5", b"inf", b"-inf",
    b"-0", b"3.0", b"1e-5", b"100", b"0x10", b"+7",
]
BAD_SCORES = [b"nan", b"abc", b"1e400", b"", b" 1", b"1 ", b"1e"]
SCORE_BOUNDS = [
    b"-inf", b"+inf", b"inf", b"0", b"1", b"(1", b"2", b"(2", b"1.5", b"(0", b"-1", b"(-inf",
    b"(+inf", b"3", b"(", b"nan", b"x",
]
LEX_BOUNDS = [b"-", b"+", b"[a", b"(a", b"[c", b"(c", b"[d", b"[f", b"(f", b"[", b"(", b"a", b"[1"]
INDEXES = [b"0", b"1", b"2", b"-1", b"-2", b"-100", b"100", b"3", b"x"]


def _score(rng: random.Random) -> bytes:
    return rng.choice(BAD_SCORES) if rng.random() < 0.03 else rng.choice(SCORES)


def _members(rng: random.Random, low: int = 1, high: int = 4) -> list[bytes]:
    return [rng.choice(MEMBERS) for _ in range(rng.randint(low, high))]


def _key(rng: random.Random, pool: list[bytes]) -> bytes:
    """Mostly a key of the right family, sometimes one of the other type or none."""
    roll = rng.random()
    if roll < 0.025:
        return rng.choice(OTHER_KEYS)
    if roll < 0.04:
        return rng.choice(SET_KEYS if pool is ZSET_KEYS else ZSET_KEYS)
    return rng.choice(pool)


def _numkeys(rng: random.Random, pool: list[bytes]) -> list[bytes]:
    keys = [_key(rng, pool) for _ in range(rng.randint(1, 3))]
    count = len(keys)
    if rng.random() < 0.05:
        count = rng.choice([0, count + 1, -1])
    return [str(count).encode(), *keys]


def _set_command(rng: random.Random) -> tuple[str, list[bytes]]:
    """(comparison mode, command) for a set command."""
    key = _key(rng, SET_KEYS)
    pick = rng.randrange(20)
    if pick < 5:
        return "exact", [b"SADD", key, *_members(rng)]
    if pick == 5:
        return "exact", [b"SREM", key, *_members(rng)]
    if pick == 6:
        return "exact", [b"SISMEMBER", key, rng.choice(MEMBERS)]
    if pick == 7:
        return "exact", [b"SMISMEMBER", key, *_members(rng)]
    if pick == 8:
        return "exact", [b"SCARD", key]
    if pick == 9:
        return "unordered", [b"SMEMBERS", key]
    if pick == 10:
        return "exact", [b"SMOVE", key, _key(rng, SET_KEYS), rng.choice(MEMBERS)]
    if pick == 11:
        name = rng.choice([b"SINTER", b"SUNION", b"SDIFF"])
        return "unordered", [name, *[_key(rng, SET_KEYS) for _ in range(rng.randint(1, 3))]]
    if pick == 12:
        name = rng.choice([b"SINTERSTORE", b"SUNIONSTORE", b"SDIFFSTORE"])
        sources = [_key(rng, SET_KEYS) for _ in range(rng.randint(1, 3))]
        return "exact", [name, _key(rng, SET_KEYS), *sources]
    if pick == 13:
        command = [b"SINTERCARD", *_numkeys(rng, SET_KEYS)]
        if rng.random() < 0.4:
            command += [b"LIMIT", rng.choice([b"0", b"1", b"2", b"-1", b"x"])]
        return "exact", command
    if pick == 14:
        # A whole-set SPOP is deterministic; a partial one is not, so it is not sent.
        return "unordered", [b"SPOP", key, rng.choice([b"100", b"0", b"-1", b"x"])]
    if pick == 15:
        count = rng.choice([b"-5", b"-1", b"0", b"100", b"x", b"1 2"])
        if count == b"1 2":
            return "exact", [b"SRANDMEMBER", key, b"1", b"2"]
        return ("size" if count.startswith(b"-") else "unordered"), [b"SRANDMEMBER", key, count]
    if pick == 16:
        return "scan", [b"SSCAN", key, b"0", *rng.choice([[], [b"MATCH", b"[a-c]*"], [b"COUNT", b"2"]])]
    if pick == 17:
        if rng.random() < 0.2:
            return "exact", [b"SPOP", key, b"1", b"2"]
        return "exact", [b"SADD", key, *_members(rng, 2, 6)]
    if pick == 18:
        return "exact", [b"SADD", b"str", b"a"] if rng.random() < 0.3 else [b"SCARD", key]
    if rng.random() < 0.1:
        return "exact", [b"SISMEMBER", key]
    return "exact", [b"SADD", key, *_members(rng, 1, 3)]


def _range_options(rng: random.Random, allow_limit: bool, allow_withscores: bool) -> list[bytes]:
    groups: list[list[bytes]] = []
    if allow_withscores and rng.random() < 0.5:
        groups.append([b"WITHSCORES"])
    if allow_limit and rng.random() < 0.4:
        groups.append([b"LIMIT", rng.choice([b"0", b"1", b"2", b"-1", b"5"]),
                       rng.choice([b"1", b"2", b"-1", b"0", b"10"])])
    rng.shuffle(groups)
    return [word for group in groups for word in group]


def _zset_command(rng: random.Random) -> tuple[str, list[bytes]]:
    key = _key(rng, ZSET_KEYS)
    pick = rng.randrange(37)
    if pick < 6 or pick >= 34:
        options = []
        for flag in (b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"):
            if rng.random() < 0.12:
                options.append(flag)
        pairs = []
        for _ in range(rng.randint(1, 3) if b"INCR" not in options or rng.random() < 0.1 else 1):
            pairs += [_score(rng), rng.choice(MEMBERS)]
        if rng.random() < 0.03:
            pairs.pop()
        return "exact", [b"ZADD", key, *options, *pairs]
    if pick == 6:
        return "exact", [b"ZINCRBY", key, _score(rng), rng.choice(MEMBERS)]
    if pick == 7:
        return "exact", [b"ZREM", key, *_members(rng)]
    if pick == 8:
        name = rng.choice([b"ZCARD", b"ZSCORE"])
        arguments = [rng.choice(MEMBERS)] if name == b"ZSCORE" else []
        if rng.random() < 0.05:
            arguments = [b"a", b"b"][: 1 - len(arguments)] if arguments else [b"a"]
        return "exact", [name, key, *arguments]
    if pick == 9:
        return "exact", [b"ZMSCORE", key, *_members(rng)]
    if pick == 10:
        return "exact", [rng.choice([b"ZRANK", b"ZREVRANK"]), key, rng.choice(MEMBERS)]
    if pick == 11:
        return "exact", [b"ZCOUNT", key, rng.choice(SCORE_BOUNDS), rng.choice(SCORE_BOUNDS)]
    if pick == 12:
        return "exact", [b"ZLEXCOUNT", key, rng.choice(LEX_BOUNDS), rng.choice(LEX_BOUNDS)]
    if pick in (13, 14):
        kind = rng.choice([b"", b"BYSCORE", b"BYLEX"])
        if kind == b"BYSCORE":
            bounds = [rng.choice(SCORE_BOUNDS), rng.choice(SCORE_BOUNDS)]
        elif kind == b"BYLEX":
            bounds = [rng.choice(LEX_BOUNDS), rng.choice(LEX_BOUNDS)]
        else:
            bounds = [rng.choice(INDEXES), rng.choice(INDEXES)]
        groups = [[kind]] if kind else []
        if rng.random() < 0.4:
            groups.append([b"REV"])
        groups.append(_range_options(rng, kind != b"" or rng.random() < 0.1, True))
        rng.shuffle(groups)
        options = [word for group in groups for word in group]
        if pick == 14:
            options = [o for o in options if o != b"WITHSCORES"] if rng.random() < 0.9 else options
            return "exact", [b"ZRANGESTORE", _key(rng, ZSET_KEYS), key, *bounds, *options]
        return "exact", [b"ZRANGE", key, *bounds, *options]
    if pick == 15:
        return "exact", [b"ZREVRANGE", key, rng.choice(INDEXES), rng.choice(INDEXES),
                         *_range_options(rng, rng.random() < 0.1, True)]
    if pick == 16:
        name = rng.choice([b"ZRANGEBYSCORE", b"ZREVRANGEBYSCORE"])
        return "exact", [name, key, rng.choice(SCORE_BOUNDS), rng.choice(SCORE_BOUNDS),
                         *_range_options(rng, True, True)]
    if pick == 17:
        name = rng.choice([b"ZRANGEBYLEX", b"ZREVRANGEBYLEX"])
        return "exact", [name, key, rng.choice(LEX_BOUNDS), rng.choice(LEX_BOUNDS),
                         *_range_options(rng, True, rng.random() < 0.1)]
    if pick == 18:
        return "exact", [b"ZREMRANGEBYRANK", key, rng.choice(INDEXES), rng.choice(INDEXES)]
    if pick == 19:
        return "exact", [b"ZREMRANGEBYSCORE", key, rng.choice(SCORE_BOUNDS), rng.choice(SCORE_BOUNDS)]
    if pick == 20:
        return "exact", [b"ZREMRANGEBYLEX", key, rng.choice(LEX_BOUNDS), rng.choice(LEX_BOUNDS)]
    if pick == 21:
        name = rng.choice([b"ZPOPMIN", b"ZPOPMAX"])
        count = rng.choice([[], [b"1"], [b"2"], [b"0"], [b"-1"], [b"x"], [b"1", b"2"]])
        return "exact", [name, key, *count]
    if pick == 22:
        command = [b"ZMPOP", *_numkeys(rng, ZSET_KEYS), rng.choice([b"MIN", b"MAX", b"LEFT"])]
        if rng.random() < 0.4:
            command += [b"COUNT", rng.choice([b"1", b"2", b"0", b"x"])]
        return "exact", command
    if pick == 23:
        # Only on a key that exists: the reply is immediate (no test time spent blocking).
        if rng.random() < 0.4:
            return "bzpop", [b"BZMPOP", b"0.01", b"1", key, rng.choice([b"MIN", b"MAX"]),
                             b"COUNT", rng.choice([b"1", b"3"])]
        name = rng.choice([b"BZPOPMIN", b"BZPOPMAX"])
        return "bzpop", [name, key, b"0.01"]
    if pick in (24, 25, 26):
        name = rng.choice([b"ZUNIONSTORE", b"ZINTERSTORE", b"ZDIFFSTORE"])
        sources = _numkeys(rng, ZSET_KEYS if rng.random() < 0.85 else SET_KEYS)
        return "exact", [name, _key(rng, ZSET_KEYS), *sources, *_setop_options(rng, sources, name)]
    if pick in (27, 28):
        name = rng.choice([b"ZUNION", b"ZINTER", b"ZDIFF"])
        sources = _numkeys(rng, ZSET_KEYS if rng.random() < 0.85 else SET_KEYS)
        options = _setop_options(rng, sources, name)
        if rng.random() < 0.5:
            options.append(b"WITHSCORES")
        return "exact", [name, *sources, *options]
    if pick == 29:
        command = [b"ZINTERCARD", *_numkeys(rng, ZSET_KEYS)]
        if rng.random() < 0.4:
            command += [b"LIMIT", rng.choice([b"0", b"1", b"-1", b"x"])]
        return "exact", command
    if pick == 30:
        count = rng.choice([b"-3", b"-1", b"0", b"100", b"x"])
        options = [b"WITHSCORES"] if rng.random() < 0.5 else []
        if count.startswith(b"-"):
            return "size", [b"ZRANDMEMBER", key, count, *options]
        return "unordered", [b"ZRANDMEMBER", key, count, *options]
    if pick == 31:
        return "scan", [b"ZSCAN", key, b"0", *rng.choice([[], [b"MATCH", b"*a*"], [b"COUNT", b"3"]])]
    if pick == 32:
        return "exact", [b"SET", b"str", b"v"]
    return "exact", [b"ZADD", key, b"1", b"a", b"1", b"b", b"1", b"c", b"1", b"d", b"1", b"e"]


def _setop_options(rng: random.Random, sources: list[bytes], name: bytes) -> list[bytes]:
    options: list[bytes] = []
    count = len(sources) - 1
    if rng.random() < 0.3:
        weights = [rng.choice([b"1", b"2", b"0.5", b"-1", b"0", b"inf", b"1.1"]) for _ in range(count)]
        if rng.random() < 0.05:
            weights[0] = b"x"
        options += [b"WEIGHTS", *weights]
    if rng.random() < 0.3:
        options += [b"AGGREGATE", rng.choice([b"SUM", b"MIN", b"MAX", b"AVG"])]
    return options


def _parse(raw: bytes) -> tuple[bytes, list[bytes]]:
    """A reply's type byte and its elements (an aggregate's top level), for unordered
    comparison."""
    kind = raw[:1]
    if kind not in (b"*", b"~"):
        return kind, [raw]
    line_end = raw.index(b"\r\n")
    count = int(raw[1:line_end])
    position = line_end + 2
    elements = []
    for _ in range(max(count, 0)):
        end = reply_end(raw, position)
        elements.append(raw[position:end])
        position = end
    return kind, elements


def _scan_all(client: RawClient, command: list[bytes]) -> list[bytes]:
    """Every element a scan returns from cursor 0 to the end, sorted (pairs kept together
    for ZSCAN)."""
    cursor = b"0"
    found = []
    for _ in range(1000):
        args = list(command)
        args[2] = cursor
        raw = client.call(*args)
        if raw[:1] == b"-":
            return [raw]
        _, (cursor_raw, items) = _parse(raw)
        cursor = cursor_raw.split(b"\r\n")[1]
        _, elements = _parse(items)
        if command[0] == b"ZSCAN":
            found += [elements[i] + elements[i + 1] for i in range(0, len(elements), 2)]
        else:
            found += elements
        if cursor == b"0":
            break
    return sorted(set(found))


def _run(rng: random.Random, ours: RawClient, theirs: RawClient, protocol: int) -> list[tuple]:
    differences = []
    for _ in range(COMMANDS_PER_SEED):
        if rng.random() < 0.03:
            differences += _run_transaction(rng, ours, theirs, protocol)
            continue
        mode, command = _zset_command(rng) if rng.random() < 0.6 else _set_command(rng)
        if mode == "bzpop":
            key = command[3] if command[0] == b"BZMPOP" else command[1]
            if theirs.call(b"TYPE", key) != b"+zset\r\n":
                continue
            mode = "exact"
        if mode == "scan":
            mine, real = _scan_all(ours, command), _scan_all(theirs, command)
        else:
            mine, real = ours.call(*command), theirs.call(*command)
        if mode == "unordered" and mine[:1] != b"-":
            mine, real = _parse(mine), _parse(real)
            mine, real = (mine[0], sorted(mine[1])), (real[0], sorted(real[1]))
        elif mode == "size" and mine[:1] != b"-":
            mine, real = _parse(mine)[0] + b"%d" % len(_parse(mine)[1]), \
                _parse(real)[0] + b"%d" % len(_parse(real)[1])
        if mine != real:
            differences.append((protocol, command, mine, real))
    return differences


def _run_transaction(rng: random.Random, ours: RawClient, theirs: RawClient,
                     protocol: int) -> list[tuple]:
    """MULTI, a few commands whose replies are ordered (blocking pops included: inside a
    transaction they do not block), EXEC: every reply compared."""
    commands = [[b"MULTI"]]
    while len(commands) < 5:
        mode, command = _zset_command(rng) if rng.random() < 0.6 else _set_command(rng)
        if mode in ("exact", "bzpop"):
            commands.append(command)
    commands.append([b"EXEC"])
    differences = []
    for command in commands:
        mine, real = ours.call(*command), theirs.call(*command)
        if mine != real:
            differences.append((protocol, command, mine, real))
    return differences


@pytest.mark.parametrize("seed", SEEDS)
def test_random_set_and_zset_commands_reply_like_redis(server, reference, seed):
    rng = random.Random(seed)
    protocol = 3 if seed % 2 == 0 else 2
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        for client in (ours, theirs):
            client.call(b"SELECT", b"9")
            client.call(b"FLUSHDB")
            if protocol == 3:
                client.call(b"HELLO", b"3")
        differences = _run(rng, ours, theirs, protocol)
        # The datasets must have ended equal too.
        for key in SET_KEYS:
            mine, real = ours.call(b"SMEMBERS", key), theirs.call(b"SMEMBERS", key)
            if sorted(_parse(mine)[1]) != sorted(_parse(real)[1]):
                differences.append((protocol, [b"final SMEMBERS", key], mine, real))
        for key in ZSET_KEYS:
            command = [b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]
            mine, real = ours.call(*command), theirs.call(*command)
            if mine != real:
                differences.append((protocol, command, mine, real))
    assert not differences, _describe(differences)


def _describe(differences: list[tuple]) -> str:
    lines = [f"{len(differences)} replies differ; the first ones:"]
    for protocol, command, mine, real in differences[:8]:
        lines.append(f"RESP{protocol} {b' '.join(command)!r}\n  ours:  {mine!r}\n  redis: {real!r}")
    return "\n".join(lines)


def _large_script() -> list[list[bytes]]:
    """Commands over sets and sorted sets past Redis's compact encodings (skiplist,
    hashtable), whose replies do not depend on Redis's hash order or random levels."""
    script: list[list[bytes]] = []
    members = [b"m%03d" % i for i in range(300)]
    # Equal scores: lex ranges are well defined on a skiplist too.
    script.append([b"ZADD", b"lex", *[part for m in members for part in (b"0", m)]])
    for low, high in [(b"-", b"+"), (b"[m100", b"(m150"), (b"(m299", b"+"), (b"[m2", b"[m3"),
                      (b"-", b"(m000"), (b"[m050", b"[m050")]:
        script += [[b"ZLEXCOUNT", b"lex", low, high],
                   [b"ZRANGEBYLEX", b"lex", low, high, b"LIMIT", b"3", b"5"],
                   [b"ZREVRANGEBYLEX", b"lex", high, low, b"LIMIT", b"1", b"4"]]
    script += [[b"ZREMRANGEBYLEX", b"lex", b"[m010", b"(m020"], [b"ZCARD", b"lex"],
               [b"ZRANGE", b"lex", b"5", b"15"], [b"ZRANK", b"lex", b"m250"]]
    # Distinct scores, including fractions that print with 17 digits.
    pairs = [part for i, m in enumerate(members) for part in (b"%r" % (i / 7 - 20), m)]
    script.append([b"ZADD", b"big", *pairs])
    for low, high in [(b"-inf", b"+inf"), (b"(-10", b"0"), (b"1.5", b"(3"), (b"(22", b"inf")]:
        script += [[b"ZCOUNT", b"big", low, high],
                   [b"ZRANGEBYSCORE", b"big", low, high, b"WITHSCORES", b"LIMIT", b"2", b"4"],
                   [b"ZREVRANGEBYSCORE", b"big", high, low, b"WITHSCORES", b"LIMIT", b"0", b"3"]]
    script += [[b"ZRANGE", b"big", b"-5", b"-1", b"WITHSCORES"],
               [b"ZREVRANGE", b"big", b"0", b"3", b"WITHSCORES"],
               [b"ZRANK", b"big", b"m123"], [b"ZREVRANK", b"big", b"m123"],
               [b"ZSCORE", b"big", b"m101"], [b"ZINCRBY", b"big", b"0.1", b"m101"],
               [b"ZADD", b"big", b"GT", b"CH", b"5", b"m000", b"-100", b"m001"],
               [b"ZUNIONSTORE", b"u", b"2", b"big", b"lex", b"WEIGHTS", b"2", b"3"],
               [b"ZRANGE", b"u", b"0", b"9", b"WITHSCORES"],
               [b"ZINTERSTORE", b"i", b"2", b"big", b"lex", b"AGGREGATE", b"MAX"],
               [b"ZRANGE", b"i", b"-3", b"-1", b"WITHSCORES"],
               [b"ZDIFFSTORE", b"d", b"2", b"big", b"lex"], [b"ZCARD", b"d"],
               [b"ZRANGESTORE", b"r", b"big", b"(0", b"+inf", b"BYSCORE", b"LIMIT", b"5", b"50"],
               [b"ZRANGE", b"r", b"0", b"-1", b"WITHSCORES"],
               [b"ZREMRANGEBYSCORE", b"big", b"(-5", b"5"], [b"ZREMRANGEBYRANK", b"big", b"10", b"-10"],
               [b"ZPOPMIN", b"big", b"3"], [b"ZPOPMAX", b"big"], [b"ZMPOP", b"1", b"big", b"MAX",
                                                              b"COUNT", b"2"],
               [b"ZRANGE", b"big", b"0", b"-1", b"WITHSCORES"]]
    # Negative zero: a skiplist keeps it, a listpack stores 0; a set that outgrew the
    # listpack stays a skiplist after it shrinks.
    script += [[b"ZADD", b"lex", b"-0", b"zero"], [b"ZSCORE", b"lex", b"zero"],
               [b"ZADD", b"small", b"-0", b"zero"], [b"ZSCORE", b"small", b"zero"],
               [b"ZADD", b"long", b"-0", b"x" * 65], [b"ZSCORE", b"long", b"x" * 65],
               [b"ZREMRANGEBYRANK", b"lex", b"0", b"-3"], [b"ZADD", b"lex", b"-0", b"zero2"],
               [b"ZRANGE", b"lex", b"0", b"-1", b"WITHSCORES"],
               [b"ZUNIONSTORE", b"u2", b"1", b"lex"], [b"ZSCORE", b"u2", b"zero2"],
               [b"ZADD", b"wide", *[part for i in range(130) for part in (b"-0", b"w%d" % i)]],
               [b"ZSCORE", b"wide", b"w1"], [b"ZSCORE", b"wide", b"w129"],
               [b"ZADD", b"wide2", b"1", b"x" * 65, *[part for i in range(9) for part in (b"-0", b"v%d" % i)]],
               [b"ZSCORE", b"wide2", b"v1"],
               [b"ZRANGESTORE", b"rs", b"wide", b"0", b"-1"], [b"ZSCORE", b"rs", b"w1"],
               [b"ZSCORE", b"rs", b"w129"], [b"ZRANGESTORE", b"rs", b"wide", b"0", b"-1", b"REV"],
               [b"ZSCORE", b"rs", b"w1"], [b"ZSCORE", b"rs", b"w129"],
               [b"ZADD", b"ml", b"1", b"y" * 65], [b"ZADD", b"ml", b"-0", b"a", b"-0", b"b"],
               [b"ZRANGESTORE", b"rs", b"ml", b"0", b"-1"], [b"ZSCORE", b"rs", b"a"],
               [b"ZRANGESTORE", b"rs", b"ml", b"0", b"-1", b"REV"], [b"ZSCORE", b"rs", b"a"],
               [b"ZUNIONSTORE", b"rs", b"1", b"ml"], [b"ZSCORE", b"rs", b"a"],
               [b"ZINTERSTORE", b"rs", b"1", b"ml", b"WEIGHTS", b"-1"], [b"ZSCORE", b"rs", b"b"],
               [b"COPY", b"ml", b"mlcopy"], [b"ZADD", b"mlcopy", b"-0", b"c"],
               [b"ZSCORE", b"mlcopy", b"c"]]
    # Sets past the intset: only order-free replies.
    script.append([b"SADD", b"s", *members])
    script.append([b"SADD", b"t", *members[::3], b"extra"])
    script += [[b"SCARD", b"s"], [b"SINTERCARD", b"2", b"s", b"t"],
               [b"SINTERCARD", b"2", b"s", b"t", b"LIMIT", b"7"],
               [b"SINTERSTORE", b"st", b"s", b"t"], [b"SCARD", b"st"],
               [b"SDIFFSTORE", b"sd", b"t", b"s"], [b"SMEMBERS", b"sd"],
               [b"SUNIONSTORE", b"su", b"s", b"t"], [b"SCARD", b"su"],
               [b"SMISMEMBER", b"t", b"m000", b"m001", b"extra"],
               [b"ZINTERCARD", b"2", b"lex", b"t"],
               [b"SADD", b"ints", *[b"%d" % i for i in range(600)]], [b"SCARD", b"ints"],
               [b"SREM", b"ints", *[b"%d" % i for i in range(0, 600, 2)]], [b"SCARD", b"ints"],
               # Integers that never passed 512 members: an intset, whose order Redis replies in
               # (ascending); "ints" above became a hash table for good when it passed 512.
               [b"SADD", b"small", *[b"%d" % (i * 7919 % 1000 - 500) for i in range(300)]],
               [b"SMEMBERS", b"small"], [b"SUNION", b"small", b"nokey"],
               [b"SINTER", b"small", b"small"], [b"SDIFF", b"small", b"nokey"],
               [b"SSCAN", b"small", b"0"], [b"SPOP", b"small", b"1000"]]
    return script


def test_large_sets_and_zsets_reply_like_redis(server, reference):
    differences = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        for client in (ours, theirs):
            client.call(b"SELECT", b"9")
            client.call(b"FLUSHDB")
        for command in _large_script():
            mine, real = ours.call(*command), theirs.call(*command)
            if mine != real:
                differences.append((2, command, mine, real))
        for key in (b"lex", b"big", b"s", b"ints"):
            scan = [b"ZSCAN" if key in (b"lex", b"big") else b"SSCAN", key, b"0", b"COUNT", b"20"]
            mine, real = _scan_all(ours, scan), _scan_all(theirs, scan)
            if mine != real:
                differences.append((2, scan, mine, real))
    assert not differences, _describe(differences)


NOTIFY_SCRIPT = [
    [b"SADD", b"s", b"a", b"b", b"c"], [b"SADD", b"s", b"a"], [b"SREM", b"s", b"a", b"x"],
    [b"SMOVE", b"s", b"t", b"b"], [b"SMOVE", b"s", b"t", b"c"], [b"SADD", b"s", b"1", b"2", b"3"],
    [b"SPOP", b"s"], [b"SPOP", b"s", b"5"], [b"SADD", b"u", b"q"],
    [b"SINTERSTORE", b"d", b"t", b"u"], [b"SUNIONSTORE", b"d", b"t", b"u"],
    [b"SDIFFSTORE", b"d", b"t", b"u"], [b"SINTERSTORE", b"d", b"t", b"u"],
    [b"ZADD", b"z", b"1", b"a", b"2", b"b", b"3", b"c", b"4", b"d"], [b"ZADD", b"z", b"1", b"a"],
    [b"ZINCRBY", b"z", b"1", b"a"], [b"ZADD", b"z", b"INCR", b"0", b"a"], [b"ZREM", b"z", b"a"],
    [b"ZREMRANGEBYRANK", b"z", b"0", b"0"], [b"ZREMRANGEBYSCORE", b"z", b"3", b"3"],
    [b"ZADD", b"z", b"0", b"x", b"0", b"y"], [b"ZREMRANGEBYLEX", b"z", b"[x", b"[x"],
    [b"ZPOPMIN", b"z"], [b"ZPOPMAX", b"z", b"1"], [b"ZADD", b"z", b"1", b"a", b"2", b"b"],
    [b"ZRANGESTORE", b"r", b"z", b"0", b"0"], [b"ZUNIONSTORE", b"r", b"1", b"z"],
    [b"ZINTERSTORE", b"r", b"2", b"z", b"nokey"], [b"ZDIFFSTORE", b"r", b"1", b"z"],
    [b"ZMPOP", b"1", b"z", b"MIN"], [b"BZPOPMIN", b"z", b"0"], [b"ZREM", b"z", b"nope"],
]


def test_keyspace_notifications_name_the_events_redis_names(server, reference):
    assert parity.keyspace_events(server.port, NOTIFY_SCRIPT) == parity.keyspace_events(reference.port, NOTIFY_SCRIPT)


KEYS_SCRIPT = [
    [b"COMMAND", b"GETKEYS", *command] for command in (
        [b"ZUNION", b"2", b"a", b"b", b"WEIGHTS", b"1", b"2"],
        [b"ZINTERSTORE", b"dst", b"2", b"a", b"b", b"AGGREGATE", b"MAX"],
        [b"ZDIFFSTORE", b"dst", b"1", b"a"], [b"ZINTERCARD", b"2", b"a", b"b", b"LIMIT", b"1"],
        [b"SINTERCARD", b"1", b"a"], [b"ZMPOP", b"2", b"a", b"b", b"MIN"],
        [b"BZMPOP", b"0", b"1", b"a", b"MAX", b"COUNT", b"2"], [b"SINTERSTORE", b"d", b"a", b"b"],
        [b"ZRANGESTORE", b"d", b"a", b"0", b"1"], [b"SMOVE", b"a", b"b", b"m"],
        [b"BZPOPMIN", b"a", b"b", b"0"],
    )
] + [
    # A user allowed keys a* only: every key of a movable-key command is checked.
    [b"ACL", b"SETUSER", b"limited", b"on", b"nopass", b"~a*", b"+@all"],
    [b"ZADD", b"a1", b"1", b"m"], [b"ZADD", b"secret", b"2", b"m"], [b"SADD", b"sset", b"m"],
    [b"AUTH", b"limited", b"x"],
    [b"ZUNION", b"2", b"a1", b"secret", b"WITHSCORES"], [b"ZUNION", b"1", b"a1"],
    [b"ZUNIONSTORE", b"a2", b"2", b"a1", b"secret"], [b"ZINTERCARD", b"1", b"secret"],
    [b"SINTERCARD", b"1", b"sset"], [b"SINTERSTORE", b"a3", b"sset"],
    [b"ZMPOP", b"2", b"a9", b"secret", b"MIN"], [b"ZRANGESTORE", b"a4", b"secret", b"0", b"-1"],
    [b"ZUNIONSTORE", b"secret", b"1", b"a1"], [b"ZMPOP", b"1", b"a1", b"MAX"],
    [b"AUTH", b"default", b"x"],
]


def test_movable_keys_are_found_for_getkeys_and_acl_like_redis(server, reference):
    differences = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        for client in (ours, theirs):
            client.call(b"SELECT", b"9")
            client.call(b"FLUSHDB")
        for command in KEYS_SCRIPT:
            mine, real = ours.call(*command), theirs.call(*command)
            if command[0] == b"AUTH" and command[1] == b"default":
                continue  # no password set: both refuse, in their own words
            if mine != real:
                differences.append((2, command, mine, real))
        for client in (ours, theirs):
            client.call(b"ACL", b"DELUSER", b"limited")
    assert not differences, _describe(differences)


def _hits_and_misses(client: RawClient) -> tuple[int, int]:
    import re

    info = client.call(b"INFO", b"stats")
    hits = re.search(rb"keyspace_hits:(\d+)", info)
    misses = re.search(rb"keyspace_misses:(\d+)", info)
    return int(hits.group(1)), int(misses.group(1))


LOOKUP_SCRIPT = [
    [b"SADD", b"s", b"a", b"b"], [b"SREM", b"s", b"x"], [b"SREM", b"nokey", b"x"],
    [b"SISMEMBER", b"s", b"a"], [b"SISMEMBER", b"nokey", b"a"], [b"SMISMEMBER", b"s", b"a"],
    [b"SCARD", b"nokey"], [b"SMEMBERS", b"s"], [b"SRANDMEMBER", b"s"],
    [b"SRANDMEMBER", b"nokey", b"2"], [b"SINTER", b"s", b"nokey"], [b"SUNION", b"s", b"s"],
    [b"SDIFF", b"nokey", b"s"], [b"SINTERCARD", b"2", b"s", b"nokey"],
    [b"SINTERSTORE", b"d", b"s", b"nokey"], [b"SUNIONSTORE", b"d", b"s"],
    [b"SDIFFSTORE", b"d", b"s", b"nokey"], [b"SMOVE", b"s", b"t", b"a"], [b"SSCAN", b"s", b"0"],
    [b"SSCAN", b"nokey", b"0"], [b"SPOP", b"nokey"],
    [b"ZADD", b"z", b"1", b"a", b"2", b"b"], [b"ZINCRBY", b"z", b"1", b"a"], [b"ZCARD", b"z"],
    [b"ZSCORE", b"nokey", b"a"], [b"ZMSCORE", b"z", b"a"], [b"ZRANK", b"z", b"a"],
    [b"ZCOUNT", b"z", b"-inf", b"+inf"], [b"ZLEXCOUNT", b"nokey", b"-", b"+"],
    [b"ZRANGE", b"z", b"0", b"-1"], [b"ZRANGESTORE", b"d2", b"z", b"0", b"-1"],
    [b"ZRANGESTORE", b"d2", b"nokey", b"0", b"-1"], [b"ZREVRANGEBYSCORE", b"z", b"+inf", b"0"],
    [b"ZUNION", b"2", b"z", b"nokey"], [b"ZUNIONSTORE", b"d3", b"2", b"z", b"nokey"],
    [b"ZINTERCARD", b"1", b"z"], [b"ZRANDMEMBER", b"z"], [b"ZRANDMEMBER", b"nokey", b"2"],
    [b"ZSCAN", b"z", b"0"], [b"ZREM", b"z", b"x"], [b"ZREMRANGEBYRANK", b"nokey", b"0", b"1"],
    [b"ZPOPMIN", b"nokey"], [b"ZMPOP", b"2", b"nokey", b"z", b"MIN"],
    [b"BZPOPMAX", b"z", b"0"], [b"ZPOPMAX", b"z"],
]


def test_read_lookups_count_keyspace_hits_and_misses_like_redis(server, reference):
    differences = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        for client in (ours, theirs):
            client.call(b"SELECT", b"9")
            client.call(b"FLUSHDB")
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
