"""The engine's parts built from the host: the service a job uses and the queues.

Jobs and views call these instead of wiring sessions, keys, Redis and settings themselves.
"""

from __future__ import annotations

from rq import Queue

from . import PLUGIN_ID, dispatch
from .addresses import AddressRules
from .feeds import AmazonFeeds
from .host_contract import Host
from .plugin import state
from .ratelimit import RedisRateLimiter, parse_limits
from .writeback import Policy, WritebackService


def policy(host: Host) -> Policy:
    plugin_state = state(host.app)
    if plugin_state.policy is None:
        plugin_state.policy = Policy.from_config(host.app.config)
    return plugin_state.policy


def rate_limiter(host: Host) -> RedisRateLimiter:
    plugin_state = state(host.app)
    if plugin_state.rate_limits is None:
        plugin_state.rate_limits = parse_limits(host.app.config.get("SHIPGEAR_RATE_LIMITS"))
    return RedisRateLimiter(host.redis(), plugin_state.rate_limits)


def address_rules(host: Host) -> AddressRules:
    """Where this installation lets store calls go (see :mod:`.addresses`)."""
    return AddressRules.from_config(host.app.config)


def writeback_service(host: Host) -> WritebackService:
    return WritebackService(
        host.db.session, state(host.app).credentials, policy=policy(host),
        throttle=rate_limiter(host), recorder=state(host.app).recorder,
        enabled=lambda company_id: host.is_enabled(PLUGIN_ID, company_id),
        addresses=address_rules(host))


def amazon_feeds(host: Host) -> AmazonFeeds:
    return AmazonFeeds(writeback_service(host))  # polled every SHIPGEAR_FEED_POLL_EVERY


def feed_threshold(host: Host) -> int:
    from .config import int_setting

    return int_setting(host.app.config, "SHIPGEAR_FEED_THRESHOLD")


def writeback_queue(host: Host) -> Queue:
    return host.queue(dispatch.QUEUE)
