"""The ``none`` backend: the server keeps its dataset in memory only.

It answers every persistence hook and promises nothing: a restart starts empty.  It is always
registered, so the server has a backend even when AOF and snapshots are both off.
"""

from __future__ import annotations

from trioredis import BaseBackend, hookimpl


class NoneBackend(BaseBackend):
    name = "none"


@hookimpl
def trioredis_register_persistence(registry, config):
    registry.add(NoneBackend())
