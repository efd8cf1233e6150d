"""Status history and alerts (PRODUCT.md B11).

A periodic snapshot stores each enabled account's three API colours once a minute. A
colour that differs from the previous sample is a change: it is logged as one structured
line and, when the company set a webhook URL, posted there as JSON by a job with bounded
retries. Samples older than ``KEEP`` are pruned by the same snapshot. The panel draws the
last 24 hours per API as ``SLOTS`` bars, each the worst colour of its 10 minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .models import StatusSample, StoreAccount
from .status import ApiStatus

log = logging.getLogger("shipgear_exchange_plugin.alerts")

KEEP = dt.timedelta(hours=25)
SPAN = dt.timedelta(hours=24)
SLOTS = 144  # 10-minute bars over 24 hours
_WORST = {"red": 3, "yellow": 2, "green": 1, "none": 0}


@dataclass(frozen=True)
class Change:
    company_id: int
    account_id: int
    account_name: str
    platform: str
    api: str
    previous: str
    current: str
    info: str
    at: dt.datetime

    def payload(self) -> dict:
        return {"event": "api_status_changed", "company_id": self.company_id,
                "account": {"id": self.account_id, "name": self.account_name,
                            "platform": self.platform},
                "api": self.api, "previous": self.previous, "status": self.current,
                "info": self.info, "at": self.at.isoformat()}


def minute_of(now: dt.datetime) -> dt.datetime:
    return now.replace(second=0, microsecond=0)


def record(session: Session, accounts: list[StoreAccount],
           found: dict[tuple[int, str], ApiStatus], now: dt.datetime) -> list[Change]:
    """Store this minute's samples; return the colours that changed since the last one.
    Idempotent within a minute (a second snapshot in the same minute adds nothing)."""
    minute = minute_of(now)
    ids = [a.id for a in accounts]
    if not ids:
        return []
    latest = sa.select(StatusSample.account_id, StatusSample.api,
                       sa.func.max(StatusSample.minute).label("minute")).where(
        StatusSample.account_id.in_(ids)).group_by(StatusSample.account_id,
                                                   StatusSample.api).subquery()
    previous = {(r.account_id, r.api): (r.minute, r.status) for r in session.execute(
        sa.select(StatusSample.account_id, StatusSample.api, StatusSample.minute,
                  StatusSample.status).join(latest, sa.and_(
                      StatusSample.account_id == latest.c.account_id,
                      StatusSample.api == latest.c.api,
                      StatusSample.minute == latest.c.minute)))}
    changes = []
    for account in accounts:
        for (account_id, api), current in found.items():
            if account_id != account.id:
                continue
            before = previous.get((account_id, api))
            if before is not None and before[0] >= minute:
                continue  # this minute is already stored
            session.add(StatusSample(account_id=account_id, api=api, minute=minute,
                                     company_id=account.company_id, status=current.status))
            if before is not None and before[1] != current.status:
                changes.append(Change(account.company_id, account.id, account.name,
                                       account.platform, api, before[1], current.status,
                                       current.info, now))
    session.query(StatusSample).filter(StatusSample.minute < minute - KEEP).delete(
        synchronize_session=False)
    session.commit()
    for change in changes:
        log.info(json.dumps(change.payload(), sort_keys=True))
    return changes


def slots(session: Session, account_ids: list[int], now: dt.datetime,
          ) -> dict[tuple[int, str], list[str | None]]:
    """Per (account, API): ``SLOTS`` colours, oldest first; None where nothing was stored."""
    if not account_ids:
        return {}
    start = minute_of(now) - SPAN
    size = SPAN / SLOTS
    result: dict[tuple[int, str], list[str | None]] = {}
    rows = session.execute(sa.select(StatusSample.account_id, StatusSample.api,
                                     StatusSample.minute, StatusSample.status).where(
        StatusSample.account_id.in_(account_ids), StatusSample.minute > start))
    for account_id, api, minute, colour in rows:
        bars = result.setdefault((account_id, api), [None] * SLOTS)
        index = min(SLOTS - 1, int((minute - start) / size))
        if bars[index] is None or _WORST[colour] > _WORST[bars[index]]:
            bars[index] = colour
    return result
