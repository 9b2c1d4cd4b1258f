"""rq 3 against trioredis: it stores each job's result in a stream (``XADD rq:results:<id>
MAXLEN ~ 10 ...``, read back with XREVRANGE), so a job only reaches FINISHED, with its
result readable, when streams work."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

rq = pytest.importorskip("rq")

TESTS = os.path.dirname(os.path.abspath(__file__))


def test_rq_worker_burst_finishes_every_job_and_its_result_is_readable(server):
    import rq_jobs
    from redis import Redis
    from rq import Queue
    from rq.job import JobStatus

    connection = Redis(port=server.port)
    queue = Queue("streams-test", connection=connection)
    jobs = [queue.enqueue(rq_jobs.add, number, 1000) for number in range(20)]
    jobs.append(queue.enqueue(rq_jobs.shout, "done"))
    worker = os.path.join(os.path.dirname(sys.executable), "rq")
    environment = dict(os.environ, PYTHONPATH=TESTS)
    finished = subprocess.run(
        [worker, "worker", "--burst", "--url", f"redis://127.0.0.1:{server.port}", "streams-test"],
        env=environment, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    for number, job in enumerate(jobs[:-1]):
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED
        assert job.return_value() == number + 1000
        assert job.latest_result().return_value == number + 1000
    assert jobs[-1].return_value() == "DONE"
    # The results are streams, trimmed as rq asks.
    key = f"rq:results:{jobs[0].id}"
    assert connection.type(key) == b"stream"
    assert connection.xlen(key) == 1
