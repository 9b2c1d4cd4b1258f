"""Each command's keys and per-key ACL access (read, write) are derived from its signature's
key specs at registration.  ``tests/data/key_access.json`` holds what the registrations
declared by hand before that (``key_specs=``, ``key_finder=``, ``write_keys=``), dumped by
``tests/key_access_dump.py`` for a fixed set of sample argvs: the derivation must agree with
it for every command."""

from __future__ import annotations

import json

import key_access_dump


def test_every_commands_keys_and_access_agree_with_the_old_declarations():
    expected = json.loads(key_access_dump.FIXTURE.read_text())
    found = key_access_dump.dump(key_access_dump.registry())
    assert sorted(found) == sorted(expected)
    differences = {name: [(argv, expected[name].get(argv), facts)
                          for argv, facts in found[name].items()
                          if expected[name].get(argv) != facts]
                   for name in found}
    assert {name: rows[:3] for name, rows in differences.items() if rows} == {}
