"""Commands a Redis 7.0 without cluster or modules still answers, as it answers them:
CLUSTER, READONLY, READWRITE (cluster support is disabled), MODULE (none loaded, loading
refused), LOLWUT.  Client libraries' test suites call them to learn what the server is.
"""

from __future__ import annotations

from .. import REDIS_VERSION
from ..acl import is_local_client
from ..config import protected_action_allowed
from ..errors import CommandError
from ..resp import Status, Verbatim
from . import command
from .args import parse_int

CLUSTER_DISABLED = "ERR This instance has cluster support disabled"
MODULE_NOT_ALLOWED = (
    'ERR MODULE command not allowed. If the enable-module-command option is set to "local", '
    "you can run it from a local connection, otherwise you need to set this option in the "
    "configuration file, and then restart the server."
)

# CLUSTER's subcommands and their arities (Redis 7.0's table): each answers that cluster
# support is disabled, but an unknown one or a wrong count is refused first, as in Redis.
_CLUSTER_SUBCOMMANDS = {
    "addslots": -3, "addslotsrange": -4, "bumpepoch": 2, "count-failure-reports": 3,
    "countkeysinslot": 3, "delslots": -3, "delslotsrange": -4, "failover": -2,
    "flushslots": 2, "forget": 3, "getkeysinslot": 4, "help": 2, "info": 2, "keyslot": 3,
    "links": 2, "meet": -4, "myid": 2, "nodes": 2, "replicas": 3, "replicate": 3, "reset": -2,
    "saveconfig": 2, "set-config-epoch": 3, "setslot": -4, "shards": 2, "slaves": 3, "slots": 2,
}


def cluster(ctx, argv):
    raise CommandError(CLUSTER_DISABLED)


def readonly(ctx, argv):
    raise CommandError(CLUSTER_DISABLED)


def readwrite(ctx, argv):
    raise CommandError(CLUSTER_DISABLED)


_MODULE_HELP = [
    "MODULE <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LIST",
    "    Return a list of loaded modules.",
    "LOAD <path> [<arg> ...]",
    "    Load a module library from <path>, passing to it any optional arguments.",
    "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
    "    Load a module library from <path>, while passing it module configurations and "
    "optional arguments.",
    "UNLOAD <name>",
    "    Unload a module.",
    "HELP",
    "    Prints this help.",
]


def module(ctx, argv):
    """MODULE LIST answers no modules; LOAD, LOADEX and UNLOAD are refused while
    ``enable-module-command`` forbids them (Redis's default), and otherwise fail as a load
    would: trioredis has no C module API (its plugins are Python, see ``loadplugin``)."""
    sub = argv[1].lower()
    if sub == b"list":
        return []
    if sub == b"help":
        return [Status(line.encode()) for line in _MODULE_HELP]
    if not protected_action_allowed(ctx.engine.config.enable_module_command,
                                    is_local_client(ctx.client)):
        raise CommandError(MODULE_NOT_ALLOWED)
    if sub == b"unload":
        raise CommandError("ERR Error unloading module: no such module with that name")
    ctx.engine.log.warning(
        f"Module {argv[2].decode('utf-8', 'replace')} failed to load: "
        "trioredis does not load Redis modules (use loadplugin for Python plugins)")
    raise CommandError("ERR Error loading the extension. Please check the server logs.")


# LOLWUT VERSION 5 and 6: Redis draws generative art above these captions (random, so no
# two replies are alike); the captions alone here, the numeric arguments checked alike.
_LOLWUT_CAPTIONS = {
    5: (3, "Georg Nees - schotter, plotter on paper, 1968. Redis ver. {}\n"),
    6: (2, "Dedicated to the 8 bit game developers of past and present.\n"
           "Original 8 bit image from Plaguemon by hikikomori. Redis ver. {}\n"),
}


def lolwut(ctx, argv):
    """LOLWUT [VERSION n] [arguments]: the version line Redis ends every LOLWUT with."""
    version = None
    if len(argv) >= 3 and argv[1].lower() == b"version":
        version = parse_int(argv[2])
        argv = argv[:1] + argv[3:]
    caption = _LOLWUT_CAPTIONS.get(version)
    if caption is None:
        return Verbatim(f"Redis ver. {REDIS_VERSION}\n".encode())
    numbers, text = caption
    for raw in argv[1:1 + numbers]:
        parse_int(raw)
    return Verbatim(text.format(REDIS_VERSION).encode())


def register(registry):
    group = "server"
    registry.extend([
        command("cluster", -2, "", cluster, group=group, subcommands=_CLUSTER_SUBCOMMANDS),
        command("readonly", 1, "fast loading stale", readonly, group="connection"),
        command("readwrite", 1, "fast loading stale", readwrite, group="connection"),
        command("module", -2, "", module, group=group,
                subcommands={"list": 2, "load": -3, "loadex": -3, "unload": 3, "help": 2}),
        command("lolwut", -1, "readonly fast", lolwut, group=group),
    ])
