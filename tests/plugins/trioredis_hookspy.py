"""A test plugin that records the observer hooks it receives, to check that each is called
when docs/plugins.md says it is.  Loaded with ``loadplugin trioredis_hookspy``; the calls of
every server in the process land in ``CALLS`` (tests run one server at a time)."""

from trioredis import hookimpl

CALLS: list[tuple] = []


@hookimpl
def trioredis_command_propagated(db, argv):
    CALLS.append(("propagated", db, list(argv)))


@hookimpl
def trioredis_command_executed(client, argv, duration_us):
    CALLS.append(("executed", list(argv), duration_us >= 0))


@hookimpl
def trioredis_config_changed(old, new):
    CALLS.append(("config_changed", old.maxclients, new.maxclients))


@hookimpl
def trioredis_rewrite_started():
    CALLS.append(("rewrite_started",))


@hookimpl
def trioredis_rewrite_finished(ok, stats):
    CALLS.append(("rewrite_finished", ok, stats["kind"], stats["seconds"] >= 0))
