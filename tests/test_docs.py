"""docs/plugins.md stays honest: one section per hook spec with the spec's parameters, no
section for a hook that does not exist, and quoted examples identical to their source files."""

from __future__ import annotations

import inspect
import os
import re

import pytest
from trioredis import hookspecs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(REPO, "docs", "plugins.md")
SECTION = re.compile(r"^### `(?P<name>\w+)\((?P<params>[^)]*)\)`\s*$", re.MULTILINE)
QUOTE = re.compile(r"<!-- source: (?P<path>\S+) -->\n```\w*\n(?P<body>.*?)\n```", re.DOTALL)


def _guide() -> str:
    with open(GUIDE, encoding="utf-8") as handle:
        return handle.read()


def _hook_specs() -> dict[str, inspect.Signature]:
    """Every function in trioredis.hookspecs marked with ``@hookspec``."""
    return {
        name: inspect.signature(function)
        for name, function in vars(hookspecs).items()
        if callable(function) and hasattr(function, "trioredis_spec")
    }


def _sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    for match in SECTION.finditer(_guide()):
        params = [p.strip() for p in match["params"].split(",") if p.strip()]
        assert match["name"] not in sections, f"two sections for {match['name']}"
        sections[match["name"]] = params
    return sections


def test_there_are_hook_specs_to_document():
    assert len(_hook_specs()) >= 10


def test_every_hook_spec_has_a_section():
    missing = sorted(set(_hook_specs()) - set(_sections()))
    assert not missing, f"docs/plugins.md has no '### `name(...)`' section for: {missing}"


def test_every_section_names_an_existing_hook():
    unknown = sorted(set(_sections()) - set(_hook_specs()))
    assert not unknown, f"docs/plugins.md documents hooks that do not exist: {unknown}"


def test_sections_show_the_spec_parameters():
    specs, sections = _hook_specs(), _sections()
    for name, params in sections.items():
        if name in specs:
            assert params == list(specs[name].parameters), name


def test_firstresult_hooks_say_so():
    text = _guide()
    for name, function in vars(hookspecs).items():
        options = getattr(function, "trioredis_spec", None)
        if options and options.get("firstresult"):
            start = text.index(f"### `{name}(")
            end = text.find("\n### ", start + 1)
            assert "firstresult" in text[start:end], name


QUOTES = QUOTE.findall(_guide())


def test_the_guide_quotes_the_examples():
    assert {path for path, _ in QUOTES} >= {
        "examples/trioredis-hello/trioredis_hello/__init__.py",
        "examples/trioredis-hello/pyproject.toml",
        "tests/plugins/trioredis_mirror.py",
        "tests/plugins/trioredis_groupcommit.py",
    }


@pytest.mark.parametrize(("path", "body"), QUOTES, ids=[f"{p}#{i}" for i, (p, _) in enumerate(QUOTES)])
def test_quoted_example_matches_its_source(path, body):
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        source = handle.read()
    assert body in source, f"the quote from {path} in docs/plugins.md no longer matches the file"


def test_every_backend_member_is_in_the_guides_table():
    """The persistence contract (PersistenceBackend) is documented member by member."""
    from trioredis.persistence import PersistenceBackend

    first_cells = re.findall(r"^\| ([^|]*`\w+\([^|]*) \|", _guide(), re.MULTILINE)
    rows = {name for cell in first_cells for name in re.findall(r"`(\w+)\(", cell)}
    members = {name for name, value in vars(PersistenceBackend).items()
               if callable(value) and not name.startswith("_")}
    assert members, "no members found"
    missing = sorted(members - rows)
    assert missing == []
    assert "`operations`" in _guide()


def test_every_ticket_and_host_member_is_in_the_guides_tables():
    """The rest of the contract a backend sees: what a Ticket implements and what its
    BackendHost offers, member by member (a row's first cell names them)."""
    from trioredis.persistence import BackendHost, Ticket

    first_cells = re.findall(r"^\| ([^|]*`\w+[^|]*) \|", _guide(), re.MULTILINE)
    rows = {name for cell in first_cells for name in re.findall(r"`(\w+)", cell)}
    for contract in (Ticket, BackendHost):
        members = {name for name in vars(contract) if not name.startswith("_")}
        assert members, contract
        assert sorted(members - rows) == [], contract.__name__
