"""CLIENT TRACKING, CACHING, TRACKINGINFO (client-side caching) and CLIENT PAUSE, UNPAUSE:
the subcommands' argument parsing and replies, with Redis 7.0's checks in Redis's order.  The
state they change lives in :mod:`trioredis.tracking` and :mod:`trioredis.pause`; the CLIENT
container (:mod:`trioredis.commands.connection`) dispatches here."""

from __future__ import annotations

from typing import Any

from .. import errors
from ..errors import CommandError
from ..pause import ALL, WRITE
from ..resp import OK, Map, SetReply
from .args import parse_int, parse_timeout

REDIRECT_TWICE = "ERR A client can only redirect to a single other client"
REDIRECT_MISSING = "ERR The client ID you want redirect to does not exist"
PREFIX_WITHOUT_BCAST = "ERR PREFIX option requires BCAST mode to be enabled"
BCAST_SWITCH = ("ERR You can't switch BCAST mode on/off before disabling tracking for this "
                "client, and then re-enabling it with a different mode.")
BCAST_WITH_OPT = "ERR OPTIN and OPTOUT are not compatible with BCAST"
OPTIN_AND_OPTOUT = "ERR You can't specify both OPTIN mode and OPTOUT mode"
CACHING_NOT_TRACKING = ("ERR CLIENT CACHING can be called only when the client is in tracking "
                        "mode with OPTIN or OPTOUT mode enabled")
CACHING_YES_NOT_OPTIN = "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."
CACHING_NO_NOT_OPTOUT = "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
PAUSE_MODE = "ERR CLIENT PAUSE mode must be WRITE or ALL"


def client_tracking(ctx: Any, argv: list[bytes]) -> Any:
    """CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]:
    the options are parsed (and REDIRECT's client looked up) before ON or OFF is read."""
    engine, client = ctx.engine, ctx.client
    redirect = 0
    bcast = optin = optout = noloop = False
    prefixes: list[bytes] = []
    index = 3
    while index < len(argv):
        option = argv[index].lower()
        more = index + 1 < len(argv)
        if option == b"redirect" and more:
            index += 1
            if redirect:
                raise CommandError(REDIRECT_TWICE)
            redirect = parse_int(argv[index])
            if redirect not in engine.clients:
                raise CommandError(REDIRECT_MISSING)
        elif option == b"bcast":
            bcast = True
        elif option == b"optin":
            optin = True
        elif option == b"optout":
            optout = True
        elif option == b"noloop":
            noloop = True
        elif option == b"prefix" and more:
            index += 1
            prefixes.append(argv[index])
        else:
            raise CommandError(errors.SYNTAX)
        index += 1
    mode = argv[2].lower()
    tracking = engine.tracking
    if mode == b"on":
        if prefixes and not bcast:
            raise CommandError(PREFIX_WITHOUT_BCAST)
        if client.tracking is not None and client.tracking.bcast != bcast:
            raise CommandError(BCAST_SWITCH)
        if bcast and (optin or optout):
            raise CommandError(BCAST_WITH_OPT)
        if optin and optout:
            raise CommandError(OPTIN_AND_OPTOUT)
        # Redis 7.0.15 answers an overlap between the first given prefix and a later one
        # with the error *and* +OK (two replies to one command, tracking enabled anyway),
        # which desynchronizes every client; here it is the error alone, nothing enabled.
        overlap = tracking.prefix_overlap(client, prefixes)
        if overlap is not None:
            raise CommandError(overlap)
        tracking.enable(client, redirect, bcast, optin, optout, noloop, prefixes)
    elif mode == b"off":
        tracking.disable(client)
    else:
        raise CommandError(errors.SYNTAX)
    return OK


def client_caching(ctx: Any, argv: list[bytes]) -> Any:
    """CLIENT CACHING YES|NO: the next command's reads are (OPTIN) or are not (OPTOUT)
    remembered."""
    state = ctx.client.tracking
    if state is None:
        raise CommandError(CACHING_NOT_TRACKING)
    answer = argv[2].lower()
    if answer == b"yes":
        if not state.optin:
            raise CommandError(CACHING_YES_NOT_OPTIN)
    elif answer == b"no":
        if not state.optout:
            raise CommandError(CACHING_NO_NOT_OPTOUT)
    else:
        raise CommandError(errors.SYNTAX)
    state.caching = True
    return OK


def client_trackinginfo(ctx: Any, argv: list[bytes]) -> Any:
    """CLIENT TRACKINGINFO: flags (a set), redirect (-1 when off), prefixes (byte order)."""
    state = ctx.client.tracking
    if state is None:
        return Map({b"flags": SetReply([b"off"]), b"redirect": -1, b"prefixes": []})
    flags = [b"on"]
    if state.bcast:
        flags.append(b"bcast")
    if state.optin:
        flags.append(b"optin")
        if state.caching:
            flags.append(b"caching-yes")
    if state.optout:
        flags.append(b"optout")
        if state.caching:
            flags.append(b"caching-no")
    if state.noloop:
        flags.append(b"noloop")
    if state.broken:
        flags.append(b"broken_redirect")
    return Map({b"flags": SetReply(flags), b"redirect": state.redirect,
                b"prefixes": sorted(state.prefixes)})


def client_pause(ctx: Any, argv: list[bytes]) -> Any:
    """CLIENT PAUSE timeout [WRITE|ALL] (ms; the mode is checked first, as Redis does)."""
    mode = ALL
    if len(argv) == 4:
        word = argv[3].lower()
        if word == b"write":
            mode = WRITE
        elif word != b"all":
            raise CommandError(PAUSE_MODE)
    seconds = parse_timeout(argv[2], unit_seconds=False)
    ctx.engine.pause.pause(int(seconds * 1000), mode)
    return OK


def client_unpause(ctx: Any, argv: list[bytes]) -> Any:
    """CLIENT UNPAUSE: the held commands run now, in arrival order."""
    ctx.engine.pause.unpause()
    return OK
