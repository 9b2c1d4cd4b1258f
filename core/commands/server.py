"""Server commands: INFO CONFIG DBSIZE FLUSHDB FLUSHALL SWAPDB TIME SHUTDOWN DEBUG
SAVE BGSAVE BGREWRITEAOF LASTSAVE (COMMAND is in :mod:`.introspection`)."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time

from .. import digest, errors
from ..acl import is_local_client
from ..backends import REWRITE, SAVE
from ..config import (
    ENCODING_ERRORS,
    ConfigError,
    format_value,
    matching_options,
    parse_memory,
    protected_action_allowed,
    replace_options,
    rewrite_config_file,
)
from ..debug_object import describe as describe_object
from ..errors import CommandError
from ..info import info_text
from ..resp import OK, ErrorReply, Map, Raw, Status, Verbatim
from . import command
from .args import help_reply, parse_int
from .keyspecs import c_atoi
from .sets import parse_positive


def info(ctx, argv):
    return Verbatim(info_text(ctx.engine, [a.decode("utf-8", "replace") for a in argv[1:]]))


def dbsize(ctx, argv):
    return len(ctx.db.data)


def _flush_mode(ctx, argv) -> bool:
    """Whether a FLUSHALL/FLUSHDB frees lazily: ASYNC, SYNC, or ``lazyfree-lazy-user-flush``
    without either (Redis's getFlushCommandFlags)."""
    if len(argv) > 2:
        raise CommandError(errors.SYNTAX)
    if len(argv) == 2:
        mode = argv[1].lower()
        if mode not in (b"async", b"sync"):
            raise CommandError(errors.SYNTAX)
        return mode == b"async"
    return ctx.config.lazyfree_lazy_user_flush


def flushdb(ctx, argv):
    removed = ctx.db.clear(lazy=_flush_mode(ctx, argv))
    ctx.engine.tracking.flushed()  # client-side caches: every key is invalid
    ctx.dirty += max(removed, 1)
    ctx.propagate([b"FLUSHDB"])
    return OK


def flushall(ctx, argv):
    removed = ctx.keyspace.flush_all(lazy=_flush_mode(ctx, argv))
    ctx.engine.tracking.flushed()  # client-side caches: every key is invalid
    ctx.dirty += max(removed, 1)
    ctx.propagate([b"FLUSHALL"])
    ctx.engine.flushed_all()
    return OK


def swapdb(ctx, argv):
    first = parse_int(argv[1], "ERR invalid first DB index")
    second = parse_int(argv[2], "ERR invalid second DB index")
    count = len(ctx.keyspace)
    if not 0 <= first < count or not 0 <= second < count:
        raise CommandError(errors.INVALID_DB_INDEX)
    ctx.keyspace.swap(first, second)
    ctx.dirty += 1
    return OK


def time_(ctx, argv):
    now = time.time()
    return [b"%d" % int(now), b"%d" % int((now % 1) * 1_000_000)]


def lastsave(ctx, argv):
    last = ctx.engine.persistence.last_save_time()
    return last if last is not None else int(ctx.engine.stats.started)


def config_(ctx, argv):
    sub = argv[1].lower()
    engine = ctx.engine
    if sub == b"get" and len(argv) >= 3:
        return _config_get(engine.config, argv[2:])
    if sub == b"set" and len(argv) >= 4 and len(argv) % 2 == 0:
        return _config_set(ctx, argv[2:])
    if sub == b"resetstat" and len(argv) == 2:
        engine.stats.reset()
        engine.keyspace.expired_keys = 0
        return OK
    if sub == b"rewrite" and len(argv) == 2:
        path = engine.loaded.path
        if not path:
            raise CommandError("ERR The server is running without a config file")
        try:
            _rewrite_config(engine, path)
        except OSError as error:
            raise CommandError(f"ERR Rewriting config file: {error.strerror}") from None
        return OK
    if sub == b"help" and len(argv) == 2:
        return help_reply(_CONFIG_HELP)
    if sub in (b"get", b"set", b"resetstat", b"rewrite", b"help"):
        raise CommandError(f"ERR wrong number of arguments for 'config|{sub.decode()}' command")
    raise CommandError(errors.unknown_subcommand(argv[1], "CONFIG"))


def _config_get(config, patterns: list[bytes]) -> Map:
    """CONFIG GET with one or more patterns: each option once (the first spelling that named
    it); an exact name is echoed as typed, as Redis does."""
    result: dict[bytes, bytes] = {}
    seen: set[str] = set()
    for pattern in patterns:
        text = pattern.decode("utf-8", ENCODING_ERRORS)
        exact = not any(char in text for char in "*?[")
        for name in matching_options(text, config):
            if name in seen:
                continue
            seen.add(name)
            shown = text if exact else name
            result[shown.encode("utf-8", ENCODING_ERRORS)] = format_value(config, name).encode(
                "utf-8", ENCODING_ERRORS)
    return Map(result)


def _config_set(ctx, words: list[bytes]):
    """CONFIG SET name value [name value ...]: all or nothing.  The new configuration is
    validated whole first; when applying it fails, the old one is applied back (Redis's
    rollback) and the error names the option."""
    engine = ctx.engine
    pairs = [(words[i].decode("utf-8", ENCODING_ERRORS), words[i + 1].decode("utf-8", ENCODING_ERRORS))
             for i in range(0, len(words), 2)]
    allowed = protected_action_allowed(engine.config.enable_protected_configs,
                                       is_local_client(ctx.client))
    old = engine.config
    try:
        new = replace_options(old, pairs, protected_allowed=allowed)
    except ConfigError as error:
        if error.detail:  # what Redis's message leaves to the log ("Check server logs.")
            engine.log.warning(f"CONFIG SET refused: {error.detail}")
        raise CommandError(_error_text(error)) from None
    try:
        engine.apply_config(new)
    except ConfigError as error:
        engine.apply_config(old)
        raise CommandError(_error_text(error)) from None
    return OK


def _error_text(error: ConfigError) -> str:
    """An error naming what the client typed: one line, and bytes that are not UTF-8 shown
    as U+FFFD (the reply is encoded as UTF-8)."""
    text = f"ERR {error}".encode("utf-8", ENCODING_ERRORS).decode("utf-8", "replace")
    return errors.sanitize(text)


_CONFIG_HELP = [
    b"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"GET <pattern>",
    b"    Return parameters matching the glob-like <pattern> and their values.",
    b"SET <directive> <value>",
    b"    Set the configuration <directive> to <value>.",
    b"RESETSTAT",
    b"    Reset statistics reported by the INFO command.",
    b"REWRITE",
    b"    Rewrite the configuration file.",
    b"HELP",
    b"    Prints this help.",
]


# --- persistence ---------------------------------------------------------------------------


def save(ctx, argv):
    # A BGSAVE in progress is refused by the backend; an AOF rewrite's child is waited for
    # (Redis saves in-process meanwhile and answers OK too).
    return ctx.engine.persistence.perform(SAVE, lambda backend: backend.save(background=False),
                                          ctx.in_transaction)


def bgsave(ctx, argv):
    schedule = False
    if len(argv) == 2:
        if argv[1].lower() != b"schedule":
            raise CommandError(errors.SYNTAX)
        schedule = True
    elif len(argv) > 2:
        raise CommandError(errors.SYNTAX)
    # Inside MULTI Redis schedules the save whether SCHEDULE was given or not.
    schedule = schedule or ctx.in_transaction
    return ctx.engine.persistence.perform(
        SAVE, lambda backend: backend.save(background=True, schedule=schedule),
        ctx.in_transaction)


def bgrewriteaof(ctx, argv):
    return ctx.engine.persistence.perform(REWRITE, lambda backend: backend.rewrite(),
                                          ctx.in_transaction)


def shutdown(ctx, argv):
    """SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: stop after this reply.  Shutting down
    starts at once here (no waiting for replicas), so ABORT never finds one in progress."""
    options = {option.lower() for option in argv[1:]}
    if not options <= {b"nosave", b"save", b"now", b"force", b"abort"}:
        raise CommandError(errors.SYNTAX)
    if {b"nosave", b"save"} <= options or (b"abort" in options and len(options) > 1):
        raise CommandError(errors.SYNTAX)
    if b"abort" in options:
        raise CommandError("ERR No shutdown in progress.")
    save_mode = False if b"nosave" in options else True if b"save" in options else None
    ctx.engine.request_shutdown(save_mode)
    ctx.client.close_after_reply = True
    return Raw(b"")  # a successful SHUTDOWN answers nothing: the connection just closes


# --- DEBUG ---------------------------------------------------------------------------------


def _plugin_commands(engine, db_index: int, key: bytes):
    """What rebuilds a plugin type's value: the part of its digest Redis leaves to a module."""
    return lambda value: engine.rewrite_value(db_index, key, value, None)


def dataset_digest(engine) -> bytes:
    """DEBUG DIGEST: Redis 7.0's digest of every key, value and expiry (trioredis.digest)."""
    state = digest.dataset_digest(engine.keyspace.databases, _plugin_commands(engine, 0, b""))
    return Status(state.hex().encode())


# The number strtod reads at the start of DEBUG SLEEP's argument ("abc" reads as 0).
_STRTOD_PREFIX = re.compile(rb"\s*([+-]?(?:inf(?:inity)?|nan|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?))",
                            re.IGNORECASE)
# Redis converts the seconds to microseconds in a long long: beyond it (inf, 1e308), and for
# nan or a negative time, nanosleep refuses at once and DEBUG SLEEP answers OK at once.
_LLONG_MAX = 2**63 - 1


def _debug_sleep_seconds(text: bytes) -> float:
    """How long DEBUG SLEEP sleeps for ``text``, as Redis 7.0 does: never an error."""
    match = _STRTOD_PREFIX.match(text)
    seconds = float(match.group(1)) if match else 0.0
    if not math.isfinite(seconds) or not 0 <= seconds * 1e6 <= _LLONG_MAX:
        return 0.0
    return min(int(seconds * 1e6) / 1e6, 1e9)  # time.sleep refuses more than ~2**63 ns


def _debug_digest(ctx, argv):
    return dataset_digest(ctx.engine)


def _debug_digest_value(ctx, argv):
    """One digest per key (40 zeros for a missing one), as status lines; a key whose time
    has passed still counts, as Redis reads the table without expiring."""
    db = ctx.db
    replies = []
    for key in argv[2:]:
        value = db.data.get(key)
        state = bytes(20) if value is None else digest.value_digest(
            value, key in db.expires, _plugin_commands(ctx.engine, db.index, key))
        replies.append(Status(state.hex().encode()))
    return replies


def _debug_sleep(ctx, argv):
    time.sleep(_debug_sleep_seconds(argv[2]))  # DEBUG SLEEP blocks the server on purpose, as in Redis
    return OK


def _debug_reload(ctx, argv):
    return ctx.engine.persistence.debug_reload(ctx.in_transaction)


def _debug_loadaof(ctx, argv):
    # Redis 7.0.15 exits when there is no AOF to load; here that is an error reply.
    return ctx.engine.persistence.debug_reload(ctx.in_transaction, only="aof")


def _debug_set_active_expire(ctx, argv):
    ctx.engine.active_expire_enabled = argv[2] != b"0"
    return OK


def _rewrite_config(engine, path: str, force_all: bool = False) -> None:
    """CONFIG REWRITE's file.  The ACL users go into it as ``user`` lines, unless an aclfile
    holds them."""
    users = engine.acl.users
    lines = [] if engine.config.aclfile else [
        users[name].describe(engine.commands) for name in sorted(users)]
    rewrite_config_file(path, engine.config, lines, force_all)


def _debug_config_rewrite_force_all(ctx, argv):
    path = ctx.engine.loaded.path
    if not path:  # Redis's rewrite of no file fails with EFAULT
        raise CommandError("ERR CONFIG-REWRITE-FORCE-ALL failed: Bad address")
    try:
        _rewrite_config(ctx.engine, path, force_all=True)
    except OSError as error:
        raise CommandError(f"ERR CONFIG-REWRITE-FORCE-ALL failed: {error.strerror}") from None
    return OK


def _debug_pause_cron(ctx, argv):
    ctx.engine.cron_paused = c_atoi(argv[2]) != 0
    return OK


def _debug_set_skip_checksum_validation(ctx, argv):
    ctx.engine.skip_checksum_validation = c_atoi(argv[2]) != 0
    return OK


def _debug_error(ctx, argv):
    # The text as the whole error line (Redis adds no ERR), left out of the error and
    # failed-call statistics as in Redis: a test's own error is no server error.
    return ErrorReply(errors.sanitize(argv[2].decode("utf-8", "replace")).encode())


def _debug_quicklist_packed_threshold(ctx, argv):
    # Lists here have no packed nodes; the bounds are checked as Redis checks them.
    try:
        size = parse_memory(argv[2].decode("utf-8", "replace"))
    except ValueError:
        size = -1
    if not 0 <= size <= (1 << 32) - (1 << 20):
        raise CommandError("ERR argument must be a memory value bigger than 1 and smaller "
                           "than 4gb")
    return OK


def _debug_listpack(ctx, argv):
    value = ctx.db.get(argv[2])
    if value is None:
        raise CommandError(errors.NO_SUCH_KEY)
    from .keys import key_encoding

    if key_encoding(ctx, argv[2], value) != "listpack":
        raise CommandError("ERR Not a listpack encoded object.")
    ctx.engine.log.notice(f"DEBUG LISTPACK {argv[2]!r}: {len(value)} entries")
    return Status(b"Listpack structure printed on stdout")


def _debug_change_repl_id(ctx, argv):
    ctx.engine.change_replication_id()
    return OK


def _debug_stringmatch_test(ctx, argv):
    _fuzz_glob()
    return Status(b"Apparently Redis did not crash: test passed")


def _debug_object(ctx, argv):
    value = ctx.db.data.get(argv[2])  # as Redis: no access recorded, no expiry on the way
    if value is None:
        raise CommandError(errors.NO_SUCH_KEY)
    from .keys import key_encoding

    encoding = key_encoding(ctx, argv[2], value)
    return Status(describe_object(ctx.db, argv[2], value, encoding, ctx.config, ctx.engine.evictor))


# DEBUG POPULATE: Redis formats each name into a 128-byte buffer (so a name is cut at 127
# bytes, and a prefix at its first NUL byte); a key costs this server about this many bytes
# beside its value (a dict slot, the key and value objects).
_POPULATE_NAME_MAX = 127
_POPULATE_KEY_COST = 160


def _debug_populate(ctx, argv):
    """DEBUG POPULATE count [prefix] [size]: ``count`` string keys ``prefix:<n>`` holding
    ``value:<n>`` (cut or NUL-padded to ``size``), skipping names that exist.  As in Redis,
    nothing is propagated: the AOF and replicas do not see these keys."""
    if len(argv) > 5:
        raise CommandError(_unknown_debug_subcommand(argv[1]))
    count = parse_positive(argv[2])
    # Checked before any work proportional to it: Redis refuses a count whose key table it
    # cannot allocate; here, keys that could not fit in this machine's memory.
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if count * 8 > memory:
        raise CommandError("ERR OOM in dictTryExpand")
    size = parse_positive(argv[4]) if len(argv) == 5 else 0
    if count * (_POPULATE_KEY_COST + max(size, 24)) > memory:
        raise CommandError("ERR OOM in dictTryExpand")
    prefix = argv[3].split(b"\0", 1)[0] if len(argv) >= 4 else b"key"
    db, engine = ctx.db, ctx.engine
    keyspace, tracking = engine.keyspace, engine.tracking
    for number in range(count):
        key = (b"%b:%d" % (prefix, number))[:_POPULATE_NAME_MAX]
        if db.get(key) is not None:
            continue
        value = b"value:%d" % number
        if size:
            value = value[:size].ljust(size, b"\0")
        db.set(key, value)
        keyspace.signal_modified(db, key)  # WATCH, and (below) client-side caches
        tracking.invalidate_key(db, key)
    return OK


def _debug_ok(ctx, argv):
    return OK


_DEBUG_HELP = [
    b"DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"DIGEST",
    b"    Output a hex signature representing the current DB content.",
    b"DIGEST-VALUE <key> [<key> ...]",
    b"    Output a hex signature of the values of all the specified keys.",
    b"ERROR <string>",
    b"    Return a Redis protocol error with <string> as message. Useful for clients",
    b"    unit tests to simulate Redis errors.",
    b"CHANGE-REPL-ID",
    b"    Change the replication IDs of the instance.",
    b"    Dangerous: should be used only for testing the replication subsystem.",
    b"CONFIG-REWRITE-FORCE-ALL",
    b"    Like CONFIG REWRITE but writes all configuration options, including",
    b"    keywords not listed in original configuration file or default values.",
    b"LISTPACK <key>",
    b"    Show low level info about the listpack encoding of <key>.",
    b"QUICKLIST-PACKED-THRESHOLD <size>",
    b"    Sets the threshold for elements to be inserted as plain vs packed nodes",
    b"    Default value is 1GB, allows values up to 4GB. Setting to 0 restores to default.",
    b"STRINGMATCH-TEST",
    b"    Run a fuzz tester against the stringmatchlen() function.",
    b"LOADAOF",
    b"    Flush the AOF buffers on disk and reload the AOF in memory.",
    b"OBJECT <key>",
    b"    Show low level info about `key` and associated value.",
    b"POPULATE <count> [<prefix>] [<size>]",
    b"    Create <count> string keys named key:<num>. If <prefix> is specified then",
    b"    it is used instead of the 'key' prefix. These are not propagated to",
    b"    replicas. Cluster slots are not respected so keys not belonging to the",
    b"    current node can be created in cluster mode.",
    b"PROTOCOL <type>",
    b"    Reply with a sample of a RESP type: string, integer, double, bignum, null,",
    b"    array, set, map, attrib, push, verbatim, true or false.",
    b"RELOAD",
    b"    Save the dataset through the active persistence backend, empty the",
    b"    dataset and load it back.",
    b"SET-ACTIVE-EXPIRE <0|1>",
    b"    Setting it to 0 disables expiring keys in background when they are not",
    b"    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    b"    default.",
    b"SET-SKIP-CHECKSUM-VALIDATION <0|1>",
    b"    Enables or disables checksum checks for RESTORE's payload.",
    b"SLEEP <seconds>",
    b"    Stop the server for <seconds>. Decimals allowed.",
    b"PAUSE-CRON <0|1>",
    b"    Stop periodic cron job processing.",
    b"HELP",
    b"    Prints this help.",
]


# DEBUG PROTOCOL <type>: one sample reply of each RESP type, for client libraries' tests, as
# (RESP2 bytes, RESP3 bytes).  Attributes and pushes come before a normal reply, so a client
# that drops them still reads one reply; RESP2 has no push and refuses it.
_AFTER_ATTRIBUTE = b"$39\r\nSome real reply following the attribute\r\n"
_AFTER_PUSH = b"$40\r\nSome real reply following the push reply\r\n"
_VERBATIM_TEXT = b"This is a verbatim\nstring"
_PROTOCOL_SAMPLES = {
    b"string": (b"$11\r\nHello World\r\n",) * 2,
    b"integer": (b":12345\r\n",) * 2,
    b"double": (b"$5\r\n3.141\r\n", b",3.141\r\n"),
    b"bignum": (b"$37\r\n1234567999999999999999999999999999999\r\n",
                b"(1234567999999999999999999999999999999\r\n"),
    b"null": (b"$-1\r\n", b"_\r\n"),
    b"array": (b"*3\r\n:0\r\n:1\r\n:2\r\n",) * 2,
    b"set": (b"*3\r\n:0\r\n:1\r\n:2\r\n", b"~3\r\n:0\r\n:1\r\n:2\r\n"),
    b"map": (b"*6\r\n:0\r\n:0\r\n:1\r\n:1\r\n:2\r\n:0\r\n",
             b"%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n"),
    b"attrib": (_AFTER_ATTRIBUTE,
                b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n"
                + _AFTER_ATTRIBUTE),
    b"push": (b"-ERR RESP2 is not supported by this command\r\n",
              b">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n" + _AFTER_PUSH),
    b"verbatim": (b"$25\r\n" + _VERBATIM_TEXT + b"\r\n", b"=29\r\ntxt:" + _VERBATIM_TEXT + b"\r\n"),
    b"true": (b":1\r\n", b"#t\r\n"),
    b"false": (b":0\r\n", b"#f\r\n"),
}


def _debug_protocol(ctx, argv):
    sample = _PROTOCOL_SAMPLES.get(argv[2].lower())
    if sample is None:
        raise CommandError("ERR Wrong protocol type name. Please use one of the following: "
                           "string|integer|double|bignum|null|array|set|map|attrib|push|"
                           "verbatim|true|false")
    return Raw(sample[1] if ctx.client.resp3 else sample[0])


def _debug_help(ctx, argv):
    return help_reply(_DEBUG_HELP)


# name -> (arity counted from DEBUG: N exactly, -N at least N, None any; handler).  A
# subcommand called with another count answers as an unknown one, as Redis's DEBUG does.
_DEBUG_SUBCOMMANDS = {
    b"digest": (2, _debug_digest),
    b"digest-value": (-2, _debug_digest_value),
    b"sleep": (3, _debug_sleep),
    b"reload": (None, _debug_reload),
    b"loadaof": (None, _debug_loadaof),
    b"set-active-expire": (3, _debug_set_active_expire),
    b"pause-cron": (3, _debug_pause_cron),
    b"config-rewrite-force-all": (2, _debug_config_rewrite_force_all),
    b"set-skip-checksum-validation": (3, _debug_set_skip_checksum_validation),
    b"error": (3, _debug_error),
    b"quicklist-packed-threshold": (3, _debug_quicklist_packed_threshold),
    b"listpack": (3, _debug_listpack),
    b"change-repl-id": (2, _debug_change_repl_id),
    b"stringmatch-test": (2, _debug_stringmatch_test),
    b"object": (3, _debug_object),
    b"protocol": (3, _debug_protocol),
    b"populate": (-3, _debug_populate),
    b"jmap": (None, _debug_ok),
    b"log": (None, _debug_ok),
    b"help": (None, _debug_help),
}


def debug(ctx, argv):
    entry = _DEBUG_SUBCOMMANDS.get(argv[1].lower())
    if entry is not None:
        arity, handler = entry
        if arity is None or len(argv) == arity or (arity < 0 and len(argv) >= -arity):
            return handler(ctx, argv)
    raise CommandError(_unknown_debug_subcommand(argv[1]))


def _unknown_debug_subcommand(name: bytes) -> str:
    return errors.sanitize("ERR unknown subcommand or wrong number of arguments for "
                           f"'{name.decode('utf-8', 'replace')[:128]}'. Try DEBUG HELP.")


# DEBUG STRINGMATCH-TEST: how many random pattern/string pairs go through the glob matcher
# (Redis runs ten million through its C matcher, for seconds; a bounded sample here).
_FUZZ_ROUNDS = 20_000


def _fuzz_glob() -> None:
    """Random patterns and strings through the KEYS/SCAN/PSUBSCRIBE matcher: it must
    answer (or refuse a pattern) without raising anything else."""
    import random

    from ..glob import compile_glob

    compile_uncached = getattr(compile_glob, "__wrapped__", compile_glob)  # keep the cache
    rng = random.Random()
    alphabet = b"ab*?[]^-\\x"
    for _ in range(_FUZZ_ROUNDS):
        pattern = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        text = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        try:
            matcher = compile_uncached(pattern)
        except ValueError:
            continue
        matcher.fullmatch(text)


def with_categories(spec, *categories: str):
    """A spec with ACL categories Redis gives it beyond what its flags imply."""
    return dataclasses.replace(spec, categories=spec.categories | frozenset(categories))


def dangerous(spec):
    return with_categories(spec, "dangerous")


def register(registry):
    group = "server"
    registry.extend([
        dangerous(command("info", -1, "loading stale", info, group=group)),
        command("dbsize", 1, "readonly fast", dbsize, group="keyspace"),
        dangerous(command("flushdb", -1, "write", flushdb, group="keyspace")),
        dangerous(command("flushall", -1, "write", flushall, group="keyspace")),
        dangerous(command("swapdb", 3, "write fast", swapdb, group="keyspace")),
        command("time", 1, "loading stale fast", time_, group=group),
        with_categories(command("lastsave", 1, "loading stale fast", lastsave, group=group),
                        "admin", "dangerous"),
        command("config", -2, "admin loading stale", config_, group=group,
                subcommands={"get": -3, "set": -4, "resetstat": 2, "rewrite": 2, "help": 2}),
        # These wait on a backend through an event Block, which needs no "blocking" flag.
        # BGSAVE and BGREWRITEAOF are refused in MULTI here (Redis queues them): EXEC cannot
        # wait for a backend in the middle of a transaction.
        command("save", 1, "admin noscript no-async-loading no-multi", save, group=group),
        command("bgsave", -1, "admin noscript no-async-loading", bgsave, group=group),
        command("bgrewriteaof", 1, "admin noscript no-async-loading", bgrewriteaof,
                group=group),
        command("shutdown", -1, "admin noscript loading stale no-multi allow-busy", shutdown,
                group=group),
        command("debug", -2, "admin noscript loading stale", debug, group=group),
    ])
