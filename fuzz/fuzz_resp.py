"""Coverage-guided fuzz target (atheris/libFuzzer) for the request parser.

Each input is a byte stream plus the points where it is cut into ``recv`` pieces: the first
byte says how many cut points follow (0-7), each one byte (an offset into the stream, scaled).
The property is the one ``tests/test_fuzz_protocol.py`` checks with hypothesis:
:class:`trioredis.resp.RequestParser` fed the pieces returns the same commands, then the same
:class:`~trioredis.resp.ProtocolError`, as :class:`~trioredis.resp.ExactParser` (Redis's rules)
fed the whole stream; any other exception is a crash.

Run: ``fuzz/run.sh [seconds]`` (default 60).  A crash leaves ``crash-<sha1>`` in the current
directory; replay it with ``python3 fuzz/fuzz_resp.py crash-<sha1>``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from trioredis.resp import ExactParser, ProtocolError, RequestParser


def split(data: bytes) -> tuple[bytes, list[bytes]]:
    """The stream and its pieces, from the input's header (see the module docstring)."""
    if not data:
        return b"", []
    count = data[0] % 8
    header, stream = data[1 : 1 + count], data[1 + count :]
    points = sorted({(byte * len(stream)) // 255 for byte in header})
    pieces, start = [], 0
    for point in points + [len(stream)]:
        if point > start:
            pieces.append(stream[start:point])
            start = point
    return stream, pieces


def outcome(pieces: list[bytes], parser) -> tuple[list[list[bytes]], str | None]:
    """The commands ``parser`` returns from ``pieces``, then its protocol error if any."""
    found: list[list[bytes]] = []
    for piece in pieces:
        parser.feed(piece)
        while True:
            try:
                argv = parser.gets()
            except ProtocolError as error:
                return found, str(error)
            if argv is None:
                break
            found.append(argv)
    return found, None


def test_one_input(data: bytes) -> None:
    stream, pieces = split(data)
    exact = ExactParser()
    expected = outcome([stream] if stream else [], exact)
    got = outcome(pieces, RequestParser())
    # A bulk not followed by CRLF: both skip the two bytes, as Redis does, but hiredis may
    # read what follows differently (see ExactParser.loose_terminators); not crashing is all
    # that is asked of such streams.
    if got != expected and not exact.loose_terminators:
        raise AssertionError(f"pieces {pieces!r}: RequestParser {got!r} != ExactParser {expected!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
