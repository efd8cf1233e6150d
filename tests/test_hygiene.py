"""Issue 6, web hygiene: what a store, a host user or a courier name puts in a field comes
back escaped on every page and exactly as it was in JSON and CSV; a store credential
never comes back at all, in any answer or any log line."""

from __future__ import annotations

import csv
import io
import logging
import re

import requests
import sqlalchemy as sa

from shipgear_exchange_plugin import runtime
from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.devhost.shipments import process_shipment
from shipgear_exchange_plugin.models import AuditEvent, StoreAccount, Writeback

BASE = "/companies/1/ecommerce"
#: An account name, a courier, a service and a tracking number as hostile as they come,
#: with quotes and text beyond ASCII.
NAME = 'Shop <img src=x onerror=alert("n")> «Zürich» ✓'
CARRIER = "<script>alert('c')</script> Überland"
SERVICE = 'Ground "Express" & <b>bold</b>'
TRACKING = "1Z\"'<svg/onload=alert(1)>✓"
RAW = ("<img src=x", "<script>alert", "<svg/onload", "<b>bold")


def _hostile_row(app) -> int:
    host = app.extensions["exchange.host"]
    with app.app_context():
        account = db.session.execute(sa.select(StoreAccount).where(
            StoreAccount.company_id == 1, StoreAccount.platform == "bigcommerce")).scalar_one()
        account.name = NAME
        db.session.commit()
        shipment = process_shipment(
            host, company_id=1, order_source=account.order_source, order_id="770001",
            carrier=CARRIER, service=SERVICE,
            packages=[{"tracking_number": TRACKING,
                       "items": [{"sku": "SKU-1", "order_item_id": "1", "quantity": 1}]}])
        wid = db.session.execute(sa.select(Writeback.id).where(
            Writeback.shipment_id == shipment.id)).scalar_one()
        # No store knows this courier: the write-back fails at once, and its message
        # names the courier, so the hostile text is in the error shown too.
        assert runtime.writeback_service(host).send(wid).status == "failed"
        return wid


def test_hostile_values_are_escaped_on_pages_and_exact_in_json_and_csv(seeded, client_as):
    wid = _hostile_row(seeded)
    client = client_as("support")
    pages = {
        "page": client.get(f"{BASE}/?selected={wid}&q=770001"),
        "grid (htmx)": client.get(f"{BASE}/?q=770001", headers={"HX-Request": "true"}),
        "shipment panel": client.get(f"{BASE}/orders/{wid}", headers={"HX-Request": "true"}),
        "status panel": client.get(f"{BASE}/status", headers={"HX-Request": "true"}),
    }
    for name, answer in pages.items():
        html = answer.get_data(as_text=True)
        assert answer.status_code == 200, name
        assert not [raw for raw in RAW if raw in html], name
        assert "&lt;" in html and "✓" in html, name  # escaped, and Unicode kept as it is
    detail = pages["shipment panel"].get_data(as_text=True)
    assert "Überland" in detail and "&lt;script&gt;alert(" in detail
    assert "Ground &#34;Express&#34; &amp; &lt;b&gt;bold&lt;/b&gt;" in detail

    [item] = client.get(f"{BASE}/orders.json?q=770001").get_json()["items"]
    assert (item["account"], item["carrier"], item["service"], item["tracking_number"]) == (
        NAME, CARRIER, SERVICE, TRACKING)
    assert CARRIER in item["last_error"], item["last_error"]
    status = client.get(f"{BASE}/status.json").get_json()
    assert NAME in [account["name"] for account in status["accounts"]]

    exported = client.get(f"{BASE}/orders/export.csv?q=770001")
    assert exported.status_code == 200
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert len(rows) == 2 and {NAME, CARRIER, SERVICE, TRACKING} <= set(rows[1])


def test_a_store_credential_never_comes_back_in_an_answer_or_a_log_line(make_app, sandbox,
                                                                        caplog):
    """An admin saves a key the store refuses; the connection test, a write-back and every
    page then run with it. The key is in no answer (body or header), no log line at any
    level, and no database column but the encrypted one."""
    app = make_app(WTF_CSRF_ENABLED=False, SHIPGEAR_SANDBOX_URL=sandbox.url)
    with app.app_context():
        seed(app, companies=1, shipments=40, enabled=1)
        account = db.session.execute(sa.select(StoreAccount).where(
            StoreAccount.platform == "bigcommerce")).scalar_one()
    secret = "bc-secret-" + "7f3a9c" * 4
    # The store refuses the key, so the refusal, echoed by stores in their own words,
    # goes through every message path too.
    requests.put(f"{sandbox.url}/_sandbox/bigcommerce/c1/faults", json={"auth_refused": True},
                 timeout=5).raise_for_status()
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    assert client.post("/login", data={"username": "admin", "password": "demo"}
                       ).status_code == 302
    seen: dict[str, str] = {}

    def read(answer) -> str:
        """The whole answer as the user's browser gets it, read at once (some stream)."""
        text = answer.get_data(as_text=True)
        assert answer.status_code < 500, answer.request.path
        seen[f"{answer.request.method} {answer.request.path}"] = text + str(dict(answer.headers))
        return text

    read(client.post(f"{BASE}/accounts/{account.id}/credentials",
                     data={"access_token": secret}, follow_redirects=True))
    tested = read(client.post(f"{BASE}/accounts/{account.id}/test",
                              headers={"HX-Request": "true"}))
    assert "Credentials refused" in tested  # the key went to the store
    host = app.extensions["exchange.host"]
    with app.app_context():
        shipment = process_shipment(
            host, company_id=1, order_source=account.order_source, order_id="880001",
            carrier="UPS", service="Ground",
            packages=[{"tracking_number": "1Z880001",
                       "items": [{"sku": "SKU-1", "order_item_id": "1", "quantity": 1}]}])
        wid = db.session.execute(sa.select(Writeback.id).where(
            Writeback.shipment_id == shipment.id)).scalar_one()
        assert runtime.writeback_service(host).send(wid).status == "failed"
        refused = db.session.get(Writeback, wid).last_error
    assert "refused the credentials" in refused, refused
    for path in ("/", "/accounts", "/status", "/status.json", "/orders.json",
                 "/orders/export.csv", "/orders/export-amazon.txt", "/products",
                 "/products.json", f"/orders/{wid}", "/openapi.json"):
        read(client.get(BASE + path))
    assert not [where for where, text in seen.items() if secret in text]
    assert re.search(r"\bSet\b", seen[f"GET {BASE}/accounts"])
    assert secret not in caplog.text
    with app.app_context():
        stored = db.session.get(StoreAccount, account.id).credentials_encrypted
        audit = [str(e.detail) for e in db.session.execute(sa.select(AuditEvent)).scalars()]
        errors = " ".join(e or "" for e in db.session.execute(
            sa.select(Writeback.last_error)).scalars())
    assert stored and secret not in stored and stored.startswith("gAAAA")  # Fernet
    assert not [d for d in audit if secret in d] and secret not in errors
