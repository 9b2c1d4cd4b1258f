"""Living under a service manager, as redis-server does: signals, ``daemonize``, ``supervised``.

- SIGHUP is ignored (a closed terminal or ``systemctl reload`` must not stop the server);
  SIGUSR1 and SIGUSR2 keep their default action, which ends the process, as in Redis 7.0.
- ``daemonize yes`` detaches before loading: the pidfile then names the daemon.
- ``supervised systemd`` speaks the sd_notify datagram protocol on ``$NOTIFY_SOCKET``:
  ``STATUS=`` lines while loading, ``READY=1`` once the data is loaded, ``STOPPING=1`` when
  shutdown begins, so ``Type=notify`` units order their dependents on real readiness.
- ``supervised upstart`` stops itself (SIGSTOP) once, which is how upstart's ``expect stop``
  learns the job is up.  ``supervised auto`` picks one from the environment.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .log import Log
    from .server import Server

# Where a daemonized server writes its pid when no pidfile is configured (Redis writes
# /var/run/redis.pid; ours is named after us so both can run on one machine).
DEFAULT_DAEMON_PIDFILE = "/var/run/trioredis.pid"

SUPERVISED_MODES = ("no", "upstart", "systemd", "auto")


def ignore_hangup() -> None:
    """SIGHUP as Redis treats it: ignored.  SIGPIPE is already ignored by Python."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def daemonize() -> None:
    """Detach from the terminal and the parent: fork, new session, fork again (the daemon can
    never reacquire a controlling terminal), stdio on /dev/null.  The original process exits 0
    at once, as redis-server's does; errors after this point are only in the log file."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def supervision_mode(requested: str, log: Log, environ: dict[str, str] | None = None) -> str:
    """``"systemd"``, ``"upstart"`` or ``"no"``: what ``supervised <requested>`` amounts to in
    this environment.  A requested manager whose variable is missing is logged and ignored."""
    environ = os.environ if environ is None else environ
    mode = requested
    if mode == "auto":
        if environ.get("UPSTART_JOB"):
            log.verbose("Upstart supervision detected.")
            mode = "upstart"
        elif environ.get("NOTIFY_SOCKET"):
            log.verbose("Systemd supervision detected.")
            mode = "systemd"
        else:
            mode = "no"
    if mode == "upstart" and not environ.get("UPSTART_JOB"):
        log.warning("upstart supervision requested, but UPSTART_JOB not found!")
        return "no"
    if mode == "systemd" and not environ.get("NOTIFY_SOCKET"):
        log.warning("systemd supervision requested or auto-detected, but NOTIFY_SOCKET "
                    "environment variable not found!")
        return "no"
    return mode


class SystemdNotifier:
    """sd_notify(3) without libsystemd: each message is one datagram of ``KEY=value`` lines to
    the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` is Linux's abstract
    namespace).  A manager that went away must not stop the server: send errors are logged."""

    def __init__(self, address: str, log: Log) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.log = log

    def notify(self, message: str) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), self.address)
        except OSError as error:
            self.log.warning(f"Can't send notification to systemd: {error.strerror or error}")
            return False
        return True

    async def follow(self, server: Server) -> None:
        """From start to shutdown: ``READY=1`` once loading is over (the datagram after the
        log's "Ready to accept connections"), ``STOPPING=1`` as shutdown begins."""
        engine = server.engine
        assert engine is not None
        async with trio.open_nursery() as nursery:

            async def announce_ready() -> None:
                await server.ready.wait()
                self.notify("STATUS=Ready to accept connections\n")
                self.notify("READY=1\n")

            nursery.start_soon(announce_ready)
            await engine.shutdown_requested.wait()
            nursery.cancel_scope.cancel()
        self.notify("STOPPING=1\n")


def start_supervision(mode: str, log: Log) -> SystemdNotifier | None:
    """Act on the mode at start-up, before loading: systemd hears that loading begins (and
    gets its notifier back for the rest), upstart sees the process stop once."""
    if mode == "systemd":
        notifier = SystemdNotifier(os.environ["NOTIFY_SOCKET"], log)
        if notifier.notify("STATUS=trioredis is loading...\n"):
            log.notice("Supervised by systemd. Please make sure you set appropriate values for "
                       "TimeoutStartSec and TimeoutStopSec in your service unit.")
            return notifier
        return None
    if mode == "upstart":
        log.notice("supervised by upstart, will stop to signal readiness.")
        os.kill(os.getpid(), signal.SIGSTOP)
        os.environ.pop("UPSTART_JOB", None)
    return None
