"""The trio transport: listeners, the reactor that serves connections, the cron, start-up and
shutdown.

The I/O model lives here and only here.  Commands and plugins see a client through
:class:`trioredis.client.Client` and its :class:`~trioredis.client.Transport` (push a reply,
close), so serving connections differently changes this package alone:

- :mod:`.connection`: one client's socket, parser and pending output;
- :mod:`.reactor`: the task that serves every ready socket in one turn, and parks replies
  until the writes they depend on are durable;
- :mod:`.listeners`: listening sockets and accepting clients;
- :mod:`.serving`: running a connection's commands, output limits, blocked commands on tasks
  of their own, pushes, closing, and answering clients while a script is busy;
- here: :class:`Server` (start-up, the cron, signals, shutdown) and :func:`serve`.

Connections are served by one :class:`Reactor` task (every ready socket in one turn, one
persistence flush per turn, then every reply leaves); a connection whose command blocks moves
to a task of its own until it is done waiting.  For each client, everything one ``recv``
brought is parsed and executed, the persistence backends flush (and, under ``appendfsync
always``, wait for the fsync), then its replies leave in one ``send``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import trio

from .. import __version__
from ..acl_file import AclFileError, load_startup_users
from ..config import LoadedConfig
from ..engine import Engine
from ..log import Log
from ..persistence import PersistenceRegistry
from ..plugin_manager import make_plugin_manager, plugin_names
from ..supervision import SystemdNotifier
from .connection import Connection
from .listeners import Listeners
from .reactor import Reactor
from .serving import Serving


class Server(Listeners, Serving):
    """One trioredis server: ``await nursery.start(server.run)`` returns once it listens."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        handle_signals: bool = False,
        log: Log | None = None,
        ephemeral_port: bool = False,
        supervised: str = "no",
    ) -> None:
        """``ephemeral_port``: listen on a port the kernel picks (tests), since ``port 0``
        means "no TCP" in redis.conf.  ``supervised``: the service manager in charge
        (``systemd``, ``upstart``, ``no``), for INFO's process_supervised."""
        self.supervised = supervised
        self.loaded = loaded
        self.ephemeral_port = ephemeral_port
        self.config = loaded.config
        self.handle_signals = handle_signals
        self.log = log or Log(self.config.loglevel, self.config.logfile)
        self.engine: Engine | None = None
        self.ports: list[int] = []
        self.unix_path: str | None = None
        self.connections: dict[int, Connection] = {}
        self._listeners: list[trio.socket.SocketType] = []
        self._nursery: trio.Nursery | None = None
        self.reactor: Reactor | None = None
        self.ready = trio.Event()
        self.exit_code = 0
        self._output_limits: dict[str, tuple[int, int, int]] = {}
        self._output_limits_text: str | None = None
        # The output size (bytes) from which a normal client's replies are checked against its
        # limits, 0 when it has none (refreshed by config_applied): the reactor tests this
        # once per command instead of parsing the option's text.
        self._normal_output_threshold = 0
        self._output_soft_since: dict[int, float] = {}  # client id -> over the soft limit since
        self._output_overflow: set[int] = set()  # client ids closed for their output

    @property
    def port(self) -> int:
        return self.ports[0] if self.ports else 0

    # --- start-up --------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> int:
        config = self.config
        # No chdir here (servers in tests share one process): backends join config.dir with
        # their file names.  The CLI changes directory as redis-server does.
        if config.dir:
            os.makedirs(config.dir, exist_ok=True)
        manager = make_plugin_manager(config.loadplugin)
        engine = self.engine = Engine(self.loaded, manager, self.log)
        engine.server = self
        try:
            load_startup_users(engine.acl, self.loaded.users, config.aclfile, engine.commands)
        except AclFileError as error:
            self.log.warning(f"Aborting Redis startup because of ACL errors: {error}")
            raise
        # A busy script answers the other clients through the transport (BUSY, SCRIPT KILL).
        engine.scripting.serve_while_busy = self.serve_while_busy
        self._normal_output_threshold = self._output_threshold()
        registry = PersistenceRegistry()
        manager.hook.trioredis_register_persistence(registry=registry, config=config)
        engine.persistence.register(registry.backends)
        await self._open_listeners()
        self._banner(manager)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            engine.nursery = nursery
            if self.handle_signals:
                nursery.start_soon(self._watch_signals)
            self.reactor = Reactor(self)
            await nursery.start(self.reactor.run)
            for listener in self._listeners:
                nursery.start_soon(self._accept_loop, listener)
            task_status.started(self)
            started = time.time()
            await engine.load()
            if engine.keyspace.key_count():
                self.log.notice(
                    f"DB loaded from disk: {time.time() - started:.3f} seconds "
                    f"({engine.keyspace.key_count()} keys)"
                )
            await engine.persistence.start(nursery)
            await nursery.start(engine.replication.run)
            nursery.start_soon(self._cron)
            self.ready.set()
            self.log.notice("Ready to accept connections")
            await engine.shutdown_requested.wait()
            await self._shutdown(nursery)
        return self.exit_code

    def _banner(self, manager: Any) -> None:
        config = self.config
        where = f"port={self.port}" if self.ports else "no TCP port"
        self.log.notice(
            f"trioredis version={__version__}, pid={os.getpid()}, {where}, "
            f"config={self.loaded.path or 'none (defaults)'}"
        )
        backends = ", ".join(b.name for b in self.engine.backends) if self.engine else ""
        self.log.notice(f"Persistence backends loaded: {backends}")
        self.log.verbose(f"Plugins: {', '.join(plugin_names(manager))}")
        if self.loaded.without_effect:  # accepted and shown as Redis does, used for nothing
            self.log.notice(f"Options without effect here: {', '.join(self.loaded.without_effect)}")
        if config.unixsocket:
            self.log.notice(f"The server is now ready to accept connections at {config.unixsocket}")

    # --- cron ------------------------------------------------------------------------------

    async def _cron(self) -> None:
        engine = self.engine
        assert engine is not None
        while True:
            await trio.sleep(1 / self.config.hz)
            # DEBUG PAUSE-CRON 1 stops expiry, eviction, stats and timeouts, as Redis skips
            # its serverCron; writes buffered outside a turn are still flushed below.
            paused = engine.cron_paused
            if not paused:
                if engine.active_expire_enabled:
                    engine.keyspace.active_expire_cycle()
                engine.memory_cron()  # trioredis.memory / eviction
                engine.sample_ops()
            if engine.unflushed:
                engine.persistence.flush_nowait()
                # This flush is outside a reactor round: its round's end is here.
                engine.persistence.before_sleep()
            timeout = self.config.timeout
            if timeout and not paused:
                limit = time.monotonic() - timeout
                for connection in list(self.connections.values()):
                    client = connection.client
                    if (client.last_interaction < limit and not client.blocked
                            and not client.in_pubsub):
                        self.log.verbose(f"Closing idle client id={client.id}")
                        self._close_soon(connection)
            self.config = engine.config

    # --- shutdown --------------------------------------------------------------------------

    async def _watch_signals(self) -> None:
        assert self.engine is not None
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
                self.log.warning(f"Received {name} scheduling shutdown...")
                self.engine.request_shutdown(None)

    async def _shutdown(self, nursery: trio.Nursery) -> None:
        engine = self.engine
        assert engine is not None
        self.log.warning("User requested shutdown..." if engine.fatal_error is None else "Stopping on a fatal error")
        for listener in self._listeners:
            listener.close()
        if self.unix_path:
            try:
                os.unlink(self.unix_path)
            except OSError:
                pass
        with trio.CancelScope(shield=True):
            engine.persistence.flush_nowait()
            if engine.fatal_error is None:
                save = (bool(engine.shutdown_save) if engine.shutdown_save is not None
                        else _default_save(engine))
                if not await engine.persistence.close(save, self.log):
                    self.exit_code = 1
            else:
                self.exit_code = 1
        self.log.warning("trioredis is now ready to exit, bye bye...")
        nursery.cancel_scope.cancel()


def _default_save(engine: Engine) -> bool:
    """SIGTERM and a bare SHUTDOWN save a snapshot when save points are configured."""
    return bool(getattr(engine.config, "save", ()))  # an option of plugins/snapshot


async def serve(loaded: LoadedConfig, *, handle_signals: bool = True, on_ready: Callable[[Server], None] | None = None,
                notifier: SystemdNotifier | None = None, supervised: str = "no") -> int:
    """Run a server until it shuts down; returns the process exit code.  ``notifier``: the
    service manager to tell when loading ends and when shutdown begins."""
    server = Server(loaded, handle_signals=handle_signals, supervised=supervised)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        if notifier is not None:
            nursery.start_soon(notifier.follow, server)
        if on_ready is not None:
            on_ready(server)
    return server.exit_code
