"""Every registered command's keys and per-key ACL access for a fixed set of sample argvs.

Written before the key facts moved to the signatures: ``python tests/key_access_dump.py``
printed ``tests/data/key_access.json`` from the registry as it was, and
``tests/test_key_access_derivation.py`` compares today's registry with it.  The samples mix
plain keys, numeric counts (numkeys), and every keyword a command's signature names (STORE,
STREAMS, KEYS, GET...), so each way of finding keys is exercised.

The fixture is the record of the old hand-written declarations: regenerating it now would
only compare the derivation with itself.  A deliberate change of a command's keys belongs in
the test's list of explained differences instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "data" / "key_access.json"

# Argument lists with keys, counts and filler in different places.
_SHAPES = (
    (), ("k1",), ("k1", "k2"), ("k1", "k2", "k3"), ("k1", "k2", "k3", "k4", "k5"),
    ("k1", "k2", "k3", "k4", "k5", "k6"), ("2", "k1", "k2"), ("1", "k1", "k2", "k3"),
    ("3", "k1", "k2", "k3", "x"), ("k1", "2", "k2", "k3", "x"), ("k1", "k2", "2", "k3", "k4"),
    ("0", "k1"), ("-1", "k1", "k2"), ("zz", "k1", "k2"), ("k1", "k2", "0", "k3"),
    ("h", "1", "k1", "0", "5"), ("h", "1", "", "0", "5", "KEYS", "k1", "k2"),
)


def _tokens(arguments) -> set[str]:
    found: set[str] = set()
    for arg in arguments:
        if arg.token:
            found.add(arg.token)
        found |= _tokens(arg.arguments)
    return found


def samples(name: str) -> list[list[bytes]]:
    """The sample argvs of one command (``name`` as registered)."""
    from trioredis.commands.signatures import signatures

    words = [list(shape) for shape in _SHAPES]
    signature = signatures().get(name)
    for word in sorted(_tokens(signature.arguments) if signature else ()):
        words += [["k1", word, "k2", "k3"], ["k1", "x", word, "k2", "k3", "k4"],
                  [word, "k1", "k2", "i1", "i2"], ["k1", "k2", word, "2", "k3", "k4"]]
    return [[name.encode(), *(word.encode() for word in argv)] for argv in words]


def _describe(spec, argv: list[bytes]) -> object:
    try:
        keys = [key.decode() for key in spec.keys(argv)]
        access = [[key.decode(), read, write]
                  for key, (read, write) in spec.keys_with_access(argv)]
        written = [key.decode() for key in (spec.write_keys or spec.keys)(argv)]
    except Exception as error:  # noqa: BLE001 - the failure itself is the fact recorded
        return type(error).__name__
    return {"keys": keys, "access": access, "written": written}


def dump(registry) -> dict[str, dict[str, object]]:
    """``{command: {argv joined by spaces: facts}}`` for every registered command."""
    found: dict[str, dict[str, object]] = {}
    for spec in sorted(registry, key=lambda spec: spec.name):
        found[spec.name] = {b" ".join(argv).decode(): _describe(spec, argv)
                            for argv in samples(spec.name)}
    return found


def registry():
    """The built-in command table, as the server builds it."""
    from trioredis.commands import CommandRegistry
    from trioredis.plugin_manager import make_plugin_manager

    table = CommandRegistry()
    make_plugin_manager(entry_points=False).hook.trioredis_register_commands(registry=table)
    return table


if __name__ == "__main__":
    facts = dump(registry())
    # One line per command, so a change reads as a one-line diff.
    lines = (f"{json.dumps(name)}: {json.dumps(facts[name], sort_keys=True)}" for name in facts)
    FIXTURE.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    sys.stdout.write(f"wrote {FIXTURE}\n")
