"""COMMAND, COMMAND LIST / COUNT / INFO / DOCS against a real redis-server 7.0: the same
commands and subcommands (minus an explicit list of what is not implemented yet), the same
facts per command (minus an explicit list of known differences), the same argument structure
in COMMAND DOCS (summaries are this project's own words, so prose is not compared).  And the
declarations themselves: every registered command has a signature, every signature names a
Redis 7.0 command, an unknown flag is refused at registration, and start-up does not load the
signatures."""

from __future__ import annotations

import subprocess
import sys

import parity
import pytest
import redis
from parity import RawClient, parse_resp3
from trioredis.commands import CommandRegistry, CommandSpec, Flag, command
from trioredis.commands.signatures import ArgType, signatures

reference = parity.reference  # the real Redis, a module-scoped fixture

# Redis 7.0 commands and subcommands that other work will bring (replication,
# cluster redirection helpers, ACL files): their signatures are declared and wait for them.
# Remove a name here when its command is registered.
NOT_IMPLEMENTED: set[str] = set()
# Served here beyond Redis 7.0: redis-py sends 7.2's CLIENT SETINFO / NO-TOUCH and WAITAOF.
NOT_IN_REDIS_7_0 = {"client|setinfo", "client|no-touch", "waitaof"}

# COMMAND INFO facts that differ from Redis 7.0 on purpose or until other work lands, each
# with its reason.  Fields: arity, flags, keys (first, last, step), acl.
KNOWN_DIFFERENCES: dict[str, set[str]] = {
    # ZRANK/ZREVRANK take Redis 7.2's WITHSCORE, so their arity is -3, not 3.
    "zrank": {"arity"}, "zrevrank": {"arity"},
}


def _resp3(port: int, *argv):
    with RawClient(port) as client:
        client.call("HELLO", "3")
        return parse_resp3(client.call(*argv))


def _entries(info: list) -> dict[str, list]:
    """COMMAND INFO's entries by name, subcommands (nested in their container) included."""
    found = {}
    for entry in info:
        if entry is None:
            continue
        found[entry[0].decode()] = entry
        for sub in entry[9]:
            found[sub[0].decode()] = sub
    return found


@pytest.fixture(scope="module")
def ours(shared_server):
    return shared_server


def test_command_list_is_redis_minus_what_is_not_implemented(ours, reference):
    mine = {name.decode() for name in _resp3(ours.port, "COMMAND", "LIST")}
    theirs = {name.decode() for name in _resp3(reference.port, "COMMAND", "LIST")}
    assert len(theirs) == 366  # Redis 7.0.15: 240 commands, 126 subcommands
    assert theirs - mine == NOT_IMPLEMENTED
    assert mine - theirs == NOT_IN_REDIS_7_0
    # COMMAND COUNT counts commands, not subcommands, as Redis does.
    mine_top = {name for name in mine if "|" not in name}
    assert _resp3(ours.port, "COMMAND", "COUNT") == len(mine_top)
    assert _resp3(reference.port, "COMMAND", "COUNT") == 240


@pytest.mark.parametrize("filters", [
    ("PATTERN", "config*"), ("PATTERN", "x*"), ("PATTERN", "*|help"), ("PATTERN", "CLIENT|K*"),
    ("ACLCAT", "keyspace"), ("ACLCAT", "dangerous"), ("ACLCAT", "scripting"),
    ("ACLCAT", "read"), ("ACLCAT", "connection"), ("ACLCAT", "nosuch"), ("MODULE", "foo"),
])
def test_command_list_filters_as_redis(ours, reference, filters):
    mine = {name.decode() for name in _resp3(ours.port, "COMMAND", "LIST", "FILTERBY", *filters)}
    theirs = {name.decode()
              for name in _resp3(reference.port, "COMMAND", "LIST", "FILTERBY", *filters)}
    differs = {name for name, fields in KNOWN_DIFFERENCES.items() if "acl" in fields}
    expected = theirs - NOT_IMPLEMENTED
    if filters[0] == "ACLCAT":  # a category can only differ where the categories differ
        assert mine - differs - NOT_IN_REDIS_7_0 == expected - differs
    else:
        assert mine - NOT_IN_REDIS_7_0 == expected


def test_command_info_facts_match_redis_for_every_command(ours, reference):
    """Arity, flags, key positions, ACL categories, tips, key specs and subcommand names of
    every command and subcommand both servers have, with the known differences above (each
    of which must still be a difference: a fixed one is removed from the list)."""
    mine = _entries(_resp3(ours.port, "COMMAND"))
    theirs = _entries(_resp3(reference.port, "COMMAND"))
    fields = {"arity": (1,), "flags": (2,), "keys": (3, 4, 5), "acl": (6,), "tips": (7,),
              "key specs": (8,)}
    found: dict[str, set[str]] = {}
    compared = 0
    for name in sorted(set(mine) & set(theirs)):
        for field, indexes in fields.items():
            ours_value = [_canonical(mine[name][i]) for i in indexes]
            redis_value = [_canonical(theirs[name][i]) for i in indexes]
            if ours_value != redis_value:
                found.setdefault(name, set()).add(field)
            compared += 1
        subs_mine = {sub[0] for sub in mine[name][9]}
        subs_redis = {sub[0].decode() for sub in theirs[name][9]}
        assert {s.decode() for s in subs_mine} == (
            subs_redis - NOT_IMPLEMENTED) | {s for s in NOT_IN_REDIS_7_0 if s.startswith(name + "|")}
    assert found == KNOWN_DIFFERENCES
    assert compared > 2000


def _canonical(value):
    """Sets (flags, categories, tips) in any order; key specs without their notes (prose:
    ours are our own words; tests/compat checks a note stands where Redis has one)."""
    if isinstance(value, list) and value.__class__ is not list:  # a SetReply
        items = [{k: v for k, v in item.items() if k != b"notes"} if isinstance(item, dict)
                 else item for item in value]
        return sorted(map(repr, items))
    return value


def test_command_info_of_a_subcommand_by_its_full_name(ours, reference):
    for name in ("config|get", "object|encoding", "xinfo|stream", "client|kill", "nosuch|x",
                 "config|nosuch", "get"):
        mine = _resp3(ours.port, "COMMAND", "INFO", name)
        theirs = _resp3(reference.port, "COMMAND", "INFO", name)
        if name in ("config|get", "object|encoding", "xinfo|stream", "client|kill"):
            assert mine[0][:2] == theirs[0][:2] and mine[0][8] == theirs[0][8], name
        else:
            assert (mine[0] is None) == (theirs[0] is None), name


def _structure(doc: dict) -> dict:
    """A COMMAND DOCS entry without its prose (summary, complexity, history, replaced_by):
    what redis-cli needs for hints."""
    kept = {key: value for key, value in doc.items()
            if key not in (b"summary", b"complexity", b"history", b"replaced_by")}
    if b"subcommands" in kept:
        kept[b"subcommands"] = {name: _structure(sub) for name, sub in kept[b"subcommands"].items()}
    return kept


@pytest.mark.parametrize("protocol", ["2", "3"])
def test_command_docs_have_redis_argument_structure(ours, reference, protocol):
    """Every command's documented arguments (names, types, tokens, flags, key spec indexes,
    versions, nesting), group, version and doc flags, as Redis 7.0 gives them; subcommands
    only those registered here.  Replaced test_command_docs_are_redis_own, which compared
    Redis's own sentences byte for byte: summaries are this project's words now."""
    with RawClient(ours.port) as mine_client, RawClient(reference.port) as redis_client:
        mine_client.call("HELLO", protocol)
        redis_client.call("HELLO", protocol)
        mine = _as_map(parse_resp3(mine_client.call("COMMAND", "DOCS")))
        theirs = _as_map(parse_resp3(redis_client.call("COMMAND", "DOCS")))
    assert set(mine) - set(theirs) == {b"waitaof"}
    compared = 0
    for name, doc in mine.items():
        if name not in theirs:
            continue
        expected = _structure(theirs[name])
        if b"subcommands" in expected:
            implemented = {sub for sub in expected[b"subcommands"]
                           if sub.decode() not in NOT_IMPLEMENTED}
            expected[b"subcommands"] = {sub: value for sub, value in
                                        expected[b"subcommands"].items() if sub in implemented}
        assert _structure(doc) == expected, name
        assert doc[b"summary"] and doc[b"summary"] != theirs[name][b"summary"], name
        compared += 1
    assert compared == len(mine) - 1


def _as_map(value):
    """RESP2 flattens maps into arrays: rebuild them (a field list alternates name, value)."""
    if isinstance(value, dict):
        return {key: _as_map(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_as_map(item) for item in value]
        if len(items) % 2 == 0 and items and all(
                isinstance(key, bytes) for key in items[0::2]) and _looks_like_fields(items):
            return dict(zip(items[0::2], items[1::2], strict=True))
        return items
    return value


_FIELD_NAMES = {b"summary", b"since", b"group", b"complexity", b"doc_flags", b"history",
                b"deprecated_since", b"replaced_by", b"arguments", b"subcommands", b"name",
                b"type", b"key_spec_index", b"token", b"flags", b"display_text"}


def _looks_like_fields(items: list) -> bool:
    """A doc map (its keys are COMMAND DOCS field names) or the top-level map of names."""
    keys = items[0::2]
    return all(key in _FIELD_NAMES for key in keys) or all(
        isinstance(value, dict) and (b"since" in value) for value in items[1::2])


def test_command_docs_of_a_subcommand_and_unknown_names(ours, reference):
    for names in (("config|get",), ("get", "nosuch", "set"), ("client|nosuch",), ("xinfo",)):
        mine = _resp3(ours.port, "COMMAND", "DOCS", *names)
        theirs = _resp3(reference.port, "COMMAND", "DOCS", *names)
        assert list(mine) == list(theirs), names
        for name in mine:
            expected = _structure(theirs[name])
            if name == b"xinfo":
                assert set(_structure(mine[name])[b"subcommands"]) == set(
                    expected[b"subcommands"])
            else:
                assert _structure(mine[name]) == expected, name


@pytest.mark.parametrize("protocol", [2, 3])
def test_command_docs_parse_in_redis_py_with_arguments_for_every_command(ours, protocol):
    """redis-py parses the reply in both protocols; every command Redis documents with
    arguments has them here (what redis-cli-like tools read for hints)."""
    connection = redis.Connection(port=ours.port, protocol=protocol)
    try:  # redis-py's own parser, without the COMMAND reply callback (made for COMMAND INFO)
        connection.connect()
        connection.send_command("COMMAND", "DOCS")
        docs = connection.read_response()
    finally:
        connection.disconnect()
    if protocol == 2:
        docs = dict(zip(docs[0::2], docs[1::2], strict=True))
        docs = {name: dict(zip(doc[0::2], doc[1::2], strict=True)) for name, doc in docs.items()}
    known = signatures()
    assert len(docs) > 200
    for name, doc in docs.items():
        signature = known.get(name.decode())
        if signature is None:  # WAITAOF (Redis 7.2): a short entry from the registry
            assert name.decode() in NOT_IN_REDIS_7_0 and doc[b"summary"], name
            continue
        assert doc[b"since"] == signature.since.encode()
        if signature.arguments:
            assert doc[b"arguments"], name


def test_every_registered_command_has_a_signature_and_each_names_a_redis_command(reference):
    """Sans-IO over the declarations: registry against signatures, signatures against the
    reference Redis's own list."""
    from trioredis.commands.builtin import trioredis_register_commands

    registry = CommandRegistry()
    trioredis_register_commands(registry)
    known = signatures()
    registered = set()
    for spec in registry:
        registered.add(spec.name)
        registered.update(f"{spec.name}|{sub}" for sub in spec.subcommands)
    assert registered - set(known) == NOT_IN_REDIS_7_0 - {"waitaof"}  # WAITAOF: the AOF plugin's
    assert set(known) - registered == NOT_IMPLEMENTED
    redis_names = {name.decode() for name in _resp3(reference.port, "COMMAND", "LIST")}
    assert set(known) == redis_names
    for signature in known.values():
        assert signature.summary.endswith(".") and len(signature.summary) < 100, signature.name
        assert signature.group and signature.since
        if signature.container:
            assert signature.arity is not None and signature.container in known


def test_signature_arguments_use_redis_types_and_key_specs():
    """Every key argument points at a key spec of its command; tokens are upper case."""
    from trioredis.commands.signatures import key_specs

    def walk(args):
        for arg in args:
            yield arg
            yield from walk(arg.arguments)

    for name, signature in signatures().items():
        for arg in walk(signature.arguments):
            assert isinstance(arg.type, ArgType)
            if arg.type is ArgType.KEY:
                assert arg.key_spec_index < len(key_specs()[name]), name
            if arg.type in (ArgType.ONEOF, ArgType.BLOCK):
                assert arg.arguments, (name, arg.name)
            if arg.token:
                assert arg.token == arg.token.upper(), (name, arg.token)


def test_an_unknown_flag_is_refused_at_registration():
    def handler(ctx, argv):
        return None

    with pytest.raises(ValueError, match="unknown flags.*wrte"):
        command("x", 1, "wrte fast", handler)
    registry = CommandRegistry()
    with pytest.raises(ValueError, match="unknown flags"):
        registry.add(CommandSpec(name="y", arity=1, flags=frozenset({"bogus"}), handler=handler))
    spec = command("z", 1, "write denyoom", handler)
    assert spec.flags == {Flag.WRITE, Flag.DENYOOM} and "write" in spec.flags
    assert Flag.NOAUTH.redis_name == "no_auth" and Flag.SKIP_SLOWLOG.redis_name == "skip_slowlog"


def test_registration_reads_each_signature_once_for_the_key_facts():
    """The signatures are the one source of key facts, read when the commands register
    (about 50 ms once per process), never again per call: a second registration loads
    nothing more."""
    code = ("import sys\n"
            "from trioredis.commands import CommandRegistry\n"
            "from trioredis.commands.builtin import trioredis_register_commands\n"
            "from trioredis.commands.signatures import signatures\n"
            "registry = CommandRegistry()\n"
            "trioredis_register_commands(registry)\n"
            "assert len(registry) > 200\n"
            "loaded = signatures.cache_info().misses\n"
            "trioredis_register_commands(CommandRegistry())\n"
            "print(loaded, signatures.cache_info().misses)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["1", "1"]


def test_every_signature_states_redis_facts_even_before_its_command_exists(reference):
    """Signatures waiting for their command (MEMORY USAGE, REPLICAOF...) are checked too,
    sans-IO: their documented structure against Redis's COMMAND DOCS, their key specs, tips
    and (for subcommands) arity and flags against Redis's COMMAND INFO."""
    from trioredis.commands.introspection import _signature_reply
    from trioredis.commands.keyspecs import key_specs_reply
    from trioredis.resp import encode

    redis_docs = _resp3(reference.port, "COMMAND", "DOCS")
    redis_info = _entries(_resp3(reference.port, "COMMAND"))
    flat_docs = {}
    for name, doc in redis_docs.items():
        flat_docs[name.decode()] = doc
        for sub_name, sub in doc.get(b"subcommands", {}).items():
            flat_docs[sub_name.decode()] = sub
    for name, signature in signatures().items():
        ours_doc = parse_resp3(encode(_signature_reply(signature, []), True))
        expected = _structure(flat_docs[name])
        expected.pop(b"subcommands", None)
        assert _structure(ours_doc) == expected, name
        entry = redis_info[name]
        assert [tip.decode() for tip in entry[7]] == list(signature.tips), name
        ours_specs = parse_resp3(encode(key_specs_reply(name), True))
        assert _canonical(ours_specs) == _canonical(entry[8]), name
        if signature.container:
            assert entry[1] == signature.arity, name
            assert sorted(flag.decode() for flag in entry[2]) == sorted(
                Flag(word).redis_name for word in signature.flags), name


def test_command_inside_multi_answers_as_redis(ours, reference):
    """COMMAND's subcommands are queued and answered by EXEC like any command."""
    script = [("MULTI",), ("COMMAND", "GETKEYS", "LMOVE", "a", "b", "LEFT", "RIGHT"),
              ("COMMAND", "INFO", "get"), ("COMMAND", "LIST", "FILTERBY", "PATTERN", "lmo*"),
              ("EXEC",), ("MULTI",), ("COMMAND", "NOSUCH"), ("EXEC",)]
    replies = []
    for port in (ours.port, reference.port):
        with RawClient(port) as client:
            replies.append([client.call(*argv) for argv in script])
    assert replies[0] == replies[1]
    assert replies[0][4].startswith(b"*3\r\n")  # an unknown subcommand aborts the second
    assert replies[0][-1].startswith(b"-EXECABORT")


def test_a_plugin_command_built_directly_shows_in_command_info_and_docs(server):
    """A CommandSpec built by hand (plain-string flags, no signature) is described from the
    registry alone."""
    spec = CommandSpec(name="plugin.get", arity=2, flags=frozenset({"readonly", "noauth"}),
                       handler=lambda ctx, argv: None, first_key=1, last_key=1, step=1)
    server.server.engine.commands.add(spec)
    info = _resp3(server.port, "COMMAND", "INFO", "plugin.get")[0]
    assert info[:6] == [b"plugin.get", 2, [b"readonly", b"no_auth"], 1, 1, 1]
    docs = _resp3(server.port, "COMMAND", "DOCS", "plugin.get")
    assert docs[b"plugin.get"][b"since"] == b"1.0.0"
    assert b"plugin.get" in _resp3(server.port, "COMMAND", "LIST")
