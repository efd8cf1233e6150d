"""Benchmark: ``orders/export.csv`` at a million rows (PRODUCT.md §6).

    python benchmarks/export.py [--runs 3]

Seeds (once, then reuses) ``shipgear_bench_export`` on the local PostgreSQL: company 1
with about 1,000,000 write-backs and company 2 with about 10,000 (the demo's data shape).

Targets, measured in this run:
- time: company 1's whole export through the app (Flask's test client, signed in, every
  byte read) within 2.5x of ``COPY (same query) TO STDOUT WITH CSV`` read through psycopg.
  "Same query" is the export's SELECT (the grid's filter, order and columns, account
  joined) with the values as stored; the export's own formatted SELECT (neutralising,
  UTC times, done by PostgreSQL) is timed too, for reference;
- memory: the peak RSS (VmHWM) of a process exporting 1,000,000 rows within 50 MB of one
  exporting 10,000 (each export in its own subprocess).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from seed_large import Shape, bench_app, ensure_seeded, login  # noqa: E402

from shipgear_exchange_plugin import export, orders  # noqa: E402
from shipgear_exchange_plugin.devhost.models import Company, db  # noqa: E402

DATABASE = "shipgear_bench_export"
SHAPE = Shape(companies=2, shipments=962_000, enabled=2, shares=(100.0, 1.0))
BIG_COMPANY, SMALL_COMPANY = 1, 2
TARGET_TIME, TARGET_MEMORY_MB = 2.5, 50.0


def export_url(company_id: int) -> str:
    return f"/companies/{company_id}/ecommerce/orders/export.csv"


def through_app(client, company_id: int) -> tuple[float, int]:
    """Seconds and bytes of one whole export, read chunk by chunk as a server would."""
    started = time.perf_counter()
    answer = client.get(export_url(company_id), buffered=False)
    if answer.status_code != 200:
        raise SystemExit(f"export answered {answer.status_code}")
    size = 0
    for chunk in answer.response:
        size += len(chunk)
    answer.close()
    return time.perf_counter() - started, size


def through_driver(app, select: sa.Select) -> tuple[float, int]:
    """Seconds and bytes of ``COPY (select) TO STDOUT WITH CSV`` read through psycopg."""
    from psycopg import sql

    with app.app_context():
        statement, params = export.compile_for_driver(db.session, select)
        copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH CSV").format(sql.SQL(statement))
        raw = db.engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            started = time.perf_counter()
            size = 0
            with cursor.copy(copy_sql, params) as copy:
                for data in copy:
                    size += len(data)
            elapsed = time.perf_counter() - started
            raw.driver_connection.rollback()
        finally:
            raw.close()
    return elapsed, size


def default_filter(app, company_id: int) -> orders.OrderFilter:
    with app.app_context():
        timezone = db.session.get(Company, company_id).timezone
    return orders.OrderFilter(timezone=timezone)


def child(company_id: int) -> None:
    """One export in this fresh process; prints its figures and peak RSS as JSON."""
    app = bench_app(DATABASE)
    client = login(app)
    seconds, size = through_app(client, company_id)
    status = Path("/proc/self/status").read_text()
    peak_kb = int(next(line.split()[1] for line in status.splitlines()
                       if line.startswith("VmHWM:")))
    print(json.dumps({"seconds": seconds, "bytes": size, "peak_kb": peak_kb}))


def in_subprocess(company_id: int) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", str(company_id)],
                            capture_output=True, text=True, check=True, timeout=900)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0

    app = ensure_seeded(DATABASE, SHAPE)
    with app.app_context():
        counts = dict(db.session.execute(sa.text(
            "select company_id, count(*) from sgx_writeback group by company_id")).all())
    big_rows, small_rows = counts[BIG_COMPANY], counts[SMALL_COMPANY]
    print(f"PostgreSQL: company {BIG_COMPANY} exports {big_rows:,} rows, company "
          f"{SMALL_COMPANY} {small_rows:,}. {args.runs} runs each, medians.")

    flt = default_filter(app, BIG_COMPANY)
    plain = export.csv_query(BIG_COMPANY, flt)
    formatted = export.copy_query(BIG_COMPANY, flt)
    client = login(app)
    through_app(client, BIG_COMPANY)  # warm up: the rows in PostgreSQL's cache
    app_runs, plain_runs, formatted_runs = [], [], []
    size_app = size_plain = size_formatted = 0
    for _ in range(args.runs):
        seconds, size_app = through_app(client, BIG_COMPANY)
        app_runs.append(seconds)
        seconds, size_plain = through_driver(app, plain)
        plain_runs.append(seconds)
        seconds, size_formatted = through_driver(app, formatted)
        formatted_runs.append(seconds)
    app_s, plain_s = statistics.median(app_runs), statistics.median(plain_runs)
    formatted_s = statistics.median(formatted_runs)
    ratio = app_s / plain_s
    print(f"\nCOPY (same query) TO STDOUT WITH CSV via psycopg: {plain_s:.2f} s "
          f"({size_plain / 1e6:.0f} MB, {big_rows / plain_s:,.0f} rows/s)")
    print(f"COPY of the export's formatted SELECT via psycopg: {formatted_s:.2f} s "
          f"({size_formatted / 1e6:.0f} MB)")
    print(f"export.csv through the app:                       {app_s:.2f} s "
          f"({size_app / 1e6:.0f} MB, {big_rows / app_s:,.0f} rows/s)")
    print(f"time: {ratio:.2f}x COPY (target <= {TARGET_TIME}x): "
          f"{'met' if ratio <= TARGET_TIME else 'MISSED'}; "
          f"{app_s / formatted_s:.2f}x the formatted COPY")

    small = in_subprocess(SMALL_COMPANY)
    big = in_subprocess(BIG_COMPANY)
    growth_mb = (big["peak_kb"] - small["peak_kb"]) / 1024
    print(f"\npeak RSS exporting {small_rows:,} rows: {small['peak_kb'] / 1024:.1f} MB "
          f"({small['bytes'] / 1e6:.1f} MB of CSV)")
    print(f"peak RSS exporting {big_rows:,} rows: {big['peak_kb'] / 1024:.1f} MB "
          f"({big['bytes'] / 1e6:.0f} MB of CSV, {big['seconds']:.2f} s)")
    print(f"memory: +{growth_mb:.1f} MB for 100x the rows (target <= {TARGET_MEMORY_MB:.0f} "
          f"MB): {'met' if growth_mb <= TARGET_MEMORY_MB else 'MISSED'}")
    failed = ratio > TARGET_TIME or growth_mb > TARGET_MEMORY_MB
    print("\nFAILED" if failed else "\nAll export targets met.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
