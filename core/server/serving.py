"""Serving connections: reading requests, running their commands, queueing replies within
the output limits, blocked commands on tasks of their own, pushes, closing; and answering
other clients while a script is busy."""

from __future__ import annotations

import socket as stdsocket
import time
from typing import Any

import trio

from ..client import Client, Transport
from ..config import output_buffer_limits
from ..engine import Block
from ..resp import ProtocolError, Raw, RequestParser, encode
from .connection import CLOSED, REACTOR, RECV_SIZE, TASK, Connection
from .reactor import Reactor


class Serving:
    """The part of :class:`trioredis.server.Server` that serves connected clients."""

    def _read_and_run(self, connection: Connection, reactor: Reactor, now: float) -> None:
        """Reactor: one non-blocking read, then every complete command in it."""
        try:
            data = connection.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._close_now(connection)
            return
        if not data:
            self._close_now(connection)
            return
        assert self.engine is not None
        self.engine.stats.net_input_bytes += len(data)
        connection.client.last_interaction = now
        connection.parser.feed(data)
        self._run_buffered(connection, reactor, now)

    def _run_buffered(self, connection: Connection, reactor: Reactor, now: float) -> None:
        engine = self.engine
        assert engine is not None
        client, parser, out = connection.client, connection.parser, connection.out
        gets = parser.gets
        call = engine.call
        closing = False
        queued = len(out)
        # Replies are counted as they are made, so a batch of 9,000 GETs of a big value stops
        # at the hard limit instead of building them all first.
        threshold = self._normal_output_threshold
        held = sum(map(len, out)) if threshold else 0
        while True:
            try:
                argv = gets()
            except ProtocolError as error:
                out.append(self._protocol_error(connection, error))
                closing = True
                break
            if argv is None:
                break
            reply = call(client, argv)
            kind = reply.__class__
            # The common replies encoded inline (a call less per command), the rest by encode.
            if kind is Raw:
                out.append(reply)
            elif kind is bytes:
                out.append(b"$%d\r\n%b\r\n" % (len(reply), reply))
            elif kind is int:
                out.append(b":%d\r\n" % reply)
            elif kind is Block:
                engine.register_blocked(client, reply)
                self._to_task(connection, reply)
                return
            else:
                out.append(encode(reply, client.resp3))
            if client.after_reply and self._after_reply(client, out):
                closing = True
                break
            if threshold and out:
                held += len(out[-1])
                if held >= threshold:
                    held = sum(map(len, out))  # exact (a dropped reply was counted)
                    if held >= threshold:
                        if self._output_limit_reached(connection, held):
                            return
                        # Over the soft limit only: its time runs; the hard limit (if any)
                        # is still checked per command, the soft one again after the batch.
                        threshold = self._output_limits["normal"][0]
        if not closing and parser.pending() > engine.config.client_query_buffer_limit:
            self._query_limit(connection)
            closing = True
        if (len(out) > queued and self._normal_output_threshold
                and self._output_limit_reached(connection, sum(map(len, out)))):
            return
        if closing:
            if client.takeover is not None:  # PSYNC/SYNC: the connection becomes a link
                self._hand_over(connection)
                return
            connection.closing = True
            reactor.to_send[connection] = None
        elif len(out) > queued:
            reactor.to_send[connection] = None

    def _after_reply(self, client: Client, out: list[bytes]) -> bool:
        """The rare work once a command's reply is queued (``client.after_reply``): CLIENT
        REPLY OFF/SKIP drop it (the last entry of ``out``: pushes made while the command ran
        came before it, and stay); True when the client is to be closed (QUIT...)."""
        if client.reply_flags and client.reply_queued():
            out.pop()
        return client.close_after_reply

    def _protocol_error(self, connection: Connection, error: ProtocolError) -> bytes:
        client = connection.client
        self.log.verbose(f"Protocol error ({error}) from client: id={client.id} addr={client.addr}")
        if client.replies_dropped:  # CLIENT REPLY OFF/SKIP silence this error too, as in Redis
            return b""
        return b"-ERR Protocol error: %s\r\n" % str(error).encode()

    # --- client-output-buffer-limit -----------------------------------------------------------
    #
    # A client that does not read its replies must not grow the server without bound.  Replies
    # to a normal client are checked once per batch (the reactor reads no more from a client
    # whose replies wait for the kernel, so its queue grows a batch at a time); pub/sub
    # messages are checked as each is queued.  Over the hard limit, or over the soft limit for
    # longer than its seconds, the client is closed at once and what it had queued is dropped,
    # as Redis's closeClientOnOutputBufferLimitReached does.

    def _output_threshold(self) -> int:
        """The smaller of the normal class's non-zero hard and soft limits (0: unlimited)."""
        limits = self._output_limits_for()
        if limits is None:
            return 0
        return min(limit for limit in limits[:2] if limit)

    def _output_limits_for(self) -> tuple[int, int, int] | None:
        """The normal class's limits, None when unlimited (the default: nothing to check)."""
        assert self.engine is not None
        text = self.engine.config.client_output_buffer_limit
        if text is not self._output_limits_text:
            self._output_limits = output_buffer_limits(text)
            self._output_limits_text = text
        normal = self._output_limits["normal"]
        return normal if normal[0] or normal[1] else None

    def _output_limit_reached(self, connection: Connection, pending: int) -> bool:
        """Close ``connection`` if ``pending`` queued bytes break its class's limits."""
        client = connection.client
        self._output_limits_for()
        kind = "pubsub" if client.in_pubsub else "normal"
        hard, soft, seconds = self._output_limits[kind]
        over = bool(hard and pending >= hard)
        if not over and soft and pending >= soft:
            now = time.monotonic()
            since = self._output_soft_since.setdefault(client.id, now)
            over = now - since > seconds
        elif self._output_soft_since:
            self._output_soft_since.pop(client.id, None)
        if not over:
            return False
        self._output_soft_since.pop(client.id, None)
        if len(self._output_overflow) > 1024:  # ids of connections closed since
            self._output_overflow &= self.connections.keys()
        self._output_overflow.add(client.id)
        self.log.warning(
            f"Client id={client.id} addr={client.addr} scheduled to be closed ASAP for "
            "overcoming of output buffer limits.")
        connection.out.clear()
        client.output_buffer = 0
        self._close_soon(connection)
        return True

    def _query_limit(self, connection: Connection) -> None:
        client = connection.client
        self.log.warning(f"Closing client that reached max query buffer length: id={client.id} addr={client.addr}")

    def _to_task(self, connection: Connection, block: Block | None) -> None:
        """Serve ``connection`` from a task of its own (its command blocks, or no reactor)."""
        assert self._nursery is not None and self.reactor is not None
        self.reactor.remove(connection)
        connection.mode = TASK
        connection.cancel_scope = trio.CancelScope()
        self._nursery.start_soon(self._serve_task, connection, block)

    async def _serve_task(self, connection: Connection, block: Block | None) -> None:
        """Serve ``connection`` while its command waits (``block``), then the commands it
        pipelined behind it; then hand it back to the reactor (or close it)."""
        client = connection.client
        done = False
        try:
            with connection.cancel_scope:
                if block is not None:
                    await self._flush_and_drain(connection)
                    reply = await self._wait_blocked(connection, block)
                    connection.out.append(encode(reply, client.resp3))
                    if client.after_reply and self._after_reply(client, connection.out):
                        connection.closing = True
                closing = await self._run_buffered_in_task(connection)
                if client.takeover is not None:
                    await self._serve_taken_over(connection)
                    return
                await self._flush_and_drain(connection)
                done = closing or connection.closing
        except OSError:
            done = True
        except BaseException:  # the server is stopping (cancelled): close, then let it go
            self._close_now(connection)
            raise
        if done or connection.cancel_scope.cancelled_caught or connection.closing:
            self._close_now(connection)
        elif connection.mode is TASK:
            assert self.reactor is not None
            self.reactor.add(connection)

    async def _wait_blocked(self, connection: Connection, block: Block) -> Any:
        """Wait for a blocked command's reply while still watching the socket.

        A client that disconnects while blocked must stop waiting at once, as Redis unblocks
        it: else its waiter stays queued and a later push hands an element to a closed
        connection, where it is lost.  Commands pipelined meanwhile wait in the parser."""
        engine = self.engine
        assert engine is not None
        replies: list[Any] = []

        async def watch_socket() -> None:
            while connection.parser.pending() <= engine.config.client_query_buffer_limit:
                try:
                    await trio.lowlevel.wait_readable(connection.sock)
                except trio.ClosedResourceError:  # closed under us: the close path cleans up
                    return
                try:
                    data = connection.sock.recv(RECV_SIZE)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    connection.closing = True
                    connection.cancel_scope.cancel()
                    return
                engine.stats.net_input_bytes += len(data)
                connection.parser.feed(data)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_socket)
            replies.append(await engine.wait_blocked(connection.client, block))
            nursery.cancel_scope.cancel()
        return replies[0]

    async def _run_buffered_in_task(self, connection: Connection) -> bool:
        """The commands already received, blocking ones included; True to close after."""
        engine = self.engine
        assert engine is not None
        client, parser, out = connection.client, connection.parser, connection.out
        threshold = self._normal_output_threshold  # as in _run_buffered
        held = sum(map(len, out)) if threshold else 0
        while True:
            try:
                argv = parser.gets()
            except ProtocolError as error:
                out.append(self._protocol_error(connection, error))
                return True
            if argv is None:
                break
            reply = engine.call(client, argv)
            if reply.__class__ is Block:
                engine.register_blocked(client, reply)
                await self._flush_and_drain(connection)
                reply = await self._wait_blocked(connection, reply)
            out.append(encode(reply, client.resp3))
            if client.after_reply and self._after_reply(client, out):
                return True
            if threshold and out:
                held += len(out[-1])
                if held >= threshold and self._output_limit_reached(
                        connection, sum(map(len, out))):
                    return False  # closing: _output_limit_reached dropped the output
        if parser.pending() > engine.config.client_query_buffer_limit:
            self._query_limit(connection)
            return True
        return False

    async def _flush_and_drain(self, connection: Connection) -> None:
        engine = self.engine
        assert engine is not None
        await engine.persistence.flush_for_reply(connection.client)
        if connection.out:
            engine.stats.net_output_bytes += sum(map(len, connection.out))
            await connection.drain()

    def _push(self, connection: Connection, reply: Any) -> None:
        """An out-of-band message for a client (pub/sub), queued behind its replies."""
        client = connection.client
        if connection.mode is CLOSED or client.id in self._output_overflow:
            return
        out = connection.out
        data = encode(reply, client.resp3)
        out.append(data)
        # Bytes queued, in O(1) per push: out[0] may be a partly sent leftover, what follows
        # it was counted as it came.
        if len(out) <= 2:
            client.output_buffer = len(out[0]) + (len(data) if len(out) == 2 else 0)
        else:
            client.output_buffer += len(data)
        if self._output_limit_reached(connection, client.output_buffer):
            return
        if connection.mode is REACTOR:
            assert self.reactor is not None
            self.reactor.to_send[connection] = None
            self.reactor.wake()
        elif not connection.sending and self._nursery is not None:
            self._nursery.start_soon(self._send_pushes, connection)

    async def _send_pushes(self, connection: Connection) -> None:
        try:
            await connection.drain()
        except (OSError, trio.ClosedResourceError):
            connection.cancel_scope.cancel()

    # --- connections taken over by a command ----------------------------------------------
    #
    # PSYNC and SYNC turn a client connection into a replication link: once their reply is
    # queued (``client.takeover`` set), nothing more is parsed as requests by the transport;
    # the command's session gets a :class:`TakenOver` (send, receive, the commands already
    # received) and runs in a task of its own until the link ends, then the connection is
    # closed.  CLIENT KILL still closes it (its cancel scope).

    def _hand_over(self, connection: Connection) -> None:
        assert self._nursery is not None and self.reactor is not None
        self.reactor.remove(connection)
        connection.mode = TASK
        connection.cancel_scope = trio.CancelScope()
        self._nursery.start_soon(self._serve_taken_over, connection)

    async def _serve_taken_over(self, connection: Connection) -> None:
        client = connection.client
        session, client.takeover = client.takeover, None
        client.close_after_reply = False
        assert session is not None
        try:
            with connection.cancel_scope:
                await self._flush_and_drain(connection)
                await session(TakenOver(self, connection))
        except Exception as error:  # noqa: BLE001 - the link ends, never the server
            # (the session's tasks report their failures as an ExceptionGroup)
            self.log.verbose(f"Link of client id={client.id} ended: {error!r}")
        finally:
            self._close_now(connection)

    def _close_soon(self, connection: Connection) -> None:
        """CLIENT KILL, idle timeout: close the connection after the current command."""
        if connection.mode is TASK:
            connection.closing = True
            connection.cancel_scope.cancel()
        elif connection.mode is REACTOR:
            assert self.reactor is not None
            self.reactor.to_close[connection] = None
            self.reactor.wake()

    def _close_now(self, connection: Connection) -> None:
        if connection.mode is CLOSED:
            return
        if connection.mode is REACTOR and self.reactor is not None:
            self.reactor.remove(connection)
        connection.mode = CLOSED
        if connection.trio_sock is not None:
            trio.lowlevel.notify_closing(connection.sock)
        connection.sock.close()
        self.connections.pop(connection.client.id, None)
        assert self.engine is not None
        self.engine.drop_client(connection.client)
        # What the client sent and was sent goes now, not at the next full collection: the
        # transport's callbacks close a cycle (connection -> client -> transport ->
        # connection) that would otherwise hold a 100 MB half-read upload until then.
        connection.out.clear()
        connection.parser = RequestParser()
        connection.client.transport = Transport()

    # --- busy scripts ------------------------------------------------------------------------

    def serve_while_busy(self, run: Any) -> None:
        """Called from the hook of a script that has run past ``busy-reply-threshold``
        (trioredis.scripting), inside the reactor turn that runs it: accept new connections
        and answer every other client's commands with -BUSY, except SCRIPT KILL, FUNCTION
        KILL/STATS, SHUTDOWN NOSAVE and the commands flagged ``allow-busy`` (AUTH, HELLO,
        MULTI...), which run.  Replies leave at once.  Connections served by tasks of their
        own (blocked clients) wait until the script ends."""
        reactor, engine = self.reactor, self.engine
        if reactor is None or engine is None:
            return
        for listener in self._listeners:
            view = stdsocket.socket(listener.family, listener.type, fileno=listener.fileno())
            try:
                sock, address = view.accept()
            except OSError:
                sock = None
            finally:
                view.detach()  # the listener keeps its fd
            if sock is not None:
                try:
                    self._accept(trio.socket.from_stdlib_socket(sock), address)
                except OSError:
                    sock.close()
        for fd, _mask in reactor.epoll.poll(0):
            connection = reactor.by_fd.get(fd)
            # Left for after the script: the running client, and any client with replies
            # already queued this turn (they may wait for an fsync: see _park_readers).
            if (connection is None or connection.client is run.caller or connection.parked
                    or connection.want_write or connection.mode is not REACTOR
                    or connection.out or connection in reactor.to_send):
                continue
            try:
                data = connection.sock.recv(RECV_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                self._close_now(connection)
                continue
            engine.stats.net_input_bytes += len(data)
            connection.parser.feed(data)
            self._answer_while_busy(connection, run)
            reactor._send_nowait(connection)

    def _answer_while_busy(self, connection: Connection, run: Any) -> None:
        engine = self.engine
        assert engine is not None
        client, out = connection.client, connection.out
        scripting = engine.scripting
        while True:
            try:
                argv = connection.parser.gets()
            except ProtocolError as error:
                out.append(self._protocol_error(connection, error))
                connection.closing = True
                return
            if argv is None:
                return
            entry = engine._lookup(argv[0])
            allowed = entry is not None and "allow-busy" in entry[0].flags
            if allowed and entry[1] in (b"script", b"function"):
                # As Redis: SCRIPT KILL during EVAL, FUNCTION KILL/STATS during FCALL.
                sub = argv[1].lower() if len(argv) == 2 else b""
                allowed = (entry[1] == b"script") == run.is_eval and (
                    sub == b"kill" or (sub == b"stats" and not run.is_eval))
            if allowed and entry[1] == b"shutdown":
                allowed = b"nosave" in (arg.lower() for arg in argv[1:])
                if allowed:
                    scripting.stop_for_shutdown()
            if allowed:
                reply = engine.call(client, argv)
            else:
                reply = engine._reject(client, argv, scripting.busy_error())
            if reply.__class__ is not Block:
                out.append(encode(reply, client.resp3))
            if client.after_reply and self._after_reply(client, out):
                connection.closing = True
                return

    def config_applied(self, old: Any, new: Any) -> None:
        """After CONFIG SET: proto-max-bulk-len reaches every connected client, as in Redis,
        and the reactor learns whether normal clients now have an output limit."""
        if old.proto_max_bulk_len != new.proto_max_bulk_len:
            for connection in self.connections.values():
                connection.parser.set_max_bulk_len(new.proto_max_bulk_len)
        self._normal_output_threshold = self._output_threshold()

    def watch_readable(self, fd: int, callback: Any) -> Any:
        """``BackendHost.watch_readable``: the reactor reads ``fd`` (None before it runs)."""
        return self.reactor.watch_readable(fd, callback) if self.reactor is not None else None

    def client_connections(self) -> list[Connection]:
        return list(self.connections.values())


class TakenOver:
    """A connection handed to a command's session (see ``Serving._hand_over``)."""

    def __init__(self, server: Serving, connection: Connection) -> None:
        self._server = server
        self._connection = connection
        if connection.trio_sock is None:
            connection.trio_sock = trio.socket.from_stdlib_socket(connection.sock)
        self._sock = connection.trio_sock
        # Requests that arrived behind the command, already read from the socket.
        self.pending_commands: list[list[bytes]] = []
        while True:
            try:
                argv = connection.parser.gets()
            except ProtocolError:
                break
            if argv is None:
                break
            self.pending_commands.append(argv)

    async def send(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        stats = self._server.engine.stats
        while view:
            sent = await self._sock.send(view)
            stats.net_output_bytes += sent
            view = view[sent:]

    async def receive(self) -> bytes:
        return await self._sock.recv(RECV_SIZE)
