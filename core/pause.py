"""CLIENT PAUSE and CLIENT UNPAUSE, with Redis 7.0's rules.

``CLIENT PAUSE ms WRITE`` holds every command that may change the dataset or reach replicas:
commands flagged ``write``, the ones Redis flags ``may-replicate`` (PUBLISH, SPUBLISH,
PFCOUNT, EVAL/EVALSHA/FCALL of scripts not declared ``no-writes``), a write queued inside
MULTI, and an EXEC whose transaction holds one; reads go on.  ``ALL`` (the default) holds
every command of every client, CLIENT UNPAUSE included (only the timeout ends it then).
While any pause lasts, keys do not expire: a read finds an expired key missing, but nothing
deletes it (neither lazily nor by the cron), so nothing is propagated until the pause ends.

A held command is not run: its client waits (a :class:`trioredis.engine.Block`), and when
the pause ends (UNPAUSE, or its time runs out) the held commands run again in the order they
arrived, in one turn, each from the start of :meth:`Engine.call` (so one that finds a new
pause is held again, still in order).  As in Redis 7.0, a held client is not "blocked": no
``b`` flag in CLIENT LIST, not counted in ``blocked_clients``.

A second pause keeps the later end time of the two and takes the newer mode.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from .client import Client
    from .commands import CommandSpec
    from .engine import Engine

WRITE, ALL = "write", "all"
INT64_MAX = 2**63 - 1
# Commands Redis 7.0 flags may-replicate (their effect can reach replicas without being a
# write): held by a WRITE pause.  Scripts are exempt when declared no-writes.
MAY_REPLICATE = frozenset({"publish", "spublish", "pfcount", "eval", "evalsha", "fcall"})
_SCRIPTS = frozenset({"eval", "evalsha", "fcall"})


class _Held:
    __slots__ = ("client", "argv", "event", "result")

    def __init__(self, client: Client, argv: list[bytes]) -> None:
        self.client = client
        self.argv = argv
        self.event = trio.Event()
        self.result: dict[str, Any] = {}


class Pause:
    """The server's pause state; built by the engine (``engine.pause``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.mode: str | None = None
        self.end = 0.0  # time.monotonic() when the pause ends
        self.held: deque[_Held] = deque()
        self._timer: trio.CancelScope | None = None  # the task that ends the pause on time

    @property
    def active(self) -> bool:
        """Whether a pause is on now (one whose time ran out ends here, lazily, as Redis's
        ``checkClientPauseTimeoutAndReturnIfPaused``; the timer task ends it too)."""
        if self.mode is None:
            return False
        if time.monotonic() >= self.end:
            self.unpause()
            return False
        return True

    def pause(self, milliseconds: int, mode: str) -> None:
        """CLIENT PAUSE: the later end of this and any current pause, and this mode."""
        if milliseconds > INT64_MAX - int(time.time() * 1000):
            # Redis adds the time now to a 64-bit integer: past INT64_MAX it wraps to a time
            # long gone, so the command answers +OK and pauses nothing new (a pause already
            # on keeps its end, with this mode).
            end = float("-inf")
        else:
            end = time.monotonic() + milliseconds / 1000
        self.mode = mode
        if end > self.end:
            self.end = end
        if self.end <= time.monotonic():
            self.unpause()
            return
        self.engine.keyspace.expiry_paused = True
        self.engine.refresh_extras()
        self._arm_timer()

    def _arm_timer(self) -> None:
        """One task ends the pause on time (no traffic needed); a new pause moves its
        deadline rather than starting another task, so a client sending CLIENT PAUSE in a
        loop costs no task per call."""
        deadline = trio.current_time() + max(0.0, self.end - time.monotonic())
        if self._timer is not None:
            self._timer.deadline = deadline
            return
        if self.engine.nursery is None:
            return  # no server (an engine in a unit test): ended lazily by ``active``
        self._timer = trio.CancelScope(deadline=deadline)
        self.engine.nursery.start_soon(self._end_on_time, self._timer)

    async def _end_on_time(self, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep_forever()
        self._timer = None
        if self.mode is not None and time.monotonic() >= self.end:
            self.unpause()
        elif self.mode is not None:  # woken a little early by the clocks' rounding
            self._arm_timer()

    def unpause(self) -> None:
        """CLIENT UNPAUSE or the end of the pause: keys expire again, and the held commands
        run in arrival order."""
        self.mode = None
        self.end = 0.0
        self.engine.keyspace.expiry_paused = False
        self.engine.refresh_extras()
        held, self.held = self.held, deque()
        engine = self.engine
        from .engine import Block

        for entry in held:
            client = entry.client
            if client.id not in engine.clients:  # gone while held
                continue
            reply = engine.call(client, entry.argv)
            if reply.__class__ is Block and reply.event is None:
                # Blocks once resumed (BLPOP on an empty list): queued on its keys now, in
                # this turn, so it keeps its place among the resumed.
                engine.register_blocked(client, reply)
            entry.result["reply"] = reply
            entry.event.set()

    def holds(self, client: Client, spec: CommandSpec, argv: list[bytes]) -> bool:
        """Whether ``client``'s command must wait for the pause to end."""
        if client.is_loader or not self.active:
            return False
        if self.mode == ALL:
            return True
        name = spec.name
        if spec.is_write:
            return True
        if name in MAY_REPLICATE:
            return not (name in _SCRIPTS and self._script_without_writes(name, argv))
        if name == "exec" and client.multi:
            return any(queued.is_write or (queued.name in MAY_REPLICATE and not (
                queued.name in _SCRIPTS and self._script_without_writes(queued.name, args)))
                for queued, args in client.multi)
        return False

    def _script_without_writes(self, name: str, argv: list[bytes]) -> bool:
        """A script declared ``no-writes`` (its shebang or its function's flags): not held."""
        scripting = getattr(self.engine, "scripting", None)
        if len(argv) < 2:
            return False
        try:
            if name == "eval":
                from .scripting.runtime import parse_shebang

                return parse_shebang(argv[1])[0].no_writes
            if scripting is None:
                return False
            if name == "evalsha":
                script = scripting.scripts.get(argv[1].lower())
                return script is not None and script.flags.no_writes
            functions = scripting.functions
            function = functions.functions.get(argv[1]) if functions is not None else None
            return function is not None and function.flags.no_writes
        except Exception:  # a malformed shebang: the command itself reports it, once run
            return False

    def hold(self, client: Client, argv: list[bytes]) -> Any:
        """The Block a held command's client waits on; its reply is the command's, once it
        runs after the pause."""
        from .engine import Block

        entry = _Held(client, argv)
        self.held.append(entry)
        block = Block([], 0, _never, None).waiting_on(entry.event, entry.result)
        block.paused = True
        return block

    def drop(self, client: Client) -> None:
        """A held client left: forget its command."""
        if self.held:
            self.held = deque(entry for entry in self.held if entry.client is not client)


def _never(ctx: Any) -> None:
    return None
