"""The keyspace: numbered databases of key -> value, with expiry in absolute milliseconds.

Values are plain Python objects: ``bytes`` for strings, ``collections.deque`` for lists,
``dict`` for hashes, ``set`` for sets, :class:`trioredis.types.ZSet` for sorted sets; a plugin
may store its own type and name it through the ``trioredis_value_type`` hook.

Expiry is lazy on access and active in :meth:`Keyspace.active_expire_cycle` (called from the
server cron), both propagated as ``DEL`` so the AOF and any listener see the deletion.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from itertools import compress
from operator import attrgetter
from typing import Any

from . import memory
from .errors import WRONGTYPE, CommandError
from .pubsub import notify_keyspace_event

Propagate = Callable[[int, list[bytes]], None]
# A keyspace event: (class, event name, key, db), as trioredis.pubsub.notify_keyspace_event.
Notify = Callable[[str, bytes, bytes, int], None]

_HEADER = memory.BYTES_HEADER  # a bytes object's header (a local name: set() runs per write)

LRU_CLOCK_MAX = (1 << 24) - 1  # the 24 bits Redis keeps per object
_STALE = attrgetter("stale")
_USED = attrgetter("used")

TYPE_NAMES: dict[type, str] = {bytes: "string", deque: "list", dict: "hash", set: "set"}


def now_ms() -> int:
    return int(time.time() * 1000)


def lru_clock() -> int:
    """Redis's LRU clock: seconds, in the 24 bits an object keeps (trioredis.eviction)."""
    return int(time.time()) & LRU_CLOCK_MAX


class Database:
    """One numbered database."""

    __slots__ = ("index", "data", "expires", "keyspace", "watched", "blocked", "_expire_scan",
                 "promoted", "used", "sizes", "basis", "stale", "access", "lfu", "clock",
                 "audit_scan", "evict_scan")

    def __init__(self, index: int, keyspace: Keyspace) -> None:
        self.index = index
        self.data: dict[bytes, Any] = {}
        self.expires: dict[bytes, int] = {}
        self.keyspace = keyspace
        # key -> clients WATCHing it; key -> count of clients blocked on it.
        self.watched: dict[bytes, set[Any]] = {}
        self.blocked: dict[bytes, int] = {}
        self._expire_scan: list[bytes] = []  # keys still to visit in this active-expiry round
        # Keys whose hash or set Redis would hold as a hash table whatever its shape now
        # (trioredis.encodings): dropped here when the key goes or gets a new value.
        self.promoted: set[bytes] = set()
        # Memory accounting (trioredis.memory): the running estimate of keys and values, and
        # the estimates of containers (strings need none: their size is their length).
        self.used = 0
        self.sizes: dict[bytes, int] = {}
        # key -> (length, estimate) of a container's last full estimate (memory.refresh).
        self.basis: dict[bytes, tuple[int, int]] = {}
        # Keys written since memory was last read: re-estimated then (memory.settle).
        self.stale: set[bytes] = set()
        self.audit_scan: list[bytes] = []
        # key -> LRU clock (seconds, 24 bits) or, under an LFU policy, LFU word
        # (trioredis.eviction).  As Redis keeps the LRU clock in every object unless an LFU
        # policy is set, the clock is stored on every access whatever the policy, so OBJECT
        # IDLETIME means something under noeviction too.
        self.access: dict[bytes, int] = {}
        # Whether an LFU policy is set (the word then needs the evictor's arithmetic), and
        # the LRU clock of now, refreshed by the cron (Keyspace.tick): a read stores this int
        # rather than asking the time, as Redis reads server.lruclock.
        self.lfu = False
        self.clock = keyspace.clock
        self.evict_scan: Any = None  # the eviction sampler's snapshot (trioredis.eviction)

    def __len__(self) -> int:
        return len(self.data)

    # --- reading ---------------------------------------------------------------------------

    def get(self, key: bytes) -> Any:
        """The value at ``key``, or None (expired keys are deleted on the way); an access for
        LRU/LFU (Redis's lookupKey without NOTOUCH)."""
        value = self.data.get(key)
        if value is not None:
            if self.expires:
                when = self.expires.get(key)
                if when is not None and when <= now_ms() and not self.keyspace.loading:
                    if not self.keyspace.expiry_paused:  # CLIENT PAUSE: missing, not deleted
                        self.expire_key(key)
                    return None
            if value.__class__ is not bytes:
                # A container may be changed in place by the command that looked it up:
                # estimated again when memory is next read (trioredis.memory.settle).
                self.stale.add(key)
            if self.lfu:
                self.keyspace.record_access(self, key)
            else:
                self.access[key] = self.clock
        return value

    def peek(self, key: bytes) -> Any:
        """:meth:`get` without counting an access (Redis's LOOKUP_NOTOUCH: EXISTS, TYPE, TTL,
        OBJECT, MEMORY USAGE)."""
        value = self.data.get(key)
        if value is not None and self.expires:
            when = self.expires.get(key)
            if when is not None and when <= now_ms() and not self.keyspace.loading:
                if not self.keyspace.expiry_paused:  # CLIENT PAUSE: missing, not deleted
                    self.expire_key(key)
                return None
        return value

    def get_typed(self, key: bytes, kind: type) -> Any:
        """The value at ``key`` when it is of ``kind``; None when missing; WRONGTYPE else."""
        value = self.get(key)
        if value is not None and value.__class__ is not kind:
            raise CommandError(WRONGTYPE)
        return value

    def contains(self, key: bytes) -> bool:
        return self.get(key) is not None

    def ttl_ms(self, key: bytes) -> int | None:
        """Milliseconds left, None without an expiry (call after checking the key exists)."""
        when = self.expires.get(key)
        if when is None:
            return None
        return max(0, when - now_ms())

    def random_key(self) -> bytes | None:
        for _ in range(100):
            if not self.data:
                return None
            key = random.choice(list(self.data)) if len(self.data) < 64 else _sample(self.data)
            if self.get(key) is not None:
                return key
        return next(iter(self.data), None)

    # --- writing ---------------------------------------------------------------------------

    def set(self, key: bytes, value: Any, keep_ttl: bool = False) -> None:
        """Store ``value``; an existing expiry is removed unless ``keep_ttl``.  A key that did
        not exist publishes the ``new`` keyspace event (Redis 7.0's ``dbAdd``), before the
        event of the command that created it; an overwrite costs only the membership test."""
        data = self.data
        old = data.get(key)
        if self.promoted and (old is not value or value.__class__ is bytes):
            # Encoding history: a new value.  (A container edited in place is the same
            # object; a string is always a new value, even the same object: CPython shares
            # its one-byte strings.  The raw-string writers mark the key after the set.)
            self.promoted.discard(key)
        if old.__class__ is bytes and value.__class__ is bytes:
            # The common overwrite, string by string: the accounting is the length change.
            data[key] = value
            self.used += len(value) - len(old)
            if self.lfu:
                self.keyspace.record_access(self, key, False)
            else:
                self.access[key] = self.clock
            if not keep_ttl and self.expires:
                self.expires.pop(key, None)
            return
        keyspace = self.keyspace
        # The accounting (trioredis.memory) in one update of ``used``.
        if old is None:
            if keyspace.notifying:
                data[key] = value
                keyspace.notify("n", b"new", key, self.index)
            delta = _HEADER + len(key)
        elif old.__class__ is bytes:
            delta = -_HEADER - len(old)
        else:
            delta = -self.sizes.pop(key, 0)
            self.basis.pop(key, None)
            if keyspace.lazy_server_del and old is not value:  # lazyfree-lazy-server-del
                keyspace.release(old)
        data[key] = value
        if value.__class__ is bytes:
            self.used += delta + _HEADER + len(value)
        else:
            # A container is often filled after it is stored (RPUSH on a new key): it is
            # estimated once the command is done, like one changed in place.
            self.sizes[key] = 0
            self.stale.add(key)
            self.used += delta
        if self.lfu:
            keyspace.record_access(self, key, old is None)
        else:
            self.access[key] = self.clock
        if not keep_ttl and self.expires:
            self.expires.pop(key, None)

    def replace_string(self, key: bytes, old: bytes, new: bytes) -> None:
        """Put the string ``new`` where the string ``old`` is, keeping the TTL (INCR, the
        HyperLogLog commands): :meth:`set` without its checks, for hot paths."""
        self.data[key] = new
        if self.promoted:  # encoding history: a raw string gets a new value
            self.promoted.discard(key)
        self.used += len(new) - len(old)

    def set_many(self, keys: list[bytes], values: list[bytes]) -> None:
        """MSET's writes (``keys[i]`` gets ``values[i]``, the last of a repeated key wins)
        when nothing needs publishing and no key has a TTL.

        Why two paths: when every key already holds a string (MSET's usual overwrite), the
        accounting is the change of total length over the distinct keys, summed in C, and
        the dicts are updated whole; anything else (a new key, a container replaced) goes
        pair by pair through :meth:`set`, which knows every case."""
        data = self.data
        pairs = dict(zip(keys, values, strict=True))  # the distinct keys, each its last value
        try:
            # bytes.__len__ refuses anything but a string (None for a new key, a container):
            # the type test and the old lengths in one C-level pass.
            before = sum(map(bytes.__len__, map(data.get, pairs)))
        except TypeError:
            for key, value in zip(keys, values, strict=True):
                self.set(key, value)
            return
        data.update(pairs)
        if self.promoted:  # encoding history: raw strings get new values
            self.promoted.difference_update(pairs)
        self.used += sum(map(len, pairs.values())) - before
        if self.lfu:
            for key in pairs:
                self.keyspace.record_access(self, key, False)
        else:
            self.access.update(dict.fromkeys(pairs, self.clock))

    def forget(self, key: bytes, value: Any) -> None:
        """Take ``key`` and its ``value`` (just removed from ``data``) out of the accounting
        and the access times."""
        if value.__class__ is bytes:
            self.used -= 2 * memory.BYTES_HEADER + len(key) + len(value)
        else:
            self.used -= memory.BYTES_HEADER + len(key) + self.sizes.pop(key, 0)
            self.basis.pop(key, None)
        if self.access:
            self.access.pop(key, None)
        if self.promoted:
            self.promoted.discard(key)

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; True when it existed (and had not expired)."""
        value = self.peek(key)
        if value is None:
            return False
        del self.data[key]
        self.forget(key, value)
        if self.expires:
            self.expires.pop(key, None)
        keyspace = self.keyspace
        if value.__class__ is not bytes:
            lazy = keyspace.lazy_del  # DEL/UNLINK say; any other delete is a server's
            if lazy if lazy is not None else keyspace.lazy_server_del:
                keyspace.release(value)
        return True

    def set_expire(self, key: bytes, when_ms: int) -> None:
        self.expires[key] = when_ms

    def persist(self, key: bytes) -> bool:
        return self.expires.pop(key, None) is not None

    def expire_key(self, key: bytes) -> None:
        """Delete an expired key, publish the ``expired`` keyspace event (lazy and active
        expiry alike, as Redis's ``deleteExpiredKeyAndPropagate``) and propagate the deletion
        as DEL."""
        value = self.data.pop(key, None)
        keyspace = self.keyspace
        if value is not None:
            self.forget(key, value)
            if keyspace.lazy_expire and value.__class__ is not bytes:  # lazyfree-lazy-expire
                keyspace.release(value)
        self.expires.pop(key, None)
        keyspace.expired_keys += 1
        if keyspace.notifying:
            keyspace.notify("x", b"expired", key, self.index)
        self.keyspace.propagate(self.index, [b"DEL", key])
        self.keyspace.signal_modified(self, key)
        if keyspace.on_expired is not None:  # client-side caching (trioredis.tracking)
            keyspace.on_expired(self, key)

    def clear(self, lazy: bool = False) -> int:
        """Empty the database; ``lazy`` hands the old dicts to the lazy freer (FLUSHDB ASYNC)
        instead of freeing them now."""
        removed = len(self.data)
        for key in list(self.watched):
            if key in self.data:  # as Redis: a watched key that did not exist is not touched
                self.keyspace.signal_modified(self, key)
        old = (self.data, self.expires, self.sizes, self.access, self.basis)
        cost = memory.dataset_bytes(self)
        self.data = {}
        self.expires = {}
        self.promoted = set()
        self.used = 0
        self.sizes = {}
        self.basis = {}
        self.stale = set()
        self.access = {}
        self.audit_scan = []
        self.evict_scan = None
        if lazy and removed > memory.LAZYFREE_THRESHOLD:
            self.keyspace.lazyfree.drop(old[0], removed, cost)
            for table in old[1:]:
                if table:
                    self.keyspace.lazyfree.drop(table, 0, 0)
        return removed

    def items(self) -> Iterator[tuple[bytes, Any, int | None]]:
        """Every live key with its value and absolute expiry (ms) or None."""
        expires = self.expires
        current = now_ms()
        for key, value in list(self.data.items()):
            when = expires.get(key)
            if when is not None and when <= current:
                continue
            yield key, value, when


def _sample(data: dict[bytes, Any]) -> bytes:
    """A random key without copying the dict (dicts have no random access; islice skips in C)."""
    return next(itertools.islice(iter(data), random.randrange(len(data)), None))


class KeyspaceNotifier:
    """What the keyspace publishes its own events through (``new``, ``expired``): the pub/sub
    hub and the config in force, and nothing else of the server.  It has exactly the two
    members :func:`trioredis.pubsub.notify_keyspace_event` reads (``config`` for
    ``notify-keyspace-events``, ``pubsub`` to publish), so that function serves it as it
    serves the engine; the engine hands it each new config (CONFIG SET)."""

    __slots__ = ("config", "pubsub")

    def __init__(self, pubsub: Any, config: Any) -> None:
        self.pubsub = pubsub
        self.config = config

    def __call__(self, event_class: str, event: bytes, key: bytes, db: int) -> None:
        notify_keyspace_event(self, event_class, event, key, db)


class Keyspace:
    """All databases, the propagation sink, and the bookkeeping WATCH and blocking pops need."""

    def __init__(self, databases: int, propagate: Propagate,
                 notify: Notify | None = None) -> None:
        self.clock = lru_clock()  # before the databases: each keeps a copy (Database.clock)
        self.databases = [Database(i, self) for i in range(databases)]
        self.propagate = propagate
        # The keyspace's own events (``new``, ``expired``): ``notify(class, event, key, db)``
        # publishes one; ``notifying`` (kept current by the engine on CONFIG SET) says whether
        # notify-keyspace-events is on at all, so a new key costs one attribute test.
        self.notify = notify
        self.notifying = False
        self.loading = False
        self.expired_keys = 0
        # Access times (trioredis.eviction): the LRU clock always (Database.clock), the LFU
        # word under an LFU policy, through record_access(db, key, created) set by the
        # evictor.
        self.record_access: Callable[..., None] = lambda db, key, created=False: None
        # Lazy freeing (UNLINK, FLUSH* ASYNC, lazyfree-lazy-*): DEL and UNLINK set lazy_del
        # while they run (True: lazy, False: not); None leaves it to lazy_server_del.
        self.lazyfree = memory.LazyFree()
        self.lazy_del: bool | None = None
        # lazyfree-lazy-server-del and lazyfree-lazy-expire, kept current by the engine.
        self.lazy_server_del = False
        self.lazy_expire = False
        # Set by the engine: called when a key that a client WATCHes or waits on changes.
        self.on_modified: Callable[[Database, bytes], None] | None = None
        # Set by the engine: called for each key that expires (tracking invalidation).
        self.on_expired: Callable[[Database, bytes], None] | None = None
        # CLIENT PAUSE (trioredis.pause): keys do not expire, lazily or actively.
        self.expiry_paused = False

    def __getitem__(self, index: int) -> Database:
        return self.databases[index]

    def __len__(self) -> int:
        return len(self.databases)

    def tick(self) -> None:
        """The cron's refresh of the LRU clock each database stores on access (Redis's
        server.lruclock, updated in serverCron: a resolution of a second needs no more)."""
        clock = lru_clock()
        if clock != self.clock:
            self.clock = clock
            for db in self.databases:
                db.clock = clock

    def signal_modified(self, db: Database, key: bytes) -> None:
        if (db.watched or db.blocked) and self.on_modified is not None:
            self.on_modified(db, key)

    def swap(self, first: int, second: int) -> None:
        a, b = self.databases[first], self.databases[second]
        a.data, b.data = b.data, a.data
        a.expires, b.expires = b.expires, a.expires
        a.promoted, b.promoted = b.promoted, a.promoted
        a.used, b.used = b.used, a.used
        a.sizes, b.sizes = b.sizes, a.sizes
        a.basis, b.basis = b.basis, a.basis
        a.stale, b.stale = b.stale, a.stale
        a.access, b.access = b.access, a.access
        a.audit_scan = b.audit_scan = []
        a.evict_scan = b.evict_scan = None
        for db in (a, b):
            for key in list(db.watched) + list(db.blocked):
                self.signal_modified(db, key)

    def flush_all(self, lazy: bool = False) -> int:
        return sum(db.clear(lazy) for db in self.databases)

    def release(self, value: Any) -> None:
        """Free a deleted value lazily when it is big enough to be worth it (UNLINK)."""
        effort = memory.free_effort(value)
        if effort > memory.LAZYFREE_THRESHOLD:
            self.lazyfree.drop(value, effort, memory.estimate_value(value))

    def dataset_bytes(self) -> int:
        """The dataset's estimate over all databases (trioredis.memory), containers written
        since the last call estimated again first."""
        # Under maxmemory this runs after every write: the tests of all 16 databases are
        # C-level passes (attrgetter, compress), Python code runs for the live ones only.
        databases = self.databases
        if any(map(_STALE, databases)):
            for db in compress(databases, map(_STALE, databases)):
                memory.settle_db(db)
        return sum(map(memory.dataset_bytes, compress(databases, map(_USED, databases))))

    def key_count(self) -> int:
        return sum(len(db.data) for db in self.databases)

    def active_expire_cycle(self, budget_keys: int = 2000) -> int:
        """Active expiry: visit keys with a TTL in each database, a slice per call, and delete
        the expired ones, so memory of expired keys is reclaimed without traffic.  Each
        database walks a snapshot of its keys-with-TTL round-robin (Redis's cursor scan);
        a call stops after ``budget_keys`` visits per database.  Returns the deleted count."""
        if self.loading or self.expiry_paused:
            return 0
        deleted = 0
        current = now_ms()
        for db in self.databases:
            expires = db.expires
            if not expires:
                db._expire_scan = []
                continue
            if not db._expire_scan:
                db._expire_scan = list(expires)
            batch = db._expire_scan[-budget_keys:]
            del db._expire_scan[-budget_keys:]
            for key in batch:
                when = expires.get(key)
                if when is not None and when <= current:
                    db.expire_key(key)
                    deleted += 1
        return deleted
