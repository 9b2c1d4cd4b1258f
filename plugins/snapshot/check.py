"""``trioredis-check-snapshot <file>``: verify a snapshot without loading it into a server.

Reads the file the way the server does (record by record, checksum verified as it goes) and
prints what it holds per database, or the reason and offset it would be refused for.  Exit
status 0 when the server would load it, 1 when it would refuse it, 2 on bad usage.

Plugin values are counted by their type tag and not decoded (their plugins need not be
installed where the file is checked).  Each database is decoded in turn and dropped, so the
check needs memory for the largest database, not the whole file.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

from .backend import zset_class
from .format import SnapshotError, SnapshotFile, materialize

USAGE = "Usage: trioredis-check-snapshot <file.trdb>"


def check(path: str, out=sys.stdout) -> int:
    try:
        snapshot = SnapshotFile(path)
    except OSError as error:
        print(f"Cannot open {path}: {error.strerror}", file=out)
        return 1
    keys: dict[int, int] = {}
    types: Counter[str] = Counter()
    with_expiry = expired = 0
    now = int(time.time() * 1000)
    try:
        with snapshot:
            snapshot.verify()
            for offset, start, end in snapshot.database_records():
                index, data, expires = snapshot.decode_database(offset, start, end)
                try:
                    counts = materialize(data, zset_class(), None)
                except ValueError as error:
                    raise SnapshotError(f"Bad snapshot file {path} at offset {offset}: {error}") from None
                types.update(counts)
                for value in data.values():
                    kind = value.__class__
                    if kind is bytes:
                        types["string"] += 1
                    elif kind is dict:
                        types["hash"] += 1
                    elif kind is set:
                        types["set"] += 1
                keys[index] = keys.get(index, 0) + len(data)
                with_expiry += len(expires)
                expired += sum(1 for when in expires.values() if when <= now)
                del data, expires
    except SnapshotError as error:
        print(f"{error}", file=out)
        print("The server refuses to start on this file.", file=out)
        return 1
    meta = snapshot.metadata
    created = meta.get("created_ms")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created / 1000)) if created else "?"
    print(f"[info] {path}: trioredis snapshot, format version {snapshot.version}, "
          f"{snapshot.size} bytes, written {when} UTC", file=out)
    for db in sorted(keys):
        print(f"[info] db{db}: {keys[db]} keys", file=out)
    summary = ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
    print(f"[info] {sum(keys.values())} keys ({summary or 'none'}), {with_expiry} with an expiry "
          f"({expired} already expired: not loaded)", file=out)
    print("[ok] checksum verified: the snapshot is complete and undamaged", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 2
    return check(args[0])


if __name__ == "__main__":
    raise SystemExit(main())
