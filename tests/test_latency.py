"""Latency histograms (sans-IO): the bucket arithmetic gives the numbers Redis prints."""

from __future__ import annotations

import pytest
from trioredis import latency

# Microsecond values redis-server 7.0.15 printed in INFO latencystats (each the highest value
# of an HdrHistogram bucket): any value in the bucket reads back as exactly this.
REDIS_PRINTED_NS = [1003, 2007, 3007, 4015, 5023, 6015, 10047, 12031, 21119, 45055]


@pytest.mark.parametrize("printed", REDIS_PRINTED_NS)
def test_a_bucket_reads_back_as_redis_prints_it(printed):
    assert latency.highest_equivalent(latency.bucket_of(printed)) == printed
    assert latency.highest_equivalent(latency.bucket_of(printed - 1)) == printed


def test_percentiles_and_cumulative_buckets():
    histogram: dict[int, int] = {}
    for ns in (1000, 2000, 2000, 30_000, 5_000_000_000):  # the last is clamped to 1 s
        latency.record(histogram, ns)
    assert latency.value_at_percentile(histogram, 50) == 2007
    assert latency.value_at_percentile(histogram, 0) == 1000
    assert latency.info_line(histogram, (50.0, 99.9)) == "p50=2.007,p99.9=1002438.655"
    assert list(latency.cumulative_usec(histogram)) == [(1, 1), (2, 3), (33, 4), (1082130, 5)]
    assert latency.percentile_label(99.9) == "99.9" and latency.percentile_label(50.0) == "50"
    assert latency.value_at_percentile({}, 50) == 0 and list(latency.cumulative_usec({})) == []


def test_a_histogram_stays_small_whatever_is_recorded():
    histogram: dict[int, int] = {}
    for ns in range(0, 2_000_000_000, 9973):
        latency.record(histogram, ns)
    assert len(histogram) < 4000
