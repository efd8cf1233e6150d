"""An admin connects a store account, edits its settings and turns it off and on again,
from the Store accounts page: what is refused says why and saves nothing, every change
is audited without secrets, and a connected account really writes back to its store."""

from __future__ import annotations

import re

import requests
import sqlalchemy as sa

from shipgear_exchange_plugin.connectors.amazon import LWA_URL
from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.devhost.shipments import process_shipment
from shipgear_exchange_plugin.models import AuditEvent, StoreAccount, Writeback
from shipgear_exchange_plugin.plugin import state
from shipgear_exchange_plugin.worker import AppWorker
from shipgear_exchange_plugin.writeback import WritebackService

from .conftest import csrf_token_from, login

BASE = "/companies/1/ecommerce/accounts"


def _account(app, **where) -> StoreAccount | None:
    with app.app_context():
        row = db.session.execute(sa.select(StoreAccount).filter_by(**where)).scalar()
        db.session.expunge_all()
        return row


def _count(app) -> int:
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(StoreAccount)).scalar()


def _events(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.execute(sa.select(AuditEvent).where(
            AuditEvent.action == action).order_by(AuditEvent.id)).scalars().all()
        db.session.expunge_all()
        return rows


def _woo(sandbox_url: str, **changes) -> dict[str, str]:
    form = {"name": "Outlet shop", "order_source": "woo-outlet",
            "endpoint": f"{sandbox_url}/woocommerce/outlet",
            "consumer_key": "ck_outlet_secret_1", "consumer_secret": "cs_outlet_secret_2"}
    form.update(changes)
    return form


def test_a_connected_account_is_tested_and_writes_back_to_its_store(make_app, sandbox):
    app = make_app(SHIPGEAR_SANDBOX_URL=sandbox.url)  # CSRF on, as in production
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    client = app.test_client()
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"username": "admin", "password": "demo",
                                       "csrf_token": token}).status_code == 302
    page = client.get(BASE).get_data(as_text=True)
    assert f'href="{BASE}/connect/woocommerce"' in page
    form = client.get(f"{BASE}/connect/woocommerce").get_data(as_text=True)
    assert "Consumer key" in form and "For example https://shop.example.com" in form
    assert client.post(f"{BASE}/connect/woocommerce",
                       data=_woo(sandbox.url)).status_code == 400  # no CSRF token
    answer = client.post(f"{BASE}/connect/woocommerce",
                         data=_woo(sandbox.url, csrf_token=csrf_token_from(form)))
    assert answer.status_code == 302, answer.get_data(as_text=True)
    html = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Outlet shop connected." in html and "woo-outlet" in html
    assert "ck_outlet_secret_1" not in html and "cs_outlet_secret_2" not in html

    account = _account(app, order_source="woo-outlet")
    assert (account.platform, account.enabled) == ("woocommerce", True)
    assert account.endpoint == f"{sandbox.url}/woocommerce/outlet"
    assert "ck_outlet_secret_1" not in account.credentials_encrypted
    (event,) = _events(app, "account.connected")
    assert event.username == "admin" and event.target == f"account:{account.id}"
    assert "_secret_" not in str(event.detail)  # the names of the fields, not values
    assert event.detail["credential_fields"] == ["consumer_key", "consumer_secret"]

    tested = client.post(f"{BASE}/{account.id}/test", headers={"HX-Request": "true"},
                         data={"csrf_token": csrf_token_from(html)}).get_data(as_text=True)
    assert tested.count("Works") == 3, tested
    # The test's calls count: Connection Status shows the new account at once.
    panel = client.get("/companies/1/ecommerce/status.json").get_json()
    (shown,) = [a for a in panel["accounts"] if a["id"] == account.id]
    assert {api["status"] for api in shown["apis"].values()} == {"green"}
    # And a probe was queued when it was connected; a worker runs it.
    host = app.extensions["exchange.host"]
    queue = host.queue("shipgear-status")
    (job,) = [j for j in queue.get_jobs() if j.func_name.endswith("jobs.status.probe")]
    assert job.args == (account.id,)
    AppWorker([queue], connection=host.redis(), app=app).work(burst=True)
    job.refresh()
    assert job.return_value() == {"products": "ok", "writeback": "ok", "orders": "ok"}

    # The host ships an order of that source: the new account writes it back.
    made = requests.post(f"{sandbox.url}/_sandbox/woocommerce/outlet/orders", json={
        "orders": [{"order_id": "7001", "items": [{"sku": "SKU-1", "order_item_id": "70010",
                                                   "quantity": 1}]}]}, timeout=5)
    assert made.status_code == 201, made.text
    with app.app_context():
        shipment = process_shipment(
            app.extensions["exchange.host"], company_id=1, order_source="woo-outlet",
            order_id="7001", carrier="UPS", service="Ground",
            packages=[{"tracking_number": "1ZOUTLET1", "items": [
                {"sku": "SKU-1", "order_item_id": "70010", "quantity": 1}]}])
        wid = db.session.execute(sa.select(Writeback.id).where(
            Writeback.shipment_id == shipment.id)).scalar_one()
        WritebackService(db.session, state(app).credentials).send(wid)
        assert db.session.get(Writeback, wid).status == "success"
    writes = sandbox.store.account("woocommerce", "outlet").writes
    assert [w["tracking_number"] for w in writes] == ["1ZOUTLET1"]


def _save(client, account_id: int, data: dict):
    """Post the settings form as a browser does: with the version of the form it loaded."""
    form = client.get(f"{BASE}/{account_id}/settings").get_data(as_text=True)
    version = re.search(r'name="version"[^>]*value="([0-9a-f]+)"', form).group(1)
    return client.post(f"{BASE}/{account_id}/settings", data={**data, "version": version})


def _error(html: str, field: str) -> str:
    """The error text shown under a field of the settings form ("" when none)."""
    match = re.search(rf'id="{field}-error" class="sgx-error-text">([^<]*)<', html)
    return match.group(1) if match else ""


def test_what_cannot_be_connected_is_refused_with_a_reason_and_nothing_saved(seeded, client_as):
    admin = client_as("admin")
    before = _count(seeded)
    sandbox_url = seeded.config["SHIPGEAR_SANDBOX_URL"]
    cases = [
        ({"endpoint": "http://shop.example.com"}, "endpoint", "Use https://"),
        ({"endpoint": "ftp://shop.example.com"}, "endpoint", "full API address"),
        ({"endpoint": "https://exa mple.com"}, "endpoint", "full API address"),
        ({"endpoint": "https://user:pw@shop.example.com"}, "endpoint", "in their own fields"),
        ({"endpoint": "https://shop.example.com/?x=1"}, "endpoint", "no ?query"),
        ({"endpoint": "https://shop.example.com:port"}, "endpoint", "full API address"),
        ({"name": ""}, "name", "This field is required."),
        ({"name": "x" * 121}, "name", "Field cannot be longer than 120 characters."),
        ({"name": " woocommerce SHOP "}, "name", "Another account of this company is called"),
        ({"order_source": "woo\x00"}, "order_source", "cannot hold control characters"),
        ({"order_source": "WooCommerce-1"}, "order_source",
         "The account &#39;WooCommerce shop&#39; already takes the shipments of order source"),
        ({"consumer_secret": ""}, "consumer_secret", "This field is required."),
    ]
    for changes, field, message in cases:
        answer = admin.post(f"{BASE}/connect/woocommerce", data=_woo(sandbox_url, **changes))
        html = answer.get_data(as_text=True)
        assert answer.status_code == 400, changes
        assert message in _error(html, field), (changes, _error(html, field))
        assert "Nothing was saved" in html and "enter them again" in html
        assert "ck_outlet_secret_1" not in html  # a refused form never echoes a secret
        # the field says it is wrong, and takes the focus (the first one in error)
        tag = re.search(rf'<[^>]*\bid="{field}"[^>]*>', html).group(0)
        assert 'aria-invalid="true"' in tag and f"{field}-error" in tag
        assert "autofocus" in tag  # each case breaks one field: the first in error
    # Every problem at once, not one per submit.
    both = admin.post(f"{BASE}/connect/woocommerce", data=_woo(
        sandbox_url, endpoint="http://shop.example.com", order_source="shopify-1", name=""))
    html = both.get_data(as_text=True)
    assert [bool(_error(html, f)) for f in ("name", "order_source", "endpoint")] == [True] * 3
    amazon = {"name": "EU", "order_source": "amazon-eu", "client_id": "a",
              "client_secret": "b", "refresh_token": "c",
              "endpoint": "https://sellingpartnerapi-eu.amazon.com"}
    form = admin.get(f"{BASE}/connect/amazon").get_data(as_text=True)
    assert "Connect an Amazon account" in form and 'value="ATVPDKIKX0DER"' in form
    assert re.search(r'Marketplace ID <span class="muted">\(required\)', form)
    answer = admin.post(f"{BASE}/connect/amazon", data={**amazon, "marketplace_id": "a1pm5v"})
    assert answer.status_code == 400
    assert "capital letters and digits" in _error(answer.get_data(True), "marketplace_id")
    answer = admin.post(f"{BASE}/connect/amazon", data={**amazon, "marketplace_id": ""})
    assert "required" in _error(answer.get_data(True), "marketplace_id")
    assert admin.get(f"{BASE}/connect/etsy").status_code == 404
    assert _count(seeded) == before
    # Plain http is fine for the configured sandbox, and https for a public store.
    for name, endpoint in (("Public", "https://outlet.example.com"),
                           ("Sandboxed", f"{sandbox_url}/woocommerce/other/")):
        answer = admin.post(f"{BASE}/connect/woocommerce", data=_woo(
            sandbox_url, name=name, order_source=name.lower(), endpoint=endpoint))
        assert answer.status_code == 302, answer.get_data(as_text=True)
        new_id = _account(seeded, name=name).id
        assert answer.headers["Location"].endswith(f"#account-{new_id}")  # its card, in view
    assert _account(seeded, name="Sandboxed").endpoint == f"{sandbox_url}/woocommerce/other"
    assert _count(seeded) == before + 2


def test_only_the_company_admin_connects_or_edits(seeded, client_as):
    other = _account(seeded, company_id=2, platform="shopify")  # the admin is a member
    mine = _account(seeded, company_id=1, platform="shopify")
    for role in ("viewer", "support"):
        client = client_as(role)
        assert client.get(f"{BASE}/connect/shopify").status_code == 403
        assert client.post(f"{BASE}/connect/shopify", data={
            "name": "x", "order_source": "x", "endpoint": "https://x.myshopify.com",
            "access_token": "t"}).status_code == 403
        assert client.post(f"{BASE}/{mine.id}/settings", data={
            "name": "x", "order_source": "x", "endpoint": "https://x.myshopify.com"}
        ).status_code == 403
    admin = client_as("admin")
    assert admin.get(f"{BASE}/{other.id}/settings").status_code == 404  # not company 1's
    assert admin.post(f"{BASE}/{other.id}/settings", data={
        "name": "x", "order_source": "x", "endpoint": "https://x.myshopify.com",
        "enabled": "y"}).status_code == 404
    assert _account(seeded, id=mine.id).name == mine.name
    assert _account(seeded, id=other.id).name == other.name


def test_an_edited_account_keeps_its_secrets_unless_it_moves_to_another_host(seeded, client_as):
    admin = client_as("admin")
    amazon = _account(seeded, company_id=1, platform="amazon")
    form = admin.get(f"{BASE}/{amazon.id}/settings").get_data(as_text=True)
    assert f'value="{amazon.order_source}"' in form and "A1SANDBOXSELLER" in form
    assert "Leave these empty to keep them" in form
    fields = {"name": "<b>Amazon EU</b>", "order_source": amazon.order_source,
              "seller_id": "A2SELLER99", "marketplace_id": "A1PM5V8C0BE9PU", "enabled": "y"}
    # Same host, another path: a rename and new options, the credentials untouched.
    answer = _save(admin, amazon.id, {
        **fields, "endpoint": amazon.endpoint + "/v2"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    html = admin.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Settings of &lt;b&gt;Amazon EU&lt;/b&gt; saved." in html and "<b>Amazon" not in html
    after = _account(seeded, id=amazon.id)
    assert after.credentials_encrypted == amazon.credentials_encrypted
    assert after.options["lwa_url"] == amazon.endpoint + "/v2/auth/o2/token"  # followed
    assert (after.options["seller_id"], after.options["marketplace_id"]) == (
        "A2SELLER99", "A1PM5V8C0BE9PU")
    (event,) = _events(seeded, "account.updated")
    assert event.detail["changed"]["name"] == [amazon.name, "<b>Amazon EU</b>"]
    assert set(event.detail["changed"]) == {"name", "endpoint", "options"}
    # Another host: the stored secrets are never sent there; the form asks for them.
    real = "https://sellingpartnerapi-eu.amazon.com"
    moved = _save(admin, amazon.id, {
        **fields, "endpoint": real, "client_id": " ", "client_secret": "  ",
        "refresh_token": ""})  # blanks are no credentials
    assert moved.status_code == 400
    assert "the address now names another host" in _error(moved.get_data(True), "client_id")
    partial = _save(admin, amazon.id, {
        **fields, "endpoint": real, "client_secret": "only-this-one"})
    html = partial.get_data(as_text=True)
    assert partial.status_code == 400 and "Enter every credential" in _error(html, "client_id")
    assert "For safety the credentials are not kept after an error" in html
    assert _account(seeded, id=amazon.id).endpoint == amazon.endpoint + "/v2"
    moved = _save(admin, amazon.id, {
        **fields, "endpoint": real, "client_id": "amzn1.id", "client_secret": "s3cret-x",
        "refresh_token": "Atzr|token"})
    assert moved.status_code == 302, moved.get_data(as_text=True)
    after = _account(seeded, id=amazon.id)
    assert after.options["lwa_url"] == LWA_URL  # Amazon's own login, as the address is
    with seeded.app_context():
        from shipgear_exchange_plugin.credentials import read_credentials

        assert read_credentials(state(seeded).credentials, after)["client_secret"] == "s3cret-x"
    event = _events(seeded, "account.updated")[-1]
    assert set(event.detail["changed"]) == {"endpoint", "options"} and "s3cret" not in str(
        event.detail)
    (secrets,) = _events(seeded, "account.credentials_set")  # where credential changes go
    assert secrets.detail == {"fields": ["client_id", "client_secret", "refresh_token"]}
    # The same values again change nothing and leave no audit entry.
    again = _save(admin, amazon.id, {**fields, "endpoint": real + "/"})
    assert again.status_code == 302 and len(_events(seeded, "account.updated")) == 2
    assert "Nothing changed" in admin.get(again.headers["Location"]).get_data(as_text=True)
    taken = _save(admin, amazon.id, {
        **fields, "order_source": "shopify-1", "endpoint": real})
    assert taken.status_code == 400
    assert "already takes the shipments" in _error(taken.get_data(True), "order_source")
    assert _account(seeded, id=amazon.id).order_source == amazon.order_source


def test_an_account_turned_off_leaves_the_panel_until_turned_on(seeded, client_as):
    admin = client_as("admin")
    shopify = _account(seeded, company_id=1, platform="shopify")
    fields = {"name": shopify.name, "order_source": shopify.order_source,
              "endpoint": shopify.endpoint}

    def listed() -> set[int]:
        status = admin.get("/companies/1/ecommerce/status.json").get_json()
        return {account["id"] for account in status["accounts"]}

    assert shopify.id in listed()
    answer = _save(admin, shopify.id, fields)  # the box unticked
    assert answer.status_code == 302
    html = admin.get(answer.headers["Location"]).get_data(as_text=True)
    assert "The account is off: its write-backs wait" in html
    assert shopify.id not in listed() and _account(seeded, id=shopify.id).enabled is False
    with seeded.app_context():
        waiting = db.session.execute(sa.select(Writeback.id).where(
            Writeback.account_id == shopify.id, Writeback.status == "pending")).scalars().first()
    panel = admin.get(f"/companies/1/ecommerce/orders/{waiting}",
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert f"The store account {shopify.name} is turned off" in panel
    assert "Next attempt" not in panel  # it has none while the account is off
    retried = admin.post(f"/companies/1/ecommerce/orders/{waiting}/retry",
                         headers={"Accept": "application/json"}).get_json()
    assert "is turned off: the attempt runs once an admin turns it on" in retried["message"]
    many = admin.post("/companies/1/ecommerce/orders/retry", data={"ids": str(waiting)},
                      headers={"Accept": "application/json"}).get_json()
    assert "1 of them belongs to a store account that is turned off" in many["message"]
    page = admin.get("/companies/1/ecommerce/").get_data(as_text=True)
    assert f"{shopify.name} (off)</option>" in page  # its orders can still be filtered
    (event,) = _events(seeded, "account.disabled")
    assert event.detail["changed"] == {"enabled": [True, False]}
    assert _save(admin, shopify.id,
                      data={**fields, "enabled": "y"}).status_code == 302
    assert shopify.id in listed() and len(_events(seeded, "account.enabled")) == 1
    panel = admin.get(f"/companies/1/ecommerce/orders/{waiting}",
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "is turned off" not in panel



def test_the_reference_host_ships_for_a_newly_connected_account(store_host, sandbox):
    """The demo's desk (and its "process a shipment" page) offers the new account's order
    source before any shipment came from it, with order ids of the account's platform
    whatever the source is called."""
    import re

    from shipgear_exchange_plugin.devhost.simulate import order_sources, process_random_shipment

    app = store_host(companies=2)
    admin = app.test_client()
    assert login(admin, "admin").status_code == 302
    answer = admin.post(f"{BASE}/connect/amazon", data={
        "name": "Amazon EU", "order_source": "eu-marketplace", "marketplace_id": "A1PM5V8C0BE9PU",
        "endpoint": f"{sandbox.url}/amazon/eu", "client_id": "a", "client_secret": "b",
        "refresh_token": "c"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with app.app_context():
        assert "eu-marketplace" in order_sources(1)
        assert "eu-marketplace" not in order_sources(2)
        shipment = process_random_shipment(app.extensions["exchange.host"], 1,
                                           order_source="eu-marketplace")
        assert re.fullmatch(r"\d{3}-\d{7}-\d{7}", shipment.order_id)
        row = db.session.execute(sa.select(Writeback).where(
            Writeback.shipment_id == shipment.id)).scalar_one()
        assert row.account.name == "Amazon EU" and row.status == "pending"
    # the store knows the order before the write-back reaches it, as a real one would
    assert sandbox.store.account("amazon", "eu").orders.keys() == {shipment.order_id}


def test_with_every_account_off_the_panel_says_so(seeded, client_as):
    with seeded.app_context():
        for account in db.session.execute(sa.select(StoreAccount).where(
                StoreAccount.company_id == 1)).scalars():
            account.enabled = False
        db.session.commit()
    html = client_as("viewer").get("/companies/1/ecommerce/status").get_data(as_text=True)
    assert "Every store account of this company is turned off" in html
    assert "No store account is connected" not in html


def test_private_addresses_are_refused_unless_the_operator_allows_them(make_app):
    """A company admin must not turn the server into a client of its internal network:
    this machine, private and link-local addresses (a cloud's metadata service) and
    internal names are refused, until SHIPGEAR_ALLOW_PRIVATE_ENDPOINTS says otherwise."""
    private = ["https://127.0.0.1:8443", "http://localhost:8080/shop", "https://[::1]/x",
               "https://10.1.2.3", "http://169.254.169.254/latest", "https://metadata",
               "https://shop.internal", "https://192.168.0.10:9000"]
    for allowed in (False, True):
        app = make_app(WTF_CSRF_ENABLED=False,
                       SHIPGEAR_ALLOW_PRIVATE_ENDPOINTS="1" if allowed else "")
        with app.app_context():
            seed(app, companies=1, shipments=0, enabled=1)
        admin = app.test_client()
        assert login(admin, "admin").status_code == 302
        for n, endpoint in enumerate(private):
            answer = admin.post(f"{BASE}/connect/woocommerce", data=_woo(
                "", name=f"Shop {n}", order_source=f"src-{n}", endpoint=endpoint))
            if allowed:
                assert answer.status_code == 302, (endpoint, answer.get_data(as_text=True))
            else:
                assert answer.status_code == 400, endpoint
                assert "private network" in _error(answer.get_data(True), "endpoint")
        # Plain http to a public host is refused either way: credentials go with it.
        answer = admin.post(f"{BASE}/connect/woocommerce", data=_woo(
            "", name="Plain", order_source="plain", endpoint="http://shop.example.com"))
        assert "Use https://" in _error(answer.get_data(True), "endpoint")


def test_the_core_checks_what_the_form_checks_for_any_caller(seeded):
    """The rules hold for a script or another host page calling the core directly, and
    an address written with its default port is the same host."""
    import pytest

    from shipgear_exchange_plugin.store_accounts import (
        AccountRefused,
        AccountValues,
        Actor,
        connect,
        update,
    )

    cli = Actor(None, "cli")
    with seeded.app_context():
        box = state(seeded).credentials
        with pytest.raises(AccountRefused) as refused:
            connect(db.session, box, 1, "shopify", AccountValues(
                " ", "sr\tc", "https://x.myshopify.com"), {"access_token": "  "}, cli)
        assert set(refused.value.problems) == {"name", "order_source", "access_token"}
        shop = connect(db.session, box, 1, "shopify", AccountValues(
            "Shop", "src", "https://x.myshopify.com"), {"access_token": "t1"}, cli)
        same = update(db.session, box, shop, AccountValues(
            "Shop", "src", "HTTPS://x.myshopify.com:443/"), cli)
        assert same == {"endpoint": ["https://x.myshopify.com", "HTTPS://x.myshopify.com:443"]}
        with pytest.raises(AccountRefused) as refused:
            update(db.session, box, shop, AccountValues(
                "Shop", "src", "https://x.myshopify.com:8443"), cli)
        assert set(refused.value.problems) == {"access_token"}


def test_a_form_loaded_before_another_admins_change_does_not_undo_it(seeded, client_as):
    first, second = client_as("admin"), client_as("admin")
    woo = _account(seeded, company_id=1, platform="woocommerce")
    stale = first.get(f"{BASE}/{woo.id}/settings").get_data(as_text=True)
    version = re.search(r'name="version"[^>]*value="([0-9a-f]+)"', stale).group(1)
    fields = {"name": woo.name, "order_source": woo.order_source, "endpoint": woo.endpoint}
    assert _save(second, woo.id, fields).status_code == 302  # turned off meanwhile
    answer = first.post(f"{BASE}/{woo.id}/settings", data={
        **fields, "name": "Renamed", "enabled": "y", "version": version})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 409 and "another admin changed this account" in html
    assert 'value="WooCommerce shop"' in html  # the settings as they are now
    after = _account(seeded, id=woo.id)
    assert (after.name, after.enabled) == ("WooCommerce shop", False)
    assert "write-backs of this account are not final yet" in html


def test_an_address_that_leads_to_this_machine_gets_no_call_from_the_engine(make_app, sandbox):
    """An account whose address now resolves to this machine (its DNS changed after it was
    connected; "localhost" stands in for such a name): the connection test, the
    write-back and the product sync each say why, and the store hears nothing. The
    operator's SHIPGEAR_ALLOW_PRIVATE_ENDPOINTS lets the calls go."""
    from shipgear_exchange_plugin import runtime

    moved = sandbox.url.replace("127.0.0.1", "localhost") + "/woocommerce/c1"
    for allowed in (False, True):
        app = make_app(WTF_CSRF_ENABLED=False, SHIPGEAR_SANDBOX_URL=sandbox.url,
                       SHIPGEAR_ALLOW_PRIVATE_ENDPOINTS="1" if allowed else "")
        with app.app_context():
            seed(app, companies=1, shipments=0, enabled=1)
            woo = db.session.execute(sa.select(StoreAccount).filter_by(
                company_id=1, platform="woocommerce")).scalar_one()
            woo.endpoint = moved
            db.session.commit()
            woo_id, source = woo.id, woo.order_source
        store = sandbox.store.account("woocommerce", "c1")
        heard = len(store.requests)
        admin = app.test_client()
        assert login(admin, "admin").status_code == 302
        tested = admin.post(f"{BASE}/{woo_id}/test",
                            headers={"HX-Request": "true"}).get_data(as_text=True)
        synced = admin.post("/companies/1/ecommerce/products/sync").get_data(as_text=True)

        (order,) = requests.post(f"{sandbox.url}/_sandbox/woocommerce/c1/orders", json={
            "orders": [{"order_id": f"880{int(allowed)}", "items": [
                {"sku": "SKU-1", "order_item_id": "1", "quantity": 1}]}]},
            timeout=5).json()["orders"]
        with app.app_context():
            host = app.extensions["exchange.host"]
            shipment = process_shipment(
                host, company_id=1, order_source=source, order_id=order["order_id"],
                carrier="UPS", service="Ground", packages=[{
                    "tracking_number": f"1ZMOVED{int(allowed)}",
                    "items": [{"sku": "SKU-1", "order_item_id": "1", "quantity": 1}]}])
            wid = db.session.execute(sa.select(Writeback.id).where(
                Writeback.shipment_id == shipment.id)).scalar_one()
            runtime.writeback_service(host).send(wid)
            row = db.session.get(Writeback, wid)
            status, errors, last_error = row.status, row.error_count, row.last_error or ""

        if allowed:
            assert tested.count("Works") == 3, tested
            assert status == "success" and len(store.requests) > heard
            continue
        assert tested.count("Refused") == 3 and "Works" not in tested
        assert tested.count("address localhost leads to 127.0.0.1") == 3
        assert "leads to 127.0.0.1" in synced
        # Failed at once: a wrong address is not fixed by trying again.
        assert (status, errors) == ("failed", 1)
        assert "leads to 127.0.0.1" in last_error and "nothing was sent" in last_error
        assert len(store.requests) == heard and store.writes == []


def test_each_credential_field_says_where_the_store_shows_it(seeded, client_as):
    """An admin connecting a store is told, under each credential field, where on that
    store to find it; the settings form says the same, and that empty keeps the stored one."""
    from html import unescape

    from shipgear_exchange_plugin.connectors import connector_class

    admin = client_as("admin")
    for platform, place in (("amazon", "Develop Apps"), ("shopify", "Develop apps"),
                            ("woocommerce", "Advanced, REST API"),
                            ("bigcommerce", "Store-level API accounts")):
        html = unescape(admin.get(f"{BASE}/connect/{platform}").get_data(as_text=True))
        fields = connector_class(platform).credential_fields
        for name in fields:
            help_text = re.search(rf'id="{name}-help"[^>]*>([^<]*)<', html)
            assert help_text and len(help_text.group(1)) > 30, (platform, name)
            assert f'aria-describedby="{name}-help"' in html, (platform, name)
        assert place in html, platform
    with seeded.app_context():
        woo_id = db.session.execute(sa.select(StoreAccount.id).filter_by(
            company_id=1, platform="woocommerce")).scalar_one()
    html = unescape(admin.get(f"{BASE}/{woo_id}/settings").get_data(as_text=True))
    help_text = re.search(r'id="consumer_key-help"[^>]*>([^<]*)<', html).group(1)
    assert "REST API" in help_text and "Leave empty to keep the stored one" in help_text
