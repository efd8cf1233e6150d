"""Store rate limits shared by every worker process, kept in Redis (PRODUCT.md B4).

A token bucket per store account (and per API where the store limits per operation),
taken atomically by a Lua script that reads Redis's own clock, so any number of workers
on any number of machines together stay under the store's limit. Our budgets sit a little
below the stores' published limits: requests leave here slightly before they arrive there.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from redis import Redis
from redis.exceptions import RedisError

from .connectors.base import Api

log = logging.getLogger(__name__)

#: (requests per second, burst) per platform and API; None is "every API together".
#: Amazon limits each operation (confirmShipment 2/s burst 10); Shopify's REST bucket is
#: 40 leaking 2/s per store; BigCommerce's quota (150 per 30 s on small plans) is shared
#: with every other app on the store, so we take a share of it; WooCommerce sets none.
DEFAULT_LIMITS: dict[str, dict[Api | None, tuple[float, float]]] = {
    "amazon": {Api.WRITEBACK: (1.8, 9), Api.ORDERS: (0.45, 9), Api.PRODUCTS: (1.8, 9)},
    "shopify": {None: (1.8, 36)},
    "woocommerce": {None: (5.0, 10)},
    "bigcommerce": {None: (3.0, 30)},
}

Limits = dict[str, dict[Api | None, tuple[float, float]]]


def parse_limits(text: str | None, base: Limits | None = None) -> Limits:
    """``SHIPGEAR_RATE_LIMITS`` over ``base`` (the defaults): entries such as
    ``bigcommerce=7/70`` (every API of the store) or ``amazon.orders=0.45/9`` (one API),
    separated by commas or spaces. Raises ValueError saying which entry is wrong."""
    limits = {platform: dict(apis) for platform, apis in (base or DEFAULT_LIMITS).items()}
    for entry in (text or "").replace(",", " ").split():
        target, _, value = entry.partition("=")
        platform, _, api_name = target.strip().lower().partition(".")
        rate, _, burst = value.partition("/")
        try:
            api = Api(api_name) if api_name else None
            budget = (float(rate), float(burst))
        except ValueError:
            budget = None
        if (platform not in DEFAULT_LIMITS or budget is None
                or not all(math.isfinite(v) for v in budget) or budget[0] <= 0
                or budget[1] < 1):
            raise ValueError(
                f"SHIPGEAR_RATE_LIMITS: {entry!r} is not platform[.api]=rate/burst with "
                f"platform one of {', '.join(DEFAULT_LIMITS)}, api one of "
                f"{', '.join(a.value for a in Api)}, a rate above 0 and a burst of at least 1")
        limits[platform][api] = budget
    return limits


_TAKE = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'stamp', 'promised')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
local promised = tonumber(state[3]) or 0
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then
  if promised > now and tokens >= 2 then
    -- tokens went unclaimed while times were promised: those callers did not come back
    -- (their rows went another way); give their slots back
    promised = math.max(now, promised - (tokens - 1) / rate)
  end
  tokens = tokens - 1
else
  local slot = math.max(now + (1 - tokens) / rate, promised + 1 / rate)
  promised = slot
  wait = slot - now
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'stamp', tostring(now),
           'promised', tostring(promised))
redis.call('EXPIRE', key, math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class RedisRateLimiter:
    """``limiter(account_id, platform, api)`` gives the seconds to wait before the call
    may go (0: go now, a token was taken). Redis unreachable: go (the store still
    enforces its limit, and a 429 is a retryable error like any other).

    Callers turned away are told different times, one token's worth apart (the script
    keeps the last time it promised): told all the same time, as before, they came back
    together, one got the token and the rest were turned away again, and each return is
    a job (1,859 extra jobs for Amazon's 0.45/s order reads in a 10,000-row run). A
    promise is a hint, not a reservation: whoever asks first when a token is there
    takes it, so the limit holds whatever callers do. Tokens left unclaimed while times
    are promised mean those callers are not coming back, and give their slots back."""

    def __init__(self, connection: Redis,
                 limits: Mapping[str, Mapping[Api | None, tuple[float, float]]] | None = None,
                 prefix: str = "sgx:rate") -> None:
        self.connection = connection
        self.limits = limits or DEFAULT_LIMITS
        self.prefix = prefix
        self._script = connection.register_script(_TAKE)

    def budget(self, platform: str, api: Api) -> tuple[str, tuple[float, float]] | None:
        per_api = self.limits.get(platform, {})
        if api in per_api:
            return api.value, per_api[api]
        if None in per_api:
            return "all", per_api[None]
        return None

    def wait_for(self, account_id: int, platform: str, api: Api) -> float:
        budget = self.budget(platform, api)
        if budget is None:
            return 0.0
        scope, (rate, burst) = budget
        try:
            return float(self._script(keys=[f"{self.prefix}:{account_id}:{scope}"],
                                      args=[rate, burst]))
        except RedisError as exc:
            log.warning("rate limiter unavailable (%s); the store's own limit applies", exc)
            return 0.0
