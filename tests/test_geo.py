"""Geo: geohash arithmetic without I/O (Redis's scores, hashes and distances for known
places, the partial sort), then over real sockets: what GEOADD and a STORE propagate, WATCH
on a store's destination, MULTI, and geo sets surviving an AOF restart."""

from __future__ import annotations

import functools
import math
import random

import redis
from servers import ServerProcess, record_propagation
from trioredis import geohash as geo
from trioredis.commands import geo as geo_commands

PALERMO = (13.361389, 38.115556)
CATANIA = (15.087269, 37.502669)


def test_known_places_get_redis_scores_hashes_and_positions():
    # GEOADD / ZSCORE, GEOHASH and GEOPOS answers of Redis 7.0 for the documentation's example.
    assert geo.score_of(*PALERMO) == 3479099956230698
    assert geo.score_of(*CATANIA) == 3479447370796909
    assert geo.standard_geohash(3479099956230698) == b"sqc8b49rny0"
    assert geo.standard_geohash(3479447370796909) == b"sqdtr74hyu0"
    longitude, latitude = geo.position_of(3479099956230698)
    assert geo_commands.format_coordinate(longitude) == b"13.36138933897018433"
    assert geo_commands.format_coordinate(latitude) == b"38.11555639549629859"
    palermo = geo.position_of(3479099956230698)
    catania = geo.position_of(3479447370796909)
    assert geo_commands.format_distance(geo.distance(*palermo, *catania)) == b"166274.1516"


def test_coordinates_print_without_trailing_zeros_and_never_as_minus_zero():
    assert geo_commands.format_coordinate(1.5) == b"1.5"
    assert geo_commands.format_coordinate(-180.0) == b"-180"
    assert geo_commands.format_coordinate(-0.0) == b"0"
    assert geo_commands.format_coordinate(-1e-30) == b"0"


def test_the_supported_area_is_the_web_mercator_one():
    assert geo.encode(180.0, 85.05112878) is not None
    assert geo.encode(180.0000001, 0.0) is None
    assert geo.encode(0.0, -85.05112879) is None


def test_neighbours_surround_their_box():
    box = geo.encode(*PALERMO, 10)
    area = geo.decode(box)
    around = geo.neighbors(box)
    north, east = geo.decode(around["north"]), geo.decode(around["east"])
    assert math.isclose(north.lat_min, area.lat_max)
    assert math.isclose(east.long_min, area.long_max)
    assert geo.decode(around["north_east"]).lat_min == north.lat_min


def test_scores_that_were_never_geohashes_decode_as_redis_casts_them():
    # A score is any double a ZADD wrote; C's (uint64_t) cast of it on x86-64.
    assert geo.double_to_uint64(-1.0) == (1 << 64) - 1
    assert geo.double_to_uint64(math.inf) == 0
    assert geo.double_to_uint64(math.nan) == 1 << 63
    assert geo.double_to_uint64(2.0 ** 63) == 1 << 63
    for score in (-1.0, 1e20, math.inf, 4503599627370496.0):
        longitude, latitude = geo.position_of(score)
        assert geo.LONG_MIN <= longitude <= geo.LONG_MAX
        assert geo.LAT_MIN <= latitude <= geo.LAT_MAX


class _Item:
    def __init__(self, distance: float, label: int) -> None:
        self.distance = distance
        self.label = label


def test_the_partial_sort_puts_the_nearest_first_whatever_the_ties():
    rng = random.Random(8)
    for _ in range(300):
        size = rng.randint(1, 150)
        items = [_Item(float(rng.randint(0, rng.choice([3, 30, 1000]))), n) for n in range(size)]
        wanted = rng.randint(0, size - 1)
        compare = rng.choice([geo_commands._nearer_first, geo_commands._farther_first])
        expected = sorted(items, key=functools.cmp_to_key(compare))[: wanted + 1]
        geo_commands.partial_sort(items, compare, 0, wanted)
        assert [item.distance for item in items[: wanted + 1]] == [
            item.distance for item in expected]
        assert sorted(item.label for item in items) == list(range(size))


def test_search_boxes_cover_a_search_near_the_antimeridian():
    shape = geo.Shape(179.9, 10.0, 1000.0, radius=50.0)
    boxes = geo_commands.search_boxes_deduplicated(shape)
    assert 1 <= len(boxes) <= 9
    member_score = geo.score_of(-179.95, 10.0)
    assert any(low <= member_score < high for low, high in map(geo.box_scores, boxes))


# --- over sockets --------------------------------------------------------------------------


def test_geoadd_propagates_the_zadd_it_amounts_to(server):
    r = server.client()
    recorder = record_propagation(server)
    assert r.geoadd("g", [*PALERMO, "Palermo"], ch=True) == 1
    assert r.geoadd("g", [*PALERMO, "Palermo"]) == 0  # nothing changed: nothing propagated
    assert r.geoadd("g", [*CATANIA, "Catania"], xx=True) == 0
    assert recorder.argvs == [[b"ZADD", b"g", b"CH", b"3479099956230698", b"Palermo"]]
    assert r.zscore("g", "Palermo") == 3479099956230698.0


def test_a_store_propagates_the_set_it_made(server):
    r = server.client()
    r.geoadd("g", [*PALERMO, "Palermo", *CATANIA, "Catania"])
    r.set("dst", "old")
    recorder = record_propagation(server)
    assert r.geosearchstore("dst", "g", longitude=15, latitude=37, radius=200, unit="km",
                            storedist=True) == 2
    assert recorder.argvs[0] == [b"DEL", b"dst"]
    zadd = recorder.argvs[1]
    assert zadd[:2] == [b"ZADD", b"dst"] and set(zadd[3::2]) == {b"Palermo", b"Catania"}
    stored = dict(r.zrange("dst", 0, -1, withscores=True))
    assert {member: float(score) for score, member in zip(zadd[2::2], zadd[3::2], strict=True)
            } == stored
    recorder.seen.clear()
    assert r.georadius("g", 15, 37, 1, unit="m", store="dst") == 0
    assert recorder.argvs == [[b"DEL", b"dst"]]
    assert not r.exists("dst")


def test_watch_on_a_store_destination_aborts_the_transaction(server):
    r = server.client()
    r.geoadd("g", [*PALERMO, "Palermo"])
    with r.pipeline() as pipe:
        pipe.watch("dst")
        r.georadius("g", 13, 38, 100, unit="km", store="dst")
        pipe.multi()
        pipe.set("dst", "mine")
        try:
            pipe.execute()
            raise AssertionError("the transaction should have been aborted")
        except redis.WatchError:
            pass
    assert r.type("dst") == b"zset"


def test_geo_commands_inside_multi(server):
    r = server.client()
    with r.pipeline(transaction=True) as pipe:
        pipe.geoadd("g", [*PALERMO, "Palermo", *CATANIA, "Catania"])
        pipe.geodist("g", "Palermo", "Catania", unit="km")
        pipe.geosearch("g", member="Palermo", radius=200, unit="km", sort="ASC")
        assert pipe.execute() == [2, 166.2742, [b"Palermo", b"Catania"]]


def test_geo_sets_survive_a_restart_from_the_aof(tmp_path):
    options = [["appendonly", "yes"], ["save", ""]]
    rng = random.Random(9)
    with ServerProcess(str(tmp_path), options) as running:
        client = running.client()
        for number in range(300):
            client.geoadd("g", [rng.uniform(-180, 180), rng.uniform(-85, 85), f"m{number}"])
        client.geosearchstore("near", "g", longitude=0, latitude=0, radius=5000, unit="km")
        before = {key: client.zrange(key, 0, -1, withscores=True) for key in ("g", "near")}
    with ServerProcess(str(tmp_path), options) as restarted:
        client = restarted.client()
        assert {key: client.zrange(key, 0, -1, withscores=True) for key in before} == before
