"""HyperLogLog commands: PFADD PFCOUNT PFMERGE PFDEBUG PFSELFTEST (Redis 7.0's
``hyperloglog.c``), on HLLs kept as plain strings in Redis's exact layout
(:mod:`trioredis.hyperloglog`).

Propagation is as sent, which is deterministic here: PFADD and PFMERGE replay to the same
bytes, and PFCOUNT of one key is propagated (as Redis does) when it refreshed the cached
cardinality in the header, since that changes the string; PFDEBUG GETREG/TODENSE when they
converted a sparse HLL to dense.  An existing HLL keeps its TTL (Redis changes the string in
place).  Keyspace notifications: ``pfadd`` (class ``$``) for PFADD when a register changed and
for every PFMERGE; ``new`` comes from ``Database.set``.
"""

from __future__ import annotations

import math
import random
import re

from .. import errors
from .. import hyperloglog as hll
from ..errors import CommandError
from ..resp import OK, Status
from . import command
from .keys import read_key
from .strings import notify

NO_SUCH_KEY = "ERR The specified key does not exist"
NOT_SPARSE = "ERR HLL encoding is not sparse"
_NONZERO = re.compile(rb"[^\x00]")


def _sparse_max_bytes(ctx) -> int:
    """``hll-sparse-max-bytes`` (Redis's default 3000 when a config lacks it)."""
    return getattr(ctx.config, "hll_sparse_max_bytes", hll.SPARSE_MAX_BYTES)


def _hll_at(ctx, key: bytes, read: bool) -> bytes | None:
    """The HLL string at ``key`` (None when missing), with Redis's two refusals: another
    type is the usual WRONGTYPE, a string that is no HLL the HyperLogLog WRONGTYPE."""
    value = read_key(ctx, key) if read else ctx.db.get(key)
    if value is None:
        return None
    if value.__class__ is not bytes:
        raise CommandError(errors.WRONGTYPE)
    problem = hll.check(value)
    if problem is not None:
        raise CommandError(problem)
    return value


def _store(ctx, key: bytes, data: bytearray, existed: bool) -> None:
    """Write an HLL back: an existing key is changed in place (its TTL stays), as Redis
    edits the string's bytes; a new one is added."""
    if existed:
        ctx.db.replace_string(key, ctx.db.data[key], bytes(data))
    else:
        ctx.db.set(key, bytes(data))


def _registers(value: bytes) -> bytes:
    try:
        return hll.cached_registers(value)
    except hll.CorruptHLL:
        raise CommandError(hll.INVALID_HLL) from None


def pfadd(ctx, argv):
    key = argv[1]
    value = _hll_at(ctx, key, read=False)
    existed = value is not None
    data = bytearray(value) if existed else hll.new_sparse()
    updated = 0 if existed else 1
    max_bytes = _sparse_max_bytes(ctx)
    for element in argv[2:]:
        changed, data = hll.add(data, element, max_bytes)
        if changed < 0:
            # Redis has already edited the string for the elements before this one.
            if existed and data != value:
                _store(ctx, key, data, existed)
            raise CommandError(hll.INVALID_HLL)
        updated += changed
    if not updated:
        return 0
    hll.invalidate(data)
    _store(ctx, key, data, existed)
    ctx.dirty += updated
    notify(ctx, "$", b"pfadd", key)
    return 1


def pfcount(ctx, argv):
    if len(argv) > 2:
        # The count of the union (registerwise maximum of every HLL), stored nowhere; each
        # HLL is read and checked in order, so the first bad one is the error.
        values = []
        for key in argv[1:]:
            value = _hll_at(ctx, key, read=True)
            if value is not None:
                _registers(value)
                values.append(value)
        return hll.union_count(tuple(values)) if values else 0
    key = argv[1]
    value = _hll_at(ctx, key, read=True)
    if value is None:
        return 0
    cached = hll.cached_count(value)
    if cached is not None:
        return cached
    try:
        count = hll.estimate(hll.histogram(value))
    except hll.CorruptHLL:
        raise CommandError(hll.INVALID_HLL) from None
    data = bytearray(value)
    hll.store_count(data, count)
    _store(ctx, key, data, existed=True)
    # The string changed (its cache): a write to propagate, although PFCOUNT reads.
    ctx.dirty += 1
    return count


def pfmerge(ctx, argv):
    merged = None
    use_dense = False
    for key in argv[1:]:  # the destination's own registers are part of the union
        value = _hll_at(ctx, key, read=True)
        if value is None:
            continue
        use_dense = use_dense or value[4] == hll.DENSE
        registers = _registers(value)
        merged = registers if merged is None else hll.raw_max(merged, registers)
    target = argv[1]
    value = ctx.db.get(target)
    existed = value is not None
    data = bytearray(value) if existed else hll.new_sparse()
    if use_dense and data[4] == hll.SPARSE:
        data = hll.sparse_to_dense(data)  # already walked above: it is not corrupt
    if merged is not None:
        if data[4] == hll.DENSE:
            # Every register only rises, and ``merged`` already covers the destination.
            data[hll.HEADER_SIZE:] = hll.raw_to_dense_registers(merged)
        else:
            data = _merge_into_sparse(data, merged, _sparse_max_bytes(ctx))
    hll.invalidate(data)
    _store(ctx, target, data, existed)
    notify(ctx, "$", b"pfadd", target)  # Redis names PFMERGE's event pfadd too
    ctx.dirty += 1
    return OK


def _merge_into_sparse(data: bytearray, merged: bytes, max_bytes: int) -> bytearray:
    """Set each non-zero register in index order, as Redis does (the sparse bytes depend on
    that order), turning to dense updates once the stream is promoted."""
    cursor = hll.SparseCursor()
    for match in _NONZERO.finditer(merged):
        index = match.start()
        if data[4] == hll.DENSE:
            hll.dense_set(data, index, merged[index])
        else:
            _changed, data = hll.sparse_set(data, index, merged[index], max_bytes, cursor)
    return data


def pfdebug(ctx, argv):
    subcommand = argv[1].lower()
    key = argv[2]
    value = ctx.db.get(key)
    if value is None:
        raise CommandError(NO_SUCH_KEY)
    value = _hll_at(ctx, key, read=False)
    if subcommand == b"getreg":
        if value[4] == hll.SPARSE:
            value = bytes(_to_dense(ctx, key, value))
        return list(hll.dense_to_raw(value))
    if subcommand == b"decode":
        if value[4] != hll.SPARSE:
            raise CommandError(NOT_SPARSE)
        parts = []
        for kind, run, register in hll.sparse_opcodes(value):
            parts.append(b"v:%d,%d" % (register, run) if kind == "v"
                         else b"%s:%d" % (kind.encode(), run))
        return b" ".join(parts)
    if subcommand == b"encoding":
        return Status(b"dense" if value[4] == hll.DENSE else b"sparse")
    if subcommand == b"todense":
        if value[4] == hll.SPARSE:
            _to_dense(ctx, key, value)
            return 1
        return 0
    name = argv[1].decode(errors="replace")
    raise CommandError(f"ERR Unknown PFDEBUG subcommand '{name}'")


def _to_dense(ctx, key: bytes, value: bytes) -> bytearray:
    """Convert the HLL at ``key`` to dense for good (a change to propagate)."""
    try:
        dense = hll.sparse_to_dense(value)
    except hll.CorruptHLL:
        raise CommandError(hll.INVALID_HLL) from None
    _store(ctx, key, dense, existed=True)
    ctx.dirty += 1
    return dense


# PFSELFTEST's sizes: Redis runs 1000 register cycles and 10 million elements in C; the same
# checks at a size a Python server answers in well under a second.
_SELFTEST_REGISTER_CYCLES = 4
_SELFTEST_ELEMENTS = 20000


def pfselftest(ctx, argv):
    """Check the register packing and that sparse and dense HLLs agree and stay within the
    expected error, as Redis's self-test does (on fewer cycles and elements)."""
    rng = random.Random()
    dense = bytearray(hll.DENSE_SIZE)
    for _ in range(_SELFTEST_REGISTER_CYCLES):
        expected = bytes(rng.randrange(64) for _ in range(hll.REGISTERS))
        dense[hll.HEADER_SIZE:] = hll.raw_to_dense_registers(expected)
        for index in rng.sample(range(hll.REGISTERS), 256):
            got = hll.dense_get(dense, index)
            if got != expected[index]:
                raise CommandError(
                    f"TESTFAILED Register {index} should be {expected[index]} but is {got}")
        if hll.dense_to_raw(dense) != expected:
            raise CommandError("TESTFAILED Register unpacking disagrees")
    dense = bytearray(hll.MAGIC + bytes(hll.DENSE_SIZE - 4))
    sparse = hll.new_sparse()
    max_bytes = _sparse_max_bytes(ctx)
    relative_error = 1.04 / hll.REGISTERS ** 0.5
    checkpoint = 1
    seed = rng.getrandbits(64)
    for element_number in range(1, _SELFTEST_ELEMENTS + 1):
        element = (element_number ^ seed).to_bytes(8, "little")
        hll.add(dense, element, max_bytes)
        _changed, sparse = hll.add(sparse, element, max_bytes)
        if element_number != checkpoint:
            continue
        if element_number < max_bytes // 2 and sparse[4] != hll.SPARSE:
            raise CommandError("TESTFAILED sparse encoding not used")
        counted = hll.estimate(hll.histogram(dense))
        if counted != hll.estimate(hll.histogram(sparse)):
            raise CommandError("TESTFAILED dense/sparse disagree")
        allowed = 1 if checkpoint == 10 else math.ceil(relative_error * 6 * checkpoint)
        if abs(checkpoint - counted) > allowed:
            raise CommandError(f"TESTFAILED Too big error. card:{checkpoint} "
                               f"abserr:{abs(checkpoint - counted)}")
        checkpoint *= 10
    return OK


def register(registry):
    group = "hyperloglog"
    registry.extend([
        command("pfadd", -2, "write denyoom fast", pfadd, group=group),
        command("pfcount", -2, "readonly", pfcount, group=group),
        command("pfmerge", -2, "write denyoom", pfmerge, group=group),
        command("pfdebug", 3, "write denyoom admin", pfdebug, group=group),
        command("pfselftest", 1, "admin", pfselftest, group=group),
    ])

