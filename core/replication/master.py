"""The master side: SYNC/PSYNC, the full resynchronisation's RDB, partial resyncs from the
backlog, the command stream to each replica, and the acknowledgements coming back.

A replica is a client that sent PSYNC (or SYNC): its connection is taken over (see
``Client.takeover`` and the transport's ``_hand_over``) and served by :func:`serve_replica`.

Full resync.  The RDB must hold the dataset exactly as it was at the offset named in
``+FULLRESYNC <replid> <offset>``, so the offset is read at the fork itself, between two
commands, and the reply is only sent then (as Redis sends it when its BGSAVE starts).  The
forked child (one persistence child at a time: the engine's fork slot) writes the RDB into a
pipe; the parent reads it without blocking the event loop and sends it as ``$<len>\\r\\n``
followed by the bytes, which every Redis replica (and ``redis-cli --rdb``) reads.  A
replica that asks while a fork's RDB is still being read joins it.  The stream fed
meanwhile stays in the backlog, held there until every replica sent it.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import trio

from ..children import CHILD_OK, ForkedChild, fork_child
from ..config import output_buffer_limits
from ..rdb import Encodings, write_rdb
from ..resp import Raw
from .protocol import StreamError, StreamParser

if TYPE_CHECKING:
    from ..client import Client
    from . import Replication

# The most of the stream sent to a replica in one write.
SEND_CHUNK = 1 << 20
# While a replica waits for its RDB, a newline every second keeps its link alive (Redis's
# replicas read it as "still preparing" and reset their timeout).
KEEPALIVE_SECONDS = 1.0
FORK_OWNER = "replication"


class ReplicaLink:
    """One attached replica, as INFO and ROLE show it."""

    __slots__ = ("client", "ip", "port", "state", "position", "ack_offset", "ack_time",
                 "capa_eof", "capa_psync2", "fack_offset", "first_ack")

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ip = client.addr.rsplit(":", 1)[0].strip("[]")
        self.port = 0
        self.state = "wait_bgsave"  # then send_bulk, online
        self.position = 0  # the next stream offset to send
        self.ack_offset = 0
        self.fack_offset = 0  # fsynced to the replica's AOF (FACK, Redis 7.2's replicas)
        self.ack_time = time.monotonic()
        self.capa_eof = False
        self.capa_psync2 = False
        self.first_ack = trio.Event()


class Handshake:
    """What a connection said with REPLCONF before it became a replica."""

    __slots__ = ("port", "ip", "capa_eof", "capa_psync2", "rdb_only")

    def __init__(self) -> None:
        self.port = 0
        self.ip = ""
        self.capa_eof = False
        self.capa_psync2 = False
        self.rdb_only = False


class RdbJob:
    """One forked child writing the dataset; ``offset`` is the stream offset it holds."""

    def __init__(self) -> None:
        self.forked = trio.Event()
        self.done = trio.Event()
        self.offset = 0
        # The RDB as the child writes it (kept whole: a replica that joins late, or reads
        # the $<len> form, sends it from the start).
        self.chunks: list[bytes] = []
        self.grown = trio.Event()  # set (and replaced) when a chunk arrives
        self.rdb: bytes | None = None
        self.error = ""

    def add(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.grown.set()
        self.grown = trio.Event()


def handshake_of(client: Client) -> Handshake:
    if client.repl is None:
        client.repl = Handshake()
    return client.repl


def psync(repl: Replication, client: Client, replid: bytes | None, wanted: int) -> Raw:
    """PSYNC (``replid`` None: SYNC): a partial resync when the backlog holds the offset the
    replica wants under an id we know, else a full one.  The connection is taken over."""
    engine = repl.engine
    if isinstance(client.repl, ReplicaLink):
        return Raw(b"")  # already a replica: ignored, as Redis does
    shake = handshake_of(client)
    link = ReplicaLink(client)
    link.port = shake.port
    if shake.ip:
        link.ip = shake.ip
    link.capa_eof, link.capa_psync2 = shake.capa_eof, shake.capa_psync2
    name = f"{link.ip}:{link.port}"
    engine.log.notice(f"Replica {name} asks for synchronization")
    backlog = repl.backlog
    if replid is not None and replid != b"?":
        known = replid.decode("latin-1")
        same = known == repl.replid or (known == repl.replid2 and wanted <= repl.second_offset)
        if same and backlog is not None and backlog.holds(wanted):
            repl.sync_partial_ok += 1
            link.state = "online"
            link.position = wanted
            link.ack_offset = wanted - 1
            engine.log.notice(f"Partial resynchronization request from {name} accepted. "
                              f"Sending {backlog.offset + 1 - wanted} bytes of backlog "
                              f"starting from offset {wanted}.")
            _attach(repl, client, link, full=False)
            if link.capa_psync2:
                return Raw(b"+CONTINUE %s\r\n" % repl.replid.encode())
            return Raw(b"+CONTINUE\r\n")
        repl.sync_partial_err += 1
        engine.log.notice(f"Full resync requested by replica {name}")
    repl.sync_full += 1
    repl.ensure_backlog()
    _attach(repl, client, link, full=True, with_header=replid is not None,
            rdb_only=shake.rdb_only)
    return Raw(b"")


def _attach(repl: Replication, client: Client, link: ReplicaLink, *, full: bool,
            with_header: bool = True, rdb_only: bool = False) -> None:
    client.repl = link
    client.kind = "replica"

    async def session(io: Any) -> None:
        await serve_replica(repl, link, io, full, with_header, rdb_only)

    client.takeover = session
    client.close_after_reply = True  # the transport hands the connection over after this reply


async def serve_replica(repl: Replication, link: ReplicaLink, io: Any, full: bool,
                        with_header: bool, rdb_only: bool) -> None:
    """Serve one replica until it goes: its RDB if it needs one, then the stream; its ACKs
    are read meanwhile."""
    engine = repl.engine
    if not rdb_only:
        repl.replicas.append(link)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_acks, repl, link, io, nursery.cancel_scope)
            if full:
                streamed = await _send_rdb(repl, link, io, with_header)
                if rdb_only:
                    nursery.cancel_scope.cancel()
                    return
                if streamed:
                    # After an EOF-marked transfer the replica reads until the mark ends its
                    # read: the stream waits for its first ACK (sent once it loaded), so no
                    # byte of it can share a read with the mark (as Redis does).
                    await link.first_ack.wait()
            link.state = "online"
            link.ack_time = time.monotonic()  # lag and repl-timeout count from now
            repl.note_ack()
            engine.log.notice(f"Synchronization with replica {link.ip}:{link.port} succeeded")
            await _stream(repl, link, io)
    finally:
        if link in repl.replicas:
            repl.replicas.remove(link)
            engine.log.notice(f"Connection with replica {link.ip}:{link.port} lost.")
        repl.note_ack()  # a WAIT counting this replica counts again


async def _send_rdb(repl: Replication, link: ReplicaLink, io: Any, with_header: bool) -> bool:
    """The full resync's RDB; True when it went EOF-marked (diskless)."""
    job = repl.rdb_job
    if job is None or job.done.is_set() or (job.forked.is_set() and (
            repl.backlog is None or not repl.backlog.holds(job.offset + 1))):
        job = repl.rdb_job = RdbJob()
        repl.engine.spawn(lambda: _run_job(repl, job))
    while not job.forked.is_set():
        with trio.move_on_after(KEEPALIVE_SECONDS):
            await job.forked.wait()
        if not job.forked.is_set():
            await io.send(b"\n")
    link.position = job.offset + 1
    link.ack_offset = 0
    if with_header:
        await io.send(b"+FULLRESYNC %s %d\r\n" % (repl.replid.encode(), job.offset))
    if link.capa_eof and repl.engine.config.repl_diskless_sync:
        await _send_rdb_streamed(repl, link, io, job)
        return True
    while not job.done.is_set():
        with trio.move_on_after(KEEPALIVE_SECONDS):
            await job.done.wait()
        if not job.done.is_set():
            await io.send(b"\n")
    if job.rdb is None:
        repl.engine.log.warning(f"Full resync of {link.ip}:{link.port} failed: {job.error}")
        raise OSError(job.error)
    link.state = "send_bulk"
    rdb = job.rdb
    await io.send(b"$%d\r\n" % len(rdb))
    view = memoryview(rdb)
    for start in range(0, len(rdb), SEND_CHUNK):
        await io.send(view[start:start + SEND_CHUNK])
    return False


async def _send_rdb_streamed(repl: Replication, link: ReplicaLink, io: Any,
                             job: RdbJob) -> None:
    """Diskless (a replica with ``capa eof``): the RDB as the child writes it, framed by
    ``$EOF:<mark>`` and the mark, so the replica loads while the child still writes.  Nothing
    else may be sent meanwhile (a keep-alive newline would be read as RDB bytes); a failed
    child ends the connection before the mark, which the replica sees as a failed sync."""
    mark = os.urandom(20).hex().encode()
    link.state = "send_bulk"
    await io.send(b"$EOF:%s\r\n" % mark)
    sent = 0
    while True:
        while sent < len(job.chunks):
            await io.send(job.chunks[sent])
            sent += 1
        if job.done.is_set() and sent == len(job.chunks):
            break
        grown = job.grown
        if not job.done.is_set():
            with trio.move_on_after(KEEPALIVE_SECONDS):
                await grown.wait()
    if job.rdb is None:
        repl.engine.log.warning(f"Full resync of {link.ip}:{link.port} failed: {job.error}")
        raise OSError(job.error)
    await io.send(mark)


async def _stream(repl: Replication, link: ReplicaLink, io: Any) -> None:
    """Send the stream from the replica's position on, as it grows."""
    hard_limit = output_buffer_limits(repl.engine.config.client_output_buffer_limit)["slave"][0]
    while True:
        backlog = repl.backlog
        if backlog is None:
            return
        if link.position <= backlog.offset:
            if hard_limit and backlog.offset + 1 - link.position > hard_limit:
                repl.engine.log.warning(
                    f"Client id={link.client.id} addr={link.client.addr} closed for "
                    "overcoming of output buffer limits.")
                return
            data = backlog.read(link.position, SEND_CHUNK)
            link.position += len(data)
            # A replica is told of a write only once it is durable here, as a client is
            # (appendfsync always: Redis sends the stream from beforeSleep, after the
            # fsync).  The flush writes out, and tickets cover, everything fed so far, so
            # every write in ``data``; other policies return no ticket and send at once.
            persistence = repl.engine.persistence
            tickets = persistence.flush_writes()
            if tickets:
                await persistence.wait_durable(tickets)
            await io.send(data)
            backlog.trim(other.position for other in repl.replicas)
            continue
        if repl.grown.is_set():
            repl.grown = trio.Event()
            continue
        await repl.grown.wait()


async def _read_acks(repl: Replication, link: ReplicaLink, io: Any,
                     scope: trio.CancelScope) -> None:
    """What the replica sends: REPLCONF ACK <offset> (others are run and not answered, as
    Redis answers nothing to its replicas)."""
    parser = StreamParser()
    engine = repl.engine
    for argv in io.pending_commands:
        _replica_command(repl, link, argv)
    # A replica that PSYNCed acknowledges every second: none for repl-timeout seconds is a
    # dead link (SYNC's old-style replicas and redis-cli send nothing: no timeout for them).
    timeout = float(engine.config.repl_timeout) if link.capa_psync2 else float("inf")
    try:
        while True:
            with trio.move_on_after(timeout) as idle:
                data = await io.receive()
            if idle.cancelled_caught:
                if link.state != "online" or time.monotonic() - link.ack_time < timeout:
                    continue  # still syncing (a replica is silent until it loaded the RDB)
                engine.log.warning(f"Disconnecting timedout replica: {link.ip}:{link.port}")
                break
            if not data:
                break
            engine.stats.net_input_bytes += len(data)
            parser.feed(data)
            if parser.pending() > engine.config.client_query_buffer_limit:
                engine.log.warning(f"Closing replica {link.ip}:{link.port} that reached max "
                                   "query buffer length")
                break
            while True:
                found = parser.next()
                if found is None:
                    break
                if found[0]:
                    _replica_command(repl, link, found[0])
    except (StreamError, OSError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()


def _replica_command(repl: Replication, link: ReplicaLink, argv: list[bytes]) -> None:
    if len(argv) >= 3 and argv[0].lower() == b"replconf" and argv[1].lower() == b"ack":
        try:
            offset = int(argv[2])
        except ValueError:
            return
        if offset > link.ack_offset:
            link.ack_offset = offset
        if len(argv) >= 5 and argv[3].lower() == b"fack":
            try:
                link.fack_offset = max(link.fack_offset, int(argv[4]))
            except ValueError:
                pass
        link.ack_time = time.monotonic()
        link.first_ack.set()
        repl.note_ack()
        return
    repl.engine.call(link.client, argv)


# --- the RDB of a full resync ----------------------------------------------------------------


async def _run_job(repl: Replication, job: RdbJob) -> None:
    engine = repl.engine
    slot = engine.fork_slot
    await slot.acquire(FORK_OWNER)
    try:
        try:
            child = _fork(repl, job)
        except OSError as error:
            job.error = f"fork: {error.strerror}"
            job.forked.set()
            return
        job.forked.set()
        chunks: list[bytes] = []
        try:
            while chunk := await child.receive_some():
                chunks.append(chunk)
                job.add(chunk)
        finally:
            code = await child.wait()
        if code == CHILD_OK:
            job.rdb = b"".join(chunks)
            engine.log.notice(f"Background RDB transfer terminated with success "
                              f"({len(job.rdb)} bytes)")
        else:
            job.error = "the RDB child failed"
    finally:
        slot.release(FORK_OWNER)
        job.forked.set()
        job.done.set()
        job.grown.set()  # a streamed transfer waiting for more learns it is done
        # Only replicas already sending it still need this RDB (they hold the job): a new
        # replica forks anew, as its stream must start at a newer offset anyway.
        if repl.rdb_job is job:
            repl.rdb_job = None


def _fork(repl: Replication, job: RdbJob) -> ForkedChild:
    """Fork the child that writes the RDB into its pipe.  ``job.offset`` is the stream offset
    at the fork, and the stream restarts with SELECT."""
    engine = repl.engine
    databases = [(db.index, db.data, db.expires) for db in engine.keyspace.databases]
    functions = _function_codes(engine.dataset_preamble())
    encodings = Encodings.from_config(engine.config)

    def write_rdb_into(fd: int) -> None:
        """The child's body: the whole RDB into the pipe (the parent sends it on)."""

        def write(data: bytes) -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]

        write_rdb(write, databases, encodings, functions=functions)

    child = fork_child(write_rdb_into, record_fork=engine.record_fork)
    assert repl.backlog is not None
    job.offset = repl.backlog.offset
    repl.selected_db = -1
    engine.log.notice(f"Starting BGSAVE for SYNC with target: replicas sockets "
                      f"(pid {child.pid})")
    return child


def _function_codes(preamble: list[list[bytes]]) -> list[bytes]:
    """The code of each function library (``FUNCTION LOAD ... code`` in the preamble)."""
    return [argv[-1] for argv in preamble
            if len(argv) >= 3 and argv[0].upper() == b"FUNCTION" and argv[1].upper() == b"LOAD"]
