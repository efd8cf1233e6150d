"""The plugin's settings: ``SHIPGEAR_*`` keys in the host app's config.

The host copies them from the environment; these are the defaults for the ones it leaves
unset. Every threshold the later status and write-back modules use belongs here.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    # Comma-separated Fernet keys, newest first (see crypto.py). Required outside the demo.
    "SHIPGEAR_ENCRYPTION_KEY": None,
    # Base URL of the marketplace sandbox; the demo's store accounts point at it.
    "SHIPGEAR_SANDBOX_URL": None,
    # Let admins point a store account at this machine or a private network (a store
    # hosted in-house, a test server). Off: only public https addresses and the sandbox,
    # so that a company admin cannot make the server call its internal services.
    "SHIPGEAR_ALLOW_PRIVATE_ENDPOINTS": False,
    # Seconds without any call after which an API's status is None.
    "SHIPGEAR_STATUS_STALE_AFTER": 600,
    # The status rules of PRODUCT.md section 3 (see status.py).
    "SHIPGEAR_STATUS_WINDOW": 900,
    "SHIPGEAR_STATUS_MIN_CALLS": 3,
    "SHIPGEAR_STATUS_YELLOW_RATE": 0.05,
    "SHIPGEAR_STATUS_RED_RATE": 0.5,
    "SHIPGEAR_STATUS_RED_CONSECUTIVE": 3,
    "SHIPGEAR_STATUS_SLOW_MS": 5000,
    # Seconds between health probes of each store account's three APIs.
    "SHIPGEAR_HEALTH_EVERY": 300,
    # Seconds between product syncs of each store account.
    "SHIPGEAR_PRODUCTS_EVERY": 21600,
    # Seconds to wait after failed attempt 1, 2, 3 and 4 (the 5th failure is final). The
    # store's own hint (Retry-After, rate-limit headers) wins when it asks for longer.
    "SHIPGEAR_RETRY_SCHEDULE": "60,300,1800,7200",
    # Seconds before each check that an accepted write-back shows on the store (B1). When
    # every check has passed unseen, that counts as a failed attempt and it is resent.
    "SHIPGEAR_VERIFY_SCHEDULE": "20,60,300,900,3600,7200",
    # A row claimed by a worker for longer than this is released by the sweeper (the
    # worker died); it must exceed the longest attempt (timeouts x calls per attempt).
    "SHIPGEAR_CLAIM_STALE_AFTER": 300,
    # How often the sweeper re-enqueues due rows whose job vanished.
    "SHIPGEAR_SWEEP_INTERVAL": 30,
    # Due Amazon packages of one account from which they go as one feed (B5).
    "SHIPGEAR_FEED_THRESHOLD": 25,
    # Seconds between checks of a submitted Amazon feed's processing status.
    "SHIPGEAR_FEED_POLL_EVERY": 30,
    # Seconds between refreshes of the orders grid and of an open shipment that is not
    # final yet, while the page is in view and the user is not selecting rows or typing
    # (write-backs move on their own); 0 turns it off.
    "SHIPGEAR_PAGE_REFRESH": 10,
    # Business days after the ship date from which an unconfirmed Amazon order is
    # flagged "At risk" (Amazon cancels unconfirmed orders after about 7).
    "SHIPGEAR_AT_RISK_BUSINESS_DAYS": 5,
    # /metrics (Prometheus) answers only with this bearer token; unset: no metrics.
    "SHIPGEAR_METRICS_TOKEN": None,
    "SHIPGEAR_METRICS_PATH": "/metrics",
    # (connect, read) seconds for every store call.
    "SHIPGEAR_HTTP_TIMEOUT": "3.05,15",
    # Our shared budgets per store, over ratelimit.DEFAULT_LIMITS: "platform[.api]=rate/burst"
    # entries, e.g. "bigcommerce=7/70 amazon.orders=0.45/9" for a plan with a larger quota.
    "SHIPGEAR_RATE_LIMITS": "",
}

#: The demo's faster clock: write-backs visibly move within seconds.
DEMO_OVERRIDES: dict[str, Any] = {
    "SHIPGEAR_RETRY_SCHEDULE": "3,6,12,24",
    "SHIPGEAR_VERIFY_SCHEDULE": "2,4,8,15,30",
    "SHIPGEAR_SWEEP_INTERVAL": 5,
    "SHIPGEAR_FEED_POLL_EVERY": 3,
}


def apply_defaults(config: dict[str, Any]) -> None:
    for key, value in DEFAULTS.items():
        config.setdefault(key, value)


def seconds_list(config: dict[str, Any], key: str) -> tuple[float, ...]:
    """A comma-separated list of seconds (or a list) as floats, each at least 0."""
    raw = config.get(key, DEFAULTS.get(key))
    parts = raw.split(",") if isinstance(raw, str) else list(raw or ())
    try:
        values = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be comma-separated seconds, got {raw!r}") from None
    if not values or any(v < 0 for v in values):
        raise ValueError(f"{key} must list at least one number of seconds >= 0, got {raw!r}")
    return values


def int_setting(config: dict[str, Any], key: str) -> int:
    """An integer setting that may have arrived as an environment string."""
    raw = config.get(key, DEFAULTS.get(key))
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a whole number, got {raw!r}") from None


def flag(value: Any) -> bool:
    """A yes/no setting, from the environment ("1", "true", "yes", "on") or code."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
