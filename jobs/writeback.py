"""RQ jobs of the write-back engine. Thin: each asks the core to take one step, then
schedules the step that follows. A job that finds nothing to do (another worker took the
row, the company's plugin or the store account is disabled) returns without touching
the row."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time

from redis.exceptions import RedisError

from shipgear_exchange_plugin import PLUGIN_ID, dispatch, runtime
from shipgear_exchange_plugin.host_contract import get_host
from shipgear_exchange_plugin.jobs.locks import once
from shipgear_exchange_plugin.models import Writeback

WAITING = "waiting: the plugin is disabled for the company, or the store account is"


def send(writeback_id: int) -> str:
    """One attempt at writing a package back to its store."""
    host = get_host()
    step = runtime.writeback_service(host).send(writeback_id)
    if step.action == "waiting":
        return WAITING
    if step.throttled and step.platform == "amazon":  # the sweeper batches the rest
        with contextlib.suppress(RedisError):
            host.redis().zadd(THROTTLED_KEY, {str(step.account_id): time.time() + 600})
    dispatch.follow(runtime.writeback_queue(host), step)
    return step.action


def verify(writeback_id: int) -> str:
    """One check that an accepted write-back shows on the store."""
    host = get_host()
    step = runtime.writeback_service(host).verify(writeback_id)
    if step.action == "waiting":
        return WAITING
    dispatch.follow(runtime.writeback_queue(host), step)
    return step.action


THROTTLED_KEY = "sgx:amazon-throttled"


def _throttled_amazon_accounts(connection) -> frozenset[int]:
    """Amazon accounts whose confirmShipment was throttled in the last 10 minutes (a
    sorted set scored by when each mark expires)."""
    try:
        connection.zremrangebyscore(THROTTLED_KEY, "-inf", time.time())
        members = connection.zrange(THROTTLED_KEY, 0, -1)
    except RedisError:
        return frozenset()
    return frozenset(int(m) for m in members)


def _rows_of_accounts(host, account_ids: list[int]) -> set[int]:
    if not account_ids:
        return set()
    import sqlalchemy as sa

    ids = set(host.db.session.execute(sa.select(Writeback.id).where(
        Writeback.account_id.in_(account_ids), Writeback.status == "pending")).scalars())
    host.db.session.rollback()
    return ids


def sweep_lock_seconds(every: float) -> int:
    """How long a sweep holds the others off: a few intervals. A sweeper killed in the
    middle leaves its lock behind, and until it expires no sweep runs, and after Redis
    restarted empty nothing else would enqueue the due rows. A sweep that outlasts it may
    overlap the next one, which is harmless: the sweep is idempotent and claims are not."""
    return max(2, math.ceil(3 * every))


def sweep() -> dict[str, int]:
    """Periodic: release stale claims and re-enqueue every due row without a live job
    (Redis restarted, a worker killed). Idempotent; one sweep at a time across workers."""
    host = get_host()
    connection = host.redis()
    every = float(host.app.config.get("SHIPGEAR_SWEEP_INTERVAL") or 30)
    with once(connection, "sweep", sweep_lock_seconds(every)) as held:
        if not held:
            return {"skipped": 1}
        service = runtime.writeback_service(host)
        queue = runtime.writeback_queue(host)
        released = service.release_stale_claims()
        companies = host.enabled_company_ids(PLUGIN_ID)
        feeds = runtime.amazon_feeds(host)
        batched = feeds.accounts_due(companies, runtime.feed_threshold(host),
                                     forced=_throttled_amazon_accounts(connection))
        in_feeds = _rows_of_accounts(host, batched)
        due = [row for row in service.due(companies) if row[0] not in in_feeds]
        enqueued = dispatch.ensure_jobs(queue, due, grace=dt.timedelta(seconds=max(10, 3 * every)))
        enqueued += dispatch.enqueue_feed_work(queue, batched, feeds.feeds_due(),
                                               service.now())
        return {"released": released, "due": len(due), "enqueued": enqueued,
                "feeds": len(batched)}


def submit_feed(account_id: int) -> str:
    """Send an Amazon account's due packages as one fulfillment feed (B5)."""
    host = get_host()
    step = runtime.amazon_feeds(host).submit(account_id)
    if step.feed_id and step.next_at:
        dispatch.enqueue_poll(runtime.writeback_queue(host), step.feed_id, step.next_at)
    return f"{step.action}: {step.rows} packages"


def poll_feed(feed_id: str) -> str:
    """Check an Amazon feed; when done, map its report back to each package."""
    host = get_host()
    step = runtime.amazon_feeds(host).poll(feed_id)
    if step.action == "waiting" and step.next_at:
        dispatch.enqueue_poll(runtime.writeback_queue(host), feed_id, step.next_at)
    return step.action
