"""``trioredis-check-aof [--fix] [-y] <file>``: check an AOF offline, and repair a torn tail.

It reads the file with the same scanner the server loads it with, so it agrees with start-up
on where the valid part ends: after the last whole command, and before the ``MULTI`` of a
transaction whose ``EXEC`` is missing.  The report follows Redis's ``redis-check-aof``.
``--fix`` truncates the file to that point (after a confirmation, or at once with ``-y``) and
prints how many bytes it removed; a file damaged in the middle is cut at the damage, as
``redis-check-aof --fix`` does, so make a backup first.

A file that starts with an RDB (the preamble Redis 4-6 write with ``aof-use-rdb-preamble
yes``) has that part checked with the RDB reader the server loads it with (every record decoded,
the CRC-64 verified), then the commands after it scanned; a damaged preamble is never "fixed"
(no cut could make it whole), as ``redis-check-aof`` refuses it too.

Exit status: 0 valid (or fixed), 1 not valid.
"""

from __future__ import annotations

import mmap
import os
import sys
from typing import TextIO

from trioredis.rdb import RdbError, read_rdb_prefix

from .loading import scan_file
from .rdb_base import starts_as_rdb

USAGE = "Usage: trioredis-check-aof [--fix] [-y] <file.aof>"


def check(path: str, fix: bool = False, assume_yes: bool = False, out: TextIO = sys.stdout,
          answer: TextIO = sys.stdin) -> int:
    try:
        size = os.stat(path).st_size
    except OSError as error:
        print(f"Cannot open file {path}: {error.strerror}", file=out)
        return 1
    start = 0
    if size and starts_as_rdb(path):
        print("The AOF appears to start with an RDB preamble.\nChecking the RDB preamble...",
              file=out)
        try:
            start = _preamble_size(path)
        except RdbError as error:
            print(f"RDB preamble of AOF file is not sane ({error}), aborting.", file=out)
            return 1
        print(f"RDB preamble is OK ({start} bytes), proceeding with AOF tail...", file=out)
    end, damage = scan_file(path, start)
    if damage is not None:
        ok_up_to = damage.offset
        print(f"0x{damage.offset:>16x}: {damage.reason}", file=out)
    else:
        assert end is not None
        ok_up_to = end.valid_size
        if end.unfinished_multi_at is not None:
            print(f"0x{end.unfinished_multi_at:>16x}: MULTI without EXEC (unfinished "
                  "transaction)", file=out)
        elif end.torn:
            print(f"0x{end.valid_size:>16x}: Unexpected end of file (torn last command)",
                  file=out)
    diff = size - ok_up_to
    print(f"AOF analyzed: filename={path}, size={size}, ok_up_to={ok_up_to}, diff={diff}",
          file=out)
    if diff == 0:
        print(f"AOF {path} is valid", file=out)
        return 0
    if not fix:
        print(f"AOF {path} is not valid. Use the --fix option to try fixing it.", file=out)
        return 1
    print(f"This will shrink the AOF {path} from {size} bytes, with {diff} bytes, to "
          f"{ok_up_to} bytes", file=out)
    if not assume_yes:
        print("Continue? [y/N]: ", end="", file=out, flush=True)
        reply = answer.readline().strip().lower()
        if reply not in ("y", "yes"):
            print("Aborting...", file=out)
            return 1
    os.truncate(path, ok_up_to)
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
    print(f"Successfully truncated AOF {path}: removed {diff} bytes", file=out)
    return 0


def _preamble_size(path: str) -> int:
    """The length of the RDB preamble at the start of ``path`` once checked; RdbError."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0,
                                               access=mmap.ACCESS_READ) as mapped:
        return read_rdb_prefix(mapped)[3]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    fix = assume_yes = False
    paths = []
    for arg in args:
        if arg == "--fix":
            fix = True
        elif arg in ("-y", "--yes"):
            assume_yes = True
        elif arg in ("-h", "--help"):
            print(USAGE)
            return 0
        elif arg.startswith("-"):
            print(f"Unknown option {arg}\n{USAGE}", file=sys.stderr)
            return 1
        else:
            paths.append(arg)
    if len(paths) != 1:
        print(USAGE, file=sys.stderr)
        return 1
    return check(paths[0], fix=fix, assume_yes=assume_yes)


if __name__ == "__main__":
    raise SystemExit(main())
