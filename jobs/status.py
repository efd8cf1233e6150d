"""RQ jobs of Connection Status: health probes, the per-minute snapshot (history and
alerts) and alert delivery. Thin: each calls the core; periodic ones lock themselves so
that any number of workers run them once per interval."""

from __future__ import annotations

import time

import requests
from redis.exceptions import RedisError
from rq import Retry

from shipgear_exchange_plugin import PLUGIN_ID, health, history, runtime, settings, status
from shipgear_exchange_plugin.host_contract import get_host
from shipgear_exchange_plugin.jobs.locks import once
from shipgear_exchange_plugin.models import StoreAccount, utcnow
from shipgear_exchange_plugin.plugin import state

QUEUE = health.STATUS_QUEUE
ALERT_TIMEOUT = (3.05, 10.0)


def _enabled_accounts(host) -> list[StoreAccount]:
    import sqlalchemy as sa

    companies = host.enabled_company_ids(PLUGIN_ID)
    if not companies:
        return []
    return list(host.db.session.execute(sa.select(StoreAccount).where(
        StoreAccount.company_id.in_(companies), StoreAccount.enabled.is_(True))
        .order_by(StoreAccount.id)).scalars())


def health_checks() -> int:
    """Periodic: one probe job per enabled store account (each probes its three APIs)."""
    host = get_host()
    with once(host.redis(), "health-checks", 60) as held:
        if not held:
            return 0
        every = int(host.app.config.get("SHIPGEAR_HEALTH_EVERY") or 300)
        slot = int(time.time()) // max(every, 1)
        queue = host.queue(QUEUE)
        accounts = _enabled_accounts(host)
        for account in accounts:
            queue.enqueue(probe, account.id, job_id=f"sgx-probe-{account.id}-{slot}",
                          result_ttl=600, failure_ttl=86400)
        return len(accounts)


def probe(account_id: int) -> dict[str, str]:
    """The cheapest call to each API of one account; the recorder counts them."""
    host = get_host()
    account = host.db.session.get(StoreAccount, account_id)
    if account is None or not account.enabled:  # turned off since it was queued
        host.db.session.rollback()
        return {}
    plugin = state(host.app)
    results = health.probe_account(account, plugin.credentials, plugin.recorder,
                                   runtime.policy(host).timeout,
                                   throttle=runtime.rate_limiter(host),
                                   addresses=runtime.address_rules(host))
    return {api.value: result.outcome.value for api, result in results.items()}


def snapshot() -> int:
    """Periodic (every minute): store each API's colour, alert on changes, prune."""
    host = get_host()
    with once(host.redis(), "status-snapshot", 50) as held:
        if not held:
            return 0
        accounts = _enabled_accounts(host)
        now = utcnow()
        try:
            found = status.statuses(host.redis(), [a.id for a in accounts],
                                    state(host.app).thresholds, now)
        except RedisError:
            return 0  # unknown is not a colour: nothing to store or alert
        changes = history.record(host.db.session, accounts, found, now)
        manifest = state(host.app).manifest
        queue = host.queue(QUEUE)
        for change in changes:
            url = settings.values(host.db.session, manifest, change.company_id).get(
                "alert_webhook_url")
            if url:
                queue.enqueue(deliver_alert, url, change.payload(),
                              retry=Retry(max=3, interval=[10, 60, 300]),
                              result_ttl=3600, failure_ttl=7 * 86400)
        return len(changes)


def deliver_alert(url: str, payload: dict) -> int:
    """POST one alert; a failure raises so that RQ retries it (3 more times)."""
    answer = requests.post(url, json=payload, timeout=ALERT_TIMEOUT,
                           headers={"User-Agent": "ShipGear-Exchange-Plugin alerts"})
    answer.raise_for_status()
    return answer.status_code



