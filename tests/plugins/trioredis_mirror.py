"""A persistence backend written as a third-party plugin: mirrors every propagated write to
``mirror.resp`` in the server's directory and loads it back at start-up.

It exists to prove the persistence interface from outside core (tests/test_plugins.py loads it
with ``loadplugin trioredis_mirror``) and is the worked example in docs/plugins.md.  It is a
plain append log with no fsync: what it promises on a crash is what the page cache keeps (no
acknowledged write is lost on kill -9, since ``flush`` writes before the reply leaves; a power
loss may lose what the OS had not written yet).
"""

from __future__ import annotations

import os

import hiredis
import trio
from trioredis import BaseBackend, ErrorReply, encode_command, hookimpl

FILENAME = "mirror.resp"


class MirrorBackend(BaseBackend):
    name = "mirror"

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory or ".", FILENAME)
        self.buffer: list[bytes] = []
        self.selected_db: int | None = None
        self.file = None
        self.commands_fed = 0
        self.commands_loaded = 0
        self.running = False
        self.closed = False

    # Core calls feed() for every effect a command propagated, in order, on the trio thread:
    # only buffer here.
    def feed(self, db, argv):
        if db != self.selected_db:
            self.buffer.append(encode_command([b"SELECT", b"%d" % db]))
            self.selected_db = db
        self.buffer.append(encode_command(argv))
        self.commands_fed += 1

    # Core calls flush() before the replies of a batch leave: after write(2) returns, a kill -9
    # cannot lose the batch.  No ticket: replies do not wait for an fsync.
    def flush(self):
        if self.buffer:
            if self.file is None:
                self.file = open(self.path, "ab")  # noqa: SIM115 (closed in aclose)
            self.file.write(b"".join(self.buffer))
            self.file.flush()
            self.buffer.clear()
        return None

    async def run(self, host, *, task_status=trio.TASK_STATUS_IGNORED):
        self.running = True
        task_status.started()

    def load_priority(self):
        return 10  # asked before AOF (0 by default in BaseBackend) when both are loaded

    async def load(self, loader):
        if not os.path.exists(self.path):
            return False
        with open(self.path, "rb") as handle:
            data = handle.read()
        reader = hiredis.Reader()
        reader.feed(data)
        while (argv := reader.gets()) is not False:
            reply = loader.execute(argv)
            if isinstance(reply, ErrorReply):
                raise RuntimeError(f"{self.path}: cannot replay {argv!r}: {reply!r}")
            self.commands_loaded += 1
        loader.progress(len(data), len(data))
        # The loader ends on database 0; the next write must say which database it is for.
        self.selected_db = None
        return True

    async def aclose(self, save):
        self.flush()
        if self.file is not None:
            self.file.close()
            self.file = None
        self.closed = True

    def statistics(self):
        return {"mirror_commands_fed": self.commands_fed,
                "mirror_commands_loaded": self.commands_loaded}


@hookimpl
def trioredis_register_persistence(registry, config):
    registry.add(MirrorBackend(config.dir))
