"""Demo and benchmark data: companies, users, store accounts and shipments.

Deterministic for a given ``seed``. Shipments go in batches (host shipments, then the
plugin's write-backs and attempts): on PostgreSQL through ``COPY FROM STDIN`` so that
``shipgear-exchange seed --companies 50 --shipments 1000000`` takes minutes, elsewhere
(SQLite) as multi-row INSERTs.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask

from shipgear_exchange_plugin import PLUGIN_ID
from shipgear_exchange_plugin.connectors import connector_class
from shipgear_exchange_plugin.models import (
    MAX_ATTEMPTS,
    Attempt,
    Platform,
    StoreAccount,
    Writeback,
    WritebackStatus,
    order_sort_key,
)
from shipgear_exchange_plugin.outbox import package_key
from shipgear_exchange_plugin.plugin import state

from .models import Company, PluginCompany, Role, Shipment, User, db

DEMO_PASSWORD = "demo"  # noqa: S105 - the documented demo login
DEMO_COMPANIES = [
    ("Acme Outfitters", "America/New_York"),
    ("Birch & Bramble Home", "Europe/London"),
    ("Cobalt Supply Co.", "America/Los_Angeles"),
]
ACCOUNT_NAMES = {
    Platform.AMAZON: "Amazon US",
    Platform.SHOPIFY: "Shopify store",
    Platform.WOOCOMMERCE: "WooCommerce shop",
    Platform.BIGCOMMERCE: "BigCommerce store",
}
CARRIERS = [
    ("UPS", ["Ground", "2nd Day Air", "Next Day Air"]),
    ("USPS", ["Ground Advantage", "Priority Mail"]),
    ("FedEx", ["Ground", "2Day", "Standard Overnight"]),
    ("DHL", ["Express Worldwide"]),
]
STATUS_WEIGHTS = [
    (WritebackStatus.SUCCESS, 70),
    (WritebackStatus.PENDING, 8),
    (WritebackStatus.SUBMITTED, 7),
    (WritebackStatus.FAILED, 10),
    (WritebackStatus.MANUAL, 5),
]
STATUSES = [status for status, _ in STATUS_WEIGHTS]
STATUS_CUM_WEIGHTS = list(itertools.accumulate(weight for _, weight in STATUS_WEIGHTS))
ERRORS = [
    (503, "HTTP 503: Service Unavailable"),
    (429, "HTTP 429: throttled by the store"),
    (None, "Timed out after 10 s waiting for the store"),
    (400, "HTTP 400: InvalidInput: carrierCode is not valid"),
]


@dataclass
class SeedResult:
    companies: int
    accounts: int
    shipments: int


def _tracking(rng: random.Random, carrier: str) -> str:
    if carrier == "UPS":
        return "1Z" + "".join(rng.choices("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", k=16))
    if carrier == "USPS":
        return "9400" + "".join(rng.choices("0123456789", k=18))
    return "".join(rng.choices("0123456789", k=12))


def ensure_users_and_companies(company_count: int = 3) -> list[Company]:
    """The demo logins and ``company_count`` companies (idempotent)."""
    companies = db.session.execute(sa.select(Company).order_by(Company.id)).scalars().all()
    for index in range(len(companies), company_count):
        if index < len(DEMO_COMPANIES):
            name, tz = DEMO_COMPANIES[index]
        else:
            name, tz = f"Company {index + 1:03d}", "UTC"
        company = Company(name=name, timezone=tz)
        db.session.add(company)
        companies.append(company)
    db.session.flush()
    for username, role in (("admin", Role.ADMIN), ("support", Role.SUPPORT),
                           ("viewer", Role.VIEWER)):
        user = db.session.execute(
            sa.select(User).where(User.username == username)).scalar_one_or_none()
        if user is None:
            user = User(username=username, role=role)
            user.set_password(DEMO_PASSWORD)
            db.session.add(user)
        wanted = companies if role == Role.ADMIN else companies[:1]
        for company in wanted:
            if company not in user.companies:
                user.companies.append(company)
    return companies


def ensure_accounts(app: Flask, company: Company, sandbox_url: str) -> list[StoreAccount]:
    existing = db.session.execute(
        sa.select(StoreAccount).where(StoreAccount.company_id == company.id)
    ).scalars().all()
    if existing:
        return list(existing)
    box = state(app).credentials
    accounts = []
    for platform, name in ACCOUNT_NAMES.items():
        connector = connector_class(platform.value)
        key = f"c{company.id}"
        endpoint = f"{sandbox_url.rstrip('/')}/{platform.value}/{key}"
        accounts.append(StoreAccount(
            company_id=company.id,
            platform=platform.value,
            name=name,
            order_source=f"{platform.value}-{company.id}",
            endpoint=endpoint,
            options=connector.default_options(endpoint),
            credentials_encrypted=box.encrypt(connector.demo_credentials(key)),
        ))
    db.session.add_all(accounts)
    db.session.flush()
    return accounts


def enable_plugin(company: Company) -> None:
    if db.session.get(PluginCompany, (PLUGIN_ID, company.id)) is None:
        db.session.add(PluginCompany(plugin_id=PLUGIN_ID, company_id=company.id))


def seed(app: Flask, companies: int = 3, shipments: int = 3000, enabled: int | None = None,
         seed_value: int = 7, batch: int | None = None, now: dt.datetime | None = None,
         shares: Sequence[float] | None = None) -> SeedResult:
    """Create companies (the plugin enabled on the first ``enabled``, default all but one),
    store accounts on every platform for them, and ``shipments`` shipments with write-backs
    in every status. Call inside an app context; commits.

    ``shares``: relative sizes of the enabled companies (the first gets ``shares[0]``...;
    missing ones count 1). Default: every account equally likely. Benchmarks use it to
    give one company the deep lists a uniform spread would not have. The same
    ``seed_value``, ``now`` and arguments give the same rows on SQLite and PostgreSQL,
    whatever the batch size."""
    rng = random.Random(seed_value)  # noqa: S311 - demo data, not secrets
    now = now or dt.datetime.now(dt.UTC)
    sandbox_url = app.config.get("SHIPGEAR_SANDBOX_URL") or "http://127.0.0.1:5000/sandbox"
    company_rows = ensure_users_and_companies(companies)
    if enabled is None:
        enabled = max(1, len(company_rows) - 1)
    per_company: list[list[AccountRef]] = []
    for company in company_rows[:enabled]:
        enable_plugin(company)
        per_company.append([AccountRef(a.id, a.company_id, a.platform, a.order_source)
                            for a in ensure_accounts(app, company, sandbox_url)])
    db.session.commit()
    accounts = [account for group in per_company for account in group]
    if accounts and shipments:
        picker = _account_picker(rng, per_company, shares)
        copy = db.session.get_bind().dialect.name == "postgresql"
        size = batch or (COPY_BATCH if copy else INSERT_BATCH)
        writer = _copy_batch if copy else _insert_batch
        done = 0
        while done < shipments:
            planned = [_plan(rng, picker(), now) for _ in range(min(size, shipments - done))]
            writer(planned)
            db.session.commit()
            done += len(planned)
        if copy and shipments >= ANALYZE_FROM:
            _analyze()
    return SeedResult(len(company_rows), len(accounts), shipments if accounts else 0)


def spread_backlog(over: float, now: dt.datetime | None = None) -> int:
    """The seeded rows that wait for a step (pending, submitted) come due one after
    another over the next ``over`` seconds instead of all at once. Seeded as due, the
    demo's few hundred would all be queued at its first start, and the shipments it
    processes from its first minute would wait behind them. Amazon's pending rows stay
    due: an account with enough of them goes out as one feed (B5), a single job, which
    the demo shows that way. Returns how many moved."""
    now = now or dt.datetime.now(dt.UTC)
    in_a_feed = sa.and_(StoreAccount.platform == Platform.AMAZON,
                        Writeback.status == WritebackStatus.PENDING)
    ids = db.session.execute(
        sa.select(Writeback.id).join(StoreAccount, StoreAccount.id == Writeback.account_id)
        .where(Writeback.status.in_([WritebackStatus.PENDING, WritebackStatus.SUBMITTED]),
               Writeback.next_attempt_at <= now, sa.not_(in_a_feed))
        .order_by(Writeback.next_attempt_at, Writeback.id)).scalars().all()
    step = over / max(1, len(ids))
    db.session.execute(sa.update(Writeback), [
        {"id": writeback_id, "next_attempt_at": now + dt.timedelta(seconds=n * step)}
        for n, writeback_id in enumerate(ids)])
    db.session.commit()
    return len(ids)


#: Shipments per transaction: COPY streams, so PostgreSQL takes big batches; SQLite's
#: multi-row INSERTs are bounded by its bind-parameter limit per statement anyway.
COPY_BATCH = 20_000
INSERT_BATCH = 5000
#: Large seeds end with ANALYZE, so the planner knows the new rows before the benchmarks
#: run (autovacuum would get there, but minutes later).
ANALYZE_FROM = 50_000


@dataclass(frozen=True)
class AccountRef:
    """What planning a shipment needs of its store account: plain values, so the ORM
    does not reload every account after each batch's commit."""

    id: int
    company_id: int
    platform: str
    order_source: str


def _account_picker(rng: random.Random, per_company: list[list[AccountRef]],
                    shares: Sequence[float] | None) -> Callable[[], AccountRef]:
    accounts = [account for group in per_company for account in group]
    if shares is None:
        return lambda: rng.choice(accounts)
    groups = [group for group in per_company if group]
    weights = [float(shares[i]) if i < len(shares) else 1.0 for i in range(len(groups))]
    cumulative = list(itertools.accumulate(weights))
    indexes = range(len(groups))

    def pick() -> AccountRef:
        group = groups[rng.choices(indexes, cum_weights=cumulative)[0]]
        return rng.choice(group)

    return pick


@dataclass
class _Planned:
    """One shipment and its packages' write-backs and attempts, before ids exist."""

    account: AccountRef
    shipment: dict[str, Any]
    writebacks: list[tuple[dict[str, Any], list[dict[str, Any]]]]


def _plan(rng: random.Random, account: AccountRef, now: dt.datetime) -> _Planned:
    """Everything random about one shipment, drawn in one fixed order (so the data does
    not depend on the batch size or the backend)."""
    row, _ = _plan_shipment(rng, account, now)
    writebacks = [_plan_writeback(rng, account, row, pkg) for pkg in row["packages"]]
    return _Planned(account, row, writebacks)


def _with_ids(planned: list[_Planned], shipment_ids: Sequence[int]):
    """(write-back row, its attempts) with the shipment id and package key filled in."""
    for shipment_id, plan in zip(shipment_ids, planned, strict=True):
        for index, (wb, attempts) in enumerate(plan.writebacks):
            yield {**wb, "shipment_id": shipment_id,
                   "package_key": package_key(shipment_id, index)}, attempts


def _insert_batch(planned: list[_Planned]) -> None:
    """SQLite (and any other database): multi-row INSERTs with RETURNING; ids come from
    the database, so rows the host adds later never collide with seeded ones."""
    shipment_ids = db.session.execute(
        sa.insert(Shipment).returning(Shipment.id, sort_by_parameter_order=True),
        [plan.shipment for plan in planned]).scalars().all()
    rows = list(_with_ids(planned, shipment_ids))
    writeback_ids = db.session.execute(
        sa.insert(Writeback).returning(Writeback.id, sort_by_parameter_order=True),
        [wb for wb, _ in rows]).scalars().all()
    attempt_rows = [
        {**attempt, "company_id": wb["company_id"], "writeback_id": wb_id}
        for wb_id, (wb, attempts) in zip(writeback_ids, rows, strict=True)
        for attempt in attempts
    ]
    if attempt_rows:
        db.session.execute(sa.insert(Attempt), attempt_rows)


SHIPMENT_COLUMNS = ("id", "company_id", "order_source", "order_id", "ship_date", "carrier",
                    "service", "packages", "created_at")
WRITEBACK_COLUMNS = (
    "id", "company_id", "account_id", "shipment_id", "order_id", "order_sort", "package_key",
    "ship_date",
    "carrier", "service", "tracking_number", "shipped_quantity", "items", "status",
    "error_count", "attempt_count", "last_attempt_at", "last_error", "next_attempt_at",
    "submitted_at", "created_at", "updated_at")
ATTEMPT_COLUMNS = ("company_id", "writeback_id", "number", "started_at", "outcome",
                   "http_status", "request_id", "message", "latency_ms")


def _copy_batch(planned: list[_Planned]) -> None:
    """PostgreSQL: ``COPY ... FROM STDIN`` (psycopg 3), an order of magnitude faster than
    INSERTs for a million rows. Ids are reserved from the tables' own sequences first
    (``nextval``), so they never collide with rows the host adds later, and the
    write-backs can point at their shipments and the attempts at their write-backs."""
    raw = db.session.connection().connection.driver_connection
    shipment_ids = _reserve_ids(raw, Shipment.__table__.name, len(planned))
    rows = list(_with_ids(planned, shipment_ids))
    writeback_ids = _reserve_ids(raw, Writeback.__table__.name, len(rows))
    with raw.cursor() as cursor:
        with cursor.copy(_copy_sql(Shipment.__table__.name, SHIPMENT_COLUMNS)) as copy:
            for shipment_id, plan in zip(shipment_ids, planned, strict=True):
                row = {**plan.shipment, "id": shipment_id,
                       "packages": json.dumps(plan.shipment["packages"])}
                copy.write_row([row[c] for c in SHIPMENT_COLUMNS])
        with cursor.copy(_copy_sql(Writeback.__table__.name, WRITEBACK_COLUMNS)) as copy:
            for wb_id, (wb, _) in zip(writeback_ids, rows, strict=True):
                row = {**wb, "id": wb_id, "items": json.dumps(wb["items"]),
                       "status": str(wb["status"])}
                copy.write_row([row[c] for c in WRITEBACK_COLUMNS])
        with cursor.copy(_copy_sql(Attempt.__table__.name, ATTEMPT_COLUMNS)) as copy:
            for wb_id, (wb, attempts) in zip(writeback_ids, rows, strict=True):
                for attempt in attempts:
                    row = {**attempt, "company_id": wb["company_id"], "writeback_id": wb_id}
                    copy.write_row([row[c] for c in ATTEMPT_COLUMNS])


def _copy_sql(table: str, columns: Sequence[str]):
    from psycopg import sql

    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))


def _reserve_ids(raw, table: str, count: int) -> list[int]:
    """``count`` new ids from ``table``'s id sequence, ascending."""
    if not count:
        return []
    with raw.cursor() as cursor:
        cursor.execute("select nextval(pg_get_serial_sequence(%s, 'id')) "
                       "from generate_series(1, %s)", (table, count))
        return sorted(value for (value,) in cursor.fetchall())


def _analyze() -> None:
    db.session.execute(sa.text("analyze host_shipment, sgx_writeback, sgx_attempt"))
    db.session.commit()


def _plan_shipment(rng: random.Random, account: AccountRef | StoreAccount,
                   now: dt.datetime):
    carrier, services = rng.choice(CARRIERS)
    ship_date = now - dt.timedelta(seconds=rng.randint(60, 30 * 86400))
    packages = [
        {"tracking_number": _tracking(rng, carrier),
         "items": [{"sku": f"SKU-{rng.randint(1000, 9999)}",
                    "order_item_id": str(rng.randint(10**9, 10**10)),
                    "quantity": rng.randint(1, 4)}]}
        for _ in range(2 if rng.random() < 0.05 else 1)
    ]
    row = {"company_id": account.company_id, "order_source": account.order_source,
           "order_id": _order_id(rng, account.platform), "ship_date": ship_date,
           "carrier": carrier, "service": rng.choice(services), "packages": packages,
           "created_at": ship_date}
    return row, account


def _plan_writeback(rng: random.Random, account: AccountRef, shipment: dict, pkg: dict):
    """A package's write-back row (without shipment id and package key) and attempts."""
    status = rng.choices(STATUSES, cum_weights=STATUS_CUM_WEIGHTS)[0]
    ship_date = shipment["ship_date"]
    errors, attempts = _history(rng, status, ship_date)
    last_error = None
    if errors:
        last_error = next(a["message"] for a in reversed(attempts) if a["message"])
    return {
        "company_id": account.company_id, "account_id": account.id,
        "order_id": shipment["order_id"], "order_sort": order_sort_key(shipment["order_id"]),
        "ship_date": ship_date, "carrier": shipment["carrier"], "service": shipment["service"],
        "tracking_number": pkg["tracking_number"],
        "shipped_quantity": sum(i["quantity"] for i in pkg["items"]),
        "items": pkg["items"], "status": status, "error_count": errors,
        "attempt_count": len(attempts),
        "last_attempt_at": attempts[-1]["started_at"] if attempts else None,
        "last_error": last_error,
        # Pending rows are due for their next attempt, submitted ones for a check.
        "next_attempt_at": ship_date if status in (WritebackStatus.PENDING,
                                                   WritebackStatus.SUBMITTED) else None,
        "submitted_at": attempts[-1]["started_at"] if status == WritebackStatus.SUBMITTED
        else None,
        "created_at": ship_date, "updated_at": ship_date,
    }, attempts


def _order_id(rng: random.Random, platform: str) -> str:
    if platform == Platform.AMAZON:
        low, high = 10**6, 10**7 - 1
        return f"{rng.randint(100, 999)}-{rng.randint(low, high)}-{rng.randint(low, high)}"
    return str(rng.randint(10**5, 10**7))


def _history(rng: random.Random, status: str, ship_date: dt.datetime):
    """Attempts consistent with ``status``: failures first, then the final outcome."""
    if status == WritebackStatus.PENDING:
        failures, final = rng.choice([0, 0, 1, 2]), None
    elif status == WritebackStatus.FAILED or status == WritebackStatus.MANUAL:
        failures, final = MAX_ATTEMPTS, None
    else:
        failures, final = rng.choice([0, 0, 0, 1, 2]), "accepted"
    attempts = []
    when = ship_date
    for number in range(1, failures + 1):
        when += dt.timedelta(minutes=2 ** number)
        http, message = rng.choice(ERRORS[:3])
        attempts.append({"number": number, "started_at": when, "outcome": "retryable_error",
                         "http_status": http, "request_id": f"req-{rng.getrandbits(48):012x}",
                         "message": message, "latency_ms": rng.randint(80, 10000)})
    if final:
        when += dt.timedelta(minutes=1)
        attempts.append({"number": failures + 1, "started_at": when, "outcome": final,
                         "http_status": 200, "request_id": f"req-{rng.getrandbits(48):012x}",
                         "message": None, "latency_ms": rng.randint(80, 900)})
    return failures, attempts
