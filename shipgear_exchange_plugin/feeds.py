"""Amazon's batch path (PRODUCT.md B5): many due confirmations go as one flat-file
fulfillment feed instead of one confirmShipment call each.

The feed is one attempt for every package in it. Submitting numbers an attempt on each
row ("accepted": in feed X) and marks them ``submitted`` with the feed id; polling maps
the processing report back per package: confirmed records go on to the usual
verification, failed records (and every record of a FATAL or CANCELLED feed) turn that
row's attempt into a failed one, retried with backoff like any other. Rows of a feed
are ordered by id both when submitted and when mapped, which is how the report's record
numbers find their package.

While a submit holds its rows they carry ``FEED_SENDING``: should the job end without
knowing whether Amazon took the feed (createFeed unanswered, the worker killed), the rows
(then ``FEED_UNKNOWN``) wait as long as a feed may take to be processed, then ask Amazon
before sending again. A feed still unprocessed after FEED_MAX_POLLS checks may be processed
later, so its rows also ask first.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa

from .connectors import Outcome, Result, package_of
from .models import Attempt, StoreAccount, Writeback, WritebackStatus
from .writeback import FEED_MAX_POLLS, FEED_SENDING, WritebackService

log = logging.getLogger(__name__)

#: Due Amazon packages of one account from which a feed is cheaper than single calls.
DEFAULT_THRESHOLD = 25
#: Largest feed we build (Amazon takes far more; smaller feeds report back sooner).
MAX_FEED_ROWS = 500


@dataclass(frozen=True)
class FeedStep:
    action: str  # "submitted", "waiting", "mapped", "failed", "skipped"
    feed_id: str | None = None
    rows: int = 0
    next_at: dt.datetime | None = None


class AmazonFeeds:
    """Feed submission and polling on top of a :class:`WritebackService`."""

    def __init__(self, service: WritebackService, poll_every: float | None = None) -> None:
        self.service = service
        self.session = service.session
        self.poll_every = dt.timedelta(seconds=poll_every or service.policy.feed_poll_every)

    def accounts_due(self, company_ids: list[int], threshold: int = DEFAULT_THRESHOLD,
                     forced: frozenset[int] = frozenset()) -> list[int]:
        """Amazon accounts with at least ``threshold`` due packages (or, for ``forced``
        accounts whose confirmShipment was throttled, at least two)."""
        if not company_ids:
            return []
        now = self.service.now()
        counts = self.session.execute(
            sa.select(Writeback.account_id, sa.func.count())
            .join(StoreAccount, StoreAccount.id == Writeback.account_id)
            .where(StoreAccount.platform == "amazon", StoreAccount.enabled.is_(True),
                   Writeback.company_id.in_(company_ids),
                   Writeback.needs_check.is_(False),
                   *self.service._claimable(WritebackStatus.PENDING, now))
            .group_by(Writeback.account_id)).all()
        self.session.rollback()
        return sorted(account for account, count in counts
                      if count >= threshold or (account in forced and count >= 2))

    def submit(self, account_id: int, limit: int = MAX_FEED_ROWS) -> FeedStep:
        """Send the account's due packages as one feed. Should the database go away
        meanwhile, the rows claimed so far are released by this process's next job, as
        after a single send."""
        claimed: dict[int, str | None] = {}  # row -> the feed that took it
        with self.service.database_lost_leaves_orphans(claimed):
            return self._submit(account_id, limit, claimed)

    def _submit(self, account_id: int, limit: int, claimed: dict[int, str | None]
                ) -> FeedStep:
        self.service.release_orphaned_claims()
        rows = self._claim_batch(account_id, limit, claimed)
        if not rows:
            return FeedStep("skipped")
        connector = self.service._connector_factory(rows[0])
        try:
            ready, refused = [], []
            for row in rows:
                problem = connector.check(package_of(row))
                (refused if problem else ready).append((row, problem))
            result = (connector.submit_feed([package_of(r) for r, _ in ready]) if ready
                      else None)
        finally:
            connector.close()
        feed_id = (str(result.data) if result is not None
                   and result.outcome is Outcome.ACCEPTED else None)
        if feed_id:  # Amazon has the feed: should the database go now, its rows wait for it
            claimed.update((row.id, feed_id) for row, _ in ready)
        now = self.service.now()
        ours = self._release_batch([row.id for row in rows])
        refused = [(row, problem) for row, problem in refused if row.id in ours]
        ready = [(row, problem) for row, problem in ready if row.id in ours]
        for row, _ in refused + ready:  # in no feed, or in the one recorded below
            row.feed_id = None
        for row, problem in refused:  # fails alone, like a single confirmShipment would
            self.service.add_attempt(row, problem, now)
            self.service._fail_attempt(row, problem, now)
            row.claimed_by = row.claimed_at = None
        step = FeedStep("failed", rows=len(ready))
        if feed_id:
            for row, _ in ready:
                self.service.into_feed(row, feed_id, Result(
                    Outcome.ACCEPTED, f"Sent in Amazon feed {feed_id}",
                    http_status=result.http_status, request_id=result.request_id,
                    latency_ms=result.latency_ms), now, now + self.poll_every)
            step = FeedStep("submitted", feed_id, len(ready), now + self.poll_every)
        elif result is not None:
            for row, _ in ready:
                if result.deferred:
                    row.attempt_count -= 1
                    row.next_attempt_at = now + dt.timedelta(seconds=result.retry_after or 1)
                else:
                    self.service.add_attempt(row, result, now)
                    if result.maybe_applied:  # createFeed unanswered: a feed may exist
                        self.service.fail_in_unknown_feed(row, result, now)
                    else:
                        self.service._fail_attempt(row, result, now)
                row.claimed_by = row.claimed_at = None
        self.session.commit()
        log.info("amazon account %s: feed %s with %d packages", account_id, step.feed_id,
                 step.rows)
        return step

    def poll(self, feed_id: str) -> FeedStep:
        self.service.release_orphaned_claims()
        rows = self.session.execute(
            sa.select(Writeback).where(Writeback.feed_id == feed_id,
                                       Writeback.status == WritebackStatus.SUBMITTED)
            .order_by(Writeback.id).with_for_update(skip_locked=True)).scalars().all()
        if not rows or not rows[0].account.enabled:  # turned off: the sweeper polls it
            self.session.rollback()                     # again once it is on (feeds_due)
            return FeedStep("skipped", feed_id)
        connector = self.service._connector_factory(rows[0])
        try:
            result = connector.feed_results(feed_id, [package_of(r) for r in rows])
        finally:
            connector.close()
        now = self.service.now()
        if result.outcome is Outcome.OK:
            for row in rows:
                ok, message = result.data.get(row.package_key, (False, "Not in the report"))
                row.feed_id = None
                if ok:
                    row.verify_checks = 0
                    row.last_error = None
                    row.next_attempt_at = now + self.service.policy.verify_delay(0)
                else:
                    self._fail_feed_record(row, message, now)
            self.session.commit()
            return FeedStep("mapped", feed_id, len(rows))
        polls = rows[0].verify_checks + 1
        for row in rows:
            row.verify_checks = polls
            if polls >= FEED_MAX_POLLS:
                row.feed_id = None
                self._fail_feed_record(row, f"Amazon had not processed feed {feed_id} after "
                                       f"{polls} checks: {result.message}", now,
                                       maybe_applied=True)  # it may yet: ask first
            else:
                row.last_error = f"In Amazon feed {feed_id}: {result.message}"
                row.next_attempt_at = now + self.poll_every
        self.session.commit()
        if polls >= FEED_MAX_POLLS:
            return FeedStep("failed", feed_id, len(rows))
        return FeedStep("waiting", feed_id, len(rows), now + self.poll_every)

    def feeds_due(self) -> list[str]:
        """Feeds of enabled accounts whose next poll is due (their poll job may have
        vanished, or the account was off)."""
        now = self.service.now()
        enabled = sa.select(StoreAccount.id).where(StoreAccount.enabled.is_(True))
        ids = self.session.execute(
            sa.select(Writeback.feed_id).where(
                Writeback.feed_id.is_not(None), Writeback.status == WritebackStatus.SUBMITTED,
                Writeback.next_attempt_at <= now, Writeback.account_id.in_(enabled)
            ).distinct()).scalars().all()
        self.session.rollback()
        return list(ids)

    # -- helpers ---------------------------------------------------------------------------
    def _claim_batch(self, account_id: int, limit: int, claimed: dict[int, str | None]
                     ) -> list[Writeback]:
        """Claim up to ``limit`` due rows, each numbering its attempt; their ids go into
        ``claimed`` before the claim is written, in case it lands unseen."""
        service, now = self.service, self.service.now()
        conditions = [Writeback.account_id == account_id, Writeback.needs_check.is_(False),
                      *service._claimable(WritebackStatus.PENDING, now),
                      sa.exists().where(StoreAccount.id == account_id,  # not disabled since
                                        StoreAccount.enabled.is_(True))]
        ids = self.session.execute(
            sa.select(Writeback.id).where(*conditions).order_by(Writeback.id).limit(limit)
            .with_for_update(skip_locked=True)).scalars().all()
        if not ids:
            self.session.rollback()
            return []
        claimed.update(dict.fromkeys(ids))
        self.session.execute(
            sa.update(Writeback).where(Writeback.id.in_(ids), *conditions)
            .values(claimed_by=service.worker_id, claimed_at=now, feed_id=FEED_SENDING,
                    attempt_count=Writeback.attempt_count + 1)
            .execution_options(synchronize_session=False))
        self.session.commit()
        return list(self.session.execute(
            sa.select(Writeback).where(Writeback.id.in_(ids),
                                       Writeback.claimed_by == service.worker_id)
            .order_by(Writeback.id).execution_options(populate_existing=True)).scalars())

    def _release_batch(self, ids: list[int]) -> set[int]:
        """The rows of the batch still claimed by this worker, released and locked until
        the commit. A row the sweeper took meanwhile (a stalled worker) already counts an
        interrupted attempt that checks first, so this job's result must not touch it."""
        kept = set(self.session.execute(
            sa.update(Writeback).where(Writeback.id.in_(ids),
                                       Writeback.claimed_by == self.service.worker_id)
            .values(claimed_by=None, claimed_at=None).returning(Writeback.id)
            .execution_options(synchronize_session=False)).scalars())
        if len(kept) < len(ids):
            log.warning("amazon feed: %d rows were taken over while the feed was sent; "
                        "their result is dropped", len(ids) - len(kept))
        return kept

    def _fail_feed_record(self, row: Writeback, message: str, now: dt.datetime,
                          maybe_applied: bool = False) -> None:
        """The feed attempt of this row failed: its timeline entry says so, and the row
        is retried (or fails for good at the 5th failure)."""
        attempt = self.session.execute(sa.select(Attempt).where(
            Attempt.writeback_id == row.id, Attempt.number == row.attempt_count)).scalar()
        if attempt is not None:
            attempt.outcome = Outcome.RETRYABLE.value
            attempt.message = f"Amazon feed record failed: {message}"
        row.status = WritebackStatus.PENDING
        self.service._fail_attempt(row, Result(
            Outcome.RETRYABLE, f"Amazon feed record failed: {message}",
            maybe_applied=maybe_applied), now)
