"""Eviction under ``maxmemory``: Redis 7.0's policies and approximations (``evict.c``).

Access times.  Each database keeps ``access``, a parallel dict of key -> word: the 24-bit LRU
clock in seconds (Redis's ``LRU_CLOCK_RESOLUTION`` of 1000 ms) under every policy but the LFU
ones, as Redis keeps it in every object, so OBJECT IDLETIME answers under ``noeviction`` too;
under an LFU policy Redis's word of 16 bits of minutes (the last decrement time) and an 8-bit
logarithmic counter.  A read (``Database.get``) or write updates it; ``Database.peek`` (EXISTS,
TYPE, TTL, OBJECT, MEMORY USAGE) does not, as Redis's ``LOOKUP_NOTOUCH``.  The LRU store is
one dict assignment of the cron-refreshed clock (``Database.clock``); the LFU word needs this
module's arithmetic (``record_access``).  A key with no word (installed whole by a snapshot
load, where :func:`trioredis.memory.recount` stamps them) counts as idle since start-up.  A
switch between LRU and LFU policies keeps the words and reads them with the new meaning, as
Redis does with an object's ``lru`` field.

Choosing.  Redis samples ``maxmemory-samples`` keys of each database (all keys, or those with
a TTL for ``volatile-*``) into a pool of 16 candidates ordered by idleness (LRU: idle time;
LFU: 255 - counter; volatile-ttl: the earliest expiry first), and evicts the best candidate
that still exists; the pool lives on across calls.  Python dicts have no random access, so the
sample is drawn from a snapshot list of each dict's keys, rebuilt after a quarter of its length
in samplings (a key added since is not sampled until then: it is the most recently used one).

When.  Before every command while ``maxmemory`` is set, as Redis's ``processCommand``: keys are
evicted until used memory (without the AOF buffer, which Redis does not count either) is under
the limit; ``-OOM`` goes to a ``denyoom`` command only when nothing could be evicted.  Each
eviction is propagated as DEL (UNLINK under ``lazyfree-lazy-eviction``), notified as
``evicted`` (class ``e``) and counted in ``evicted_keys``.  ``maxmemory-eviction-tenacity``
bounds the time one call spends; what is left is done by the next command or the cron.
"""

from __future__ import annotations

import math
import random
import time
from typing import TYPE_CHECKING, Any

from .keyspace import LRU_CLOCK_MAX, lru_clock
from .pubsub import notify_keyspace_event

if TYPE_CHECKING:
    from .config import Config
    from .engine import Engine
    from .keyspace import Database

LRU_CLOCK_RESOLUTION_MS = 1000
LFU_INIT_VAL = 5  # a new key's counter, so it is not evicted before it has a chance
EVPOOL_SIZE = 16

EVICT_OK, EVICT_RUNNING, EVICT_FAIL = 0, 1, 2

POLICIES = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
            "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction")


def lru_idle_ms(word: int, clock: int | None = None) -> int:
    """Milliseconds since ``word`` (a 24-bit clock), across the clock's wrap."""
    now = lru_clock() if clock is None else clock
    if now >= word:
        return (now - word) * LRU_CLOCK_RESOLUTION_MS
    return (now + (LRU_CLOCK_MAX - word)) * LRU_CLOCK_RESOLUTION_MS


def lfu_minutes() -> int:
    return (int(time.time()) // 60) & 65535


def lfu_elapsed(ldt: int) -> int:
    now = lfu_minutes()
    return now - ldt if now >= ldt else 65535 - ldt + now


def lfu_decayed(word: int, decay_time: int) -> int:
    """The counter of ``word`` after the periods of ``lfu-decay-time`` minutes since its
    last decrement (Redis's LFUDecrAndReturn; not stored back)."""
    counter = word & 255
    periods = lfu_elapsed(word >> 8) // decay_time if decay_time else 0
    if periods:
        counter = 0 if periods > counter else counter - periods
    return counter


def lfu_increment(counter: int, log_factor: int) -> int:
    """Redis's LFULogIncr: the higher the counter, the less likely one more access counts."""
    if counter == 255:
        return 255
    base = max(counter - LFU_INIT_VAL, 0)
    if random.random() < 1.0 / (base * log_factor + 1):
        counter += 1
    return counter


def time_limit_us(tenacity: int) -> float:
    """How long one eviction call may run (Redis's evictionTimeLimitUs)."""
    if tenacity <= 10:
        return 50 * tenacity
    if tenacity < 100:
        return 500 * math.pow(1.15, tenacity - 10)
    return math.inf


def _no_record(db: Database, key: bytes, created: bool = False) -> None:
    """``record_access`` under LRU-like policies: the databases store the clock inline."""


class Evictor:
    """The engine's eviction: the policy's access recording and the eviction pool."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.keyspace = engine.keyspace
        self.pool: list[tuple[int, int, bytes]] = []  # (score, db, key), ascending score
        self.evicted_keys = 0
        self.next_db = 0  # random policies: the database to take from next
        self.exceeded_since = 0.0  # monotonic time eviction started to lag, 0: it does not
        self.exceeded_total = 0.0
        self.tracking_since = self.keyspace.clock
        self.policy = ""
        self.lfu = False
        self.configure(engine.config)

    def configure(self, config: Config) -> None:
        """Follow ``maxmemory-policy`` (at start and on CONFIG SET)."""
        policy = config.maxmemory_policy
        if policy == self.policy:
            return
        self.policy = policy
        self.pool = []
        lfu = policy.endswith("lfu")
        if lfu == self.lfu:
            return
        # Between LRU-like and LFU policies the words are kept and read with the new
        # meaning, as Redis reads an object's lru field (an LFU word read as a clock gives
        # a large idle time there too).
        self.lfu = lfu
        keyspace = self.keyspace
        keyspace.record_access = self._record_lfu if lfu else _no_record
        for db in keyspace.databases:
            db.lfu = lfu

    # --- access times ---------------------------------------------------------------------

    def _record_lfu(self, db: Database, key: bytes, created: bool = False) -> None:
        minutes = (int(time.time()) // 60) & 65535
        if created:
            db.access[key] = (minutes << 8) | LFU_INIT_VAL
            return
        word = db.access.get(key)
        config = self.engine.config
        counter = LFU_INIT_VAL if word is None else lfu_decayed(word, config.lfu_decay_time)
        db.access[key] = (minutes << 8) | lfu_increment(counter, config.lfu_log_factor)

    def idle_ms(self, db: Database, key: bytes) -> int:
        """OBJECT IDLETIME's measure (ms) for a key under a non-LFU policy."""
        word = db.access.get(key)
        # The clock the words were stamped with (as Redis's estimateObjectIdleTime reads the
        # cached LRU_CLOCK): a fresh one could be a second ahead of a word stored just now.
        return lru_idle_ms(self.tracking_since if word is None else word, self.keyspace.clock)

    def frequency(self, db: Database, key: bytes) -> int:
        """OBJECT FREQ: the decayed LFU counter (not stored back, as Redis)."""
        word = db.access.get(key)
        if word is None:
            return LFU_INIT_VAL
        return lfu_decayed(word, self.engine.config.lfu_decay_time)

    # --- choosing -----------------------------------------------------------------------

    def _score(self, db: Database, key: bytes) -> int:
        policy = self.policy
        if policy.endswith("lru"):
            word = db.access.get(key)
            return lru_idle_ms(self.tracking_since if word is None else word)
        if policy.endswith("lfu"):
            word = db.access.get(key)
            counter = LFU_INIT_VAL if word is None else lfu_decayed(
                word, self.engine.config.lfu_decay_time)
            return 255 - counter
        # volatile-ttl: the sooner a key expires, the better a candidate.
        return (1 << 64) - db.expires.get(key, 1 << 63)

    @staticmethod
    def _table(db: Database, volatile: bool) -> dict[bytes, Any]:
        return db.expires if volatile else db.data

    @staticmethod
    def _sample(db: Database, table: dict[bytes, Any], count: int) -> list[bytes]:
        """Up to ``count`` random keys of ``table`` (see the module's note on snapshots)."""
        count = min(count, len(table))  # maxmemory-samples may be huge: the draws are not
        for _attempt in range(2):
            scan = db.evict_scan
            if scan is None or scan[1] is not table or scan[2] <= 0 or not scan[0]:
                keys = list(table)
                scan = db.evict_scan = [keys, table, max(len(keys) // 4, 16)]
            scan[2] -= 1
            keys = scan[0]
            picked: list[bytes] = []
            if keys:
                for _ in range(count * 2):  # a stale snapshot entry costs a second draw
                    key = keys[random.randrange(len(keys))]
                    if key in table:
                        picked.append(key)
                        if len(picked) == count:
                            break
            if picked or not table:
                return picked
            scan[2] = 0  # every draw was stale: take a new snapshot and draw again
        return []

    def _populate(self, db: Database, volatile: bool) -> None:
        """Redis's evictionPoolPopulate: sample keys of ``db`` into the pool."""
        table = self._table(db, volatile)
        pool = self.pool
        samples = self.engine.config.maxmemory_samples
        for key in self._sample(db, table, samples):
            score = self._score(db, key)
            if len(pool) >= EVPOOL_SIZE:
                if score <= pool[0][0]:
                    continue
                pool.pop(0)  # the least idle makes room
            entry = (score, db.index, key)
            if any(e[1] == db.index and e[2] == key for e in pool):
                continue
            position = 0
            while position < len(pool) and pool[position][0] < score:
                position += 1
            pool.insert(position, entry)

    def _pick(self) -> tuple[Database, bytes] | None:
        """The key to evict next, or None when there is none."""
        policy = self.policy
        volatile = policy.startswith("volatile")
        databases = self.keyspace.databases
        if policy.endswith("random"):
            for _ in range(len(databases)):
                db = databases[self.next_db % len(databases)]
                self.next_db += 1
                table = self._table(db, volatile)
                if table:
                    keys = self._sample(db, table, 1)
                    if keys:
                        return db, keys[0]
            return None
        while True:
            total = 0
            for db in databases:
                table = self._table(db, volatile)
                if table:
                    total += len(table)
                    self._populate(db, volatile)
            if not total:
                return None
            pool = self.pool
            while pool:
                _score, index, key = pool.pop()
                db = databases[index]
                if key in self._table(db, volatile):
                    return db, key
            # Every candidate was gone: sample again (the keys exist, as total says).

    # --- evicting ----------------------------------------------------------------------

    def used_for_eviction(self) -> int:
        """Used memory as eviction counts it: without the AOF buffer."""
        return self.engine.used_memory(for_eviction=True)

    def perform(self) -> int:
        """Redis's performEvictions: EVICT_OK (under the limit now), EVICT_RUNNING (the time
        limit ran out first: the next call goes on) or EVICT_FAIL (nothing left to evict)."""
        engine = self.engine
        config = engine.config
        maxmemory = config.maxmemory
        if not maxmemory or self.used_for_eviction() <= maxmemory:
            if self.exceeded_since:
                self.exceeded_total += time.monotonic() - self.exceeded_since
                self.exceeded_since = 0.0
            return EVICT_OK
        if config.replica_ignore_maxmemory and engine.replication.is_replica:
            # A replica follows its master's evictions (they arrive as DELs) and evicts
            # nothing itself, as Redis's replica-ignore-maxmemory yes (the default).
            return EVICT_OK
        if self.keyspace.expiry_paused:
            # CLIENT PAUSE: no eviction while paused, and the command goes on (Redis's
            # isSafeToPerformEvictions; writes are held by the pause anyway).
            return EVICT_OK
        if self.policy == "noeviction" or engine.loading or engine.capture is not None:
            return EVICT_FAIL
        if not self.exceeded_since:
            self.exceeded_since = time.monotonic()
        limit = time_limit_us(config.maxmemory_eviction_tenacity) / 1e6
        started = time.perf_counter()
        evicted = 0
        while self.used_for_eviction() > maxmemory:
            picked = self._pick()
            if picked is None:
                return EVICT_FAIL
            self._evict(*picked)
            evicted += 1
            if evicted % 16 == 0 and time.perf_counter() - started > limit:
                return EVICT_RUNNING
        self.exceeded_total += time.monotonic() - self.exceeded_since
        self.exceeded_since = 0.0
        return EVICT_OK

    def _evict(self, db: Database, key: bytes) -> None:
        engine = self.engine
        value = db.data.pop(key)
        db.forget(key, value)
        db.expires.pop(key, None)
        lazy = engine.config.lazyfree_lazy_eviction
        if lazy and value.__class__ is not bytes:
            self.keyspace.release(value)
        self.evicted_keys += 1
        engine.propagate(db.index, [b"UNLINK" if lazy else b"DEL", key])
        if engine.config.notify_keyspace_events:
            notify_keyspace_event(engine, "e", b"evicted", key, db.index)
        self.keyspace.signal_modified(db, key)
        engine.tracking.invalidate_key(db, key)  # client-side caches drop the key

    def statistics(self) -> dict[str, int]:
        """INFO stats' eviction fields (milliseconds)."""
        current = (time.monotonic() - self.exceeded_since) if self.exceeded_since else 0.0
        return {
            "evicted_keys": self.evicted_keys,
            "total_eviction_exceeded_time": int((self.exceeded_total + current) * 1000),
            "current_eviction_exceeded_time": int(current * 1000),
        }
