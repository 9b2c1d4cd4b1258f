"""Key finding for commands Redis describes only partly (sans-IO): the answers are Redis
7.0.15's COMMAND GETKEYSANDFLAGS for the same arguments.  Commands served here are compared
with a live redis-server in tests/compat/test_differential_introspection.py."""

from __future__ import annotations

import pytest
from trioredis.commands.keyspecs import key_references

RW_ACCESS_DELETE = ("RW", "access", "delete")
CASES = [
    (["SORT", "k", "BY", "w", "STORE", "d"], [(1, ("RO", "access")), (5, ("OW", "update"))]),
    (["SORT", "k", "LIMIT", "0", "1", "STORE", "d", "STORE", "e"],
     [(1, ("RO", "access")), (8, ("OW", "update"))]),
    (["SORT_RO", "k", "BY", "x"], [(1, ("RO", "access"))]),
    (["XREAD", "COUNT", "1", "STREAMS", "a", "b", "0", "0"], [(4, ("RO", "access")), (5, ("RO", "access"))]),
    (["XREAD", "STREAMS", "a", "b", "0"], [(2, ("RO", "access"))]),
    (["GEORADIUS", "k", "0", "0", "1", "km", "STOREDIST", "d"],
     [(1, ("RO", "access")), (7, ("OW", "update"))]),
    (["MIGRATE", "h", "1", "", "0", "5", "KEYS", "a", "b"], [(7, RW_ACCESS_DELETE), (8, RW_ACCESS_DELETE)]),
    (["MIGRATE", "h", "1", "k", "0", "5"], [(3, RW_ACCESS_DELETE)]),
    (["BITFIELD", "k", "GET", "u8", "0"], [(1, ("RO", "access"))]),
    (["BITFIELD", "k", "SET", "u8", "0", "1"], [(1, ("RW", "access", "update"))]),
    (["EVAL", "s", "1", "k"], [(3, ("RW", "access", "update"))]),
    (["SET", "k", "v", "get"], [(1, ("RW", "access", "update"))]),
    (["SET", "k", "v"], [(1, ("OW", "update"))]),
]


@pytest.mark.parametrize(("argv", "expected"), CASES)
def test_keys_and_flags_as_redis_finds_them(argv, expected):
    assert key_references(argv[0].lower(), [arg.encode() for arg in argv]) == expected


def test_a_count_past_the_arguments_finds_no_key():
    # The specs refuse it, and so does Redis's atoi fallback for the command.
    assert key_references("zunionstore", [b"zunionstore", b"d", b"3", b"a"]) == []


@pytest.mark.parametrize(("argv", "expected"), [
    (["EVAL", "s", "1.5", "k"], [(3, ())]),
    (["ZUNIONSTORE", "d", "2x", "a", "b"], [(3, ()), (4, ()), (1, ())]),
    (["LMPOP", "1.5", "left", "a"], [(2, ())]),  # atoi's one key is the word after it
    (["BZMPOP", "0", "+1", "a", "min"], [(3, ())]),
    (["ZUNION", "4294967297", "a"], [(2, ("RO", "access"))]),  # the specs' C int: one key
    (["SINTERCARD", "9" * 20, "a"], []),  # atoi clamps, then the int is -1: no key
])
def test_a_count_only_atoi_reads_finds_keys_without_flags(argv, expected):
    """Redis falls back to the command's getkeys function, which reads the count with
    atoi and flags no key."""
    assert key_references(argv[0].lower(), [arg.encode() for arg in argv]) == expected


def test_a_command_redis_does_not_have_is_left_to_its_declaration():
    assert key_references("myplugincommand", [b"myplugincommand", b"k"]) is None
