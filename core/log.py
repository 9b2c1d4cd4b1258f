"""Logging in Redis's style: ``pid:M 22 Nov 2026 06:16:14.123 * message``.

Levels and their marks as Redis prints them: debug ``.``, verbose ``-``, notice ``*``,
warning ``#``.  Written synchronously, as Redis does: log lines are rare and short.

A log file is opened, appended to and closed for every line, as Redis does: after logrotate
renames the file (its ``create`` mode, no ``copytruncate``), the next line creates a new file
at the configured path instead of following the renamed one, with no signal to send.  Lines
below the level are dropped before any open, so the cost is paid only for lines written.
"""

from __future__ import annotations

import os
import sys
import time

LEVELS = {"debug": 0, "verbose": 1, "notice": 2, "warning": 3, "nothing": 4}
_MARKS = {0: ".", 1: "-", 2: "*", 3: "#"}


class Log:
    def __init__(self, level: str = "notice", path: str = "", role: str = "M") -> None:
        self.level = LEVELS[level]
        self.role = role
        self.path = path
        if path:  # refused at start-up, as redis-server refuses a log file it cannot open
            with open(path, "a", encoding="utf-8"):
                pass

    def set_level(self, level: str) -> None:
        self.level = LEVELS[level]

    def write(self, level: int, message: str) -> None:
        if level < self.level:
            return
        now = time.time()
        stamp = time.strftime("%d %b %Y %H:%M:%S", time.localtime(now))
        line = f"{os.getpid()}:{self.role} {stamp}.{int(now * 1000) % 1000:03d} {_MARKS[level]} {message}\n"
        try:
            if self.path:
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(line)
            else:
                # sys.stdout at write time: a daemonized server has it on /dev/null.
                sys.stdout.write(line)
                sys.stdout.flush()
        except (OSError, ValueError):
            pass  # a full disk or a vanished directory must not stop the server

    def debug(self, message: str) -> None:
        self.write(0, message)

    def verbose(self, message: str) -> None:
        self.write(1, message)

    def notice(self, message: str) -> None:
        self.write(2, message)

    def warning(self, message: str) -> None:
        self.write(3, message)

    def close(self) -> None:
        """Nothing stays open between lines; kept for callers that close their log."""
