"""The plugin manager: built-ins, then the ``trioredis`` entry-point group, then
``loadplugin`` lines of the config.  Made by a function, never a module global, so every
server (and every test) gets its own."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import pluggy

from . import hookspecs

# Modules registered as plugins in every server.  Core's own command groups come first; the
# persistence backends are ordinary plugins that core reaches only through the hooks.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "trioredis.commands.builtin",
    "trioredis.observability",  # SLOWLOG and MONITOR, through trioredis_command_executed
    "trioredis.plugins.none",
    "trioredis.plugins.aof",
    "trioredis.plugins.snapshot",
)


class PluginLoadError(Exception):
    pass


def make_plugin_manager(
    loadplugin: Iterable[str] = (),
    default_plugins: Iterable[str] = DEFAULT_PLUGINS,
    entry_points: bool = True,
) -> pluggy.PluginManager:
    manager = pluggy.PluginManager("trioredis")
    manager.add_hookspecs(hookspecs)
    for name in default_plugins:
        manager.register(importlib.import_module(name), name=name)
    if entry_points:
        manager.load_setuptools_entrypoints("trioredis")
    for name in loadplugin:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            raise PluginLoadError(f"loadplugin {name}: {error}") from None
        if manager.is_registered(module):
            continue
        manager.register(module, name=name)
    manager.check_pending()
    return manager


def plugin_names(manager: pluggy.PluginManager) -> list[str]:
    return [name for name, _ in manager.list_name_plugin()]
