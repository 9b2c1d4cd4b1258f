"""A test plugin (``loadplugin trioredis_groupcommit``): a third-party persistence backend that
takes part in group commit with a :class:`trioredis.Ticket` and has options of its own.

It appends every write to ``groupcommit.resp`` in ``dir``.  With ``groupcommit-sync always``
each flush that wrote returns a ticket, and the backend's ``run()`` task fsyncs once for every
ticket handed out since its last round, then marks them all durable: the replies of the clients
of every turn in between leave together.  ``groupcommit-hold yes`` holds the next fsync round
(a test's way to see a reply wait for the ticket); ``groupcommit-notify no`` hands out tickets
that only ``wait()`` (core then awaits each in a task); ``groupcommit-enabled no`` stops feeding
(``host.set_feeding``).  INFO persistence shows ``groupcommit_rounds`` and
``groupcommit_tickets``.
"""

from __future__ import annotations

import os

import trio
from trioredis import BaseBackend, EventTicket, encode_command, hookimpl
from trioredis.config_table import boolean, enum

FILENAME = "groupcommit.resp"


class WaitOnlyTicket(EventTicket):
    """A ticket that cannot call back: ``durable_or_notify`` answers None (the Ticket default),
    so the transport awaits ``wait()`` in a task instead."""

    __slots__ = ()

    def durable_or_notify(self, callback):
        return None


class GroupCommitBackend(BaseBackend):
    name = "groupcommit"

    def __init__(self, config) -> None:
        self.path = os.path.join(config.dir or ".", FILENAME)
        self.config = config
        self.host = None
        self.buffer = bytearray()
        self.fd: int | None = None
        self.selected_db: int | None = None
        # Tickets handed out since the last fsync round: the next round makes them durable.
        self.pending: list[EventTicket] = []
        self.wakeup = trio.Event()
        self.rounds = 0
        self.tickets = 0
        # before_sleep() calls that followed a flush() (the once-per-round hook's order).
        self.flushed_since_sleep = False
        self.sleeps_after_flush = 0

    # Core calls feed() for each effect of a write, inside command execution: buffer only.
    def feed(self, db, argv):
        self.flushed_since_sleep = True  # flush() runs before the round ends
        if db != self.selected_db:
            self.buffer += encode_command([b"SELECT", b"%d" % db])
            self.selected_db = db
        self.buffer += encode_command(argv)

    # Core calls flush() once per turn that wrote, before any reply leaves: write(2) now, and
    # under ``groupcommit-sync always`` return a ticket the replies wait for.  One ticket per
    # flush (not per command); every client of the turn waits for the same one.
    def flush(self):
        if not self.buffer:
            return None
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self.fd, self.buffer)  # small test writes: one write(2) takes them all
        self.buffer.clear()
        if self.config.groupcommit_sync != "always":
            return None
        ticket = EventTicket() if self.config.groupcommit_notify else WaitOnlyTicket()
        self.pending.append(ticket)
        self.tickets += 1
        self.wakeup.set()
        return ticket

    # Core calls before_sleep() once the event loop served every ready client, before it
    # waits: once-per-round work (the AOF starts its fsync here); here only counted.
    def before_sleep(self):
        if self.flushed_since_sleep:
            self.flushed_since_sleep = False
            self.sleeps_after_flush += 1

    async def run(self, host, *, task_status=trio.TASK_STATUS_IGNORED):
        self.host = host
        self.config = host.config
        host.set_feeding(self.config.groupcommit_enabled)
        task_status.started()
        while True:
            await self.wakeup.wait()
            self.wakeup = trio.Event()
            if self.config.groupcommit_hold or not self.pending:
                continue  # CONFIG SET groupcommit-hold no wakes this loop again
            tickets, self.pending = self.pending, []
            fd = self.fd
            if fd is not None:
                await trio.to_thread.run_sync(os.fsync, fd)
            self.rounds += 1
            for ticket in tickets:
                ticket.set()  # on the trio thread: the parked replies leave

    def config_changed(self, old, new):
        self.config = new
        if self.host is not None:
            self.host.set_feeding(new.groupcommit_enabled)
        self.wakeup.set()  # a released hold lets the held round run

    async def aclose(self, save):
        if self.buffer:
            self.flush()
        for ticket in self.pending:
            ticket.set()
        self.pending = []
        if self.fd is not None:
            await trio.to_thread.run_sync(os.fsync, self.fd)
            os.close(self.fd)
            self.fd = None

    def statistics(self):
        return {"groupcommit_rounds": self.rounds, "groupcommit_tickets": self.tickets}


@hookimpl
def trioredis_add_options(registry):
    registry.add(enum("groupcommit-sync", ("no", "always"), "always",
                      applies="replies wait for the group commit's fsync"))
    registry.add(boolean("groupcommit-hold", False, applies="hold the next fsync round"))
    registry.add(boolean("groupcommit-enabled", True, applies="feed writes to the file"))
    registry.add(boolean("groupcommit-notify", True, applies="tickets call back when durable"))


@hookimpl
def trioredis_register_persistence(registry, config):
    registry.add(GroupCommitBackend(config))
