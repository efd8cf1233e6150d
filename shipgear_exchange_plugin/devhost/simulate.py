"""The living demo: new shipments processed now and then, as a shipping desk would.

Each one goes through :func:`process_shipment`, so the plugin's hook stores its outbox
rows and the worker writes them back to the sandbox while you watch the page.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

import requests
import sqlalchemy as sa
from flask import Flask, current_app

from shipgear_exchange_plugin.models import StoreAccount, Writeback, WritebackStatus

from .models import Shipment, db
from .seed import CARRIERS, _order_id, _tracking
from .shipments import process_shipment

log = logging.getLogger(__name__)


def order_sources(company_id: int) -> list[str]:
    """The order sources this company's shipments came from, and those its store
    accounts take (an account an admin just connected has no shipment yet)."""
    shipped = db.session.execute(sa.select(Shipment.order_source).where(
        Shipment.company_id == company_id).distinct()).scalars()
    connected = db.session.execute(sa.select(StoreAccount.order_source).where(
        StoreAccount.company_id == company_id)).scalars()
    return sorted(set(shipped) | set(connected))


def sandbox_orders_url(account: StoreAccount) -> str | None:
    """The sandbox control URL that creates orders for this account, when the account
    points at the configured sandbox (``{sandbox}/{platform}/{key}``); None for an
    account an admin pointed anywhere else, which is sent nothing of the demo's."""
    sandbox = (current_app.config.get("SHIPGEAR_SANDBOX_URL") or "").rstrip("/")
    base, platform, key = account.endpoint.rstrip("/").rsplit("/", 2)
    if not sandbox or base != sandbox or platform != account.platform:
        return None
    return f"{base}/_sandbox/{platform}/{key}/orders"


def register_orders(account: StoreAccount, orders: list[dict], client=None) -> None:
    """Tell the sandbox store about orders the host is about to ship: on a real store
    the order exists before anyone ships it. ``client`` is a test client of an
    in-process sandbox app (no server needed yet); otherwise this goes over HTTP."""
    url = sandbox_orders_url(account)
    if not url or not orders:
        return
    if client is not None:
        answer = client.post("/_sandbox/" + url.split("/_sandbox/", 1)[1],
                             json={"orders": orders})
        if answer.status_code != 201:
            raise RuntimeError(f"sandbox refused the demo orders: {answer.get_data(True)}")
        return
    requests.post(url, json={"orders": orders}, timeout=10).raise_for_status()


def preload_open_orders(client=None) -> int:
    """Every order still waiting for a write-back, or failed (support may retry it),
    registered with its sandbox store (the sandbox keeps nothing across restarts; the
    database does). Call before the worker starts, so that no attempt reaches a store
    that does not know its order yet."""
    rows = db.session.execute(
        sa.select(Writeback.account_id, Writeback.order_id, Writeback.items)
        .where(Writeback.status.in_([WritebackStatus.PENDING, WritebackStatus.SUBMITTED,
                                     WritebackStatus.FAILED]))
    ).all()
    per_account: dict[int, dict[str, list]] = {}
    for account_id, order_id, items in rows:
        per_account.setdefault(account_id, {}).setdefault(order_id, []).extend(items or [])
    for account_id, orders in per_account.items():
        account = db.session.get(StoreAccount, account_id)
        register_orders(account, [{"order_id": o, "items": i} for o, i in orders.items()],
                        client)
    db.session.rollback()
    return len(rows)


#: Trouble the demo's stores start with, so retries and failures are there to see.
DEMO_FAULTS = {
    ("woocommerce", "c1"): {"error_rate": 0.3, "error_status": 503},
    ("bigcommerce", "c2"): {"latency_ms": 400},
    # Its writes show in the Orders API only after a few seconds, like a lagging store:
    # the read-back in the send job misses them, so they are visibly Submitted first.
    ("shopify", "c1"): {"verify_lag_s": 6},
}
#: A local courier no store knows: its shipments fail at once with a plain message.
UNKNOWN_CARRIER = ("Speedy Courier", ["Same Day"])


def apply_demo_faults(client) -> None:
    for (platform, key), faults in DEMO_FAULTS.items():
        client.put(f"/_sandbox/{platform}/{key}/faults", json=faults)


def process_random_shipment(host, company_id: int, rng: random.Random | None = None,
                            order_source: str | None = None) -> Shipment | None:
    """Process one made-up shipment for one of the company's order sources."""
    rng = rng or random.Random()  # noqa: S311 - demo data
    sources = [order_source] if order_source else order_sources(company_id)
    if not sources:
        return None
    source = rng.choice(sources)
    account = db.session.execute(sa.select(StoreAccount).where(
        StoreAccount.company_id == company_id, StoreAccount.order_source == source)
    ).scalar_one_or_none()
    # The seed names its sources "<platform>-<company>"; an admin names them freely.
    platform = account.platform if account is not None else source.split("-", 1)[0]
    carrier, services = UNKNOWN_CARRIER if rng.random() < 0.04 else rng.choice(CARRIERS)
    items = [{"sku": f"SKU-{rng.randint(1000, 1019)}",
              "order_item_id": str(rng.randint(10**12, 10**13)),
              "quantity": rng.randint(1, 3)}]
    order_id = _order_id(rng, platform)
    if account is not None:
        register_orders(account, [{"order_id": order_id, "items": items}])
    return process_shipment(
        host, company_id=company_id, order_source=source, order_id=order_id,
        carrier=carrier, service=rng.choice(services),
        packages=[{"tracking_number": _tracking(rng, carrier), "items": items}])


class ShipmentSimulator(threading.Thread):
    """Processes a shipment for a random company with the plugin enabled every ``every``
    seconds, like a shipping desk."""

    def __init__(self, app: Flask, plugin_id: str, every: float = 8.0, seed: int | None = None):
        super().__init__(name="demo-shipments", daemon=True)
        self.app, self.plugin_id, self.every = app, plugin_id, every
        self.rng = random.Random(seed)  # noqa: S311 - demo data
        self.stop_event = threading.Event()

    def run(self) -> None:
        host = self.app.extensions["exchange.host"]
        while not self.stop_event.wait(self.every):
            with self.app.app_context():
                try:
                    companies = host.enabled_company_ids(self.plugin_id)
                    if companies:
                        process_random_shipment(host, self.rng.choice(companies), self.rng)
                except Exception:  # noqa: BLE001 - the demo desk keeps going
                    log.exception("demo shipment not processed")
                finally:
                    db.session.remove()

    def stop(self) -> None:
        self.stop_event.set()


# -- load runs (the throughput benchmark, the chaos test) --------------------------------
def load_order_id(platform: str, n: int) -> str:
    """The ``n``-th order id of a load run, in the platform's format (3-7-7 on Amazon)."""
    if platform == "amazon":
        return f"{100 + n % 900:03d}-{1000000 + n:07d}-{2000000 + n:07d}"
    return str(700000 + n)


def load_accounts(platforms: tuple[str, ...] | list[str]) -> list[tuple[int, str, str]]:
    """(company id, platform, sandbox key) of every store account on these platforms, in
    the order they were made: the accounts :func:`ship_spread` deals shipments to. In an
    app context; the accounts point at the sandbox (``{sandbox}/{platform}/{key}``)."""
    rows = db.session.execute(
        sa.select(StoreAccount.company_id, StoreAccount.platform, StoreAccount.endpoint)
        .where(StoreAccount.platform.in_(platforms)).order_by(StoreAccount.id)).all()
    return [(c, p, endpoint.rstrip("/").rsplit("/", 1)[1]) for c, p, endpoint in rows]


def ship_spread(host, sandbox_url: str, accounts: list[tuple[int, str, str]], count: int,
                first: int = 0, progress: Callable[[int], None] | None = None) -> None:
    """``count`` one-package shipments, numbered from ``first``, dealt to ``accounts``
    ((company id, platform, sandbox key)) in turn, so each account's rows spread over the
    run. Every store learns its orders first, as a real store has them before anyone
    ships; then the host processes the shipments in that order (in the caller's app
    context). ``progress`` is told how many are done every 2,000."""
    shipments, per_store = [], {}
    for n in range(first, first + count):
        company, platform, key = accounts[n % len(accounts)]
        order = {"order_id": load_order_id(platform, n),
                 "items": [{"sku": f"SKU-{1000 + n % 20}", "order_item_id": str(10**12 + n),
                            "quantity": 1}]}
        per_store.setdefault((platform, key), []).append(order)
        shipments.append((company, platform, order, f"1Z{n:016d}"))
    for (platform, key), orders in per_store.items():
        requests.post(f"{sandbox_url}/_sandbox/{platform}/{key}/orders",
                      json={"orders": orders}, timeout=30).raise_for_status()
    for done, (company, platform, order, tracking) in enumerate(shipments, 1):
        process_shipment(host, company_id=company, order_source=f"{platform}-{company}",
                         order_id=order["order_id"], carrier="UPS", service="Ground",
                         packages=[{"tracking_number": tracking, "items": order["items"]}])
        if progress is not None and done % 2000 == 0:
            progress(done)
