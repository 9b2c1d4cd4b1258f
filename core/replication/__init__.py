"""Replication in Redis's own protocol: this server as a master (SYNC/PSYNC, the RDB, the
command stream, the backlog, WAIT) and as a replica (REPLICAOF, the handshake, loading the
master's RDB, applying its stream, ACKs).

:class:`Replication` is the state both sides share, built once by the engine: the
replication ids and offset, the backlog, the attached replicas and the link to a master.
The engine's write path calls :meth:`Replication.feed` for each propagated effect, one more
consumer beside the persistence backends' ``feed`` (Redis's ``propagateNow``), and only
while this server is a master with a backlog: with no replica ever attached a write costs
nothing here.  :mod:`.master` serves replicas, :mod:`.replica` follows a master.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from ..resp import encode_command
from .backlog import Backlog

if TYPE_CHECKING:
    from ..engine import Engine
    from .master import RdbJob, ReplicaLink
    from .replica import MasterLink

NO_ID = "0" * 40
READONLY_REPLICA = "READONLY You can't write against a read only replica."
NOREPLICAS = "NOREPLICAS Not enough good replicas to write."


def new_replid() -> str:
    return os.urandom(20).hex()


class Replication:
    """The replication state of one server (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.replid = engine.run_id
        self.replid2 = NO_ID
        self.second_offset = -1
        self.backlog: Backlog | None = None
        # The database the stream last SELECTed (-1: the next effect starts with SELECT, as
        # after a new full sync, whose replica starts in database 0).
        self.selected_db = -1
        self.replicas: list[ReplicaLink] = []
        self.master: MasterLink | None = None  # set while this server is a replica
        self.rdb_job: RdbJob | None = None  # the full resync's RDB being made
        self.sync_full = 0
        self.sync_partial_ok = 0
        self.sync_partial_err = 0
        # Set when the stream grows (writers wait on it), when a replica acknowledges
        # (WAIT waits on it); each is replaced once waited for.
        self.grown = trio.Event()
        self.acked = trio.Event()
        self._getack_at = -1  # the offset right after the last REPLCONF GETACK fed

    # --- roles -----------------------------------------------------------------------------

    @property
    def is_replica(self) -> bool:
        return self.master is not None

    @property
    def offset(self) -> int:
        """master_repl_offset."""
        return self.backlog.offset if self.backlog is not None else 0

    def ensure_backlog(self, offset: int | None = None) -> Backlog:
        """The backlog, made on first need (the first replica, or a sync with a master)."""
        if self.backlog is None:
            start = self.offset if offset is None else offset
            self.backlog = Backlog(start, self.engine.config.repl_backlog_size)
            self.engine.log.notice(
                "Replication backlog created, my new replication IDs are "
                f"'{self.replid}' and '{self.replid2}'")
            self.refresh_write_path()
        return self.backlog

    def shift_replid(self) -> None:
        """A new history begins (promotion): the old id stays valid up to this offset, so
        replicas of the old master can continue with a partial resync."""
        self.replid2 = self.replid
        self.second_offset = self.offset + 1
        self.replid = new_replid()
        self.engine.log.notice(f"Setting secondary replication ID to {self.replid2}, valid up "
                               f"to offset: {self.second_offset}. New replication ID is "
                               f"{self.replid}")

    def change_id(self) -> None:
        """DEBUG CHANGE-REPL-ID: a new id, no previous one kept."""
        self.replid = new_replid()
        self.replid2 = NO_ID
        self.second_offset = -1

    # --- the write path --------------------------------------------------------------------

    def write_path(self) -> tuple[list[Callable[[int, Sequence[bytes]], None]], str | None]:
        """What the engine's write path gets from replication, beside the backends': ``feed``
        while a master has a backlog; the refusal of clients' writes now (READONLY on a
        read-only replica, NOREPLICAS on a master short of good replicas), or None."""
        self.refresh_stale()
        feeds = [self.feed] if self.backlog is not None and self.master is None else []
        return feeds, self.refuse_writes()

    def refresh_stale(self) -> None:
        """Whether commands not flagged ``stale`` are refused now (MASTERDOWN)."""
        self.engine.refuse_stale = (self.master is not None and not self.master.up
                                    and not self.engine.config.replica_serve_stale_data)

    def refresh_write_path(self) -> None:
        """Recompute the engine's write path (role, backlog, replicas' state changed)."""
        self.engine.compose_write_path()

    def feed(self, db: int, argv: Sequence[bytes]) -> None:
        """One propagated effect into the stream (with SELECT when the database changes)."""
        backlog = self.backlog
        assert backlog is not None
        if db != self.selected_db:
            backlog.append(encode_command([b"SELECT", b"%d" % db]))
            self.selected_db = db
        backlog.append(encode_command(argv))
        if not self.grown.is_set():
            self.grown.set()

    def feed_raw(self, data: bytes) -> None:
        """Bytes into the stream as they are (PING, GETACK, a master's stream proxied)."""
        backlog = self.backlog
        if backlog is None:
            return
        backlog.append(data)
        if not self.grown.is_set():
            self.grown.set()

    def refuse_writes(self) -> str | None:
        """The refusal of a client's write: READONLY on a read-only replica, NOREPLICAS on a
        master with fewer good replicas than ``min-replicas-to-write``."""
        config = self.engine.config
        if self.master is not None:
            return READONLY_REPLICA if config.replica_read_only else None
        needed = config.min_replicas_to_write
        if needed and self.good_replicas() < needed:
            return NOREPLICAS
        return None

    def good_replicas(self) -> int:
        """Online replicas whose last ACK is at most ``min-replicas-max-lag`` seconds old."""
        max_lag = self.engine.config.min_replicas_max_lag
        now = time.monotonic()
        return sum(1 for link in self.replicas
                   if link.state == "online" and now - link.ack_time <= max_lag)

    # --- WAIT ------------------------------------------------------------------------------

    def acknowledged(self, offset: int, fsynced: bool = False) -> int:
        """How many replicas acknowledged the stream up to ``offset`` (``fsynced``: as
        written and fsynced to their AOF, which they report with ``FACK``)."""
        if fsynced:
            return sum(1 for link in self.replicas if link.fack_offset >= offset)
        return sum(1 for link in self.replicas if link.ack_offset >= offset)

    def request_acks(self) -> None:
        """Feed ``REPLCONF GETACK *`` (once per batch of WAITs: not again before more of the
        stream was fed), so replicas answer now instead of at their next second."""
        if self.backlog is None or not self.replicas or self._getack_at == self.backlog.offset:
            return
        self.feed_raw(encode_command([b"REPLCONF", b"GETACK", b"*"]))
        self._getack_at = self.backlog.offset

    def note_ack(self) -> None:
        """A replica acknowledged, came online or went: WAITs count again, and the
        NOREPLICAS refusal (when configured) follows the good replicas' count."""
        if not self.acked.is_set():
            self.acked.set()
        if self.engine.config.min_replicas_to_write:
            self.refresh_write_path()

    async def wait_acks(self, offset: int, wanted: int, timeout: float,
                        fsynced: bool = False) -> int:
        """WAIT (and WAITAOF, ``fsynced``): until ``wanted`` replicas acknowledged ``offset``
        or the timeout (seconds, 0: none) runs out; the count then."""
        with trio.move_on_after(timeout if timeout > 0 else float("inf")):
            while self.acknowledged(offset, fsynced) < wanted:
                if self.acked.is_set():
                    self.acked = trio.Event()
                await self.acked.wait()
        return self.acknowledged(offset, fsynced)

    # --- the cron --------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the master of the config file's ``replicaof``, then once a second: PING
        into the stream every ``repl-ping-replica-period`` seconds while replicas are
        attached (they measure the link's health by it), and keep the backlog's size."""
        config = self.engine.config
        if config.replicaof:
            host, port = config.replicaof.split()
            self.replicaof(host, int(port))
        task_status.started()
        seconds = 0
        while True:
            await trio.sleep(1)
            seconds += 1
            config = self.engine.config
            if (self.master is None and self.replicas
                    and seconds % config.repl_ping_replica_period == 0):
                self.feed_raw(encode_command([b"PING"]))
            if config.min_replicas_to_write:  # a replica's lag grows without an event
                self.refresh_write_path()
            if self.backlog is not None:
                self.backlog.resize(config.repl_backlog_size)
                self.backlog.trim(link.position for link in self.replicas)

    def info(self) -> dict[str, Any]:
        """INFO replication, in Redis's order."""
        fields: dict[str, Any] = {}
        now = time.monotonic()
        link = self.master
        if link is None:
            fields["role"] = "master"
        else:
            fields.update({
                "role": "slave", "master_host": link.host, "master_port": link.port,
                "master_link_status": "up" if link.up else "down",
                "master_last_io_seconds_ago": int(now - link.last_io) if link.up else -1,
                "master_sync_in_progress": 1 if link.state == "sync" else 0,
                "slave_read_repl_offset": link.read_offset if link.up else self.offset,
                "slave_repl_offset": link.offset if link.up else self.offset,
            })
            if link.state == "sync":
                total = link.sync_total
                fields.update({
                    "master_sync_total_bytes": total if total else -1,
                    "master_sync_read_bytes": link.sync_read,
                    "master_sync_left_bytes": total - link.sync_read if total else -1,
                    "master_sync_perc": f"{100 * link.sync_read / total:.2f}" if total else "-1.00",
                    "master_sync_last_io_seconds_ago": int(now - link.last_io),
                })
            if not link.up:
                fields["master_link_down_since_seconds"] = (
                    int(now - link.down_since) if link.cached is not None else -1)
            config = self.engine.config
            fields.update({
                "slave_priority": config.replica_priority,
                "slave_read_only": 1 if config.replica_read_only else 0,
                "replica_announced": 1 if config.replica_announced else 0,
            })
        fields["connected_slaves"] = len(self.replicas)
        if self.master is None and self.engine.config.min_replicas_to_write:
            fields["min_slaves_good_slaves"] = self.good_replicas()
        for index, replica in enumerate(self.replicas):
            fields[f"slave{index}"] = (
                f"ip={replica.ip},port={replica.port},state={replica.state},"
                f"offset={replica.ack_offset},lag={int(now - replica.ack_time)}")
        backlog = self.backlog
        fields.update({
            "master_failover_state": "no-failover",
            "master_replid": self.replid,
            "master_replid2": self.replid2,
            "master_repl_offset": self.offset,
            "second_repl_offset": self.second_offset,
            "repl_backlog_active": 1 if backlog is not None else 0,
            "repl_backlog_size": self.engine.config.repl_backlog_size,
            "repl_backlog_first_byte_offset": backlog.first if backlog is not None else 0,
            "repl_backlog_histlen": backlog.histlen if backlog is not None else 0,
        })
        return fields

    # --- the replica side's entry points ---------------------------------------------------

    def replicaof(self, host: str | None, port: int = 0) -> str:
        """REPLICAOF host port / NO ONE; the status line to reply."""
        from .replica import follow, promote

        if host is None:
            if self.master is not None:
                promote(self)
                self._remember_master("")
            return "OK"
        if self.master is not None and (self.master.host, self.master.port) == (host, port):
            return "OK Already connected to specified master"
        follow(self, host, port)
        self._remember_master(f"{host} {port}")
        return "OK"

    def _remember_master(self, value: str) -> None:
        """The ``replicaof`` option follows the role, so CONFIG GET and CONFIG REWRITE
        (which Sentinel sends after turning a server into a replica) show it, as Redis's."""
        engine = self.engine
        if engine.config.replicaof != value:
            engine.apply_config(msgspec.structs.replace(engine.config, replicaof=value))

    def statistics(self) -> dict[str, int]:
        return {"sync_full": self.sync_full, "sync_partial_ok": self.sync_partial_ok,
                "sync_partial_err": self.sync_partial_err}


__all__ = ["NOREPLICAS", "READONLY_REPLICA", "Replication"]
