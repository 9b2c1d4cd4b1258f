"""Memory per entry of a 1,000,000-entry stream, trioredis beside Debian's redis-server.

Each server starts empty (no persistence), its RSS is read from /proc, then one stream gets
``--entries`` entries (``XADD s * field <8-byte value>``, pipelined), and RSS is read again:
(after - before) / entries, the figure Redis calls ``used_memory_rss``.  Redis's own
``used_memory`` delta is printed too (its allocator's count, without fragmentation).

Usage: ``python bench/stream_memory.py [--entries N]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Server, command, info_field, pipelined, rss_bytes  # noqa: E402


def fill(port: int, entries: int) -> None:
    batch = 10_000
    for start in range(0, entries, batch):
        pipelined(port, [[b"XADD", b"s", b"*", b"field", b"v%07d" % number]
                         for number in range(start, min(start + batch, entries))])


def measure(kind: str, entries: int, scratch: Path) -> tuple[float, int | None]:
    server = Server(kind, scratch / kind, ["--appendonly", "no"])
    if not server.start():
        raise SystemExit(f"{kind} did not start")
    try:
        time.sleep(0.5)
        before = rss_bytes(server.process.pid)
        used_before = info_field(server.port, "used_memory")
        fill(server.port, entries)
        assert command(server.port, b"XLEN", b"s") == b":%d\r\n" % entries
        time.sleep(0.5)
        after = rss_bytes(server.process.pid)
        used_after = info_field(server.port, "used_memory")
        used = (int(used_after) - int(used_before)) if kind == "redis" and used_after else None
        return (after - before) / entries, used
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="trioredis-stream-memory-") as tmp:
        scratch = Path(tmp)
        redis_rss, redis_used = measure("redis", args.entries, scratch)
        trio_rss, _ = measure("trio", args.entries, scratch)
    print(f"| stream of {args.entries:,} entries | bytes per entry (RSS) |")
    print("|---|---:|")
    print(f"| Redis 7.0.15 | {redis_rss:.1f} |")
    print(f"| trioredis | {trio_rss:.1f} |")
    print(f"| ratio | {trio_rss / redis_rss:.2f}x |")
    if redis_used is not None:
        print(f"(Redis used_memory delta: {redis_used / args.entries:.1f} bytes per entry)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
