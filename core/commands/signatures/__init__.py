"""What every Redis 7.0 command and subcommand looks like to a client: its arguments, the
version that brought it, and a one-line summary in this project's words.

One module per Redis command group (``string.py``, ``sorted_set.py``...), each a tuple of
:func:`doc` calls.  The registry (:mod:`trioredis.commands`) says what a command DOES here
(arity, flags, keys, handler); a signature says how it is CALLED, the facts redis-cli needs
for its hints and COMMAND DOCS returns.  Signatures exist for commands not implemented yet:
they wait for their command, and COMMAND output only ever shows registered commands.

A signature also declares the command's key specs (``keys``: where its keys are and what it
does with each, Redis 7.0's facts; COMMAND INFO and COMMAND GETKEYS read them), and a
subcommand's the facts the registry does not declare for it (its ``arity`` and ``flags``).  ``tips`` are the
hints Redis gives cluster clients (``nondeterministic_output``, ``request_policy:...``).

The key specs are the one source of each command's key facts: the registry reads them
when the commands register (positions, a ``numkeys`` finder, what each key needs for ACL
checks and tracking), so the modules are imported once, at start-up, and cached.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib

from .arguments import Arg, ArgType, KeySpec, Signature

__all__ = ["Arg", "ArgType", "KeySpec", "Signature", "key_specs", "signatures"]

# One module per Redis group, named as the group with "_" for "-".
GROUP_MODULES = ("bitmap", "cluster", "connection", "generic", "geo", "hash", "hyperloglog",
                 "list", "pubsub", "scripting", "server", "set", "sorted_set", "stream",
                 "string", "transactions")


@functools.cache
def signatures() -> dict[str, Signature]:
    """Every signature by name (``get``, ``config|get``), each with its group."""
    found: dict[str, Signature] = {}
    for module_name in GROUP_MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        for signature in module.SIGNATURES:
            if signature.name in found:
                raise ValueError(f"two signatures for {signature.name!r}")
            found[signature.name] = dataclasses.replace(signature, group=module.GROUP)
    return found


@functools.cache
def key_specs() -> dict[str, tuple[KeySpec, ...]]:
    """The key specs of every command and subcommand that has keys (or channels), by name."""
    return {name: sig.keys for name, sig in signatures().items() if sig.keys}
