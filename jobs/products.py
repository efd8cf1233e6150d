"""RQ jobs of the products sync (PRODUCT.md S1, issue 5 item 2). Thin: the core does the
sync; these pick the accounts, build the connector's parts from the host and enqueue."""

from __future__ import annotations

import datetime as dt

from shipgear_exchange_plugin import PLUGIN_ID, products, runtime
from shipgear_exchange_plugin.host_contract import get_host
from shipgear_exchange_plugin.jobs.locks import once
from shipgear_exchange_plugin.models import StoreAccount, utcnow
from shipgear_exchange_plugin.plugin import state
from shipgear_exchange_plugin.ratelimit import RedisRateLimiter

QUEUE = "shipgear-status"
SYNC_JOB = "shipgear_exchange_plugin.jobs.products.sync"
DEFAULT_EVERY = 21600
#: An account whose sync failed is tried again after this long at the soonest (or after
#: SHIPGEAR_PRODUCTS_EVERY, when that is shorter), not on every pass of sync_due.
RETRY_FAILED_AFTER = 900
TRIED_KEY = "sgx:products:tried:{}"


def sync(account_id: int) -> str:
    """Load one account's products from its store (skipped when the account or its
    company's plugin is disabled)."""
    host = get_host()
    session = host.db.session
    account = session.get(StoreAccount, account_id)
    if account is None or not account.enabled:
        session.rollback()
        return "skipped: no such enabled account"
    if not host.is_enabled(PLUGIN_ID, account.company_id):
        session.rollback()
        return "skipped: plugin disabled for the company"
    plugin = state(host.app)
    result = products.sync_account(
        session, account, plugin.credentials, recorder=plugin.recorder,
        throttle=RedisRateLimiter(host.redis()), timeout=runtime.policy(host).timeout,
        addresses=runtime.address_rules(host))
    return ("ok: " if result.ok else "failed: ") + result.message


def every_seconds(config) -> int:
    """``SHIPGEAR_PRODUCTS_EVERY``: how old an account's products may get (seconds)."""
    raw = config.get("SHIPGEAR_PRODUCTS_EVERY", DEFAULT_EVERY)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"SHIPGEAR_PRODUCTS_EVERY must be whole seconds, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"SHIPGEAR_PRODUCTS_EVERY must be at least 1, got {raw!r}")
    return value


def sync_due() -> dict[str, int]:
    """Periodic: enqueue ``sync`` for every enabled account of an enabled company whose
    products are older than ``SHIPGEAR_PRODUCTS_EVERY``. One pass at a time across
    workers (a Redis lock), and at most one enqueue per account per retry interval (a
    Redis key that expires), so a store that keeps failing is not asked on every pass."""
    host = get_host()
    connection = host.redis()
    with once(connection, "products-due", 300) as held:
        if not held:
            return {"skipped": 1}
        every = every_seconds(host.app.config)
        session = host.db.session
        due = products.due_accounts(session, host.enabled_company_ids(PLUGIN_ID),
                                    utcnow() - dt.timedelta(seconds=every))
        session.rollback()
        queue = host.queue(QUEUE)
        enqueued = 0
        for account_id in due:
            if not connection.set(TRIED_KEY.format(account_id), 1, nx=True,
                                  ex=min(every, RETRY_FAILED_AFTER)):
                continue
            queue.enqueue(SYNC_JOB, account_id, job_id=f"sgx-products-{account_id}",
                          description=f"products sync of account {account_id}",
                          result_ttl=600, failure_ttl=86400)
            enqueued += 1
        return {"due": len(due), "enqueued": enqueued}
