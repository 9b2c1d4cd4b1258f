"""Per-command latency histograms (``latency-tracking``): INFO latencystats and LATENCY
HISTOGRAM, with the numbers Redis 7.0 prints.

Redis keeps one HdrHistogram per command (values in nanoseconds, 1 ns to 1 s, two significant
digits).  The same bucketing here, with a dict per command instead of an array: a value falls
in a range of ``2**b`` nanoseconds where ``b`` grows with its magnitude (256 sub-buckets per
power of two, the upper 128 used past the first), so the percentiles Redis prints
(``p50=2.007``: the highest value of the bucket, in microseconds with three decimals) come
out of the same arithmetic.  Recording is two integer operations and one dict increment; a
histogram holds at most a few thousand buckets (1 s / 2 digits), whatever the traffic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

HIGHEST_NS = 1_000_000_000  # Redis's LATENCY_HISTOGRAM_MAX_VALUE: longer calls count as 1 s
# 2 significant digits: 2 * 10**2 rounded up to a power of two, 256 sub-buckets; values
# below 256 ns are exact, then each doubling halves the resolution.
SUB_BUCKET_MAGNITUDE = 8
SUB_BUCKET_MASK = (1 << SUB_BUCKET_MAGNITUDE) - 1


def bucket_of(ns: int) -> int:
    """The lowest value of the bucket holding ``ns`` (clamped to 1 ns .. 1 s)."""
    if ns < 1:
        ns = 1
    elif ns > HIGHEST_NS:
        ns = HIGHEST_NS
    shift = (ns | SUB_BUCKET_MASK).bit_length() - SUB_BUCKET_MAGNITUDE
    return ns >> shift << shift


def highest_equivalent(lowest: int) -> int:
    """The highest value counted in the bucket starting at ``lowest``."""
    shift = (lowest | SUB_BUCKET_MASK).bit_length() - SUB_BUCKET_MAGNITUDE
    return lowest + (1 << shift) - 1


def record(histogram: dict[int, int], ns: int) -> None:
    """Count one call of ``ns`` nanoseconds (``CommandPath.execute`` inlines this)."""
    key = bucket_of(ns)
    histogram[key] = histogram.get(key, 0) + 1


def value_at_percentile(histogram: dict[int, int], percentile: float) -> int:
    """In nanoseconds, as HdrHistogram answers: the highest value of the first bucket whose
    cumulative count reaches ``percentile`` of the total (the lowest value for 0)."""
    total = sum(histogram.values())
    if not total:
        return 0
    wanted = max(1, int(min(percentile, 100.0) / 100 * total + 0.5))
    seen = 0
    for lowest in sorted(histogram):
        seen += histogram[lowest]
        if seen >= wanted:
            return lowest if percentile == 0.0 else highest_equivalent(lowest)
    return highest_equivalent(max(histogram))


def cumulative_usec(histogram: dict[int, int]) -> Iterator[tuple[int, int]]:
    """LATENCY HISTOGRAM's pairs, as HdrHistogram's logarithmic iterator gives them to
    Redis: reporting levels of 1024 ns doubling, each with the calls in buckets starting at or
    under it, named by the level's highest equivalent value in whole microseconds (1, 2, 4,
    8, 16, 33, 66...); a level is listed only when its count grew."""
    ordered = sorted(histogram.items())
    total = sum(histogram.values())
    seen = previous = index = 0
    level = 1024
    while seen < total:
        while index < len(ordered) and ordered[index][0] <= level:
            seen += ordered[index][1]
            index += 1
        if seen > previous:
            yield highest_equivalent(level) // 1000, seen
        previous = seen
        level *= 2


def percentile_label(value: float) -> str:
    """``50`` and ``99.9`` as Redis prints them after ``p`` (%f with the zeros trimmed)."""
    text = f"{value:f}".rstrip("0").rstrip(".")
    return text or "0"


def info_line(histogram: dict[int, int], percentiles: Iterable[float]) -> str:
    """One latencystats value: ``p50=2.007,p99=...,p99.9=...``."""
    return ",".join(f"p{percentile_label(p)}={value_at_percentile(histogram, p) / 1000:.3f}"
                    for p in percentiles)
