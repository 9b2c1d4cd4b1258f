"""What the AOF backend's modules share: its tunables, its states, a running rewrite child, and
the error that stops start-up.  (Split out of ``backend.py``, which kept growing: each module of
the backend now does one job, see ``backend.py``.)"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field
from typing import Any

TICK_SECONDS = 0.1  # write retries, the everysec timer, auto-rewrite checks
DELAY_WRITERS_AFTER = 2.0  # everysec: a fsync running this long makes writers wait for it
SMALL_TAIL = 64 * 1024  # rewrite buffer left to copy on the event loop at the switch
CATCH_UP_ROUNDS = 16  # copies of the rewrite buffer off the loop before the switch
YIELD_SECONDS = 0.01  # loading hands the event loop over at least this often

REWRITE_FAILED = (b"ERR Can't execute an AOF background rewriting. Please check the server "
                  b"logs for more information.")


class AofLoadError(Exception):
    """The AOF cannot be loaded as it is: start-up stops (the log says why and how to fix)."""


class State(enum.Enum):
    OFF = "off"  # appendonly no: nothing is appended
    PENDING = "pending"  # appendonly yes, the file is opened (or created) when run() starts
    ON = "on"  # appending to the open file
    # appendonly switched on at runtime: the stream only goes to the rewrite buffer until the
    # first rewrite has produced a file holding the whole dataset (Redis's AOF_WAIT_REWRITE).
    WAIT_REWRITE = "wait_rewrite"


_ON, _OFF, _WAIT_REWRITE = State.ON, State.OFF, State.WAIT_REWRITE  # feed()'s fast checks


@dataclass
class RewriteChild:
    pid: int
    directory: str
    started: float = field(default_factory=time.monotonic)
    killed: bool = False
    forked: Any = None  # its trioredis.ForkedChild: the pipe, kill() and wait()


def remove_file(path: str) -> None:
    """Unlink ``path``; a file already gone is fine."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
