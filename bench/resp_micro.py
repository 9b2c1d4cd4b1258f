"""In-process microbenchmark of the RESP hot path (no sockets): the request parser fed a
pipeline of 50 SET/GET commands, and the reply encoder on the replies such a pipeline gets.

Run: ``.venv/bin/python bench/resp_micro.py``.  Prints microseconds per pipeline (best of
several rounds, so other processes' noise counts as little as it can); compare two checkouts
on the same machine, one right after the other.
"""

from __future__ import annotations

import timeit

from trioredis.resp import ExactParser, Map, RequestParser, encode, split_args

PIPELINE = 50
ROUNDS = 7


def _pipeline() -> bytes:
    out = bytearray()
    for i in range(PIPELINE // 2):
        key = b"key:%06d" % i
        value = b"v" * 32
        out += b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)
        out += b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)
    return bytes(out)


DATA = _pipeline()
INLINE = b"SET key:000001 " + b'"a \\x41 quoted\\n value" ' + b"'single'\r\n"
REPLIES: list[object] = [b"OK", b"v" * 32] * (PIPELINE // 2)
REPLY_KINDS: list[object] = [7, None, [b"a", b"b", 3], Map({b"k": b"v", b"n": 1}), 1.5]


def parse_hiredis_path() -> int:
    parser = RequestParser()
    parser.feed(DATA)
    count = 0
    while parser.gets() is not None:
        count += 1
    return count


def parse_exact_path() -> int:
    parser = ExactParser()
    parser.feed(DATA)
    count = 0
    while parser.gets() is not None:
        count += 1
    return count


def encode_replies() -> int:
    return sum(len(encode(reply)) for reply in REPLIES)


def encode_reply_kinds() -> int:
    return sum(len(encode(reply, True)) for reply in REPLY_KINDS * 10)


def split_inline() -> int:
    return sum(len(split_args(INLINE)) for _ in range(PIPELINE))


CASES = {
    "parse 50 SET/GET (hiredis path)": parse_hiredis_path,
    "parse 50 SET/GET (ExactParser)": parse_exact_path,
    "encode 50 replies (OK/bulk)": encode_replies,
    "encode 50 replies (int/nil/array/map/double, RESP3)": encode_reply_kinds,
    "split_args 50 quoted inline lines": split_inline,
}


def main() -> None:
    assert parse_hiredis_path() == PIPELINE and parse_exact_path() == PIPELINE
    for name, case in CASES.items():
        timer = timeit.Timer(case)
        number, _ = timer.autorange()
        best = min(timer.repeat(ROUNDS, number)) / number
        print(f"{best * 1e6:9.2f} us  {name}")


if __name__ == "__main__":
    main()
