"""Putting write-back work on RQ: deterministic job ids, scheduling, and the sweeper's
re-enqueueing of rows whose job vanished.

Job functions are named by their import path, so the core never imports ``jobs``. A job
id is derived from the row's state (id, attempt or check number, due time): enqueueing
the same step twice gives the same id, and the sweeper can tell whether a row's job is
still alive.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job, JobStatus

from .models import utcnow
from .writeback import Step

log = logging.getLogger(__name__)

QUEUE = "shipgear-writeback"
JOBS = {
    "send": "shipgear_exchange_plugin.jobs.writeback.send",
    "verify": "shipgear_exchange_plugin.jobs.writeback.verify",
    "feed": "shipgear_exchange_plugin.jobs.writeback.submit_feed",
    "poll": "shipgear_exchange_plugin.jobs.writeback.poll_feed",
}
LIVE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}
#: Steps that go to the front of the queue: a check turns a Submitted row into Success
#: with one store call, and behind a burst of new shipments it waited for every send
#: (2,483 Amazon rows Submitted at once in the 10,000-row benchmark). A row has at most
#: a few checks, so sends are never held up for long.
FRONT = frozenset({"verify"})
#: Finished job records are not needed: the database holds the outcome.
RESULT_TTL = 600
FAILURE_TTL = 7 * 86400


def job_id(kind: str, writeback_id: int, number: int, due: dt.datetime | None) -> str:
    stamp = int(due.timestamp()) if due else 0
    return f"sgx-{kind}-{writeback_id}-{number}-{stamp}"


def enqueue(queue: Queue, kind: str, writeback_id: int, number: int,
            due: dt.datetime | None, *, run_now: bool = False) -> Job:
    """Run ``kind`` for the row at ``due`` (now when None, past, or ``run_now``)."""
    options = {"job_id": job_id(kind, writeback_id, number, due), "result_ttl": RESULT_TTL,
               "failure_ttl": FAILURE_TTL, "description": f"{kind} write-back {writeback_id}",
               "at_front": kind in FRONT}
    if not run_now and due is not None and due > utcnow():
        # RQ's scheduler keeps whole seconds (it rounds down): round up instead, so the
        # job never starts before its row is due and then finds nothing to do.
        at = due.replace(microsecond=0) + dt.timedelta(seconds=1 if due.microsecond else 0)
        return queue.enqueue_at(at, JOBS[kind], writeback_id, **options)
    return queue.enqueue(JOBS[kind], writeback_id, **options)


def follow(queue: Queue, step: Step) -> None:
    """After a job: schedule the row's next step, if it has one. Losing this (Redis down)
    is harmless: the row is due in the database and the sweeper finds it."""
    if step.next_kind is None or step.next_at is None:
        return
    try:
        enqueue(queue, step.next_kind, step.writeback_id, step.next_number, step.next_at)
    except RedisError as exc:
        log.warning("write-back %s: next step not enqueued (%s); the sweeper will",
                    step.writeback_id, exc)


def enqueue_new(queue: Queue, rows: Iterable[tuple[int, int, dt.datetime | None]]) -> int:
    """First attempts of freshly committed rows: (id, attempt number, due)."""
    count = 0
    try:
        for writeback_id, number, due in rows:
            enqueue(queue, "send", writeback_id, number, due)
            count += 1
    except RedisError as exc:
        log.warning("new write-backs not enqueued (%s); the sweeper will pick them up", exc)
    return count


def job_statuses(connection, ids: list[str]) -> list[JobStatus | None]:
    """Each job's status (None: no such job), one field per job in one round trip. The
    sweeper asks this of up to 2,000 jobs at a time during a backlog, and needs nothing
    else of them: ``Job.fetch_many`` would load and decode every field of every job."""
    pipe = connection.pipeline(transaction=False)
    for jid in ids:
        pipe.hget(Job.key_for(jid), "status")
    return [_status(raw) for raw in pipe.execute()]


def _status(raw: bytes | None) -> JobStatus | None:
    try:
        return JobStatus(raw.decode()) if raw else None
    except ValueError:  # not a status this RQ knows: treat the job as gone
        return None


def ensure_jobs(queue: Queue, due_rows: list[tuple[int, str, int, dt.datetime | None]],
                grace: dt.timedelta = dt.timedelta(seconds=90)) -> int:
    """Enqueue each due row that has no live job; returns how many were enqueued.

    A job still queued, scheduled or started for a row that has been due longer than
    ``grace`` is taken for lost: RQ's scheduler can lose its lock when Redis restarts, a
    worker killed between taking a job and starting it leaves it "queued" but in no
    queue, and a killed worker's job stays "started", each until RQ's maintenance
    notices (minutes). Running the row's step again is safe: the claim admits one job."""
    if not due_rows:
        return 0
    overdue_before = utcnow() - grace
    ids = [job_id(kind, wid, number, due) for wid, kind, number, due in due_rows]
    statuses = job_statuses(queue.connection, ids)
    waiting: set[str] | None = None
    enqueued = 0
    for (wid, kind, number, due), jid, status in zip(due_rows, ids, statuses, strict=True):
        stuck = due is not None and due < overdue_before and status in LIVE
        if stuck and status == JobStatus.QUEUED:
            if waiting is None:  # one read of the queue, only when something looks stuck
                waiting = set(queue.get_job_ids())
            stuck = jid not in waiting  # queued in a long backlog is not lost
        elif stuck and status == JobStatus.SCHEDULED:
            # Put back for later by the worker (the database was unreachable): alive while
            # its time in RQ's scheduled registry has not long passed.
            at = queue.connection.zscore(queue.scheduled_job_registry.key, jid)
            stuck = at is None or at < overdue_before.timestamp()
        if status in LIVE and not stuck:
            continue
        enqueue(queue, kind, wid, number, due, run_now=True)
        enqueued += 1
    return enqueued


def enqueue_feed_work(queue: Queue, accounts: list[int], feeds: list[str],
                      now: dt.datetime) -> int:
    """Feed submissions per Amazon account at most once per 2 minutes (createFeed's
    usage plan is 0.0083/s) and polls of feeds once a minute (the job id carries the
    slot), skipping those with a live job."""
    minute = int(now.timestamp()) // 60
    planned = [("feed", account, f"sgx-feed-{account}-{minute // 2}") for account in accounts]
    planned += [("poll", feed, f"sgx-poll-{feed}-{minute}") for feed in feeds]
    if not planned:
        return 0
    statuses = job_statuses(queue.connection, [p[2] for p in planned])
    count = 0
    for (kind, arg, jid), status in zip(planned, statuses, strict=True):
        if status in LIVE:
            continue
        queue.enqueue(JOBS[kind], arg, job_id=jid, result_ttl=RESULT_TTL,
                      failure_ttl=FAILURE_TTL, description=f"{kind} {arg}")
        count += 1
    return count


def enqueue_poll(queue: Queue, feed_id: str, due: dt.datetime) -> None:
    try:
        queue.enqueue_at(due, JOBS["poll"], feed_id,
                         job_id=f"sgx-poll-{feed_id}-{int(due.timestamp())}",
                         result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)
    except RedisError as exc:
        log.warning("feed %s: next poll not enqueued (%s); the sweeper will", feed_id, exc)
