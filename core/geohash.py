"""Geohash arithmetic as Redis 7.0 does it (``geohash.c``, ``geohash_helper.c``), so that
sorted set scores, the boxes a search visits, distances and decoded coordinates are the same
doubles Redis computes.

A position is stored as a 52-bit score: latitude and longitude each scaled to a 26-bit
integer over their range (latitude over -85.05112878..85.05112878, the Web Mercator limits)
and interleaved, latitude bits in the even positions.  A search covers its shape with the
geohash box of the centre plus its 8 neighbours at a precision (``step``) estimated from the
radius; each box is one score range of the sorted set.

Every formula keeps Redis's order of double operations, and uses the same libm functions
(Python's ``math`` calls the C library), so the results match bit for bit.  libm returns NaN
where Python raises (``cos(inf)``): :func:`_libm` restores that for the hostile inputs a
client may send (an infinite radius).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable

LONG_MIN = -180.0
LONG_MAX = 180.0
LAT_MIN = -85.05112878
LAT_MAX = 85.05112878
STEP_MAX = 26  # 26 bits per coordinate: a 52-bit score
EARTH_RADIUS_IN_METERS = 6372797.560856
MERCATOR_MAX = 20037726.37
_D_R = math.pi / 180.0
_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1
_EVEN = 0x5555555555555555
_ODD = 0xAAAAAAAAAAAAAAAA

Hash = tuple[int, int]  # (bits, step); (0, 0) is Redis's "zeroed" box, skipped by searches
ZERO: Hash = (0, 0)


def _libm(function: Callable[[float], float]) -> Callable[[float], float]:
    def call(x: float) -> float:
        try:
            return function(x)
        except ValueError:  # a domain error: C returns NaN
            return math.nan

    return call


_sin = _libm(math.sin)
_cos = _libm(math.cos)
_asin = _libm(math.asin)
_sqrt = _libm(math.sqrt)


def deg_rad(angle: float) -> float:
    return angle * _D_R


def rad_deg(angle: float) -> float:
    return angle / _D_R


# --- bits ----------------------------------------------------------------------------------


def _spread(value: int) -> int:
    """The low 32 bits of ``value`` moved to the even bit positions of a 64-bit word."""
    value &= _MASK32
    value = (value | (value << 16)) & 0x0000FFFF0000FFFF
    value = (value | (value << 8)) & 0x00FF00FF00FF00FF
    value = (value | (value << 4)) & 0x0F0F0F0F0F0F0F0F
    value = (value | (value << 2)) & 0x3333333333333333
    return (value | (value << 1)) & _EVEN


def _gather(value: int) -> int:
    """The even bits of a 64-bit word packed into 32 bits (the inverse of _spread)."""
    value &= _EVEN
    value = (value | (value >> 1)) & 0x3333333333333333
    value = (value | (value >> 2)) & 0x0F0F0F0F0F0F0F0F
    value = (value | (value >> 4)) & 0x00FF00FF00FF00FF
    value = (value | (value >> 8)) & 0x0000FFFF0000FFFF
    return (value | (value >> 16)) & _MASK32


def interleave(latitude_bits: int, longitude_bits: int) -> int:
    return _spread(latitude_bits) | (_spread(longitude_bits) << 1)


def _to_uint32(value: float) -> int:
    """C's conversion of a (non-negative, in range) double to uint32_t: truncation."""
    return int(value) & _MASK32


def double_to_uint64(value: float) -> int:
    """C's ``(uint64_t)score`` on x86-64, including what it gives for scores that were
    never geohashes (negative, huge, infinite): a score can be any double a ZADD wrote."""
    indefinite = 1 << 63
    if math.isnan(value):
        return indefinite
    if value < 9223372036854775808.0:  # 2**63: one cvttsd2si
        if value <= -9223372036854775809.0:
            return indefinite
        return int(value) & _MASK64
    shifted = value - 9223372036854775808.0
    if shifted >= 9223372036854775808.0:
        return 0  # the indefinite value with its top bit flipped back
    return (int(shifted) ^ indefinite) & _MASK64


# --- encoding and decoding -----------------------------------------------------------------


def encode(longitude: float, latitude: float, step: int = STEP_MAX,
           lat_range: tuple[float, float] = (LAT_MIN, LAT_MAX),
           long_range: tuple[float, float] = (LONG_MIN, LONG_MAX)) -> Hash | None:
    """The box of ``step`` bits per coordinate holding a position; None outside the
    supported area (longitude beyond +-180, latitude beyond +-85.05112878)."""
    if not 0 < step <= 32:
        return None
    if (longitude > LONG_MAX or longitude < LONG_MIN
            or latitude > LAT_MAX or latitude < LAT_MIN):
        return None
    if (latitude < lat_range[0] or latitude > lat_range[1]
            or longitude < long_range[0] or longitude > long_range[1]):
        return None
    lat_offset = (latitude - lat_range[0]) / (lat_range[1] - lat_range[0])
    long_offset = (longitude - long_range[0]) / (long_range[1] - long_range[0])
    lat_offset *= 1 << step
    long_offset *= 1 << step
    return interleave(_to_uint32(lat_offset), _to_uint32(long_offset)), step


def score_of(longitude: float, latitude: float) -> int:
    """The 52-bit sorted set score of a (valid) position, as GEOADD stores it."""
    found = encode(longitude, latitude)
    assert found is not None
    return align52(found)


def align52(box: Hash) -> int:
    bits, step = box
    return (bits << (52 - step * 2)) & _MASK64


class Area:
    """A decoded box: its longitude and latitude bounds."""

    __slots__ = ("lat_min", "lat_max", "long_min", "long_max")

    def __init__(self, lat_min: float, lat_max: float, long_min: float, long_max: float):
        self.lat_min = lat_min
        self.lat_max = lat_max
        self.long_min = long_min
        self.long_max = long_max


def decode(box: Hash) -> Area | None:
    """The bounds of a box (over the Web Mercator ranges); None for the zeroed box."""
    bits, step = box
    if box == ZERO:
        return None
    latitude_bits = _gather(bits)
    longitude_bits = _gather(bits >> 1)
    lat_scale = LAT_MAX - LAT_MIN
    long_scale = LONG_MAX - LONG_MIN
    cells = float(1 << step)
    # (bits + 1) is uint32_t arithmetic in C: it wraps.
    return Area(
        LAT_MIN + (latitude_bits / cells) * lat_scale,
        LAT_MIN + (((latitude_bits + 1) & _MASK32) / cells) * lat_scale,
        LONG_MIN + (longitude_bits / cells) * long_scale,
        LONG_MIN + (((longitude_bits + 1) & _MASK32) / cells) * long_scale,
    )


# 16 interleaved bits -> their 8 latitude bits | their 8 longitude bits << 8: four lookups
# split a score, where _gather twice takes some twenty integer operations (built on first
# use: 65,536 entries, 128 KB).
_DEINTERLEAVED: array | None = None


def _deinterleave_table() -> array:
    global _DEINTERLEAVED
    _DEINTERLEAVED = array("H", (_gather(chunk) | _gather(chunk >> 1) << 8
                                 for chunk in range(1 << 16)))
    return _DEINTERLEAVED


_LAT_SCALE = LAT_MAX - LAT_MIN
_LONG_SCALE = LONG_MAX - LONG_MIN
_CELLS = float(1 << STEP_MAX)


def position_of(score: float) -> tuple[float, float]:
    """(longitude, latitude) of a score: the centre of its 26-bit box, clamped to the
    supported area (what GEOPOS and every search see).  :func:`decode` inlined: a search
    calls this for every candidate."""
    if 0.0 <= score < 9223372036854775808.0:
        bits = int(score)
    else:
        bits = double_to_uint64(score)
    table = _DEINTERLEAVED or _deinterleave_table()
    pairs = (table[bits & 0xFFFF], table[(bits >> 16) & 0xFFFF], table[(bits >> 32) & 0xFFFF],
             table[bits >> 48])
    latitude_bits = ((pairs[0] & 0xFF) | (pairs[1] & 0xFF) << 8 | (pairs[2] & 0xFF) << 16
                     | (pairs[3] & 0xFF) << 24)
    longitude_bits = (pairs[0] >> 8 | (pairs[1] >> 8) << 8 | (pairs[2] >> 8) << 16
                      | (pairs[3] >> 8) << 24)
    longitude = (LONG_MIN + (longitude_bits / _CELLS) * _LONG_SCALE
                 + (LONG_MIN + (((longitude_bits + 1) & _MASK32) / _CELLS) * _LONG_SCALE)) / 2
    latitude = (LAT_MIN + (latitude_bits / _CELLS) * _LAT_SCALE
                + (LAT_MIN + (((latitude_bits + 1) & _MASK32) / _CELLS) * _LAT_SCALE)) / 2
    if longitude > LONG_MAX:
        longitude = LONG_MAX
    elif longitude < LONG_MIN:
        longitude = LONG_MIN
    if latitude > LAT_MAX:
        latitude = LAT_MAX
    elif latitude < LAT_MIN:
        latitude = LAT_MIN
    return longitude, latitude


_GEOALPHABET = b"0123456789bcdefghjkmnpqrstuvwxyz"


def standard_geohash(score: float) -> bytes:
    """GEOHASH's 11 characters: the position re-encoded over the standard latitude range
    -90..90 (Redis's own scores use -85..85), 52 bits in 10 characters and a final ``0``."""
    longitude, latitude = position_of(score)
    found = encode(longitude, latitude, STEP_MAX, (-90.0, 90.0), (-180.0, 180.0))
    bits = found[0] if found is not None else 0
    chars = bytearray()
    for position in range(10):
        chars.append(_GEOALPHABET[(bits >> (52 - (position + 1) * 5)) & 0x1F])
    chars.append(_GEOALPHABET[0])
    return bytes(chars)


# --- neighbours ----------------------------------------------------------------------------


def _move_x(box: Hash, direction: int) -> Hash:
    bits, step = box
    x = bits & _ODD
    y = bits & _EVEN
    zz = _EVEN >> (64 - step * 2)
    if direction > 0:
        x = x + (zz + 1)
    else:
        x = (x | zz) - (zz + 1)
    x &= _ODD >> (64 - step * 2)
    return (x | y) & _MASK64, step


def _move_y(box: Hash, direction: int) -> Hash:
    bits, step = box
    x = bits & _ODD
    y = bits & _EVEN
    zz = _ODD >> (64 - step * 2)
    if direction > 0:
        y = y + (zz + 1)
    else:
        y = (y | zz) - (zz + 1)
    y &= _EVEN >> (64 - step * 2)
    return (x | y) & _MASK64, step


def neighbors(box: Hash) -> dict[str, Hash]:
    east, west = _move_x(box, 1), _move_x(box, -1)
    return {
        "north": _move_y(box, 1), "south": _move_y(box, -1), "east": east, "west": west,
        "north_east": _move_y(east, 1), "north_west": _move_y(west, 1),
        "south_east": _move_y(east, -1), "south_west": _move_y(west, -1),
    }


# --- distances -----------------------------------------------------------------------------


def distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in meters (haversine on a sphere of Redis's Earth radius)."""
    lat1r = deg_rad(lat1)
    lon1r = deg_rad(lon1)
    lat2r = deg_rad(lat2)
    lon2r = deg_rad(lon2)
    u = _sin((lat2r - lat1r) / 2)
    v = _sin((lon2r - lon1r) / 2)
    return 2.0 * EARTH_RADIUS_IN_METERS * _asin(
        _sqrt(u * u + _cos(lat1r) * _cos(lat2r) * v * v))


class Shape:
    """A search area around (longitude, latitude): a circle of ``radius`` or a box of
    ``width`` x ``height``, in units that ``conversion`` turns into meters."""

    __slots__ = ("longitude", "latitude", "radius", "width", "height", "conversion",
                 "is_box", "_lat_r", "_long_r", "_cos_lat", "_limit", "_meridian_limit")

    def __init__(self, longitude: float, latitude: float, conversion: float,
                 radius: float = 0.0, width: float = 0.0, height: float = 0.0,
                 is_box: bool = False) -> None:
        self.longitude = longitude
        self.latitude = latitude
        self.conversion = conversion
        self.radius = radius
        self.width = width
        self.height = height
        self.is_box = is_box
        # What every distance from the centre repeats (the same doubles, computed once).
        self._lat_r = deg_rad(latitude)
        self._long_r = deg_rad(longitude)
        self._cos_lat = _cos(self._lat_r)
        self._limit = radius * conversion
        # A point further than this from the centre's latitude, along a meridian, is outside
        # whatever the haversine computes: the great-circle distance is at least the
        # meridian one, and the margin exceeds the formula's rounding (at most ~1e-8
        # relative, near antipodes).  It spares the trigonometry for most rejected points.
        self._meridian_limit = self._limit * (1 + 1e-6) / EARTH_RADIUS_IN_METERS + 1e-12

    def contains(self, longitude: float, latitude: float) -> float | None:
        """The distance in meters from the centre when the point is inside, else None."""
        if not self.is_box:
            lat2r = latitude * _D_R
            if abs(lat2r - self._lat_r) > self._meridian_limit:
                return None
            try:
                u = math.sin((lat2r - self._lat_r) / 2)
                v = math.sin((longitude * _D_R - self._long_r) / 2)
                found = 2.0 * EARTH_RADIUS_IN_METERS * math.asin(
                    math.sqrt(u * u + self._cos_lat * math.cos(lat2r) * v * v))
            except ValueError:  # NaN on the way: libm's answer, the slow way
                found = distance(self.longitude, self.latitude, longitude, latitude)
            return None if found > self._limit else found
        width = self.width * self.conversion
        height = self.height * self.conversion
        long_distance = distance(longitude, latitude, self.longitude, latitude)
        lat_distance = distance(longitude, latitude, longitude, self.latitude)
        if long_distance > width / 2 or lat_distance > height / 2:
            return None
        return distance(self.longitude, self.latitude, longitude, latitude)


def estimate_steps(range_meters: float, latitude: float) -> int:
    """The box precision for a search of this radius: boxes about as wide as the radius,
    a little wider towards the poles."""
    if range_meters == 0:
        return 26
    step = 1
    while range_meters < MERCATOR_MAX:
        range_meters *= 2
        step += 1
    step -= 2
    if latitude > 66 or latitude < -66:
        step -= 1
        if latitude > 80 or latitude < -80:
            step -= 1
    return min(max(step, 1), 26)


def bounding_box(shape: Shape) -> tuple[float, float, float, float]:
    """(min longitude, min latitude, max longitude, max latitude) around the shape; the
    longitude span is taken at the edge nearer to the pole."""
    if shape.is_box:
        height = shape.conversion * (shape.height / 2)
        width = shape.conversion * (shape.width / 2)
    else:
        height = shape.conversion * shape.radius
        width = shape.conversion * shape.radius
    longitude, latitude = shape.longitude, shape.latitude
    lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS)
    long_delta_top = rad_deg(width / EARTH_RADIUS_IN_METERS / _cos(deg_rad(latitude + lat_delta)))
    long_delta_bottom = rad_deg(
        width / EARTH_RADIUS_IN_METERS / _cos(deg_rad(latitude - lat_delta)))
    southern = latitude < 0
    delta = long_delta_bottom if southern else long_delta_top
    return longitude - delta, latitude - lat_delta, longitude + delta, latitude + lat_delta


def search_boxes(shape: Shape) -> list[Hash]:
    """The 9 boxes (centre, N, S, E, W, NE, NW, SE, SW) a search scans, the ones that cannot
    hold a match zeroed, as Redis's ``geohashCalculateAreasByShapeWGS84``."""
    min_lon, min_lat, max_lon, max_lat = bounding_box(shape)
    longitude, latitude = shape.longitude, shape.latitude
    if shape.is_box:
        radius_meters = _sqrt((shape.width / 2) * (shape.width / 2)
                              + (shape.height / 2) * (shape.height / 2))
    else:
        radius_meters = shape.radius
    radius_meters *= shape.conversion
    steps = estimate_steps(radius_meters, latitude)
    centre = encode(longitude, latitude, steps)
    assert centre is not None
    around = neighbors(centre)
    # A box next to the centre that does not reach the bounding box's edge: one step
    # coarser, so that the nine boxes cover the whole area.
    north, south = decode(around["north"]), decode(around["south"])
    east, west = decode(around["east"]), decode(around["west"])
    assert north is not None and south is not None and east is not None and west is not None
    decrease = (north.lat_max < max_lat or south.lat_min > min_lat
                or east.long_max < max_lon or west.long_min > min_lon)
    if steps > 1 and decrease:
        steps -= 1
        centre = encode(longitude, latitude, steps)
        assert centre is not None
        around = neighbors(centre)
    area = decode(centre)
    assert area is not None
    if steps >= 2:
        if area.lat_min < min_lat:
            around["south"] = around["south_west"] = around["south_east"] = ZERO
        if area.lat_max > max_lat:
            around["north"] = around["north_east"] = around["north_west"] = ZERO
        if area.long_min < min_lon:
            around["west"] = around["south_west"] = around["north_west"] = ZERO
        if area.long_max > max_lon:
            around["east"] = around["south_east"] = around["north_east"] = ZERO
    return [centre, around["north"], around["south"], around["east"], around["west"],
            around["north_east"], around["north_west"], around["south_east"],
            around["south_west"]]


def box_scores(box: Hash) -> tuple[int, int]:
    """The score range [min, max) of the members inside a box."""
    bits, step = box
    return align52(box), align52(((bits + 1) & _MASK64, step))
