"""ACL LOG: the denied commands, keys and channels and the failed logins, newest first."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable

from .resp import Map

ACLLOG_MAX_LEN = 128  # Redis's acllog-max-len default: entries kept, newest first
# A denial like one logged less than this long ago (same reason, context, object, user)
# counts into that entry instead of adding one; only the newest few entries are compared,
# so logging costs the same however long the log is.
ACLLOG_GROUPING_MS = 60_000
ACLLOG_SCAN = 10
ACLLOG_DEFAULT_COUNT = 10  # ACL LOG without a count


class AclLogEntry:
    __slots__ = ("count", "reason", "context", "object", "username", "created_ms", "client_info")

    def __init__(self, reason: str, context: str, object_: bytes, username: bytes,
                 client_info: bytes, now_ms: int) -> None:
        self.count = 1
        self.reason = reason
        self.context = context
        self.object = object_
        self.username = username
        self.created_ms = now_ms
        self.client_info = client_info

    def reply(self, now_ms: int) -> Map:
        """ACL LOG's fields for this entry, in Redis 7.0's order (a map under RESP3)."""
        return Map({b"count": self.count, b"reason": self.reason.encode(),
                    b"context": self.context.encode(), b"object": self.object,
                    b"username": self.username,
                    b"age-seconds": (now_ms - self.created_ms) / 1000,
                    b"client-info": self.client_info})


class AclLog:
    """Denied commands, keys, channels and failed logins (ACL LOG), newest first."""

    def __init__(self) -> None:
        self.entries: deque[AclLogEntry] = deque()

    def add(self, reason: str, object_: bytes, username: bytes, client_info: Callable[[], bytes],
            max_len: int = ACLLOG_MAX_LEN, context: str = "toplevel") -> None:
        """Record one denial (``reason``: command, key, channel or auth); ``client_info``
        is called once, for the CLIENT LIST line of the client denied."""
        now_ms = int(time.time() * 1000)
        for index, entry in enumerate(self.entries):
            if index >= ACLLOG_SCAN:
                break
            if (entry.reason == reason and entry.context == context and entry.object == object_
                    and entry.username == username
                    and now_ms - entry.created_ms <= ACLLOG_GROUPING_MS):
                del self.entries[index]
                entry.count += 1
                entry.created_ms = now_ms
                entry.client_info = client_info()
                self.entries.appendleft(entry)
                return
        self.entries.appendleft(AclLogEntry(reason, context, object_, username, client_info(),
                                            now_ms))
        while len(self.entries) > max(max_len, 0):
            self.entries.pop()

    def reply(self, count: int) -> list:
        now_ms = int(time.time() * 1000)
        return [entry.reply(now_ms) for entry in itertools.islice(self.entries, max(count, 0))]

    def reset(self) -> None:
        self.entries.clear()
