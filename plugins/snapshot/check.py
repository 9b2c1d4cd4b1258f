"""``trioredis-check-snapshot <file>``: verify a snapshot without loading it into a server.

Reads the file the way the server does (record by record, checksum verified as it goes) and
prints what it holds per database, or the reason and offset it would be refused for.  Exit
status 0 when the server would load it, 1 when it would refuse it, 2 on bad usage.

Plugin values are counted by their type tag and not decoded (their plugins need not be
installed where the file is checked).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

from .format import TYPE_NAMES, SnapshotError, SnapshotReader

USAGE = "Usage: trioredis-check-snapshot <file.trdb>"


def check(path: str, out=sys.stdout) -> int:
    try:
        handle = open(path, "rb")  # noqa: SIM115
    except OSError as error:
        print(f"Cannot open {path}: {error.strerror}", file=out)
        return 1
    keys: dict[int, int] = Counter()
    types: Counter[str] = Counter()
    with_expiry = 0
    try:
        with handle:
            size = os.fstat(handle.fileno()).st_size
            reader = SnapshotReader(handle, path, size)
            reader.read_header()
            previous: tuple[int, bytes, int] | None = None
            for db, record in reader.records():
                for i in range(1, len(record), 4):
                    key, code, raw, expire = record[i:i + 4]
                    if previous == (db, key, code):
                        continue  # a further part of a big collection
                    previous = (db, key, code)
                    keys[db] += 1
                    name = TYPE_NAMES.get(code, f"unknown({code})")
                    if name == "plugin" and isinstance(raw, list) and raw:
                        name = f"plugin:{raw[0]}"
                    types[name] += 1
                    if expire is not None:
                        with_expiry += 1
    except SnapshotError as error:
        print(f"{error}", file=out)
        print("The server refuses to start on this file.", file=out)
        return 1
    meta = reader.metadata
    created = meta.get("created_ms")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created / 1000)) if created else "?"
    print(f"[info] {path}: trioredis snapshot, format version {reader.version}, "
          f"{size} bytes, written {when} UTC", file=out)
    for db in sorted(keys):
        print(f"[info] db{db}: {keys[db]} keys", file=out)
    summary = ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
    print(f"[info] {sum(keys.values())} keys ({summary or 'none'}), {with_expiry} with an expiry",
          file=out)
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
