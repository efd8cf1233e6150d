"""The Amazon at-risk badge (PRODUCT.md B10).

Amazon cancels orders left unconfirmed for about seven business days after the order.
We do not know the order date; the ship date is its lower bound (an order ships after it
is placed), so counting from the ship date never raises the alarm early by mistake: an
Amazon write-back that is still unconfirmed (not ``success`` nor ``manual``) more than
``days`` business days after its ship date is "At risk".

Business days are Monday to Friday on the company's calendar; public holidays are not
known here and count as business days. Pure functions: no Flask, no database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

#: ``SHIPGEAR_AT_RISK_BUSINESS_DAYS`` when the host leaves it unset.
DEFAULT_DAYS = 5
#: What Amazon allows, roughly (its own wording: "about seven business days").
AMAZON_CANCEL_AFTER = 7
#: Write-back statuses that mean the store knows about the shipment.
CONFIRMED = frozenset({"success", "manual"})


def business_days_between(start: dt.date, end: dt.date) -> int:
    """Weekdays (Monday to Friday) after ``start`` up to and including ``end``: how many
    business days have passed since ``start``. Shipped on Friday, on Monday one business
    day has passed; ``end`` on or before ``start`` gives 0."""
    if isinstance(start, dt.datetime) or isinstance(end, dt.datetime):
        raise TypeError("business_days_between takes dates, not datetimes")
    if end <= start:
        return 0
    days = (end - start).days
    weeks, rest = divmod(days, 7)
    count = weeks * 5
    weekday = start.weekday()
    for offset in range(1, rest + 1):
        if (weekday + offset) % 7 < 5:
            count += 1
    return count


@dataclass(frozen=True)
class AtRisk:
    """An unconfirmed Amazon order past the threshold, with the words the page shows."""

    business_days: int
    threshold: int

    @property
    def message(self) -> str:
        days = self.business_days
        return (f"Amazon may cancel unconfirmed orders after about {AMAZON_CANCEL_AFTER} "
                f"business days; shipped {days} business day{'' if days == 1 else 's'} ago.")

    def __str__(self) -> str:
        return self.message


def _platform(row) -> str:
    platform = getattr(row, "platform", None)
    if platform is None:
        account = getattr(row, "account", None)
        platform = getattr(account, "platform", None)
    return str(platform or "").lower()


def _local_date(value: dt.datetime, zone: ZoneInfo) -> dt.date:
    if value.tzinfo is None:  # stored times are UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(zone).date()


def assess(row, now: dt.datetime, days: int | str = DEFAULT_DAYS,
           timezone: str = "UTC") -> AtRisk | None:
    """``AtRisk`` when ``row`` (a write-back, or anything with ``status``, ``ship_date``
    and ``platform`` or ``account.platform``) is an unconfirmed Amazon write-back whose ship
    date is more than ``days`` business days before ``now`` on the ``timezone`` calendar;
    otherwise None."""
    threshold = int(days)
    if _platform(row) != "amazon" or str(row.status) in CONFIRMED or row.ship_date is None:
        return None
    zone = ZoneInfo(timezone or "UTC")
    elapsed = business_days_between(_local_date(row.ship_date, zone), _local_date(now, zone))
    if elapsed <= threshold:
        return None
    return AtRisk(elapsed, threshold)


def is_at_risk(row, now: dt.datetime, days: int | str = DEFAULT_DAYS,
               timezone: str = "UTC") -> bool:
    """Whether ``row`` gets the "At risk" badge (see :func:`assess`)."""
    return assess(row, now, days, timezone) is not None


def label(row, days: int | str | None = DEFAULT_DAYS, timezone: str = "UTC",
          now: dt.datetime | None = None) -> AtRisk | None:
    """The template filter ``sgx_at_risk``: ``row|sgx_at_risk(days, company.timezone)``
    gives an :class:`AtRisk` (its ``message`` is the plain explanation) or None."""
    when = now or dt.datetime.now(dt.UTC)
    return assess(row, when, DEFAULT_DAYS if days is None else days, timezone)
