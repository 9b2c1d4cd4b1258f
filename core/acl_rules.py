"""ACL rules: how one ``ACL SETUSER`` rule (``on``, ``>password``, ``~keys*``, ``+@read``,
``(selector)``...) changes a user.  Users, their checks and the user table are in
:mod:`trioredis.acl`; the rules are a mixin of :class:`trioredis.acl.User` so both read the
same attributes.

Each rule is a small handler: a whole word (``on``, ``resetkeys``, ``allcommands``...) in
``_WORD_RULES``, else by its first character (``>``, ``#``, ``~``, ``&``, ``+``...) in
``_PREFIX_RULES``; a selector is ``(`` ... ``)``.  Anything else is Redis's "Syntax error".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .acl_categories import CATEGORIES, category_members
from .errors import CommandError
from .glob import compile_glob

if TYPE_CHECKING:
    from .commands import CommandRegistry, CommandSpec

_HASH_RE = re.compile(r"[0-9a-f]{64}")


def password_digest(password: bytes) -> str:
    return hashlib.sha256(password).hexdigest()


class KeyPattern:
    """``~pattern`` (read and write), ``%R~pattern`` or ``%W~pattern``."""

    __slots__ = ("text", "read", "write", "matcher")

    def __init__(self, text: bytes, read: bool = True, write: bool = True) -> None:
        self.text = text
        self.read = read
        self.write = write
        self.matcher = compile_glob(text)

    def describe(self) -> str:
        prefix = "~" if self.read and self.write else "%R~" if self.read else "%W~"
        return prefix + self.text.decode("utf-8", "replace")


# --- one handler per rule ------------------------------------------------------------------


def _on(user: UserRules, registry: CommandRegistry) -> None:
    user.enabled = True


def _off(user: UserRules, registry: CommandRegistry) -> None:
    user.enabled = False


def _nopass(user: UserRules, registry: CommandRegistry) -> None:
    user.nopass = True
    user.passwords = []


def _resetpass(user: UserRules, registry: CommandRegistry) -> None:
    user.nopass = False
    user.passwords = []


def _allkeys(user: UserRules, registry: CommandRegistry) -> None:
    user.all_keys = True
    user.keys = [KeyPattern(b"*")]


def _resetkeys(user: UserRules, registry: CommandRegistry) -> None:
    user.all_keys = False
    user.keys = []


def _allchannels(user: UserRules, registry: CommandRegistry) -> None:
    user.all_channels = True
    user.channels = [b"*"]
    user._channel_regexes = [compile_glob(b"*")]


def _resetchannels(user: UserRules, registry: CommandRegistry) -> None:
    user.all_channels = False
    user.channels = []
    user._channel_regexes = []


def _allcommands(user: UserRules, registry: CommandRegistry) -> None:
    user._set_all(True, registry)


def _nocommands(user: UserRules, registry: CommandRegistry) -> None:
    user._set_all(False, registry)


def _sanitize_payload(user: UserRules, registry: CommandRegistry) -> None:
    user.sanitize_payload = True


def _skip_sanitize_payload(user: UserRules, registry: CommandRegistry) -> None:
    user.sanitize_payload = False


def _reset(user: UserRules, registry: CommandRegistry) -> None:
    for each in ("resetpass", "resetkeys", "resetchannels", "off", "-@all",
                 "sanitize-payload", "clearselectors"):
        user.apply(each, registry)


def _clearselectors(user: UserRules, registry: CommandRegistry) -> None:
    user.selectors = []


def _add_password(user: UserRules, rule: str, registry: CommandRegistry) -> None:
    """``>password``."""
    digest = password_digest(rule[1:].encode("utf-8", "surrogateescape"))
    if digest not in user.passwords:
        user.passwords.append(digest)
    user.nopass = False


def _remove_password(user: UserRules, rule: str, registry: CommandRegistry) -> None:
    """``<password``."""
    digest = password_digest(rule[1:].encode("utf-8", "surrogateescape"))
    if digest not in user.passwords:
        raise ValueError("The password you are trying to remove from the user does not exist")
    user.passwords.remove(digest)


def _password_hash(user: UserRules, rule: str, registry: CommandRegistry) -> None:
    """``#<sha256 hex>`` adds a password by its digest, ``!<sha256 hex>`` removes one."""
    digest = rule[1:]
    if not _HASH_RE.fullmatch(digest):
        raise ValueError("The password hash must be exactly 64 characters and contain "
                         "only lowercase hexadecimal characters")
    if rule[0] == "#":
        if digest not in user.passwords:
            user.passwords.append(digest)
        user.nopass = False
    elif digest not in user.passwords:
        raise ValueError("The password you are trying to remove from the user does not exist")
    else:
        user.passwords.remove(digest)


def _key_pattern(user: UserRules, rule: str, registry: CommandRegistry) -> None:
    """``~pattern``, ``%R~pattern``, ``%W~pattern``, ``%RW~pattern``."""
    user._add_key_pattern(rule)


def _channel_pattern(user: UserRules, rule: str, registry: CommandRegistry) -> None:
    """``&pattern`` (nothing to add once the user has every channel)."""
    if not user.all_channels:
        pattern = rule[1:].encode("utf-8", "surrogateescape")
        user.channels.append(pattern)
        user._channel_regexes.append(compile_glob(pattern))


def _command(user: UserRules, rule: str, registry: CommandRegistry) -> None:
    """``+name``, ``-name``, ``+name|sub``, ``+@category``..."""
    if len(rule) == 1:
        raise ValueError("Syntax error")
    user._command_rule(rule, registry)


# Rules that are a whole word, matched without case.
_WORD_RULES: dict[str, Callable[[UserRules, CommandRegistry], None]] = {
    "on": _on, "off": _off, "nopass": _nopass, "resetpass": _resetpass,
    "allkeys": _allkeys, "~*": _allkeys, "resetkeys": _resetkeys,
    "allchannels": _allchannels, "&*": _allchannels, "resetchannels": _resetchannels,
    "allcommands": _allcommands, "+@all": _allcommands,
    "nocommands": _nocommands, "-@all": _nocommands,
    "sanitize-payload": _sanitize_payload, "skip-sanitize-payload": _skip_sanitize_payload,
    "reset": _reset, "clearselectors": _clearselectors,
}
# Rules told by their first character (after the words and selectors).
_PREFIX_RULES: dict[str, Callable[[UserRules, str, CommandRegistry], None]] = {
    ">": _add_password, "<": _remove_password, "#": _password_hash, "!": _password_hash,
    "~": _key_pattern, "%": _key_pattern, "&": _channel_pattern, "+": _command, "-": _command,
}


class UserRules:
    """What applies rules to a user (mixed into :class:`trioredis.acl.User`, which holds the
    attributes these methods change)."""

    enabled: bool
    nopass: bool
    sanitize_payload: bool
    passwords: list[str]
    all_commands: bool
    commands: set[str]
    allowed_subs: set[str]
    denied_subs: set[str]
    future_commands: bool
    described_commands: str | None
    all_keys: bool
    keys: list[KeyPattern]
    all_channels: bool
    channels: list[bytes]
    _channel_regexes: list[Any]
    selectors: list[Any]

    def apply(self, rule: str, registry: CommandRegistry) -> None:
        """One ``ACL SETUSER`` rule; raises ValueError with Redis's explanation."""
        self.described_commands = None  # ACL LIST works the description out again
        word = _WORD_RULES.get(rule.lower())
        if word is not None:
            word(self, registry)
        elif rule.startswith("(") and rule.endswith(")"):
            self.selectors.append(_selector(rule[1:-1], registry, type(self)))
        else:
            prefixed = _PREFIX_RULES.get(rule[:1])
            if prefixed is None:
                raise ValueError("Syntax error")
            prefixed(self, rule, registry)

    def _add_key_pattern(self, rule: str) -> None:
        if rule.startswith("%"):
            flags, sep, text = rule[1:].partition("~")
            if not sep or not flags or set(flags.upper()) - {"R", "W"}:
                raise ValueError("Syntax error")
            read, write = "R" in flags.upper(), "W" in flags.upper()
        else:
            text, read, write = rule[1:], True, True
        if self.all_keys and read and write:
            return
        if text == "*" and read and write:
            self.all_keys = True
            self.keys = [KeyPattern(b"*")]
            return
        pattern = text.encode("utf-8", "surrogateescape")
        for existing in self.keys:
            if existing.text == pattern:  # Redis merges the permissions: %R~x %W~x is ~x
                existing.read |= read
                existing.write |= write
                return
        self.keys.append(KeyPattern(pattern, read, write))

    def _set_all(self, allowed: bool, registry: CommandRegistry) -> None:
        self.all_commands = allowed
        self.commands = {spec.name for spec in registry} if allowed else set()
        self.allowed_subs = set()
        self.denied_subs = set()
        self.future_commands = allowed

    def _command_rule(self, rule: str, registry: CommandRegistry) -> None:
        add = rule[0] == "+"
        target = rule[1:].lower()
        if target.startswith("@"):
            category = target[1:]
            if category not in CATEGORIES:
                raise ValueError("Unknown command or category name in ACL")
            for name in category_members(registry, category):
                if "|" in name:
                    self._set_subcommand(name, add)
                else:
                    self._set_command(name, add)
            if not add:
                self.all_commands = False
        else:
            name, bar, sub = target.partition("|")
            spec = registry.get(name.encode()) or _by_original_name(registry, name)
            if spec is None or (bar and not sub):
                raise ValueError("Unknown command or category name in ACL")
            if bar:
                self._set_subcommand(f"{spec.name}|{sub}", add)
            else:
                self._set_command(spec.name, add)
                if not add:
                    self.all_commands = False

    def _set_subcommand(self, full_name: str, add: bool) -> None:
        """``+name|sub`` / ``-name|sub``: an exception to what ``name`` itself allows."""
        parent_allowed = full_name.partition("|")[0] in self.commands
        if add and parent_allowed:
            self.denied_subs.discard(full_name)
        elif add:
            self.allowed_subs.add(full_name)
        elif parent_allowed:
            self.denied_subs.add(full_name)
        else:
            self.allowed_subs.discard(full_name)

    def _set_command(self, name: str, add: bool) -> None:
        if add:
            self.commands.add(name)
        else:
            self.commands.discard(name)
        prefix = name + "|"
        self.allowed_subs = {s for s in self.allowed_subs if not s.startswith(prefix)}
        self.denied_subs = {s for s in self.denied_subs if not s.startswith(prefix)}


# The rules a selector may hold: permissions only (no flags, passwords or nested selectors).
_SELECTOR_WORDS = frozenset({"allkeys", "resetkeys", "allchannels", "resetchannels",
                             "allcommands", "nocommands"})


def _selector(text: str, registry: CommandRegistry, make: Callable[[str], UserRules]) -> UserRules:
    """A selector from the rules between its parentheses (ValueError: "Syntax error")."""
    selector = make("")
    for rule in text.split():
        if rule.lower() not in _SELECTOR_WORDS and not rule.startswith(("~", "%", "&", "+", "-")):
            raise ValueError("Syntax error")
        selector.apply(rule, registry)
    return selector


def merge_selector_arguments(rules: list[str]) -> list[str]:
    """ACL SETUSER's arguments with a selector split over several (``"(+set" "~x)"``) joined
    into one rule, as Redis joins them; CommandError when a parenthesis is never closed."""
    merged: list[str] = []
    opened: list[str] | None = None
    for rule in rules:
        if opened is not None:
            opened.append(rule)
            if rule.endswith(")"):
                merged.append(" ".join(opened))
                opened = None
        elif rule.startswith("(") and not rule.endswith(")"):
            opened = [rule]
        else:
            merged.append(rule)
    if opened is not None:
        raise CommandError(f"ERR Unmatched parenthesis in acl selector starting at '{opened[0]}'.")
    return merged


def _by_original_name(registry: CommandRegistry, name: str) -> CommandSpec | None:
    """A command by its own name even when ``rename-command`` gave it another."""
    for spec in registry:
        if spec.name == name:
            return spec
    return None
