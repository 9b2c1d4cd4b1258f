"""ACL users kept outside the dataset: the ``aclfile`` (ACL LOAD / ACL SAVE, and start-up)
and the ``user`` lines of the config file.

The file holds one ``user <name> <rules...>`` line per user, the format ACL LIST prints.
Loading is all or nothing, as Redis's: every line is checked against a fresh set of users,
each problem is collected with its file and line, and only a file without problems replaces
the users (a file without a ``default`` user gets a fresh one: everything, ``nopass``).
Redis splits a line on single spaces (no quoting): doubled spaces make empty words (an empty
user name, an empty rule that does nothing); so does this.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from .acl import User, merge_selector_arguments
from .errors import CommandError

if TYPE_CHECKING:
    from .acl import AccessControl
    from .commands import CommandRegistry

NO_ACL_FILE = (
    "ERR This Redis instance is not configured to use an ACL file. You may want to specify "
    "users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a "
    "Redis configuration file set) in order to store users in the Redis configuration.")
SAVE_FAILED = ("ERR There was an error trying to save the ACLs. Please check the server logs "
               "for more information")
NOTHING_CHANGED = ("WARNING: ACL errors detected, no change to the previously active ACL rules "
                   "was performed")
UNKNOWN_NAME = "Unknown command or category name in ACL"
# What C's isspace() calls space (a user name may hold none of these, nor NUL).
_SPACES = frozenset(" \t\n\v\f\r\0")


class AclFileError(Exception):
    """The problems of a file, in Redis's one-line wording (the ACL LOAD error text)."""


def default_user(registry: CommandRegistry) -> User:
    """The user a file without ``default`` gets, as a fresh server has it."""
    user = User("default")
    for rule in ("on", "nopass", "~*", "&*", "+@all"):
        user.apply(rule, registry)
    return user


def build_user(name: str, rules: list[str], registry: CommandRegistry) -> User:
    """A new user with ``rules`` applied (the config file's ``user`` line); ValueError with
    the rule and Redis's explanation for the first that fails."""
    user = User(name)
    try:
        merged = merge_selector_arguments(rules)
    except CommandError as error:
        raise ValueError(error.message.removeprefix("ERR ")) from None
    for rule in merged:
        try:
            user.apply(rule, registry)
        except ValueError as error:
            raise ValueError(f"Error in user declaration '{rule}': {error}") from None
    return user


def parse_acl_file(text: str, filename: str, registry: CommandRegistry) -> dict[str, User]:
    """Every user of an ACL file's text, or AclFileError with all its problems."""
    users: dict[str, User] = {}
    problems: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip(" \t\r\n")
        if not line:
            continue
        words = line.split(" ")  # doubled spaces make empty words, as in Redis
        if len(words) < 2 or words[0] != "user":
            problems.append(f"{filename}:{number} should start with user keyword followed by "
                            "the username. ")
            continue
        name = words[1]
        if any(char in _SPACES for char in name):
            # Redis's text opens with a stray quote here; kept, as clients may match on it.
            problems.append(f"'{filename}:{number}: username '{name}' contains invalid "
                            "characters. ")
            continue
        if name in users:
            problems.append(f"WARNING: Duplicate user '{name}' found on line {number}. ")
            continue
        user = users[name] = User(name)
        try:
            rules = merge_selector_arguments(words[2:])
        except CommandError:
            problems.append(f"{filename}:{number}: Unmatched parenthesis in selector "
                            "definition.")
            continue
        for rule in rules:
            rule = rule.strip("\t\r\n")
            if not rule:
                continue
            try:
                user.apply(rule, registry)
            except ValueError as error:
                text = str(error)
                if text == UNKNOWN_NAME:  # Redis names the rule for this one only
                    text = f"Error in applying operation '{rule}': {text}"
                problems.append(f"{filename}:{number}: {text}. ")
    if problems:
        raise AclFileError("".join(problems) + NOTHING_CHANGED)
    if "default" not in users:
        users["default"] = default_user(registry)
    return users


def read_acl_file(filename: str, registry: CommandRegistry) -> dict[str, User]:
    """The users of the file at ``filename`` (see :func:`parse_acl_file`)."""
    try:
        with open(filename, "rb") as handle:
            text = handle.read().decode("utf-8", "surrogateescape")
    except OSError as error:
        raise AclFileError(f"Error loading ACLs, opening file '{filename}': "
                           f"{os.strerror(error.errno or 0)}") from None
    return parse_acl_file(text, filename, registry)


def acl_file_text(users: dict[str, User], registry: CommandRegistry) -> str:
    """What ACL SAVE writes: ACL LIST's lines, one per user, by name."""
    return "".join(users[name].describe(registry) + "\n" for name in sorted(users))


def write_acl_file(filename: str, text: str) -> bool:
    """Replace the file atomically (a temporary file beside it, renamed over it).  Redis
    does not fsync it; we do, so a SAVE that answered OK survives a power cut.  Blocking:
    call it from a worker thread."""
    temp = f"{filename}.tmp-{os.getpid()}-{int(time.time() * 1000)}"
    try:
        with open(temp, "wb") as handle:
            handle.write(text.encode("utf-8", "surrogateescape"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, filename)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass
        return False
    directory = os.open(os.path.dirname(os.path.abspath(filename)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True


def load_startup_users(acl: AccessControl, declared: tuple[tuple[str, ...], ...],
                       aclfile: str, registry: CommandRegistry) -> None:
    """Start-up, in Redis's order: the config file's ``user`` lines (a declared ``default``
    replaces the built-in one), then the aclfile's users.  AclFileError with the text Redis
    logs when a rule or the file is bad (the server then refuses to start)."""
    for name, *rules in declared:
        if name in acl.users:  # ``default``: reset first, as Redis resets a declared user
            rules = ["reset", *rules]
        try:
            user = build_user(name, rules, registry)
        except ValueError as error:
            raise AclFileError(str(error)) from None
        acl.replace_users({**acl.users, name: user})
    if aclfile:
        acl.replace_users(read_acl_file(aclfile, registry))
