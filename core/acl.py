"""Access control: users, their passwords, the commands, keys and channels they may use.

This module holds the users, their permission checks and the user table; the rules that
change a user are in :mod:`trioredis.acl_rules`, the categories in
:mod:`trioredis.acl_categories`, ACL LOG in :mod:`trioredis.acl_log`, the ACL file in
:mod:`trioredis.acl_file` and the ACL commands in :mod:`trioredis.commands.acl`.

Redis 7.0's model (``acl.c``), kept to what a client can observe:

- A user is ``on`` or ``off``, has passwords (stored only as SHA-256 hex digests) or
  ``nopass``, a set of allowed commands built by applying rules in order (``+get``,
  ``-@dangerous``, ``+config|get``, ``allcommands``), key patterns (``~app:*``, ``%R~x``,
  ``allkeys``) and channel patterns (``&news.*``, ``allchannels``).
- ``ACL SETUSER`` applies its rules to a copy and keeps it only if every rule is valid.
- Passwords are compared in constant time (:func:`hmac.compare_digest` on the SHA-256 hex
  digests, against every stored digest, so the time does not say which one matched) and never
  logged.  ``requirepass`` is the ``default`` user's password, as in Redis.

``ACL LIST``/``GETUSER``/``SAVE`` describe the command rules as Redis 7.0 does, worked out
from what the user may run (:mod:`trioredis.acl_describe`): a category that changed nothing
(``-@geo`` after ``-@all``) disappears.  Redis lists single commands in its command table's
hash order, which is random per process; they come in the registry's order here.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING, Any

from .acl_categories import CATEGORIES, categories_of, category_members
from .acl_describe import describe_command_rules
from .acl_log import ACLLOG_DEFAULT_COUNT, ACLLOG_MAX_LEN, AclLog, AclLogEntry
from .acl_rules import KeyPattern, UserRules, merge_selector_arguments, password_digest
from .errors import CommandError
from .glob import GlobPattern

if TYPE_CHECKING:
    from .commands import CommandRegistry, CommandSpec

# Names that moved to acl_categories, acl_log and acl_rules, importable from here as before.
__all__ = [
    "ACLLOG_DEFAULT_COUNT", "ACLLOG_MAX_LEN", "CATEGORIES", "NOPERM_CHANNEL", "NOPERM_COMMAND",
    "NOPERM_KEY", "PROTECTED_MODE_DENIED", "AccessControl", "AclLog", "AclLogEntry",
    "KeyPattern", "User", "acl_changed_in_multi", "categories_of", "category_members",
    "is_local_client", "is_loopback", "merge_selector_arguments", "password_digest",
    "protected_mode_refusal",
]

# Channel arguments of the pub/sub commands: argv[1] only, or argv[1:].
_CHANNEL_COMMANDS = {"publish": 1, "spublish": 1, "subscribe": None, "ssubscribe": None,
                     "psubscribe": None}

NOPERM_COMMAND = "NOPERM this user has no permissions to run the '{}' command"
NOPERM_KEY = "NOPERM this user has no permissions to access one of the keys used as arguments"
NOPERM_CHANNEL = (
    "NOPERM this user has no permissions to access one of the channels used as arguments"
)
# EXEC's answer for a queued command that ACL rules changed since forbid (Redis's execCommand),
# by the kind of refusal.
_MULTI_ACL_REASONS = {
    "run": "no permission to execute the command or subcommand",
    "keys": "no permission to touch the specified keys",
    "channels": "no permission to access one of the channels used as arguments",
}


def acl_changed_in_multi(denied: str) -> str:
    """The error EXEC gives for a queued command now refused with ``denied`` (a NOPERM)."""
    kind = "keys" if denied == NOPERM_KEY else "channels" if denied == NOPERM_CHANNEL else "run"
    return ("NOPERM ACLs rules changed between the moment the transaction was accumulated and "
            "the EXEC call. This command is no longer allowed for the following reason: "
            + _MULTI_ACL_REASONS[kind])


# Redis 7.0's reply to a non-loopback client in protected mode (networking.c), verbatim,
# typo included.
PROTECTED_MODE_DENIED = (
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no "
    b"password is set for the default user. In this mode connections are only accepted from "
    b"the loopback interface. If you want to connect from external computers to Redis you may "
    b"adopt one of the following solutions: 1) Just disable protected mode sending the command "
    b"'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from "
    b"the same host the server is running, however MAKE SURE Redis is not publicly accessible "
    b"from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) "
    b"Alternatively you can just disable the protected mode by editing the Redis configuration "
    b"file, and setting the protected mode option to 'no', and then restarting the server. 3) "
    b"If you started the server manually just for testing, restart it with the "
    b"'--protected-mode no' option. 4) Setup a an authentication password for the default "
    b"user. NOTE: You only need to do one of the above things in order for the server to start "
    b"accepting connections from the outside.\r\n"
)


def is_loopback(host: str) -> bool:
    """Redis's ``connIsLocal``: 127.0.0.0/8 or ::1 (also as an IPv4-mapped IPv6 address)."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def is_local_client(client: Any) -> bool:
    """Redis's ``islocalClient``: a unix socket connection, or TCP from a loopback address
    (who may use ``enable-protected-configs local`` / ``enable-debug-command local``)."""
    addr = client.addr
    if addr.startswith("/"):  # "/unixsocket:0"
        return True
    host = addr.rpartition(":")[0]
    return bool(host) and is_loopback(host.strip("[]"))


def protected_mode_refusal(protected_mode: bool, acl: AccessControl, host: str) -> bytes | None:
    """What to send a new TCP client before closing it, or None to serve it.

    Redis 7.0 refuses a client that is not on the loopback interface while ``protected-mode``
    is on and the default user has no password (``nopass``: no ``requirepass``, no ACL
    password), whatever ``bind`` says."""
    if protected_mode and acl.users["default"].nopass and not is_loopback(host):
        return PROTECTED_MODE_DENIED
    return None


class User(UserRules):
    """One ACL user.  ``commands`` holds allowed command names; ``allowed_subs`` the
    ``name|sub`` allowed while ``name`` is not; ``denied_subs`` those refused while it is."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.enabled = False
        self.nopass = False
        self.sanitize_payload = False
        self.passwords: list[str] = []  # sha256 hex digests, in the order added
        self.all_commands = False
        self.commands: set[str] = set()
        self.allowed_subs: set[str] = set()
        self.denied_subs: set[str] = set()
        # Last given +@all (not -@all): Redis's reserved bitmap bit for commands loaded
        # later, which makes ACL LIST start from +@all (trioredis.acl_describe).
        self.future_commands = False
        # describe_commands' text, until a rule changes the user (ACL LIST of many users
        # must not work each one out again: 0.1-0.5 ms each).
        self.described_commands: str | None = None
        self.all_keys = False
        self.keys: list[KeyPattern] = []
        self.all_channels = False
        self.channels: list[bytes] = []
        self._channel_regexes: list[GlobPattern] = []
        # Selectors, ``(+set %W~app*)``: more sets of commands, keys and channels, each a
        # User without name, flags or passwords; a command runs when the user's own
        # permissions or any one selector allow it whole.  Never changed once made.
        self.selectors: list[User] = []

    def copy(self) -> User:
        other = User(self.name)
        other.__dict__.update({k: (v.copy() if isinstance(v, (set, list)) else v)
                               for k, v in self.__dict__.items()})
        return other

    @property
    def unrestricted(self) -> bool:
        """May run anything on anything: the engine skips the checks for such users."""
        return (self.all_commands and not self.denied_subs and self.all_keys
                and self.all_channels)

    # Rules (ACL SETUSER's words): ``apply``, from UserRules (trioredis.acl_rules).

    # --- checks ------------------------------------------------------------------------------

    def check_password(self, password: bytes) -> bool:
        """Constant time in the password: every stored digest is compared."""
        if self.nopass:
            return True
        digest = password_digest(password)
        matched = False
        for stored in self.passwords:
            matched |= hmac.compare_digest(digest, stored)
        return matched

    def denied(self, spec: CommandSpec, argv: list[bytes]) -> str | None:
        """The NOPERM message for running ``argv``, or None when allowed by the user's own
        permissions or one of its selectors.  Refused by all, the message is the most
        specific refusal among them, as Redis ranks them: a channel, then a key, then the
        command."""
        refusal = self._denied_here(spec, argv)
        if refusal is None or not self.selectors:
            return refusal
        for selector in self.selectors:
            other = selector._denied_here(spec, argv)
            if other is None:
                return None
            if _refusal_rank(other) > _refusal_rank(refusal):
                refusal = other
        return refusal

    def _denied_here(self, spec: CommandSpec, argv: list[bytes]) -> str | None:
        """:meth:`denied` for this user's own permissions (or this selector's)."""
        if "noauth" in spec.flags:  # AUTH, HELLO, QUIT, RESET: always allowed, as in Redis
            return None
        name = spec.name
        sub = f"{name}|{argv[1].decode('utf-8', 'replace').lower()}" if (
            spec.subcommands and len(argv) > 1) else None
        if name in self.commands:
            if sub is not None and sub in self.denied_subs:
                return NOPERM_COMMAND.format(sub)
        elif sub is None or sub not in self.allowed_subs:
            return NOPERM_COMMAND.format(sub or name)
        if not self.all_keys and self._first_denied_key_here(spec, argv) is not None:
            return NOPERM_KEY
        if not self.all_channels and name in _CHANNEL_COMMANDS:
            channels = argv[1:2] if _CHANNEL_COMMANDS[name] == 1 else argv[1:]
            literal = name == "psubscribe"  # Redis 7.0: a pattern must be allowed verbatim
            for channel in channels:
                if literal:
                    if channel not in self.channels:
                        return NOPERM_CHANNEL
                elif not any(r.matches(channel) for r in self._channel_regexes):
                    return NOPERM_CHANNEL
        return None

    def denied_object(self, spec: CommandSpec, argv: list[bytes], message: str) -> tuple[str, bytes]:
        """ACL LOG's reason and object for a denial :meth:`denied` reported: the command's
        full name, the first key refused, or the first channel refused."""
        if message == NOPERM_KEY:
            return "key", self.first_denied_key(spec, argv) or b""
        if message == NOPERM_CHANNEL:
            return "channel", self.first_denied_channel(spec, argv) or b""
        name = spec.name
        if spec.subcommands and len(argv) > 1:
            name = f"{name}|{argv[1].decode('utf-8', 'replace').lower()}"
        return "command", name.encode()

    def first_denied_channel(self, spec: CommandSpec, argv: list[bytes]) -> bytes | None:
        """The channel a channel refusal names (from the user's own permissions or the first
        selector that refused a channel)."""
        for each in [self, *self.selectors]:
            if each._denied_here(spec, argv) != NOPERM_CHANNEL:
                continue
            channels = argv[1:2] if _CHANNEL_COMMANDS.get(spec.name) == 1 else argv[1:]
            for channel in channels:
                if spec.name == "psubscribe":
                    if channel not in each.channels:
                        return channel
                elif not any(r.fullmatch(channel) for r in each._channel_regexes):
                    return channel
        return None

    def first_denied_key(self, spec: CommandSpec, argv: list[bytes]) -> bytes | None:
        """The key a refusal names: from the user's own permissions, or from the selectors
        that allow the command but not a key, the one furthest in the arguments (Redis
        reports the refusal that got furthest)."""
        candidates = [self] + self.selectors if self.selectors else [self]
        best: bytes | None = None
        best_index = -1
        for each in candidates:
            if each._denied_here(spec, argv) != NOPERM_KEY:
                continue
            key = each._first_denied_key_here(spec, argv)
            if key is not None:
                index = argv.index(key, 1)
                if index > best_index:
                    best, best_index = key, index
        return best

    def _first_denied_key_here(self, spec: CommandSpec, argv: list[bytes]) -> bytes | None:
        """The first key argument no key pattern of this user or selector allows, or None.
        Each key needs what its key spec says (Redis 7's ``ACLSelectorCheckKey``): read
        permission when the command returns its value (ACCESS), write permission when it
        changes it (INSERT, UPDATE, DELETE), so a ``%W~`` user cannot read values back
        through GETDEL or LPOP."""
        if self.all_keys:
            return None
        for key, (read, write) in spec.keys_with_access(argv):
            for pattern in self.keys:
                if (read and not pattern.read) or (write and not pattern.write):
                    continue
                if pattern.matcher.matches(key):
                    break
            else:
                return key
        return None

    # --- description -------------------------------------------------------------------------

    def flags(self) -> list[bytes]:
        flags = [b"on" if self.enabled else b"off"]
        if self.nopass:
            flags.append(b"nopass")
        if self.sanitize_payload:
            flags.append(b"sanitize-payload")
        return flags

    def describe_keys(self) -> str:
        return " ".join(pattern.describe() for pattern in self.keys)

    def describe_channels(self) -> str:
        return " ".join("&" + c.decode("utf-8", "replace") for c in self.channels)

    def describe(self, registry: CommandRegistry) -> str:
        """One line of ``ACL LIST``: flags, passwords, permissions, then each selector's in
        parentheses."""
        parts = ["user", self.name] + [f.decode() for f in self.flags()]
        parts += ["#" + digest for digest in self.passwords]
        parts += self.describe_permissions(registry)
        parts += [f"({' '.join(selector.describe_permissions(registry))})"
                  for selector in self.selectors]
        return " ".join(parts)

    def describe_commands(self, registry: CommandRegistry) -> str:
        """The command rules, worked out from what may run (:mod:`trioredis.acl_describe`)."""
        if self.described_commands is None:
            self.described_commands = describe_command_rules(self, registry)
        return self.described_commands

    def describe_permissions(self, registry: CommandRegistry) -> list[str]:
        """Keys, channels (``resetchannels`` first unless all), commands, as Redis lists them."""
        parts = []
        if self.keys:
            parts.append(self.describe_keys())
        parts.append(self.describe_channels() if self.all_channels else "resetchannels")
        if self.channels and not self.all_channels:
            parts.append(self.describe_channels())
        parts.append(self.describe_commands(registry))
        return parts


def _refusal_rank(message: str) -> int:
    """How specific a refusal is: Redis reports the most specific one (a channel, then a
    key, then the command) when no selector allows a command."""
    return 3 if message == NOPERM_CHANNEL else 2 if message == NOPERM_KEY else 1


class AccessControl:
    """The users of one server, starting with ``default`` (everything, ``nopass`` unless
    ``requirepass`` is set)."""

    def __init__(self, registry: CommandRegistry, requirepass: str = "") -> None:
        self.registry = registry
        self.users: dict[str, User] = {}
        self.log = AclLog()
        default = User("default")
        for rule in ("on", "nopass", "~*", "&*", "+@all"):
            default.apply(rule, registry)
        self.users["default"] = default
        self.set_requirepass(requirepass)
        self.refresh()

    def refresh(self) -> None:
        """Recompute what the engine's fast path reads: whether anyone is restricted."""
        self.restricted = {name for name, user in self.users.items() if not user.unrestricted}

    def set_requirepass(self, password: str) -> None:
        """``requirepass``: the default user's only password (empty: ``nopass``)."""
        default = self.users["default"]
        default.apply("resetpass", self.registry)
        default.apply(">" + password if password else "nopass", self.registry)
        self.refresh()

    def default_needs_auth(self) -> bool:
        """A new connection starts authenticated unless the default user needs a password
        (or is off)."""
        default = self.users["default"]
        return not (default.nopass and default.enabled)

    def authenticate(self, username: bytes, password: bytes) -> User | None:
        """The user when the pair is valid and the user is on, else None."""
        user = self.users.get(username.decode("utf-8", "surrogateescape"))
        if user is None:
            # Spend the same work as a real check, so timing does not reveal user names.
            User("").check_password(password)
            return None
        if not user.check_password(password) or not user.enabled:
            return None
        return user

    def set_user(self, name: str, rules: list[str]) -> None:
        """ACL SETUSER: all rules or none (raises CommandError naming the bad rule)."""
        existing = self.users.get(name)
        user = existing.copy() if existing is not None else User(name)
        for rule in merge_selector_arguments(rules):
            try:
                user.apply(rule, self.registry)
            except ValueError as error:
                raise CommandError(
                    f"ERR Error in ACL SETUSER modifier '{rule}': {error}") from None
        self.users[name] = user
        self.refresh()

    def replace_users(self, users: dict[str, User]) -> None:
        """ACL LOAD: a whole new set of users (it holds ``default``).  Connections keep their
        user's name; one whose user is gone is refused every command, as the check finds no
        such user."""
        self.users = users
        self.refresh()

    def delete_user(self, name: str) -> bool:
        if name == "default":
            raise CommandError("ERR The 'default' user cannot be removed")
        deleted = self.users.pop(name, None) is not None
        self.refresh()
        return deleted

    def check(self, client_user: str, spec: CommandSpec, argv: list[bytes]) -> str | None:
        """The NOPERM error for ``client_user`` running ``argv``, or None (the engine calls
        this only for users in :attr:`restricted`)."""
        user = self.users.get(client_user)
        if user is None:
            return NOPERM_COMMAND.format(spec.name)
        return user.denied(spec, argv)


