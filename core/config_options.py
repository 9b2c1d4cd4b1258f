"""The option table in force: core's options plus the plugins' (``trioredis_add_options``),
and the frozen ``Config`` Struct built from it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from .config_table import (
    BOOL,
    ENUM,
    EVENTS,
    INT,
    MEMORY,
    MEMORY_OR_PERCENT,
    OCTAL,
    OOM_VALUES,
    OUTPUT_LIMITS,
    OWN_OPTIONS,
    PERCENTILES,
    REDIS_OPTIONS,
    REPLICAOF,
    SAVE,
    STRING,
    WORDS,
    Option,
)
from .config_values import ConfigError


class OptionTable:
    """The known options (core's and the plugins'), by name and alias, and the frozen Struct
    class that holds their values."""

    def __init__(self, options: Iterable[Option], base: type[msgspec.Struct] | None = None,
                 inherited: OptionTable | None = None) -> None:
        own = list(options)
        self.options: dict[str, Option] = dict(inherited.options) if inherited else {}
        self.by_name: dict[str, Option] = dict(inherited.by_name) if inherited else {}
        for option in own:
            for name in (option.name, option.alias):
                if name in self.by_name:
                    raise ConfigError(f"option {name!r} is declared twice")
            self.options[option.name] = option
            self.by_name[option.name] = option
            if option.alias:
                self.by_name[option.alias] = option
        self.by_field = {option.field: option for option in self.options.values()}
        fields = [(option.field, _FIELD_TYPES[option.kind],
                   msgspec.field(default_factory=_copier(option.default), name=option.name)
                   if isinstance(option.default, list)
                   else msgspec.field(default=option.default, name=option.name))
                  for option in own]
        bases = (base,) if base is not None else ()
        self.struct: type[msgspec.Struct] = msgspec.defstruct(
            "Config", fields, bases=bases, kw_only=True, frozen=True,
            forbid_unknown_fields=True, module="trioredis.config")  # where it is imported from
        # CONFIG GET * lists names and aliases, as Redis does.
        self.names = tuple(self.by_name)
        self._extensions: dict[tuple[int, ...], OptionTable] = {}
        self._keep: tuple[Option, ...] = ()
        _TABLES[self.struct] = self

    def extended(self, options: Sequence[Option]) -> OptionTable:
        """This table plus ``options`` (a plugin's), as a Struct subclass: code that reads
        ``config.port`` keeps working on it."""
        if not options:
            return self
        # The same plugins give the same table: one Struct class per set of options, not
        # one per configuration read (a test process reads hundreds).
        key = tuple(id(option) for option in options)
        table = self._extensions.get(key)
        if table is None:
            table = self._extensions[key] = OptionTable(options, base=self.struct,
                                                        inherited=self)
            table._keep = tuple(options)  # the ids in the key stay those of these objects
        return table


_TABLES: dict[type, OptionTable] = {}

_FIELD_TYPES: dict[str, Any] = {
    BOOL: bool, INT: int, MEMORY: int, OCTAL: int, ENUM: str, STRING: str,
    WORDS: list[str], SAVE: list[tuple[int, int]], OUTPUT_LIMITS: str, EVENTS: str,
    OOM_VALUES: str, PERCENTILES: str, MEMORY_OR_PERCENT: str, REPLICAOF: str,
}


def _copier(default: list) -> Any:
    return lambda: list(default)


CORE_TABLE = OptionTable(REDIS_OPTIONS + OWN_OPTIONS)
Config: Any = CORE_TABLE.struct
Config.__doc__ = "The configuration in force: one field per option of the table, frozen."
OPTION_NAMES = CORE_TABLE.names


def table_of(config: Any) -> OptionTable:
    """The table a configuration was built from (core's, or core's plus plugins')."""
    return _TABLES[type(config)]


class OptionRegistry:
    """What ``trioredis_add_options`` fills: ``registry.add(Option(...))`` (see
    :mod:`trioredis.config_table` for the helpers ``boolean``, ``integer``, ``string``...)."""

    def __init__(self, core: OptionTable) -> None:
        self._core = core
        self.options: list[Option] = []

    def add(self, option: Option) -> None:
        taken = set(self._core.by_name) | {o.name for o in self.options} | {
            o.alias for o in self.options if o.alias}
        if option.name in taken or option.alias in taken:
            raise ConfigError(f"option {option.name!r} is already declared")
        if option.kind not in _FIELD_TYPES:
            raise ConfigError(f"option {option.name!r} has an unknown kind {option.kind!r}")
        self.options.append(option)


def _validated(table: OptionTable, values: Mapping[str, Any], base: Any = None) -> Any:
    data = msgspec.to_builtins(base) if base is not None else {}
    data.update({table.by_field[field].name: value for field, value in values.items()})
    try:
        return msgspec.convert(data, table.struct)
    except msgspec.ValidationError as error:
        raise ConfigError(str(error)) from None
