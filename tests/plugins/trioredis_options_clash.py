"""A test plugin that declares an option core already has: start-up must refuse it."""

from trioredis import hookimpl
from trioredis.config_table import integer


@hookimpl
def trioredis_add_options(registry):
    registry.add(integer("maxclients", 1, 1, 2))
