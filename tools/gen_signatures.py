"""Bootstrap ``core/commands/signatures/<group>.py`` from a running redis-server 7.0.

    python tools/gen_signatures.py PORT [SUMMARIES]

Only FACTS are taken from Redis: each command's and subcommand's group, version, argument
structure (names, types, tokens, optional/multiple/multiple_token, key spec index, versions
of arguments), doc flags, tips, key specs, and, for subcommands (the registry declares only
their arity), arity and flags (ACL categories are the ACL module's).  Redis's prose
(summaries, complexity, history, "replaced by" sentences, key spec notes) is NOT copied:
the summaries come from this project, either the files already in ``signatures/``
(regenerating keeps them) or ``SUMMARIES``, lines of ``name|summary`` (``config|get|summary``
for a subcommand); the rest is in ``REPLACED_BY`` and ``OWN_NOTES`` below.  Run once to bootstrap; after
that the signature files are the source and are edited by hand.
"""

from __future__ import annotations

import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "core", "commands", "signatures")
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from parity import parse_resp3, reply_end  # noqa: E402
from trioredis.commands import Flag  # noqa: E402

# What replaces a deprecated command, in this project's words.
REPLACED_BY = {
    "cluster|slaves": "CLUSTER REPLICAS",
    "cluster|slots": "CLUSTER SHARDS",
    "rpoplpush": "LMOVE source destination RIGHT LEFT",
    "brpoplpush": "BLMOVE source destination RIGHT LEFT timeout",
    "zrevrange": "ZRANGE ... REV",
    "zrevrangebylex": "ZRANGE ... BYLEX REV",
    "zrevrangebyscore": "ZRANGE ... BYSCORE REV",
    "zrangebyscore": "ZRANGE ... BYSCORE",
    "zrangebylex": "ZRANGE ... BYLEX",
    "georadius": "GEOSEARCH (or GEOSEARCHSTORE) ... FROMLONLAT ... BYRADIUS",
    "georadius_ro": "GEOSEARCH ... FROMLONLAT ... BYRADIUS",
    "georadiusbymember": "GEOSEARCH (or GEOSEARCHSTORE) ... FROMMEMBER ... BYRADIUS",
    "georadiusbymember_ro": "GEOSEARCH ... FROMMEMBER ... BYRADIUS",
    "hmset": "HSET with several field/value pairs",
    "substr": "GETRANGE",
    "getset": "SET ... GET",
    "slaveof": "REPLICAOF",
}

# Redis's notes on some key specs, said in this project's words.
OWN_NOTES = {
    "This command allows both access and modification of the key":
        "Reads, or changes, the key: its operations decide.",
    "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE":
        "The script decides what it does with its keys: assumed to change them.",
    "We cannot tell how the keys will be used so we assume the worst, RO and ACCESS":
        "The script decides how it reads its keys: assumed to read them all.",
    "RW and UPDATE because it changes the TTL": "Changes the key's expiry, hence RW and UPDATE.",
    "RW because it may change the internal representation of the key, and propagate to replicas":
        "May rewrite the HyperLogLog's representation (and propagate it), hence RW.",
    "RW and ACCESS due to the optional `GET` argument":
        "With GET it also returns the old value, hence RW and ACCESS.",
    "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive "
    "from the content of the key we sort":
        "BY and GET patterns name keys made of the sorted values: no rule finds them.",
    "For the optional STORE keyword. It is marked 'unknown' because the keyword can appear "
    "anywhere in the argument array":
        "STORE may come anywhere among the options, so its key has no fixed place.",
    "UPDATE instead of INSERT because of the optional trimming feature":
        "UPDATE rather than INSERT: the options may trim the stream.",
}
LINE_LENGTH = 100
# COMMAND INFO's flag names -> how declarations spell them (no_auth -> noauth).
DECLARED_FLAG = {flag.redis_name: flag.value for flag in Flag}
SIMPLE = {"key": "key", "string": "string", "integer": "integer", "double": "double",
          "pattern": "pattern", "unix-time": "unix_time"}


class Redis:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))

    def call(self, *args: str):
        words = [arg.encode() for arg in args]
        self.sock.sendall(b"*%d\r\n" % len(words)
                          + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))
        data = b""
        while True:
            data += self.sock.recv(1 << 20)
            try:
                end = reply_end(data, 0)
            except (ValueError, IndexError):
                continue
            if end is not None and end <= len(data):
                return parse_resp3(data[:end])


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def arg_source(arg: dict, indent: int) -> str:
    """One argument as a call of the signature helpers."""
    name, kind = text(arg[b"name"]), text(arg[b"type"])
    flags = {text(flag) for flag in arg.get(b"flags", ())}
    extra = []
    if kind == "pure-token":
        token = text(arg[b"token"])
        head = f"token({token!r}" + (f", name={name!r}" if name != token.lower() else "")
    elif kind in ("oneof", "block"):
        head = f"{kind}({name!r}"
        if b"token" in arg:
            extra.append(f"token={text(arg[b'token'])!r}")
    elif kind == "key":
        head = f"key({name!r}, {arg[b'key_spec_index']}"
        if b"token" in arg:
            extra.append(f"token={text(arg[b'token'])!r}")
    else:
        head = f"{SIMPLE[kind]}({name!r}"
        if b"token" in arg:
            extra.append(f"token={text(arg[b'token'])!r}")
    if b"key_spec_index" in arg and kind != "key":  # SORT's BY and GET patterns
        extra.append(f"key_spec_index={arg[b'key_spec_index']}")
    for flag in ("optional", "multiple", "multiple_token"):
        if flag in flags:
            extra.append(f"{flag}=True")
    if b"since" in arg:
        extra.append(f"since={text(arg[b'since'])!r}")
    if b"deprecated_since" in arg:
        extra.append(f"deprecated_since={text(arg[b'deprecated_since'])!r}")
    pad = " " * indent
    children = arg.get(b"arguments", ())
    if not children:
        line = pad + head + "".join(", " + e for e in extra) + ")"
        if len(line) <= LINE_LENGTH or not extra:
            return line
        return f"{pad}{head},\n{pad}    {', '.join(extra)})"
    inner = ",\n".join(arg_source(child, indent + 4) for child in children)
    tail = "".join(", " + e for e in extra)
    return f"{pad}{head},\n{inner},\n{pad}{tail[2:] + ')' if tail else ')'}"


def _search(kind: dict) -> str:
    """A begin_search or find_keys map as a helper call."""
    spec = {text(k): v for k, v in kind[b"spec"].items()}
    name = text(kind[b"type"])
    if name == "index":
        return f"at({spec['index']})"
    if name == "keyword":
        return f"after({text(spec['keyword'])!r}, {spec['startfrom']})"
    if name == "range":
        extra = ""
        if spec["limit"]:
            extra = f", {spec['keystep']}, {spec['limit']}"
        elif spec["keystep"] != 1:
            extra = f", {spec['keystep']}"
        return f"span({spec['lastkey']}{extra})"
    if name == "keynum":
        args = [spec["keynumidx"], spec["firstkey"], spec["keystep"]]
        while len(args) > 1 and args[-1] == 1:
            args.pop()
        return f"counted({', '.join(map(str, args))})"
    return "UNKNOWN"


def keys_source(specs: list) -> list[str]:
    """Each key spec as ``keyspec(flags, begin, find[, notes])``."""
    found = []
    for spec in specs:
        flags = " ".join(text(flag) for flag in spec[b"flags"])
        call = f"keyspec({flags!r}, {_search(spec[b'begin_search'])}, {_search(spec[b'find_keys'])}"
        if spec.get(b"notes"):
            call += f",\n                {OWN_NOTES[text(spec[b'notes'])]!r}"
        found.append(call + ")")
    return found


def doc_source(name: str, doc: dict, summary: str, info: list | None) -> str:
    facts = []
    flags = [text(flag) for flag in doc.get(b"doc_flags", ())]
    if flags:
        facts.append(f"doc_flags={' '.join(flags)!r}")
    if b"deprecated_since" in doc:
        facts.append(f"deprecated_since={text(doc[b'deprecated_since'])!r}")
    if name in REPLACED_BY:
        facts.append(f"replaced_by={REPLACED_BY[name]!r}")
    if info is not None:
        if "|" in name:
            facts.append(f"arity={info[1]}")
            flags = " ".join(DECLARED_FLAG[text(f)] for f in info[2])
            facts.append(f"flags={flags!r}")
        if info[7]:
            facts.append(f"tips={' '.join(text(t) for t in info[7])!r}")
        if info[8]:
            specs = keys_source(info[8])
            facts.append("keys=(" + ",\n              ".join(specs) + ("," if len(specs) == 1 else "")
                         + ")")
    lines = [f"    doc({name!r}, {summary!r}, {text(doc[b'since'])!r}"]
    if len(lines[0]) >= LINE_LENGTH:  # a comma follows
        lines = [f"    doc({name!r},\n        {summary!r},\n        {text(doc[b'since'])!r}"]
    args = [arg_source(arg, 8) for arg in doc.get(b"arguments", ())]
    body = ",\n".join(args + ["        " + fact for fact in facts])
    if body:
        return lines[0] + ",\n" + body + "),"
    return lines[0] + "),"


def _import_order(name: str) -> tuple:
    """isort's order: constants first, then the rest case-sensitively."""
    return (not name.isupper(), name)


def main() -> None:
    port = int(sys.argv[1])
    summaries: dict[str, str] = {}
    if len(sys.argv) > 2:
        with open(sys.argv[2], encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    name, _, summary = line.rstrip("\n").rpartition("|")
                    summaries[name] = summary
    else:
        from trioredis.commands.signatures import signatures

        summaries = {name: sig.summary for name, sig in signatures().items()}
    redis = Redis(port)
    redis.call("HELLO", "3")
    docs = redis.call("COMMAND", "DOCS")
    infos = {}
    for entry in redis.call("COMMAND"):
        infos[text(entry[0])] = entry
        for sub in entry[9]:
            infos[text(sub[0])] = sub
    by_group: dict[str, list[str]] = {}
    for raw_name in sorted(docs):
        name, doc = text(raw_name), docs[raw_name]
        group = text(doc[b"group"])
        entries = by_group.setdefault(group, [])
        entries.append(doc_source(name, doc, summaries[name], infos.get(name)))
        for sub_name in sorted(doc.get(b"subcommands", {})):
            sub = doc[b"subcommands"][sub_name]
            entries.append(doc_source(text(sub_name), sub, summaries[text(sub_name)],
                                      infos.get(text(sub_name))))
    for group, entries in by_group.items():
        module = group.replace("-", "_")
        path = os.path.join(OUT, f"{module}.py")
        body = "\n".join(entries)
        used = sorted(helper for helper in ("after", "at", "block", "counted", "double",
                                            "integer", "key", "keyspec", "oneof", "pattern",
                                            "span", "string", "token", "unix_time")
                      if f"{helper}(" in body)
        if "UNKNOWN" in body:
            used.append("UNKNOWN")
        names = sorted(["doc", *used], key=_import_order)
        imports = f"from .arguments import {', '.join(names)}"
        if len(imports) > LINE_LENGTH:
            imports = "from .arguments import (\n" + "".join(f"    {n},\n" for n in names) + ")"
        source = (
            f'"""Signatures of Redis 7.0\'s ``{group}`` commands: arguments, versions, and a '
            f'summary in\nthis project\'s words.  See :mod:`trioredis.commands.signatures`."""'
            f"\n\n{imports}\n\n"
            f"GROUP = {group!r}\n\nSIGNATURES = (\n{body}\n)\n")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
        print(path, len(entries))


if __name__ == "__main__":
    main()
