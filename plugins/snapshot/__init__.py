"""The snapshot backend: point-in-time copies of the dataset in ``dir/dbfilename``.

``save <seconds> <changes>`` points, ``SAVE``, ``BGSAVE [SCHEDULE]``, ``LASTSAVE``, a final save
at shutdown when save points exist (or on ``SHUTDOWN SAVE``), and ``-MISCONF`` after a failed
background save when ``stop-writes-on-bgsave-error yes``.  The backend is always registered:
with ``save ""`` it only saves when asked (Redis allows SAVE then too), and an existing
snapshot is still loaded at start-up when the AOF did not load the dataset, as Redis does.

The file format lives in :mod:`.format`, the backend in :mod:`.backend`, and
``trioredis-check-snapshot <file>`` in :mod:`.check`.  With a ``dbfilename`` ending in
``.rdb`` the snapshot is Redis's own RDB format instead, and a Redis RDB file loads at
start-up whatever its name (:mod:`.rdbfile`).
"""

from __future__ import annotations

from trioredis import hookimpl

from .backend import SnapshotBackend, config_changed


@hookimpl
def trioredis_register_persistence(registry, config):
    registry.add(SnapshotBackend(config))


@hookimpl
def trioredis_config_changed(old, new):
    config_changed(old, new)


__all__ = ["SnapshotBackend"]
