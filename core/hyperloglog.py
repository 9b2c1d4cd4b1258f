"""HyperLogLog values byte for byte as Redis 7.0 stores them, in a plain Redis string.

Layout (all of it is what GET returns, what the AOF carries and what Redis reads back):

* a 16-byte header: ``HYLL``, one encoding byte (0 dense, 1 sparse), three unused bytes, and
  the cached cardinality as a little-endian 64-bit integer whose top bit set means "stale";
* dense: 16384 registers of 6 bits, packed from the least significant bit of each byte on
  (register 0 is the low 6 bits of byte 0, register 1 straddles bytes 0 and 1, ...);
* sparse: a run-length stream of opcodes: ``00xxxxxx`` ZERO (1..64 zero registers),
  ``01xxxxxx yyyyyyyy`` XZERO (1..16384 zero registers, 14-bit length), ``1vvvvvxx`` VAL
  (1..4 registers set to 1..32).  A new HLL is sparse; it turns dense for good when a register
  needs more than 32 or when the stream would pass ``hll-sparse-max-bytes``.

Elements are hashed with MurmurHash64A (seed ``0xadc83b19``): the low 14 bits pick the
register, the run of zero bits above them (plus one) is the candidate value.  The estimate is
Otmar Ertl's improved estimator over the register histogram, as Redis 7's ``hllCount``.

Every update below repeats Redis's steps (where a sparse stream is split, which neighbours
are merged, when it is promoted) because the resulting bytes are visible to users.  Bulk work
over the 16384 dense registers (histograms, merges) is done with ``bytes.translate``, strided
slices and wide-integer arithmetic rather than a Python loop per register.
"""

from __future__ import annotations

import functools
import math
import struct

from .hll_codec import (  # the codec's names stay importable from here
    DENSE,
    DENSE_SIZE,
    HEADER_SIZE,
    INVALID_HLL,
    MAGIC,
    NOT_HLL,
    REGISTER_MAX,
    REGISTERS,
    SPARSE,
    SPARSE_MAX_BYTES,
    SPARSE_VAL_MAX_LEN,
    SPARSE_VAL_MAX_VALUE,
    SPARSE_XZERO_MAX_LEN,
    SPARSE_ZERO_MAX_LEN,
    CorruptHLL,
    P,
    Q,
    SparseCursor,
    _walked_histogram,  # the reference walk the tests compare the fast histogram with
    _xzero_starts,  # and the XZERO index they check
    cached_count,
    check,
    dense_get,
    dense_set,
    dense_to_raw,
    invalidate,
    locate,
    new_sparse,
    raw_histogram,
    raw_max,
    raw_to_dense_registers,
    sparse_histogram,
    sparse_opcodes,
    sparse_set,
    sparse_to_dense,
    sparse_to_raw,
    store_count,
)

__all__ = [
    "_walked_histogram",
    "_xzero_starts",  # the algorithms here, and the codec's names (tests and commands use both)
    "ALPHA_INF",
    "CorruptHLL",
    "DENSE",
    "DENSE_SIZE",
    "HASH_SEED",
    "HEADER_SIZE",
    "INVALID_HLL",
    "MAGIC",
    "NOT_HLL",
    "P",
    "Q",
    "REGISTERS",
    "REGISTER_MAX",
    "SPARSE",
    "SPARSE_MAX_BYTES",
    "SPARSE_VAL_MAX_LEN",
    "SPARSE_VAL_MAX_VALUE",
    "SPARSE_XZERO_MAX_LEN",
    "SPARSE_ZERO_MAX_LEN",
    "SparseCursor",
    "add",
    "cached_count",
    "cached_registers",
    "check",
    "dense_get",
    "dense_set",
    "dense_to_raw",
    "estimate",
    "histogram",
    "invalidate",
    "locate",
    "murmurhash64a",
    "new_sparse",
    "pattern",
    "raw_histogram",
    "raw_max",
    "raw_registers",
    "raw_to_dense_registers",
    "sparse_histogram",
    "sparse_opcodes",
    "sparse_set",
    "sparse_to_dense",
    "sparse_to_raw",
    "store_count",
    "union_count",
]

HASH_SEED = 0xADC83B19
# 0.5 / ln(2): the estimator's alpha for an infinite number of registers.
ALPHA_INF = 0.721347520444481703680
_M = 0xC6A4A7935BD1E995
_MASK64 = (1 << 64) - 1


# --- hashing -------------------------------------------------------------------------------


def murmurhash64a(data: bytes, seed: int = HASH_SEED) -> int:
    """MurmurHash2, 64-bit version, reading 8-byte blocks little-endian (Redis's
    endian-neutral variant), as unsigned 64-bit arithmetic on Python ints."""
    length = len(data)
    h = (seed ^ (length * _M)) & _MASK64
    whole = length & ~7
    if whole:
        for (k,) in struct.iter_unpack("<Q", data[:whole]):
            k = (k * _M) & _MASK64
            k ^= k >> 47
            h ^= (k * _M) & _MASK64
            h = (h * _M) & _MASK64
    if length & 7:
        h ^= int.from_bytes(data[whole:], "little")
        h = (h * _M) & _MASK64
    h ^= h >> 47
    h = (h * _M) & _MASK64
    return h ^ (h >> 47)


def pattern(element: bytes) -> tuple[int, int]:
    """(register index, candidate value) of an element: the value is the length of the
    ``0...01`` run above the index bits, at most Q+1 (a guard bit ends the run)."""
    h = murmurhash64a(element)
    rest = (h >> P) | (1 << Q)
    return h & (REGISTERS - 1), (rest & -rest).bit_length()


# --- adding and counting -------------------------------------------------------------------


def add(data: bytearray, element: bytes, max_bytes: int) -> tuple[int, bytearray]:
    """Add one element: (1 when a register changed / 0 / -1 corrupt, the value)."""
    index, count = pattern(element)
    if data[4] == DENSE:
        return dense_set(data, index, count), data
    return sparse_set(data, index, count, max_bytes, locate(data, index))


def histogram(value: bytes | bytearray) -> list[int]:
    """The register histogram of a (checked) HLL; raises CorruptHLL for a bad sparse one."""
    if value[4] == DENSE:
        return raw_histogram(dense_to_raw(value))
    return sparse_histogram(value)


def raw_registers(value: bytes | bytearray) -> bytes:
    """One register per byte of a (checked) HLL; raises CorruptHLL for a bad sparse one."""
    if value[4] == DENSE:
        return dense_to_raw(value)
    return sparse_to_raw(value)


# PFCOUNT of several keys finds no cached count in any header.  An HLL string is immutable
# (every change stores a new bytes object), so what was computed from one can be kept: the
# registers of recently read HLLs, the counts of recently counted unions.  Keyed by value: a
# bytes object caches its hash, and a hit on the same object compares by identity, so a
# lookup costs no pass over 12 KB.  Bounded: at most 64 + 32 entries (about 2 MB).
@functools.lru_cache(maxsize=64)
def cached_registers(value: bytes) -> bytes:
    """:func:`raw_registers` of a checked HLL, remembered."""
    return raw_registers(value)


@functools.lru_cache(maxsize=32)
def union_count(values: tuple[bytes, ...]) -> int:
    """The estimated cardinality of the union of checked, well-formed HLLs, remembered."""
    merged = cached_registers(values[0])
    for value in values[1:]:
        merged = raw_max(merged, cached_registers(value))
    return estimate(raw_histogram(merged))


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y = 1.0
    z = x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if previous == z:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y = 1.0
    z = 1 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1 - x) ** 2 * y
        if previous == z:
            return z / 3


def estimate(histogram: list[int]) -> int:
    """Ertl's estimator over a register histogram, in the same double arithmetic and order
    as Redis, rounded half away from zero as ``llroundl``."""
    m = float(REGISTERS)
    z = m * _tau((m - histogram[Q + 1]) / m)
    for value in range(Q, 0, -1):
        z += histogram[value]
        z *= 0.5
    z += m * _sigma(histogram[0] / m)
    result = ALPHA_INF * m * m / z
    whole = math.floor(result)
    return int(whole + 1 if result - whole >= 0.5 else whole)
