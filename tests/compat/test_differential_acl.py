"""Differential tests of ACL against a real ``redis-server`` 7.0 given the same session:
ACL LOG's entries (denied commands, keys, channels, failed logins, grouped repeats, count and
RESET; ages and client addresses compared by shape), and selectors (``(+set %W~app*)``):
how ACL SETUSER reads them, ACL LIST / GETUSER / DRYRUN, and what a user with them may run."""

from __future__ import annotations

import random
import re

import hiredis
import parity
import pytest
from parity import RawClient, compare_scripts
from servers import ServerThread
from trioredis.acl_describe import NEWER_THAN_7_0

reference = parity.reference  # the real Redis, a module-scoped fixture

SESSION = [
    ("AUTH", "bob", "wrong"), ("AUTH", "nobody", "x"), ("AUTH", "bob", "pw"), ("SET", "x", "1"),
    ("GET", "other"), ("GET", "other"), ("GET", "app:1"), ("PUBLISH", "gossip", "m"),
    ("PUBLISH", "news", "m"), ("SUBSCRIBE", "news", "gossip"), ("CONFIG", "GET", "x"),
    ("MULTI",), ("SET", "x", "1"), ("EXEC",), ("HELLO", "2", "AUTH", "bob", "bad"),
]
ADMIN = [("ACL", "LOG", "x"), ("ACL", "LOG", "-1"), ("ACL", "LOG", "0"), ("ACL", "LOG", "1", "2"),
         ("ACL", "LOG", "RESET"), ("ACL", "LOG")]


@pytest.fixture(scope="module")
def ours():
    server = ServerThread([["save", ""], ["appendonly", "no"]]).start()
    yield server
    server.stop()


def _parse(data: bytes):
    reader = hiredis.Reader()
    reader.feed(data)
    return reader.gets()


def _run(port: int, protocol: str = "2") -> tuple[list[bytes], list, bytes, list[bytes]]:
    with RawClient(port) as admin, RawClient(port) as bob:
        admin.call("HELLO", protocol)
        admin.call("ACL", "LOG", "RESET")
        admin.call("ACL", "SETUSER", "bob", "reset", "on", ">pw", "+get", "+publish", "+subscribe",
                   "+multi", "+config|set", "~app*", "&news")
        replies = [bob.call(*argv) for argv in SESSION]
        log = _parse(admin.call("ACL", "LOG"))
        first = admin.call("ACL", "LOG", "1")
        errors = [admin.call(*argv) for argv in ADMIN]
        admin.call("ACL", "DELUSER", "bob")
    return replies, log, first, errors


@pytest.mark.parametrize("protocol", ["2", "3"])
def test_acl_log_records_denials_as_redis(ours, reference, protocol):
    ours_replies, ours_log, ours_first, ours_admin = _run(ours.server.port, protocol)
    redis_replies, redis_log, redis_first, redis_admin = _run(reference.port, protocol)
    assert ours_replies == redis_replies
    assert ours_admin == redis_admin
    assert len(ours_log) == len(redis_log) > 5
    for mine, theirs in zip(ours_log, redis_log, strict=True):
        if protocol == "2":
            mine = dict(zip(mine[0::2], mine[1::2], strict=True))
            theirs = dict(zip(theirs[0::2], theirs[1::2], strict=True))
        assert list(mine) == list(theirs)
        for field in (b"count", b"reason", b"context", b"object", b"username"):
            assert mine[field] == theirs[field], (field, mine, theirs)
        age = mine[b"age-seconds"]
        assert isinstance(age, float) if protocol == "3" else re.fullmatch(rb"\d+(\.\d+)?", age)
        info = dict(pair.split(b"=", 1) for pair in mine[b"client-info"].split(b" "))
        expected = dict(pair.split(b"=", 1) for pair in theirs[b"client-info"].split(b" "))
        for field in (b"cmd", b"user", b"db", b"flags", b"multi"):
            assert info[field] == expected[field], (field, mine, theirs)
    assert ours_first.count(b"count") == redis_first.count(b"count") == 1


SELECTOR_SCRIPT = [
    ("ACL", "SETUSER", "sel", "on", "nopass", "+get", "~app*", "(+set %W~app* &ch)", "(+hset ~h*)"),
    ("ACL", "GETUSER", "sel"), ("ACL", "SETUSER", "sel2", "(+set", "~x)"),
    ("ACL", "SETUSER", "sel3", "(+set"), ("ACL", "SETUSER", "sel3", "(on)"),
    ("ACL", "SETUSER", "sel3", "()"), ("ACL", "SETUSER", "sel3", "(>pw)"),
    ("ACL", "SETUSER", "sel3", "((+get))"), ("ACL", "LIST"),
    ("ACL", "SETUSER", "sel", "clearselectors"), ("ACL", "DRYRUN", "sel2", "set", "x", "1"),
    ("ACL", "DRYRUN", "sel2", "set", "y", "1"), ("ACL", "DRYRUN", "sel2", "get", "x"),
    ("ACL", "SETUSER", "sel4", "(+set ~x)", "(+get ~y)", "~z", "+incr", "&c1", "(&c2 +publish)"),
    ("ACL", "DRYRUN", "sel4", "get", "x"), ("ACL", "DRYRUN", "sel4", "set", "y", "1"),
    ("ACL", "DRYRUN", "sel4", "incr", "q"), ("ACL", "DRYRUN", "sel4", "publish", "c3", "m"),
    ("ACL", "DRYRUN", "sel4", "publish", "c2", "m"), ("ACL", "DRYRUN", "sel4", "set", "x", "1"),
    ("ACL", "SETUSER", "sel5", "(+set ~x", "reset)"), ("ACL", "SETUSER", "sel5", "(+set ~x)", "reset"),
    ("ACL", "SETUSER", "sel6", "(+set ~x)", "(%R~y +@read)", "(allkeys allchannels allcommands)",
     "(resetkeys nocommands)"),
    ("ACL", "LIST"), ("ACL", "GETUSER", "sel4"), ("ACL", "GETUSER", "sel6"),
    ("ACL", "DELUSER", "sel", "sel2", "sel3", "sel4", "sel5", "sel6"),
]


def test_selectors_are_read_and_shown_as_redis(ours, reference):
    assert compare_scripts(ours.server.port, reference.port, SELECTOR_SCRIPT) == []


USER_SESSION = [
    ("SET", "x", "1"), ("SET", "y", "1"), ("GET", "x"), ("GET", "y"), ("INCR", "z"), ("INCR", "x"),
    ("PUBLISH", "c2", "m"), ("PUBLISH", "c1", "m"), ("HSET", "h", "f", "v"), ("MULTI",),
    ("SET", "x", "2"), ("GET", "y"), ("EXEC",),
]


def test_a_user_with_selectors_may_run_what_one_of_them_allows(ours, reference):
    replies = []
    for port in (ours.server.port, reference.port):
        with RawClient(port) as admin, RawClient(port) as user:
            admin.call("FLUSHALL")
            admin.call("ACL", "SETUSER", "sel", "reset", "on", ">pw", "(+set ~x)", "(+get ~y)",
                       "~z", "+incr", "+multi", "+exec", "&c1", "(&c2 +publish)")
            assert user.call("AUTH", "sel", "pw") == b"+OK\r\n"
            replies.append([user.call(*argv) for argv in USER_SESSION])
            admin.call("ACL", "DELUSER", "sel")
    assert replies[0] == replies[1]


# One call of every subcommand of every container Redis 7.0 has, arguments enough for ACL
# DRYRUN to reach the permission check (DRYRUN runs nothing).
_SUBCOMMAND_CALLS = [
    ("FUNCTION", "LOAD", "code"), ("FUNCTION", "DELETE", "lib"), ("FUNCTION", "FLUSH"),
    ("FUNCTION", "RESTORE", "payload"), ("FUNCTION", "LIST"), ("FUNCTION", "DUMP"),
    ("FUNCTION", "STATS"), ("FUNCTION", "KILL"), ("SCRIPT", "FLUSH"), ("SCRIPT", "LOAD", "x"),
    ("SCRIPT", "EXISTS", "x"), ("MEMORY", "USAGE", "k"), ("MEMORY", "STATS"),
    ("MEMORY", "DOCTOR"), ("MEMORY", "PURGE"), ("OBJECT", "ENCODING", "k"), ("OBJECT", "HELP"),
    ("XINFO", "STREAM", "k"), ("XINFO", "HELP"), ("XGROUP", "CREATE", "k", "g", "$"),
    ("XGROUP", "HELP"), ("PUBSUB", "CHANNELS"), ("PUBSUB", "HELP"), ("SLOWLOG", "GET"),
    ("SLOWLOG", "HELP"), ("LATENCY", "LATEST"), ("LATENCY", "HELP"), ("MODULE", "LIST"),
    ("MODULE", "HELP"), ("CONFIG", "GET", "x"), ("CONFIG", "HELP"), ("CLIENT", "KILL", "x"),
    ("CLIENT", "SETNAME", "x"), ("CLIENT", "NO-EVICT", "on"), ("ACL", "WHOAMI"),
    ("ACL", "SETUSER", "x"), ("COMMAND", "COUNT"), ("CLUSTER", "INFO"), ("CLUSTER", "MEET", "a", "1"),
]
_CATEGORIES = ("write", "read", "admin", "dangerous", "scripting", "slow", "connection",
               "keyspace", "stream", "pubsub")


def test_category_rules_reach_each_subcommand_as_in_redis(ours, reference):
    """A user given or refused one category (``+@all -@write``, ``-@all +@scripting``...):
    ACL DRYRUN of every container subcommand answers as redis-server does.  Before, a user
    without @write could FUNCTION LOAD, FLUSH and DELETE."""
    def run(port: int) -> list[tuple[str, tuple[str, ...], bytes]]:
        replies = []
        with RawClient(port) as admin:
            for category in _CATEGORIES:
                for rules in (("+@all", f"-@{category}"), ("-@all", f"+@{category}")):
                    admin.call("ACL", "SETUSER", "cat", "reset", "on", "nopass", "~*", *rules)
                    replies += [(rules[1], call, admin.call("ACL", "DRYRUN", "cat", *call))
                                for call in _SUBCOMMAND_CALLS]
            admin.call("ACL", "DELUSER", "cat")
        return replies

    mine, theirs = run(ours.port), run(reference.port)
    assert [(m, t[2]) for m, t in zip(mine, theirs, strict=True) if m != t] == []


# --- ACL LIST / GETUSER's command rules: worked out from the bitmap, as Redis 7.0 does --------

CATEGORY_NAMES = ["keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
                  "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
                  "blocking", "dangerous", "connection", "transaction", "scripting"]
SINGLE_RULES = ["+get", "-get", "+set", "-set", "+hset", "-lpush", "+client", "-client",
                "+client|kill", "-client|kill", "+client|id", "+config|get", "-config|set",
                "-config", "+acl|whoami", "-debug", "+debug|digest", "+select|0", "+xinfo",
                "-xinfo|stream", "+object|encoding", "+memory|usage", "-eval", "+keys"]


def _random_rules(rng) -> list[str]:
    rules = [rng.choice(["+@all", "-@all", "allcommands", "nocommands"])]
    for _ in range(rng.randint(1, 7)):
        if rng.random() < 0.55:
            rules.append(rng.choice("+-") + "@" + rng.choice(CATEGORY_NAMES))
        else:
            rules.append(rng.choice(SINGLE_RULES))
    return rules


def _rule_shape(description: bytes) -> tuple[list[bytes], list[bytes]]:
    """The categories in order (they come first, and Redis picks them in a fixed order),
    and the single commands sorted (Redis lists those in its random hash order), without
    the commands Redis 7.0.15 does not have (WAITAOF, CLIENT SETINFO and NO-TOUCH)."""
    words = description.split()
    categories = [word for word in words if b"@" in word]
    singles = sorted(word for word in words if b"@" not in word
                     and word[1:].decode() not in NEWER_THAN_7_0)
    return categories, singles


@pytest.mark.parametrize("seed", range(4))
def test_command_rules_are_described_as_redis_describes_them(ours, reference, seed):
    rng = random.Random(seed)
    differences = []
    with RawClient(ours.server.port) as mine, RawClient(reference.port) as theirs:
        for _ in range(60):
            rules = _random_rules(rng)
            replies = [client.call("ACL", "SETUSER", "described", "reset", *rules)
                       for client in (mine, theirs)]
            if replies[0] != replies[1]:
                differences.append((rules, replies))
                continue
            listed = []
            for client in (mine, theirs):
                user = _parse(client.call("ACL", "GETUSER", "described"))
                listed.append(_rule_shape(user[user.index(b"commands") + 1]))
            if listed[0] != listed[1]:
                differences.append((rules, listed))
        for client in (mine, theirs):
            client.call("ACL", "DELUSER", "described")
    assert not differences, differences[:5]
