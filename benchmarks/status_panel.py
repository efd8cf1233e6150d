"""Benchmark: status.json for one company with 200 store accounts, against PostgreSQL
and Redis, with 1 hour and then 30 days of recorded calls (PRODUCT.md §6: under 50 ms
median, and the two within 1.2x: the cost must not grow with history).

    python benchmarks/status_panel.py [--database URL] [--redis URL] [--requests 60]

It creates (and empties) its own tables in the given database and flushes the given
Redis database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

import sqlalchemy as sa

from shipgear_exchange_plugin.callstats import RedisCallRecorder, key
from shipgear_exchange_plugin.connectors import Api, CallRecord, Outcome
from shipgear_exchange_plugin.crypto import generate_key
from shipgear_exchange_plugin.devhost import create_app, init_db
from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.devhost.seed import enable_plugin, ensure_users_and_companies
from shipgear_exchange_plugin.models import Base, StoreAccount

ACCOUNTS = 200


def build(database: str, redis_url: str):
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False,
                      "SHIPGEAR_ENCRYPTION_KEY": generate_key(), "DATABASE_URL": database,
                      "REDIS_URL": redis_url})
    init_db(app)
    with app.app_context():
        with db.engine.begin() as conn:
            for table in [*reversed(Base.metadata.sorted_tables),
                          *reversed(db.metadata.sorted_tables)]:
                conn.execute(table.delete())
        (company,) = ensure_users_and_companies(1)
        enable_plugin(company)
        db.session.commit()
        db.session.execute(sa.insert(StoreAccount), [
            {"company_id": company.id, "platform": ("amazon", "shopify", "woocommerce",
                                                    "bigcommerce")[n % 4],
             "name": f"Store {n:03d}", "order_source": f"bench-{n}",
             "endpoint": "http://127.0.0.1:9/none", "options": {}}
            for n in range(ACCOUNTS)])
        db.session.commit()
        ids = list(db.session.execute(sa.select(StoreAccount.id)).scalars())
        company_id = company.id
    app.extensions["exchange.host"].redis().flushdb()
    return app, company_id, ids


def fill(app, ids: list[int], span: dt.timedelta, every: dt.timedelta) -> int:
    """Record one call per API per ``every`` over ``span``, ending now (pipelined)."""
    connection = app.extensions["exchange.host"].redis()
    recorder = RedisCallRecorder(connection)
    now = dt.datetime.now(dt.UTC)
    steps = int(span / every)
    made = 0
    pipe = connection.pipeline(transaction=False)
    script = recorder._script  # the recorder's own Lua, pipelined for speed
    for step in range(steps, -1, -1):
        at = now - every * step
        for account_id in ids:
            for api in Api:
                failed = (account_id + step) % 17 == 0
                call = CallRecord(account_id, api, Outcome.RETRYABLE if failed else Outcome.OK,
                                  120, 503 if failed else 200, False, at)
                script(keys=[key(account_id, api)], args=[
                    int(at.timestamp()) // 60, int(failed), 0, 0, "H" if failed else "o",
                    at.timestamp(), call.http_status, "HTTP 503" if failed else "", 16, 86400],
                    client=pipe)
                made += 1
        if len(pipe) >= 20_000:
            pipe.execute()
    pipe.execute()
    return made


def median_ms(client, url: str, count: int) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        answer = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200 and len(answer.get_json()["accounts"]) == ACCOUNTS
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/shipgear_bench")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    engine = sa.create_engine(args.database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        conn.execute(sa.text("select 1"))
    app, company_id, ids = build(args.database, args.redis)
    client = app.test_client()
    client.post("/login", data={"username": "viewer", "password": "demo"})
    url = f"/companies/{company_id}/ecommerce/status.json"
    calls = fill(app, ids, dt.timedelta(hours=1), dt.timedelta(minutes=1))
    client.get(url)
    hour = median_ms(client, url, args.requests)
    print(f"1 hour of history ({calls:,} calls): status.json median {hour:.1f} ms")
    calls += fill(app, ids, dt.timedelta(days=30), dt.timedelta(minutes=30))
    month = median_ms(client, url, args.requests)
    print(f"30 days of history ({calls:,} calls): status.json median {month:.1f} ms")
    print(f"target: under 50 ms -> {'met' if max(hour, month) < 50 else 'MISSED'}; "
          f"ratio 30 days / 1 hour = {month / hour:.2f} (target <= 1.2 -> "
          f"{'met' if month / hour <= 1.2 else 'MISSED'})")


if __name__ == "__main__":
    main()
