"""Client-side caching: who may hold which key, and the invalidation messages (Redis 7.0's
``CLIENT TRACKING``).

Two modes, as Redis has them:

- **Default mode**: every read-only command a tracking client runs remembers its keys in one
  table, key -> ids of the clients that read it (global to all databases: a client caches by
  key name, not by database).  When the key changes, each of those clients gets one
  ``invalidate`` message with that key, and the key leaves the table until read again.  The
  table is bounded by ``tracking-table-max-keys``: past it, keys are dropped (and their readers
  told) as if they had changed.
- **Broadcast mode** (``BCAST``): nothing is remembered per read; a client subscribes to key
  prefixes, and every change of a key under a prefix is collected and sent once per event
  loop turn, in one message per prefix listing the changed keys in byte order.

A message goes to the tracking client itself as a RESP3 push (``>2 invalidate [keys]``), or
to the client named by ``REDIRECT``: as a push when that one speaks RESP3, as a Pub/Sub
``message`` on ``__redis__:invalidate`` when it speaks RESP2 and is subscribed; a RESP2 client
without redirection gets nothing.  A flush (FLUSHDB, FLUSHALL) sends a null instead of keys to
every tracking client, and empties the table.

An invalidation meant for the client whose command caused it waits until that command's reply
has been queued (after EXEC's reply, in a transaction), so it never lands inside the reply.

The engine owns one :class:`Tracking` (``engine.tracking``) and calls it from a few marked
hooks: after each command (:meth:`Tracking.after_command`), on key expiry
(:meth:`Tracking.invalidate_key`, which eviction calls too), on flushes (:meth:`Tracking.flushed`),
at the end of each reactor turn (:meth:`Tracking.broadcast`) and when a client leaves.  A
server where nobody ever enabled tracking pays one attribute test per command.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from .errors import sanitize
from .resp import Raw

if TYPE_CHECKING:
    from .client import Client
    from .engine import Engine
    from .keyspace import Database

# The Pub/Sub channel a RESP2 client subscribes to when another client redirects its
# invalidations to it.
INVALIDATE_CHANNEL = b"__redis__:invalidate"
# A broken redirection's notice to the tracking client, and the invalidation message's name.
_INVALIDATE_HEADER = b">2\r\n$10\r\ninvalidate\r\n"
_REDIR_BROKEN = b">2\r\n$21\r\ntracking-redir-broken\r\n:%d\r\n"
_CHANNEL_HEADER = b"*3\r\n$7\r\nmessage\r\n$%d\r\n%b\r\n" % (len(INVALIDATE_CHANNEL),
                                                               INVALIDATE_CHANNEL)
# How many table keys one command may drop when the table is over tracking-table-max-keys,
# times the number of commands in a row that found it still over (Redis's effort): the cost
# per command stays bounded however far over the limit a CONFIG SET put the table.
_EVICTION_EFFORT = 100
# Commands whose changes are their inner commands' (each invalidated as it ran): their own
# dirty count must not invalidate their declared keys a second time.
_RUNS_COMMANDS = frozenset({"eval", "evalsha", "fcall", "eval_ro", "evalsha_ro", "fcall_ro",
                            "exec"})
# Commands that change only the keys that exist when they run (the others are untouched,
# and Redis does not signal them).
_DELETERS = frozenset({"del", "unlink"})
# Commands that signal their destination before their source (Redis's list moves).
_DESTINATION_FIRST = frozenset({"lmove", "rpoplpush", "blmove", "brpoplpush"})


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


def _key_array(keys: list[bytes]) -> bytes:
    return b"*%d\r\n%b" % (len(keys), b"".join(map(_bulk, keys)))


def _null(client: Client) -> bytes:
    """The null that means "every key", in the protocol of the *tracking* client (Redis sends
    its ``shared.null[c->resp]`` even when the message is redirected to another client)."""
    return b"_\r\n" if client.resp3 else b"$-1\r\n"


class ClientTracking:
    """One client's tracking options (``client.tracking`` while tracking is on)."""

    __slots__ = ("redirect", "bcast", "optin", "optout", "noloop", "caching", "broken",
                 "prefixes")

    def __init__(self) -> None:
        self.redirect = 0  # client id, 0 for none
        self.bcast = False
        self.optin = False
        self.optout = False
        self.noloop = False
        # CLIENT CACHING YES (optin) or NO (optout): applies to the next command only.
        self.caching = False
        self.broken = False  # the redirection's client is gone (CLIENT LIST flag R)
        self.prefixes: dict[bytes, None] = {}  # BCAST prefixes, in the order given


class _Prefix:
    """A broadcast prefix: its subscribers, and the keys under it changed since the last
    broadcast, each with the client that changed it last (for NOLOOP; None: expiry...)."""

    __slots__ = ("clients", "keys")

    def __init__(self) -> None:
        self.clients: dict[Client, None] = {}
        self.keys: dict[bytes, Client | None] = {}


class Tracking:
    """The server's tracking state; built by the engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # key -> ids of the clients that may cache it; None until a client first enables
        # tracking (then every hook has something to do).
        self.table: dict[bytes, dict[int, None]] | None = None
        self.total_items = 0  # (key, client) pairs in the table: INFO tracking_total_items
        self.prefixes: dict[bytes, _Prefix] = {}
        # The distinct lengths of the prefixes (length -> how many): a changed key looks up
        # its own first bytes at each length instead of testing every prefix.
        self._prefix_lengths: dict[int, int] = {}
        self.clients = 0  # clients with tracking on: INFO tracking_clients
        # Invalidations for the client whose command is running, sent after its reply
        # (key None: a flush).
        self.pending: list[tuple[Client, bytes | None]] = []
        self._broadcast_due = False
        self._broadcast_scheduled = False
        self._over_limit_runs = 0

    # --- CLIENT TRACKING -------------------------------------------------------------------

    def enable(self, client: Client, redirect: int, bcast: bool, optin: bool, optout: bool,
               noloop: bool, prefixes: list[bytes]) -> None:
        """CLIENT TRACKING ON with checked options: (re)set the client's mode; BCAST prefixes
        add to those it has (none given: every key)."""
        state = client.tracking
        if state is None:
            state = client.tracking = ClientTracking()
            self.clients += 1
        caching = state.caching  # kept across ON, as Redis keeps the flag
        state.redirect = redirect
        state.bcast, state.optin, state.optout, state.noloop = bcast, optin, optout, noloop
        state.caching = caching
        state.broken = False
        if self.table is None:
            self.table = {}
            self.engine.refresh_extras()
        if bcast:
            for prefix in prefixes or [b""]:
                if prefix not in state.prefixes:
                    state.prefixes[prefix] = None
                    entry = self.prefixes.get(prefix)
                    if entry is None:
                        entry = self.prefixes[prefix] = _Prefix()
                        length = len(prefix)
                        self._prefix_lengths[length] = self._prefix_lengths.get(length, 0) + 1
                    entry.clients[client] = None

    def disable(self, client: Client) -> None:
        """CLIENT TRACKING OFF, RESET, or the client leaving.  Its ids stay in the table until
        their keys change (as in Redis: a message to a client no longer tracking is dropped)."""
        state = client.tracking
        if state is None:
            return
        for prefix in state.prefixes:
            entry = self.prefixes.get(prefix)
            if entry is not None:
                entry.clients.pop(client, None)
                if not entry.clients:
                    del self.prefixes[prefix]
                    length = len(prefix)
                    self._prefix_lengths[length] -= 1
                    if not self._prefix_lengths[length]:
                        del self._prefix_lengths[length]
        client.tracking = None
        self.clients -= 1

    def prefix_overlap(self, client: Client, prefixes: list[bytes]) -> str | None:
        """The error for given prefixes overlapping the client's own or each other (one
        starting the other), or None: the same message as Redis's pairwise check (the
        first given prefix with an overlap, against the first of the client's prefixes in
        byte order, else the first later given one), in O(n log n) instead of O(n**2), since
        the list is the client's to make as long as it likes."""
        state = client.tracking
        existing = sorted(state.prefixes) if state is not None else []
        first = _first_overlapping(existing, prefixes)
        if first is None:
            return None
        prefix = prefixes[first]
        for other in existing:
            if _overlap(other, prefix):
                return sanitize(
                    f"ERR Prefix '{_text(prefix)}' overlaps with an existing prefix "
                    f"'{_text(other)}'. Prefixes for a single client must not overlap.")
        for other in prefixes[first + 1:]:
            if _overlap(prefix, other):
                return sanitize(
                    f"ERR Prefix '{_text(prefix)}' overlaps with another provided prefix "
                    f"'{_text(other)}'. Prefixes for a single client must not overlap.")
        return None  # not reached: _first_overlapping found a partner

    # --- the engine's hooks ----------------------------------------------------------------

    def before_command(self, db: Database, spec: Any, argv: list[bytes]) -> list[bytes] | None:
        """Before a command runs: for DEL and UNLINK, which of their keys exist (each one
        looked up as they will, so one that has expired expires, and is invalidated, here)."""
        if spec.name not in _DELETERS:
            return None
        return [key for key in dict.fromkeys(spec.keys(argv)) if db.contains(key)]

    def changed_keys(self, spec: Any, argv: list[bytes], db: Database,
                     existed: list[bytes] | None) -> list[bytes]:
        """The keys a command that changed something changed, in the order Redis signals
        them: the keys its key specs say it writes (INSERT/UPDATE/DELETE; a store command's
        sources are only read), every key when none is marked so."""
        if existed is not None:
            return existed
        keys = [key for key, (_read, write) in spec.keys_with_access(argv) if write]
        if not keys:
            return (spec.write_keys or spec.keys)(argv)
        if spec.name in _DESTINATION_FIRST:
            keys.reverse()
        return keys

    def after_command(self, client: Client, spec: Any, argv: list[bytes], dirty: int,
                      db: Database, nested: bool, existed: list[bytes] | None = None) -> None:
        """After a command ran (``nested``: inside EXEC or a script): invalidate the keys it
        changed, remember the keys a tracking client read, and end a one-command CLIENT
        CACHING.  ``existed``: what :meth:`before_command` found."""
        scripting = getattr(self.engine, "scripting", None)
        run = scripting.run if scripting is not None else None
        in_script = run is not None and client is scripting.client
        reader = run.caller if in_script else client
        if dirty and spec.name not in _RUNS_COMMANDS:
            for key in self.changed_keys(spec, argv, db, existed):
                self.invalidate(key, modifier=client, current=reader)
        elif spec.name == "ltrim" and db.data.get(argv[1]).__class__ is deque:
            # Redis signals LTRIM's list even when the range kept every element.
            self.invalidate(argv[1], modifier=client, current=reader)
        state = reader.tracking
        if state is None:
            return
        if "readonly" in spec.flags and not state.bcast and spec.name not in _RUNS_COMMANDS:
            # OPTIN remembers only after CLIENT CACHING YES, OPTOUT all but after CACHING NO.
            skipped = state.caching if state.optout else state.optin and not state.caching
            if not skipped:
                if in_script:
                    # Redis 7.0 remembers the keys of the script's command (EVAL's KEYS),
                    # each time the script runs a read, not the keys the read names.
                    found = self.engine._lookup(run.command[0]) if run.command else None
                    keys = found[0].keys(run.command) if found is not None else []
                else:
                    keys = spec.keys(argv)
                self._remember(reader, keys)
        # CLIENT CACHING lasts for the command after it (all of a transaction's, when given
        # inside MULTI): cleared after any other top-level command.
        if state.caching and not nested and client.multi is None and spec.name != "client":
            state.caching = False

    def _remember(self, client: Client, keys: list[bytes]) -> None:
        table = self.table
        if table is None or not keys:
            return
        for key in keys:
            ids = table.get(key)
            if ids is None:
                ids = table[key] = {}
            if client.id not in ids:
                ids[client.id] = None
                self.total_items += 1

    def limit(self) -> None:
        """tracking-table-max-keys, checked before each command as Redis does (so the table
        may hold one command's keys too many until the next): drop keys, oldest remembered
        first (Redis picks at random), telling their readers at once as if the keys had
        changed, with bounded effort per command."""
        table = self.table
        limit = self.engine.config.tracking_table_max_keys
        if table is None or not limit or len(table) <= limit:
            self._over_limit_runs = 0
            return
        effort = _EVICTION_EFFORT * (self._over_limit_runs + 1)
        while effort > 0 and len(table) > limit:
            effort -= 1
            self.invalidate(next(iter(table)), broadcast=False)
        self._over_limit_runs = 0 if len(table) <= limit else self._over_limit_runs + 1

    def invalidate_key(self, db: Database | None, key: bytes) -> None:
        """``key`` changed outside any client's command: expiry, eviction (for the memory
        subsystem: call it for each evicted key).  ``db`` is accepted for symmetry with the
        keyspace's other signals; the table is global to all databases, as in Redis."""
        if self.table is None:
            return
        self.invalidate(key, modifier=None, current=self.running())

    def running(self) -> Client | None:
        """The client whose command runs now (a script's caller, not its own client), as
        Redis's ``server.current_client``; None in the cron."""
        engine = self.engine
        current = engine._current
        scripting = getattr(engine, "scripting", None)
        if current is not None and scripting is not None and current is scripting.client \
                and scripting.run is not None:
            return scripting.run.caller
        return current

    def invalidate(self, key: bytes, modifier: Client | None = None,
                   current: Client | None = None, broadcast: bool = True) -> None:
        """``key`` changed (``modifier`` changed it; ``current`` is the client whose command
        is running): queue it for broadcast prefixes, and tell every client that may cache
        it, once; the key leaves the table."""
        table = self.table
        if table is None:
            return
        if broadcast and self.prefixes:
            prefixes = self.prefixes
            size = len(key)
            for length in self._prefix_lengths:
                if length <= size:
                    entry = prefixes.get(key[:length])
                    if entry is not None:
                        entry.keys[key] = modifier
                        self._broadcast_due = True
            if self._broadcast_due:
                self._schedule_broadcast()
        ids = table.pop(key, None)
        if ids is None:
            return
        self.total_items -= len(ids)
        clients = self.engine.clients
        for client_id in ids:
            target = clients.get(client_id)
            if target is None:
                continue
            state = target.tracking
            if state is None or state.bcast:
                continue
            if target is current:
                if state.noloop:
                    continue
                self.pending.append((target, key))  # after the running command's reply
                continue
            self.send(target, _key_array([key]))

    def flushed(self) -> None:
        """FLUSHDB, FLUSHALL: every tracking client is told that all its keys are invalid (a
        null), in connection order; the table is emptied."""
        if self.table is None:
            return
        current = self.running()
        for client in list(self.engine.clients.values()):
            if client.tracking is not None:
                if client is current:
                    self.pending.append((client, None))
                else:
                    self.send(client, _null(client))
        self.table = {}
        self.total_items = 0

    def take_pending(self, client: Client) -> bytes:
        """The invalidation messages waiting for ``client``'s reply, as bytes for its own
        connection (those redirected elsewhere are sent now)."""
        pending, self.pending = self.pending, []
        own: list[bytes] = []
        for target, key in pending:
            if target.id not in self.engine.clients or target.tracking is None:
                continue
            payload = _null(target) if key is None else _key_array([key])
            if target is not client:
                self.send(target, payload)
                continue
            message = self.message(target, payload)
            if message is not None:
                own.append(message)
        return b"".join(own)

    def with_pending(self, client: Client, reply: Any) -> Any:
        """``reply`` followed by the invalidations its command caused for this client."""
        from .engine import Block
        from .resp import encode

        if reply.__class__ is Block:  # nothing to follow yet: they go out now
            messages = self.take_pending(client)
            if messages:
                client.transport.push(Raw(messages))
            return reply
        messages = self.take_pending(client)
        if not messages:
            return reply
        if client.replies_dropped:  # CLIENT REPLY OFF/SKIP drop the reply, not the pushes
            client.transport.push(Raw(messages))
            return reply
        return Raw(encode(reply, client.resp3) + messages)

    # --- messages --------------------------------------------------------------------------

    def message(self, client: Client, payload: bytes) -> bytes | None:
        """An invalidation for tracking ``client`` as bytes for *its own* connection (None
        when it goes elsewhere or nowhere: sent by :meth:`send`)."""
        state = client.tracking
        if state is not None and state.redirect:
            self.send(client, payload)
            return None
        if client.resp3:
            return _INVALIDATE_HEADER + payload
        return None  # RESP2 without redirection: nothing can carry it

    def send(self, client: Client, payload: bytes) -> None:
        """Send an invalidation (``payload``: the keys' array or a null, as RESP) for
        tracking ``client``, to it or its redirection."""
        state = client.tracking
        target = client
        if state is not None and state.redirect:
            target = self.engine.clients.get(state.redirect)
            if target is None:
                state.broken = True
                if client.resp3:
                    client.transport.push(Raw(_REDIR_BROKEN % state.redirect))
                return
            if target.resp3:
                target.transport.push(Raw(_INVALIDATE_HEADER + payload))
            elif target.in_pubsub:
                target.transport.push(Raw(_CHANNEL_HEADER + payload))
            return
        if client.resp3:
            client.transport.push(Raw(_INVALIDATE_HEADER + payload))

    # --- broadcast -------------------------------------------------------------------------

    def _schedule_broadcast(self) -> None:
        """Changes outside a reactor turn (a client served by its own task, the cron's expiry)
        still reach BCAST clients: a task sends them once this turn of trio is done."""
        if self._broadcast_scheduled or self.engine.nursery is None:
            return
        self._broadcast_scheduled = True
        self.engine.nursery.start_soon(self._broadcast_soon)

    async def _broadcast_soon(self) -> None:
        await trio.lowlevel.checkpoint()
        self._broadcast_scheduled = False
        self.broadcast()

    def broadcast(self) -> None:
        """Send the keys collected per prefix since the last call (Redis does this before the
        event loop sleeps): prefixes in byte order, each one message per subscriber with the
        keys in byte order, minus a NOLOOP subscriber's own changes."""
        if not self._broadcast_due:
            return
        self._broadcast_due = False
        for prefix in sorted(self.prefixes):
            entry = self.prefixes[prefix]
            if not entry.keys:
                continue
            changed = sorted(entry.keys.items())
            entry.keys = {}
            everyone = _key_array([key for key, _ in changed])
            for client in list(entry.clients):
                state = client.tracking
                if state is not None and state.noloop:
                    own = [key for key, modifier in changed if modifier is not client]
                    if own:
                        self.send(client, _key_array(own))
                else:
                    self.send(client, everyone)

    # --- introspection ---------------------------------------------------------------------

    def info(self) -> dict[str, int]:
        """INFO's tracking fields."""
        return {
            "tracking_total_keys": len(self.table) if self.table is not None else 0,
            "tracking_total_items": self.total_items,
            "tracking_total_prefixes": len(self.prefixes),
        }


def _overlap(first: bytes, second: bytes) -> bool:
    """Whether one prefix starts the other (so a key could match both)."""
    return first.startswith(second) or second.startswith(first)


def _first_overlapping(existing: list[bytes], given: list[bytes]) -> int | None:
    """The index of the first given prefix that overlaps another prefix (existing or
    given), or None.  In byte order, the prefixes a string starts with form a chain just
    before it, so one pass with a stack of that chain finds every overlap: each entry that
    starts with the stack's top overlaps it (and the top has an extension).  The first
    given prefix overlapping anything is the one Redis's in-order check stops at: had its
    partner been an earlier given prefix, that one would have been first."""
    entries = sorted([(prefix, -1) for prefix in existing]
                     + [(prefix, index) for index, prefix in enumerate(given)])
    involved: set[int] = set()
    chain: list[tuple[bytes, int]] = []
    for prefix, source in entries:
        while chain and not prefix.startswith(chain[-1][0]):
            chain.pop()
        if chain:
            involved.add(source)
            involved.add(chain[-1][1])
        chain.append((prefix, source))
    involved.discard(-1)  # overlaps among the client's own prefixes are not the question
    return min(involved) if involved else None


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def flags(client: Client) -> str:
    """CLIENT LIST's tracking letters, in Redis's order: t tracking, R broken redirection,
    B broadcast."""
    state = client.tracking
    if state is None:
        return ""
    return "t" + ("R" if state.broken else "") + ("B" if state.bcast else "")


def redirect_of(client: Client) -> int:
    """CLIENT LIST's redir and CLIENT GETREDIR: the redirection (0: none), -1 when not
    tracking."""
    state = client.tracking
    return state.redirect if state is not None else -1
