"""``trioredis-server [config] [--option value ...]``, in redis-server's conventions."""

from __future__ import annotations

import functools
import os
import sys
from importlib import resources

import msgspec
import trio

from . import (
    REDIS_VERSION,
    __version__,
    info,  # noqa: F401  (INFO's executable path is resolved before the chdir)
)
from .config import ConfigError, LoadedConfig, load_config
from .log import Log
from .supervision import (
    DEFAULT_DAEMON_PIDFILE,
    daemonize,
    ignore_hangup,
    start_supervision,
    supervision_mode,
)

USAGE = """Usage: trioredis-server [/path/to/trioredis.conf] [options] [-]
       trioredis-server -v or --version
       trioredis-server -h or --help
       trioredis-server --test-config [/path/to/trioredis.conf] [options]
       trioredis-server --print-default-config or --print-systemd-unit

Examples:
       trioredis-server (run the server with default config)
       trioredis-server config/trioredis.conf
       trioredis-server --port 7777
       trioredis-server config/trioredis.conf --appendonly yes --appendfsync always
"""

# Files of config/ shipped as package data, by the option that prints them.
PACKAGED_FILES = {"--print-default-config": "trioredis.conf",
                  "--print-systemd-unit": "trioredis.service"}


def parse_arguments(args: list[str]) -> tuple[str | None, list[list[str]]]:
    """The config path (first argument not starting with --) and option lines."""
    path = None
    if args and not args[0].startswith("--"):
        path, args = args[0], args[1:]
    lines: list[list[str]] = []
    for arg in args:
        if arg.startswith("--"):
            lines.append([arg[2:]])
        elif lines:
            lines[-1].append(arg)
        else:
            raise ConfigError(f"unexpected argument {arg!r}")
    return path, lines


class _Exit(Exception):
    """A step of :func:`main` ends the process with ``code`` (its message already printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    """redis-server's steps: answer an informational option, read and check the
    configuration, prepare the process (directory, log, supervision, daemon, pid file), run."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _answer_informational(args)
        loaded = _read_configuration(args)
        loaded, log, mode = _prepare_process(loaded)
    except _Exit as stop:
        return stop.code
    return _run(loaded, log, mode)


def _answer_informational(args: list[str]) -> None:
    """``--version``, ``--help``, ``--print-default-config``...: print, exit 0."""
    if args and args[0] in ("-v", "--version"):
        print(f"trioredis server v={__version__} (Redis {REDIS_VERSION} compatible) python={sys.version.split()[0]}")
        raise _Exit(0)
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        raise _Exit(0)
    if args and args[0] in PACKAGED_FILES:
        # Installed with the package (trioredis.defaults is config/): an operator gets the
        # documented defaults and the unit without a checkout of the repository.
        sys.stdout.write(resources.files("trioredis.defaults").joinpath(PACKAGED_FILES[args[0]]).read_text())
        raise _Exit(0)


def _read_configuration(args: list[str]) -> LoadedConfig:
    """The configuration from the file and the options (exit 1 with redis-server's banner
    when it is wrong); ``--test-config`` exits here, 0 when it is right."""
    test_only = False
    if args and args[0] == "--test-config":
        test_only, args = True, args[1:]
    try:
        path, lines = parse_arguments(args)
        loaded = load_config(path, lines)
    except ConfigError as error:
        print(f"\n*** FATAL CONFIG FILE ERROR (trioredis {__version__}) ***\n{error}", file=sys.stderr)
        raise _Exit(1) from None
    if test_only:
        print("Configuration test passed")
        raise _Exit(0)
    return loaded


def _prepare_process(loaded: LoadedConfig) -> tuple[LoadedConfig, Log, str]:
    """Run in ``dir``, open the log, decide supervision, daemonize, write the pid file: the
    configuration as it now is (absolute ``dir``, the daemon's pidfile), the log, the
    supervision mode."""
    config = loaded.config
    try:
        os.makedirs(config.dir, exist_ok=True)
        os.chdir(config.dir)
    except OSError as error:
        print(f"# Can't chdir to '{config.dir}': {error.strerror}", file=sys.stderr)
        raise _Exit(1) from None
    # Backends join dir with their file names: now that the process runs in dir, a relative
    # dir (dir ./data) must not be applied twice (./data/data).  CONFIG GET dir then answers
    # the absolute path, as Redis does.
    config = msgspec.structs.replace(config, dir=os.getcwd())
    # Under a service manager (see supervision.py): decided before any fork, and a supervised
    # server stays in the foreground even with daemonize yes, as redis-server does.
    try:
        log = Log(config.loglevel, config.logfile)
    except OSError as error:
        print(f"\n*** FATAL CONFIG FILE ERROR (trioredis {__version__}) ***\n"
              f"Can't open the log file: {error.strerror}", file=sys.stderr)
        raise _Exit(1) from None
    mode = supervision_mode(config.supervised, log)
    ignore_hangup()
    if config.daemonize and mode == "no":
        daemonize()
        if not config.pidfile:
            config = msgspec.structs.replace(config, pidfile=DEFAULT_DAEMON_PIDFILE)
    if config.pidfile:  # by the daemon itself: the pid a service manager must watch
        try:
            with open(config.pidfile, "w") as handle:
                handle.write(f"{os.getpid()}\n")
        except OSError as error:
            log.warning(f"Failed to write PID file: {error.strerror}")
    return msgspec.structs.replace(loaded, config=config), log, mode


def _run(loaded: LoadedConfig, log: Log, mode: str) -> int:
    """Serve until shutdown: the exit code (1, one line per cause, when start-up failed); the
    pid file is removed whatever happens."""
    from .server import serve

    pidfile = loaded.config.pidfile
    notifier = start_supervision(mode, log)
    try:
        return trio.run(functools.partial(serve, loaded, notifier=notifier, supervised=mode))
    except KeyboardInterrupt:
        return 0
    except Exception as error:  # start-up refused (bad data file, port taken, bad plugin)
        # The cause is already in the log when a backend refused; a supervisor gets exit 1
        # and one line per cause, not a traceback.
        for cause in _leaf_exceptions(error):
            print(f"# Fatal: {type(cause).__name__}: {cause}", file=sys.stderr)
        return 1
    finally:
        if pidfile:
            try:
                os.unlink(pidfile)
            except OSError:
                pass


def _leaf_exceptions(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, as trio raises them from nurseries."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaf_exceptions(inner)]
    return [error]
