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
