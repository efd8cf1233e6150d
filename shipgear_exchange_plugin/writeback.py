"""The write-back engine: claim a row, make one attempt, record it, decide what is next.

The database is the source of truth and RQ only carries work (PRODUCT.md §4). Each step
is a short transaction; no row lock is held while a store is called:

1. **claim** (transaction): a compare-and-set on the row (plus ``FOR UPDATE SKIP LOCKED``
   on PostgreSQL) takes it for this worker and numbers the attempt *before* anything is
   sent, so a worker killed mid-call still leaves the attempt counted;
2. **call** the store (no transaction): when the last send may have landed unseen
   (``needs_check``), ask the store first and send nothing if it is there (B2);
3. **record** (transaction): the attempt row and the write-back's new state together.

Outcomes (PRODUCT.md B1, B3, S6): accepted → ``submitted`` and verification checks are
scheduled; verified → ``success``; retryable → the next attempt after the configured
backoff or the store's hint, ``failed`` at the 5th failure; needs fixing or
re-authorising → ``failed`` at once with a plain explanation. A call held back by the
shared rate limiter costs no attempt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from . import config as plugin_config
from .addresses import AddressRules
from .connectors import (
    CallRecorder,
    Connector,
    Outcome,
    Result,
    Throttle,
    connector_for,
    package_of,
)
from .connectors.base import clip
from .credentials import read_credentials
from .crypto import CredentialBox
from .models import (
    MAX_ATTEMPTS,
    Attempt,
    AuditEvent,
    StoreAccount,
    Writeback,
    WritebackStatus,
    utcnow,
)

log = logging.getLogger(__name__)

#: The longest wait between attempts whatever a store asks for.
MAX_DELAY = dt.timedelta(hours=24)
#: Checks of an Amazon feed's processing status before it counts as a failed attempt.
FEED_MAX_POLLS = 60
#: ``feed_id`` of a pending row while an Amazon feed submit holds it. Should that job end
#: unseen (its worker killed, createFeed's answer lost), the row may be in a feed that
#: Amazon has yet to process, and a confirmShipment now would ship the package twice.
FEED_SENDING = "(sending)"
#: ``feed_id`` of a row whose last attempt may be in such a feed: it waits
#: ``Policy.feed_settle`` from that attempt (Retry now too), then asks Amazon first.
FEED_UNKNOWN = "(unknown)"


@dataclass(frozen=True)
class Policy:
    """Timing of retries and verification, from the ``SHIPGEAR_*`` settings."""

    retry_schedule: tuple[float, ...] = (60, 300, 1800, 7200)
    verify_schedule: tuple[float, ...] = (20, 60, 300, 900, 3600, 7200)
    claim_stale_after: float = 300
    timeout: tuple[float, float] = (3.05, 15.0)
    #: Seconds between checks of an Amazon feed; its processing may take FEED_MAX_POLLS of
    #: them, which is also how long a row that may be in an unknown feed waits.
    feed_poll_every: float = 30

    def __post_init__(self) -> None:
        # A claim is renewed before a store call once a third of it has passed, so two
        # thirds of it must outlast the slowest call, or a live worker could lose its row.
        slowest = sum(self.timeout)
        if self.claim_stale_after < 1.5 * slowest:
            raise ValueError(f"SHIPGEAR_CLAIM_STALE_AFTER ({self.claim_stale_after:g} s) must "
                             f"be at least 1.5 times the connect and read timeouts together "
                             f"({slowest:g} s)")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Policy:
        timeout = plugin_config.seconds_list(config, "SHIPGEAR_HTTP_TIMEOUT")
        if len(timeout) != 2:
            raise ValueError("SHIPGEAR_HTTP_TIMEOUT must be 'connect,read' seconds")
        return cls(
            retry_schedule=plugin_config.seconds_list(config, "SHIPGEAR_RETRY_SCHEDULE"),
            verify_schedule=plugin_config.seconds_list(config, "SHIPGEAR_VERIFY_SCHEDULE"),
            claim_stale_after=float(plugin_config.int_setting(config,
                                                              "SHIPGEAR_CLAIM_STALE_AFTER")),
            timeout=(timeout[0], timeout[1]),
            feed_poll_every=float(config.get("SHIPGEAR_FEED_POLL_EVERY") or 30),
        )

    @property
    def feed_settle(self) -> float:
        """How long Amazon may take to process a feed, in seconds, before we give up."""
        return self.feed_poll_every * FEED_MAX_POLLS

    def retry_delay(self, failures: int, hint: float | None) -> dt.timedelta:
        """Wait after the ``failures``-th failure: the schedule, or the store's longer hint."""
        base = self.retry_schedule[min(failures, len(self.retry_schedule)) - 1]
        return min(dt.timedelta(seconds=max(base, hint or 0)), MAX_DELAY)

    def verify_delay(self, checks_done: int) -> dt.timedelta:
        return dt.timedelta(seconds=self.verify_schedule[checks_done])


@dataclass(frozen=True)
class Step:
    """What a job did to a row and when the row wants its next job (None: final)."""

    writeback_id: int
    action: str  # "sent", "verified", "deferred", "skipped"
    status: str | None = None
    next_at: dt.datetime | None = None
    next_kind: str | None = None  # "send" or "verify"
    attempt: int | None = None
    next_number: int = 0  # the next send's attempt number (0 for a check)
    throttled: bool = False  # the store (or our shared limiter) held this call back
    account_id: int | None = None
    platform: str | None = None


ConnectorFactory = Callable[[Writeback], Connector]

class _Orphan(NamedTuple):
    noted: float  # time.monotonic() when the database was lost
    feed_id: str | None = None  # the Amazon feed that took the row, if one had


#: Claims this process could not end because the database went away during the job:
#: (row id, worker id) -> _Orphan. Its next job that reaches the database releases them
#: as the sweeper would, instead of leaving the rows to wait out
#: SHIPGEAR_CLAIM_STALE_AFTER; a row that Amazon took in a feed goes on to wait for that
#: feed's report instead. Only this process knows that those jobs are over; if it dies,
#: or the row stays locked (a connection the server has not noticed is gone), the sweeper
#: still does, and the note is dropped once the claim would be stale anyway.
_ORPHANED: dict[tuple[int, str], _Orphan] = {}
_ORPHANED_LOCK = threading.Lock()


class WritebackService:
    """One worker's view of the engine. ``now`` is injectable for tests."""

    def __init__(self, session: Session, box: CredentialBox, *, policy: Policy | None = None,
                 recorder: CallRecorder | None = None, throttle: Throttle | None = None,
                 connector_factory: ConnectorFactory | None = None,
                 now: Callable[[], dt.datetime] = utcnow, worker_id: str | None = None,
                 enabled: Callable[[int], bool] | None = None,
                 addresses: AddressRules | None = None) -> None:
        self.session = session
        self.addresses = addresses  # where store calls may go (None: anywhere)
        self.enabled = enabled  # is the plugin on for this company? (None: always)
        self.box = box
        self.policy = policy or Policy()
        self.recorder = recorder
        self.throttle = throttle
        self.now = now
        self.worker_id = worker_id or f"w-{uuid.uuid4().hex[:12]}"
        self._connector_factory = connector_factory or self._connector
        self._held: tuple[int, dt.datetime] | None = None  # (row id, claimed at) while working
        self._calls: Any = None  # the job's call recorder, see _store_calls

    def _connector(self, row: Writeback) -> Connector:
        return connector_for(row.account, read_credentials(self.box, row.account),
                             self._calls or self.recorder, self.policy.timeout,
                             throttle=_ClaimKeeper(self, self.throttle),
                             addresses=self.addresses)

    @contextlib.contextmanager
    def _store_calls(self, row: Writeback):
        """A connector for the row, closed afterwards; its calls are counted together at
        the end (one Redis round trip for the job instead of one per call)."""
        batch = getattr(self.recorder, "batch", None)
        self._calls = batch() if batch is not None else None
        connector = None
        try:
            connector = self._connector_factory(row)
            yield connector
        finally:
            if connector is not None:
                connector.close()
            if self._calls is not None:
                self._calls.flush()
            self._calls = None

    # -- claiming --------------------------------------------------------------------------
    def _claimable(self, status: WritebackStatus, now: dt.datetime):
        """Due, in ``status`` and held by nobody. A stale claim is not taken over here: the
        sweeper releases it and counts the attempt as interrupted, so that the next one
        asks the store first (its worker may have sent before it died)."""
        conditions = [
            Writeback.status == status,
            Writeback.next_attempt_at.is_not(None),
            Writeback.next_attempt_at <= now,
            Writeback.claimed_by.is_(None),
        ]
        if status == WritebackStatus.PENDING:
            conditions.append(Writeback.error_count < MAX_ATTEMPTS)
        else:
            conditions.append(Writeback.feed_id.is_(None))
        return conditions

    def _claim(self, writeback_id: int, status: WritebackStatus,
               reserve_attempt: bool) -> Writeback | Step:
        """Take the row for this worker: one ``UPDATE ... RETURNING`` whose target is
        picked with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite serialises writers).
        A Step instead when there is nothing to do: "skipped" when the row is not due, not
        in ``status`` or held by another worker; "waiting" when the company's plugin or
        the row's store account is off (the claim is rolled back: the row waits, and the
        sweeper finds it again once both are enabled).

        The returned row stays loaded after the commit: while the claim is ours nobody else
        writes the row, except the sweeper or a user, who both clear the claim, which
        :meth:`_fence` then notices."""
        now = self.now()
        values: dict[str, Any] = {"claimed_by": self.worker_id, "claimed_at": now}
        if reserve_attempt:
            values["attempt_count"] = Writeback.attempt_count + 1
        session = self.session
        try:
            row = self._update_unlocked(writeback_id, self._claimable(status, now), values)
            if row is None:
                session.rollback()
                return Step(writeback_id, "skipped")
            if self.enabled is not None and not self.enabled(row.company_id):
                session.rollback()
                return Step(writeback_id, "waiting")
            if not row.account.enabled:  # loaded now, so the commit does not discard it
                session.rollback()
                return Step(writeback_id, "waiting")
            with _kept_after_commit(session):
                session.commit()
        except Exception:
            session.rollback()
            raise
        self._held = (row.id, now)
        return row

    def _update_unlocked(self, writeback_id: int, conditions: list,
                         values: dict[str, Any]) -> Writeback | None:
        """Write ``values`` to the row if it meets ``conditions`` and no other transaction
        holds it (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises writers):
        one ``UPDATE ... RETURNING``, the row as it is now, or None. Not committed."""
        target = (sa.select(Writeback.id).where(Writeback.id == writeback_id, *conditions)
                  .with_for_update(skip_locked=True).scalar_subquery())
        return self.session.execute(
            sa.update(Writeback).where(Writeback.id == target, *conditions)
            .values(**values).returning(Writeback)
            .execution_options(synchronize_session=False, populate_existing=True)
        ).scalar()

    def _fence(self, writeback_id: int, values: dict[str, Any]) -> bool:
        """Write ``values`` to the row only if this worker still holds its claim (the row
        stays locked until the caller commits). False: the sweeper or a user took the row
        meanwhile, and whatever this worker learnt must not be written to it."""
        taken = self.session.execute(
            sa.update(Writeback).where(Writeback.id == writeback_id,
                                       Writeback.claimed_by == self.worker_id)
            .values(**values).execution_options(synchronize_session=False))
        if taken.rowcount == 1:
            return True
        self.session.rollback()
        self._held = None
        log.warning("write-back %s: the claim of %s was taken over (stale or reset by a "
                    "user); its result is dropped, the next attempt asks the store first",
                    writeback_id, self.worker_id)
        return False

    def _save(self, row: Writeback, attempt: Attempt | None = None) -> bool:
        """End the claim: the row's changes, fenced, and the attempt, in one transaction.
        The row is written by one guarded UPDATE of the columns this job changed, then
        detached, so the session does not write it a second time."""
        state = sa.inspect(row)
        changes = {attr.key: state.attrs[attr.key].history.added[0]
                   for attr in state.mapper.column_attrs
                   if state.attrs[attr.key].history.added}
        self.session.expunge(row)
        if not self._fence(row.id, changes):
            return False
        self._held = None
        if attempt is not None:
            self.session.add(attempt)
        self._commit()
        return True

    def keep_claim(self) -> None:
        """Before each store call: renew a claim that has aged a third of the way to stale,
        so that a live worker never loses it to the sweeper (a round trip only then), and
        stop the work if it was lost anyway (the worker was paused for longer than that)."""
        if self._held is None:
            return
        writeback_id, since = self._held
        now = self.now()
        if (now - since).total_seconds() < self.policy.claim_stale_after / 3:
            return
        if not self._fence(writeback_id, {"claimed_at": now}):
            raise ClaimLost(writeback_id)
        self._held = (writeback_id, now)
        self._commit()

    # -- sending ---------------------------------------------------------------------------
    def send(self, writeback_id: int) -> Step:
        """One write-back attempt for a pending row."""
        with self.database_lost_leaves_orphans({writeback_id: None}):
            return self._send(writeback_id)

    def _send(self, writeback_id: int) -> Step:
        self.release_orphaned_claims()
        row = self._claim(writeback_id, WritebackStatus.PENDING, reserve_attempt=True)
        if isinstance(row, Step):
            return row
        number, started = row.attempt_count, self.now()
        result = shown = None
        try:
            package = package_of(row)
            with self._store_calls(row) as connector:
                if row.needs_check:
                    check = connector.verify(package)
                    if check.outcome is Outcome.VERIFIED or check.deferred:
                        result = check
                if result is None:
                    result = connector.write_back(package)
                    if result.outcome is Outcome.ACCEPTED and connector.shows_writes_at_once:
                        shown = self._read_back(connector, package)
        except ClaimLost:
            self._held = None
            return Step(writeback_id, "lost")
        except sa.exc.SQLAlchemyError:
            # Renewing the claim failed: the database, not the store, so not a connector
            # error. The job fails as it is (a worker retries it when the database was
            # unreachable), and database_lost_leaves_orphans notes the claim.
            raise
        except Exception as exc:  # noqa: BLE001 - a connector bug must not lose the attempt
            log.exception("write-back %s: connector raised", writeback_id)
            result = _internal_error(exc, maybe_applied=True)
        return self._record_send(row, number, started, result, shown)

    def _read_back(self, connector: Connector, package) -> Result | None:
        """The first check, right after an accepted write. Its failure is not the
        attempt's: the write was accepted, and the scheduled checks follow instead."""
        try:
            return connector.verify(package)
        except (ClaimLost, sa.exc.SQLAlchemyError):
            raise
        except Exception:  # noqa: BLE001
            log.exception("write-back: reading the order back raised; checks follow")
            return None

    def _record_send(self, row: Writeback, number: int, started: dt.datetime,
                     result: Result, shown: Result | None = None) -> Step:
        """The attempt and the row's new state in one transaction, only if the claim is
        still ours (otherwise the sweeper already counted this attempt as interrupted)."""
        now = self.now()
        row.claimed_by = row.claimed_at = None
        if result.deferred:  # never left this machine: give the attempt number back
            row.attempt_count -= 1
            row.next_attempt_at = now + dt.timedelta(seconds=result.retry_after or 1)
            step = Step(row.id, "deferred", row.status, row.next_attempt_at, "send",
                        next_number=row.attempt_count + 1, throttled=True,
                        account_id=row.account_id, platform=row.account.platform)
            return step if self._save(row) else Step(row.id, "lost")
        if row.feed_id == FEED_UNKNOWN:  # this attempt asked Amazon first: settled
            row.feed_id = None
        attempt = Attempt(
            company_id=row.company_id, writeback_id=row.id, number=number, started_at=started,
            outcome=result.outcome.value, http_status=result.http_status,
            request_id=result.request_id, message=result.message or None,
            latency_ms=result.latency_ms)
        row.last_attempt_at = started
        next_kind = None
        if result.outcome is Outcome.VERIFIED:
            self._succeed(row)
        elif result.outcome is Outcome.ACCEPTED:
            row.submitted_at = now
            row.needs_check = False
            if shown is not None and shown.outcome is Outcome.VERIFIED:
                row.verify_checks = 1
                self._succeed(row)
            else:  # not read back, or not shown yet: the scheduled checks follow
                row.status = WritebackStatus.SUBMITTED
                row.verify_checks = 0
                row.last_error = None
                row.next_attempt_at = now + self.policy.verify_delay(0)
                next_kind = "verify"
        else:
            next_kind = self._fail_attempt(row, result, now)
        step = Step(row.id, "sent", row.status, row.next_attempt_at, next_kind, number,
                    next_number=row.attempt_count + 1 if next_kind == "send" else 0,
                    throttled=result.throttled, account_id=row.account_id,
                    platform=row.account.platform)
        if not self._save(row, attempt):
            return Step(row.id, "lost")
        log.info("write-back %s attempt %s: %s", row.id, number, result.outcome.value)
        return step

    def _commit(self) -> None:
        """Commit without expiring loaded rows: the job has what it needs for its Step and
        must not pay a SELECT to reload a row it will not read again."""
        with _kept_after_commit(self.session):
            self.session.commit()

    def _succeed(self, row: Writeback) -> None:
        row.status = WritebackStatus.SUCCESS
        row.next_attempt_at = None
        row.needs_check = False
        row.last_error = None

    def _fail_attempt(self, row: Writeback, result: Result, now: dt.datetime) -> str | None:
        """Count one failed attempt; returns "send" when another attempt is scheduled."""
        row.error_count += 1
        row.needs_check = row.needs_check or result.maybe_applied
        if result.outcome is Outcome.NEEDS_REAUTH:
            return self._final(row, "The store refused the account's credentials; reconnect "
                                    f"the account, then Retry now. ({result.message})")
        if result.outcome is Outcome.NEEDS_FIXING:
            return self._final(row, "The store refused this shipment, and sending it again "
                                    f"will not help: {result.message}")
        if row.error_count >= MAX_ATTEMPTS and row.feed_id == FEED_UNKNOWN:
            return self._final(row, f"Failed after {MAX_ATTEMPTS} attempts, the last in an "
                                    "Amazon feed whose fate is unknown: Amazon may still ship "
                                    "the package from it. Check the order on Amazon before "
                                    "confirming it by hand; Retry now waits for the feed, "
                                    f"then asks Amazon first. ({result.message})")
        if row.error_count >= MAX_ATTEMPTS:
            return self._final(row, f"Failed after {MAX_ATTEMPTS} attempts; confirm it on the "
                                    f"store by hand. Last error: {result.message}")
        row.last_error = result.message or result.outcome.value
        row.next_attempt_at = now + self.policy.retry_delay(row.error_count, result.retry_after)
        return "send"

    def _final(self, row: Writeback, message: str) -> None:
        row.status = WritebackStatus.FAILED
        row.next_attempt_at = None
        row.last_error = clip(message, 1000)
        return None

    # -- verifying -------------------------------------------------------------------------
    def verify(self, writeback_id: int) -> Step:
        """One verification check of a submitted row (B1)."""
        with self.database_lost_leaves_orphans({writeback_id: None}):
            return self._verify(writeback_id)

    def _verify(self, writeback_id: int) -> Step:
        self.release_orphaned_claims()
        row = self._claim(writeback_id, WritebackStatus.SUBMITTED, reserve_attempt=False)
        if isinstance(row, Step):
            return row
        try:
            with self._store_calls(row) as connector:
                result = connector.verify(package_of(row))
        except ClaimLost:
            self._held = None
            return Step(writeback_id, "lost")
        except sa.exc.SQLAlchemyError:  # the database, not the store: see _send()
            raise
        except Exception as exc:  # noqa: BLE001
            log.exception("write-back %s: verification raised", writeback_id)
            result = _internal_error(exc)
        now = self.now()
        row.claimed_by = row.claimed_at = None
        if result.deferred:
            row.next_attempt_at = now + dt.timedelta(seconds=result.retry_after or 1)
            step = Step(row.id, "deferred", row.status, row.next_attempt_at, "verify")
            return step if self._save(row) else Step(row.id, "lost")
        checks = len(self.policy.verify_schedule)
        row.verify_checks += 1
        if result.outcome is Outcome.VERIFIED:
            self._succeed(row)
            next_kind = None
        elif row.verify_checks < checks:
            row.last_error = (f"Accepted; not shown by the store's Orders API yet (check "
                              f"{row.verify_checks} of {checks}): {result.message}")
            row.next_attempt_at = now + self.policy.verify_delay(row.verify_checks)
            next_kind = "verify"
        else:  # accepted but never shown: count it as a failed attempt and send again
            row.status = WritebackStatus.PENDING
            row.needs_check = True
            next_kind = self._fail_attempt(row, Result(
                Outcome.RETRYABLE, f"Accepted, but the store's Orders API did not show it after "
                f"{checks} checks: {result.message}"), now)
        step = Step(row.id, "verified", row.status, row.next_attempt_at, next_kind,
                    next_number=row.attempt_count + 1 if next_kind == "send" else 0)
        return step if self._save(row) else Step(row.id, "lost")

    # -- recovery --------------------------------------------------------------------------
    def release_stale_claims(self) -> int:
        """Rows whose worker died mid-attempt: the attempt counts as failed (it may have
        reached the store, so the next one asks first); a verification is simply redone."""
        now = self.now()
        stale = now - dt.timedelta(seconds=self.policy.claim_stale_after)
        rows = self.session.execute(
            sa.select(Writeback).where(Writeback.claimed_at < stale)
            .with_for_update(skip_locked=True).limit(500)).scalars().all()
        for row in rows:
            self._release(row, now, "The worker stopped during this attempt")
        self.session.commit()
        return len(rows)

    def release_orphaned_claims(self) -> int:
        """Claims of this process's earlier jobs that the database's loss kept them from
        ending (see ``_ORPHANED``), released like stale ones. Fenced by the worker id, so
        a row someone else took since is left alone. Raises while the database is still
        unreachable, which fails the job as a database error, as it would anyway."""
        with _ORPHANED_LOCK:
            pending = sorted(_ORPHANED.items())  # one order for every thread
        if not pending:
            return 0
        now = self.now()
        done, released = [], 0
        for (writeback_id, worker_id), orphan in pending:
            if time.monotonic() - orphan.noted > self.policy.claim_stale_after:
                done.append((writeback_id, worker_id))  # the sweeper's by now
                continue
            # The claim is cleared by one guarded UPDATE, so of two threads releasing the
            # same note only one goes on; a row still locked (its transaction not yet
            # seen to end) is skipped and tried again by the next job.
            row = self._update_unlocked(writeback_id, [Writeback.claimed_by == worker_id],
                                        {"claimed_by": None, "claimed_at": None})
            if row is None:
                if self.session.execute(sa.select(Writeback.id).where(
                        Writeback.id == writeback_id, Writeback.claimed_by == worker_id)
                        ).scalar() is not None:
                    continue  # still that job's claim, but locked: the next job tries again
            elif orphan.feed_id and row.status == WritebackStatus.PENDING:
                self.into_feed(row, orphan.feed_id, Result(
                    Outcome.ACCEPTED, f"Sent in Amazon feed {orphan.feed_id} (recorded once "
                    "the database was back)"), now, poll_at=now)
                released += 1
            else:
                self._release(row, now, "The database was lost during this attempt")
                released += 1
            done.append((writeback_id, worker_id))
        self.session.commit()
        with _ORPHANED_LOCK:
            for key in done:
                _ORPHANED.pop(key, None)
        if released:
            log.info("released %d write-backs whose job lost the database", released)
        return released

    def _release(self, row: Writeback, now: dt.datetime, why: str) -> None:
        """End a claim whose job is gone. A send attempt without a recorded outcome counts
        as failed and may have reached the store, so the next attempt asks first; a
        verification is simply redone."""
        row.claimed_by = row.claimed_at = None
        in_feed = row.feed_id == FEED_SENDING
        if in_feed:
            row.feed_id = None
        if row.status != WritebackStatus.PENDING:
            return
        recorded = self.session.execute(sa.select(Attempt.id).where(
            Attempt.writeback_id == row.id, Attempt.number == row.attempt_count)).scalar()
        if recorded is None and row.attempt_count > 0:
            message = f"{why}; the next attempt asks the store first"
            if in_feed:
                message = f"{why} while sending an Amazon feed"
            self.session.add(Attempt(
                company_id=row.company_id, writeback_id=row.id, number=row.attempt_count,
                started_at=row.last_attempt_at or now, outcome="interrupted", message=message))
            row.last_attempt_at = now
            result = Result(Outcome.RETRYABLE, message, maybe_applied=True)
            if in_feed:
                self.fail_in_unknown_feed(row, result, now)
            else:
                self._fail_attempt(row, result, now)

    def fail_in_unknown_feed(self, row: Writeback, result: Result, now: dt.datetime) -> None:
        """The row's attempt went in an Amazon feed that nobody knows Amazon took
        (createFeed unanswered, its job gone): a failed attempt that may have landed. The
        row waits at least as long as Amazon may take to process a feed, so that asking
        Amazon then finds the package if the feed had it, instead of confirming it a
        second time; FEED_UNKNOWN keeps Retry now to that wait too."""
        row.feed_id = FEED_UNKNOWN
        minutes = f"{self.policy.feed_settle / 60:g}"
        self._fail_attempt(row, dataclasses.replace(
            result, maybe_applied=True, retry_after=max(result.retry_after or 0,
                                                         self.policy.feed_settle),
            message=f"{result.message}. Amazon may have taken the feed: the next attempt "
                    f"waits at least {minutes} minutes for it to be processed, then asks "
                    "Amazon first"), now)

    def _feed_settled_at(self, row: Writeback) -> dt.datetime | None:
        """When a row in an unknown feed may be asked about (None: it is in none)."""
        if row.feed_id != FEED_UNKNOWN or row.last_attempt_at is None:
            return None
        return row.last_attempt_at + dt.timedelta(seconds=self.policy.feed_settle)

    def add_attempt(self, row: Writeback, result: Result, now: dt.datetime) -> None:
        """The timeline entry of the row's current attempt (number ``attempt_count``),
        for attempts made in batches (Amazon feeds)."""
        self.session.add(Attempt(
            company_id=row.company_id, writeback_id=row.id, number=row.attempt_count,
            started_at=now, outcome=result.outcome.value, http_status=result.http_status,
            request_id=result.request_id, message=result.message or None,
            latency_ms=result.latency_ms))
        row.last_attempt_at = now

    def into_feed(self, row: Writeback, feed_id: str, result: Result, now: dt.datetime,
                  poll_at: dt.datetime) -> None:
        """The row's attempt went out in Amazon feed ``feed_id``: recorded as accepted,
        and the row, unclaimed, waits for the feed's processing report (polled from
        ``poll_at``) instead of being sent again."""
        self.add_attempt(row, result, now)
        row.status = WritebackStatus.SUBMITTED
        row.feed_id = feed_id
        row.submitted_at = now
        row.verify_checks = 0
        row.last_error = f"In Amazon feed {feed_id}, waiting for its processing report"
        row.next_attempt_at = poll_at
        row.claimed_by = row.claimed_at = None

    @contextlib.contextmanager
    def database_lost_leaves_orphans(self, claimed: dict[int, str | None]):
        """A database error anywhere in a job may leave its rows claimed (the claim's
        commit may have landed unseen, the record never did): note them for this
        process's next job to release. ``claimed`` maps each row to the Amazon feed
        that took it (None: none did) and may be filled in within the block, as a batch
        claim learns its rows and Amazon answers."""
        try:
            yield
        except sa.exc.SQLAlchemyError:
            self._held = None
            noted = time.monotonic()
            with _ORPHANED_LOCK:
                for writeback_id, feed_id in claimed.items():
                    _ORPHANED.setdefault((writeback_id, self.worker_id),
                                         _Orphan(noted, feed_id))
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self.session.rollback()
            raise

    def due(self, company_ids: list[int],
            limit: int = 1000) -> list[tuple[int, str, int, dt.datetime | None]]:
        """Rows of these companies' enabled store accounts whose next step is due:
        (id, "send" | "verify", attempt number or 0, due time)."""
        if not company_ids:
            return []
        now = self.now()
        enabled_accounts = sa.select(StoreAccount.id).where(
            StoreAccount.company_id.in_(company_ids), StoreAccount.enabled.is_(True))
        found = []
        for status, kind in ((WritebackStatus.PENDING, "send"),
                             (WritebackStatus.SUBMITTED, "verify")):
            rows = self.session.execute(
                sa.select(Writeback.id, Writeback.attempt_count, Writeback.next_attempt_at)
                .where(*self._claimable(status, now), Writeback.company_id.in_(company_ids),
                       Writeback.account_id.in_(enabled_accounts))
                .order_by(Writeback.next_attempt_at).limit(limit)).all()
            found.extend((r.id, kind, r.attempt_count + 1 if kind == "send" else 0,
                          r.next_attempt_at) for r in rows)
        self.session.rollback()
        return found

    # -- manual actions (B8) ---------------------------------------------------------------
    def retry_now(self, company_id: int, ids: list[int], user_id: int | None,
                  username: str | None) -> list[int]:
        """Due now: pending rows keep their error count; failed ones start a new round of
        attempts (error count back to 0, the timeline kept). Audited. Returns the ids."""
        now = self.now()
        stale = now - dt.timedelta(seconds=self.policy.claim_stale_after)
        rows = self.session.execute(sa.select(Writeback).where(
            Writeback.company_id == company_id, Writeback.id.in_(ids),
            Writeback.status.in_([WritebackStatus.PENDING, WritebackStatus.FAILED]))
            .with_for_update()).scalars().all()
        for row in rows:
            previous = (row.status, row.error_count)
            if row.status == WritebackStatus.FAILED:
                row.error_count = 0
            if row.status == WritebackStatus.FAILED or row.claimed_by is not None:
                row.needs_check = True  # it may have landed: ask before sending again
            row.status = WritebackStatus.PENDING
            # A package that may be in an Amazon feed still processing waits for it: asked
            # now, Amazon would not show it yet, and the resend would ship it twice.
            row.next_attempt_at = max(now, self._feed_settled_at(row) or now)
            if row.claimed_at is None or row.claimed_at < stale:
                row.claimed_by = row.claimed_at = None
            # else a worker is sending it right now: that attempt is the retry, and taking
            # the row from it could send the package twice
            self.session.add(AuditEvent(
                company_id=company_id, user_id=user_id, username=username,
                action="writeback.retry_now", target=f"writeback:{row.id}",
                detail={"previous_status": previous[0], "previous_error_count": previous[1]}))
        self.session.commit()
        return [row.id for row in rows]

    def mark_confirmed(self, company_id: int, writeback_id: int, user_id: int | None,
                       username: str | None, note: str = "") -> Writeback | None:
        """Support confirmed it on the store by hand: ``manual``, audited."""
        row = self.session.execute(sa.select(Writeback).where(
            Writeback.company_id == company_id, Writeback.id == writeback_id)
            .with_for_update()).scalar_one_or_none()
        if row is None or row.status in (WritebackStatus.SUCCESS, WritebackStatus.MANUAL):
            self.session.rollback()
            return row
        previous = row.status
        row.status = WritebackStatus.MANUAL
        row.next_attempt_at = None
        row.claimed_by = row.claimed_at = None
        if row.feed_id in (FEED_SENDING, FEED_UNKNOWN):
            row.feed_id = None
        self.session.add(AuditEvent(
            company_id=company_id, user_id=user_id, username=username,
            action="writeback.mark_confirmed", target=f"writeback:{row.id}",
            detail={"previous_status": previous, "note": note[:500]}))
        self.session.commit()
        return row


class ClaimLost(Exception):
    """The sweeper or a user took the row while this worker was working on it."""


class _ClaimKeeper:
    """The throttle a connector sees: the shared rate limiter first, then, when the call
    may go, the claim is renewed or found lost (:meth:`WritebackService.keep_claim`)."""

    def __init__(self, service: WritebackService, limiter: Throttle | None) -> None:
        self.service = service
        self.limiter = limiter

    def wait_for(self, account_id: int, platform: str, api: Any) -> float:
        wait = self.limiter.wait_for(account_id, platform, api) if self.limiter else 0.0
        if wait <= 0:
            self.service.keep_claim()
        return wait


@contextlib.contextmanager
def _kept_after_commit(session: Session):
    """Commit without expiring what the session holds (``expire_on_commit`` off for once)."""
    real = session() if callable(session) else session  # Flask-SQLAlchemy's scoped session
    previous = real.expire_on_commit
    real.expire_on_commit = False
    try:
        yield
    finally:
        real.expire_on_commit = previous


def _internal_error(exc: Exception, maybe_applied: bool = False) -> Result:
    return Result(Outcome.RETRYABLE, f"Internal error in the connector: {clip(repr(exc))}",
                  maybe_applied=maybe_applied)
