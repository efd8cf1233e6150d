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

import logging
import threading

from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
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


def run_worker(app: Flask, connection: Redis, queue_names: list[str], burst: bool = False) -> bool:
    """Work ``queue_names`` until stopped (or until empty with ``burst``)."""
    queues = [Queue(name, connection=connection) for name in queue_names]
    worker = AppWorker(queues, connection=connection, app=app)
    return worker.work(burst=burst, with_scheduler=not burst, logging_level="INFO")


class EmbeddedWorker:
    """A worker thread and a scheduler thread in this process (the demo)."""

    def __init__(self, app: Flask, connection: Redis, queue_names: list[str],
                 poll_interval: float = 0.5):
        self.app = app
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
