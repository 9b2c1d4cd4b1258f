"""Bitmap commands: SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO.

A bitmap is a string (``bytes``, like every string here); bit 0 is the most significant bit
of byte 0, as in Redis.  Replies and errors follow Redis 7.0's ``bitops.c``:

- A bit offset is refused past ``proto-max-bulk-len`` bytes (512 MB by default: bits up to
  2**32 - 1), except while loading a file we wrote.  Writes grow the string with zero bytes.
- Whole-string work runs in C: a range is one slice, counting is ``int.bit_count`` of the
  slice read as one integer, BITOP is one integer operation per source, BITPOS compares
  64 KB blocks with a block of zeros (or ones).  Nothing loops in Python per byte.
- Writes propagate as sent (each is deterministic), only when they changed something: a
  SETBIT of the bit's current value changes nothing (Redis 7.0 does not count it).  Keyspace
  events as Redis 7.0 names them: ``setbit`` (SETBIT, and BITFIELD when a write grew the
  string or changed a field), ``set`` for the BITOP destination, ``del`` when BITOP's result
  is empty and removed the destination.
"""

from __future__ import annotations

from .. import errors
from ..encodings import mark_raw
from ..errors import CommandError
from . import command
from .args import INT64_MAX, parse_int
from .keys import read_key
from .strings import notify

BIT_OFFSET_ERROR = "ERR bit offset is not an integer or out of range"
BIT_VALUE_ERROR = "ERR bit is not an integer or out of range"
BIT_ARGUMENT_ERROR = "ERR The bit argument must be 1 or 0."
BITOP_NOT_ONE_KEY = "ERR BITOP NOT must be called with a single source key."
BITFIELD_TYPE_ERROR = (
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported "
    "but i64 is."
)
BITFIELD_OVERFLOW_ERROR = "ERR Invalid OVERFLOW type specified"
BITFIELD_RO_ERROR = "ERR BITFIELD_RO only supports the GET subcommand"

_UINT64 = 1 << 64


def _string(ctx, key: bytes, reading: bool = True) -> bytes | None:
    """The string at ``key``: None when missing, WRONGTYPE for another type.  ``reading``
    counts a keyspace hit or miss (Redis's lookupKeyRead); writers look up silently."""
    value = read_key(ctx, key) if reading else ctx.db.get(key)
    if value is not None and value.__class__ is not bytes:
        raise CommandError(errors.WRONGTYPE)
    return value


def _bit_offset(ctx, raw: bytes, width: int = 0) -> int:
    """A bit offset as Redis's ``getBitOffsetFromArgument`` reads it.  With ``width`` (a
    BITFIELD type's bits), ``#n`` means the n-th field of that width: n * width, wrapping as
    C's 64-bit multiplication does, so a huge ``#n`` fails like in Redis."""
    by_field = width > 0 and raw[:1] == b"#"
    offset = parse_int(raw[1:] if by_field else raw, BIT_OFFSET_ERROR)
    if by_field:
        offset = _wrap_int64(offset * width)
    if offset < 0 or ((offset >> 3) >= ctx.config.proto_max_bulk_len
                      and not ctx.client.is_loader):
        raise CommandError(BIT_OFFSET_ERROR)
    return offset


def _wrap_int64(value: int) -> int:
    value &= _UINT64 - 1
    return value - _UINT64 if value > INT64_MAX else value


# --- SETBIT / GETBIT -----------------------------------------------------------------------


def setbit(ctx, argv):
    offset = _bit_offset(ctx, argv[2])
    on = parse_int(argv[3], BIT_VALUE_ERROR)
    if on & ~1:
        raise CommandError(BIT_VALUE_ERROR)
    key = argv[1]
    old = _string(ctx, key, reading=False)
    current = old or b""
    index, shift = offset >> 3, 7 - (offset & 7)
    if index >= len(current):
        # Growing: the new bytes are zeros, so the old bit is 0.
        value = b"".join((current, bytes(index - len(current)), bytes((on << shift,))))
        previous = 0
    else:
        byte = current[index]
        previous = (byte >> shift) & 1
        if previous == on:
            # Nothing changes: Redis 7.0 neither notifies nor propagates (but has made
            # the string a raw copy to edit).
            mark_raw(ctx.db, key)
            return previous
        changed = bytes(((byte & ~(1 << shift)) | (on << shift),))
        # One copy of the string: join reads the two sides through a view (slicing bytes
        # would copy them first, and ``+`` again).
        with memoryview(current) as view:
            value = b"".join((view[:index], changed, view[index + 1:]))
    ctx.db.set(key, value, keep_ttl=True)
    mark_raw(ctx.db, key)
    ctx.dirty += 1
    notify(ctx, "$", b"setbit", key)
    return previous


def getbit(ctx, argv):
    offset = _bit_offset(ctx, argv[2])
    value = _string(ctx, argv[1])
    if value is None:
        return 0
    index = offset >> 3
    if index >= len(value):
        return 0
    return (value[index] >> (7 - (offset & 7))) & 1


# --- ranges (BITCOUNT, BITPOS) -------------------------------------------------------------


def _unit(raw: bytes) -> bool:
    """BIT or BYTE (any case): True for BIT."""
    unit = raw.lower()
    if unit == b"bit":
        return True
    if unit == b"byte":
        return False
    raise CommandError(errors.SYNTAX)


def _bit_range(start: int, end: int, size: int, in_bits: bool) -> tuple[int, int]:
    """Redis's range arithmetic on ``size`` bytes (negative indexes from the end, clamped),
    as an inclusive range of absolute bit positions; empty when first > last."""
    total = size * 8 if in_bits else size
    if start < 0:
        start += total
    if end < 0:
        end += total
    start = max(start, 0)
    end = max(end, 0)
    end = min(end, total - 1)
    if in_bits:
        return start, end
    return start * 8, end * 8 + 7


def _count_bits(value: bytes, first: int, last: int) -> int:
    """Set bits at positions first..last (inclusive, 0 <= first <= last < len * 8)."""
    chunk = value[first >> 3 : (last >> 3) + 1]  # the whole string is not copied
    # Little-endian reads fastest, and byte order does not matter to a count; the bits of the
    # edge bytes outside the range are taken off after.
    count = int.from_bytes(chunk, "little").bit_count()
    before = ~(0xFF >> (first & 7)) & 0xFF
    after = (1 << (7 - (last & 7))) - 1
    return count - (chunk[0] & before).bit_count() - (chunk[-1] & after).bit_count()


def bitcount(ctx, argv):
    value = _string(ctx, argv[1])
    if value is None:
        return 0  # Redis 7.0 answers 0 for a missing key before it reads the arguments
    if len(argv) == 2:
        first, last = 0, len(value) * 8 - 1
    elif len(argv) in (4, 5):
        start = parse_int(argv[2])
        end = parse_int(argv[3])
        if start < 0 and end < 0 and start > end:
            return 0
        in_bits = _unit(argv[4]) if len(argv) == 5 else False
        first, last = _bit_range(start, end, len(value), in_bits)
    else:
        raise CommandError(errors.SYNTAX)
    if first > last:
        return 0
    return _count_bits(value, first, last)


# BITPOS scans for the first byte that is not all zeros (or all ones) a block at a time: one
# slice and one memcmp per 64 KB, then ``lstrip`` inside the block that differs.
_SCAN_BLOCK = 1 << 16
_UNIFORM_BLOCKS = {0: bytes(_SCAN_BLOCK), 0xFF: b"\xff" * _SCAN_BLOCK}


def _first_byte_not(value: bytes, start: int, end: int, uniform: int) -> int:
    """The index of the first byte in ``value[start:end]`` other than ``uniform``, or -1."""
    full = _UNIFORM_BLOCKS[uniform]
    position = start
    while position < end:
        stop = min(position + _SCAN_BLOCK, end)
        block = value[position:stop]
        if block != (full if stop - position == _SCAN_BLOCK else full[: stop - position]):
            return position + len(block) - len(block.lstrip(full[:1]))
        position = stop
    return -1


def _first_bit(value: bytes, bit: int, first: int, last: int) -> int:
    """The position of the first ``bit`` in positions first..last, or -1."""
    first_byte, last_byte = first >> 3, last >> 3
    head = 0xFF >> (first & 7)  # the bits of the first byte inside the range
    tail = (0xFF << (7 - (last & 7))) & 0xFF  # those of the last byte

    def matching(index: int, mask: int) -> int:
        byte = value[index]
        return (byte if bit else ~byte) & mask

    found = matching(first_byte, head & (tail if first_byte == last_byte else 0xFF))
    if found:
        return first_byte * 8 + 8 - found.bit_length()
    if first_byte == last_byte:
        return -1
    index = _first_byte_not(value, first_byte + 1, last_byte, 0 if bit else 0xFF)
    if index >= 0:
        return index * 8 + 8 - matching(index, 0xFF).bit_length()
    found = matching(last_byte, tail)
    if found:
        return last_byte * 8 + 8 - found.bit_length()
    return -1


def bitpos(ctx, argv):
    bit = parse_int(argv[2])
    if bit not in (0, 1):
        raise CommandError(BIT_ARGUMENT_ERROR)
    value = _string(ctx, argv[1])
    if value is None:
        # A missing key is an endless run of zeros.
        return -1 if bit else 0
    end_given = False
    if len(argv) == 3:
        first, last = 0, len(value) * 8 - 1
    elif len(argv) in (4, 5, 6):
        start = parse_int(argv[3])
        in_bits = _unit(argv[5]) if len(argv) == 6 else False
        if len(argv) >= 5:
            end = parse_int(argv[4])
            end_given = True
        else:
            end = -1
        first, last = _bit_range(start, end, len(value), in_bits)
    else:
        raise CommandError(errors.SYNTAX)
    if first > last:
        return -1
    found = _first_bit(value, bit, first, last)
    if found < 0 and bit == 0 and not end_given:
        # No clear bit in the string: the first one is right after it (zero padding), unless
        # the caller bounded the range.
        return last + 1
    return found


# --- BITOP ---------------------------------------------------------------------------------


_BITOPS = (b"and", b"or", b"xor", b"not")


def bitop(ctx, argv):
    operation = argv[1].lower()
    if operation not in _BITOPS:
        raise CommandError(errors.SYNTAX)
    destination, sources = argv[2], argv[3:]
    if operation == b"not" and len(sources) != 1:
        raise CommandError(BITOP_NOT_ONE_KEY)
    values = [_string(ctx, key) or b"" for key in sources]
    size = max(len(value) for value in values)
    db = ctx.db
    if size == 0:
        if db.delete(destination):
            ctx.dirty += 1
            notify(ctx, "g", b"del", destination)
        return 0
    # Little-endian integers: a shorter string is zero-padded at its end for free.
    numbers = [int.from_bytes(value, "little") for value in values]
    result = numbers[0]
    if operation == b"and":
        for number in numbers[1:]:
            result &= number
    elif operation == b"or":
        for number in numbers[1:]:
            result |= number
    elif operation == b"xor":
        for number in numbers[1:]:
            result ^= number
    else:
        result ^= (1 << (size * 8)) - 1
    db.set(destination, result.to_bytes(size, "little"))
    mark_raw(db, destination)  # Redis stores BITOP's result as a raw string
    ctx.dirty += 1
    notify(ctx, "$", b"set", destination)
    return size


# --- BITFIELD ------------------------------------------------------------------------------

_WRAP, _SAT, _FAIL = 0, 1, 2
_OVERFLOWS = {b"wrap": _WRAP, b"sat": _SAT, b"fail": _FAIL}
_GET, _SET, _INCRBY = 0, 1, 2


def _field_type(raw: bytes) -> tuple[bool, int]:
    """``i<bits>`` (1..64) or ``u<bits>`` (1..63): (signed, bits).  The sign letter is
    lowercase only, as in Redis; u64 is refused since the reply could not hold it."""
    signed = raw[:1] == b"i"
    if not signed and raw[:1] != b"u":
        raise CommandError(BITFIELD_TYPE_ERROR)
    # Redis reads the width as a C string: it ends at a NUL byte.
    bits = parse_int(raw[1:].split(b"\0", 1)[0], BITFIELD_TYPE_ERROR)
    if bits < 1 or bits > (64 if signed else 63):
        raise CommandError(BITFIELD_TYPE_ERROR)
    return signed, bits


class _PatchedString:
    """A string BITFIELD is writing: the stored bytes (never copied while the operations
    run), the size it grows to, and the bytes written so far.  :meth:`build` makes the new
    string in one pass, so a write to a 100 M bit bitmap copies it once, as SETBIT does."""

    __slots__ = ("base", "size", "patches")

    def __init__(self, base: bytes, size: int) -> None:
        self.base = base
        self.size = size
        self.patches: dict[int, int] = {}

    def _byte(self, index: int) -> int:
        byte = self.patches.get(index)
        if byte is None:
            byte = self.base[index] if index < len(self.base) else 0
        return byte

    def __getitem__(self, span: slice) -> bytes:
        """Bytes ``span`` (at most the 9 bytes a field covers), cut at the size."""
        return bytes(self._byte(i) for i in range(span.start, min(span.stop, self.size)))

    def __setitem__(self, span: slice, data: bytes) -> None:
        for index, byte in enumerate(data, span.start):
            self.patches[index] = byte

    def build(self) -> bytes:
        """The new string; the stored one itself when no byte changed and it did not grow."""
        base = self.base
        stored = len(base)
        changed = sorted(index for index, byte in self.patches.items()
                         if byte != (base[index] if index < stored else 0))
        if not changed and self.size == stored:
            return base
        pieces: list[bytes | memoryview] = []
        with memoryview(base) as view:

            def copy(start: int, stop: int) -> None:  # base bytes, then zeros past its end
                if start < stored:
                    pieces.append(view[start : min(stop, stored)])
                if stop > max(start, stored):
                    pieces.append(bytes(stop - max(start, stored)))

            position = 0
            for index in changed:
                copy(position, index)
                pieces.append(bytes((self.patches[index],)))
                position = index + 1
            copy(position, self.size)
            return b"".join(pieces)


def _read_field(value: bytes | _PatchedString, offset: int, bits: int, signed: bool) -> int:
    """The integer of ``bits`` bits at bit ``offset`` (bits past the end read as zeros)."""
    first, last = offset >> 3, (offset + bits - 1) >> 3
    chunk = value[first : last + 1]
    span = (last - first + 1) * 8
    number = int.from_bytes(chunk, "big") << (8 * (last - first + 1 - len(chunk)))
    number = (number >> (span - (offset & 7) - bits)) & ((1 << bits) - 1)
    if signed and number >> (bits - 1):
        number -= 1 << bits
    return number


def _write_field(value: _PatchedString, offset: int, bits: int, number: int) -> None:
    """Store the low ``bits`` bits of ``number`` at bit ``offset`` (the string is long enough)."""
    first, last = offset >> 3, (offset + bits - 1) >> 3
    span = (last - first + 1) * 8
    shift = span - (offset & 7) - bits
    mask = ((1 << bits) - 1) << shift
    chunk = int.from_bytes(value[first : last + 1], "big")
    chunk = (chunk & ~mask) | ((number << shift) & mask)
    value[first : last + 1] = chunk.to_bytes(last - first + 1, "big")


def _fit(number: int, bits: int, signed: bool, overflow: int) -> int | None:
    """``number`` (the exact result of a SET or INCRBY) made to fit the field as Redis's
    ``check(Un)signedBitfieldOverflow`` does: WRAP keeps the low bits (sign-extended when
    signed), SAT clamps, FAIL gives None.  An unsigned SET of a negative value counts as
    too large (Redis sees it as a huge unsigned number): SAT gives the maximum."""
    if signed:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1
    if low <= number <= high:
        return number
    if overflow == _FAIL:
        return None
    if overflow == _SAT:
        return high if number > high else low
    wrapped = number & ((1 << bits) - 1)
    if signed and wrapped >> (bits - 1):
        wrapped -= 1 << bits
    return wrapped


def _bitfield(ctx, argv, read_only: bool):
    operations: list[tuple[int, bool, int, int, int, int]] = []
    overflow = _WRAP
    writes = False
    highest = 0  # the last bit a write reaches
    index = 2
    while index < len(argv):
        left = len(argv) - index - 1
        name = argv[index].lower()
        if name == b"get" and left >= 2:
            opcode = _GET
        elif name == b"set" and left >= 3:
            opcode = _SET
        elif name == b"incrby" and left >= 3:
            opcode = _INCRBY
        elif name == b"overflow" and left >= 1:
            chosen = _OVERFLOWS.get(argv[index + 1].lower())
            if chosen is None:
                raise CommandError(BITFIELD_OVERFLOW_ERROR)
            overflow = chosen
            index += 2
            continue
        else:
            raise CommandError(errors.SYNTAX)
        signed, bits = _field_type(argv[index + 1])
        offset = _bit_offset(ctx, argv[index + 2], bits)
        amount = 0
        if opcode != _GET:
            writes = True
            highest = max(highest, offset + bits - 1)
            amount = parse_int(argv[index + 3])
        operations.append((opcode, signed, bits, offset, amount, overflow))
        index += 3 if opcode == _GET else 4
    key = argv[1]
    if not writes:
        value = _string(ctx, key) or b""
        return [_read_field(value, offset, bits, signed)
                for _, signed, bits, offset, _, _ in operations]
    if read_only:
        raise CommandError(BITFIELD_RO_ERROR)
    old = _string(ctx, key, reading=False)
    stored = old or b""
    # Room for the farthest write first, as Redis does: even a write that then fails
    # (OVERFLOW FAIL) leaves the string grown, or created.
    grown = len(stored) <= highest >> 3
    buffer = _PatchedString(stored, max(len(stored), (highest >> 3) + 1))
    replies: list[int | None] = []
    changes = 0
    for opcode, signed, bits, offset, amount, mode in operations:
        current = _read_field(buffer, offset, bits, signed)
        if opcode == _GET:
            replies.append(current)
            continue
        if not signed and opcode == _SET and amount < 0:
            amount += 1 << 64  # Redis reads the value as unsigned 64-bit
        target = current + amount if opcode == _INCRBY else amount
        fitted = _fit(target, bits, signed, mode)
        if fitted is None:
            replies.append(None)
            continue
        _write_field(buffer, offset, bits, fitted)
        replies.append(fitted if opcode == _INCRBY else current)
        # As Redis 7.0 counts changes: a write that grew the string or changed the field.
        if grown or fitted != current:
            changes += 1
    new = buffer.build()
    if old is None or new is not old:
        ctx.db.set(key, new, keep_ttl=True)
        # Redis grows the string even when every write failed, and then neither counts a
        # change nor propagates it: the AOF would miss the zero bytes.  Counted here (one
        # change), so the file always holds what memory holds.
        ctx.dirty += max(changes, 1)
    elif changes:
        ctx.dirty += changes
    mark_raw(ctx.db, key)  # a write made the string a raw copy, even one that then failed
    if changes:
        notify(ctx, "$", b"setbit", key)
    return replies


def bitfield(ctx, argv):
    return _bitfield(ctx, argv, read_only=False)


def bitfield_ro(ctx, argv):
    return _bitfield(ctx, argv, read_only=True)


def register(registry):
    group = "bitmap"
    registry.extend([
        command("setbit", 4, "write denyoom", setbit, group=group),
        command("getbit", 3, "readonly fast", getbit, group=group),
        command("bitcount", -2, "readonly", bitcount, group=group),
        command("bitpos", -3, "readonly", bitpos, group=group),
        # Only the destination is signalled as changed (WATCH), as Redis's handler does: the
        # key specs say what each key needs, not which keys the handler signals.
        command("bitop", -4, "write denyoom", bitop, group=group,
                write_keys=lambda argv: argv[2:3]),
        command("bitfield", -2, "write denyoom", bitfield, group=group),
        command("bitfield_ro", -2, "readonly fast", bitfield_ro, group=group),
    ])
