"""The Amazon at-risk badge (PRODUCT.md B10): business days counted from the ship date,
weekends skipped, only unconfirmed Amazon write-backs."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from shipgear_exchange_plugin import atrisk
from shipgear_exchange_plugin.atrisk import business_days_between, is_at_risk

# 2026-01-05 is a Monday.
MON, TUE, WED, THU, FRI, SAT, SUN = (dt.date(2026, 1, 5) + dt.timedelta(days=n)
                                     for n in range(7))


def day(base: dt.date, weeks: int = 0, days: int = 0) -> dt.date:
    return base + dt.timedelta(weeks=weeks, days=days)


@pytest.mark.parametrize(("start", "end", "expected"), [
    (MON, MON, 0),
    (MON, TUE, 1),
    (MON, FRI, 4),
    (FRI, SAT, 0),   # the weekend does not count
    (FRI, SUN, 0),
    (FRI, day(MON, weeks=1), 1),
    (SAT, day(MON, weeks=1), 1),
    (SUN, day(MON, weeks=1), 1),
    (SAT, SUN, 0),
    (MON, day(MON, weeks=1), 5),
    (THU, day(WED, weeks=1), 4),
    (FRI, day(FRI, weeks=1), 5),
    (MON, day(MON, weeks=2), 10),
    (WED, day(MON, weeks=3), 13),
    (TUE, MON, 0),   # reversed: nothing has passed
])
def test_business_days_between_skips_weekends(start, end, expected):
    assert business_days_between(start, end) == expected


def test_business_days_between_matches_counting_day_by_day():
    start = dt.date(2025, 12, 1)
    for length in range(0, 60):
        for shift in range(7):
            first = start + dt.timedelta(days=shift)
            last = first + dt.timedelta(days=length)
            slow = sum(1 for n in range(1, length + 1)
                       if (first + dt.timedelta(days=n)).weekday() < 5)
            assert business_days_between(first, last) == slow, (first, last)


def test_business_days_between_refuses_datetimes():
    with pytest.raises(TypeError):
        business_days_between(dt.datetime(2026, 1, 5, tzinfo=dt.UTC), TUE)


def at(date: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(date, dt.time(hour), tzinfo=dt.UTC)


def row(status: str = "failed", platform: str = "amazon", shipped: dt.date = MON,
        hour: int = 12):
    return SimpleNamespace(status=status, ship_date=at(shipped, hour),
                           account=SimpleNamespace(platform=platform))


def test_an_unconfirmed_amazon_order_is_at_risk_after_more_than_n_business_days():
    shipped = row(shipped=MON)
    assert not is_at_risk(shipped, at(day(MON, weeks=1)), 5)       # exactly 5: not yet
    assert is_at_risk(shipped, at(day(TUE, weeks=1)), 5)            # 6 business days
    assert not is_at_risk(shipped, at(day(TUE, weeks=1)), 6)
    friday = row(shipped=FRI)
    assert not is_at_risk(friday, at(day(SUN, weeks=1)), 5)         # 5, weekend skipped
    assert is_at_risk(friday, at(day(MON, weeks=2)), 5)             # 6


@pytest.mark.parametrize("status", ["pending", "submitted", "failed"])
def test_every_unconfirmed_status_counts(status):
    assert is_at_risk(row(status=status), at(day(MON, weeks=2)), 5)


@pytest.mark.parametrize("status", ["success", "manual"])
def test_confirmed_orders_are_never_at_risk(status):
    assert not is_at_risk(row(status=status), at(day(MON, weeks=4)), 5)


@pytest.mark.parametrize("platform", ["shopify", "woocommerce", "bigcommerce"])
def test_only_amazon_cancels_unconfirmed_orders(platform):
    assert not is_at_risk(row(platform=platform), at(day(MON, weeks=4)), 5)


def test_days_is_a_setting_that_may_arrive_as_text():
    shipped = row(shipped=MON)
    assert is_at_risk(shipped, at(day(MON, days=3)), "2")
    assert not is_at_risk(shipped, at(day(MON, days=3)), "3")


def test_days_are_counted_on_the_companys_calendar():
    # Shipped Monday 23:30 UTC = Tuesday 08:30 in Tokyo; "now" is next Tuesday 12:00 UTC.
    late_monday = row(shipped=MON, hour=23)
    late_monday.ship_date += dt.timedelta(minutes=30)
    now = at(day(TUE, weeks=1))
    assert is_at_risk(late_monday, now, 5, "UTC")                  # Mon -> Tue: 6
    assert not is_at_risk(late_monday, now, 5, "Asia/Tokyo")       # Tue -> Tue: 5


def test_the_label_explains_in_plain_words():
    risk = atrisk.label(row(shipped=MON), 5, "UTC", now=at(day(TUE, weeks=1)))
    assert risk is not None and risk.business_days == 6
    assert risk.message == ("Amazon may cancel unconfirmed orders after about 7 business "
                            "days; shipped 6 business days ago.")
    assert str(risk) == risk.message
    assert atrisk.label(row(status="success"), 5, "UTC", now=at(day(TUE, weeks=3))) is None
    one = atrisk.AtRisk(1, 0)
    assert "shipped 1 business day ago" in one.message


def test_the_label_defaults_to_now_and_five_days():
    long_ago = SimpleNamespace(status="pending", platform="amazon",
                               ship_date=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    recent = SimpleNamespace(status="pending", platform="amazon",
                             ship_date=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert atrisk.label(long_ago) is not None
    assert atrisk.label(long_ago, None) is not None
    assert atrisk.label(recent) is None


def test_a_naive_ship_date_is_read_as_utc():
    naive = SimpleNamespace(status="failed", platform="amazon",
                            ship_date=dt.datetime.combine(MON, dt.time(12)))
    assert is_at_risk(naive, at(day(TUE, weeks=1)), 5)
