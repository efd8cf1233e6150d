"""Connection Status end to end: sandbox faults reach the panel through real health
probes over HTTP; a status store that cannot be read says so while the page works;
colour changes are kept as history, drawn, logged and posted to the company's webhook."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import requests
import sqlalchemy as sa
from flask import Flask, request

from shipgear_exchange_plugin import history
from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.devhost.shipments import process_shipment
from shipgear_exchange_plugin.models import CompanySettings, StatusSample, StoreAccount, Writeback
from shipgear_exchange_plugin.sandbox import SandboxServer
from shipgear_exchange_plugin.status import ApiStatus

from .test_accounts_page import _signed_in


@pytest.fixture
def status_app(store_host):
    return store_host(shipments=20)


def faults(sandbox, platform, **values):
    answer = requests.put(f"{sandbox.url}/_sandbox/{platform}/c1/faults", json=values, timeout=5)
    assert answer.status_code == 200, answer.text


def probe_all(app, rounds: int = 3) -> None:
    """What the periodic health checks do, run now: each account's three probes."""
    from shipgear_exchange_plugin.jobs.status import probe

    with app.app_context():
        ids = list(db.session.execute(sa.select(StoreAccount.id)).scalars())
        for _ in range(rounds):
            for account_id in ids:
                probe(account_id)


def colours(client) -> dict[str, dict[str, str]]:
    body = client.get("/companies/1/ecommerce/status.json").get_json()
    assert body["error"] is None
    return {a["platform"]: {k: v["status"] for k, v in a["apis"].items()}
            for a in body["accounts"]}


def test_store_faults_turn_the_right_apis_yellow_and_red(status_app, sandbox):
    faults(sandbox, "shopify", auth_refused=True)
    faults(sandbox, "bigcommerce", outage="down")
    faults(sandbox, "woocommerce", throttle=True)
    client = _signed_in(status_app, "viewer")
    before = colours(client)
    assert set(before["amazon"].values()) == {"none"}
    probe_all(status_app)
    after = colours(client)
    assert after["amazon"] == {"products": "green", "writeback": "green", "orders": "green"}
    assert set(after["shopify"].values()) == {"red"}
    assert set(after["bigcommerce"].values()) == {"red"}
    assert set(after["woocommerce"].values()) == {"yellow"}
    body = client.get("/companies/1/ecommerce/status.json").get_json()
    shopify = next(a for a in body["accounts"] if a["platform"] == "shopify")
    assert shopify["apis"]["orders"]["info"] == "The last 3 calls failed; last: HTTP 401."
    assert shopify["apis"]["orders"]["last_run_at"]
    woo = next(a for a in body["accounts"] if a["platform"] == "woocommerce")
    assert "3 of 3 throttled (HTTP 429) in 15 min" in woo["apis"]["products"]["info"]
    html = client.get("/companies/1/ecommerce/status").get_data(as_text=True)
    assert 'data-status="red"' in html and "badge-red" in html and ">Red<" in html


def test_an_api_goes_back_to_green_once_the_store_recovers(make_app, sandbox):
    # A 20% yellow threshold (configuration) keeps the number of healthy calls needed small.
    status_app = make_app(WTF_CSRF_ENABLED=False, SHIPGEAR_SANDBOX_URL=sandbox.url,
                          SHIPGEAR_STATUS_YELLOW_RATE=0.2)
    with status_app.app_context():
        seed(status_app, companies=1, shipments=0, enabled=1)
    faults(sandbox, "woocommerce", error_rate=1.0, error_status=502)
    with status_app.app_context():
        woo = db.session.execute(sa.select(StoreAccount.id).where(
            StoreAccount.platform == "woocommerce")).scalar_one()
    from shipgear_exchange_plugin.jobs.status import probe

    with status_app.app_context():
        for _ in range(3):
            probe(woo)
    client = _signed_in(status_app, "viewer")
    assert set(colours(client)["woocommerce"].values()) == {"red"}
    requests.delete(f"{sandbox.url}/_sandbox/woocommerce/c1/faults", timeout=5)
    with status_app.app_context():
        for _ in range(3):
            probe(woo)
        assert set(colours(client)["woocommerce"].values()) == {"red"}  # 3 of 6 failed
        for _ in range(10):  # 3 of 16 calls failed: under 20%
            probe(woo)
    assert set(colours(client)["woocommerce"].values()) == {"green"}


def test_an_unreadable_status_store_says_so_and_the_page_still_works(make_app, status_app):
    down = make_app(WTF_CSRF_ENABLED=False, REDIS_URL="redis://127.0.0.1:9/0")
    client = _signed_in(down, "viewer")
    page = client.get("/companies/1/ecommerce/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Error reading API status" in html
    assert 'class="sgx-row"' in html  # the grid still comes from the database
    body = client.get("/companies/1/ecommerce/status.json").get_json()
    assert body["error"] == "Error reading API status"
    assert {api["status"] for a in body["accounts"] for api in a["apis"].values()} == {"none"}
    # a shipment processed meanwhile is stored; the sweeper enqueues it later
    with down.app_context():
        shipment = process_shipment(
            down.extensions["exchange.host"], company_id=1, order_source="amazon-1",
            order_id="111-2223334-4445556", carrier="UPS", service="Ground",
            packages=[{"tracking_number": "1ZREDISDOWN", "items": [
                {"order_item_id": "1", "sku": "SKU-1000", "quantity": 1}]}])
        row = db.session.execute(sa.select(Writeback).where(
            Writeback.shipment_id == shipment.id)).scalar_one()
        assert row.status == "pending"


def test_changes_are_kept_drawn_and_logged(status_app, caplog):
    with status_app.app_context():
        accounts = db.session.execute(sa.select(StoreAccount)).scalars().all()
        amazon = next(a for a in accounts if a.platform == "amazon")
        t0 = history.minute_of(dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=30)
        green = {(amazon.id, api): ApiStatus("green", "ok") for api in
                 ("products", "writeback", "orders")}
        assert history.record(db.session, [amazon], green, t0) == []
        red = dict(green)
        red[(amazon.id, "orders")] = ApiStatus("red", "3 of 3 calls failed in 15 min")
        with caplog.at_level(logging.INFO, logger="shipgear_exchange_plugin.alerts"):
            changes = history.record(db.session, [amazon], red, t0 + dt.timedelta(minutes=1))
            assert history.record(db.session, [amazon], red,
                                  t0 + dt.timedelta(minutes=1, seconds=30)) == []
        assert [(c.api, c.previous, c.current) for c in changes] == [("orders", "green", "red")]
        assert '"status": "red"' in caplog.text and '"previous": "green"' in caplog.text
        assert db.session.query(StatusSample).count() == 6
        old = t0 - dt.timedelta(hours=26)
        db.session.add(StatusSample(account_id=amazon.id, api="orders", minute=old,
                                    company_id=1, status="green"))
        db.session.commit()
        history.record(db.session, [amazon], red, t0 + dt.timedelta(minutes=2))
        assert db.session.query(StatusSample).filter(StatusSample.minute == old).count() == 0
    html = _signed_in(status_app, "viewer").get("/companies/1/ecommerce/").get_data(True)
    assert 'class="sgx-history"' in html and 'class="h-red"' in html


def test_an_alert_reaches_the_company_webhook(status_app):
    received = []
    receiver = Flask("receiver")

    @receiver.post("/hook")
    def hook():
        received.append(request.get_json())
        return "", 204 if len(received) > 1 else 503

    server = SandboxServer(receiver).start()
    try:
        from shipgear_exchange_plugin.jobs.status import deliver_alert

        payload = {"event": "api_status_changed", "status": "red"}
        with pytest.raises(requests.HTTPError):
            deliver_alert(f"{server.url}/hook", payload)  # RQ retries this one
        assert deliver_alert(f"{server.url}/hook", payload) == 204
        assert received == [payload, payload]
        with status_app.app_context():
            db.session.add(CompanySettings(company_id=1, values={
                "alert_webhook_url": f"{server.url}/hook"}))
            db.session.commit()
            from shipgear_exchange_plugin.jobs.status import QUEUE, snapshot

            host = status_app.extensions["exchange.host"]
            accounts = db.session.execute(sa.select(StoreAccount)).scalars().all()
            past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
            history.record(db.session, accounts, {
                (a.id, api): ApiStatus("red", "down") for a in accounts
                for api in ("products", "writeback", "orders")}, past)
            assert snapshot() == 12  # every API went from red to none (no calls yet)
            assert len(host.queue(QUEUE).job_ids) == 12
    finally:
        server.stop()
