"""Memory accounting: what the dataset takes, kept current on every write, and lazy freeing.

Redis counts every allocation in ``zmalloc``; Python has no such counter for the objects a
database holds, and the process's RSS is the wrong measure for ``maxmemory`` (it includes the
interpreter, and it does not fall when keys are deleted).  So each database keeps a running
estimate, ``Database.used``, of what its keys and values take in Python's terms:

- a key costs ``sys.getsizeof`` of its bytes object (:data:`BYTES_HEADER` + length);
- a string value likewise: it is immutable, so its cost is known from the value alone and
  subtracted exactly when it is replaced or deleted, with no per-key record;
- a container (list, hash, set, sorted set, stream, a plugin's type) is estimated by
  :func:`estimate_value` from its own size and a *sample* of its elements (the first
  ``samples``, as Redis's ``MEMORY USAGE`` samples), so the cost of an estimate does not grow
  with the container.  The estimate is remembered in ``Database.sizes`` (containers only),
  because commands mutate containers in place, always after looking them up with
  ``Database.get``: that lookup records the key in ``Database.stale`` (one set insertion,
  nothing for strings), and the stale keys are estimated again (``settle``) when memory is
  next read (INFO, the eviction check before a command while ``maxmemory`` is set, the
  cron), once the command is done with them.

The main dicts themselves (``data``, ``expires``, and ``access`` when LRU/LFU is tracked) are
measured when asked, with ``sys.getsizeof``, which is O(1) for a dict.

Tolerance: against a ``tracemalloc`` measure of the same objects built in a fresh process, the
whole dataset estimate is within 25% for uniform data (``tests/test_memory.py`` checks it);
one key's ``MEMORY USAGE`` of a container whose elements vary in size is as good as the
sample (Redis's has the same property).
"""

from __future__ import annotations

import itertools
import sys
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from .engine import Engine
    from .keyspace import Database, Keyspace

# sys.getsizeof(b""): a bytes object's header, the rest is one byte per byte (+ the NUL).
BYTES_HEADER = sys.getsizeof(b"")
# A float object (sorted-set scores) and a (score, member) tuple in the sorted list.
_FLOAT = sys.getsizeof(0.0)
_PAIR = sys.getsizeof((0.0, b""))
# A pointer in a list / a deque block slot.
_POINTER = 8
# An int object holding an absolute expiry in milliseconds (expires' values).
_EXPIRE_INT = sys.getsizeof(1 << 40)
# How many elements MEMORY USAGE samples by default, and how deep the generic walk goes.
DEFAULT_SAMPLES = 5
_MAX_DEPTH = 6


def bytes_cost(value: bytes) -> int:
    """What a bytes object takes (its length plus the object header)."""
    return BYTES_HEADER + len(value)


def _sampled(items: Any, length: int, samples: int, cost: Any) -> int:
    """``length`` times the mean cost of the first ``samples`` of ``items`` (all: 0)."""
    if length == 0:
        return 0
    if samples <= 0 or samples >= length:
        return sum(map(cost, items))
    taken = list(itertools.islice(items, samples))
    if not taken:
        return 0
    return sum(map(cost, taken)) * length // len(taken)


def _member_cost(member: Any) -> int:
    if member.__class__ is bytes:
        return BYTES_HEADER + len(member)
    return _walk(member, DEFAULT_SAMPLES, 1)


def _pair_cost(item: tuple[Any, Any]) -> int:
    return _member_cost(item[0]) + _member_cost(item[1])


def estimate_value(value: Any, samples: int = DEFAULT_SAMPLES) -> int:
    """The bytes ``value`` takes in this process, estimated from ``samples`` of its elements
    (0: every element).  Strings are exact; containers are their own size plus the mean
    sampled element times their length."""
    kind = value.__class__
    if kind is bytes:
        return BYTES_HEADER + len(value)
    if kind is deque or kind is set or kind is frozenset:
        return sys.getsizeof(value) + _sampled(iter(value), len(value), samples, _member_cost)
    if kind is dict:
        return sys.getsizeof(value) + _sampled(iter(value.items()), len(value), samples,
                                               _pair_cost)
    if kind.__name__ == "ZSet":
        scores = value.scores
        # Per member: its bytes, a float in the dict, a (score, member) tuple and its slot in
        # the sorted list; the dict's table is measured as a whole.
        per_member = _FLOAT + _PAIR + _POINTER
        return (sys.getsizeof(value) + sys.getsizeof(scores) + len(scores) * per_member
                + _sampled(iter(scores), len(scores), samples, _member_cost))
    return _walk(value, samples, 0)


def _walk(obj: Any, samples: int, depth: int) -> int:
    """A generic sampled size walk (streams, plugin types): an object's own size plus its
    attributes' or elements', sampling each container; bounded by depth and samples."""
    size = sys.getsizeof(obj)
    if depth >= _MAX_DEPTH:
        return size
    kind = obj.__class__
    if kind is bytes or kind is str or kind is int or kind is float or obj is None:
        return size
    if kind is bytearray or kind.__name__ == "array":
        return size
    step = samples if samples > 0 else 0

    def cost(item: Any) -> int:
        return _walk(item, samples, depth + 1)

    if isinstance(obj, dict):
        return size + _sampled(iter(obj.items()), len(obj), step,
                               lambda pair: cost(pair[0]) + cost(pair[1]))
    if isinstance(obj, (list, tuple, deque, set, frozenset)):
        return size + _sampled(iter(obj), len(obj), step, cost)
    slots = getattr(kind, "__slots__", None)
    if slots is not None:
        names = (slots,) if isinstance(slots, str) else slots
        return size + sum(cost(getattr(obj, name, None)) for name in names)
    attributes = getattr(obj, "__dict__", None)
    if attributes is not None:
        return size + sum(cost(item) for item in attributes.values())
    try:
        length = len(obj)
        iterator = iter(obj)
    except TypeError:
        return size
    return size + _sampled(iterator, length, step, cost)


def key_usage(db: Database, key: bytes, value: Any, samples: int) -> int:
    """MEMORY USAGE: the key, its value, its slot in the database (and expiry, if any)."""
    slot = _dict_slot(db.data)
    cost = bytes_cost(key) + estimate_value(value, samples) + slot
    if key in db.expires:
        cost += _dict_slot(db.expires) + _EXPIRE_INT
    return cost


def _dict_slot(table: dict[Any, Any]) -> int:
    """What one entry of ``table`` takes of its hash table, on average (at least 1 entry)."""
    return sys.getsizeof(table) // max(len(table), 1) if table else 0


# --- the running estimate -----------------------------------------------------------------


def refresh(db: Database, key: bytes, full: bool = False) -> None:
    """Re-estimate ``key``'s container after a command changed it in place (strings are
    accounted exactly when they are set, and need nothing here).

    Why scaling: a full estimate of a stream walks its nodes, groups and pending lists
    (about 50 us), too much for every XADD.  While the length stays within 1/8 of the length
    of the last full estimate, the estimate is that one scaled by the length (O(1)); beyond,
    or with ``full`` (the cron's audit), the value is estimated again."""
    value = db.data.get(key)
    if value is None or value.__class__ is bytes:
        old = db.sizes.pop(key, None)  # a container replaced without Database.set
        if old is not None:
            db.used -= old
        db.basis.pop(key, None)
        return
    try:
        length = len(value)
    except TypeError:
        length = -1
    basis = db.basis.get(key)
    if (not full and basis is not None and length >= 0 and basis[0] > 0
            and abs(length - basis[0]) * 8 <= basis[0]):
        new = basis[1] * length // basis[0]
    else:
        new = estimate_value(value)
        db.basis[key] = (length, new)
    old = db.sizes.get(key, 0)
    db.sizes[key] = new
    db.used += new - old


def settle(keyspace: Keyspace) -> None:
    """Re-estimate the containers written since memory was last read (``Database.stale``:
    the keys of write commands, recorded by the engine at the cost of a set update)."""
    for db in keyspace.databases:
        if db.stale:
            settle_db(db)


def settle_db(db: Database) -> None:
    """:func:`settle` for one database."""
    sizes = db.sizes
    for key in db.stale:
        if key in sizes:
            refresh(db, key)
    db.stale.clear()


def recount(db: Database) -> None:
    """Count a database again from scratch (after loading a snapshot, which installs whole
    dicts at once)."""
    used = 0
    sizes: dict[bytes, int] = {}
    for key, value in db.data.items():
        used += BYTES_HEADER + len(key)
        if value.__class__ is bytes:
            used += BYTES_HEADER + len(value)
        else:
            sizes[key] = size = estimate_value(value)
            used += size
    db.used = used
    db.sizes = sizes
    db.basis = {}
    db.stale = set()
    if not db.lfu:  # loaded keys were last accessed now, as Redis's loader stamps them
        db.access = dict.fromkeys(db.data, db.clock)


def audit_cycle(keyspace: Keyspace, budget: int = 20) -> None:
    """The cron's correction of drift: re-estimate up to ``budget`` containers per call,
    round-robin (a container changed by a path that names no key, such as a blocked client's
    destination list, is set right within a few rounds)."""
    for db in keyspace.databases:
        if not db.sizes:
            continue
        if not db.audit_scan:
            db.audit_scan = list(db.sizes)
        batch = db.audit_scan[-budget:]
        del db.audit_scan[-budget:]
        for key in batch:
            if key in db.sizes:
                refresh(db, key, full=True)


def dataset_bytes(db: Database) -> int:
    """One database's estimate: keys and values, plus its dicts' tables and expiry ints."""
    if not db.used:
        return 0
    return (db.used + sys.getsizeof(db.data) + sys.getsizeof(db.expires)
            + len(db.expires) * _EXPIRE_INT + (sys.getsizeof(db.access) if db.access else 0))


def overhead_of_tables(db: Database) -> int:
    """The part of :func:`dataset_bytes` Redis calls overhead (its hash tables)."""
    if not db.data:
        return 0
    return (sys.getsizeof(db.data) + sys.getsizeof(db.expires)
            + (sys.getsizeof(db.access) if db.access else 0))


# --- lazy freeing -----------------------------------------------------------------------

# Containers with more elements than this are freed lazily (Redis's LAZYFREE_THRESHOLD on
# the "free effort" of a value); smaller ones cost less to free than to hand over.
LAZYFREE_THRESHOLD = 64
# Elements released per turn of the event loop: about a millisecond of work, so a client
# waits at most that long behind a FLUSHALL ASYNC of millions of keys.
FREE_CHUNK = 4096


def free_effort(value: Any) -> int:
    """How many allocations freeing ``value`` releases (1 for a string)."""
    if value.__class__ is bytes:
        return 1
    try:
        return len(value)
    except TypeError:
        return 1


class LazyFree:
    """Releases dropped values and whole databases in chunks across turns of the event loop,
    so freeing millions of objects never holds the loop (Python frees a dict's entries in one
    C call; a worker thread would hold the GIL for as long).

    ``pending_objects`` and ``pending_bytes`` are what is handed over and not yet released
    (INFO's ``lazyfree_pending_objects``; used memory counts the bytes until they are gone);
    ``freed_objects`` is INFO's ``lazyfreed_objects``."""

    def __init__(self) -> None:
        self.queue: deque[list[Any]] = deque()  # [container, objects, bytes]
        self.pending_objects = 0
        self.pending_bytes = 0
        self.freed_objects = 0
        self.running = False
        self.spawn: Any = None  # set by the engine: starts a task in the server's nursery

    def drop(self, value: Any, objects: int, cost: int) -> None:
        """Free ``value`` (a container, or a dict of a whole database) lazily."""
        if self.spawn is None:
            value = None  # no event loop (sans-IO use): free now
            self.freed_objects += objects
            return
        self.queue.append([value, objects, cost])
        self.pending_objects += objects
        self.pending_bytes += cost
        if not self.running:
            self.running = True
            try:
                self.spawn(self._run)
            except Exception:  # noqa: BLE001 - no nursery (shutting down): free now
                self.running = False
                self.free_all_now()

    def free_all_now(self) -> None:
        while self.queue:
            _container, objects, cost = self.queue.popleft()
            self._release(objects, cost)

    def _release(self, objects: int, cost: int) -> None:
        self.pending_objects -= objects
        self.pending_bytes -= cost
        self.freed_objects += objects

    async def _run(self) -> None:
        try:
            while self.queue:
                job = self.queue[0]
                container = job[0]
                # Only a value nothing else holds is taken apart: a reply not yet encoded
                # (SMEMBERS then UNLINK in one pipeline) may still refer to it.  The queue's
                # list, this local and getrefcount's argument are the 3 expected references.
                if container is not None and sys.getrefcount(container) > 3:
                    container = job[0] = None
                freed = _free_some(container, FREE_CHUNK, self) if container is not None else 0
                if freed:
                    # Bytes given back in proportion to the objects freed so far.
                    objects, cost = job[1], job[2]
                    remaining = _length(container)
                    share = objects - remaining if remaining < objects else 0
                    if share:
                        part = cost * share // max(objects, 1)
                        job[1] -= share
                        job[2] -= part
                        self._release(share, part)
                if container is None or _length(container) == 0:
                    self.queue.popleft()
                    self._release(job[1], job[2])
                container = None
                await trio.sleep(0)
        finally:
            self.running = False
            self.free_all_now()


def _length(container: Any) -> int:
    try:
        return len(container)
    except TypeError:
        return 0


def _free_some(container: Any, count: int, freer: LazyFree) -> int:
    """Release about ``count`` objects of ``container``; a big value found inside (a
    database's list of a million elements) is queued on its own instead of freed here."""
    kind = container.__class__
    freed = 0
    if kind is dict:
        popitem = container.popitem
        while freed < count and container:
            _key, value = popitem()
            if value.__class__ is not bytes and free_effort(value) > LAZYFREE_THRESHOLD:
                freer.queue.append([value, 0, 0])
            value = None
            freed += 1
    elif kind is deque or kind is list or kind is set:
        pop = container.pop
        while freed < count and container:
            item = pop()
            # A sorted set's sublists (its SortedList's _lists): each counts its elements.
            freed += len(item) if item.__class__ is list else 1
    elif kind.__name__ == "ZSet":
        # Its parts are freed as values of their own: the member -> score dict and the
        # sorted list's sublists (never one C call over all members).
        freer.queue.append([container.scores, 0, 0])
        freer.queue.append([container.ordered._lists, 0, 0])
        container.scores = {}
        container.ordered._lists = []
        container.ordered.clear()
        freed = 1
    elif hasattr(container, "clear"):
        container.clear()
        freed = 1
    return freed


# --- INFO memory --------------------------------------------------------------------------


def human(size: float) -> str:
    """Redis's bytesToHuman: B, K, M, G, T, P with two decimals."""
    if size < 1024:
        return f"{int(size)}B"
    for unit in "KMGTP":
        size /= 1024
        if size < 1024 or unit == "P":
            return f"{size:.2f}{unit}"
    return f"{size:.2f}P"


# used_memory_startup: what the server's own structures count before any key (the command
# table, the empty databases, the config); a fixed figure of the same order as Redis's.
STARTUP_BYTES = 880_000

# What a connected client costs besides its buffers: the Client object, its transport and
# parser (about what sys.getsizeof walks of an idle connection find).
CLIENT_BASE = 2048


def clients_memory(engine: Engine) -> int:
    """mem_clients_normal: each client's fixed cost and the replies it has not sent yet."""
    total = 0
    for client in engine.clients.values():
        total += CLIENT_BASE + getattr(client, "output_buffer", 0)
    return total


def aof_buffer(engine: Engine) -> int:
    """mem_aof_buffer: bytes appended to the AOF and not written yet, as the backends'
    statistics report them (``aof_buffer_length``, the AOF plugin's INFO field)."""
    total = 0
    for backend in engine.persistence.backends:
        total += int(backend.statistics().get("aof_buffer_length", 0) or 0)
    return total


def memory_figures(engine: Engine) -> dict[str, int]:
    """The figures INFO memory and MEMORY STATS share."""
    keyspace = engine.keyspace
    settle(keyspace)
    clients = clients_memory(engine)
    aof = aof_buffer(engine)
    dataset_total = keyspace.dataset_bytes()
    tables = sum(overhead_of_tables(db) for db in keyspace.databases)
    lazy = keyspace.lazyfree.pending_bytes
    used = STARTUP_BYTES + dataset_total + lazy + clients + aof
    if used > engine.memory_peak:
        engine.memory_peak = used
    overhead = STARTUP_BYTES + clients + aof + tables
    return {
        "used": used,
        "peak": engine.memory_peak,
        "startup": STARTUP_BYTES,
        "clients": clients,
        "aof": aof,
        "tables": tables,
        "overhead": overhead,
        "dataset": max(used - overhead, 0),
        "keys": keyspace.key_count(),
        "lazy": lazy,
    }


def info_fields(engine: Engine, rss: int) -> dict[str, Any]:
    """INFO memory's accounting fields, in Redis 7.0's order (the caller adds the rest)."""
    figures = memory_figures(engine)
    used = figures["used"]
    peak = max(figures["peak"], used)
    startup = figures["startup"]
    dataset = figures["dataset"]
    net = used - startup
    return {
        "used_memory": used,
        "used_memory_human": human(used),
        "used_memory_rss": rss,
        "used_memory_rss_human": human(rss),
        "used_memory_peak": peak,
        "used_memory_peak_human": human(peak),
        "used_memory_peak_perc": f"{100 * used / max(peak, 1):.2f}%",
        "used_memory_overhead": figures["overhead"],
        "used_memory_startup": startup,
        "used_memory_dataset": dataset,
        "used_memory_dataset_perc": f"{100 * dataset / net:.2f}%" if net > 0 else "0.00%",
        "_clients": figures["clients"],
        "_aof": figures["aof"],
        "_lazy_objects": engine.keyspace.lazyfree.pending_objects,
        "_lazyfreed": engine.keyspace.lazyfree.freed_objects,
    }
