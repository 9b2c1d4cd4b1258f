"""The snapshot backend: point-in-time copies of the dataset in ``dir/dbfilename``.

``save <seconds> <changes>`` points, ``SAVE``, ``BGSAVE [SCHEDULE]``, ``LASTSAVE``, a final save
at shutdown when save points exist (or on ``SHUTDOWN SAVE``), and ``-MISCONF`` after a failed
background save when ``stop-writes-on-bgsave-error yes``.  The backend is always registered:
with ``save ""`` it only saves when asked (Redis allows SAVE then too), and an existing
snapshot is still loaded at start-up when the AOF did not load the dataset, as Redis does.

The file format lives in :mod:`.format`, the backend in :mod:`.backend`, and
``trioredis-check-snapshot <file>`` in :mod:`.check`.  A ``dbfilename`` ending in ``.rdb``
(Redis's default ``dump.rdb``, ours too) is Redis's own RDB format (:mod:`.rdbfile`); another
name (``dump.trdb``) is the native format, whose forked writer copies fewer pages.  A Redis
RDB file loads at start-up whatever its name.
"""

from __future__ import annotations

from trioredis import hookimpl
from trioredis.config_table import (
    FILENAME,
    MULTI_LINE,
    PROTECTED,
    SAVE,
    Option,
    boolean,
    special,
    string,
)

from .backend import SnapshotBackend

# The snapshot's own options, as Redis 7.0 declares them; core makes them known to the
# config file and CONFIG GET/SET/REWRITE.  dbfilename is a protected config (CONFIG SET
# needs enable-protected-configs) and a file name, never a path.
SNAPSHOT_OPTIONS: tuple[Option, ...] = (
    special("save", SAVE, [(3600, 1), (300, 100), (60, 10000)], flags=MULTI_LINE,
            applies="save points"),
    string("dbfilename", "dump.rdb", flags=PROTECTED, confine=FILENAME,
           applies="snapshot file name in dir"),
    boolean("stop-writes-on-bgsave-error", True, applies="MISCONF after a failed save"),
)


@hookimpl
def trioredis_add_options(registry):
    for option in SNAPSHOT_OPTIONS:
        registry.add(option)


@hookimpl
def trioredis_register_persistence(registry, config):
    registry.add(SnapshotBackend(config))


__all__ = ["SnapshotBackend"]
