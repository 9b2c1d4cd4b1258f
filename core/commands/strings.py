"""String commands: GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET MSETNX APPEND
STRLEN GETRANGE SUBSTR SETRANGE INCR DECR INCRBY DECRBY INCRBYFLOAT LCS.

Replies and errors follow Redis 7.0's ``t_string.c``.  Writes propagate their effect: an
expiry as ``PEXPIREAT`` with the absolute time, INCRBYFLOAT as ``SET key <result> KEEPTTL``
(the addition could round differently elsewhere), GETSET as ``SET``, GETDEL as ``DEL``.
A string may not grow past ``proto-max-bulk-len`` (APPEND, SETRANGE).  Keyspace
notifications use Redis's names: ``set`` (SET and its forms, GETSET, MSET), ``append``,
``setrange``, ``incrby`` (every integer step), ``incrbyfloat``, and generic ``expire``,
``persist``, ``del`` for the TTL options and GETDEL; ``new`` comes from ``Database.set``.
"""

from __future__ import annotations

from .. import errors
from ..encodings import mark_raw
from ..errors import CommandError
from ..keyspace import now_ms
from ..pubsub import notify_keyspace_event
from ..resp import OK, Map
from . import command
from .args import INT64_MAX, INT64_MIN, incr_long_double, parse_int
from .keys import notify_key_miss, read_key


def notify(ctx, event_class: str, event: bytes, key: bytes) -> None:
    """A keyspace notification with Redis's event name and class (``"$"`` string, ``"g"``
    generic, ``"x"`` expired); one attribute test when ``notify-keyspace-events`` is off."""
    if ctx.engine.config.notify_keyspace_events:
        notify_keyspace_event(ctx.engine, event_class, event, key, ctx.db.index)


def get(ctx, argv):
    # The hot path: _get_string inlined.
    value = ctx.db.get(argv[1])
    if value is None:
        ctx.engine.stats.keyspace_misses += 1
        if ctx.engine.config.notify_keyspace_events:
            notify_key_miss(ctx, argv[1])
        return None
    ctx.engine.stats.keyspace_hits += 1
    if value.__class__ is not bytes:
        raise CommandError(errors.WRONGTYPE)
    return value


def expire_at_ms(option: bytes, raw: bytes, command_name: str) -> int:
    """The absolute expiry (ms) of an EX/PX/EXAT/PXAT option, with Redis's checks
    (t_string.c ``getExpireMillisecondsOrReply``): not positive, or overflowing once made
    absolute, is ``ERR invalid expire time in '<command>' command``."""
    amount = parse_int(raw)
    invalid = errors.INVALID_EXPIRE.format(command_name)
    if amount <= 0:
        raise CommandError(invalid)
    if option in (b"EX", b"EXAT"):
        if amount > INT64_MAX // 1000:
            raise CommandError(invalid)
        amount *= 1000
    if option in (b"EX", b"PX"):
        amount += now_ms()
        if amount > INT64_MAX:
            raise CommandError(invalid)
    return amount


def parse_expire_options(argv: list[bytes], index: int, command_name: str,
                         allow: frozenset[bytes]) -> tuple[int | None, bool, dict[bytes, bool]]:
    """SET options from ``argv[index:]``: (absolute expiry ms or None, KEEPTTL given, flags
    seen).  Refuses conflicting options with ERR syntax error, bad times with ERR invalid
    expire time (every option's syntax first, then the time's value)."""
    expire_option, expire_raw, keep, flags = parse_option_syntax(argv, index, allow)
    expire_at = None
    if expire_option is not None:
        expire_at = expire_at_ms(expire_option, expire_raw, command_name)
    return expire_at, keep, flags


def parse_option_syntax(argv: list[bytes], index: int, allow: frozenset[bytes]
                        ) -> tuple[bytes | None, bytes, bool, dict[bytes, bool]]:
    """The syntax of SET/GETEX options: (EX/PX/EXAT/PXAT given or None, its unchecked
    value, KEEPTTL/PERSIST given, flags seen); ERR syntax error on a conflict."""
    expire_option = None
    expire_raw = b""
    keep = False
    flags: dict[bytes, bool] = {}
    while index < len(argv):
        option = argv[index].upper()
        if option in _EXPIRE_OPTIONS and option in allow and index + 1 < len(argv):
            if expire_option is not None or keep:
                raise CommandError(errors.SYNTAX)
            expire_option, expire_raw = option, argv[index + 1]
            index += 2
        elif option in (b"KEEPTTL", b"PERSIST") and option in allow:
            if expire_option is not None or keep:
                raise CommandError(errors.SYNTAX)
            keep = True
            index += 1
        elif option in allow and option not in _EXPIRE_OPTIONS:
            flags[option] = True
            index += 1
        else:
            raise CommandError(errors.SYNTAX)
    if flags.get(b"NX") and flags.get(b"XX"):
        raise CommandError(errors.SYNTAX)
    return expire_option, expire_raw, keep, flags


_EXPIRE_OPTIONS = frozenset({b"EX", b"PX", b"EXAT", b"PXAT"})
_SET_OPTIONS = frozenset({b"EX", b"PX", b"EXAT", b"PXAT", b"KEEPTTL", b"NX", b"XX", b"GET"})


def set_(ctx, argv):
    key, value = argv[1], argv[2]
    if len(argv) == 3 and not ctx.engine.config.notify_keyspace_events:
        # The hot path skips the lookup; with notifications on, set_generic's lookup
        # publishes "expired" for a key past its TTL first, as Redis's lookupKeyWrite does.
        ctx.db.set(key, value)
        ctx.dirty += 1
        return OK
    expire_at, keep_ttl, flags = parse_expire_options(argv, 3, "set", _SET_OPTIONS)
    return set_generic(ctx, argv, key, value, expire_at, keep_ttl, flags.get(b"NX", False),
                       flags.get(b"XX", False), flags.get(b"GET", False))


def set_generic(ctx, argv: list[bytes], key: bytes, value: bytes, expire_at: int | None,
                keep_ttl: bool = False, nx: bool = False, xx: bool = False,
                get_old: bool = False):
    """SET, SETEX and PSETEX (``argv`` as sent): store, then propagate as Redis 7.0
    does: with an expiry ``SET key value PXAT <absolute ms>`` (one command, so a replica or
    a cut AOF never holds the value without its TTL); without one, SET's own ``argv`` as
    sent, less its GET options."""
    db = ctx.db
    old = read_key(ctx, key) if get_old else db.get(key)
    if get_old and old is not None and old.__class__ is not bytes:
        raise CommandError(errors.WRONGTYPE)
    reply = old if get_old else OK
    if (nx and old is not None) or (xx and old is None):
        return old if get_old else None
    db.set(key, value, keep_ttl=keep_ttl)
    ctx.dirty += 1
    notify(ctx, "$", b"set", key)
    if expire_at is not None:
        notify(ctx, "g", b"expire", key)
        if expire_at <= now_ms():
            # Already in the past (EXAT/PXAT): the key is deleted now and DEL propagated.
            # Redis 7.0 keeps it until its next access or active expiry, which publish
            # "expired": published here, so subscribers see the same sequence.
            db.delete(key)
            ctx.propagate([b"DEL", key])
            notify(ctx, "x", b"expired", key)
            return reply
        db.set_expire(key, expire_at)
        ctx.propagate([b"SET", key, value, b"PXAT", b"%d" % expire_at])
    elif get_old:
        ctx.propagate(argv[:3] + [word for word in argv[3:] if word.lower() != b"get"])
    # else: the command as sent (NX, XX, KEEPTTL kept), propagated by the engine
    return reply


def setnx(ctx, argv):
    if ctx.db.get(argv[1]) is not None:
        return 0
    ctx.db.set(argv[1], argv[2])
    ctx.dirty += 1
    notify(ctx, "$", b"set", argv[1])
    return 1


def setex(ctx, argv):
    expire_at = expire_at_ms(b"EX", argv[2], "setex")
    return set_generic(ctx, argv, argv[1], argv[3], expire_at)


def psetex(ctx, argv):
    expire_at = expire_at_ms(b"PX", argv[2], "psetex")
    return set_generic(ctx, argv, argv[1], argv[3], expire_at)


def _get_string(ctx, key: bytes, reading: bool = True) -> bytes | None:
    """The string at ``key`` (None when missing, WRONGTYPE for another type); ``reading``
    counts a keyspace hit or miss, as Redis does for commands that read the value."""
    value = read_key(ctx, key) if reading else ctx.db.get(key)
    if value is not None and value.__class__ is not bytes:
        raise CommandError(errors.WRONGTYPE)
    return value


def getset(ctx, argv):
    old = _get_string(ctx, argv[1])
    ctx.db.set(argv[1], argv[2])
    ctx.dirty += 1
    notify(ctx, "$", b"set", argv[1])
    ctx.propagate([b"SET", argv[1], argv[2]])  # as Redis 7 does
    return old


def getdel(ctx, argv):
    value = _get_string(ctx, argv[1])
    if value is not None:
        ctx.db.delete(argv[1])
        ctx.dirty += 1
        notify(ctx, "g", b"del", argv[1])
        ctx.propagate([b"DEL", argv[1]])
    return value


_GETEX_OPTIONS = frozenset({b"EX", b"PX", b"EXAT", b"PXAT", b"PERSIST"})


def getex(ctx, argv):
    key = argv[1]
    expire_option, expire_raw, persist, _flags = parse_option_syntax(argv, 2, _GETEX_OPTIONS)
    value = _get_string(ctx, key)
    if value is None:
        return None
    # Redis checks the time's value after the key's type (a missing key answers nil).
    expire_at = None
    if expire_option is not None:
        expire_at = expire_at_ms(expire_option, expire_raw, "getex")
    db = ctx.db
    if expire_at is not None:
        ctx.dirty += 1
        if expire_at <= now_ms() and not ctx.client.is_loader:
            db.delete(key)
            notify(ctx, "g", b"del", key)
            ctx.propagate([b"DEL", key])
        else:
            db.set_expire(key, expire_at)
            notify(ctx, "g", b"expire", key)
            ctx.propagate([b"PEXPIREAT", key, b"%d" % expire_at])
    elif persist and db.persist(key):
        ctx.dirty += 1
        notify(ctx, "g", b"persist", key)
        ctx.propagate([b"PERSIST", key])
    return value


def mget(ctx, argv):
    replies = []
    for key in argv[1:]:
        value = read_key(ctx, key)
        replies.append(value if value.__class__ is bytes else None)
    return replies


def mset(ctx, argv):
    if len(argv) % 2 == 0:
        raise CommandError(errors.wrong_arity("mset"))
    db = ctx.db
    if ctx.engine.config.notify_keyspace_events:
        # Each key is looked up first (lazy expiry publishes "expired"), as Redis's setKey.
        for index in range(1, len(argv), 2):
            db.get(argv[index])
            db.set(argv[index], argv[index + 1])
            notify(ctx, "$", b"set", argv[index])
    elif not db.expires:  # nothing to publish, no TTL to drop: one C-level update
        db.set_many(argv[1::2], argv[2::2])
    else:
        for index in range(1, len(argv), 2):
            db.set(argv[index], argv[index + 1])
    ctx.dirty += (len(argv) - 1) // 2
    return OK


def msetnx(ctx, argv):
    if len(argv) % 2 == 0:
        raise CommandError(errors.wrong_arity("msetnx"))
    db = ctx.db
    if any(db.get(argv[index]) is not None for index in range(1, len(argv), 2)):
        return 0
    for index in range(1, len(argv), 2):
        db.set(argv[index], argv[index + 1])
        notify(ctx, "$", b"set", argv[index])
    ctx.dirty += (len(argv) - 1) // 2
    return 1


def _check_length(ctx, size: int) -> None:
    """A string may not grow past proto-max-bulk-len (512mb by default), except while
    loading: a file written by us is trusted."""
    if size > ctx.config.proto_max_bulk_len and not ctx.client.is_loader:
        raise CommandError(errors.STRING_TOO_LONG)


def append(ctx, argv):
    key = argv[1]
    old = _get_string(ctx, key, reading=False)
    if old is None:
        new = argv[2]
    else:
        _check_length(ctx, len(old) + len(argv[2]))
        new = old + argv[2]
    ctx.db.set(key, new, keep_ttl=True)
    if old is not None:
        mark_raw(ctx.db, key)  # appended to in place (a new key is stored as SET stores it)
    ctx.dirty += 1
    notify(ctx, "$", b"append", key)
    return len(new)


def strlen(ctx, argv):
    value = _get_string(ctx, argv[1])
    return 0 if value is None else len(value)


def getrange(ctx, argv):
    start = parse_int(argv[2])
    end = parse_int(argv[3])
    value = _get_string(ctx, argv[1])
    if value is None:
        return b""
    size = len(value)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    end = max(end, 0)
    if end >= size:
        end = size - 1
    if start > end or size == 0:
        return b""
    return value[start : end + 1]


def setrange(ctx, argv):
    offset = parse_int(argv[2])
    if offset < 0:
        raise CommandError(errors.OFFSET_OUT_OF_RANGE)
    key, patch = argv[1], argv[3]
    old = _get_string(ctx, key, reading=False)
    if not patch:
        return 0 if old is None else len(old)
    _check_length(ctx, offset + len(patch))
    base = old or b""
    if len(base) < offset:
        base += b"\0" * (offset - len(base))
    new = base[:offset] + patch + base[offset + len(patch) :]
    ctx.db.set(key, new, keep_ttl=True)
    mark_raw(ctx.db, key)  # edited in place, or created zero-filled: raw either way
    ctx.dirty += 1
    notify(ctx, "$", b"setrange", key)
    return len(new)


def _incr_by(ctx, key: bytes, increment: int) -> int:
    db = ctx.db
    value = db.get(key)
    if value is None:
        result = increment
        db.set(key, b"%d" % result, keep_ttl=True)
    else:
        if value.__class__ is not bytes:
            raise CommandError(errors.WRONGTYPE)
        result = parse_int(value) + increment
        if not INT64_MIN <= result <= INT64_MAX:
            raise CommandError(errors.OVERFLOW)
        db.replace_string(key, value, b"%d" % result)  # an existing key keeps its TTL
    ctx.dirty += 1
    if ctx.engine.config.notify_keyspace_events:
        # INCR DECR DECRBY too: Redis names them all incrby
        notify_keyspace_event(ctx.engine, "$", b"incrby", key, db.index)
    return result


def incr(ctx, argv):
    return _incr_by(ctx, argv[1], 1)


def decr(ctx, argv):
    return _incr_by(ctx, argv[1], -1)


def incrby(ctx, argv):
    return _incr_by(ctx, argv[1], parse_int(argv[2]))


def decrby(ctx, argv):
    amount = parse_int(argv[2])
    if amount == INT64_MIN:
        raise CommandError("ERR decrement would overflow")
    return _incr_by(ctx, argv[1], -amount)


def incrbyfloat(ctx, argv):
    key = argv[1]
    value = _get_string(ctx, key, reading=False)
    result = incr_long_double(value, argv[2])
    ctx.db.set(key, result, keep_ttl=True)
    ctx.dirty += 1
    notify(ctx, "$", b"incrbyfloat", key)
    # Replaying the addition could give other digits elsewhere: propagate the result.
    ctx.propagate([b"SET", key, result, b"KEEPTTL"])
    return result


# --- LCS -----------------------------------------------------------------------------------


def _lcs_rows(a: bytes, b: bytes):
    """``lcs(i, j)``: the LCS length of ``a[:i]`` and ``b[:j]``, for Redis's walk back.

    Redis fills a table of (len(a)+1) x (len(b)+1) integers.  Here each row of that table
    is one integer used as a bit vector (Hyyrö's bit-parallel LCS): bit j is clear where the
    row's value steps up, so a row costs a few big-integer operations instead of len(b)
    Python steps, and lcs(i, j) counts the clear bits below j."""
    full = (1 << len(b)) - 1
    match_masks: dict[int, int] = {}
    for position, char in enumerate(b):
        match_masks[char] = match_masks.get(char, 0) | (1 << position)
    rows = [full]
    vector = full
    for char in a:
        matched = vector & match_masks.get(char, 0)
        vector = ((vector + matched) | (vector - matched)) & full
        rows.append(vector)

    def prefix_lcs(i: int, j: int) -> int:
        return j - (rows[i] & ((1 << j) - 1)).bit_count()

    return prefix_lcs


def lcs(ctx, argv):
    """LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN] (t_string.c ``lcsCommand``,
    including the order in which it reports matches)."""
    values = [read_key(ctx, key) for key in argv[1:3]]
    if any(value is not None and value.__class__ is not bytes for value in values):
        raise CommandError("ERR The specified keys must contain string values")
    want_len = want_idx = with_match_len = False
    min_match_len = 0
    index = 3
    while index < len(argv):
        option = argv[index].lower()
        if option == b"idx":
            want_idx = True
        elif option == b"len":
            want_len = True
        elif option == b"withmatchlen":
            with_match_len = True
        elif option == b"minmatchlen" and index + 1 < len(argv):
            min_match_len = max(parse_int(argv[index + 1]), 0)
            index += 1
        else:
            raise CommandError(errors.SYNTAX)
        index += 1
    if want_len and want_idx:
        raise CommandError("ERR If you want both the length and indexes, please just use IDX.")
    a, b = values[0] or b"", values[1] or b""
    a_len, b_len = len(a), len(b)
    # Redis refuses when its table of 32-bit cells would pass proto-max-bulk-len (ours is
    # 32 times smaller, but the limit is the same).
    if (a_len + 1) * (b_len + 1) * 4 > ctx.config.proto_max_bulk_len:
        raise CommandError(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
        )
    prefix_lcs = _lcs_rows(a, b)
    length = prefix_lcs(a_len, b_len)
    if want_len:
        return length
    result = bytearray(length)
    matches = []
    position = length
    i, j = a_len, b_len
    # The match range being extended backwards; a_start == a_len means "no range open".
    a_start, a_end, b_start, b_end = a_len, 0, 0, 0
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            result[position - 1] = a[i - 1]
            if a_start == a_len:
                a_start = a_end = i - 1
                b_start = b_end = j - 1
            elif a_start == i and b_start == j:
                a_start -= 1
                b_start -= 1
            else:
                emit = True
            if a_start == 0 or b_start == 0:
                emit = True
            position -= 1
            i -= 1
            j -= 1
        else:
            if prefix_lcs(i - 1, j) > prefix_lcs(i, j - 1):
                i -= 1
            else:
                j -= 1
            if a_start != a_len:
                emit = True
        match_len = a_end - a_start + 1
        if emit:
            if min_match_len == 0 or match_len >= min_match_len:
                match = [[a_start, a_end], [b_start, b_end]]
                if with_match_len:
                    match.append(match_len)
                matches.append(match)
            a_start = a_len
    if want_idx:
        return Map({b"matches": matches, b"len": length})
    return bytes(result)


def register(registry):
    group = "string"
    registry.extend([
        command("get", 2, "readonly fast", get, group=group),
        command("set", -3, "write denyoom", set_, group=group),
        command("setnx", 3, "write denyoom fast", setnx, group=group),
        command("setex", 4, "write denyoom", setex, group=group),
        command("psetex", 4, "write denyoom", psetex, group=group),
        command("getset", 3, "write denyoom fast", getset, group=group),
        command("getdel", 2, "write fast", getdel, group=group),
        command("getex", -2, "write fast", getex, group=group),
        command("mget", -2, "readonly fast", mget, group=group),
        command("mset", -3, "write denyoom", mset, group=group),
        command("msetnx", -3, "write denyoom", msetnx, group=group),
        command("append", 3, "write denyoom fast", append, group=group),
        command("strlen", 2, "readonly fast", strlen, group=group),
        command("getrange", 4, "readonly", getrange, group=group),
        command("substr", 4, "readonly", getrange, group=group),
        command("setrange", 4, "write denyoom", setrange, group=group),
        command("incr", 2, "write denyoom fast", incr, group=group),
        command("decr", 2, "write denyoom fast", decr, group=group),
        command("incrby", 3, "write denyoom fast", incrby, group=group),
        command("decrby", 3, "write denyoom fast", decrby, group=group),
        command("incrbyfloat", 3, "write denyoom fast", incrbyfloat, group=group),
        command("lcs", -3, "readonly", lcs, group=group),
    ])
