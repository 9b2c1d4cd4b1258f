"""Which keys a command's ACL check asks for, against a real ``redis-server`` 7.0: every
command's key facts now come from its signature's key specs, so a user with read-only,
write-only and full key patterns (``%R~r:*``, ``%W~w:*``, ``~s:*``) gets the same ACL DRYRUN
answer here and there for a seeded random stream of commands whose keys move with their
arguments (numkeys counts, STORE/STREAMS keywords, SET ... GET, SORT ... STORE) or whose keys
need different permissions (LMOVE's source and destination, the STORE commands' sources),
with key counts that only Redis's atoi fallback reads (``1.5``, ``4294967297``)."""

from __future__ import annotations

import random

import parity
import pytest
from parity import RawClient
from servers import ServerThread

reference = parity.reference  # the real Redis, a module-scoped fixture

# Key names each pattern of the user allows (or none does: x:*), and "streams", which a
# command may take as a keyword.
KEYS = ("r:1", "r:2", "w:1", "w:2", "s:1", "x:1", "streams")
USER = ("ACL", "SETUSER", "u", "reset", "on", "nopass", "+@all", "%R~r:*", "%W~w:*", "~s:*")


def _keys(rng: random.Random, low: int = 1, high: int = 3) -> list[str]:
    return [rng.choice(KEYS) for _ in range(rng.randint(low, high))]


def _command(rng: random.Random) -> list[str]:
    """One command with random keys (and sometimes a wrong count or a keyword as a name)."""
    key, other = rng.choice(KEYS), rng.choice(KEYS)
    keys = _keys(rng)
    count = rng.choice((str(len(keys)),) * 6 + (str(len(keys) - 1), str(len(keys) + 1), "0", "zz", "-1"))
    if rng.random() < 0.25:
        # Counts Redis's key specs refuse and its getkeys functions read with atoi.
        count = rng.choice((f"{len(keys)}.5", f"{len(keys)}x", f" {len(keys)}", f"+{len(keys)}",
                            f"0{len(keys)}", "1e0", "4294967297", "-0", "", "9" * 20))
    choices = [
        ["XREAD", *rng.choice(([], ["COUNT", "2"])), "STREAMS", *keys, *["0"] * len(keys)],
        ["XREADGROUP", "GROUP", rng.choice(("g", "streams")), rng.choice(("c", "streams")),
         "STREAMS", *keys, *[">"] * len(keys)],
        ["GEORADIUS", key, "0", "0", "10", "km",
         *rng.choice(([], ["STORE", other], ["STOREDIST", other],
                      ["STORE", other, "STOREDIST", rng.choice(KEYS)]))],
        ["GEORADIUSBYMEMBER", key, "m", "10", "km", *rng.choice(([], ["STORE", other]))],
        ["GEOSEARCHSTORE", key, other, "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km"],
        ["ZUNIONSTORE", key, count, *keys], ["ZINTER", count, *keys],
        ["ZINTERCARD", count, *keys], ["SINTERCARD", count, *keys],
        ["LMPOP", count, *keys, "LEFT"], ["ZMPOP", count, *keys, "MIN"],
        ["BLMPOP", "0", count, *keys, "LEFT"], ["BZMPOP", "0", count, *keys, "MAX"],
        ["SET", key, "v", *rng.choice(([], ["GET"], ["NX", "GET"], ["EX", "10"]))],
        ["BITFIELD", key, *rng.choice((["GET", "u8", "0"], ["SET", "u8", "0", "1"],
                                       ["OVERFLOW", "SAT"], ["INCRBY", "u8", "0", "1"]))],
        ["SORT", key, *rng.choice(([], ["BY", "nosort"], ["LIMIT", "0", "1"])),
         *rng.choice(([], ["STORE", other]))],
        ["SORT", key, *rng.choice((["GET", "store"], ["BY", "w_*", "GET", "#"],
                                   ["LIMIT", "0", "1", "STORE", other], ["STORE"])),
         *rng.choice(([], ["STORE", other]))],
        ["SORT_RO", key, "BY", "nosort"],
        ["MIGRATE", "127.0.0.1", "1", rng.choice((key, "")), "0", "100",
         *rng.choice(([], ["COPY"], ["AUTH", "keys"], ["AUTH2", "u", "keys"])),
         *rng.choice(([], ["KEYS", *keys]))],
        ["LMOVE", key, other, "LEFT", "RIGHT"], ["SMOVE", key, other, "m"],
        ["RENAME", key, other], ["COPY", key, other], ["ZRANGESTORE", key, other, "0", "-1"],
        ["BITOP", "AND", key, *keys], ["MSET", key, "1", other, "2"], ["MGET", *keys],
        ["DEL", *keys], ["EXISTS", *keys], ["GETDEL", key], ["LPOP", key], ["GET", key],
        ["PFMERGE", key, *keys], ["PFCOUNT", *keys], ["SUNIONSTORE", key, *keys],
        ["XADD", key, "*", "f", "v"], ["GETEX", key, "PERSIST"], ["OBJECT", "ENCODING", key],
        ["EVAL", "return 1", count, *keys], ["EVAL_RO", "return 1", count, *keys],
        ["FCALL", "f", count, *keys], ["FCALL_RO", "f", count, *keys],
        # Containers: each subcommand's key specs say what it does with the key.
        ["XGROUP", "CREATE", key, "g", "$"], ["XGROUP", "SETID", key, "g", "0"],
        ["XGROUP", "DESTROY", key, "g"], ["XGROUP", "CREATECONSUMER", key, "g", "c"],
        ["XGROUP", "DELCONSUMER", key, "g", "c"], ["XINFO", "STREAM", key],
        ["XINFO", "GROUPS", key], ["XINFO", "CONSUMERS", key, "g"],
        ["OBJECT", "FREQ", key], ["MEMORY", "USAGE", key],
    ]
    return rng.choice(choices)


@pytest.fixture(scope="module")
def ours():
    server = ServerThread([["save", ""], ["appendonly", "no"]]).start()
    yield server
    server.stop()


def _dryrun(port: int, script: list[list[str]]) -> list[bytes]:
    """ACL DRYRUN's answer for each command, then COMMAND GETKEYSANDFLAGS's (the same key
    specs read for COMMAND)."""
    with RawClient(port) as admin:
        admin.call(*USER)
        replies = [admin.call("ACL", "DRYRUN", "u", *argv) for argv in script]
        replies += [admin.call("COMMAND", "GETKEYSANDFLAGS", *argv) for argv in script]
        admin.call("ACL", "DELUSER", "u")
    return replies


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_acl_key_checks_of_random_commands_answer_as_redis(ours, reference, seed):
    rng = random.Random(seed)
    script = [_command(rng) for _ in range(400)]
    ours_replies = _dryrun(ours.server.port, script)
    redis_replies = _dryrun(reference.port, script)
    differences = [(argv, mine, theirs)
                   for argv, mine, theirs in zip(script * 2, ours_replies, redis_replies,
                                                 strict=True)
                   if mine != theirs]
    assert differences[:40] == [] and len(differences) == 0
    # The stream was worth running: both allowed and denied keys were asked about.
    assert any(reply.startswith(b"+OK") for reply in redis_replies)
    assert any(b"no permissions to access" in reply for reply in redis_replies)
