"""Workers run jobs inside the host's app context, in-process (demo) and as a process."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from rq.job import Job

from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.models import Writeback
from shipgear_exchange_plugin.worker import EmbeddedWorker

from .conftest import BACKENDS
from .jobs_for_tests import count_writebacks
from .services import WorkerProcess, worker_env


def _expected(app, company_id: int) -> int:
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(Writeback).where(
            Writeback.company_id == company_id)).scalar_one()


def _wait_finished(job: Job, seconds: float = 20) -> Job:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.refresh()
        if job.is_finished or job.is_failed:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job.id} still {job.get_status()} after {seconds}s")


def test_embedded_worker_runs_now_and_scheduled_jobs(seeded):
    host = seeded.extensions["exchange.host"]
    queue = host.queue("shipgear-writeback")
    worker = EmbeddedWorker(seeded, host.redis(), ["shipgear-writeback"], poll_interval=0.1)
    worker.start()
    try:
        now = queue.enqueue(count_writebacks, 1)
        later = queue.enqueue_in(dt.timedelta(seconds=1), count_writebacks, 2)
        assert _wait_finished(now).return_value() == _expected(seeded, 1)
        assert _wait_finished(later).return_value() == _expected(seeded, 2)
    finally:
        worker.stop()


# A separate worker process needs a real Redis: this runs on the services backend only
# (always in CI, where conftest makes that backend mandatory).
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b == "services"], indirect=True)
def test_worker_command_works_the_queue_against_real_redis(seeded, tmp_path):
    host = seeded.extensions["exchange.host"]
    job = host.queue("shipgear-writeback").enqueue(count_writebacks, 1)
    env = worker_env(seeded, seeded.config["REDIS_URL"],
                     seeded.config["SQLALCHEMY_DATABASE_URI"], tmp_path)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "shipgear-exchange"), "worker", "--burst"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    job.refresh()
    assert job.is_finished, result.stderr
    assert job.return_value() == _expected(seeded, 1)


def test_the_sweeper_runs_before_a_write_back_backlog(seeded):
    """RQ takes jobs from the first non-empty queue: the periodic sweeper is on the
    maintenance queue, listed first, so a backlog of write-backs never starves it (before,
    it shared a queue with health probes listed after the write-backs and waited for the
    whole backlog)."""
    from rq import Queue

    from shipgear_exchange_plugin import dispatch
    from shipgear_exchange_plugin.plugin import state
    from shipgear_exchange_plugin.worker import AppWorker

    host = seeded.extensions["exchange.host"]
    manifest = state(seeded).manifest
    sweep_queue = next(job["queue"] for job in manifest.data["periodic_jobs"]
                       if job["id"] == "writeback-sweep")
    backlog = [dispatch.enqueue(host.queue(dispatch.QUEUE), "send", 10_000 + n, 1, None)
               for n in range(20)]
    sweep = host.queue(sweep_queue).enqueue("shipgear_exchange_plugin.jobs.writeback.sweep")
    queues = [Queue(name, connection=host.redis()) for name in manifest.queues]
    AppWorker(queues, connection=host.redis(), app=seeded).work(burst=True)
    sweep.refresh()
    for job in backlog:
        job.refresh()
    assert sweep.is_finished and all(job.is_finished for job in backlog)
    assert sweep.started_at < min(job.started_at for job in backlog)


@pytest.fixture
def store_app(store_host):
    return store_host()


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b == "services"], indirect=True)
def test_sigterm_lets_the_current_write_back_finish(store_app, sandbox, tmp_path):
    """`shipgear-exchange worker` told to stop (SIGTERM, as a deploy does) while a store
    call is in flight finishes that write-back, records it and releases the row before
    it exits: nothing is left claimed for the sweeper, nothing is sent twice."""
    from .test_writeback_engine import faults, ship, store

    faults(sandbox, write_latency_ms=2500)
    (wid,) = ship(store_app)
    worker = WorkerProcess(worker_env(store_app, store_app.config["REDIS_URL"],
                                      store_app.config["SQLALCHEMY_DATABASE_URI"], tmp_path),
                           tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 30
        while not store(sandbox).requests or store(sandbox).requests[-1]["method"] != "POST":
            assert time.monotonic() < deadline, "the worker never called the store"
            assert worker.alive(), worker.log()
            time.sleep(0.05)
        worker.process.send_signal(signal.SIGTERM)  # the POST is in flight for 2.5 s
        assert worker.process.wait(timeout=30) == 0, worker.log()
    finally:
        worker.stop()
    with store_app.app_context():
        row = db.session.get(Writeback, wid)
        assert (row.status, row.claimed_by, row.attempt_count) == ("success", None, 1)
    assert len(store(sandbox).writes) == 1
