"""Client libraries whose Redis support runs on Lua scripts, against a real server socket:
Celery (solo-pool worker, Redis broker and result backend), dramatiq (Redis broker, whose
every enqueue/fetch/ack is a Lua script), huey (scheduled and periodic tasks)."""

from __future__ import annotations

import threading
import time

import pytest
from servers import ServerThread, wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("libraries")
    with ServerThread([["save", ""], ["appendonly", "no"], ["dir", str(directory)]]) as running:
        yield running


def test_celery_round_trip_with_a_solo_pool_worker(server):
    celery = pytest.importorskip("celery")
    from celery.contrib.testing.worker import start_worker

    url = f"redis://127.0.0.1:{server.port}/1"
    app = celery.Celery("trioredis_test", broker=url, backend=url)
    app.conf.update(broker_connection_retry_on_startup=False, worker_hijack_root_logger=False,
                    task_default_queue="trioredis")

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False,
                      shutdown_timeout=10, loglevel="WARNING"):
        results = [add.delay(i, 10) for i in range(5)]
        assert [result.get(timeout=30) for result in results] == [10, 11, 12, 13, 14]


def test_dramatiq_send_and_worker(server):
    dramatiq = pytest.importorskip("dramatiq")
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=f"redis://127.0.0.1:{server.port}/2")
    dramatiq.set_broker(broker)
    seen: list[int] = []

    @dramatiq.actor(broker=broker, max_retries=0)
    def record(n: int) -> None:
        seen.append(n)

    for n in range(5):
        record.send(n)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        wait_for(lambda: len(seen) == 5, 30, "dramatiq to run every message")
        broker.join(record.queue_name, timeout=10_000)
    finally:
        worker.stop()
        broker.close()
    assert sorted(seen) == [0, 1, 2, 3, 4]


def test_huey_scheduled_and_periodic_tasks_run(server):
    pytest.importorskip("huey")
    from huey import RedisHuey, crontab

    huey = RedisHuey("trioredis", host="127.0.0.1", port=server.port, db=3)
    ran: list[str] = []

    @huey.task()
    def later(tag: str) -> str:
        ran.append(tag)
        return tag

    @huey.periodic_task(crontab(minute="*"))
    def every_minute() -> None:
        ran.append("periodic")

    scheduled = later.schedule(("scheduled",), delay=1)
    immediate = later("now")
    consumer = huey.create_consumer(workers=1, periodic=True, check_worker_health=False,
                                    scheduler_interval=1)
    # huey's consumer installs signal handlers, which only a main thread may do: here it runs
    # in a thread (a process would need the tasks importable), so it keeps pytest's handlers.
    consumer._set_signal_handlers = lambda: None
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        assert immediate.get(blocking=True, timeout=30) == "now"
        assert scheduled.get(blocking=True, timeout=30) == "scheduled"
        # The scheduler enqueues a periodic task at the start of a minute; enqueue it the way
        # it does (through Redis), rather than waiting for the clock.
        huey.enqueue(every_minute.s())
        wait_for(lambda: "periodic" in ran, 30, "the periodic task")
    finally:
        consumer.stop(graceful=False)
        thread.join(10)
        time.sleep(0.1)
    assert ran.index("now") < ran.index("scheduled")
