"""Error replies, copied verbatim from Redis 7: clients parse the prefixes.

A handler raises :class:`CommandError` with one of these texts (or a formatted one); the
dispatcher turns it into an error reply.
"""

from __future__ import annotations


class CommandError(Exception):
    """A command failed: the reply is ``-<message>``; ``message`` starts with its prefix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
# DEBUG while enable-debug-command does not allow the client (Redis 7's processCommand).
DEBUG_NOT_ALLOWED = (
    "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", "
    "you can run it from a local connection, otherwise you need to set this option in the "
    "configuration file, and then restart the server."
)
OVERFLOW = "ERR increment or decrement would overflow"
INCR_NAN_OR_INF = "ERR increment would produce NaN or Infinity"
NO_SUCH_KEY = "ERR no such key"
INDEX_OUT_OF_RANGE = "ERR index out of range"
INVALID_DB_INDEX = "ERR DB index is out of range"
INVALID_EXPIRE = "ERR invalid expire time in '{}' command"
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
AUTH_NOT_CONFIGURED = (
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)
LOADING = "LOADING Redis is loading the dataset in memory"
EXECABORT = "EXECABORT Transaction discarded because of previous errors."
NESTED_MULTI = "ERR MULTI calls can not be nested"
EXEC_WITHOUT_MULTI = "ERR EXEC without MULTI"
DISCARD_WITHOUT_MULTI = "ERR DISCARD without MULTI"
WATCH_IN_MULTI = "ERR WATCH inside MULTI is not allowed"
MAX_CLIENTS = "ERR max number of clients reached"
STRING_TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
OFFSET_OUT_OF_RANGE = "ERR offset is out of range"
SAME_OBJECT = "ERR source and destination objects are the same"
OOM = "OOM command not allowed when used memory > 'maxmemory'."
NOT_ALLOWED_IN_MULTI = "ERR Command not allowed inside a transaction"
BACKGROUND_SAVE_IN_PROGRESS = "ERR Background save already in progress"
BACKGROUND_REWRITE_IN_PROGRESS = "ERR Background append only file rewriting already in progress"
NO_PERSISTENCE = "ERR no persistence backend that can do this is loaded"


def wrong_arity(name: str) -> str:
    return f"ERR wrong number of arguments for '{name}' command"


def unknown_command(argv: list[bytes]) -> str:
    """Redis's message: the name cut at 128 bytes, then the first arguments up to 128 bytes."""
    args = ""
    for arg in argv[1:]:
        if len(args) >= 128:
            break
        args += f"'{arg.decode('utf-8', 'replace')[: 128 - len(args)]}' "
    name = argv[0].decode("utf-8", "replace")[:128]
    return sanitize(f"ERR unknown command '{name}', with args beginning with: {args}")


def unknown_subcommand(sub: bytes, command: str) -> str:
    return sanitize(
        f"ERR unknown subcommand '{sub.decode('utf-8', 'replace')[:128]}'. "
        f"Try {command.upper()} HELP."
    )


def sanitize(message: str) -> str:
    """Error replies are one line: as Redis's addReplyErrorFormat, CR and LF are trimmed from
    both ends, then the ones inside become spaces."""
    return message.strip("\r\n").replace("\r", " ").replace("\n", " ")
