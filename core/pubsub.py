"""Pub/Sub state: who listens to which channel or pattern, and the delivery of messages.

One :class:`PubSub` per engine, created on first use by :func:`of` (``engine.pubsub``), so a
server where nobody subscribes pays nothing.  The engine's ``drop_client`` and RESET call
``engine.pubsub.drop(client)``; INFO reads :attr:`PubSub.channels` and :attr:`PubSub.patterns`.

Messages leave through ``client.transport.push``: the transport encodes them for the client's
protocol (an array under RESP2, a ``>`` push under RESP3) and sends them from a task of its
own, so a publisher never waits for a slow subscriber.
"""

from __future__ import annotations

import bisect
import itertools
from typing import TYPE_CHECKING, Any

from .glob import compile_glob
from .resp import Push

if TYPE_CHECKING:
    from .client import Client
    from .glob import GlobPattern


class PatternIndex:
    """The subscribed patterns grouped by their literal prefix (the bytes before their first
    wildcard), so PUBLISH tests only the patterns whose prefix starts the channel instead of
    every pattern: one dict lookup per distinct prefix length, then the full match on the few
    candidates.  ``news.*`` and ``news.sport`` sit under ``news.`` and ``news.sport``; a
    pattern starting with a wildcard sits under ``b""`` and is tried for every channel.  At
    worst (every prefix length different) a PUBLISH makes one lookup per length up to the
    channel's, still fewer steps than Redis's one match per pattern.

    :meth:`matching` answers in the order the patterns were first subscribed.  Redis walks its
    pattern dict in hash order, which its random hash seed changes from one process to the
    next; what stays fixed, and what we keep, is one order of patterns shared by every client."""

    def __init__(self) -> None:
        self._buckets: dict[bytes, dict[bytes, tuple[int, GlobPattern]]] = {}
        self._prefixes: dict[bytes, bytes] = {}  # pattern -> its bucket
        self._length_counts: dict[int, int] = {}
        self._lengths: list[int] = []  # the distinct prefix lengths, ascending
        self._order = itertools.count()

    def add(self, pattern: bytes) -> None:
        matcher = compile_glob(pattern)
        prefix = self._prefixes[pattern] = matcher.literal_prefix
        self._buckets.setdefault(prefix, {})[pattern] = (next(self._order), matcher)
        length = len(prefix)
        count = self._length_counts.get(length, 0)
        if not count:
            bisect.insort(self._lengths, length)
        self._length_counts[length] = count + 1

    def remove(self, pattern: bytes) -> None:
        prefix = self._prefixes.pop(pattern)
        bucket = self._buckets[prefix]
        del bucket[pattern]
        if not bucket:
            del self._buckets[prefix]
        length = len(prefix)
        self._length_counts[length] -= 1
        if not self._length_counts[length]:
            del self._length_counts[length]
            self._lengths.remove(length)

    def matching(self, channel: bytes) -> list[bytes]:
        """The patterns that match ``channel``, in the order they were first subscribed."""
        found: list[tuple[int, bytes]] = []
        buckets = self._buckets
        limit = len(channel)
        for length in self._lengths:
            if length > limit:
                break
            bucket = buckets.get(channel[:length])
            if bucket is None:
                continue
            for pattern, (order, matcher) in bucket.items():
                if matcher.matches(channel):
                    found.append((order, pattern))
        if len(found) > 1:
            found.sort()
        return [pattern for _, pattern in found]


class PubSub:
    """Subscriptions of every client of one server.

    ``channels`` and ``patterns`` map a channel (or pattern) to the clients subscribed to it,
    in the order they subscribed (a dict used as an ordered set), so messages reach them in
    that order, as Redis's lists do.  ``client.channels``/``client.patterns`` hold the same
    facts seen from the client (the subscription count in replies, CLIENT LIST's sub/psub)."""

    def __init__(self) -> None:
        self.channels: dict[bytes, dict[Client, None]] = {}
        self.patterns: dict[bytes, dict[Client, None]] = {}
        self._pattern_index = PatternIndex()
        # Sharded channels (SSUBSCRIBE): a namespace of their own, without patterns.
        self.shard_channels: dict[bytes, dict[Client, None]] = {}

    # --- subscriptions ---------------------------------------------------------------------

    def subscribe(self, client: Client, channel: bytes) -> bool:
        """True when ``client`` was not yet subscribed to ``channel``."""
        if channel in client.channels:
            return False
        client.channels.add(channel)
        self.channels.setdefault(channel, {})[client] = None
        return True

    def unsubscribe(self, client: Client, channel: bytes) -> bool:
        if channel not in client.channels:
            return False
        client.channels.discard(channel)
        listeners = self.channels.get(channel)
        if listeners is not None:
            listeners.pop(client, None)
            if not listeners:
                del self.channels[channel]
        return True

    def psubscribe(self, client: Client, pattern: bytes) -> bool:
        if pattern in client.patterns:
            return False
        client.patterns.add(pattern)
        listeners = self.patterns.get(pattern)
        if listeners is None:
            listeners = self.patterns[pattern] = {}
            self._pattern_index.add(pattern)
        listeners[client] = None
        return True

    def punsubscribe(self, client: Client, pattern: bytes) -> bool:
        if pattern not in client.patterns:
            return False
        client.patterns.discard(pattern)
        listeners = self.patterns.get(pattern)
        if listeners is not None:
            listeners.pop(client, None)
            if not listeners:
                del self.patterns[pattern]
                self._pattern_index.remove(pattern)
        return True

    def drop(self, client: Client) -> None:
        """Forget every subscription of ``client`` (it disconnected or sent RESET)."""
        for channel in list(client.channels):
            self.unsubscribe(client, channel)
        for pattern in list(client.patterns):
            self.punsubscribe(client, pattern)
        for channel in list(client.shard_channels):
            self.sunsubscribe(client, channel)

    # --- sharded channels (SSUBSCRIBE, SPUBLISH) --------------------------------------------
    # Without a cluster every shard channel lives on this server: they work as channels kept
    # apart from SUBSCRIBE's, reached by SPUBLISH only, never by patterns.

    def ssubscribe(self, client: Client, channel: bytes) -> bool:
        if channel in client.shard_channels:
            return False
        client.shard_channels.add(channel)
        self.shard_channels.setdefault(channel, {})[client] = None
        return True

    def sunsubscribe(self, client: Client, channel: bytes) -> bool:
        if channel not in client.shard_channels:
            return False
        client.shard_channels.discard(channel)
        listeners = self.shard_channels.get(channel)
        if listeners is not None:
            listeners.pop(client, None)
            if not listeners:
                del self.shard_channels[channel]
        return True

    def spublish(self, channel: bytes, message: bytes, sender: Client | None = None) -> tuple[int, list[Any]]:
        """SPUBLISH: ``smessage`` to the shard channel's subscribers; the receiver count and
        the sender's own messages, as :meth:`publish` returns them."""
        listeners = self.shard_channels.get(channel)
        if not listeners:
            return 0, []
        push = Push([b"smessage", channel, message])
        own: list[Any] = []
        for client in listeners:
            if client is sender:
                own.append(push)
            else:
                client.transport.push(push)
        return len(listeners), own

    def matching_shard_channels(self, pattern: bytes | None) -> list[bytes]:
        """PUBSUB SHARDCHANNELS: the active shard channels."""
        if pattern is None:
            return list(self.shard_channels)
        matcher = compile_glob(pattern)
        # Redis's matcher never lets a non-empty pattern match the empty name (its loop
        # stops at once on an empty string): "" is listed only for the pattern "".
        return [channel for channel in self.shard_channels
                if (matcher.fullmatch(channel) if channel else not pattern)]

    # --- delivery --------------------------------------------------------------------------

    def publish(self, channel: bytes, message: bytes, sender: Client | None = None) -> tuple[int, list[Any]]:
        """Deliver ``message`` to every subscriber of ``channel`` and every pattern matching
        it.  Returns the number of receivers (PUBLISH's reply) and the messages meant for
        ``sender`` itself (a RESP3 client may publish to a channel it listens to): Redis puts
        those before the PUBLISH reply, so the caller sends them inline instead of pushing."""
        receivers = 0
        own: list[Any] = []
        listeners = self.channels.get(channel)
        if listeners:
            push = Push([b"message", channel, message])
            for client in listeners:
                if client is sender:
                    own.append(push)
                else:
                    client.transport.push(push)
            receivers += len(listeners)
        if self.patterns:
            for pattern in self._pattern_index.matching(channel):
                clients = self.patterns[pattern]
                push = Push([b"pmessage", pattern, channel, message])
                for client in clients:
                    if client is sender:
                        own.append(push)
                    else:
                        client.transport.push(push)
                receivers += len(clients)
        return receivers, own

    def matching_channels(self, pattern: bytes | None) -> list[bytes]:
        """PUBSUB CHANNELS: the active channels (with at least one subscriber)."""
        if pattern is None:
            return list(self.channels)
        match = compile_glob(pattern).matches
        return [channel for channel in self.channels if match(channel)]


def of(engine: Any) -> PubSub:
    """The engine's PubSub (built with the engine)."""
    return engine.pubsub


# --- keyspace notifications ----------------------------------------------------------------

# notify-keyspace-events letters (Redis's keyspaceEventsStringToFlags): K and E choose the
# channels, the others the classes of events; A is an alias for "g$lshzxetd" (not for "n",
# new keys, nor "m", key misses).  config.py validates the setting and keeps it in this form.
_CLASSES = frozenset("g$lshzxetdmn")
_parsed_flags: dict[str, frozenset[str]] = {}


def keyspace_event_flags(setting: str) -> frozenset[str]:
    """The letters in force for a ``notify-keyspace-events`` value (cached: called per write)."""
    flags = _parsed_flags.get(setting)
    if flags is None:
        letters = set(setting.replace("A", "g$lshzxetd"))
        if not letters & {"K", "E"} or not letters & _CLASSES:
            letters = set()
        flags = _parsed_flags[setting] = frozenset(letters)
    return flags


def notify_keyspace_event(engine: Any, event_class: str, event: bytes, key: bytes, db: int) -> None:
    """Publish one keyspace event as Redis's ``notifyKeyspaceEvent`` does, when the
    ``notify-keyspace-events`` setting selects its class (``"g"`` generic, ``"$"`` string,
    ``"l"`` list, ``"s"`` set, ``"h"`` hash, ``"z"`` sorted set, ``"x"`` expired, ...):
    ``event`` on ``__keyspace@<db>__:<key>`` (K) and ``key`` on ``__keyevent@<db>__:<event>``
    (E).  Commands call it after their change, with Redis's event name (``b"set"``,
    ``b"lpush"``, ``b"del"``, ``b"expire"``...).  Costs one dict lookup when disabled."""
    setting = engine.config.notify_keyspace_events
    if not setting:
        return
    flags = keyspace_event_flags(setting)
    if event_class not in flags:
        return
    pubsub = engine.pubsub
    if not (pubsub.channels or pubsub.patterns):
        return
    if "K" in flags:
        pubsub.publish(b"__keyspace@%d__:%s" % (db, key), event)
    if "E" in flags:
        pubsub.publish(b"__keyevent@%d__:%s" % (db, event), key)
