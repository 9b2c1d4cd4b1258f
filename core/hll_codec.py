"""The bytes of a HyperLogLog as Redis 7.0 stores them: the header, the dense registers and
the sparse run-length stream, and the conversions between them.

:mod:`trioredis.hyperloglog` says what the layout is and holds the algorithms (hashing,
adding, counting); this module only reads and writes the two encodings, repeating Redis's
steps where the resulting bytes are visible (how a sparse run is split, which neighbours are
merged, when the stream is promoted to dense).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator

MAGIC = b"HYLL"
DENSE = 0
SPARSE = 1
HEADER_SIZE = 16
P = 14
REGISTERS = 1 << P  # 16384
Q = 64 - P  # bits of the hash above the register index
REGISTER_MAX = 63
DENSE_SIZE = HEADER_SIZE + REGISTERS * 6 // 8  # 12304
# Redis's default for the hll-sparse-max-bytes directive.
SPARSE_MAX_BYTES = 3000
SPARSE_VAL_MAX_VALUE = 32
SPARSE_VAL_MAX_LEN = 4
SPARSE_ZERO_MAX_LEN = 64
SPARSE_XZERO_MAX_LEN = 16384

INVALID_HLL = "INVALIDOBJ Corrupted HLL object detected"
NOT_HLL = "WRONGTYPE Key is not a valid HyperLogLog string value."

_STALE_BIT = 0x80  # in header byte 15, the top byte of the cached cardinality


class CorruptHLL(Exception):
    """A sparse stream whose runs do not cover exactly 16384 registers."""



# --- header --------------------------------------------------------------------------------


def new_sparse() -> bytearray:
    """An empty HLL as PFADD creates it: sparse, one XZERO covering all registers."""
    run = SPARSE_XZERO_MAX_LEN - 1
    return bytearray(MAGIC + bytes((SPARSE, 0, 0, 0)) + bytes(8)
                     + bytes((0x40 | (run >> 8), run & 0xFF)))


def check(value: bytes) -> str | None:
    """Redis's ``isHLLObjectOrReply`` for a string value: None when it looks like an HLL,
    else the error to reply (the sparse stream is only checked when it is walked)."""
    if (len(value) < HEADER_SIZE or value[:4] != MAGIC or value[4] > SPARSE
            or (value[4] == DENSE and len(value) != DENSE_SIZE)):
        return NOT_HLL
    return None


def cached_count(value: bytes) -> int | None:
    """The cached cardinality, or None when it is marked stale."""
    if value[15] & _STALE_BIT:
        return None
    return int.from_bytes(value[8:16], "little")


def store_count(data: bytearray, count: int) -> None:
    data[8:16] = count.to_bytes(8, "little")


def invalidate(data: bytearray) -> None:
    data[15] |= _STALE_BIT


# --- dense registers -----------------------------------------------------------------------


def dense_get(data: bytes | bytearray, index: int) -> int:
    bit = index * 6
    byte = HEADER_SIZE + (bit >> 3)
    shift = bit & 7
    # The last register's neighbour byte is past the string (Redis reads the sds NUL).
    following = data[byte + 1] if byte + 1 < len(data) else 0
    return ((data[byte] >> shift) | (following << (8 - shift))) & REGISTER_MAX


def dense_set(data: bytearray, index: int, count: int) -> int:
    """Raise register ``index`` to ``count``: 1 when it changed, else 0."""
    bit = index * 6
    byte = HEADER_SIZE + (bit >> 3)
    shift = bit & 7
    low = data[byte]
    following = data[byte + 1] if byte + 1 < len(data) else 0
    if count <= ((low >> shift) | (following << (8 - shift))) & REGISTER_MAX:
        return 0
    data[byte] = (low & ~(REGISTER_MAX << shift) & 0xFF) | ((count << shift) & 0xFF)
    if shift > 2:  # the register spills into the next byte
        data[byte + 1] = (following & ~(REGISTER_MAX >> (8 - shift))) | (count >> (8 - shift))
    return 1


def _table(function) -> bytes:
    return bytes(function(byte) & 0xFF for byte in range(256))


# Each group of 3 bytes holds 4 registers: r0 = b0 & 63, r1 = b0 >> 6 | (b1 & 15) << 2,
# r2 = b1 >> 4 | (b2 & 3) << 4, r3 = b2 >> 2.  The pieces of r1 and r2 occupy different
# bits, so adding the two byte strings as wide integers ORs them without carries.
_LOW6 = _table(lambda b: b & 63)
_HIGH2 = _table(lambda b: b >> 6)
_LOW4_UP2 = _table(lambda b: (b & 15) << 2)
_HIGH4 = _table(lambda b: b >> 4)
_LOW2_UP4 = _table(lambda b: (b & 3) << 4)
_HIGH6 = _table(lambda b: b >> 2)
# And back: b0 = r0 | (r1 & 3) << 6, b1 = r1 >> 2 | (r2 & 15) << 4, b2 = r2 >> 4 | r3 << 2.
_UP6 = _table(lambda b: (b & 3) << 6)
_DOWN2 = _table(lambda b: (b & 63) >> 2)
_LOW4_UP4 = _table(lambda b: (b & 15) << 4)
_DOWN4 = _table(lambda b: (b & 63) >> 4)
_UP2 = _table(lambda b: (b & 63) << 2)


def _or(first: bytes, second: bytes) -> bytes:
    """Bytewise OR of two equal-length strings whose set bits never overlap."""
    total = int.from_bytes(first, "little") + int.from_bytes(second, "little")
    return total.to_bytes(len(first), "little")


def dense_to_raw(data: bytes | bytearray) -> bytes:
    """The 16384 registers of a dense HLL, one per byte, in register order."""
    registers = bytes(data[HEADER_SIZE:DENSE_SIZE])
    b0, b1, b2 = registers[0::3], registers[1::3], registers[2::3]
    raw = bytearray(REGISTERS)
    raw[0::4] = b0.translate(_LOW6)
    raw[1::4] = _or(b0.translate(_HIGH2), b1.translate(_LOW4_UP2))
    raw[2::4] = _or(b1.translate(_HIGH4), b2.translate(_LOW2_UP4))
    raw[3::4] = b2.translate(_HIGH6)
    return bytes(raw)


def raw_to_dense_registers(raw: bytes) -> bytes:
    """The packed 12288 register bytes of a dense HLL from one register per byte."""
    r0, r1, r2, r3 = raw[0::4], raw[1::4], raw[2::4], raw[3::4]
    packed = bytearray(REGISTERS * 6 // 8)
    packed[0::3] = _or(r0.translate(_LOW6), r1.translate(_UP6))
    packed[1::3] = _or(r1.translate(_DOWN2), r2.translate(_LOW4_UP4))
    packed[2::3] = _or(r2.translate(_DOWN4), r3.translate(_UP2))
    return bytes(packed)


_LANES_HIGH = int.from_bytes(b"\x80" * REGISTERS, "little")
_LANES_LOW7 = int.from_bytes(b"\x7f" * REGISTERS, "little")


def raw_max(first: bytes, second: bytes) -> bytes:
    """Registerwise maximum of two raw register strings (values below 128), with SWAR
    arithmetic on wide integers: per byte, ``(a | 0x80) - b`` keeps its top bit exactly
    when a >= b and never borrows from the next byte."""
    a = int.from_bytes(first, "little")
    b = int.from_bytes(second, "little")
    ge = ((a | _LANES_HIGH) - b) & _LANES_HIGH
    mask = ge - (ge >> 7)  # 0x7f in the bytes where a >= b
    return ((a & mask) | (b & (_LANES_LOW7 ^ mask))).to_bytes(REGISTERS, "little")


def raw_histogram(raw: bytes) -> list[int]:
    """How many registers hold each value 0..63 (a C-speed count per value, stopping once
    every register is accounted for)."""
    histogram = [0] * 64
    left = len(raw)
    for value in range(64):
        if not left:
            break
        found = raw.count(value)
        histogram[value] = found
        left -= found
    return histogram


# --- sparse stream -------------------------------------------------------------------------


def _next_byte(data: bytes | bytearray, position: int) -> int:
    """The byte after an opcode's first one; past the end Redis reads the sds NUL."""
    return data[position] if position < len(data) else 0


def sparse_opcodes(data: bytes | bytearray) -> Iterator[tuple[str, int, int]]:
    """(kind, run length, value) of each opcode: kind 'z' ZERO, 'Z' XZERO, 'v' VAL."""
    position = HEADER_SIZE
    end = len(data)
    while position < end:
        op = data[position]
        if op & 0xC0 == 0:
            yield "z", (op & 0x3F) + 1, 0
            position += 1
        elif op & 0x80 == 0:
            yield "Z", (((op & 0x3F) << 8) | _next_byte(data, position + 1)) + 1, 0
            position += 2
        else:
            yield "v", (op & 3) + 1, ((op >> 2) & 0x1F) + 1
            position += 1


def _xzero_starts(data: bytes | bytearray) -> dict[int, int] | None:
    """Position -> run length of every XZERO opcode, without walking the stream in Python:
    a byte 01xxxxxx starts an XZERO unless it is the second byte of the XZERO just before
    it (every other byte, opcode or second byte, is followed by an opcode start).  None
    when the stream ends in the middle of an XZERO (callers then take the plain walk)."""
    starts: dict[int, int] = {}
    end = len(data)
    second = -1
    marks = data.translate(_XZERO_MARKS)
    position = HEADER_SIZE - 1
    while True:
        position = marks.find(1, position + 1)
        if position < 0:
            return starts
        if position == second:
            continue
        if position + 1 >= end:
            return None
        starts[position] = (((data[position] & 0x3F) << 8) | data[position + 1]) + 1
        second = position + 1


# 1 for the bytes that may start an XZERO (01xxxxxx), 0 for the others.
_XZERO_MARKS = bytes(1 if 0x40 <= b < 0x80 else 0 for b in range(256))
# Run length minus one of a one-byte opcode (ZERO or VAL); 0 for XZERO bytes, corrected by
# the callers, which know where the XZEROs are.
_RUN_MINUS_ONE = bytes((b & 0x3F) if b < 0x40 else (b & 3) if b >= 0x80 else 0
                       for b in range(256))
_NOT_VAL = bytes(range(0x80))
_VAL_BYTES = bytes(range(0x80, 0x100))


def sparse_histogram(data: bytes | bytearray) -> list[int]:
    """The register histogram of a sparse HLL (Redis's ``hllSparseRegHisto``); raises
    CorruptHLL when the runs do not add up to 16384 registers.  Counts opcode bytes with
    C-level helpers rather than walking the stream."""
    xzeros = _xzero_starts(data)
    if xzeros is None:
        return _walked_histogram(data)
    histogram = [0] * 64
    # The one-byte opcodes: everything but the XZEROs' two bytes.
    pieces = []
    position = HEADER_SIZE
    for start in xzeros:
        pieces.append(data[position:start])
        position = start + 2
    pieces.append(data[position:])
    singles = b"".join(pieces)
    zeros = sum(xzeros.values())
    values = singles.translate(None, _NOT_VAL)
    zero_bytes = singles.translate(None, _VAL_BYTES)
    zeros += sum(zero_bytes.translate(_RUN_MINUS_ONE)) + len(zero_bytes)
    covered = zeros
    for byte, found in Counter(values).items():
        run = ((byte & 3) + 1) * found
        histogram[((byte >> 2) & 0x1F) + 1] += run
        covered += run
    histogram[0] = zeros
    if covered != REGISTERS:
        raise CorruptHLL
    return histogram


def _walked_histogram(data: bytes | bytearray) -> list[int]:
    histogram = [0] * 64
    covered = 0
    for _kind, run, value in sparse_opcodes(data):
        covered += run
        histogram[value] += run
    if covered != REGISTERS:
        raise CorruptHLL
    return histogram


def sparse_to_raw(data: bytes | bytearray) -> bytes:
    """One register per byte from a sparse stream.  Any run past the last register, or
    runs that stop short of it, make it CorruptHLL: the checks of ``hllMerge`` and
    ``hllSparseToDense`` in Debian's Redis 7.0.15, which carries the CVE-2025-32023 fix
    (an opcode after a complete stream is refused, not ignored)."""
    raw = bytearray(REGISTERS)
    index = 0
    for kind, run, value in sparse_opcodes(data):
        if index + run > REGISTERS:
            raise CorruptHLL
        if kind == "v":
            raw[index:index + run] = bytes((value,)) * run
        index += run
    if index != REGISTERS:
        raise CorruptHLL
    return bytes(raw)


def sparse_to_dense(data: bytes | bytearray) -> bytearray:
    """The dense form of a sparse HLL: the header is kept (the cached cardinality too)
    with the encoding byte changed.  Raises CorruptHLL."""
    raw = sparse_to_raw(data)
    dense = bytearray(data[:HEADER_SIZE])
    dense[4] = DENSE
    dense += raw_to_dense_registers(raw)
    return dense


def _val(value: int, run: int) -> int:
    return 0x80 | ((value - 1) << 2) | (run - 1)


def _zeros(run: int) -> bytes:
    if run > SPARSE_ZERO_MAX_LEN:
        return bytes((0x40 | ((run - 1) >> 8), (run - 1) & 0xFF))
    return bytes((run - 1,))


class SparseCursor:
    """Where a walk of increasing register indexes may resume in a sparse stream (PFMERGE
    sets registers in order): the start of an opcode and its first register, taken two
    opcodes before the last one changed, so a later walk still finds the same neighbours."""

    __slots__ = ("position", "first")

    def __init__(self) -> None:
        self.position = HEADER_SIZE
        self.first = 0


# Bytes summed per step when looking for the opcode of a register: coarse, then fine.
_LOCATE_STEPS = (256, 32)
# Bit k of every byte of a chunk (one byte more than the coarse step: an XZERO may
# lengthen a chunk by one).
_BIT_MASKS = tuple(int.from_bytes(bytes((1 << bit,)) * (_LOCATE_STEPS[0] + 1), "little")
                   for bit in range(6))


def _byte_sum(chunk: bytes) -> int:
    """The sum of bytes below 64, bit by bit: six masks and popcounts on one integer."""
    value = int.from_bytes(chunk, "little")
    return sum((value & mask).bit_count() << bit for bit, mask in enumerate(_BIT_MASKS))


def locate(data: bytes | bytearray, index: int) -> SparseCursor | None:
    """Where :func:`sparse_set` may start walking to reach register ``index``: an opcode
    start (with its first register) at least one opcode before the one covering it, so the
    walk still sees that opcode's predecessor.  Found by summing run lengths a chunk of
    bytes at a time in C, which spares a Python step per opcode of a long stream.  None
    when the stream ends in a cut XZERO (then the walk starts at the beginning)."""
    xzeros = _xzero_starts(data)
    if xzeros is None:
        return None
    positions = list(xzeros)
    runs = data.translate(_RUN_MINUS_ONE)
    end = len(data)
    covered = 0
    position = HEADER_SIZE
    cursor = SparseCursor()
    for size in _LOCATE_STEPS:
        while position < end:
            stop = min(position + size, end)
            if stop - 1 in xzeros:
                stop += 1  # never cut an XZERO in two
            total = _byte_sum(runs[position:stop]) + stop - position
            first = bisect_left(positions, position)
            while first < len(positions) and positions[first] < stop:
                start = positions[first]
                # Its two bytes were counted as two one-byte opcodes.
                total += xzeros[start] - 2 - runs[start + 1]
                first += 1
            if covered + total > index:
                break
            covered += total
            last = stop - 2 if stop - 2 in xzeros else stop - 1
            cursor.position = last
            cursor.first = covered - (xzeros[last] if last in xzeros else runs[last] + 1)
            position = stop
    return cursor


def sparse_set(data: bytearray, index: int, count: int, max_bytes: int,
               cursor: SparseCursor | None = None) -> tuple[int, bytearray]:
    """Raise register ``index`` of a sparse HLL to ``count`` as Redis's ``hllSparseSet``:
    (1 changed / 0 unchanged / -1 corrupt, the value), where the value may be a new dense
    bytearray when the change promotes it."""
    if count > SPARSE_VAL_MAX_VALUE:
        return _promote(data, index, count)
    end = len(data)
    position, first = (cursor.position, cursor.first) if cursor is not None else (HEADER_SIZE, 0)
    previous = before_previous = -1
    before_previous_first = previous_first = 0
    span = 0
    while position < end:
        op = data[position]
        size = 1
        if op & 0xC0 == 0:
            span = (op & 0x3F) + 1
        elif op & 0x80:
            span = (op & 3) + 1
        else:
            span = (((op & 0x3F) << 8) | _next_byte(data, position + 1)) + 1
            size = 2
        if index <= first + span - 1:
            break
        before_previous, before_previous_first = previous, previous_first
        previous, previous_first = position, first
        position += size
        first += span
    if span == 0 or position >= end:
        return -1, data
    if cursor is not None and before_previous >= 0:
        # Nothing before ``previous`` changes below, and the next (higher) index lies at or
        # after it: resuming one opcode earlier still sees the true previous opcode.
        cursor.position, cursor.first = before_previous, before_previous_first
    op = data[position]
    is_val = op & 0x80
    is_xzero = not is_val and op & 0x40
    if is_val:
        old = ((op >> 2) & 0x1F) + 1
        if old >= count:
            return 0, data
        run = (op & 3) + 1
        if run == 1:
            data[position] = _val(count, 1)
            return 1, _merge_values(data, previous)
    elif not is_xzero:
        run = (op & 0x3F) + 1
        if run == 1:
            data[position] = _val(count, 1)
            return 1, _merge_values(data, previous)
    # Split the run into (left part) VAL (right part).
    last = first + span - 1
    if is_val:
        current = ((op >> 2) & 0x1F) + 1
        seq = bytearray()
        if index != first:
            seq.append(_val(current, index - first))
        seq.append(_val(count, 1))
        if index != last:
            seq.append(_val(current, last - index))
    else:
        seq = bytearray()
        if index != first:
            seq += _zeros(index - first)
        seq.append(_val(count, 1))
        if index != last:
            seq += _zeros(last - index)
    old_size = 2 if is_xzero else 1
    delta = len(seq) - old_size
    if delta > 0 and end + delta > max_bytes:
        return _promote(data, index, count)
    following = position + old_size
    tail = data[following:end] if following < end else b""
    data[position:] = seq + tail
    del data[end + delta:]
    return 1, _merge_values(data, previous)


def _merge_values(data: bytearray, previous: int) -> bytearray:
    """Redis's step 4: from the opcode before the change, look at up to 5 opcodes and fuse
    adjacent VALs of one value while the run fits (at most 4), then mark the count stale."""
    position = previous if previous >= 0 else HEADER_SIZE
    end = len(data)
    budget = 5
    while position < end and budget:
        budget -= 1
        op = data[position]
        if op & 0xC0 == 0x40:
            position += 2
            continue
        if op & 0xC0 == 0:
            position += 1
            continue
        if position + 1 < end and data[position + 1] & 0x80:
            after = data[position + 1]
            value = ((op >> 2) & 0x1F) + 1
            if value == ((after >> 2) & 0x1F) + 1:
                run = (op & 3) + (after & 3) + 2
                if run <= SPARSE_VAL_MAX_LEN:
                    del data[position]
                    data[position] = _val(value, run)
                    end -= 1
                    continue
        position += 1
    invalidate(data)
    return data


def _promote(data: bytearray, index: int, count: int) -> tuple[int, bytearray]:
    try:
        dense = sparse_to_dense(data)
    except CorruptHLL:
        return -1, data
    dense_set(dense, index, count)
    return 1, dense
