"""The write-back engine's own CPU per send, against RQ's per no-op job (issue 4).

Why: the throughput target compares write-backs/s with RQ's no-op jobs/s. A write-back is
at least one RQ job plus the engine's work in the database, so the ratio can never pass
``noop / (noop + engine)``, whatever the stores cost. This measures both terms in one
process, on PostgreSQL and Redis:

1. **no-op jobs**: N jobs of :func:`noop` on a queue, worked to the end by RQ's
   ``SimpleWorker`` in burst mode (the worker class the plugin's ``AppWorker`` extends);
2. **sends**: N pending write-backs (made by the reference host's outbox hook, not
   timed), each sent once through ``WritebackService.send`` the way a job does it (an app
   context, the service built from the host) with the store answered in memory: the
   claim, the plugin-enabled check, the account, the record. No HTTP, no rate limiter,
   no call counting.

It prints CPU milliseconds of this process per unit (PostgreSQL's and redis-server's
share not included, so the bound is generous) and the ratio bound. Diagnosis, not a
proof of the product: the in-memory store exists only here.

    .venv/bin/python benchmarks/engine_cost.py --count 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))

from processes import drop_plugin_tables  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/shipgear_engine"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"


def noop() -> None:
    return None


class InstantStore:
    """A connector that accepts every write and shows it at once, with no I/O."""

    shows_writes_at_once = True

    def write_back(self, package):
        from shipgear_exchange_plugin.connectors import Outcome, Result

        return Result(Outcome.ACCEPTED, "accepted", http_status=200)

    def verify(self, package):
        from shipgear_exchange_plugin.connectors import Outcome, Result

        return Result(Outcome.VERIFIED, "shown", http_status=200)

    def close(self) -> None:
        return None


def noop_cpu_ms(redis_url: str, count: int) -> float:
    import redis
    from rq import Queue, SimpleWorker

    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    queue = Queue("engine-cost", connection=connection)
    for _ in range(count):
        queue.enqueue("engine_cost.noop")  # importable by name, as workers need
    worker = SimpleWorker([queue], connection=connection)
    started = time.process_time()
    worker.work(burst=True)
    spent = time.process_time() - started
    connection.flushdb()
    return spent / count * 1000


def send_cpu_ms(database_url: str, redis_url: str, count: int) -> float:
    import sqlalchemy as sa

    from shipgear_exchange_plugin import runtime
    from shipgear_exchange_plugin.crypto import generate_key
    from shipgear_exchange_plugin.devhost import create_app, init_db
    from shipgear_exchange_plugin.devhost.models import db
    from shipgear_exchange_plugin.devhost.seed import seed
    from shipgear_exchange_plugin.devhost.shipments import process_shipment
    from shipgear_exchange_plugin.models import Writeback

    drop_plugin_tables(database_url, create_database=True)
    app = create_app({"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                      "SECRET_KEY": "bench", "SHIPGEAR_ENCRYPTION_KEY": generate_key()})
    warm = max(1, count // 5)
    with app.app_context():
        init_db(app)
        seed(app, companies=1, shipments=0, enabled=1)
        host = app.extensions["exchange.host"]
        for n in range(count + warm):
            process_shipment(host, company_id=1, order_source="shopify-1",
                             order_id=str(100000 + n), carrier="UPS", service="Ground",
                             packages=[{"tracking_number": f"1ZENGINE{n:08d}", "items": [
                                 {"sku": "SKU-1000", "order_item_id": "1", "quantity": 1}]}])
        ids = db.session.execute(sa.select(Writeback.id).order_by(Writeback.id)).scalars().all()
        db.session.remove()

    def send(writeback_id: int) -> None:
        with app.app_context():  # as AppWorker runs each job
            service = runtime.writeback_service(app.extensions["exchange.host"])
            service.throttle = service.recorder = None
            service._connector_factory = lambda row: InstantStore()
            step = service.send(writeback_id)
            assert step.status == "success", step

    for writeback_id in ids[:warm]:
        send(writeback_id)
    started = time.process_time()
    for writeback_id in ids[warm:]:
        send(writeback_id)
    return (time.process_time() - started) / count * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args()
    noop_ms = noop_cpu_ms(args.redis_url, args.count)
    send_ms = send_cpu_ms(args.database_url, args.redis_url, args.count)
    print(f"RQ no-op job (SimpleWorker, this process): {noop_ms:.2f} ms CPU each")
    print(f"engine send, store answered in memory: {send_ms:.2f} ms CPU each")
    print(f"engine send / no-op job: {send_ms / noop_ms:.2f}")
    print(f"write-backs/s to no-op jobs/s can be at most {noop_ms / (noop_ms + send_ms):.2f} "
          "(target 0.5), before any store call, and before PostgreSQL's and Redis's CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
