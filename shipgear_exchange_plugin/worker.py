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

Outages (issue #6, item 5). The database holds every write-back row, so losing it delays
work and loses none; the worker must neither fail its jobs for good nor spin:

* a job whose database cannot be reached is not failed but retried later
  (:class:`AppJob`; a periodic job just waits for its next run), and the worker then
  waits for the database with growing pauses before it takes another job
  (``SHIPGEAR_WORKER_BACKOFF``: the first and the longest pause, default ``1,60``);
* RQ's worker loop quits when Redis goes away in the middle of a job: :func:`run_worker`
  waits for Redis with the same growing pauses and starts a new worker loop, and gives
  up (exit status 1, for the process supervisor) only after
  ``SHIPGEAR_WORKER_REDIS_GIVE_UP`` seconds without Redis (default 900).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import signal
import threading
import time
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, SimpleWorker
from rq.cron import CronScheduler
from rq.job import Job
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty

from . import dberrors
from .host_contract import EXTENSION_KEY

log = logging.getLogger(__name__)

#: A job is retried this many times while the database stays away (about 25 minutes with
#: the default pauses); then RQ fails it and the sweeper enqueues its row again once the
#: database is back (the row never left it).
DATABASE_RETRIES = 30
#: Set on the jobs the periodic scheduler enqueues: they run again at their next interval.
PERIODIC_META = "sgx_periodic"
#: A worker loop that ran this long before it stopped starts again after the first pause.
HEALTHY_RUN_SECONDS = 60


def backoff_settings(config: Any) -> tuple[float, float]:
    """(first, longest) pause in seconds from ``SHIPGEAR_WORKER_BACKOFF``."""
    raw = config.get("SHIPGEAR_WORKER_BACKOFF") or "1,60"
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    try:
        first, longest = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError("SHIPGEAR_WORKER_BACKOFF must be two numbers of seconds, the first "
                         f"and the longest pause, e.g. 1,60; got {raw!r}") from None
    if not 0 < first <= longest:
        raise ValueError(f"SHIPGEAR_WORKER_BACKOFF needs 0 < first <= longest, got {raw!r}")
    return first, longest


def redis_give_up_after(config: Any) -> float:
    raw = config.get("SHIPGEAR_WORKER_REDIS_GIVE_UP") or 900
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ValueError("SHIPGEAR_WORKER_REDIS_GIVE_UP must be a number of seconds, "
                         f"got {raw!r}") from None


class AppJob(Job):
    """A job that turns an unreachable database into a later retry.

    The job's own work is in the database (its row, claimed or not, stays there), so the
    retry is safe: it claims the row again like any other run. ``database_error`` tells
    the worker to wait for the database before taking the next job."""

    database_error: BaseException | None = None

    def perform(self) -> Any:
        try:
            return super().perform()
        except Exception as exc:
            if dberrors.classify(exc) != dberrors.UNREACHABLE:
                raise
            self.database_error = exc
            if self.meta.get(PERIODIC_META):
                log.warning("job %s (%s): database unreachable (%s); it runs again at its "
                            "next interval", self.id, self.func_name, dberrors.summary(exc))
                return "skipped: database unreachable"
            first, longest = backoff_settings(current_app.config)
            delay = math.ceil(min(first * 2 ** (self.number_of_retries or 0), longest))
            log.warning("job %s (%s): database unreachable (%s); retried in %d s",
                        self.id, self.func_name, dberrors.summary(exc), delay)
            return Retry(max=DATABASE_RETRIES, interval=max(1, delay))


class AppWorker(SimpleWorker):
    """A SimpleWorker that pushes a Flask app context around every job, and waits for
    the database when a job found it unreachable."""

    app: Flask
    job_class = AppJob

    def __init__(self, *args, app: Flask, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app
        self.first_pause, self.longest_pause = backoff_settings(app.config)
        self.stopping = threading.Event()

    def execute_job(self, job, queue):
        with self.app.app_context():
            result = super().execute_job(job, queue)
        error = getattr(job, "database_error", None)
        if error is not None:
            self.wait_for_database(error)
        return result

    def request_stop(self, signum, frame):
        self.stopping.set()
        super().request_stop(signum, frame)

    def wait_for_database(self, error: BaseException) -> None:
        """Pause (doubling up to the longest pause) until ``select 1`` answers, so that a
        queue full of jobs is not run into the same error one after the other."""
        pause = self.first_pause
        while True:
            log.warning("Worker %s: database unreachable (%s); next check in %g s",
                        self.name, dberrors.summary(error), pause)
            if self._pause(pause):
                return
            error = self._database_error()
            if error is None:
                log.warning("Worker %s: database reachable again", self.name)
                return
            pause = min(pause * 2, self.longest_pause)

    def _pause(self, seconds: float) -> bool:
        """Sleep, keeping the worker's registration alive; True when asked to stop."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.stopping.wait(min(left, 10)):
                return True
            with contextlib.suppress(RedisError):
                self.heartbeat()
        return self.stopping.is_set()

    def _database_error(self) -> BaseException | None:
        with self.app.app_context():
            engine = self.app.extensions[EXTENSION_KEY].db.engine
            try:
                with engine.connect() as connection:
                    connection.execute(sa.text("select 1"))
            except Exception as exc:  # noqa: BLE001 - only the database's absence is ours
                if dberrors.classify(exc) == dberrors.UNREACHABLE:
                    return exc
                log.exception("Worker %s: database check failed", self.name)
        return None


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
                           result_ttl=600, failure_ttl=86400, meta={PERIODIC_META: True})
    return scheduler


class PeriodicThread(threading.Thread):
    """Enqueues due periodic jobs about once a second (RQ's CronScheduler.start() wants the
    main thread for its signal handlers; its enqueue pass does not)."""

    def __init__(self, scheduler: CronScheduler, stop: threading.Event, tick: float = 1.0):
        super().__init__(name="sgx-periodic", daemon=True)
        self.scheduler, self.stop_event, self.tick = scheduler, stop, tick

    def run(self) -> None:
        pause = self.tick
        while not self.stop_event.is_set():
            try:
                self.scheduler.enqueue_jobs()
                pause = self.tick
            except RedisError as exc:  # Redis away: one line, and less often while it is
                pause = min(max(pause, self.tick) * 2, 30)
                log.warning("periodic jobs not enqueued: Redis unreachable (%s); next try "
                            "in %g s", exc, pause)
            except Exception:  # noqa: BLE001 - try again next tick
                log.exception("periodic jobs not enqueued this pass")
            self.stop_event.wait(pause)


def run_worker(app: Flask, connection: Redis, queue_names: list[str], burst: bool = False,
               periodic_jobs: list[dict] | None = None) -> bool:
    """Work ``queue_names`` until stopped (or until empty with ``burst``), with RQ's
    scheduler for delayed retries and the periodic jobs' scheduler beside it.

    RQ's loop ends by itself when Redis goes away in the middle of a job: then this waits
    for Redis (pauses doubling up to the longest) and starts a new loop; after
    ``SHIPGEAR_WORKER_REDIS_GIVE_UP`` seconds without Redis it exits with status 1."""
    queues = [Queue(name, connection=connection) for name in queue_names]
    first, longest = backoff_settings(app.config)
    give_up_after = redis_give_up_after(app.config)
    stop = threading.Event()
    if periodic_jobs and not burst:
        PeriodicThread(periodic_scheduler(app, connection, periodic_jobs), stop).start()
    worked = False
    pause = first
    try:
        while True:
            # RQ restarts a dead scheduler (e.g. its process killed with the lock) at
            # maintenance: every minute instead of every ten, so delayed retries do not
            # wait for the sweeper.
            worker = AppWorker(queues, connection=connection, app=app, maintenance_interval=60)
            started = time.monotonic()
            try:
                worked = worker.work(burst=burst, with_scheduler=not burst,
                                     logging_level="INFO") or worked
            except RedisError as exc:  # registering its birth or its death without Redis
                log.warning("Worker %s: Redis error (%s)", worker.name, exc)
            if worker.stopping.is_set() or (burst and _queues_empty(queues)):
                return worked
            if time.monotonic() - started > HEALTHY_RUN_SECONDS:
                pause = first
            if not _wait_for_redis(connection, pause, longest, give_up_after, worker.name):
                return worked
            pause = min(pause * 2, longest)
    finally:
        stop.set()


def _queues_empty(queues: list[Queue]) -> bool:
    try:
        return all(queue.count == 0 for queue in queues)
    except RedisError:
        return False


def _wait_for_redis(connection: Redis, pause: float, longest: float, give_up_after: float,
                    name: str) -> bool:
    """After a worker loop ended by itself: pause, then start again once Redis answers.
    False when SIGTERM or SIGINT came meanwhile (the worker stops as asked)."""
    stopped = threading.Event()
    with _stop_signals(stopped):
        down_since = time.monotonic()
        log.warning("Worker %s stopped unexpectedly; starting again in %g s", name, pause)
        while not stopped.wait(pause):
            try:
                connection.ping()
            except RedisError as exc:
                waited = time.monotonic() - down_since
                if waited >= give_up_after:
                    log.error("Redis unreachable for %d s (%s): the worker gives up", waited,
                              exc)
                    raise SystemExit(1) from exc
                pause = min(pause * 2, longest)
                log.warning("Redis unreachable (%s); next try in %g s", exc, pause)
                continue
            log.warning("Redis reachable: starting a new worker loop")
            return True
    return False


@contextlib.contextmanager
def _stop_signals(stopped: threading.Event):
    """SIGTERM and SIGINT set ``stopped`` while the worker waits between loops (RQ's own
    handlers belong to the loop that ended; they may need Redis to record the stop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: stopped.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class EmbeddedWorker:
    """Worker threads and a scheduler thread in this process (the demo). More than one
    worker thread keeps one slow store from holding up every other store's write-backs."""

    def __init__(self, app: Flask, connection: Redis, queue_names: list[str],
                 poll_interval: float = 0.5, periodic_jobs: list[dict] | None = None,
                 threads: int = 1):
        self.app = app
        self.threads = max(1, threads)
        self.periodic_jobs = list(periodic_jobs or [])
        self.connection = connection
        self.queue_names = list(queue_names)
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.workers: list[_ThreadWorker] = []

    def start(self) -> EmbeddedWorker:
        queues = [Queue(name, connection=self.connection) for name in self.queue_names]
        self.workers = [_ThreadWorker(queues, connection=self.connection, app=self.app)
                        for _ in range(self.threads)]
        self._threads = [
            threading.Thread(target=self._work, args=(worker,), name=f"sgx-worker-{n}",
                             daemon=True) for n, worker in enumerate(self.workers)]
        self._threads.append(
            threading.Thread(target=self._schedule, name="sgx-scheduler", daemon=True))
        if self.periodic_jobs:
            self._threads.append(PeriodicThread(
                periodic_scheduler(self.app, self.connection, self.periodic_jobs), self._stop))
        for thread in self._threads:
            thread.start()
        return self

    def _work(self, worker: _ThreadWorker) -> None:
        while not self._stop.is_set():
            try:
                # Short bursts so that stop() is noticed; the worker keeps its registration.
                worker.work(burst=True, logging_level="WARNING")
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
        for worker in self.workers:
            worker.stopping.set()  # a wait for the database ends now
        for thread in self._threads:
            thread.join(timeout)
