"""Start-up: replaying the AOF (ours, Redis 4-6's single file with an RDB preamble, or Redis
7's multi-part one) into the dataset, and what a torn tail does.  The byte-level scanner is
:mod:`.loading`.

A mixin of :class:`~trioredis.plugins.aof.backend.AofBackend`, whose constructor creates the
state used here.
"""

from __future__ import annotations

import gc
import os
import shlex
import time
from typing import Any

import trio
from trioredis import Loader

from .loading import CHUNK_SIZE, AofCorruption, AofScanner
from .rdb_base import RdbBaseError, load_rdb_base, load_rdb_preamble, starts_as_rdb
from .state import YIELD_SECONDS, AofLoadError, State, remove_file


class Replay:
    """Loading the AOF at start-up and DEBUG RELOAD (mixed into ``AofBackend``)."""

    # --- loading ---------------------------------------------------------------------------

    def load_priority(self) -> int:
        return 100 if self._config.appendonly else 0

    async def load(self, loader: Loader) -> bool:
        if self.state is State.OFF:
            return False
        self._log_ = self._log_ or loader.log
        reloading = self._fd is not None  # DEBUG RELOAD: the file is complete and open
        if not reloading:
            self._path = self._configured_path(self._config)
            self._remove_stale_temp_files(loader.log)
        try:
            size = os.stat(self._path).st_size
        except FileNotFoundError:
            if reloading:
                return False
            return await self._import_redis7(loader)
        started = time.monotonic()
        start = 0
        if size and starts_as_rdb(self._path):
            start = await self._load_preamble(loader, self._path)
        valid_size = await self._replay(loader, self._path, size, start=start)
        if not reloading:
            self._open_for_append()
            self._set_state(State.ON)
        self._current_size = self._base_size = valid_size
        loader.log.notice(f"DB loaded from append only file: {time.monotonic() - started:.3f} "
                          "seconds")
        return True

    async def _load_preamble(self, loader: Loader, path: str) -> int:
        """Install the RDB preamble of a single-file AOF (what Redis 4-6 write with
        ``aof-use-rdb-preamble yes``); the offset where its commands begin.

        The file stays as it is: appends continue after its last command, as Redis 4-6 do,
        and the next rewrite turns it into plain commands."""
        loader.log.notice(f"Reading RDB preamble from AOF file {path}...")
        try:
            keys, size = await load_rdb_preamble(loader, path, self._io_limiter)
        except RdbBaseError as error:
            loader.log.warning(
                f"{error}. Refusing to start on wrong data: check the file with: "
                f"trioredis-check-aof {path} (or redis-check-aof, which checks the preamble "
                "as redis-check-rdb does)")
            raise AofLoadError(str(error)) from None
        loader.log.notice(f"RDB preamble of {path} loaded: {keys} keys; reading the "
                          f"remaining AOF tail from offset {size}...")
        return size

    def _remove_stale_temp_files(self, log: Any) -> None:
        """A server killed during a rewrite leaves its child's temp file behind (the child is
        killed with it): never a valid AOF, so it is removed at start-up."""
        directory = os.path.dirname(self._path) or "."
        try:
            names = os.listdir(directory)
        except OSError:
            return
        for name in names:
            if name.startswith("temp-rewriteaof-bg-") and name.endswith(".aof"):
                log.notice(f"Removing the temporary AOF {name} left by an interrupted rewrite")
                remove_file(os.path.join(directory, name))

    async def _import_redis7(self, loader: Loader) -> bool:
        """No AOF of ours, but Redis 7's multi-part AOF (``appendonlydir/`` with a manifest)
        is in ``dir``: replay its base and incremental files, in manifest order, without
        touching them.  Our own file is then born from a rewrite of the loaded dataset (see
        :meth:`_open_after_load`).  A base in RDB format (Redis's default,
        ``aof-use-rdb-preamble yes``) is decoded by :mod:`.rdb_base`."""
        directory = os.path.join(self._config.dir, self._config.appenddirname)
        manifest = os.path.join(directory, f"{self._config.appendfilename}.manifest")
        try:
            with open(manifest, encoding="utf-8") as handle:
                lines = [shlex.split(line) for line in handle if line.strip()]
        except FileNotFoundError:
            return False
        entries = [dict(zip(words[::2], words[1::2], strict=False)) for words in lines]
        parts = ([e["file"] for e in entries if e.get("type") == "b"]
                 + [e["file"] for e in entries if e.get("type") == "i"])
        loader.log.notice(f"Importing Redis 7's multi-part AOF from {directory}: "
                          f"{', '.join(parts)}")
        for index, name in enumerate(parts):
            path = os.path.join(directory, name)
            if index == 0 and starts_as_rdb(path):  # Redis's default: the base is an RDB
                try:
                    loaded = await load_rdb_base(loader, path, self._io_limiter)
                except RdbBaseError as error:
                    loader.log.warning(f"{error}. Refusing to start on wrong data: check it "
                                       f"with: redis-check-rdb {path}")
                    raise AofLoadError(str(error)) from None
                loader.log.notice(f"RDB base {name} loaded: {loaded} keys")
                continue
            await self._replay(loader, path, os.path.getsize(path), own_file=False,
                               last=index == len(parts) - 1)
        return True

    async def _replay(self, loader: Loader, path: str, size: int, own_file: bool = True,
                      last: bool = True, start: int = 0) -> int:
        """Execute every command of the file from offset ``start`` (after an RDB preamble);
        handle a torn tail; the valid size.  Every offset logged or cut at is the file's:
        the scanner counts from ``start``, which is added back here."""
        scanner = AofScanner()
        last_yield = time.monotonic()
        loader.progress(0, size)
        # A big file is millions of small objects that live on (keys, values): the cyclic GC
        # would walk the growing heap again and again for nothing while they are created.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            with open(path, "rb") as handle:
                handle.seek(start)
                while True:
                    chunk = await trio.to_thread.run_sync(handle.read, CHUNK_SIZE)
                    if not chunk:
                        break
                    scanner.feed(chunk)
                    for batch in scanner.batches():
                        failed = loader.execute_many(batch)
                        if failed is not None:
                            index, reply = failed
                            name = batch[index][0].decode(errors="replace")
                            raise AofCorruption(scanner.offset_of(batch, index),
                                                f"Error replaying '{name}' ({reply!r})")
                        if time.monotonic() - last_yield >= YIELD_SECONDS:
                            # Serve the event loop now and then, as Redis does every 1000
                            # commands: clients connecting meanwhile get -LOADING, INFO works.
                            # core logs percent, ETA
                            loader.progress(start + scanner.consumed, size)
                            await trio.sleep(0)
                            last_yield = time.monotonic()
                    loader.progress(start + scanner.consumed, size)
                    await trio.sleep(0)
                    last_yield = time.monotonic()
                handle.seek(start + scanner.consumed)
                end = scanner.finish(handle.read()).moved(start)
        except AofCorruption as error:
            offset = start + error.offset  # the scanner counts from ``start``
            loader.log.warning(
                f"Bad file format reading the append only file {path} at offset "
                f"{offset}: {error.reason}. Make a backup of your AOF file, then use "
                f"trioredis-check-aof --fix {path}")
            raise AofLoadError(f"AOF {path} is damaged at offset {offset}") from None
        finally:
            if gc_was_enabled:
                gc.enable()
        if end.unfinished_multi_at is not None:
            loader.execute([b"DISCARD"])  # the unfinished transaction never runs
        if not end.torn:
            return end.total_size
        return self._load_torn_tail(loader, path, end, own_file, last)

    def _load_torn_tail(self, loader: Loader, path: str, end: Any, own_file: bool,
                        last: bool) -> int:
        """The file ends inside a command: refuse to start, or keep the whole commands (and
        cut the file back to them when it is ours); the valid size."""
        # TORN TAIL.  A crash or power loss can leave the last command (or a MULTI block
        # without its EXEC) incomplete.  With aof-load-truncated yes the whole commands are
        # loaded and the file is cut back to them (before the MULTI of an unfinished
        # transaction, so it can never be half-applied by a later restart); appends then
        # continue from a clean end.  With no, the server refuses to start.
        if not self._config.aof_load_truncated or not last:
            loader.log.warning(
                f"Unexpected end of file reading the append only file {path} (valid up to "
                f"offset {end.valid_size} of {end.total_size}). You can: 1) Make a backup of "
                f"your AOF file, then use trioredis-check-aof --fix {path}. 2) Alternatively "
                "you can set the 'aof-load-truncated' configuration option to yes and restart "
                "the server.")
            raise AofLoadError(f"AOF {path} is truncated at offset {end.valid_size}")
        loader.log.warning(f"!!! Warning: short read while loading the AOF file {path}!!!")
        if end.unfinished_multi_at is not None:
            loader.log.warning("Revert incomplete MULTI/EXEC transaction in AOF file "
                               f"(from offset {end.unfinished_multi_at})")
        if not own_file:  # Redis's file: loaded as far as it is whole, left as it is
            loader.log.warning(f"AOF loaded anyway because aof-load-truncated is enabled "
                               f"(valid up to offset {end.valid_size} of {end.total_size})")
            return end.valid_size
        loader.log.warning(
            f"AOF loaded anyway because aof-load-truncated is enabled: truncating {path} from "
            f"{end.total_size} to {end.valid_size} bytes")
        os.truncate(path, end.valid_size)
        return end.valid_size
