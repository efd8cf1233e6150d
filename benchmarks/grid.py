"""Benchmark: the orders grid's ``orders.json`` at a million rows (PRODUCT.md §6).

    python benchmarks/grid.py [--requests 100] [--deep-requests 60]

Seeds (once, then reuses) two PostgreSQL databases with the demo's data shape over 50
companies: ``shipgear_bench_grid`` with 1,000,000 shipments and ``shipgear_bench_grid_10k``
with 10,000, the first company holding 60% of them in both (so that it has a list more
than 500,000 rows deep). Every request is company 1's, through the app (Flask's test
client, signed in as admin), 50 rows.

Targets, each a ratio of medians measured in this run:
(a) each case at most 3x a trivial JSON route behind the same login: ``/_bench/ping``,
    registered here on the benchmark's own app, which runs the blueprint's access check
    and answers ``{"ok": true}``;
(b) each case at 1,000,000 shipments within 1.25x of the same request at 10,000;
(c) a page after 500,000 rows (a cursor built from the 500,001st row) within 1.5x of
    the first page, same parameters.
It prints the bare SQL time of each page query through psycopg for reference, and fails
(exit status 1) when EXPLAIN shows a Sort node in any case's plan.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from flask import Flask, g, jsonify  # noqa: E402
from seed_large import SECRET_KEY, Shape, ensure_seeded, login  # noqa: E402

from shipgear_exchange_plugin import orders  # noqa: E402
from shipgear_exchange_plugin.devhost.models import Company, db  # noqa: E402
from shipgear_exchange_plugin.export import compile_for_driver  # noqa: E402

BIG = ("shipgear_bench_grid", Shape(companies=50, shipments=1_000_000, enabled=50,
                                     shares=(73.5,)))
SMALL = ("shipgear_bench_grid_10k", Shape(companies=50, shipments=10_000, enabled=50,
                                          shares=(73.5,)))
COMPANY = 1
LIMIT = 50
DEPTH = 500_000
#: (a) and (b): the support desk's view, failed rows of two weeks.
FILTER = {"status": "failed", "date_from": "2026-11-06", "date_to": "2026-11-20"}
#: (c): a list deep enough to page 500,000 rows into: every status but pending, and a
#: date range spanning the whole seed.
DEEP_FILTER = {"status": "submitted,success,failed,manual", "date_from": "2026-10-01",
               "date_to": "2026-11-30"}
SORTS = [s for key in orders.SORTS for s in (key, f"-{key}")]
TARGET_PING, TARGET_SIZE, TARGET_DEEP = 3.0, 1.25, 1.5


@dataclass
class Case:
    name: str
    params: dict
    flt: orders.OrderFilter
    after: list | None = None


def add_ping(app: Flask) -> None:
    """``/_bench/ping/<company_id>``: the plugin's access check (sign-in, membership,
    plugin enabled, view permission), then a constant JSON body."""
    from shipgear_exchange_plugin.blueprints import ecommerce

    def ping(company_id: int):
        g.sgx_company_id = company_id
        refused = ecommerce._require_access()
        if refused is not None:
            return refused
        return jsonify({"ok": True, "company": g.sgx_company.id})

    app.add_url_rule("/_bench/ping/<int:company_id>", "bench_ping", ping)


def order_filter(app: Flask, params: dict, sort: str) -> orders.OrderFilter:
    import datetime as dt

    with app.app_context():
        timezone = db.session.get(Company, COMPANY).timezone
    return orders.OrderFilter(
        statuses=tuple(params["status"].split(",")),
        date_from=dt.date.fromisoformat(params["date_from"]),
        date_to=dt.date.fromisoformat(params["date_to"]), timezone=timezone, sort=sort)


class Samples(dict):
    """Timings per key; a key stops being sampled once it has ``least`` samples and has
    used up ``budget`` seconds (a pathological case should not take an hour)."""

    def __init__(self, wanted: int, least: int = 5, budget: float = 20.0) -> None:
        super().__init__()
        self.wanted, self.least, self.budget = wanted, least, budget

    def want(self, key) -> bool:
        values = self.setdefault(key, [])
        return len(values) < self.wanted and (len(values) < self.least
                                              or sum(values) < self.budget)

    def take(self, key, call: Callable[[], object]) -> None:
        if self.want(key):
            self[key].append(timed(call))


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def get_json(client, url: str, params: dict) -> Callable[[], object]:
    def call():
        answer = client.get(url, query_string=params)
        if answer.status_code != 200:
            raise SystemExit(f"{url} {params}: {answer.status_code} {answer.get_data()[:300]}")
        return answer
    return call


def page_sqls(app: Flask, case: Case) -> list[tuple[str, dict]]:
    """The SQL orders.page may run for ``case``, for the driver: the query of the
    cursor's segment of the grid's order, then (when that runs out) of the next one."""
    with app.app_context():
        queries = orders.segments(COMPANY, case.flt)
        if case.after is not None:
            queries = queries[orders._segment_of(case.flt, case.after):]
            queries[0] = queries[0].where(orders._after(case.flt, case.after))
        return [compile_for_driver(db.session, query.limit(LIMIT + 1)) for query in queries]


def sql_median(app: Flask, case: Case, runs: int) -> float:
    statement, params = page_sqls(app, case)[0]  # the one that fills the page here
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                cursor.execute(statement, params, prepare=False)
                cursor.fetchall()
                times.append(time.perf_counter() - started)
            raw.driver_connection.rollback()
        finally:
            raw.close()
    return statistics.median(times)


def plan(app: Flask, case: Case, analyze: bool = False, segment: int = 0) -> dict:
    statement, params = page_sqls(app, case)[segment]
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            cursor.execute(f"EXPLAIN ({options}) {statement}", params)  # SQLAlchemy's SQL
            result = cursor.fetchone()[0]
            raw.driver_connection.rollback()
        finally:
            raw.close()
    return result[0] if isinstance(result, list) else json.loads(result)[0]


def sort_nodes(node: dict) -> list[dict]:
    found = [node] if node.get("Node Type") in ("Sort", "Incremental Sort") else []
    for child in node.get("Plans", []):
        found += sort_nodes(child)
    return found


def deep_cursor(app: Flask, case: Case) -> tuple[list, str]:
    """The cursor values of the row at position DEPTH + 1 (OFFSET, once, to build it)."""
    with app.app_context():
        row, skip = None, DEPTH
        for query in orders.segments(COMPANY, case.flt):
            row = db.session.execute(query.offset(skip).limit(1)).scalar_one_or_none()
            if row is not None:
                break
            skip -= db.session.execute(sa.select(sa.func.count()).select_from(
                query.subquery())).scalar_one()
        if row is None:
            raise SystemExit(f"{case.name}: fewer than {DEPTH + 1} rows match {case.params}")
        token = orders.CursorCodec(SECRET_KEY).encode(case.flt, row)
        return orders.CursorCodec(SECRET_KEY).decode(case.flt, token), token


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="per case and size")
    parser.add_argument("--deep-requests", type=int, default=60, help="per deep case")
    args = parser.parse_args()

    big = ensure_seeded(*BIG)
    small = ensure_seeded(*SMALL)
    for app in (big, small):
        add_ping(app)
    big_client, small_client = login(big), login(small)
    url = f"/companies/{COMPANY}/ecommerce/orders.json"
    ping_url = f"/_bench/ping/{COMPANY}"
    with big.app_context():
        total = db.session.execute(sa.text(
            "select count(*) from sgx_writeback where company_id = :c"), {"c": COMPANY}
        ).scalar_one()
        rows = db.session.execute(sa.text("select count(*) from sgx_writeback")).scalar_one()
    print(f"PostgreSQL, {rows:,} write-backs; company {COMPANY} has {total:,}. "
          f"{args.requests} requests per case and size, {LIMIT} rows each.")

    cases = [Case(sort, {**FILTER, "sort": sort, "limit": LIMIT},
                  order_filter(big, FILTER, sort)) for sort in SORTS]
    failures: list[str] = []
    ping = get_json(big_client, ping_url, {})

    # -- (a) and (b) ---------------------------------------------------------------
    for case in cases:  # warm up: caches, connection pool, code paths
        for client in (big_client, small_client):
            for _ in range(2):
                get_json(client, url, case.params)()
    times = Samples(args.requests)
    ping_times: list[float] = []
    for _ in range(args.requests):
        for case in cases:
            times.take((case.name, "big"), get_json(big_client, url, case.params))
            times.take((case.name, "small"), get_json(small_client, url, case.params))
            ping_times.append(timed(ping))
    ping_ms = median_ms(ping_times)
    print(f"\n/_bench/ping (access check + JSON) median: {ping_ms:.2f} ms")
    print(f"\n{'sort':<14}{'1M ms':>8}{'10k ms':>8}{'SQL ms':>8}{'(a) x ping':>12}"
          f"{'(b) 1M/10k':>12}  filter {FILTER}")
    worst_a = worst_b = 0.0
    for case in cases:
        b, s = median_ms(times[(case.name, "big")]), median_ms(times[(case.name, "small")])
        sql = sql_median(big, case, 10 if b > 100 else 30) * 1000
        ratio_a, ratio_b = b / ping_ms, b / s
        worst_a, worst_b = max(worst_a, ratio_a), max(worst_b, ratio_b)
        print(f"{case.name:<14}{b:>8.2f}{s:>8.2f}{sql:>8.2f}{ratio_a:>12.2f}{ratio_b:>12.2f}")
    all_big = statistics.median([t for (_, size), v in times.items() if size == "big"
                                 for t in v]) * 1000
    all_small = statistics.median([t for (_, size), v in times.items() if size == "small"
                                   for t in v]) * 1000
    print(f"{'all cases':<14}{all_big:>8.2f}{all_small:>8.2f}{'':>8}{all_big / ping_ms:>12.2f}"
          f"{all_big / all_small:>12.2f}")
    print(f"(a) worst case {worst_a:.2f}x ping (target <= {TARGET_PING}x): "
          f"{'met' if worst_a <= TARGET_PING else 'MISSED'}")
    print(f"(b) worst case {worst_b:.2f}x the 10k database (target <= {TARGET_SIZE}x): "
          f"{'met' if worst_b <= TARGET_SIZE else 'MISSED'}; all cases together "
          f"{all_big / all_small:.2f}x")
    if worst_a > TARGET_PING:
        failures.append("(a)")
    if worst_b > TARGET_SIZE:
        failures.append("(b)")

    # -- (c) -----------------------------------------------------------------------
    deep_cases = []
    for sort in SORTS:
        flt = order_filter(big, DEEP_FILTER, sort)
        first = Case(sort, {**DEEP_FILTER, "sort": sort, "limit": LIMIT}, flt)
        values, token = deep_cursor(big, first)
        deep = Case(sort, {**first.params, "after": token}, flt, values)
        deep_cases.append((first, deep))
    with big.app_context():
        deep_total = orders.count_bounded(db.session, COMPANY, deep_cases[0][0].flt,
                                          bound=10**9)
    print(f"\n(c) filter {DEEP_FILTER}: {deep_total:,} rows; the deep page starts after "
          f"row {DEPTH:,}")
    for first, deep in deep_cases:
        get_json(big_client, url, first.params)()
        get_json(big_client, url, deep.params)()
    deep_times = Samples(args.deep_requests)
    for _ in range(args.deep_requests):
        for first, deep in deep_cases:
            deep_times.take((first.name, "first"), get_json(big_client, url, first.params))
            deep_times.take((first.name, "deep"), get_json(big_client, url, deep.params))
    print(f"{'sort':<14}{'first ms':>10}{'deep ms':>10}{'SQL first':>11}{'SQL deep':>10}"
          f"{'(c) deep/first':>16}")
    worst_c = 0.0
    for first, deep in deep_cases:
        f = median_ms(deep_times[(first.name, "first")])
        d = median_ms(deep_times[(first.name, "deep")])
        sql_f = sql_median(big, first, 5 if f > 100 else 20) * 1000
        sql_d = sql_median(big, deep, 5 if d > 100 else 20) * 1000
        worst_c = max(worst_c, d / f)
        print(f"{first.name:<14}{f:>10.2f}{d:>10.2f}{sql_f:>11.2f}{sql_d:>10.2f}{d / f:>16.2f}")
    print(f"(c) worst case {worst_c:.2f}x the first page (target <= {TARGET_DEEP}x): "
          f"{'met' if worst_c <= TARGET_DEEP else 'MISSED'}")
    if worst_c > TARGET_DEEP:
        failures.append("(c)")

    # -- plans -----------------------------------------------------------------------
    print("\nEXPLAIN of every case (first pages, deep pages):")
    sorted_plans = []
    for case in [*cases, *(c for pair in deep_cases for c in pair)]:
        label = f"{case.name}{' deep' if case.after is not None else ''} {case.params['status']}"
        for segment in range(len(page_sqls(big, case))):
            part = f"{label}{f' (segment {segment + 1})' if segment else ''}"
            top = plan(big, case, segment=segment)["Plan"]
            nodes = sort_nodes(top)
            if nodes:
                sorted_plans.append(part)
                print(f"  SORT  {part}: Sort over ~{nodes[0].get('Plan Rows', '?')} rows "
                      f"(key {nodes[0].get('Sort Key')})")
                analysed = plan(big, case, analyze=True, segment=segment)
                print("        EXPLAIN ANALYZE: " + json.dumps(analysed["Plan"])[:1500])
            else:
                print(f"  ok    {part}: {_plan_shape(top)}")
    if sorted_plans:
        print(f"\n!!! EXPLAIN shows a Sort for {len(sorted_plans)} case(s): "
              + ", ".join(sorted_plans))
        failures.append("plans")
    if failures:
        print(f"\nFAILED: {', '.join(failures)}")
        return 1
    print("\nAll grid targets met.")
    return 0


def _plan_shape(node: dict) -> str:
    name = node["Node Type"]
    if node.get("Index Name"):
        name += f" using {node['Index Name']}"
    children = node.get("Plans", [])
    return name + (" <- " + " + ".join(_plan_shape(c) for c in children) if children else "")


if __name__ == "__main__":
    sys.exit(main())
