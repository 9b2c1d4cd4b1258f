"""Each command's keys and per-key ACL access (read, write) are derived from its signature's
key specs at registration.  ``tests/data/key_access.json`` holds what the registrations
declared by hand before that (``key_specs=``, ``key_finder=``, ``write_keys=``), dumped by
``tests/key_access_dump.py`` for a fixed set of sample argvs: the derivation must agree with
it for every command."""

from __future__ import annotations

import json

import key_access_dump
import pytest

# Where the old hand-written finders guessed, the key specs find no key at all, as Redis's
# ACL check does (tests/compat/test_differential_key_access.py shows it against
# redis-server): the STORE commands named their destination even when the count after it
# was not a number, 0 or past the end, and XREADGROUP searched STREAMS from argument 1, not
# after GROUP group consumer.
FINDS_NO_KEY_AS_REDIS = frozenset({"zunionstore", "zinterstore", "zdiffstore", "xreadgroup"})
NO_KEY = {"keys": [], "access": [], "written": []}


def test_every_commands_keys_and_access_agree_with_the_old_declarations():
    expected = json.loads(key_access_dump.FIXTURE.read_text())
    found = key_access_dump.dump(key_access_dump.registry())
    assert sorted(found) == sorted(expected)
    differences = {name: [(argv, expected[name].get(argv), facts)
                          for argv, facts in found[name].items()
                          if expected[name].get(argv) != facts]
                   for name in found}
    unexplained = {name: rows[:3] for name, rows in differences.items()
                   if rows and (name not in FINDS_NO_KEY_AS_REDIS
                                or any(facts != NO_KEY for _, _, facts in rows))}
    assert unexplained == {}
    # Each exception is still needed: the old declarations did differ there.
    assert {name for name, rows in differences.items() if rows} == FINDS_NO_KEY_AS_REDIS


def _handler(ctx, argv):
    return None


def test_a_registration_that_contradicts_the_signature_is_refused():
    from trioredis.commands import command

    with pytest.raises(ValueError, match="contradict"):
        command("lpop", -2, "write fast", _handler, key_specs="RO ACCESS")
    with pytest.raises(ValueError, match="key specs say"):
        command("get", 2, "readonly fast", _handler, (2, 2, 1))
    with pytest.raises(ValueError, match="decide the flags"):
        command("set", -3, "write denyoom", _handler, key_specs=lambda argv: ("OW UPDATE",))
    with pytest.raises(ValueError, match="unknown key spec flags"):
        command("get", 2, "readonly fast", _handler, key_specs="RO ACESS")
    with pytest.raises(ValueError, match="unknown flags"):
        command("get", 2, "readonly fastest", _handler)
    # Saying the same as the signature is allowed (a plugin's copy of a Redis command).
    same = command("lmove", 6, "write denyoom", _handler, (1, 2, 1),
                   key_specs=("RW ACCESS DELETE", "RW INSERT"))
    assert same.keys_with_access([b"lmove", b"a", b"b", b"left", b"right"]) == [
        (b"a", (True, True)), (b"b", (False, True))]


def test_the_key_facts_come_from_the_signature_once_at_registration():
    """Positions, the numkeys finder and the per-key access of a command registered with
    none of them, all from its key specs; a fixed access tuple (nothing left to compute per
    call) wherever the flags do not vary with the arguments."""
    from trioredis.commands import command

    zunionstore = command("zunionstore", -4, "write denyoom movablekeys", _handler)
    argv = [b"zunionstore", b"dest", b"2", b"a", b"b", b"WEIGHTS", b"1", b"2"]
    assert zunionstore.keys_with_access(argv) == [
        (b"dest", (False, True)), (b"a", (True, False)), (b"b", (True, False))]
    # A count only atoi reads ("+2"): Redis's fallback finds the keys without flags, which
    # any pattern naming them lets through; so ZUNIONSTORE's access is decided per call.
    assert zunionstore.access is None
    assert zunionstore.keys_with_access([b"zunionstore", b"dest", b"+2", b"a", b"b"]) == [
        (b"a", (False, False)), (b"b", (False, False)), (b"dest", (False, False))]
    xread = command("xread", -4, "readonly blocking movablekeys", _handler)
    assert xread.access == ((True, False),)
    mset = command("mset", -3, "write denyoom", _handler)
    assert (mset.first_key, mset.last_key, mset.step) == (1, -1, 2)
    assert mset.keys([b"mset", b"a", b"1", b"b", b"2"]) == [b"a", b"b"]
    set_ = command("set", -3, "write denyoom", _handler)
    assert set_.access is None  # SET ... GET reads the key: decided per call
    assert set_.keys_with_access([b"set", b"k", b"v"]) == [(b"k", (False, True))]
    assert set_.keys_with_access([b"set", b"k", b"v", b"GET"]) == [(b"k", (True, True))]
    assert set_.keys_with_access([b"set", b"k", b"v", b"get\0x"]) == [(b"k", (True, True))]


def test_the_quick_numkeys_finder_answers_as_the_general_walk_of_the_specs():
    """ZUNIONSTORE-shaped key specs get a finder without the general walk: for counts that
    fit, that do not (0, negative, past the end, not a number), the same keys."""
    import random

    from trioredis.commands.keyspecs import _counted_finder, _spec_finder
    from trioredis.commands.signatures import key_specs

    rng = random.Random(13)
    shaped = 0
    for name, specs in sorted(key_specs().items()):
        specs = [spec for spec in specs if "not_key" not in spec[0]]
        quick = _counted_finder(specs, name)
        if quick is None:
            continue
        shaped += 1
        general = _spec_finder(specs, name)
        for _ in range(200):
            words = [rng.choice((b"k", b"2", b"1", b"0", b"-1", b"9", b"x", b" 2", b"+1",
                                 b"1.5", b"4294967297"))
                     for _ in range(rng.randint(0, 7))]
            argv = [name.encode(), *words]
            assert quick(argv) == general(argv), (name, argv)
    assert shaped >= 15  # ZUNION*, ZINTER*, ZDIFF*, *MPOP, SINTERCARD, EVAL*, FCALL*
