"""The client eviction limit ``maxmemory-clients`` gives (sans-IO): a size, a percentage of
``maxmemory`` (nothing without one) and Redis's 128 KB floor for any non-zero limit."""

from __future__ import annotations

import pytest
from trioredis.client_memory import MIN_CLIENT_EVICTION_LIMIT, eviction_limit
from trioredis.config import load_config


@pytest.mark.parametrize(("options", "limit"), [
    ([], 0),
    ([["maxmemory-clients", "1mb"]], 1024 * 1024),
    ([["maxmemory-clients", "1000"]], MIN_CLIENT_EVICTION_LIMIT),
    ([["maxmemory-clients", "10%"]], 0),
    ([["maxmemory-clients", "10%"], ["maxmemory", "100mb"]], 10 * 1024 * 1024),
    ([["maxmemory-clients", "1%"], ["maxmemory", "1mb"]], MIN_CLIENT_EVICTION_LIMIT),
    ([["maxmemory-clients", "0%"], ["maxmemory", "1gb"]], 0),
])
def test_the_eviction_limit_follows_maxmemory_clients(options, limit):
    config = load_config(None, [["save", ""], *options]).config
    assert eviction_limit(config) == limit
