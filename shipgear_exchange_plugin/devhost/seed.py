"""Demo and benchmark data: companies, users, store accounts and shipments.

Deterministic for a given ``seed``. Shipments are inserted in batches of multi-row
INSERTs (host shipments, then the plugin's write-backs and attempts).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

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
         seed_value: int = 7, batch: int = 5000, now: dt.datetime | None = None) -> SeedResult:
    """Create companies (the plugin enabled on the first ``enabled``, default all but one),
    store accounts on every platform for them, and ``shipments`` shipments with write-backs
    in every status. Call inside an app context; commits."""
    rng = random.Random(seed_value)  # noqa: S311 - demo data, not secrets
    now = now or dt.datetime.now(dt.UTC)
    sandbox_url = app.config.get("SHIPGEAR_SANDBOX_URL") or "http://127.0.0.1:5000/sandbox"
    company_rows = ensure_users_and_companies(companies)
    if enabled is None:
        enabled = max(1, len(company_rows) - 1)
    accounts: list[StoreAccount] = []
    for company in company_rows[:enabled]:
        enable_plugin(company)
        accounts.extend(ensure_accounts(app, company, sandbox_url))
    db.session.commit()
    if accounts and shipments:
        _insert_shipments(rng, accounts, shipments, batch, now)
    return SeedResult(len(company_rows), len(accounts), shipments if accounts else 0)


def _insert_shipments(rng: random.Random, accounts: list[StoreAccount], count: int,
                      batch: int, now: dt.datetime) -> None:
    """Multi-row INSERTs with RETURNING: ids come from the database's own sequences, so
    rows the host adds later never collide with seeded ones."""
    done = 0
    while done < count:
        size = min(batch, count - done)
        shipments = [_plan_shipment(rng, rng.choice(accounts), now) for _ in range(size)]
        shipment_ids = db.session.execute(
            sa.insert(Shipment).returning(Shipment.id, sort_by_parameter_order=True),
            [row for row, _ in shipments]).scalars().all()
        writebacks, histories = [], []
        for shipment_id, (row, account) in zip(shipment_ids, shipments, strict=True):
            for index, pkg in enumerate(row["packages"]):
                wb, attempts = _plan_writeback(rng, account, row, shipment_id, index, pkg)
                writebacks.append(wb)
                histories.append(attempts)
        writeback_ids = db.session.execute(
            sa.insert(Writeback).returning(Writeback.id, sort_by_parameter_order=True),
            writebacks).scalars().all()
        attempt_rows = [
            {**attempt, "company_id": wb["company_id"], "writeback_id": wb_id}
            for wb_id, wb, attempts in zip(writeback_ids, writebacks, histories, strict=True)
            for attempt in attempts
        ]
        if attempt_rows:
            db.session.execute(sa.insert(Attempt), attempt_rows)
        db.session.commit()
        done += size


def _plan_shipment(rng: random.Random, account: StoreAccount, now: dt.datetime):
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


def _plan_writeback(rng: random.Random, account: StoreAccount, shipment: dict,
                    shipment_id: int, index: int, pkg: dict):
    statuses = [s for s, _ in STATUS_WEIGHTS]
    status = rng.choices(statuses, [w for _, w in STATUS_WEIGHTS])[0]
    ship_date = shipment["ship_date"]
    errors, attempts = _history(rng, status, ship_date)
    last_error = None
    if errors:
        last_error = next(a["message"] for a in reversed(attempts) if a["message"])
    return {
        "company_id": account.company_id, "account_id": account.id,
        "shipment_id": shipment_id, "order_id": shipment["order_id"],
        "package_key": package_key(shipment_id, index), "ship_date": ship_date,
        "carrier": shipment["carrier"], "service": shipment["service"],
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
