"""Geo commands on sorted sets (Redis 7.0's ``geo.c``): GEOADD GEODIST GEOHASH GEOPOS
GEOSEARCH GEOSEARCHSTORE GEORADIUS GEORADIUSBYMEMBER and their ``_RO`` forms.

A member's position is its score: the 52-bit geohash of :mod:`trioredis.geohash`, so ZSCORE,
ZRANGE and everything else of a sorted set work on geo sets, and the scores equal Redis's.

Replies as Redis formats them: distances as ``%.4f`` bulk strings (in both protocols),
coordinates with 17 decimals and the trailing zeros cut (a bulk string under RESP2, a double
under RESP3), WITHHASH as an integer.

Propagation: GEOADD is propagated as the ZADD it amounts to (``ZADD key [NX|XX] [CH] score
member ...``), as Redis does.  A STORE (GEOSEARCHSTORE, GEORADIUS ... STORE/STOREDIST) is
propagated as what it did rather than as sent: ``DEL dest`` then ``ZADD dest`` with the
stored scores, or ``DEL dest`` when the result was empty and the key existed (Redis 7.0 sends
the command itself, which replays to the same set).  Keyspace notifications: ``zadd`` from
GEOADD, ``geosearchstore`` / ``georadiusstore`` (class ``z``) for a store, ``del`` when a
store emptied its destination.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import errors
from .. import geohash as geo
from ..errors import CommandError
from ..resp import EMPTY_ARRAY, NULL_ARRAY, Raw, format_double
from ..zset import ZSet, parse_double
from . import command
from .args import parse_int
from .keys import read_key
from .sets import notify
from .zsets import _zadd_generic

UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}
BAD_UNIT = "ERR unsupported unit provided. please use M, KM, FT, MI"
NEGATIVE_RADIUS = "ERR radius cannot be negative"
NEGATIVE_BOX = "ERR height or width cannot be negative"
BAD_MEMBER = "ERR could not decode requested zset member"
COUNT_POSITIVE = "ERR COUNT must be > 0"
ANY_NEEDS_COUNT = "ERR the ANY argument requires COUNT argument"
STORE_WITH_OPTIONS = "ERR {} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"

# How a search command reads its arguments (Redis's georadiusGeneric flags).
RADIUS_COORDS = 1  # GEORADIUS: key longitude latitude radius unit
RADIUS_MEMBER = 2  # GEORADIUSBYMEMBER: key member radius unit
NO_STORE = 4  # the _RO forms
SEARCH = 8  # GEOSEARCH: FROMMEMBER/FROMLONLAT and BYRADIUS/BYBOX options
SEARCH_STORE = 16  # GEOSEARCHSTORE: destination first, STOREDIST a flag


def _zset(ctx, key: bytes) -> ZSet | None:
    value = read_key(ctx, key)
    if value is not None and value.__class__ is not ZSet:
        raise CommandError(errors.WRONGTYPE)
    return value


def _lonlat(raw_long: bytes, raw_lat: bytes) -> tuple[float, float]:
    """A position argument pair: both numbers first, then the range check."""
    longitude = parse_double(raw_long)
    latitude = parse_double(raw_lat)
    if (longitude < geo.LONG_MIN or longitude > geo.LONG_MAX
            or latitude < geo.LAT_MIN or latitude > geo.LAT_MAX):
        raise CommandError(
            f"ERR invalid longitude,latitude pair {longitude:f},{latitude:f}")
    return longitude, latitude


def _unit(raw: bytes) -> float:
    factor = UNITS.get(raw.lower())
    if factor is None:
        raise CommandError(BAD_UNIT)
    return factor


def _distance_arg(raw_radius: bytes, raw_unit: bytes) -> tuple[float, float]:
    """(radius, meters per unit) of ``<radius> <unit>``."""
    radius = parse_double(raw_radius, "ERR need numeric radius")
    if radius < 0:
        raise CommandError(NEGATIVE_RADIUS)
    return radius, _unit(raw_unit)


def _member_position(zset: ZSet, member: bytes) -> tuple[float, float]:
    score = zset.score(member)
    if score is None:
        raise CommandError(BAD_MEMBER)
    return geo.position_of(score)


def format_distance(meters: float) -> bytes:
    return b"%.4f" % meters


def format_coordinate(value: float) -> bytes:
    """Redis's "human" long double: 17 decimals, trailing zeros and a bare dot removed."""
    text = b"%.17f" % value
    if b"." in text:
        text = text.rstrip(b"0").rstrip(b".")
    return b"0" if text == b"-0" else text


def _coordinate_reply(ctx, value: float) -> Any:
    text = format_coordinate(value)
    return Raw(b",%b\r\n" % text) if ctx.client.resp3 else text


# --- GEOADD --------------------------------------------------------------------------------


def geoadd(ctx, argv):
    """GEOADD key [NX|XX] [CH] longitude latitude member ...: the ZADD of the members'
    scores (its reply, its notification, and what is propagated)."""
    index = 2
    nx = xx = False
    while index < len(argv):
        option = argv[index].lower()
        if option == b"nx":
            nx = True
        elif option == b"xx":
            xx = True
        elif option != b"ch":
            break
        index += 1
    if (len(argv) - index) % 3 or (nx and xx):
        raise CommandError(errors.SYNTAX)
    zadd_argv = [b"ZADD", *argv[1:index]]
    for position in range(index, len(argv), 3):
        longitude, latitude = _lonlat(argv[position], argv[position + 1])
        zadd_argv.append(b"%d" % geo.score_of(longitude, latitude))
        zadd_argv.append(argv[position + 2])
    reply = _zadd_generic(ctx, zadd_argv, False)
    if ctx.dirty:
        ctx.propagate(zadd_argv)
    return reply


# --- reading positions ---------------------------------------------------------------------


def geodist(ctx, argv):
    factor = 1.0
    if len(argv) == 5:
        factor = _unit(argv[4])
    elif len(argv) > 5:
        raise CommandError(errors.SYNTAX)
    zset = _zset(ctx, argv[1])
    if zset is None:
        return None
    first, second = zset.score(argv[2]), zset.score(argv[3])
    if first is None or second is None:
        return None
    lon1, lat1 = geo.position_of(first)
    lon2, lat2 = geo.position_of(second)
    return format_distance(geo.distance(lon1, lat1, lon2, lat2) / factor)


def geohash_(ctx, argv):
    zset = _zset(ctx, argv[1])
    replies: list[Any] = []
    for member in argv[2:]:
        score = zset.score(member) if zset is not None else None
        replies.append(None if score is None else geo.standard_geohash(score))
    return replies


def geopos(ctx, argv):
    zset = _zset(ctx, argv[1])
    replies: list[Any] = []
    for member in argv[2:]:
        score = zset.score(member) if zset is not None else None
        if score is None:
            replies.append(NULL_ARRAY)
            continue
        longitude, latitude = geo.position_of(score)
        replies.append([_coordinate_reply(ctx, longitude), _coordinate_reply(ctx, latitude)])
    return replies


# --- searches ------------------------------------------------------------------------------


class _Point:
    __slots__ = ("member", "score", "longitude", "latitude", "distance")

    def __init__(self, member: bytes, score: float, longitude: float, latitude: float,
                 distance: float) -> None:
        self.member = member
        self.score = score
        self.longitude = longitude
        self.latitude = latitude
        self.distance = distance


def _points_in_shape(zset: ZSet, shape: geo.Shape, limit: int) -> list[_Point]:
    """The members inside the shape, box by box in Redis's order (centre, N, S, E, W, NE,
    NW, SE, SW), each box in score order; with a ``limit`` (COUNT ANY) the walk stops once
    that many are found."""
    boxes = search_boxes_deduplicated(shape)
    found: list[_Point] = []
    ordered = zset.ordered
    for box in boxes:
        if limit and found and len(found) >= limit:
            break
        low, high = geo.box_scores(box)
        start = ordered.bisect_left((float(low), b""))
        for score, member in ordered.islice(start):
            if score >= high:
                break
            longitude, latitude = geo.position_of(score)
            meters = shape.contains(longitude, latitude)
            if meters is not None:
                found.append(_Point(member, score, longitude, latitude, meters))
            if limit and found and len(found) >= limit:
                break
    return found


def search_boxes_deduplicated(shape: geo.Shape) -> list[geo.Hash]:
    """The boxes to scan: zeroed ones skipped, and (for huge radii, where neighbours
    coincide) one equal to the last scanned box other than the centre skipped too."""
    boxes = geo.search_boxes(shape)
    scanned: list[geo.Hash] = []
    last = 0
    for index, box in enumerate(boxes):
        if box == geo.ZERO:
            continue
        if last and box == boxes[last]:
            continue
        scanned.append(box)
        last = index
    return scanned


@dataclass(slots=True)
class _GeoQuery:
    """What a GEORADIUS*/GEOSEARCH* call asks for, as parsed (Redis's georadiusGeneric
    locals)."""

    store_key: bytes | None = None
    store_dist: bool = False
    center: tuple[float, float] | None = None
    radius: float = 0.0
    width: float = 0.0
    height: float = 0.0
    conversion: float = 1.0
    is_box: bool = False
    with_dist: bool = False
    with_hash: bool = False
    with_coord: bool = False
    from_member: bool = False
    from_lonlat: bool = False
    by_radius: bool = False
    by_box: bool = False
    any_: bool = False
    sort: int = 0  # 0 none, 1 ascending, -1 descending
    count: int = 0


def _parse_positional(ctx, argv: list[bytes], zset: ZSet | None, flags: int,
                      query: _GeoQuery) -> int:
    """The arguments before the options (GEORADIUS's centre and radius, GEOSEARCHSTORE's
    destination); returns the index of the first option."""
    if flags & RADIUS_COORDS:
        query.center = _lonlat(argv[2], argv[3])
        query.radius, query.conversion = _distance_arg(argv[4], argv[5])
        return 6
    if flags & RADIUS_MEMBER:
        if zset is not None:  # without a source the reply is empty whatever the radius
            query.center = _member_position(zset, argv[2])
            query.radius, query.conversion = _distance_arg(argv[3], argv[4])
        return 5
    if flags & SEARCH_STORE:
        query.store_key = argv[1]
        return 3
    return 2


def _parse_options(argv: list[bytes], base: int, zset: ZSet | None, flags: int,
                   query: _GeoQuery) -> None:
    """The options from ``base`` on, in Redis's order of checks (so the same mistake gives
    the same error)."""
    searching = bool(flags & SEARCH)
    remaining = len(argv) - base
    i = 0
    while i < remaining:
        arg = argv[base + i].lower()
        if arg == b"withdist":
            query.with_dist = True
        elif arg == b"withhash":
            query.with_hash = True
        elif arg == b"withcoord":
            query.with_coord = True
        elif arg == b"any":
            query.any_ = True
        elif arg == b"asc":
            query.sort = 1
        elif arg == b"desc":
            query.sort = -1
        elif arg == b"count" and i + 1 < remaining:
            query.count = parse_int(argv[base + i + 1])
            if query.count <= 0:
                raise CommandError(COUNT_POSITIVE)
            i += 1
        elif (arg in (b"store", b"storedist") and i + 1 < remaining
              and not flags & NO_STORE and not searching):
            query.store_key = argv[base + i + 1]
            query.store_dist = arg == b"storedist"
            i += 1
        elif arg == b"storedist" and searching and flags & SEARCH_STORE:
            query.store_dist = True
        elif (arg == b"frommember" and i + 1 < remaining and searching
              and not query.from_lonlat):
            if zset is not None:
                query.center = _member_position(zset, argv[base + i + 1])
            query.from_member = True
            i += 1
        elif (arg == b"fromlonlat" and i + 2 < remaining and searching
              and not query.from_member):
            query.center = _lonlat(argv[base + i + 1], argv[base + i + 2])
            query.from_lonlat = True
            i += 2
        elif arg == b"byradius" and i + 2 < remaining and searching and not query.by_box:
            query.radius, query.conversion = _distance_arg(argv[base + i + 1],
                                                           argv[base + i + 2])
            query.is_box = False
            query.by_radius = True
            i += 2
        elif arg == b"bybox" and i + 3 < remaining and searching and not query.by_radius:
            query.width = parse_double(argv[base + i + 1], "ERR need numeric width")
            query.height = parse_double(argv[base + i + 2], "ERR need numeric height")
            if query.height < 0 or query.width < 0:
                raise CommandError(NEGATIVE_BOX)
            query.conversion = _unit(argv[base + i + 3])
            query.is_box = True
            query.by_box = True
            i += 3
        else:
            raise CommandError(errors.SYNTAX)
        i += 1


def _check_options(query: _GeoQuery, name: str, flags: int) -> None:
    """The combinations Redis refuses once every option is read."""
    searching = bool(flags & SEARCH)
    if query.store_key is not None and (query.with_dist or query.with_hash
                                        or query.with_coord):
        raise CommandError(STORE_WITH_OPTIONS.format(
            "GEOSEARCHSTORE" if flags & SEARCH_STORE else "STORE option in GEORADIUS"))
    if searching and not (query.from_member or query.from_lonlat):
        raise CommandError(
            f"ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}")
    if searching and not (query.by_radius or query.by_box):
        raise CommandError(
            f"ERR exactly one of BYRADIUS and BYBOX can be specified for {name}")
    if query.any_ and not query.count:
        raise CommandError(ANY_NEEDS_COUNT)


def _nearest(points: list[_Point], query: _GeoQuery) -> list[_Point]:
    """The points to return, sorted as asked (COUNT without ANY takes the nearest)."""
    count, sort = query.count, query.sort
    if count and not sort and not query.any_:
        sort = 1  # the nearest N: COUNT implies ASC
    returned_count = len(points) if not count or len(points) < count else count
    if sort:
        compare = _nearer_first if sort > 0 else _farther_first
        if returned_count == len(points):
            # glibc's qsort is a merge sort: stable, equal distances keep the scan order.
            points.sort(key=functools.cmp_to_key(compare))
        else:
            partial_sort(points, compare, 0, returned_count - 1)
    return points[:returned_count]


def _search(ctx, argv: list[bytes], source_index: int, flags: int) -> Any:
    """Redis's georadiusGeneric: parse, search, sort, then reply or store."""
    zset = _zset(ctx, argv[source_index])
    query = _GeoQuery()
    base = _parse_positional(ctx, argv, zset, flags, query)
    _parse_options(argv, base, zset, flags, query)
    _check_options(query, argv[0].decode(errors="replace"), flags)
    if zset is None:
        if query.store_key is not None:
            _delete_destination(ctx, query.store_key)
            return 0
        return EMPTY_ARRAY
    center = query.center
    assert center is not None
    shape = geo.Shape(center[0], center[1], query.conversion, query.radius, query.width,
                      query.height, query.is_box)
    points = _points_in_shape(zset, shape, query.count if query.any_ else 0)
    if not points and query.store_key is None:
        return EMPTY_ARRAY
    returned = _nearest(points, query)
    if query.store_key is None:
        return [_point_reply(ctx, point, query.conversion, query.with_dist, query.with_hash,
                             query.with_coord)
                for point in returned]
    return _store(ctx, query.store_key, returned, query.conversion, query.store_dist, flags)


def _nearer_first(first: _Point, second: _Point) -> int:
    """Redis's comparator: 1, 0 or -1 (a NaN distance compares as smaller)."""
    if first.distance > second.distance:
        return 1
    return 0 if first.distance == second.distance else -1


def _farther_first(first: _Point, second: _Point) -> int:
    return -_nearer_first(first, second)


# --- partial sort --------------------------------------------------------------------------
# COUNT N of more matches: Redis sorts only what it returns with ``pqsort``, a quicksort
# (Bentley & McIlroy's, from NetBSD) that skips the partitions outside the wanted positions.
# Matches at equal distances come out in the order that algorithm leaves them, so it is
# repeated here step for step, on list positions instead of byte pointers.  Redis 7.0's copy
# has no "no swaps: finish with an insertion sort" shortcut (replies with ties show it).


def partial_sort(items: list, compare: Callable[[Any, Any], int], low: int, high: int) -> None:
    """Put at positions ``low``..``high`` of ``items`` what Redis's pqsort puts there."""
    _pqsort(items, 0, len(items), compare, low, high)


def _outside(start: int, size: int, low: int, high: int) -> bool:
    return (low < start and high < start) or (low >= start + size and high >= start + size)


def _insertion_sort(items: list, start: int, size: int, compare) -> None:
    for moving in range(start + 1, start + size):
        position = moving
        while position > start and compare(items[position - 1], items[position]) > 0:
            items[position - 1], items[position] = items[position], items[position - 1]
            position -= 1


def _median_of_three(items: list, a: int, b: int, c: int, compare) -> int:
    if compare(items[a], items[b]) < 0:
        if compare(items[b], items[c]) < 0:
            return b
        return c if compare(items[a], items[c]) < 0 else a
    if compare(items[b], items[c]) > 0:
        return b
    return a if compare(items[a], items[c]) < 0 else c


def _swap_blocks(items: list, first: int, second: int, size: int) -> None:
    for offset in range(size):
        items[first + offset], items[second + offset] = (
            items[second + offset], items[first + offset])


def _pqsort(items: list, start: int, size: int, compare, low: int, high: int) -> None:
    while True:
        if size < 7:
            _insertion_sort(items, start, size, compare)
            return
        middle = start + size // 2
        if size > 7:
            left, right = start, start + size - 1
            if size > 40:
                step = size // 8
                left = _median_of_three(items, left, left + step, left + 2 * step, compare)
                middle = _median_of_three(items, middle - step, middle, middle + step, compare)
                right = _median_of_three(items, right - 2 * step, right - step, right, compare)
            middle = _median_of_three(items, left, middle, right, compare)
        items[start], items[middle] = items[middle], items[start]
        equal_low = below = start + 1
        above = equal_high = start + size - 1
        while True:
            while below <= above:
                order = compare(items[below], items[start])
                if order > 0:
                    break
                if order == 0:
                    items[equal_low], items[below] = items[below], items[equal_low]
                    equal_low += 1
                below += 1
            while below <= above:
                order = compare(items[above], items[start])
                if order < 0:
                    break
                if order == 0:
                    items[above], items[equal_high] = items[equal_high], items[above]
                    equal_high -= 1
                above -= 1
            if below > above:
                break
            items[below], items[above] = items[above], items[below]
            below += 1
            above -= 1
        end = start + size
        moved = min(equal_low - start, below - equal_low)
        _swap_blocks(items, start, below - moved, moved)
        moved = min(equal_high - above, end - equal_high - 1)
        _swap_blocks(items, below, end - moved, moved)
        smaller = below - equal_low
        if smaller > 1 and not _outside(start, smaller, low, high):
            _pqsort(items, start, smaller, compare, low, high)
        larger = equal_high - above
        if larger <= 1:
            return
        start, size = end - larger, larger
        if _outside(start, size, low, high):
            return


def _point_reply(ctx, point: _Point, conversion: float, with_dist: bool, with_hash: bool,
                 with_coord: bool) -> Any:
    if not (with_dist or with_hash or with_coord):
        return point.member
    reply: list[Any] = [point.member]
    if with_dist:
        reply.append(format_distance(point.distance / conversion))
    if with_hash:
        reply.append(int(point.score))
    if with_coord:
        reply.append([_coordinate_reply(ctx, point.longitude),
                      _coordinate_reply(ctx, point.latitude)])
    return reply


def _store(ctx, key: bytes, points: list[_Point], conversion: float, store_dist: bool,
           flags: int) -> int:
    if not points:
        _delete_destination(ctx, key)
        return 0
    pairs = [(point.member, point.distance / conversion if store_dist else point.score)
             for point in points]
    ctx.db.set(key, ZSet(pairs))
    ctx.dirty += len(pairs)
    notify(ctx, b"geosearchstore" if flags & SEARCH else b"georadiusstore", key, "z")
    ctx.propagate([b"DEL", key])
    zadd = [b"ZADD", key]
    for member, score in pairs:
        zadd.append(format_double(score))
        zadd.append(member)
    ctx.propagate(zadd)
    return len(pairs)


def _delete_destination(ctx, key: bytes) -> None:
    if ctx.db.delete(key):
        ctx.dirty += 1
        notify(ctx, b"del", key, "g")
        ctx.propagate([b"DEL", key])


def georadius(ctx, argv):
    return _search(ctx, argv, 1, RADIUS_COORDS)


def georadiusbymember(ctx, argv):
    return _search(ctx, argv, 1, RADIUS_MEMBER)


def georadius_ro(ctx, argv):
    return _search(ctx, argv, 1, RADIUS_COORDS | NO_STORE)


def georadiusbymember_ro(ctx, argv):
    return _search(ctx, argv, 1, RADIUS_MEMBER | NO_STORE)


def geosearch(ctx, argv):
    return _search(ctx, argv, 1, SEARCH)


def geosearchstore(ctx, argv):
    return _search(ctx, argv, 2, SEARCH | SEARCH_STORE)


def register(registry):
    group = "geo"
    registry.extend([
        command("geoadd", -5, "write denyoom", geoadd, group=group),
        command("geodist", -4, "readonly", geodist, group=group),
        command("geohash", -2, "readonly", geohash_, group=group),
        command("geopos", -2, "readonly", geopos, group=group),
        command("geosearch", -7, "readonly", geosearch, group=group),
        command("geosearchstore", -8, "write denyoom", geosearchstore, group=group),
        command("georadius", -6, "write denyoom movablekeys", georadius, group=group),
        command("georadiusbymember", -5, "write denyoom movablekeys", georadiusbymember,
                group=group),
        command("georadius_ro", -6, "readonly", georadius_ro, group=group),
        command("georadiusbymember_ro", -5, "readonly", georadiusbymember_ro,
                group=group),
    ])
