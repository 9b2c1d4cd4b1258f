"""The shape of the code, checked: the persistence contract and its owner sit outside every
import cycle, and plugins use only trioredis's public names (as a third party would).

Imports are read from the source with ``ast``, those under ``if TYPE_CHECKING:`` and inside
functions included: a cycle of type-only imports still ties the modules together for a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import trioredis

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
PLUGINS = ROOT / "plugins"
# Modules no import cycle may pass through.
CONTRACT = {"trioredis.persistence", "trioredis.backends"}
# Public modules besides the package's own names: the option helpers a plugin declares its
# options with (documented with the trioredis_add_options hook), Redis's RDB codec, and the
# rewriter of built-in values (the commands that rebuild a key, argv lists or RESP).
PUBLIC_MODULES = {"trioredis.config_table", "trioredis.rdb", "trioredis.rewrite"}


def module_name(path: Path) -> str:
    if path.is_relative_to(PLUGINS):
        parts = ("trioredis", "plugins", *path.relative_to(PLUGINS).with_suffix("").parts)
    else:
        parts = ("trioredis", *path.relative_to(CORE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, submodules: bool = True) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import in the file; with
    ``submodules``, ``from pkg import name`` also counts as importing ``pkg.name`` (which
    is a module when the name is one)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [alias.name for alias in node.names]
            found.append((base, names))
            if submodules:  # ``from . import engine`` imports the module ``package.engine``
                found += [(f"{base}.{n}", []) for n in names if n != "*"]
    return found


def core_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        # Not the package itself: its __init__ re-exports the public names, and every module
        # of the package runs inside it anyway.
        graph[name] = {target for target, _ in imports_of(path)
                       if target in modules and target not in (name, "trioredis")}
    return graph


def cycles_through(graph: dict[str, set[str]], start: str) -> list[list[str]]:
    """Every simple path start -> ... -> start (bounded: the graph is small)."""
    found: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target == start:
                found.append([*path, start])
            elif target not in path and len(path) < 12 and len(found) < 20:
                walk(target, [*path, target])

    walk(start, [start])
    return found


def test_no_import_cycle_passes_through_the_persistence_contract_or_its_owner():
    graph = core_graph()
    for module in sorted(CONTRACT):
        assert module in graph, f"{module} is missing"
        assert cycles_through(graph, module) == [], f"import cycles through {module}"


def test_plugins_import_only_trioredis_public_names():
    public = set(trioredis.__all__)
    offenders = []
    for path in sorted(PLUGINS.rglob("*.py")):
        plugin = module_name(path).split(".")[:3]  # trioredis.plugins.<name>
        for target, names in imports_of(path, submodules=False):
            if not target.startswith("trioredis"):
                continue  # the standard library and third-party packages
            if target.split(".")[:3] == plugin or target == "trioredis.plugins":
                continue  # the plugin's own modules
            if (target == "trioredis" and set(names) <= public) or target in PUBLIC_MODULES:
                continue
            offenders.append(f"{path.relative_to(ROOT)}: {target} {names}")
    assert offenders == []


def test_the_layout_check_sees_a_cycle_and_a_private_import(tmp_path):
    """The two checks above can fail: a made-up graph with a cycle, a made-up plugin file."""
    graph = {"a": {"trioredis.persistence"}, "trioredis.persistence": {"b"}, "b": {"a"}}
    assert cycles_through(graph, "trioredis.persistence") == [
        ["trioredis.persistence", "b", "a", "trioredis.persistence"]]
    plugin = PLUGINS / "aof" / "backend.py"
    targets = dict(imports_of(plugin))
    assert "trioredis" in targets  # imports are found at all
    fake = ast.parse("from trioredis.engine import Engine\nfrom trioredis import Block\n")
    names = [(n.module, [a.name for a in n.names]) for n in fake.body]
    assert ("trioredis.engine", ["Engine"]) in names


def test_every_subpackage_is_listed_for_setuptools():
    """An editable install finds a package pyproject.toml forgets; a wheel does not ship it."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {module_name(init) for base in (CORE, PLUGINS) for init in base.rglob("__init__.py")}
    assert found - listed == set()


def test_the_persistence_contract_and_its_owner_know_nothing_of_the_engine():
    """BackendHost and Loader are built from narrow callables: the contract imports nothing
    of core, and its owner only the contract, the error texts and reply values (not the
    engine, not even under TYPE_CHECKING)."""
    allowed = {
        CORE / "persistence.py": set(),
        CORE / "backends.py": {"trioredis.persistence", "trioredis.errors", "trioredis.resp"},
    }
    for path, modules in allowed.items():
        imported = {target for target, _ in imports_of(path, submodules=False)
                    if target.startswith("trioredis")}
        assert imported - {"trioredis"} <= modules, path.name
        assert "engine" not in path.read_text(), path.name
