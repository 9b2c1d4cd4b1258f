"""Blocking commands: what a handler returns when it has to wait (:class:`Block`), and the
clients waiting on keys (:class:`BlockedClients`, owned by the engine).

When a write touches a key that clients wait on, the waiting clients are served right after
that command, in the order they blocked, by running their ``attempt`` in their own context
(the engine's ``attempt`` callable), so what they pop is propagated right after the push.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from .errors import CommandError
from .resp import NULL_ARRAY, ErrorReply

if TYPE_CHECKING:
    from .client import Client
    from .context import CommandContext
    from .keyspace import Database


class Block:
    """Returned by a blocking command's handler when it has to wait.

    ``attempt(ctx)`` retries the command's effect and returns the reply, or None while there
    is still nothing to take; ``timeout`` is in seconds (0: forever); ``timeout_reply`` is sent
    when it runs out."""

    __slots__ = ("db", "keys", "timeout", "attempt", "timeout_reply", "event", "result",
                 "ready_key", "unflagged", "waiter", "paused")

    def __init__(
        self,
        keys: Sequence[bytes],
        timeout: float,
        attempt: Callable[[CommandContext], Any],
        timeout_reply: Any = NULL_ARRAY,
        unflagged: bool = False,
    ) -> None:
        self.db: Database | None = None
        # Blocks although its command is not flagged "blocking" (WAIT: Redis flags it
        # noscript only); otherwise a Block from an unflagged command answers at once.
        self.unflagged = unflagged
        self.keys = list(keys)
        self.timeout = timeout
        self.attempt = attempt
        self.timeout_reply = timeout_reply
        self.event: trio.Event | None = None
        self.result: dict[str, Any] | None = None
        # The key whose change woke the client, set before each retry by serve_blocked (None
        # on the first try): Redis serves a client blocked on several keys from the key that
        # became ready, not from the first of its keys that has something.
        self.ready_key: bytes | None = None
        # Set by BlockedClients.register: the client is queued on its keys from the moment
        # its command blocked, not from when its task starts waiting (see there).
        self.waiter: Waiter | None = None
        # A command held by CLIENT PAUSE (trioredis.pause): its client is not "blocked".
        self.paused = False

    def waiting_on(self, event: trio.Event, result: dict[str, Any]) -> Block:
        """A block that ends when ``event`` is set, with ``result["reply"]`` as the reply
        (commands that await a backend: SAVE, BGREWRITEAOF, WAITAOF)."""
        self.event = event
        self.result = result
        return self


class Waiter:
    """One blocked client in the queues of its keys."""

    __slots__ = ("client", "block", "event", "reply")

    def __init__(self, client: Client, block: Block) -> None:
        self.client = client
        self.block = block
        self.event = trio.Event()
        self.reply: Any = None


class BlockedClients:
    """The clients blocked on keys, per (database, key), oldest first.

    ``attempt(waiter)`` runs a waiter's retry in its own context and returns the reply or
    None (the engine's, which owns the command contexts).  :attr:`ready_keys` is the list the
    keyspace's modification signal appends to; it is never replaced, so the engine's hot path
    keeps a reference to it and tests it without a call."""

    def __init__(self, attempt: Callable[[Waiter], Any]) -> None:
        self._attempt = attempt
        self.waiters: dict[tuple[int, bytes], deque[Waiter]] = {}
        self.ready_keys: list[tuple[int, bytes]] = []

    def register(self, client: Client, block: Block) -> None:
        """Queue ``client`` on its keys now, in the same turn its command blocked.

        Why not when :meth:`wait` starts: the transport first flushes the client's earlier
        replies (under ``appendfsync always``, after an fsync), and a write from another
        client in that gap would find nobody waiting: the entry or element goes to a client
        that blocked later, or to nobody (XREAD ``$`` then misses it).  Redis queues a blocked
        client before it runs the next command; so do we.  A client that disconnects before
        waiting is dequeued by :meth:`drop`."""
        if block.event is not None or block.waiter is not None:
            return
        db = block.db or client.db
        waiter = Waiter(client, block)
        for key in dict.fromkeys(block.keys):
            self.waiters.setdefault((db.index, key), deque()).append(waiter)
            db.blocked[key] = db.blocked.get(key, 0) + 1
        block.waiter = waiter
        client.blocked = True

    def _unregister(self, waiter: Waiter) -> None:
        block = waiter.block
        db = block.db or waiter.client.db
        waiter.client.blocked = False
        if block.waiter is None:
            return
        block.waiter = None
        for key in dict.fromkeys(block.keys):
            queue = self.waiters.get((db.index, key))
            if queue is not None:
                try:
                    queue.remove(waiter)
                except ValueError:
                    pass
                if not queue:
                    del self.waiters[(db.index, key)]
            count = db.blocked.get(key, 0) - 1
            if count <= 0:
                db.blocked.pop(key, None)
            else:
                db.blocked[key] = count

    def drop(self, client: Client) -> None:
        """``client`` disconnected: out of every queue it is in."""
        for queue in list(self.waiters.values()):
            for waiter in list(queue):
                if waiter.client is client:
                    self._unregister(waiter)

    async def wait(self, client: Client, block: Block) -> Any:
        """Wait until ``block.attempt`` succeeds (served by :meth:`serve`) or the timeout runs
        out; a Block made by ``waiting_on`` waits for its event instead."""
        if block.event is not None:
            client.blocked = not block.paused  # held by CLIENT PAUSE: not "blocked"
            try:
                await block.event.wait()
            finally:
                client.blocked = False
            assert block.result is not None
            reply = block.result.get("reply")
            if reply.__class__ is Block and block.paused:
                # A held command that blocks (or is held again) once the pause ended.
                if reply.event is None and client.multi is not None:
                    return reply.timeout_reply
                return await self.wait(client, reply)
            return reply
        self.register(client, block)
        waiter = block.waiter
        assert waiter is not None
        try:
            if waiter.event.is_set():
                pass  # served between blocking and this wait
            elif block.timeout > 0:
                with trio.move_on_after(block.timeout):
                    await waiter.event.wait()
            else:
                await waiter.event.wait()
        finally:
            self._unregister(waiter)
        if waiter.event.is_set():
            return waiter.reply
        return block.timeout_reply

    def unblock(self, client: Client, reply: Any) -> bool:
        """CLIENT UNBLOCK: wake ``client`` with ``reply``; False if it was not blocked."""
        for queue in self.waiters.values():
            for waiter in queue:
                if waiter.client is client and not waiter.event.is_set():
                    waiter.reply = reply
                    waiter.event.set()
                    return True
        return False

    def serve(self) -> None:
        """Serve clients blocked on keys that became ready, oldest first, each in its own
        context, until a key has nothing left to give."""
        ready_keys = self.ready_keys
        while ready_keys:
            ready = ready_keys[:]
            ready_keys.clear()  # emptied in place: the engine holds this list
            for db_index, key in dict.fromkeys(ready):
                queue = self.waiters.get((db_index, key))
                while queue:
                    waiter = queue[0]
                    if waiter.event.is_set():
                        queue.popleft()
                        continue
                    waiter.block.ready_key = key
                    reply = self._attempt(waiter)
                    if reply is None:
                        break
                    waiter.reply = reply
                    waiter.event.set()
                    queue.popleft()


def waiting_block(spawn: Callable[[Callable[[], Any]], None], awaitable: Any) -> Block:
    """A Block whose reply is ``awaitable``'s result, awaited by a task that ``spawn``
    starts (SAVE, DEBUG RELOAD, WAITAOF): the client waits, not the server; a CommandError
    becomes the error reply."""
    result: dict[str, Any] = {}
    done = trio.Event()

    async def runner() -> None:
        try:
            result["reply"] = await awaitable
        except CommandError as error:
            result["reply"] = ErrorReply(error.message.encode())
        finally:
            done.set()

    spawn(runner)
    return Block([], 0, lambda _ctx: None, None).waiting_on(done, result)
