"""Connection Status: each store account's Products, Writeback and Orders API as Green,
Yellow, Red or None (PRODUCT.md §3), computed from the last 15 minutes of calls.

The rules, with every threshold in configuration (defaults in brackets):
- **None** when no call ran for ``SHIPGEAR_STATUS_STALE_AFTER`` seconds [600], or the
  status store (Redis) cannot be read: then every API is None and the panel says
  "Error reading API status" while the rest of the page works from the database;
- **Red** with at least ``MIN_CALLS`` [3] calls of which ``RED_RATE`` [50%] or more
  failed, or when the last ``RED_CONSECUTIVE`` [3] calls failed with a connection error,
  a 5xx or 401/403;
- **Yellow** with at least ``MIN_CALLS`` calls of which ``YELLOW_RATE`` [5%] or more
  failed or were throttled (429), or when the median latency is over ``SLOW_MS`` [5 s];
- **Green** otherwise, when calls ran in the window.
Yellow and Red say why: "7 of 20 calls failed in 15 min; last: HTTP 503".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from . import callstats
from .config import int_setting
from .connectors.base import Api
from .models import StoreAccount, utcnow

APIS = tuple(api.value for api in Api)
API_LABELS = {"products": "Products API", "writeback": "Writeback API", "orders": "Orders API"}
READ_ERROR = "Error reading API status"


@dataclass(frozen=True)
class Thresholds:
    window_s: int = 900
    stale_after_s: int = 600
    min_calls: int = 3
    yellow_rate: float = 0.05
    red_rate: float = 0.5
    red_consecutive: int = 3
    slow_ms: int = 5000

    @property
    def window_minutes(self) -> int:
        return max(1, self.window_s // 60)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Thresholds:
        def rate(key: str, default: float) -> float:
            value = float(config.get(key, default))
            if not 0 < value <= 1:
                raise ValueError(f"{key} must be a share between 0 and 1, got {value}")
            return value

        return cls(
            window_s=int_setting(config, "SHIPGEAR_STATUS_WINDOW"),
            stale_after_s=int_setting(config, "SHIPGEAR_STATUS_STALE_AFTER"),
            min_calls=int_setting(config, "SHIPGEAR_STATUS_MIN_CALLS"),
            yellow_rate=rate("SHIPGEAR_STATUS_YELLOW_RATE", 0.05),
            red_rate=rate("SHIPGEAR_STATUS_RED_RATE", 0.5),
            red_consecutive=int_setting(config, "SHIPGEAR_STATUS_RED_CONSECUTIVE"),
            slow_ms=int_setting(config, "SHIPGEAR_STATUS_SLOW_MS"),
        )


@dataclass(frozen=True)
class ApiStatus:
    status: str
    info: str
    last_run_at: str | None = None


@dataclass(frozen=True)
class AccountStatus:
    account: StoreAccount
    apis: dict[str, ApiStatus]


def evaluate(stats: callstats.WindowStats, now: dt.datetime, rules: Thresholds) -> ApiStatus:
    """One API's colour and its explanation. Pure: the clock is an argument."""
    last_run = stats.last_at.isoformat() if stats.last_at else None
    if stats.last_at is None:
        return ApiStatus("none", "No calls recorded yet.")
    if (now - stats.last_at).total_seconds() > rules.stale_after_s:
        return ApiStatus("none", f"No calls in the last {_span(rules.stale_after_s)}.",
                         last_run)
    calls, window = stats.calls, _span(rules.window_s)
    last = f"; last: {stats.last_error}" if stats.last_error else ""
    hard = stats.recent_hard[:rules.red_consecutive]
    if len(hard) == rules.red_consecutive and set(hard) == {"H"}:
        return ApiStatus("red", f"The last {rules.red_consecutive} calls failed{last}.",
                         last_run)
    enough = calls >= rules.min_calls
    if enough and stats.failed >= rules.red_rate * calls:
        return ApiStatus("red", f"{stats.failed} of {calls} calls failed in {window}{last}.",
                         last_run)
    if enough and stats.failed + stats.throttled >= rules.yellow_rate * calls:
        parts = []
        if stats.failed:
            parts.append(f"{stats.failed} of {calls} calls failed")
        if stats.throttled:
            parts.append(f"{stats.throttled} of {calls} throttled (HTTP 429)")
        return ApiStatus("yellow", f"{'; '.join(parts)} in {window}{last}.", last_run)
    if calls and stats.slow * 2 > calls:
        return ApiStatus("yellow", f"Slow: median latency over {rules.slow_ms / 1000:g} s "
                         f"({stats.slow} of {calls} calls) in {window}.", last_run)
    if calls == 0:
        return ApiStatus("none", f"No calls in the last {window}.", last_run)
    # A few failures keep it green, but say what the last one was: a store whose syncs
    # fail now and then should say why before it turns yellow.
    failed = ", none failed"
    if stats.failed:
        why = f"; last failure: {stats.last_error}" if stats.last_error else ""
        failed = f", {stats.failed} failed{why}"
    return ApiStatus("green", f"{calls} call{'s' if calls != 1 else ''} in {window}{failed}.",
                     last_run)


def _span(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def accounts(session: Session, company_id: int, enabled_only: bool = True
             ) -> list[StoreAccount]:
    """The company's accounts; the panel shows the enabled ones, the grid's account
    filter all of them (a disabled account's write-backs are still listed)."""
    query = sa.select(StoreAccount).where(StoreAccount.company_id == company_id)
    if enabled_only:
        query = query.where(StoreAccount.enabled.is_(True))
    return session.execute(query.order_by(StoreAccount.platform, StoreAccount.name)
                           ).scalars().all()


def statuses(connection: Redis, account_ids: list[int], rules: Thresholds,
             now: dt.datetime | None = None) -> dict[tuple[int, str], ApiStatus]:
    """Every API of these accounts in one Redis round trip. Raises RedisError."""
    now = now or utcnow()
    pairs = [(account_id, Api(api)) for account_id in account_ids for api in APIS]
    stats = callstats.read_many(connection, pairs, now, rules.window_minutes)
    return {(account_id, api.value): evaluate(stats[(account_id, api)], now, rules)
            for account_id, api in pairs}


def of_api(connection: Redis | None, account_ids: list[int], api: str, rules: Thresholds,
           now: dt.datetime | None = None) -> dict[int, ApiStatus]:
    """One API's status for each account, as Connection Status shows it (the Products
    page shows the Products API's, which says why a store's products are missing);
    "none" with the read error when the status store cannot be read."""
    if not account_ids:
        return {}
    try:
        if connection is None:
            raise RedisError("no status store")
        found = statuses(connection, account_ids, rules, now)
    except (RedisError, OSError):
        return dict.fromkeys(account_ids, ApiStatus("none", READ_ERROR))
    return {account_id: found[(account_id, api)] for account_id in account_ids}


def panel(session: Session, connection: Redis | None, company_id: int, rules: Thresholds,
          now: dt.datetime | None = None) -> tuple[list[AccountStatus], str | None]:
    """The company's accounts with their three statuses, and the panel's error (or None)."""
    rows = accounts(session, company_id)
    try:
        if connection is None:
            raise RedisError("no status store")
        found = statuses(connection, [a.id for a in rows], rules, now)
    except (RedisError, OSError):
        unknown = ApiStatus("none", READ_ERROR)
        return [AccountStatus(a, dict.fromkeys(APIS, unknown)) for a in rows], READ_ERROR
    return [AccountStatus(a, {api: found[(a.id, api)] for api in APIS}) for a in rows], None
