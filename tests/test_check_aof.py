"""``trioredis-check-aof``: the console script, run as a user would, on real files."""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servers import console_script
from trioredis import encode_command
from trioredis.plugins.aof.loading import AofScanner
from trioredis.rdb import write_rdb

COMMANDS = [[b"SELECT", b"0"]] + [[b"SET", b"k%d" % i, b"v" * i] for i in range(30)]
WHOLE = b"".join(encode_command(argv) for argv in COMMANDS)


def check_aof_command() -> list[str]:
    """The console script as installed next to this Python (a venv's bin/ need not be on
    PATH when pytest runs as .venv/bin/python); never a copy found elsewhere on PATH."""
    return [console_script("trioredis-check-aof")]


def run(*args, stdin=""):
    return subprocess.run([*check_aof_command(), *map(str, args)], capture_output=True,
                          text=True, input=stdin, timeout=30)


def test_a_valid_file_is_reported_valid(tmp_path):
    path = tmp_path / "a.aof"
    path.write_bytes(WHOLE)
    result = run(path)
    assert result.returncode == 0
    assert f"size={len(WHOLE)}, ok_up_to={len(WHOLE)}, diff=0" in result.stdout
    assert "is valid" in result.stdout


def test_a_torn_tail_is_reported_and_fixed_with_y(tmp_path):
    path = tmp_path / "a.aof"
    torn = WHOLE + encode_command([b"SET", b"last", b"value"])[:11]
    path.write_bytes(torn)
    result = run(path)
    assert result.returncode == 1
    assert f"ok_up_to={len(WHOLE)}, diff=11" in result.stdout
    assert "Use the --fix option" in result.stdout
    assert path.read_bytes() == torn
    fixed = run("--fix", "-y", path)
    assert fixed.returncode == 0
    assert "removed 11 bytes" in fixed.stdout
    assert path.read_bytes() == WHOLE
    assert run(path).returncode == 0


def test_fix_asks_for_confirmation_and_a_no_leaves_the_file_alone(tmp_path):
    path = tmp_path / "a.aof"
    torn = WHOLE + b"*3\r\n$3\r\nSET"
    path.write_bytes(torn)
    refused = run("--fix", path, stdin="n\n")
    assert refused.returncode == 1
    assert "Continue? [y/N]" in refused.stdout
    assert path.read_bytes() == torn
    accepted = run("--fix", path, stdin="y\n")
    assert accepted.returncode == 0
    assert path.read_bytes() == WHOLE


def test_an_unfinished_transaction_is_cut_before_its_multi(tmp_path):
    path = tmp_path / "a.aof"
    block = b"".join(encode_command(argv) for argv in ([b"MULTI"], [b"SET", b"a", b"1"],
                                                       [b"INCR", b"b"]))
    path.write_bytes(WHOLE + block)  # every command whole, EXEC missing
    result = run(path)
    assert result.returncode == 1
    assert "MULTI without EXEC" in result.stdout
    assert run("--fix", "-y", path).returncode == 0
    assert path.read_bytes() == WHOLE


def test_damage_in_the_middle_names_its_offset(tmp_path):
    path = tmp_path / "a.aof"
    path.write_bytes(WHOLE + b"!garbage\r\n" + encode_command([b"SET", b"x", b"y"]))
    result = run(path)
    assert result.returncode == 1
    assert f"ok_up_to={len(WHOLE)}," in result.stdout
    assert re.search(rf"0x\s*{len(WHOLE):x}: Bad file format", result.stdout)


def test_usage_errors():
    assert run().returncode == 1
    assert run("--bogus", "x").returncode == 1
    assert run("/nonexistent/file.aof").returncode == 1


def test_the_cut_agrees_with_debian_redis_check_aof(tmp_path):
    if shutil.which("redis-check-aof") is None:
        pytest.skip("redis-check-aof is not installed")
    rng = random.Random(7)
    last = encode_command([b"SET", b"last", b"x" * 40])
    for cut in rng.sample(range(1, len(last)), 6):
        ours = tmp_path / f"ours{cut}.aof"
        theirs = tmp_path / f"theirs{cut}.aof"
        ours.write_bytes(WHOLE + last[:cut])
        theirs.write_bytes(WHOLE + last[:cut])
        assert run("--fix", "-y", ours).returncode == 0
        subprocess.run(["redis-check-aof", "--fix", str(theirs)], input="y\n", text=True,
                       capture_output=True, timeout=30, check=True)
        assert ours.read_bytes() == theirs.read_bytes() == WHOLE


# --- a file with an RDB preamble (Redis 4-6, aof-use-rdb-preamble yes) ------------------


def _preamble() -> bytes:
    """An RDB as redis-server writes it (trioredis.rdb's writer is byte-compatible): a few
    keys (one LZF-compressed), one with an expiry, and a function library."""
    out: list[bytes] = []
    data = {b"a": b"1", b"long": b"abc" * 50, b"b": b"v"}
    write_rdb(out.append, [(0, data, {b"a": 4102444800000})],
              functions=[b"#!lua name=lib\nredis.register_function('f', function() end)"])
    return b"".join(out)


PREAMBLE = _preamble()


def test_a_file_with_an_rdb_preamble_is_checked_through_it(tmp_path):
    path = tmp_path / "a.aof"
    path.write_bytes(PREAMBLE + WHOLE)
    result = run(path)
    assert result.returncode == 0, result.stdout
    assert "RDB preamble" in result.stdout
    size = len(PREAMBLE) + len(WHOLE)
    assert f"size={size}, ok_up_to={size}, diff=0" in result.stdout


def test_a_torn_tail_after_a_preamble_is_cut_at_the_file_offset(tmp_path):
    path = tmp_path / "a.aof"
    valid = PREAMBLE + WHOLE
    path.write_bytes(valid + encode_command([b"SET", b"k", b"v"])[:9])
    result = run(path)
    assert result.returncode == 1
    assert f"ok_up_to={len(valid)}, diff=9" in result.stdout
    assert run("--fix", "-y", path).returncode == 0
    assert path.read_bytes() == valid
    # Damage inside the commands is named at its offset in the file, not in the tail.
    path.write_bytes(PREAMBLE + b"!garbage\r\n")
    result = run(path)
    assert result.returncode == 1
    assert re.search(rf"0x\s*{len(PREAMBLE):x}: Bad file format", result.stdout)


@pytest.mark.parametrize("where", ["crc", "record", "truncated"])
def test_a_damaged_preamble_is_refused_and_never_cut(tmp_path, where):
    damaged = bytearray(PREAMBLE + WHOLE)
    if where == "crc":
        damaged[len(PREAMBLE) - 1] ^= 0x01
    elif where == "record":
        damaged[len(PREAMBLE) // 2] ^= 0x55
    else:
        damaged = damaged[:len(PREAMBLE) - 12]
    path = tmp_path / "a.aof"
    path.write_bytes(bytes(damaged))
    for args in ([path], ["--fix", "-y", path]):
        result = run(*args)
        assert result.returncode == 1
        assert "RDB preamble of AOF file is not sane" in result.stdout
    assert path.read_bytes() == bytes(damaged)
    if shutil.which("redis-check-aof") is not None:  # Redis's checker agrees: not valid
        theirs = subprocess.run(["redis-check-aof", str(path)], capture_output=True,
                                text=True, timeout=30)
        assert theirs.returncode != 0


def test_debian_redis_check_aof_agrees_on_a_torn_tail_after_a_preamble(tmp_path):
    if shutil.which("redis-check-aof") is None:
        pytest.skip("redis-check-aof is not installed")
    last = encode_command([b"SET", b"last", b"x" * 40])
    for cut in random.Random(11).sample(range(1, len(last)), 4):
        ours = tmp_path / f"ours{cut}.aof"
        theirs = tmp_path / f"theirs{cut}.aof"
        ours.write_bytes(PREAMBLE + WHOLE + last[:cut])
        theirs.write_bytes(PREAMBLE + WHOLE + last[:cut])
        assert run("--fix", "-y", ours).returncode == 0
        subprocess.run(["redis-check-aof", "--fix", str(theirs)], input="y\n", text=True,
                       capture_output=True, timeout=30, check=True)
        assert ours.read_bytes() == theirs.read_bytes() == PREAMBLE + WHOLE


# --- the scanner, sans-IO: every cut of a random AOF, in random feed slices --------------


_arg = st.binary(min_size=0, max_size=30)
_command = st.lists(_arg, min_size=1, max_size=4).map(lambda rest: [b"SET", *rest])
_block = st.lists(_command, min_size=1, max_size=3).map(lambda body: [[b"MULTI"], *body, [b"EXEC"]])
_entries = st.lists(st.one_of(_command.map(lambda c: [c]), _block), min_size=1, max_size=8)


def _scan(data: bytes, slice_size: int):
    scanner = AofScanner()
    seen = []
    for start in range(0, len(data), slice_size):
        scanner.feed(data[start:start + slice_size])
        seen.extend(scanner)
    return scanner.finish(data[scanner.consumed:]), seen


@settings(max_examples=150, deadline=None)
@given(entries=_entries, cut_fraction=st.floats(0, 1), slice_size=st.integers(1, 64))
def test_the_valid_part_of_a_cut_file_ends_at_the_last_whole_entry(entries, cut_fraction,
                                                                   slice_size):
    data = b""
    boundaries = [0]  # offsets where a whole entry (command or whole transaction) ends
    for entry in entries:
        data += b"".join(encode_command(argv) for argv in entry)
        boundaries.append(len(data))
    cut = int(len(data) * cut_fraction)
    end, _ = _scan(data[:cut], slice_size)
    expected = max(b for b in boundaries if b <= cut)
    assert end.valid_size == expected
    assert end.torn == (cut != expected)
    assert end.total_size == cut
