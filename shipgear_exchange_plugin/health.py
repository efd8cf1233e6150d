"""Probing a store account's three APIs: the admin's connection test, the periodic
health checks, and the probe asked for at once when an account is connected, turned on
or given a new address or credentials."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from rq import Queue

from .addresses import AddressRules
from .connectors import Api, CallRecorder, Result, Throttle, connector_for
from .connectors.http import DEFAULT_TIMEOUT
from .credentials import read_credentials
from .crypto import CredentialBox
from .models import StoreAccount

log = logging.getLogger(__name__)
#: The queue of health probes, product syncs and alerts (plugin.yaml) and the probe job.
STATUS_QUEUE = "shipgear-status"
PROBE_JOB = "shipgear_exchange_plugin.jobs.status.probe"


def probe_account(account: StoreAccount, box: CredentialBox,
                  recorder: CallRecorder | None = None,
                  timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                  throttle: Throttle | None = None,
                  addresses: AddressRules | None = None) -> dict[Api, Result]:
    """One cheap call per API, in the order the panel shows them."""
    connector = connector_for(account, read_credentials(box, account), recorder, timeout,
                              throttle=throttle, addresses=addresses)
    try:
        missing = connector.missing_credentials()
        if missing is not None:
            return dict.fromkeys(Api, missing)
        return {api: connector.probe(api) for api in Api}
    finally:
        connector.close()


def probe_soon(queue: Queue, account_id: int) -> bool:
    """Have a worker probe the account now, so that its statuses show within seconds
    rather than at the next round of health checks. False when Redis cannot take the
    job: the next round probes it anyway."""
    try:
        queue.enqueue(PROBE_JOB, account_id, result_ttl=600, failure_ttl=86400,
                      job_id=f"sgx-probe-{account_id}-now",  # saved twice: one probe
                      description=f"probe of account {account_id} after a change")
    except (RedisError, OSError) as exc:
        log.warning("account %s: no probe queued now (%s); the next round probes it",
                    account_id, exc)
        return False
    return True
