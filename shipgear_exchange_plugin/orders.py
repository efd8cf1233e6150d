"""Queries behind the orders grid, the shipment panel and the export.

Always scoped by ``company_id``: no function here can return another company's row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from .models import Attempt, Writeback

PAGE_SIZE = 50
#: Counting stops here: beyond it the grid says "10,000+" instead of scanning every row.
COUNT_BOUND = 10_000


@dataclass(frozen=True)
class OrderFilter:
    statuses: tuple[str, ...] = ()
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    timezone: str = "UTC"
    accounts: tuple[int, ...] = field(default=())


def _day_start_utc(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz).astimezone(dt.UTC)


def filtered(company_id: int, flt: OrderFilter) -> sa.Select:
    """The grid's query: the company's write-backs matching ``flt``, newest ship date first.

    Dates are calendar days in the company's time zone; stored times are UTC.
    """
    tz = ZoneInfo(flt.timezone)
    query = sa.select(Writeback).where(Writeback.company_id == company_id)
    if flt.statuses:
        query = query.where(Writeback.status.in_(flt.statuses))
    if flt.accounts:
        query = query.where(Writeback.account_id.in_(flt.accounts))
    if flt.date_from is not None:
        query = query.where(Writeback.ship_date >= _day_start_utc(flt.date_from, tz))
    if flt.date_to is not None:
        next_day = flt.date_to + dt.timedelta(days=1)
        query = query.where(Writeback.ship_date < _day_start_utc(next_day, tz))
    return query.order_by(Writeback.ship_date.desc(), Writeback.id.desc())


def page(session: Session, company_id: int, flt: OrderFilter, limit: int = PAGE_SIZE):
    return session.execute(filtered(company_id, flt).limit(limit)).scalars().all()


def count_bounded(session: Session, company_id: int, flt: OrderFilter,
                  bound: int = COUNT_BOUND) -> int:
    """Matching rows, exact up to ``bound``; ``bound`` itself means "bound or more"."""
    limited = filtered(company_id, flt).order_by(None).with_only_columns(
        Writeback.id).limit(bound).subquery()
    return session.execute(sa.select(sa.func.count()).select_from(limited)).scalar_one()


def iterate_all(session: Session, company_id: int, flt: OrderFilter,
                chunk: int = 1000) -> Iterator[Writeback]:
    """Every matching row in grid order, fetched in chunks (constant memory)."""
    result = session.execute(
        filtered(company_id, flt).execution_options(yield_per=chunk)
    ).scalars()
    yield from result


def get(session: Session, company_id: int, writeback_id: int) -> Writeback | None:
    """One write-back with its attempts, or None if it is not this company's."""
    return session.execute(
        sa.select(Writeback)
        .where(Writeback.id == writeback_id, Writeback.company_id == company_id)
        .options(selectinload(Writeback.attempts))
    ).scalar_one_or_none()


def packages_of_order(session: Session, company_id: int, row: Writeback) -> list[Writeback]:
    """All packages of the same order on the same account (B12)."""
    return session.execute(
        sa.select(Writeback)
        .where(Writeback.company_id == company_id, Writeback.account_id == row.account_id,
               Writeback.order_id == row.order_id)
        .order_by(Writeback.package_key)
    ).scalars().all()


def latest_attempts(session: Session, writeback_id: int) -> list[Attempt]:
    return session.execute(
        sa.select(Attempt).where(Attempt.writeback_id == writeback_id).order_by(Attempt.number)
    ).scalars().all()
