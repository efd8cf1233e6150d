"""RQ workers that run the plugin's jobs inside the host's app context.

Two shapes of the same worker:

* :func:`run_worker`, the ``shipgear-exchange worker`` process: a ``SimpleWorker`` (no
  fork per job, so a job reuses the process's database pool) with RQ's own scheduler;
  SIGTERM lets the current job finish (RQ's warm shutdown).
* :class:`EmbeddedWorker`, the demo's in-process worker for ``memory://`` Redis. RQ's
  scheduler runs in a forked process, which cannot see an in-process fakeredis, so the
  scheduler runs in a thread here (checked on this machine; see shared NOTES.md).

Each job runs in a fresh app context, so it gets a fresh database session that is
removed afterwards even when the job fails.
"""

from __future__ import annotations

import importlib
import logging
import threading

from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty

log = logging.getLogger(__name__)


class AppWorker(SimpleWorker):
    """A SimpleWorker that pushes a Flask app context around every job."""

    app: Flask

    def __init__(self, *args, app: Flask, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app

    def execute_job(self, job, queue):
        with self.app.app_context():
            return super().execute_job(job, queue)


class _ThreadWorker(AppWorker):
    """Runs in a non-main thread: no signal handlers, timer-based job timeouts."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        pass


#: Settings that override a periodic job's manifest interval, by job id.
INTERVAL_SETTINGS = {"writeback-sweep": "SHIPGEAR_SWEEP_INTERVAL",
                     "health-checks": "SHIPGEAR_HEALTH_EVERY"}


def periodic_scheduler(app: Flask, connection: Redis, periodic_jobs: list[dict]) -> CronScheduler:
    """RQ's cron scheduler with the manifest's periodic jobs registered."""
    scheduler = CronScheduler(connection=connection, logging_level="WARNING")
    for entry in periodic_jobs:
        module_name, _, attr = entry["function"].rpartition(".")
        func = getattr(importlib.import_module(module_name), attr)
        every = entry["every"]
        setting = INTERVAL_SETTINGS.get(entry["id"])
        if setting and app.config.get(setting):
            every = int(app.config[setting])
        scheduler.register(func, entry["queue"], interval=every, name=entry["id"],
                           result_ttl=600, failure_ttl=86400)
    return scheduler


class PeriodicThread(threading.Thread):
    """Enqueues due periodic jobs about once a second (RQ's CronScheduler.start() wants the
    main thread for its signal handlers; its enqueue pass does not)."""

    def __init__(self, scheduler: CronScheduler, stop: threading.Event, tick: float = 1.0):
        super().__init__(name="sgx-periodic", daemon=True)
        self.scheduler, self.stop_event, self.tick = scheduler, stop, tick

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.scheduler.enqueue_jobs()
            except Exception:  # noqa: BLE001 - Redis away: try again next tick
                log.exception("periodic jobs not enqueued this pass")
            self.stop_event.wait(self.tick)


def run_worker(app: Flask, connection: Redis, queue_names: list[str], burst: bool = False,
               periodic_jobs: list[dict] | None = None) -> bool:
    """Work ``queue_names`` until stopped (or until empty with ``burst``), with RQ's
    scheduler for delayed retries and the periodic jobs' scheduler beside it."""
    queues = [Queue(name, connection=connection) for name in queue_names]
    # RQ restarts a dead scheduler (e.g. its process killed with the lock) at maintenance:
    # every minute instead of every ten, so delayed retries do not wait for the sweeper.
    worker = AppWorker(queues, connection=connection, app=app, maintenance_interval=60)
    stop = threading.Event()
    if periodic_jobs and not burst:
        PeriodicThread(periodic_scheduler(app, connection, periodic_jobs), stop).start()
    try:
        return worker.work(burst=burst, with_scheduler=not burst, logging_level="INFO")
    finally:
        stop.set()


class EmbeddedWorker:
    """A worker thread and a scheduler thread in this process (the demo)."""

    def __init__(self, app: Flask, connection: Redis, queue_names: list[str],
                 poll_interval: float = 0.5, periodic_jobs: list[dict] | None = None):
        self.app = app
        self.periodic_jobs = list(periodic_jobs or [])
        self.connection = connection
        self.queue_names = list(queue_names)
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.worker: _ThreadWorker | None = None

    def start(self) -> EmbeddedWorker:
        queues = [Queue(name, connection=self.connection) for name in self.queue_names]
        self.worker = _ThreadWorker(queues, connection=self.connection, app=self.app)
        self._threads = [
            threading.Thread(target=self._work, name="sgx-worker", daemon=True),
            threading.Thread(target=self._schedule, name="sgx-scheduler", daemon=True),
        ]
        if self.periodic_jobs:
            self._threads.append(PeriodicThread(
                periodic_scheduler(self.app, self.connection, self.periodic_jobs), self._stop))
        for thread in self._threads:
            thread.start()
        return self

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                # Short bursts so that stop() is noticed; the worker keeps its registration.
                self.worker.work(burst=True, logging_level="WARNING")
            except Exception:  # noqa: BLE001 - keep the demo's worker alive, log why
                log.exception("embedded worker loop failed; retrying")
            self._stop.wait(self.poll_interval)

    def _schedule(self) -> None:
        scheduler = RQScheduler(self.queue_names, connection=self.connection)
        while not self._stop.is_set():
            try:
                scheduler.acquire_locks()
                scheduler.enqueue_scheduled_jobs()
            except Exception:  # noqa: BLE001
                log.exception("embedded scheduler pass failed; retrying")
            self._stop.wait(self.poll_interval)

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
