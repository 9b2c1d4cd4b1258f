"""A test plugin (``loadplugin trioredis_options``) that declares its own options through
``trioredis_add_options``, and records what ``trioredis_config_changed`` saw of them."""

from trioredis import hookimpl
from trioredis.config_table import FILENAME, IMMUTABLE, PROTECTED, enum, integer, string

SEEN: list[tuple[int, str]] = []  # (options-demo-level, options-demo-mode) after each change


@hookimpl
def trioredis_add_options(registry):
    registry.add(integer("options-demo-level", 3, 0, 10, applies="a demo level"))
    registry.add(enum("options-demo-mode", ("fast", "safe"), "safe", alias="options-demo-old",
                      applies="a demo mode"))
    registry.add(string("options-demo-filename", "demo.log", confine=FILENAME,
                        applies="a demo file in dir"))
    registry.add(string("options-demo-archive", "archive.log", confine=FILENAME,
                        flags=PROTECTED, applies="a protected demo file in dir"))
    registry.add(integer("options-demo-shards", 4, 1, 64, flags=IMMUTABLE,
                         applies="set at start-up only"))


@hookimpl
def trioredis_config_changed(old, new):
    SEEN.append((new.options_demo_level, new.options_demo_mode))
