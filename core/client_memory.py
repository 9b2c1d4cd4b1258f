"""The memory fields of CLIENT LIST / CLIENT INFO (``qbuf`` to ``tot-mem``), from what this
server really holds for a client, counted the way Redis 7.0 counts its own:

* ``qbuf``: bytes received and not yet run as a command (the parser's), plus, for the client
  asking, its own request;
* ``argv-mem``: the bytes of the arguments of the command the client is running (the asking
  client's own CLIENT LIST/INFO; 0 for a client between commands, as Redis frees them);
* ``multi-mem``: per queued MULTI command, its arguments' bytes plus one pointer per
  argument (Redis 7.0.15's ``argv_len_sums``; WATCHed keys are not counted, as there);
* ``obl`` / ``oll`` / ``omem``: replies waiting to be sent, placed as Redis places them
  (:func:`reply_buffers`): the client's 16 KB fixed reply buffer (``obl``), then a list of
  blocks of at least 16 KB (``oll`` blocks, ``omem`` bytes);
* ``rbs``: the size of the reads the transport makes for this client;
* ``tot-mem``: the sum of the above.

Client eviction (``maxmemory-clients``, Redis 7.0): :func:`evict_clients` closes the clients
using the most memory (``tot-mem``) until the memory of all normal and pub/sub clients is
under the limit; clients with ``CLIENT NO-EVICT on``, replicas and a master link are never
evicted (no-evict clients still count in the total, as in Redis).  Redis keeps each client's
usage current in buckets and evicts before sleeping; here the cron and each command's end
(when a client's output grew) make the check, which walks the clients: it runs only while
``maxmemory-clients`` is set.

``qbuf-free`` and ``rbp`` stay 0: no query buffer is preallocated here (the parser holds
only what arrived) and read peaks are not tracked.  Redis adds its fixed per-client
allocations to ``tot-mem`` (about 20 KB); this server's fixed cost is not modelled, so
``tot-mem`` is smaller.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client

# Redis's fixed reply buffer and the size of each reply block after it (PROTO_REPLY_CHUNK_BYTES).
REPLY_CHUNK_BYTES = 16 * 1024
# One robj pointer per argument of a queued command, as Redis adds to argv_len_sums.
POINTER_SIZE = 8
# Redis's floor for a non-zero client limit, so a tiny maxmemory-clients (or percentage)
# cannot leave the server unable to talk to anyone.
MIN_CLIENT_EVICTION_LIMIT = 128 * 1024


def request_size(argv: list[bytes]) -> int:
    """Bytes of ``argv`` sent as a RESP multibulk request."""
    return len(b"*%d\r\n" % len(argv)) + sum(len(b"$%d\r\n" % len(arg)) + len(arg) + 2
                                             for arg in argv)


def multi_memory(client: Client) -> int:
    """``multi-mem``: the queued commands' argument bytes and one pointer per argument."""
    if client.multi is None:
        return 0
    return sum(sum(map(len, argv)) + POINTER_SIZE * len(argv) for _spec, argv in client.multi)


def reply_buffers(chunks: list[bytes]) -> tuple[int, int, int]:
    """(obl, oll, omem) for replies waiting in ``chunks``, placed as Redis 7.0 places them: a
    reply goes to the 16 KB fixed buffer while it fits there and nothing is in the list yet;
    otherwise it fills the last block's free room and the rest opens a block of its size or
    of 16 KB, whichever is larger.  ``omem`` counts the blocks' sizes, as Redis does."""
    obl = oll = omem = 0
    room = REPLY_CHUNK_BYTES
    tail_free = 0
    for chunk in chunks:
        size = len(chunk)
        if not oll and size <= room:
            obl += size
            room -= size
            continue
        used = min(size, tail_free)
        tail_free -= used
        rest = size - used
        if rest:
            block = max(rest, REPLY_CHUNK_BYTES)
            oll += 1
            omem += block
            tail_free = block - rest
    return obl, oll, omem


def memory_fields(engine: Any, client: Client, argv: list[bytes] | None = None
                  ) -> list[tuple[str, int]]:
    """(name, value) of ``qbuf`` .. ``tot-mem`` in CLIENT LIST's order; ``argv`` is the
    command the client is running, when it is the one asking."""
    from .server.connection import RECV_SIZE

    connection = engine.server.connections.get(client.id) if engine.server is not None else None
    qbuf = connection.parser.pending() if connection is not None else 0
    argv_mem = 0
    if argv:
        argv_mem = sum(map(len, argv))
        # Redis trims its query buffer after running what it read: while a command runs,
        # its own request is still in ``qbuf`` (counted here as the multibulk it came in).
        qbuf += request_size(argv)
    multi_mem = multi_memory(client)
    obl, oll, omem = reply_buffers(connection.out) if connection is not None else (0, 0, 0)
    rbs = RECV_SIZE if connection is not None else 0
    return [("qbuf", qbuf), ("qbuf-free", 0), ("argv-mem", argv_mem), ("multi-mem", multi_mem),
            ("rbs", rbs), ("rbp", 0), ("obl", obl), ("oll", oll), ("omem", omem),
            ("tot-mem", qbuf + argv_mem + multi_mem + obl + omem)]


def eviction_limit(config: Any) -> int:
    """The client memory limit in bytes that ``maxmemory-clients`` gives (0: no limit): a
    size, or a percentage of ``maxmemory`` (none without maxmemory), at least 128 KB."""
    setting = config.maxmemory_clients
    if setting.endswith("%"):
        limit = math.floor(config.maxmemory * int(setting[:-1]) / 100) if config.maxmemory else 0
    else:
        limit = int(setting)
    return max(limit, MIN_CLIENT_EVICTION_LIMIT) if limit else 0


def _counted(client: Client) -> bool:
    """Whether ``client`` is a normal or pub/sub client (Redis's CLIENT_TYPE_NORMAL and
    CLIENT_TYPE_PUBSUB), whose memory maxmemory-clients limits."""
    return client.kind not in ("master", "replica") and not client.is_loader and not client.evicted


def _total_memory(engine: Any, client: Client) -> int:
    """``tot-mem`` of a client between commands; an idle one (nothing received or queued, no
    transaction) costs three tests rather than the whole computation, as most clients are
    idle at each cron tick."""
    connection = engine.server.connections.get(client.id)
    if connection is None:
        return 0
    if not connection.out and client.multi is None and not connection.parser.pending():
        return 0
    return dict(memory_fields(engine, client))["tot-mem"]


def evict_clients(engine: Any) -> int:
    """Close the clients using the most memory until the normal and pub/sub clients' total is
    under ``maxmemory-clients`` (Redis's evictClients); how many were closed.  Each is logged
    with its CLIENT LIST line and counted in INFO's ``evicted_clients``."""
    limit = eviction_limit(engine.config)
    if not limit or engine.server is None:
        return 0
    usage: list[tuple[int, Client]] = []
    total = 0
    for client in list(engine.clients.values()):
        if not _counted(client):
            continue
        used = _total_memory(engine, client)
        total += used
        if not client.no_evict:
            usage.append((used, client))
    if total < limit:
        return 0
    from .commands.connection import client_info_line

    usage.sort(key=lambda entry: entry[0], reverse=True)
    evicted = 0
    for used, client in usage:
        if total < limit:
            break
        line = client_info_line(engine, client).decode("utf-8", "replace")
        engine.log.notice(f"Evicting client: {line}")
        client.evicted = True  # out of the totals now: its connection closes next
        client.transport.close()
        engine.stats.evicted_clients += 1
        total -= used
        evicted += 1
    if total >= limit:
        engine.log.warning("Over client maxmemory after evicting all evictable clients")
    return evicted


__all__ = ["MIN_CLIENT_EVICTION_LIMIT", "REPLY_CHUNK_BYTES", "evict_clients",
           "eviction_limit", "memory_fields", "multi_memory", "reply_buffers",
           "request_size"]
