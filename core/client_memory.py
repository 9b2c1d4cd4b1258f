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

``qbuf-free`` and ``rbp`` stay 0: no query buffer is preallocated here (the parser holds
only what arrived) and read peaks are not tracked.  Redis adds its fixed per-client
allocations to ``tot-mem`` (about 20 KB); this server's fixed cost is not modelled, so
``tot-mem`` is smaller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client

# Redis's fixed reply buffer and the size of each reply block after it (PROTO_REPLY_CHUNK_BYTES).
REPLY_CHUNK_BYTES = 16 * 1024
# One robj pointer per argument of a queued command, as Redis adds to argv_len_sums.
POINTER_SIZE = 8


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


__all__ = ["REPLY_CHUNK_BYTES", "memory_fields", "multi_memory", "reply_buffers",
           "request_size"]
