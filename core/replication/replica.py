"""The replica side: follow a master (REPLICAOF host port), as Redis's replicas do.

The link (one task, :func:`_follow`) connects, runs the handshake (PING, AUTH with
``masteruser``/``masterauth``, REPLCONF listening-port and capa eof psync2, PSYNC with the
id and offset it has, ``? -1`` first), then either loads the master's RDB (``$<len>`` or
``$EOF:<mark>`` framing) in place of the dataset or continues from its offset, and applies
the stream as the master client: flagged as a loader (no read-only or OOM refusal), its
effects reach this server's AOF (a replica's AOF records the stream, as Redis's does), and
the bytes applied are appended to this server's backlog as they came, so a replica of this
replica gets the master's stream and offsets unchanged.  REPLCONF ACK goes back every second
and on REPLCONF GETACK.  A lost link reconnects with PSYNC <replid> <offset+1>.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio

from ..backends import REWRITE
from ..client import Transport
from ..encodings import mark_by_shape
from ..rdb import read_rdb_databases
from ..resp import ErrorReply, encode_command
from .protocol import EOF_MARK_SIZE, StreamParser

if TYPE_CHECKING:
    from ..client import Client
    from . import Replication

RECONNECT_SECONDS = 1.0
ACK_SECONDS = 1.0
READ_SIZE = 1 << 16
MAX_LINE = 64 * 1024


class MasterLink:
    """The link to our master: its address, the link's state, our offset in its stream."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        # ROLE's names: connect, connecting, handshake, sync, connected.
        self.state = "connect"
        self.cancel_scope = trio.CancelScope()
        self.client: Client | None = None
        self.offset = -1  # processed (slave_repl_offset); -1 before the first sync
        self.read_offset = -1  # read, whole commands or not (slave_read_repl_offset)
        self.last_io = 0.0
        self.down_since = time.monotonic()
        self.sync_total = 0
        self.sync_read = 0
        self.sync_last_io = 0.0
        # The id and offset a PSYNC continues from (after a first sync, or our own history
        # when a master becomes a replica).
        self.cached: tuple[str, int] | None = None
        self.timeout = 60.0  # repl-timeout, refreshed at each connection
        self.db = 0  # the database the master's stream selected last
        self.session_scope = trio.CancelScope()  # one connection's (CLIENT KILL ends it)

    @property
    def up(self) -> bool:
        return self.state == "connected"


class LinkError(Exception):
    """The master refused or broke the handshake or the transfer."""


class _Reader:
    """Lines and counted bytes from the master's socket."""

    def __init__(self, stream: trio.SocketStream, link: MasterLink) -> None:
        self.stream = stream
        self.link = link
        self.buffer = bytearray()

    async def _more(self) -> None:
        # repl-timeout: a master sends at least a newline (preparing the RDB) or a PING
        # (streaming) well within it; silence that long is a dead link.
        with trio.fail_after(self.link.timeout):
            data = await self.stream.receive_some(READ_SIZE)
        if not data:
            raise LinkError("connection lost")
        self.link.last_io = time.monotonic()
        self.buffer += data

    async def line(self) -> bytes:
        """The next line, past the newlines a busy master sends to keep the link alive."""
        while True:
            while self.buffer[:1] == b"\n":
                del self.buffer[:1]
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 2]
                return line
            if len(self.buffer) > MAX_LINE:
                raise LinkError("line too long from master")
            await self._more()

    async def exactly(self, size: int) -> bytes:
        parts = []
        while size:
            if not self.buffer:
                await self._more()
            take = bytes(self.buffer[:size])
            del self.buffer[:len(take)]
            parts.append(take)
            size -= len(take)
            self.link.sync_read += len(take)
        return b"".join(parts)

    async def until_mark(self, mark: bytes) -> bytes:
        """The bytes before ``mark``, which ends the transfer (diskless EOF framing)."""
        data = bytearray()
        while True:
            if self.buffer:
                searched = max(0, len(data) - len(mark) + 1)
                data += self.buffer
                self.buffer.clear()
                # The stream may follow the mark in the same read: what comes after the
                # mark goes back to the buffer.
                end = data.find(mark, searched)
                if end >= 0:
                    self.buffer += data[end + len(mark):]
                    self.link.sync_read += end
                    return bytes(data[:end])
            await self._more()


async def _command(stream: trio.SocketStream, reader: _Reader, *argv: bytes) -> bytes:
    await stream.send_all(encode_command(list(argv)))
    return await reader.line()


def follow(repl: Replication, host: str, port: int) -> None:
    """Become a replica of host:port (from master, or from another master)."""
    engine = repl.engine
    old = repl.master
    link = MasterLink(host, port)
    if old is not None:
        old.cancel_scope.cancel()
        link.cached = (repl.replid, old.offset) if old.offset >= 0 else old.cached
    else:
        # Our own history, so a PSYNC to a former replica of ours can continue it.
        link.cached = (repl.replid, repl.offset) if repl.backlog is not None else None
        for replica in list(repl.replicas):  # as Redis: our replicas resync with us later
            replica.client.transport.close()
    repl.master = link
    engine.log.role = "S"  # the log's role letter, as Redis's: S for a replica
    engine.active_expire_enabled = False  # a replica's keys expire by the master's DEL
    repl.refresh_write_path()
    engine.log.notice(f"Connecting to MASTER {host}:{port}")
    engine.spawn(lambda: _follow(repl, link))


def promote(repl: Replication) -> None:
    """REPLICAOF NO ONE: stop following; a new replication id, the old one valid up to our
    offset (replicas of the old master can PSYNC to us)."""
    engine = repl.engine
    link = repl.master
    assert link is not None
    link.cancel_scope.cancel()
    _drop_master_client(repl, link)
    repl.master = None
    engine.log.role = "M"
    engine.active_expire_enabled = True
    repl.shift_replid()
    repl.ensure_backlog()
    repl.selected_db = -1
    repl.refresh_write_path()
    engine.log.notice("MASTER MODE enabled (user request from 'id=?')")


def _drop_master_client(repl: Replication, link: MasterLink) -> None:
    if link.client is not None:
        # The stream goes on in the database it last selected (a partial resync sends no
        # SELECT); an open MULTI is dropped (the stream resumes at it).
        link.db = link.client.db.index
        repl.engine.drop_client(link.client)
        link.client = None


async def _follow(repl: Replication, link: MasterLink) -> None:
    engine = repl.engine
    with link.cancel_scope:
        while True:
            try:
                with trio.CancelScope() as link.session_scope:
                    await _session(repl, link)
                if link.session_scope.cancelled_caught:  # CLIENT KILL TYPE master
                    raise LinkError("killed by CLIENT KILL")
            except Exception as error:  # noqa: BLE001 - any failure of the link: reconnect
                # (a nursery's failures come as an ExceptionGroup: the link's and its ACKs')
                while isinstance(error, ExceptionGroup) and len(error.exceptions) == 1:
                    error = error.exceptions[0]
                if link.state == "connected":
                    engine.log.notice(f"Connection with master lost ({error}).")
                else:
                    engine.log.warning(f"Error with master {link.host}:{link.port}: {error}")
            finally:
                if link.offset >= 0:
                    link.cached = (repl.replid, link.offset)
                _drop_master_client(repl, link)
                if link.state == "connected":
                    link.down_since = time.monotonic()
                link.state = "connect"
                if repl.master is link:
                    repl.refresh_stale()
            await trio.sleep(RECONNECT_SECONDS)


async def _session(repl: Replication, link: MasterLink) -> None:
    engine = repl.engine
    config = engine.config
    link.state = "connecting"
    link.timeout = float(config.repl_timeout)
    with trio.fail_after(link.timeout):
        stream = await trio.open_tcp_stream(link.host, link.port)
    async with stream:
        reader = _Reader(stream, link)
        link.state = "handshake"
        reply = await _command(stream, reader, b"PING")
        if reply[:1] == b"-" and not reply.startswith((b"-NOAUTH", b"-NOPERM", b"-ERR operation not permitted")):
            raise LinkError(f"error reply to PING from master: '{reply.decode('latin-1')}'")
        if config.masterauth:
            args = [b"AUTH"] + ([config.masteruser.encode()] if config.masteruser else [])
            reply = await _command(stream, reader, *args, _as_bytes(config.masterauth))
            if reply[:1] == b"-":
                raise LinkError(f"Unable to AUTH to MASTER: {reply.decode('latin-1')}")
        port = config.replica_announce_port or (engine.server.port if engine.server else 0)
        await _command(stream, reader, b"REPLCONF", b"listening-port", b"%d" % port)
        if config.replica_announce_ip:
            await _command(stream, reader, b"REPLCONF", b"ip-address",
                           config.replica_announce_ip.encode())
        await _command(stream, reader, b"REPLCONF", b"capa", b"eof", b"capa", b"psync2")
        if link.cached is not None:
            replid, offset = link.cached
            psync = [b"PSYNC", replid.encode(), b"%d" % (offset + 1)]
        else:
            psync = [b"PSYNC", b"?", b"-1"]
        engine.log.notice("Trying a partial resynchronization (request "
                          f"{psync[1].decode()}:{psync[2].decode()}).")
        reply = await _command(stream, reader, *psync)
        if reply.startswith(b"+FULLRESYNC"):
            words = reply.split()
            if len(words) < 3:
                raise LinkError("bad +FULLRESYNC reply")
            await _full_sync(repl, link, reader, words[1].decode(), int(words[2]))
        elif reply.startswith(b"+CONTINUE"):
            _continue(repl, link, reply)
        else:
            raise LinkError(f"unexpected reply to PSYNC from master: {reply.decode('latin-1')}")
        await _apply_stream(repl, link, stream, reader)


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _continue(repl: Replication, link: MasterLink, reply: bytes) -> None:
    engine = repl.engine
    words = reply.split()
    assert link.cached is not None
    replid, offset = link.cached
    if len(words) > 1 and words[1].decode() != replid:
        # The master changed history (a promotion): ours goes on under its new id.
        repl.replid2, repl.second_offset = replid, offset + 1
        repl.replid = words[1].decode()
    else:
        repl.replid = replid
    link.offset = link.read_offset = offset
    if repl.backlog is None or repl.backlog.offset != offset:
        repl.backlog = None
        repl.ensure_backlog(offset)
    engine.log.notice("Successful partial resynchronization with master.")
    engine.log.notice("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.")


async def _full_sync(repl: Replication, link: MasterLink, reader: _Reader, replid: str,
                     offset: int) -> None:
    engine = repl.engine
    engine.log.notice(f"Full resync from master: {replid}:{offset}")
    link.state = "sync"
    link.sync_read = 0
    header = await reader.line()
    if not header.startswith(b"$"):
        raise LinkError(f"bad protocol from MASTER, the first byte is not '$': {header!r}")
    if header.startswith(b"$EOF:"):
        mark = header[5:]
        if len(mark) != EOF_MARK_SIZE:
            raise LinkError("bad EOF mark from master")
        link.sync_total = 0
        rdb = await reader.until_mark(mark)
    else:
        link.sync_total = int(header[1:])
        rdb = await reader.exactly(link.sync_total)
    engine.log.notice(f"MASTER <-> REPLICA sync: Loading DB in memory ({len(rdb)} bytes)")
    loaded = await trio.to_thread.run_sync(_decode, rdb)
    _install(repl, loaded)
    # The new dataset is another history: our replicas start again with it.
    for replica in list(repl.replicas):
        replica.client.transport.close()
    repl.replid, repl.replid2, repl.second_offset = replid, "0" * 40, -1
    repl.backlog = None
    repl.ensure_backlog(offset)
    link.offset = link.read_offset = offset
    link.db = 0  # the stream after an RDB starts with SELECT
    engine.log.notice("MASTER <-> REPLICA sync: Finished with success")


def _decode(rdb: bytes) -> tuple[dict[int, tuple[dict[bytes, Any], dict[bytes, int]]], list[bytes]]:
    """The master's RDB as {database: (data, expires)} and its function libraries (in a
    worker thread: decoding a big dataset must not stop the event loop)."""
    # Keys already expired are loaded too: on a replica they go when the master's DEL
    # comes, as Redis's replicas load them.
    databases, _expired, functions = read_rdb_databases(rdb)
    return databases, functions


def _install(repl: Replication, loaded: tuple[dict[int, Any], list[bytes]]) -> None:
    """Replace the dataset with the master's (between two commands: clients see the old
    dataset, then the new one)."""
    engine = repl.engine
    databases, functions = loaded
    keyspace = engine.keyspace
    for index in databases:
        if not 0 <= index < len(keyspace):
            raise LinkError(f"the master's RDB holds database {index} but this server has "
                            f"{len(keyspace)}")
    keyspace.flush_all()
    engine.tracking.flushed()  # client-side caches: the whole dataset is replaced
    engine.scripting.functions.flush()
    for code in functions:
        reply = engine.replay([b"FUNCTION", b"LOAD", b"REPLACE", code])
        if isinstance(reply, ErrorReply):
            raise LinkError(f"loading a function library failed: {bytes(reply)!r}")
    for index, (data, expires) in databases.items():
        db = keyspace[index]
        db.data, db.expires = data, expires
        for key in list(db.watched) + list(db.blocked):
            keyspace.signal_modified(db, key)
    engine.dirty += 1
    engine.recount_memory()  # trioredis.memory: whole dicts were installed, as a load does
    mark_by_shape(keyspace.databases, engine.config)  # trioredis.encodings, as a load does
    # A replica's AOF holds what the replica holds: rewritten from the new dataset (the
    # stream that follows is appended to it), as Redis restarts its AOF after a sync.  Until
    # the rewrite is done, the old file plus the stream is what a crash would leave.
    for backend in engine.persistence.declaring(REWRITE):
        if engine.persistence.feeding(backend):
            backend.rewrite()
            break


async def _apply_stream(repl: Replication, link: MasterLink, stream: trio.SocketStream,
                        reader: _Reader) -> None:
    engine = repl.engine
    client = link.client = engine.new_client(f"{link.host}:{link.port}", "", -1)
    client.db = engine.keyspace[link.db]
    client.transport = Transport(close=link.session_scope.cancel)
    client.is_loader = True  # obeys the master: no READONLY, OOM or MISCONF refusal
    client.authenticated = True
    client.kind = "master"
    link.state = "connected"
    repl.refresh_stale()
    engine.log.notice("Master link is up")
    parser = StreamParser()
    # The bytes of an open MULTI: our offset (and what our replicas get) moves past a
    # transaction only at its EXEC, as Redis's replicas count it, so a link lost in the
    # middle resumes from the MULTI (the half-received transaction is discarded with the
    # master client).
    uncommitted: list[bytes] = []
    send_lock = trio.Lock()

    aof = next((backend for backend in engine.persistence.backends
                if hasattr(backend, "durable_position")), None)
    fack = [0]

    async def ack() -> None:
        argv = [b"REPLCONF", b"ACK", b"%d" % link.offset]
        if aof is not None and engine.persistence.feeding(aof):
            # FACK (Redis 7.2): the offset known to be fsynced to our AOF; claimed only once
            # everything fed to the AOF is durable (Redis 7.0 masters ignore it).
            if aof.durable_position >= aof.fed_position:
                fack[0] = link.offset
            argv += [b"FACK", b"%d" % fack[0]]
        async with send_lock:
            await stream.send_all(encode_command(argv))

    async def ack_every_second() -> None:
        while True:
            await ack()
            await trio.sleep(ACK_SECONDS)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ack_every_second)
        if reader.buffer:
            data = bytes(reader.buffer)
            reader.buffer.clear()
        else:
            data = b""
        while True:
            if data:
                link.read_offset += len(data)
                engine.stats.net_input_bytes += len(data)
                parser.feed(data)
                getack = _apply_commands(repl, link, client, parser, uncommitted)
                if getack:
                    await ack()
            with trio.fail_after(link.timeout):
                data = await stream.receive_some(READ_SIZE)
            if not data:
                raise LinkError("connection lost")
            link.last_io = time.monotonic()


def _apply_commands(repl: Replication, link: MasterLink, client: Client,
                    parser: StreamParser, uncommitted: list[bytes]) -> bool:
    """Run every whole command buffered, then count (and pass on to our replicas) what is
    complete; True when the master asked for an ACK."""
    engine = repl.engine
    getack = False
    while True:
        found = parser.next()
        if found is None:
            break
        argv, size = found
        uncommitted.append(bytes(parser.buffer[parser.pos - size:parser.pos]))
        if argv:
            name = argv[0].lower()
            if name == b"replconf" and len(argv) > 1 and argv[1].lower() == b"getack":
                getack = True
            elif name != b"ping" or len(argv) > 1:
                engine.call(client, argv)
        if client.multi is None:
            applied = b"".join(uncommitted)
            uncommitted.clear()
            link.offset += len(applied)
            repl.feed_raw(applied)
    return getack
