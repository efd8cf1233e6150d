"""Prometheus metrics (PRODUCT.md B13), gathered fresh at each scrape from the database,
the queues and the status store, into a registry of its own (nothing global to drift).

- ``shipgear_writebacks{status}``: packages per write-back status;
- ``shipgear_attempts{outcome}``: attempts made, by outcome;
- ``shipgear_queue_jobs{queue}``: jobs waiting per RQ queue;
- ``shipgear_api_status{account_id,platform,api}``: 0 none, 1 green, 2 yellow, 3 red;
- ``shipgear_status_store_up``: 1 when the API statuses could be read.
"""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from redis.exceptions import RedisError

from . import status
from .host_contract import Host
from .models import Attempt, StoreAccount, Writeback

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
COLOUR_VALUE = {"none": 0, "green": 1, "yellow": 2, "red": 3}


def render(host: Host, queues: list[str], rules: status.Thresholds,
           company_ids: list[int]) -> bytes:
    registry = CollectorRegistry()
    session = host.db.session
    writebacks = Gauge("shipgear_writebacks", "Packages per write-back status", ["status"],
                       registry=registry)
    for name, count in session.execute(
            sa.select(Writeback.status, sa.func.count()).group_by(Writeback.status)):
        writebacks.labels(name).set(count)
    attempts = Gauge("shipgear_attempts", "Write-back attempts made, by outcome", ["outcome"],
                     registry=registry)
    for outcome, count in session.execute(
            sa.select(Attempt.outcome, sa.func.count()).group_by(Attempt.outcome)):
        attempts.labels(outcome).set(count)
    depth = Gauge("shipgear_queue_jobs", "Jobs waiting per RQ queue", ["queue"],
                  registry=registry)
    api = Gauge("shipgear_api_status", "API status: 0 none, 1 green, 2 yellow, 3 red",
                ["account_id", "platform", "api"], registry=registry)
    up = Gauge("shipgear_status_store_up", "1 when the status store could be read",
               registry=registry)
    accounts = session.execute(sa.select(StoreAccount.id, StoreAccount.platform).where(
        StoreAccount.company_id.in_(company_ids), StoreAccount.enabled.is_(True))).all()
    session.rollback()
    try:
        for name in queues:
            depth.labels(name).set(host.queue(name).count)
        found = status.statuses(host.redis(), [a.id for a in accounts], rules)
        for account_id, platform in accounts:
            for name in status.APIS:
                api.labels(str(account_id), platform, name).set(
                    COLOUR_VALUE[found[(account_id, name)].status])
        up.set(1)
    except (RedisError, OSError):
        up.set(0)
    return generate_latest(registry)
