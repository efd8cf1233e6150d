"""The admin's store accounts page: credentials are write-only ("Set" / "Not set"),
saved encrypted and audited without their values; the connection test probes each API
of the store over real HTTP and says what answered."""

from __future__ import annotations

import requests
import sqlalchemy as sa

from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.models import AuditEvent, StoreAccount

from .conftest import csrf_token_from


def _accounts(app, company_id: int = 1) -> list[StoreAccount]:
    with app.app_context():
        rows = db.session.execute(sa.select(StoreAccount).where(
            StoreAccount.company_id == company_id).order_by(StoreAccount.id)).scalars().all()
        db.session.expunge_all()
        return rows


def _signed_in(app, username: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = csrf_token_from(page) if 'name="csrf_token"' in page else None
    data = {"username": username, "password": "demo"}
    if token:
        data["csrf_token"] = token
    assert client.post("/login", data=data).status_code == 302
    return client


def test_only_admins_manage_accounts(seeded, client_as):
    assert client_as("viewer").get("/companies/1/ecommerce/accounts").status_code == 403
    assert client_as("support").get("/companies/1/ecommerce/accounts").status_code == 403
    assert client_as("admin").get("/companies/3/ecommerce/accounts").status_code == 404
    html = client_as("admin").get("/companies/1/ecommerce/accounts").get_data(as_text=True)
    assert html.count("Test connection") == 4 and "Set" in html
    page = client_as("admin").get("/companies/1/ecommerce/").get_data(as_text=True)
    assert "Store accounts" in page
    assert "Store accounts" not in client_as("viewer").get("/companies/1/ecommerce/"
                                                           ).get_data(as_text=True)


def test_saved_credentials_are_encrypted_audited_and_never_shown(make_app):
    app = make_app()  # CSRF on
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    shopify = next(a for a in _accounts(app) if a.platform == "shopify")
    client = _signed_in(app, "admin")
    page = client.get("/companies/1/ecommerce/accounts").get_data(as_text=True)
    secret = "shpat_very-secret-token-123"
    url = f"/companies/1/ecommerce/accounts/{shopify.id}/credentials"
    assert client.post(url, data={"access_token": secret}).status_code == 400  # no CSRF
    missing = client.post(url, data={"csrf_token": csrf_token_from(page)})
    assert missing.status_code == 400 and "This field is required" in missing.get_data(True)
    saved = client.post(url, data={"access_token": secret, "csrf_token": csrf_token_from(page)})
    assert saved.status_code == 302
    html = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert "Credentials of Shopify store saved." in html
    assert secret not in html
    with app.app_context():
        stored = db.session.get(StoreAccount, shopify.id).credentials_encrypted
        event = db.session.execute(sa.select(AuditEvent).where(
            AuditEvent.action == "account.credentials_set")).scalar_one()
        assert secret not in stored and secret not in str(event.detail)
        assert event.detail == {"fields": ["access_token"]}


def test_connection_test_reports_each_api(make_app, sandbox):
    app = make_app(WTF_CSRF_ENABLED=False, SHIPGEAR_SANDBOX_URL=sandbox.url)
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    client = _signed_in(app, "admin")
    for account in _accounts(app):
        html = client.post(f"/companies/1/ecommerce/accounts/{account.id}/test",
                           headers={"HX-Request": "true"}).get_data(as_text=True)
        assert html.count("Works") == 3, (account.platform, html)
    woo = next(a for a in _accounts(app) if a.platform == "woocommerce")
    requests.put(f"{sandbox.url}/_sandbox/woocommerce/c1/faults", json={"auth_refused": True},
                 timeout=5)
    html = client.post(f"/companies/1/ecommerce/accounts/{woo.id}/test").get_data(as_text=True)
    assert html.count("Credentials refused") == 3


def test_the_alert_webhook_is_an_audited_admin_setting(seeded, client_as):
    from shipgear_exchange_plugin import settings
    from shipgear_exchange_plugin.plugin import state

    admin = client_as("admin")
    bad = admin.post("/companies/1/ecommerce/accounts/alerts",
                     data={"alert_webhook_url": "ftp://example.com/x"})
    assert bad.status_code == 400 and "full http:// or https://" in bad.get_data(True)
    ok = admin.post("/companies/1/ecommerce/accounts/alerts",
                    data={"alert_webhook_url": "https://hooks.example.com/sgx"})
    assert ok.status_code == 302
    html = admin.get(ok.headers["Location"]).get_data(as_text=True)
    assert "Alert webhook saved." in html and "https://hooks.example.com/sgx" in html
    assert client_as("viewer").post("/companies/1/ecommerce/accounts/alerts", data={
        "alert_webhook_url": "https://evil.example.com"}).status_code == 403
    with seeded.app_context():
        values = settings.values(db.session, state(seeded).manifest, 1)
        assert values["alert_webhook_url"] == "https://hooks.example.com/sgx"
        assert settings.values(db.session, state(seeded).manifest, 2)["alert_webhook_url"] is None
        event = db.session.execute(sa.select(AuditEvent).where(
            AuditEvent.action == "settings.alert_webhook")).scalar_one()
        assert event.username == "admin"
