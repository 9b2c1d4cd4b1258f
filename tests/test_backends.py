"""The backends' owner (``trioredis.backends.Backends``) on its own, without sockets and
without an engine: the test lends it plain callables (``Services``), as the engine does, and
drives it with in-memory backends written here the way a third party would write one (on
``BaseBackend``, with ``Ticket``s).  Async tests run under pytest-trio."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio
from trioredis import BaseBackend, EventTicket, Ticket
from trioredis.backends import REWRITE, SAVE, Backends, Services
from trioredis.errors import CommandError
from trioredis.resp import OK


class MemoryBackend(BaseBackend):
    """Buffers writes in memory; with ``sync``, each flush that wrote returns a ticket that the
    test (playing the fsync) makes durable."""

    name = "memory"
    operations = frozenset({SAVE})

    def __init__(self, name="memory", sync=False, priority=0, has_data=False):
        self.name = name
        self.sync = sync
        self.priority = priority
        self.has_data = has_data
        self.buffer: list[tuple[int, list[bytes]]] = []
        self.written: list[tuple[int, list[bytes]]] = []
        self.tickets: list[EventTicket] = []
        self.loaded_by: list = []
        self.host = None
        self.seen_configs: list = []
        self.saves = 0

    def feed(self, db, argv):
        self.buffer.append((db, list(argv)))

    def flush(self):
        if not self.buffer:
            return None
        self.written += self.buffer
        self.buffer = []
        if not self.sync:
            return None
        ticket = EventTicket()
        self.tickets.append(ticket)
        return ticket

    async def run(self, host, *, task_status=trio.TASK_STATUS_IGNORED):
        self.host = host
        task_status.started()
        await trio.sleep_forever()

    def load_priority(self):
        return self.priority

    async def load(self, loader):
        self.loaded_by.append(loader)
        return self.has_data

    def save(self, background, schedule=False):
        self.saves += 1
        if background:
            return OK  # answers at once: no task, no Block

        async def foreground():
            await trio.sleep(0)
            return OK

        return foreground()

    def config_changed(self, old, new):
        self.seen_configs.append(new)
        self.host.set_refusal("MISCONF stop" if new.refuse else None)


class Lent:
    """What the test lends the owner: records what it is told (the engine's side)."""

    def __init__(self):
        self.config = SimpleNamespace(refuse=False)
        self.feeds = []
        self.refusal = None
        self.unflushed = False
        self.waited_on = []
        self.log = SimpleNamespace(notice=lambda _: None, warning=lambda _: None)

    def services(self):
        def set_write_path(feeds, refusal):
            self.feeds, self.refusal = feeds, refusal

        return Services(
            config=lambda: self.config, keyspace=None, hook=None, log=self.log,
            dirty=lambda: 0, rewrite_value=lambda *a: None, dataset_preamble=list,
            record_fork=lambda s: None, record_latency=lambda e, ms: None,
            fatal=lambda m: None, replay=lambda argv: OK, replay_many=lambda argvs: None,
            loading_progress=lambda done, total: None, loading_eta=lambda: 0,
            set_write_path=set_write_path, unflushed=lambda: self.unflushed,
            mark_flushed=lambda: setattr(self, "unflushed", False),
            wait_on=lambda awaitable: self.waited_on.append(awaitable) or "block",
            reload_from=None,
        )


@pytest.fixture
def lent():
    return Lent()


def owner_of(lent, *backends):
    owner = Backends(lent.services())
    owner.register(list(backends))
    return owner


def test_registration_hands_the_engine_only_the_feeds_that_do_something(lent):
    feeding = MemoryBackend()
    quiet = BaseBackend()  # keeps the no-op feed: not on the per-write path
    owner_of(lent, feeding, quiet)
    assert lent.feeds == [feeding.feed]
    assert lent.refusal is None


async def test_a_backend_pushes_its_refusal_and_feeding_through_its_host(lent, nursery):
    first, second = MemoryBackend("first"), MemoryBackend("second")
    owner = owner_of(lent, first, second)
    await owner.start(nursery)
    second.host.set_refusal("MISCONF second")
    assert lent.refusal == "MISCONF second"
    first.host.set_refusal("MISCONF first")
    assert lent.refusal == "MISCONF first"  # registration order decides
    first.host.set_refusal(None)
    second.host.set_refusal(None)
    assert lent.refusal is None and owner.refusal() is None
    first.host.set_feeding(False)
    assert lent.feeds == [second.feed]
    first.host.set_feeding(True)
    assert lent.feeds == [first.feed, second.feed]


async def test_the_config_fan_out_reaches_each_backend_which_pushes_its_state(lent, nursery):
    backend = MemoryBackend()
    owner = owner_of(lent, backend)
    await owner.start(nursery)
    assert backend.host.config is lent.config  # the config in force, read through a callable
    new = SimpleNamespace(refuse=True)
    owner.config_changed(lent.config, new)
    assert backend.seen_configs == [new]
    assert lent.refusal == "MISCONF stop"


def test_flush_returns_the_tickets_replies_wait_for(lent):
    syncing, plain = MemoryBackend("syncing", sync=True), MemoryBackend("plain")
    owner = owner_of(lent, syncing, plain)
    for feed in lent.feeds:
        feed(0, [b"SET", b"k", b"v"])
    lent.unflushed = True
    tickets = owner.flush_writes()
    assert tickets == syncing.tickets and len(tickets) == 1
    assert plain.written == syncing.written == [(0, [b"SET", b"k", b"v"])]
    assert lent.unflushed is False
    assert owner.flush_writes() == []  # nothing buffered: no ticket


def test_durable_state_notifies_after_each_sync_round_until_all_are_durable(lent):
    """The transport's ``notify`` is called (once per ticket it asked) when a ticket becomes
    durable; it asks again then, and gets True once every ticket is."""
    owner = owner_of(lent)
    first, second = EventTicket(), EventTicket()
    calls = []

    def notify():
        calls.append(owner.durable_state([first, second], notify))

    assert owner.durable_state([first, second], notify) is False
    first.set()
    assert calls == [False]  # the second still waits; notify is registered with it again
    second.set()
    assert calls[-1] is True
    assert owner.durable_state([first, second], notify) is True


async def test_a_ticket_that_only_waits_is_awaited(lent):
    """A third-party ticket may implement only ``wait``: durable_state says None (the
    transport then awaits it in a task) and wait_durable returns once it is done."""

    class SlowTicket(Ticket):
        done = False

        async def wait(self):
            await trio.sleep(0.01)
            self.done = True

    owner = owner_of(lent)
    ticket = SlowTicket()
    assert owner.durable_state([ticket], lambda: None) is None
    await owner.wait_durable([ticket])
    assert ticket.done


async def test_load_asks_backends_by_priority_until_one_has_the_dataset(lent):
    low = MemoryBackend("low", priority=0, has_data=True)
    high = MemoryBackend("high", priority=10, has_data=True)
    owner = owner_of(lent, low, high)
    await owner.load()
    assert len(high.loaded_by) == 1 and low.loaded_by == []
    loader = high.loaded_by[0]
    assert loader.execute([b"SET", b"k", b"v"]) == OK


async def test_an_operation_answering_at_once_costs_no_block(lent):
    backend = MemoryBackend()
    owner = owner_of(lent, backend)
    invoke_bgsave = lambda b: b.save(background=True)  # noqa: E731
    assert owner.perform(SAVE, invoke_bgsave, in_transaction=False) == OK
    assert lent.waited_on == []
    assert owner.perform(SAVE, lambda b: b.save(background=False), in_transaction=False) == "block"
    assert len(lent.waited_on) == 1
    lent.waited_on[0].close()
    with pytest.raises(CommandError, match="not allowed"):
        owner.perform(SAVE, lambda b: b.save(background=False), in_transaction=True)
    with pytest.raises(CommandError):
        owner.perform(REWRITE, lambda b: b.rewrite(), in_transaction=False)  # nobody declares it


async def test_close_reports_a_backend_that_failed(lent):
    class Failing(BaseBackend):
        name = "failing"

        async def aclose(self, save):
            raise OSError("disk gone")

    warnings = []
    lent.log = SimpleNamespace(warning=warnings.append)
    owner = owner_of(lent, Failing(), MemoryBackend())
    assert await owner.close(save=False, log=lent.log) is False
    assert "failing" in warnings[0]
