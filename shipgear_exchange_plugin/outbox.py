"""Turn a processed shipment into write-back rows (the outbox), in the host's transaction.

One row per package. The package key is derived from the host's shipment id and the
package's position, so it is stable across retries and resends (Amazon's
``packageReferenceId``) and unique per store account: processing the same shipment twice
cannot create a second write-back.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .host_contract import ProcessedShipment
from .models import StoreAccount, Writeback, WritebackStatus, utcnow

log = logging.getLogger(__name__)


#: Packages per shipment that keys can tell apart (index 0..98 becomes suffix 01..99).
MAX_PACKAGES = 99


def package_key(shipment_id: int, index: int) -> str:
    """Digits only: Amazon's ``packageReferenceId`` takes positive numbers, and this key is
    sent as it. Shipment 1234's second package is ``"123402"``."""
    if not 0 <= index < MAX_PACKAGES:
        raise ValueError(f"a shipment has at most {MAX_PACKAGES} packages")
    return f"{shipment_id}{index + 1:02d}"


def record_shipment(session: Session, shipment: ProcessedShipment) -> list[Writeback]:
    """Add one pending write-back per package; nothing when no store account matches."""
    account = session.execute(
        sa.select(StoreAccount).where(
            StoreAccount.company_id == shipment.company_id,
            StoreAccount.order_source == shipment.order_source,
        )
    ).scalar_one_or_none()
    if account is None:
        log.info("shipment %s: order source %r is not a connected store account; no write-back",
                 shipment.shipment_id, shipment.order_source)
        return []
    existing = set(session.execute(
        sa.select(Writeback.package_key).where(
            Writeback.account_id == account.id,
            Writeback.shipment_id == shipment.shipment_id,
        )
    ).scalars())
    now = utcnow()
    rows = []
    for index, package in enumerate(shipment.packages):
        key = package_key(shipment.shipment_id, index)
        if key in existing:
            continue
        rows.append(Writeback(
            company_id=shipment.company_id,
            account=account,
            shipment_id=shipment.shipment_id,
            order_id=shipment.order_id,
            package_key=key,
            ship_date=shipment.ship_date,
            carrier=shipment.carrier,
            service=shipment.service,
            tracking_number=package.tracking_number,
            shipped_quantity=package.quantity,
            items=list(package.items),
            status=WritebackStatus.PENDING,
            next_attempt_at=now,
        ))
    session.add_all(rows)
    session.info.setdefault(NEW_ROWS_KEY, []).extend((row, now) for row in rows)
    return rows


NEW_ROWS_KEY = "sgx_new_writebacks"


def enqueue_after_commit() -> None:
    """Once a host transaction that added write-backs commits, enqueue their first attempts.

    Never before commit: a worker must not look for a row that is not there yet. If Redis
    is unreachable then, the rows wait in the database for the sweeper. The listener is
    global to SQLAlchemy sessions and finds the host of the app being served."""
    if not sa.event.contains(Session, "after_commit", _after_commit):
        sa.event.listen(Session, "after_commit", _after_commit)
        sa.event.listen(Session, "after_rollback", _after_rollback)


def _after_commit(session: Session) -> None:
    from flask import has_app_context

    from . import dispatch
    from .host_contract import get_host

    rows = session.info.pop(NEW_ROWS_KEY, None)
    if not rows:
        return
    # The job id the sweeper computes for the row's first attempt (its due time included),
    # so that a sweep during a backlog sees this job instead of adding a second one. The
    # id comes from the identity map, not the expired row: no SELECT per row after commit.
    identities = [(sa.inspect(row).identity, due) for row, due in rows]
    # A row no longer in the session at commit (expunged, session closed) has no identity:
    # whether it was stored or not, the sweeper finds what was.
    planned = [(identity[0], 1, due) for identity, due in identities if identity]
    if not has_app_context():
        log.warning("%d new write-backs committed outside an app; the sweeper will enqueue",
                    len(planned))
        return
    try:
        queue = get_host().queue(dispatch.QUEUE)
    except Exception:  # noqa: BLE001 - no queue now: the sweeper will enqueue them
        log.warning("no queue for %d new write-backs; the sweeper will", len(planned))
        return
    dispatch.enqueue_new(queue, planned)


def _after_rollback(session: Session) -> None:
    session.info.pop(NEW_ROWS_KEY, None)
