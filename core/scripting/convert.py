"""Values across the Lua boundary, with Redis 7.0's rules (``script_lua.c``).

Command reply -> Lua (what ``redis.call`` returns), by the protocol the script chose with
``redis.setresp``: integer -> number; bulk -> string; null bulk/array -> false (RESP2) or nil
(RESP3); status -> ``{ok=...}``; error -> ``{err=...}``; array -> table; RESP3 only: map ->
``{map={...}}``, set -> ``{set={k=true}}``, boolean -> boolean, double -> ``{double=n}``, big
number -> ``{big_number=s}``, verbatim -> ``{verbatim_string={format=..., string=...}}``,
attributes dropped.

Lua -> reply (what a script returns) is encoded to RESP by Lua code (``sandbox.py``'s
``encode_reply``, which reads tables raw, as Redis does), for the calling client:
string -> bulk; number -> integer (truncated); true -> 1 (or RESP3 true after
``setresp(3)``); false -> null (or RESP3 false after ``setresp(3)``); nil -> null; a table
holding ``err``/``ok``/``double``/``big_number``/``verbatim_string``/``map``/``set`` (checked
in that order) -> that reply; any other table -> an array up to its first nil.
"""

from __future__ import annotations

from typing import Any

from ..resp import ErrorReply, Raw, encode


def error_text(buffer: bytes) -> bytes:
    """The ``err`` field Redis stores for an error: ``-CODE message`` keeps its code, a bare
    message gets ``ERR``; trailing CR/LF trimmed (Redis's luaPushErrorBuff)."""
    if buffer.startswith(b"-"):
        code, sep, message = buffer[1:].partition(b" ")
        if not sep:
            code, message = b"ERR", buffer[1:]
    else:
        code, message = b"ERR", buffer
    return code + b" " + message.strip(b"\r\n")


def number_arg(value: float) -> bytes:
    """A Lua number as a command argument: ``%.17g``, as Redis formats it."""
    if isinstance(value, int) and -(10**16) < value < 10**16:
        return b"%d" % value
    return b"%.17g" % float(value)


class ToLua:
    """Command replies -> Lua values, for one interpreter."""

    def __init__(self, lua: Any) -> None:
        self.lua = lua
        self.table = lua.table
        self.table_from = lua.table_from

    def error_table(self, buffer: bytes) -> Any:
        return self.table_from({b"err": error_text(buffer)})

    def reply_error_table(self, buffer: bytes) -> Any:
        """A command's error reply: also marked ``ignore_error_stats_update`` (the command
        counted it already), with the fields set in Redis's order, so pairs() sees them so."""
        table = self.table()
        table[b"err"] = error_text(buffer)
        table[b"ignore_error_stats_update"] = True
        return table

    def reply(self, reply: Any, resp3: bool) -> Any:
        kind = reply.__class__
        if kind is int or kind is bytes:
            return reply
        if reply is None:
            return None if resp3 else False
        if kind is ErrorReply:
            return self.reply_error_table(b"-" + bytes(reply))
        data = reply if kind is Raw else encode(reply, resp3)
        value, _ = self._parse(data, 0, resp3)
        return value

    def _parse(self, data: bytes, pos: int, resp3: bool) -> tuple[Any, int]:
        end = data.index(b"\r\n", pos)
        kind = data[pos : pos + 1]
        line = data[pos + 1 : end]
        pos = end + 2
        if kind == b"$" or kind == b"=":
            length = int(line)
            if length < 0:
                return (None if resp3 else False), pos
            body = data[pos : pos + length]
            pos += length + 2
            if kind == b"=":
                return self.table_from({b"verbatim_string": self.table_from(
                    {b"format": body[:3], b"string": body[4:]})}), pos
            return body, pos
        if kind == b":":
            return int(line), pos
        if kind == b"+":
            return self.table_from({b"ok": line}), pos
        if kind == b"-":
            return self.reply_error_table(b"-" + line), pos
        if kind in (b"*", b"~", b"%", b">", b"|"):
            count = int(line)
            if count < 0:
                return (None if resp3 else False), pos
            if kind == b"%" or kind == b"|":
                mapping = self.table()
                for _ in range(count):
                    key, pos = self._parse(data, pos, resp3)
                    value, pos = self._parse(data, pos, resp3)
                    mapping[key] = value
                if kind == b"|":  # attributes are dropped: the reply follows them
                    return self._parse(data, pos, resp3)
                return self.table_from({b"map": mapping}), pos
            items = []
            for _ in range(count):
                item, pos = self._parse(data, pos, resp3)
                items.append(item)
            if kind == b"~":
                members = self.table()
                for item in items:
                    members[item] = True
                return self.table_from({b"set": members}), pos
            table = self.table()
            for index, item in enumerate(items, 1):
                table[index] = item
            return table, pos
        if kind == b"_":
            return None, pos
        if kind == b"#":
            return line == b"t", pos
        if kind == b",":
            return self.table_from({b"double": float(line)}), pos
        if kind == b"(":
            return self.table_from({b"big_number": line}), pos
        raise ValueError(f"unexpected reply type {kind!r}")
