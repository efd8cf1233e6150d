"""Benchmark databases on the local PostgreSQL: created and seeded once, then reused as
long as their recorded shape matches (a million rows take minutes to seed).

Shared by ``benchmarks/grid.py`` and ``benchmarks/export.py``. The data is the demo
seed's (``devhost.seed``: every status, attempt histories, 5% multi-package orders)
with a fixed clock, so date filters mean the same rows on every run, and with ``shares``
so that one company is big enough for the deep pages the targets ask about.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import asdict, dataclass, field

import sqlalchemy as sa
from flask import Flask

from shipgear_exchange_plugin.devhost import create_app, init_db, normalise_database_url
from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.devhost.seed import seed

PG_SERVER = os.environ.get("SHIPGEAR_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
#: The seed's clock: ship dates run over the 30 days before it.
BENCH_NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
#: Fixed, so a reused database's credentials stay readable (benchmark data only).
ENCRYPTION_KEY = "p3d0q1VHnK4Xq8n8mJ3cZk2sT1oR9vW5yL7uA6bE0fI="
SECRET_KEY = "benchmark-secret"
PASSWORD = "demo"


@dataclass(frozen=True)
class Shape:
    """What a benchmark database holds; recorded in it so a changed shape reseeds."""

    companies: int
    shipments: int
    enabled: int
    shares: tuple[float, ...] = field(default=())
    seed_value: int = 7


def database_url(name: str) -> str:
    return f"{PG_SERVER}/{name}"


def create_database(name: str) -> None:
    engine = sa.create_engine(normalise_database_url(database_url("postgres")),
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.execute(sa.text("select 1 from pg_database where datname = :n"),
                              {"n": name}).scalar()
        if not exists:
            conn.execute(sa.text(f'create database "{name}"'))
    engine.dispose()


def bench_app(name: str) -> Flask:
    """The reference host with the plugin on database ``name`` (embedded Redis: the grid
    and the export never touch it)."""
    return create_app({
        "DATABASE_URL": database_url(name),
        "REDIS_URL": f"memory://bench-{name}",
        "SECRET_KEY": SECRET_KEY,
        "WTF_CSRF_ENABLED": False,  # the benchmark signs in with a bare POST
        "SHIPGEAR_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "SHIPGEAR_SANDBOX_URL": "http://127.0.0.1:9/sandbox",
        "INSTANCE_PATH": "/tmp/shipgear-bench-instance",
    })


def ensure_seeded(name: str, shape: Shape, log=print) -> Flask:
    """An app on database ``name`` holding ``shape``: reused when it already does,
    otherwise emptied and seeded (the time it took is printed)."""
    create_database(name)
    app = bench_app(name)
    init_db(app)
    wanted = json.dumps(asdict(shape), sort_keys=True)
    with app.app_context():
        db.session.execute(sa.text("create table if not exists bench_shape (shape text)"))
        db.session.commit()
        recorded = db.session.execute(sa.text("select shape from bench_shape")).scalar()
        if recorded == wanted:
            log(f"{name}: reusing the seeded database ({shape.shipments:,} shipments)")
            return app
        log(f"{name}: seeding {shape.shipments:,} shipments over {shape.companies} "
            "companies...")
        tables = sa.inspect(db.engine).get_table_names()
        ours = [t for t in tables if t.startswith(("sgx_", "host_"))
                and t not in ("sgx_alembic_version", "host_installed_plugin")]
        db.session.execute(sa.text("truncate " + ", ".join(f'"{t}"' for t in ours)
                                   + " restart identity cascade"))
        db.session.execute(sa.text("delete from bench_shape"))
        db.session.commit()
    init_db(app)  # the plugin's install rows again, after the truncate
    started = time.perf_counter()
    with app.app_context():
        seed(app, companies=shape.companies, shipments=shape.shipments,
             enabled=shape.enabled, seed_value=shape.seed_value, now=BENCH_NOW,
             shares=shape.shares or None)
        db.session.execute(sa.text("insert into bench_shape values (:s)"), {"s": wanted})
        db.session.commit()
    log(f"{name}: seeded in {time.perf_counter() - started:.0f} s")
    return app


def login(app: Flask, username: str = "admin"):
    """A test client of ``app`` signed in as ``username`` (the demo password)."""
    client = app.test_client()
    answer = client.post("/login", data={"username": username, "password": PASSWORD})
    if answer.status_code != 302:
        raise SystemExit(f"login as {username} failed: {answer.status_code}")
    return client
