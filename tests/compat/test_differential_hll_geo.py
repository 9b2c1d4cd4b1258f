"""Differential tests of HyperLogLog and geo commands: seeded random streams sent to our
server and to a real ``redis-server`` (7.0), every reply compared byte for byte, and the
stored values too (GET of each HLL after each step, ZSCORE/ZRANGE WITHSCORES of geo sets).

The HLL streams keep keys small often enough (a DEL now and then) to cover the sparse
encoding, the switch to dense and dense updates; the test asserts that all three happened.
Geo streams use random coordinates, some clustered so searches find tens to hundreds of
members, random radii and box sizes over six orders of magnitude, every option, and errors.
"""

from __future__ import annotations

import random

import parity
import pytest
from parity import RawClient

reference = parity.reference  # the real Redis, a module-scoped fixture

HLL_KEYS = [b"h1", b"h2", b"h3"]
GEO_KEYS = [b"g1", b"g2"]
MEMBERS = [b"m%d" % i for i in range(250)] + [b"7", b"-3", b"", b"x" * 70]


def _compare(ours: RawClient, theirs: RawClient, command: list[bytes], differences: list,
             label: object) -> tuple[bytes, bytes]:
    mine, real = ours.call(*command), theirs.call(*command)
    if mine != real:
        differences.append((label, command[:8], mine[:400], real[:400]))
    return mine, real


def _fresh(ours: RawClient, theirs: RawClient, protocol: int) -> None:
    for client in (ours, theirs):
        if protocol == 3:
            client.call(b"HELLO", b"3")
        client.call(b"SELECT", b"9")
        client.call(b"FLUSHDB")


# --- HyperLogLog ---------------------------------------------------------------------------


def _hll_command(rng: random.Random, step: int) -> list[bytes]:
    key = rng.choice(HLL_KEYS)
    roll = rng.random()
    if roll < 0.08:
        # A key that only grows (no DEL, never a PFMERGE target): PFADD switches it to dense.
        return [b"PFADD", b"grow", *[b"%d" % rng.randrange(10**6) for _ in range(40)]]
    roll = rng.random()
    if roll < 0.55:
        count = rng.choice([0, 1, 1, 1, 1, 2, 3, 8, 40, 150, 300])
        # A narrow range now and then: elements already counted (PFADD answers 0).
        top = rng.choice([50, 10**6])
        return [b"PFADD", key, *[b"%d" % rng.randrange(top) for _ in range(count)]]
    if roll < 0.68:
        return [b"PFCOUNT", key]
    if roll < 0.78:
        return [b"PFCOUNT", *rng.sample(HLL_KEYS + [b"missing", b"grow"], rng.randint(2, 4))]
    if roll < 0.84:
        return [b"PFMERGE", key, *rng.sample(HLL_KEYS + [b"missing", b"grow"], rng.randint(0, 3))]
    if roll < 0.9:
        # Conversions to dense are rare, so that sparse HLLs grow until PFADD switches them.
        sub = (rng.choice([b"GETREG", b"TODENSE", b"todense"]) if rng.random() < 0.1
               else rng.choice([b"ENCODING", b"DECODE", b"decode", b"NOPE"]))
        return [b"PFDEBUG", sub, rng.choice(HLL_KEYS + [b"missing"])]
    if roll < 0.91:
        return [b"DEL", key]
    if roll < 0.95:
        return [b"EXPIRE", key, b"1000"]
    if roll < 0.97:
        return [b"OBJECT", b"ENCODING", key]
    return [b"TTL", key]


def _run_hll_stream(seed: int, ours: RawClient, theirs: RawClient, protocol: int,
                    steps: int) -> tuple[list, set]:
    rng = random.Random(seed)
    differences: list = []
    seen: set = set()
    for step in range(steps):
        command = _hll_command(rng, step)
        before = theirs.call(b"PFDEBUG", b"ENCODING", command[1]) if command[0] == b"PFADD" else b""
        _compare(ours, theirs, command, differences, (seed, step))
        keys = [command[1]] if command[0] != b"PFDEBUG" else [command[2]]
        for key in keys:
            mine, real = _compare(ours, theirs, [b"GET", key], differences, (seed, step, "GET"))
            if real.startswith(b"$") and len(real) > 20:
                after = theirs.call(b"PFDEBUG", b"ENCODING", key)
                seen.add(after)
                if command[0] == b"PFADD" and before == b"+sparse\r\n" and after == b"+dense\r\n":
                    seen.add(b"switch")
    return differences, seen


@pytest.mark.parametrize("protocol", [2, 3])
def test_random_hll_streams_reply_and_store_the_bytes_redis_does(server, reference, protocol):
    differences: list = []
    seen: set = set()
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        _fresh(ours, theirs, protocol)
        for seed in range(1, 5):
            found, encodings = _run_hll_stream(seed + 10 * protocol, ours, theirs, protocol, 700)
            differences += found
            seen |= encodings
    assert not differences, differences[:5]
    assert {b"+sparse\r\n", b"+dense\r\n", b"switch"} <= seen, seen


def test_a_million_elements_count_and_store_like_redis(server, reference):
    differences: list = []
    rng = random.Random(1_000_000)
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        _fresh(ours, theirs, 2)
        for _batch in range(100):
            elements = [b"%x" % rng.getrandbits(48) for _ in range(10_000)]
            _compare(ours, theirs, [b"PFADD", b"big", *elements], differences, "pfadd")
        _compare(ours, theirs, [b"PFCOUNT", b"big"], differences, "count")
        _compare(ours, theirs, [b"GET", b"big"], differences, "bytes")
        _compare(ours, theirs, [b"PFADD", b"small", b"a", b"b", b"c"], differences, "small")
        _compare(ours, theirs, [b"PFCOUNT", b"big", b"small", b"none"], differences, "union")
        _compare(ours, theirs, [b"PFMERGE", b"merged", b"small", b"big"], differences, "merge")
        _compare(ours, theirs, [b"GET", b"merged"], differences, "merged bytes")
        count = theirs.call(b"PFCOUNT", b"big")
    assert not differences, differences
    assert 980_000 < int(count[1:]) < 1_020_000


def _corrupted(rng: random.Random, good: bytes) -> list[bytes]:
    """Strings that are no valid HLL, in the ways Redis checks (and can survive)."""
    return [
        b"HYL", b"HYLL", good[:15], b"HYLX" + good[4:], good[:4] + b"\x02" + good[5:],
        good[:4] + b"\x00" + good[5:],  # claims dense at a sparse length
        good[:-1],  # a sparse stream one opcode short of 16384 registers
        good + b"\x00",  # one register too many
    ]


def test_corrupt_and_foreign_strings_get_redis_errors(server, reference):
    differences: list = []
    rng = random.Random(7)
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        _fresh(ours, theirs, 2)
        theirs.call(b"PFADD", b"good", b"a", b"b", b"c")
        good = theirs.call(b"GET", b"good").split(b"\r\n", 1)[1][:-2]
        dense_good = None
        theirs.call(b"PFADD", b"dense", *[b"%d" % i for i in range(5000)])
        dense_good = theirs.call(b"GET", b"dense").split(b"\r\n", 1)[1][:-2]
        for index, bad in enumerate(_corrupted(rng, good) + [dense_good[:-1]]):
            for command in ([b"SET", b"bad", bad], [b"PFCOUNT", b"bad"],
                            [b"PFCOUNT", b"bad", b"missing"], [b"PFMERGE", b"out", b"bad"],
                            [b"PFDEBUG", b"GETREG", b"bad"], [b"PFDEBUG", b"DECODE", b"bad"],
                            [b"SET", b"bad", bad], [b"PFDEBUG", b"TODENSE", b"bad"],
                            [b"SET", b"bad", bad], [b"PFADD", b"bad", b"zz"],
                            [b"GET", b"bad"], [b"EXISTS", b"out"]):
                _compare(ours, theirs, command, differences, index)
        for command in ([b"SET", b"dense", dense_good], [b"PFDEBUG", b"DECODE", b"dense"],
                        [b"SET", b"good", good], [b"PFDEBUG", b"ENCODING", b"good"],
                        [b"PFDEBUG", b"DECODE", b"good"], [b"PFCOUNT", b"good", b"dense"],
                        [b"LPUSH", b"list", b"x"], [b"PFADD", b"list", b"a"],
                        [b"PFCOUNT", b"list"], [b"PFCOUNT", b"good", b"list"],
                        [b"PFMERGE", b"list", b"good"], [b"PFMERGE", b"good", b"list"],
                        [b"PFDEBUG", b"GETREG", b"list"], [b"PFDEBUG", b"GETREG", b"nokey"],
                        [b"PFDEBUG", b"FOO", b"good"], [b"PFDEBUG", b"FOO", b"nokey"],
                        [b"PFDEBUG", b"GETREG"], [b"PFDEBUG", b"GETREG", b"good", b"x"],
                        [b"PFADD"], [b"PFCOUNT"], [b"PFMERGE"], [b"PFSELFTEST", b"x"],
                        [b"SET", b"int", b"12345"], [b"PFADD", b"int", b"a"],
                        [b"PFADD", b"new"], [b"GET", b"new"], [b"PFADD", b"new"],
                        [b"PFMERGE", b"empty"], [b"GET", b"empty"], [b"PFCOUNT", b"empty"],
                        [b"GET", b"empty"]):
            _compare(ours, theirs, command, differences, "misc")
    assert not differences, differences[:5]


def test_hll_in_multi_and_its_notifications_match_redis(server, reference):
    script = [[b"MULTI"], [b"PFADD", b"h", b"a", b"b"], [b"PFCOUNT", b"h"], [b"PFCOUNT", b"h"],
              [b"PFMERGE", b"h2", b"h"], [b"PFADD", b"h", b"a"], [b"PFADD", b"h", b"zz"],
              [b"EXEC"], [b"GET", b"h2"], [b"PFDEBUG", b"TODENSE", b"h2"]]
    assert parity.compare_scripts(server.port, reference.port, script) == []
    assert parity.keyspace_events(server.port, script) == parity.keyspace_events(reference.port, script)


# --- geo -----------------------------------------------------------------------------------

UNITS = {b"m": 1.0, b"km": 1000.0, b"mi": 1609.34, b"ft": 0.3048}
CENTRE = (13.4, 38.1)


def _coordinates(rng: random.Random) -> tuple[bytes, bytes]:
    roll = rng.random()
    if roll < 0.05:  # one spot for many members: equal distances, sorted as Redis sorts them
        return b"%.6f" % CENTRE[0], b"%.6f" % CENTRE[1]
    if roll < 0.55:  # a cluster: searches around it find many members
        return (b"%.6f" % (CENTRE[0] + rng.gauss(0, 0.5)),
                b"%.6f" % (CENTRE[1] + rng.gauss(0, 0.5)))
    if roll < 0.6:  # the edges of the supported area
        return (rng.choice([b"180", b"-180", b"179.999999", b"0"]),
                rng.choice([b"85.05112878", b"-85.05112878", b"85", b"-0.000001"]))
    return b"%.6f" % rng.uniform(-180, 180), b"%.6f" % rng.uniform(-85.05112878, 85.05112878)


def _bad_coordinates(rng: random.Random) -> tuple[bytes, bytes]:
    return rng.choice([(b"181", b"0"), (b"0", b"86"), (b"abc", b"1"), (b"1", b""),
                       (b"nan", b"0"), (b"inf", b"0"), (b"-180.0000001", b"0")])


def _search_options(rng: random.Random, storing: bool) -> list[bytes]:
    options: list[bytes] = []
    choices = [b"ASC", b"DESC", b"COUNT"]
    if not storing or rng.random() < 0.05:
        choices += [b"WITHDIST", b"WITHHASH", b"WITHCOORD"]
    for option in rng.sample(choices, rng.randint(0, len(choices))):
        if option == b"COUNT":
            count = rng.choice([b"1", b"3", b"10", b"50", b"1000", b"0", b"-1", b"x"]
                               if rng.random() < 0.1 else [b"1", b"3", b"10", b"50", b"1000"])
            options += [b"COUNT", count]
            if rng.random() < 0.3:
                options.append(b"ANY")
        else:
            options.append(option)
    if rng.random() < 0.03:
        options.append(rng.choice([b"ANY", b"STORE", b"BOGUS", b"COUNT"]))
    return options


def _radius(rng: random.Random) -> tuple[bytes, bytes]:
    unit = rng.choice(list(UNITS))
    meters = 10 ** rng.uniform(0, 7.3)
    if rng.random() < 0.03:
        return rng.choice([b"-1", b"x", b"0", b"inf"]), unit
    if rng.random() < 0.02:
        return b"10", rng.choice([b"yards", b"KM", b"M"])
    return b"%.4f" % (meters / UNITS[unit]), unit


def _geo_command(rng: random.Random) -> list[bytes]:
    key = rng.choice(GEO_KEYS + [b"str"] if rng.random() < 0.03 else GEO_KEYS)
    roll = rng.random()
    if roll < 0.3:
        command = [b"GEOADD", key]
        for option in (b"NX", b"XX", b"CH"):
            if rng.random() < 0.1:
                command.append(option)
        for _ in range(rng.randint(1, 6)):
            longitude, latitude = (_bad_coordinates(rng) if rng.random() < 0.02
                                   else _coordinates(rng))
            command += [longitude, latitude, rng.choice(MEMBERS)]
        if rng.random() < 0.02:
            command.pop()
        return command
    if roll < 0.36:
        return [b"GEOPOS", key, *rng.sample(MEMBERS, 3)]
    if roll < 0.4:
        return [b"GEOHASH", key, *rng.sample(MEMBERS, 3)]
    if roll < 0.46:
        unit = [rng.choice(list(UNITS) + [b"KM", b"yd"])] if rng.random() < 0.5 else []
        return [b"GEODIST", key, *rng.sample(MEMBERS, 2), *unit]
    if roll < 0.48:
        return [b"ZADD", key, rng.choice([b"-1", b"1e20", b"4503599627370496", b"inf", b"12"]),
                rng.choice(MEMBERS)]
    radius, unit = _radius(rng)
    longitude, latitude = _coordinates(rng) if rng.random() < 0.97 else _bad_coordinates(rng)
    member = rng.choice(MEMBERS)
    kind = rng.randrange(8)
    if kind == 0:
        return [b"GEORADIUS", key, longitude, latitude, radius, unit,
                *_search_options(rng, False)]
    if kind == 1:
        return [b"GEORADIUSBYMEMBER_RO", key, member, radius, unit, *_search_options(rng, False)]
    if kind == 2:
        return [b"GEORADIUS", key, longitude, latitude, radius, unit,
                rng.choice([b"STORE", b"STOREDIST"]), b"dst", *_search_options(rng, True)]
    if kind == 3:
        return [b"GEORADIUSBYMEMBER", key, member, radius, unit,
                *_search_options(rng, True), rng.choice([b"STORE", b"STOREDIST"]), b"dst"]
    origin = ([b"FROMLONLAT", longitude, latitude] if rng.random() < 0.6
              else [b"FROMMEMBER", member])
    width, _ = _radius(rng)
    height, _ = _radius(rng)
    shape = ([b"BYRADIUS", radius, unit] if rng.random() < 0.5
             else [b"BYBOX", width, height, unit])
    parts = [origin, shape]
    rng.shuffle(parts)
    if rng.random() < 0.03:
        parts.pop(rng.randrange(2))
    if kind in (4, 5, 6):
        return [rng.choice([b"GEOSEARCH", b"geosearch"]), key,
                *[word for part in parts for word in part], *_search_options(rng, False)]
    storedist = [b"STOREDIST"] if rng.random() < 0.5 else []
    return [b"GEOSEARCHSTORE", b"dst", key, *[word for part in parts for word in part],
            *_search_options(rng, True), *storedist]


@pytest.mark.parametrize("protocol", [2, 3])
def test_random_geo_streams_reply_and_score_like_redis(server, reference, protocol):
    differences: list = []
    found = 0
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        _fresh(ours, theirs, protocol)
        for seed in range(1, 4):
            rng = random.Random(seed * 100 + protocol)
            ours.call(b"DEL", *GEO_KEYS)
            theirs.call(b"DEL", *GEO_KEYS)
            ours.call(b"SET", b"str", b"x")
            theirs.call(b"SET", b"str", b"x")
            for step in range(900):
                command = _geo_command(rng)
                _mine, real = _compare(ours, theirs, command, differences, (seed, step))
                if real.startswith(b"*") and real[1:2] not in (b"0", b"-"):
                    found = max(found, int(real[1:real.index(b"\r\n")]))
                if command[0] == b"GEOADD":
                    for member in command[4::3]:
                        _compare(ours, theirs, [b"ZSCORE", command[1], member], differences,
                                 (seed, step, "ZSCORE"))
                if command[0] == b"GEOSEARCHSTORE" or b"dst" in command[5:]:
                    _compare(ours, theirs, [b"ZRANGE", b"dst", b"0", b"-1", b"WITHSCORES"],
                             differences, (seed, step, "stored"))
                    _compare(ours, theirs, [b"OBJECT", b"ENCODING", b"dst"], differences,
                             (seed, step, "encoding"))
            for key in GEO_KEYS:
                _compare(ours, theirs, [b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"],
                         differences, (seed, "final"))
    assert not differences, differences[:5]
    assert found >= 100  # some searches found a hundred members or more


GEO_ERRORS = [
    [b"GEOADD", b"g", b"1", b"2"], [b"GEOADD", b"g", b"NX", b"XX", b"1", b"2", b"m"],
    [b"GEOADD", b"g", b"CH", b"NX", b"1"], [b"GEOADD", b"g", b"ch", b"nx", b"ch"],
    [b"GEOADD", b"g", b"200", b"1", b"m"], [b"GEOADD", b"g", b"1", b"90", b"m"],
    [b"GEOADD", b"g", b"x", b"1", b"m"], [b"GEOADD", b"g", b"1", b"1", b"m", b"2"],
    [b"GEOADD", b"g", b"13.361389", b"38.115556", b"Palermo", b"15.087269", b"37.502669",
     b"Catania"],
    [b"GEOADD", b"g", b"XX", b"1", b"1", b"new"], [b"GEOADD", b"g", b"XX", b"CH", b"1", b"1",
                                                   b"Palermo"],
    [b"GEOADD", b"g", b"NX", b"CH", b"2", b"2", b"Palermo", b"3", b"3", b"Other"],
    [b"GEODIST", b"g", b"Palermo", b"Catania"], [b"GEODIST", b"g", b"Palermo", b"Catania", b"km"],
    [b"GEODIST", b"g", b"Palermo", b"Catania", b"yd"], [b"GEODIST", b"g", b"Palermo", b"x"],
    [b"GEODIST", b"nokey", b"a", b"b"], [b"GEODIST", b"g", b"a", b"b", b"km", b"x"],
    [b"GEOPOS", b"g", b"Palermo", b"none"], [b"GEOPOS", b"nokey", b"a"], [b"GEOPOS", b"g"],
    [b"GEOHASH", b"g", b"Palermo", b"Catania", b"none"], [b"GEOHASH", b"nokey", b"a"],
    [b"GEORADIUS", b"g", b"15", b"37", b"200", b"km", b"WITHDIST", b"STORE", b"x"],
    [b"GEORADIUS", b"g", b"15", b"37", b"200", b"km", b"ANY"],
    [b"GEORADIUS", b"g", b"15", b"37", b"200", b"km", b"COUNT", b"0"],
    [b"GEORADIUS", b"g", b"15", b"37", b"200", b"km", b"COUNT"],
    [b"GEORADIUS", b"g", b"15", b"37", b"-1", b"km"], [b"GEORADIUS", b"g", b"15", b"37", b"x", b"km"],
    [b"GEORADIUS", b"g", b"15", b"37", b"1", b"parsec"],
    [b"GEORADIUS", b"nokey", b"15", b"37", b"1", b"km", b"STORE", b"g2"],
    [b"GEORADIUS_RO", b"g", b"15", b"37", b"200", b"km", b"STORE", b"x"],
    [b"GEORADIUSBYMEMBER", b"g", b"none", b"1", b"km"],
    [b"GEORADIUSBYMEMBER", b"nokey", b"none", b"x", b"km"],
    [b"GEORADIUSBYMEMBER", b"g", b"Palermo", b"200", b"km", b"STOREDIST", b"d", b"COUNT", b"1"],
    [b"ZRANGE", b"d", b"0", b"-1", b"WITHSCORES"],
    [b"GEOSEARCH", b"g", b"BYRADIUS", b"1", b"km"], [b"GEOSEARCH", b"g", b"FROMMEMBER", b"Palermo"],
    [b"GEOSEARCH", b"g", b"FROMMEMBER", b"Palermo", b"FROMLONLAT", b"1", b"1", b"BYRADIUS",
     b"1", b"km"],
    [b"GEOSEARCH", b"g", b"FROMLONLAT", b"1", b"1", b"FROMMEMBER", b"Palermo", b"BYRADIUS",
     b"1", b"km"],
    [b"GEOSEARCH", b"g", b"FROMMEMBER", b"Palermo", b"BYRADIUS", b"1", b"km", b"BYBOX", b"1",
     b"1", b"km"],
    [b"GEOSEARCH", b"g", b"FROMMEMBER", b"Palermo", b"BYBOX", b"-1", b"1", b"km"],
    [b"GEOSEARCH", b"g", b"FROMMEMBER", b"Palermo", b"BYBOX", b"x", b"1", b"km"],
    [b"GEOSEARCH", b"g", b"FROMMEMBER", b"Palermo", b"BYBOX", b"1", b"y", b"km"],
    [b"GEOSEARCH", b"g", b"FROMMEMBER", b"none", b"BYRADIUS", b"1", b"km"],
    [b"GEOSEARCH", b"nokey", b"FROMMEMBER", b"none", b"BYRADIUS", b"1", b"km"],
    [b"GEOSEARCH", b"g", b"FROMMEMBER", b"Palermo", b"BYRADIUS", b"300", b"km", b"STOREDIST"],
    [b"GEOSEARCH", b"g", b"FROMMEMBER", b"Palermo", b"BYRADIUS", b"300", b"km", b"WITHCOORD",
     b"WITHDIST", b"WITHHASH", b"DESC"],
    [b"GeoSearch", b"g", b"FROMLONLAT", b"15", b"37", b"COUNT", b"1"],
    [b"GEOSEARCHSTORE", b"d", b"g", b"FROMLONLAT", b"15", b"37", b"BYRADIUS", b"300", b"km",
     b"WITHDIST"],
    [b"GEOSEARCHSTORE", b"d", b"g", b"FROMLONLAT", b"15", b"37", b"BYRADIUS", b"300", b"km",
     b"STORE", b"x"],
    [b"GEOSEARCHSTORE", b"d", b"g", b"FROMLONLAT", b"15", b"37", b"BYBOX", b"400", b"400",
     b"km", b"STOREDIST"], [b"ZRANGE", b"d", b"0", b"-1", b"WITHSCORES"],
    [b"GEOSEARCHSTORE", b"d", b"g", b"FROMLONLAT", b"15", b"37", b"BYRADIUS", b"1", b"m"],
    [b"EXISTS", b"d"], [b"SET", b"s", b"x"], [b"GEOADD", b"s", b"1", b"1", b"m"],
    [b"GEOPOS", b"s", b"m"], [b"GEOSEARCH", b"s", b"FROMLONLAT", b"1", b"1", b"BYRADIUS", b"1",
                             b"m"],
    [b"GEORADIUS", b"s", b"1", b"1", b"1", b"m"], [b"GEODIST", b"s", b"a", b"b", b"yd"],
    [b"MULTI"], [b"GEOADD", b"t", b"1", b"1", b"a"], [b"GEOPOS", b"t", b"a"],
    [b"GEOSEARCHSTORE", b"u", b"t", b"FROMMEMBER", b"a", b"BYRADIUS", b"1", b"km"], [b"EXEC"],
    [b"ZRANGE", b"u", b"0", b"-1", b"WITHSCORES"],
]


def test_geo_errors_edges_and_multi_reply_like_redis(server, reference):
    assert parity.compare_scripts(server.port, reference.port, GEO_ERRORS) == []


def test_geo_notifications_match_redis(server, reference):
    script = [command for command in GEO_ERRORS if command[0] not in (b"MULTI", b"EXEC")]
    assert parity.keyspace_events(server.port, script) == parity.keyspace_events(reference.port, script)


GEO_HLL_COMMANDS = ["pfadd", "pfcount", "pfmerge", "pfdebug", "pfselftest", "geoadd", "geodist",
                    "geohash", "geopos", "geosearch", "geosearchstore", "georadius",
                    "georadiusbymember", "georadius_ro", "georadiusbymember_ro"]


@pytest.mark.parametrize("name", GEO_HLL_COMMANDS)
def test_command_info_names_the_arity_flags_and_keys_redis_does(server, reference, name):
    """Everything before the tips (name, arity, flags, key positions, ACL categories) is
    the same bytes as Redis's COMMAND INFO."""
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        mine = ours.call(b"COMMAND", b"INFO", name)
        real = theirs.call(b"COMMAND", b"INFO", name)
    # Key spec notes are prose, ours in our own words (PFCOUNT's): set aside.
    from test_server_commands import without_notes

    mine, real = without_notes(mine), without_notes(real)
    head = mine.split(b"*0\r\n*0\r\n*0\r\n")[0]
    assert real.startswith(head), (mine, real)
    assert head.count(b"\r\n") > 8


def test_command_getkeys_of_geo_stores_like_redis(server, reference):
    script = [[b"COMMAND", b"GETKEYS", *command] for command in (
        [b"GEORADIUS", b"src", b"1", b"1", b"1", b"km", b"STORE", b"dst"],
        [b"GEORADIUSBYMEMBER", b"src", b"m", b"1", b"km", b"STOREDIST", b"dst", b"STORE", b"d2"],
        [b"GEOSEARCHSTORE", b"dst", b"src", b"FROMMEMBER", b"m", b"BYRADIUS", b"1", b"km"],
        [b"PFCOUNT", b"a", b"b"], [b"PFMERGE", b"d", b"a", b"b"], [b"PFDEBUG", b"GETREG", b"k"],
    )]
    assert parity.compare_scripts(server.port, reference.port, script) == []


def test_equal_distances_under_count_come_out_in_redis_order(server, reference):
    """Members sharing a few spots: COUNT N of more matches is Redis's partial quicksort,
    whose order among equal distances the replies show."""
    rng = random.Random(5)
    spots = [(13.0 + rng.random(), 38.0 + rng.random()) for _ in range(6)]
    script: list[list[bytes]] = []
    for number in range(400):
        longitude, latitude = rng.choice(spots)
        script.append([b"GEOADD", b"ties", b"%.6f" % longitude, b"%.6f" % latitude,
                       b"p%d" % number])
    for _ in range(60):
        count = rng.choice([1, 2, 5, 7, 8, 30, 41, 100, 399, 400, 500])
        script.append([b"GEOSEARCH", b"ties", b"FROMLONLAT", b"13.5", b"38.5", b"BYRADIUS",
                       b"500", b"km", rng.choice([b"ASC", b"DESC"]), b"COUNT", b"%d" % count,
                       b"WITHDIST"])
    assert parity.compare_scripts(server.port, reference.port, script) == []


def test_hostile_radii_counts_and_foreign_scores_reply_like_redis(server, reference):
    """Infinite and huge areas (every box at the coarsest step), the largest COUNT, and
    members whose scores were never geohashes (negative, huge, infinite: Redis decodes C's
    cast of them)."""
    rng = random.Random(3)
    script = [[b"GEOADD", b"g", b"%.5f" % rng.uniform(-180, 180), b"%.5f" % rng.uniform(-85, 85),
               b"m%d" % number] for number in range(300)]
    script.append([b"ZADD", b"g", b"-5", b"neg", b"1e30", b"huge", b"inf", b"infm",
                   b"4503599627370496", b"top"])
    around = [b"GEOSEARCH", b"g", b"FROMLONLAT", b"0", b"0"]
    script += [
        [*around, b"BYRADIUS", b"inf", b"m", b"COUNT", b"5", b"WITHCOORD"],
        [*around, b"BYRADIUS", b"1e308", b"km", b"COUNT", b"5"],
        [*around, b"BYBOX", b"inf", b"inf", b"m", b"COUNT", b"5", b"DESC"],
        [*around, b"BYRADIUS", b"0", b"m"],
        [*around, b"BYRADIUS", b"20000", b"km", b"COUNT", b"9223372036854775807"],
        [*around, b"BYRADIUS", b"20000", b"km", b"COUNT", b"9223372036854775808"],
        [b"GEOSEARCH", b"g", b"FROMLONLAT", b"179.99", b"85", b"BYBOX", b"1e7", b"10", b"m",
         b"WITHDIST"],
        [b"GEOPOS", b"g", b"neg", b"huge", b"infm", b"top"],
        [b"GEOHASH", b"g", b"neg", b"huge", b"infm", b"top"], [b"GEODIST", b"g", b"neg", b"huge"],
        [b"GEOSEARCH", b"g", b"FROMMEMBER", b"huge", b"BYRADIUS", b"100", b"km", b"WITHCOORD",
         b"WITHHASH"],
        [b"GEORADIUSBYMEMBER", b"g", b"infm", b"1", b"km", b"WITHCOORD"],
        [b"GEOSEARCH", b"g", b"FROMLONLAT", b"-180", b"-85.05112878", b"BYRADIUS", b"500", b"km",
         b"WITHCOORD", b"ASC"],
        [b"GEOSEARCH", b"g", b"FROMLONLAT", b"180", b"85.05112878", b"BYBOX", b"5000", b"5000",
         b"km", b"WITHCOORD", b"ASC"],
    ]
    assert parity.compare_scripts(server.port, reference.port, script) == []


def _mutated(rng: random.Random, bases: list[bytes]) -> bytes:
    value = bytearray(rng.choice(bases))
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(16, len(value)) if len(value) > 16 else 16
        roll = rng.random()
        if roll < 0.5 and len(value) > 16:
            value[position] = rng.randrange(256)
        elif roll < 0.75:
            value.insert(position, rng.randrange(256))
        elif len(value) > 17:
            del value[position]
    return bytes(value)


def test_mutated_hll_strings_read_and_write_like_redis(server, reference):
    """Random byte changes to sparse and dense HLLs (Debian's 7.0.15 has the CVE-2025-32023
    checks): every PF command's reply and the bytes left behind match.  Left out: a sparse
    stream cut in the middle of its last XZERO, where Redis reads past the string's end
    whatever earlier writes left in its buffer."""
    from trioredis import hyperloglog as hll

    rng = random.Random(11)
    bases = []
    for size in (1, 5, 50, 300, 1500, 5000):
        data = hll.new_sparse()
        for _ in range(size):
            _changed, data = hll.add(data, b"%d" % rng.randrange(10**9), hll.SPARSE_MAX_BYTES)
        bases.append(bytes(data))
    differences: list = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        _fresh(ours, theirs, 2)
        tried = 0
        while tried < 300:
            value = _mutated(rng, bases)
            if hll._xzero_starts(value) is None:
                continue
            tried += 1
            for command in ([b"SET", b"x", value], [b"PFCOUNT", b"x"], [b"PFCOUNT", b"x", b"x"],
                            [b"PFDEBUG", b"DECODE", b"x"], [b"PFADD", b"x", b"a", b"b", b"c"],
                            [b"GET", b"x"], [b"PFMERGE", b"y", b"x"], [b"GET", b"y"],
                            [b"DEL", b"y"], [b"SET", b"x", value], [b"PFDEBUG", b"TODENSE", b"x"],
                            [b"GET", b"x"], [b"SET", b"x", value],
                            [b"PFADD", b"x", *[b"%d" % n for n in range(200)]], [b"GET", b"x"]):
                _compare(ours, theirs, command, differences, tried)
    assert not differences, differences[:3]


@pytest.mark.parametrize("limit", [b"0", b"40", b"300", b"5000"])
def test_hll_sparse_max_bytes_decides_the_switch_as_in_redis(server, reference, limit):
    """CONFIG SET hll-sparse-max-bytes on both: PFADD one element at a time, the bytes of
    every step compared (the switch to dense happens at the same PFADD)."""
    rng = random.Random(int(limit))
    differences: list = []
    with RawClient(server.port) as ours, RawClient(reference.port) as theirs:
        _fresh(ours, theirs, 2)
        try:
            _compare(ours, theirs, [b"CONFIG", b"SET", b"hll-sparse-max-bytes", limit],
                     differences, "config")
            for step in range(400):
                element = b"%d" % rng.randrange(10**9)
                _compare(ours, theirs, [b"PFADD", b"h", element], differences, step)
                _compare(ours, theirs, [b"GET", b"h"], differences, (step, "GET"))
            _compare(ours, theirs, [b"PFMERGE", b"m", b"h"], differences, "merge")
            _compare(ours, theirs, [b"GET", b"m"], differences, "merged")
        finally:
            for client in (ours, theirs):
                client.call(b"CONFIG", b"SET", b"hll-sparse-max-bytes", b"3000")
    assert not differences, differences[:3]
