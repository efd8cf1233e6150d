"""Browser tests of the surfaces next to the orders grid: the Products tab (sync, search,
paging), the Store accounts page (write-only credentials, connection test) and the
grid's Export failed for Amazon link. Debian's Chromium driven by Playwright over real
HTTP, the store accounts on the marketplace sandbox; embedded backend only.

Every test fails on an uncaught JavaScript error or a Content-Security-Policy violation
(the shared ``page`` fixture of tests/browser_fixtures.py; its last tests here show that
it does).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import requests
import sqlalchemy as sa
from playwright.sync_api import expect

from shipgear_exchange_plugin.connectors.amazon import FULFILLMENT_FEED_COLUMNS
from shipgear_exchange_plugin.credentials import read_credentials
from shipgear_exchange_plugin.devhost.models import Company, db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.models import AuditEvent, StoreAccount
from shipgear_exchange_plugin.plugin import state

from .browser_helpers import as_user, serve, watched_page

pytestmark = pytest.mark.browser
pytest_plugins = ["tests.browser_fixtures"]

BASE = "/companies/1/ecommerce/"
ACCOUNT_NAMES = ["Amazon US", "BigCommerce store", "Shopify store", "WooCommerce shop"]


@pytest.fixture
def backend() -> str:
    """Browser tests run on the embedded backend only."""
    return "embedded"


@pytest.fixture
def server(browser, make_app, sandbox):
    """The seeded host over HTTP, its store accounts on the sandbox; ``.url``, ``.app``
    and ``.sandbox`` (the sandbox's base URL)."""
    app = make_app(SHIPGEAR_SANDBOX_URL=sandbox.url)
    with app.app_context():
        seed(app, companies=3, shipments=300)
    with serve(app) as url:
        yield SimpleNamespace(url=url, app=app, sandbox=sandbox.url)


@pytest.fixture
def site_url(server) -> str:
    """Where the shared ``page`` fixture opens its tab."""
    return server.url


def accounts_of(app, company_id: int = 1) -> dict[str, StoreAccount]:
    with app.app_context():
        rows = db.session.execute(sa.select(StoreAccount).where(
            StoreAccount.company_id == company_id)).scalars().all()
        db.session.expunge_all()
        return {a.platform: a for a in rows}


def json_items(page, url: str, params: dict) -> list[dict]:
    """Every item of a JSON list endpoint, through the browser's own session."""
    items, after = [], None
    while True:
        answer = page.request.get(url, params={**params, **({"after": after} if after else {})})
        assert answer.ok, answer.text()
        body = answer.json()
        items += body["items"]
        after = body["next"]
        if after is None:
            return items


# -- the Products tab ---------------------------------------------------------------------
def product_rows(page) -> list[tuple[str, str]]:
    """(item number, account cell) of each row the products table shows."""
    return [(cells[1].strip(), cells[4].strip()) for cells in page.locator(
        "#products-region tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells, c => c.innerText))")]


def expect_products(page, items: list[dict]) -> None:
    """The table shows ``items`` (from products.json), in order, once htmx has swapped."""
    labels = {"amazon": "Amazon", "bigcommerce": "BigCommerce", "shopify": "Shopify",
              "woocommerce": "WooCommerce"}
    expect(page.locator("#products-region tbody td.mono")).to_have_text(
        [item["sku"] for item in items])
    assert product_rows(page) == [
        (item["sku"], f"{labels[item['platform']]} · {item['account']}") for item in items]


def test_products_tab_syncs_then_searches_and_pages_in_place(page, server):
    as_user(page, "admin")
    page.get_by_role("link", name="Products", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Products · Acme Outfitters")
    expect(page.locator("#products-region tbody")).to_have_text("No products loaded yet.")
    sources = page.locator("table.sgx-product-sources tbody tr")
    expect(sources).to_have_count(4)
    for name in ACCOUNT_NAMES:
        expect(sources.filter(has_text=name).locator("td").nth(1)).to_have_text("0")
        expect(sources.filter(has_text=name)).to_contain_text("Never")

    # Sync now asks every store over HTTP and says what each one gave.
    page.get_by_role("button", name="Sync now").click()
    results = page.locator(".sgx-sync-results li")
    expect(results).to_have_count(4)
    expect(results.locator(".badge")).to_have_text(["Loaded"] * 4)
    everything = json_items(page, BASE + "products.json", {})
    by_account: dict[str, int] = {}
    for item in everything:
        by_account[item["account"]] = by_account.get(item["account"], 0) + 1
    assert sorted(by_account) == ACCOUNT_NAMES and all(n > 0 for n in by_account.values())
    for name, count in by_account.items():
        expect(sources.filter(has_text=name).locator("td").nth(1)).to_have_text(str(count))
        expect(results.filter(has_text=name)).to_contain_text(f"{count} products loaded")
    expect_products(page, everything[:50])
    # The thumbnails load: the stores link them on the sandbox, whose origin the page's
    # Content-Security-Policy names (a refused image would fail the test as a violation).
    # The first rows' images, as the rest load lazily when scrolled to.
    thumbs = page.locator("#products-region img.sgx-thumb")
    expect(thumbs).to_have_count(50)
    expect(thumbs.first).to_have_attribute("src", re.compile(
        "^" + re.escape(server.sandbox) + r"/images/[a-z]+/[\w-]+/\d+(-thumb)?\.svg$"))
    for n in range(3):
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=thumbs.nth(n).element_handle())

    # Search and the account filter swap the table only, and the URL keeps them.
    page.evaluate("window.__marker = 1")
    sku = everything[3]["sku"]
    page.get_by_label("Search", exact=True).fill(sku.lower())
    with page.expect_response(lambda r: "q=" in r.url) as answer:
        page.get_by_role("button", name="Search").click()
    assert answer.value.request.headers.get("hx-request") == "true"
    expect(page).to_have_url(re.compile(rf"[?&]q={re.escape(sku.lower())}(&|$)"))
    matches = json_items(page, BASE + "products.json", {"q": sku.lower()})
    assert matches and all(sku in item["sku"] for item in matches)
    expect_products(page, matches)

    shopify = accounts_of(server.app)["shopify"]
    page.get_by_label("Search", exact=True).fill("")
    page.get_by_label("Account").select_option(label="Shopify · Shopify store")
    with page.expect_response(lambda r: f"account={shopify.id}" in r.url):
        page.get_by_role("button", name="Search").click()
    only_shopify = [i for i in everything if i["account_id"] == shopify.id]
    expect_products(page, only_shopify)

    # Paging: the next page follows on from the first, and back again.
    page.get_by_label("Account").select_option(label="All accounts")
    with page.expect_response(lambda r: "/products?" in r.url):
        page.get_by_role("button", name="Search").click()
    expect_products(page, everything[:50])
    with page.expect_response(lambda r: "after=" in r.url):
        page.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(re.compile(r"[?&]after="))
    expect_products(page, everything[50:100])
    page.get_by_role("link", name="First page").click()
    expect_products(page, everything[:50])
    assert page.evaluate("window.__marker") == 1, "search or paging reloaded the page"


def test_a_viewer_sees_the_products_tab_without_admin_actions(page):
    as_user(page, "viewer")
    expect(page.get_by_role("link", name="Store accounts")).to_have_count(0)
    page.get_by_role("link", name="Products", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Products · Acme Outfitters")
    expect(page.get_by_role("button", name="Sync now")).to_have_count(0)
    expect(page.get_by_role("link", name="Store accounts")).to_have_count(0)
    expect(page.locator("table.sgx-product-sources tbody tr")).to_have_count(4)
    page.get_by_role("link", name="Back to View eCommerce").click()
    expect(page.get_by_role("heading", name="View eCommerce")).to_be_visible()


# -- the Store accounts page ----------------------------------------------------------------
def account_card(page, name: str):
    return page.locator("section.sgx-card").filter(
        has=page.get_by_role("heading", name=re.compile(rf"· {re.escape(name)}$")))


def save_credentials(page, name: str, values: dict[str, str]) -> None:
    """Fill the account's credential fields and save; back on the page, saved."""
    card = account_card(page, name)
    for label, value in values.items():
        card.get_by_label(label, exact=True).fill(value)
    page.evaluate("window.__before_save = 1")
    with page.expect_response(lambda r: r.url.endswith("/credentials")) as posted:
        card.get_by_role("button", name="Replace credentials").click()
    assert posted.value.status == 302  # saved, then back to the page (no body to leak)
    page.wait_for_function("() => window.__before_save === undefined")  # the new page
    expect(page).to_have_url(re.compile(r"/accounts\?saved=\d+$"))
    expect(page.get_by_role("status")).to_have_text(f"Credentials of {name} saved.")


def run_connection_test(page, account: StoreAccount, name: str):
    """Click Test connection; the three API results, swapped in place by htmx."""
    with page.expect_response(lambda r: r.url.endswith(f"/accounts/{account.id}/test")
                              ) as tested:
        account_card(page, name).get_by_role("button", name="Test connection").click()
    assert tested.value.request.headers.get("hx-request") == "true"
    results = page.locator(f"#test-{account.id} li")
    expect(results).to_have_count(3)
    expect(results.locator("strong")).to_have_text(
        ["Products API", "Writeback API", "Orders API"])
    return results


def test_saved_credentials_are_used_and_never_shown_back(page, server):
    woo = accounts_of(server.app)["woocommerce"]
    wrong_key, right_key, secret = "key-4711-browser", "ck_4711-browser", "cs_secret-4711-browser"
    as_user(page, "admin")
    page.get_by_role("link", name="Store accounts").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Store accounts · Acme Outfitters")
    for name in ACCOUNT_NAMES:
        expect(account_card(page, name).locator(".sgx-facts .badge")).to_have_text("Set")
    card = account_card(page, "WooCommerce shop")
    for label in ("Consumer key", "Consumer secret"):
        field = card.get_by_label(label, exact=True)
        expect(field).to_have_attribute("type", "password")
        expect(field).to_have_value("")
        expect(field).to_have_attribute("required", "")  # an empty form is not sent

    # Saved credentials are what the connection test uses: a key WooCommerce refuses...
    save_credentials(page, "WooCommerce shop",
                     {"Consumer key": wrong_key, "Consumer secret": secret})
    page.evaluate("window.__marker = 1")
    refused = run_connection_test(page, woo, "WooCommerce shop")
    # (The Writeback probe reads the Shipment Tracking providers, a public route: it
    # answers whatever the key, so only Products and Orders can tell.)
    for api in ("Products API", "Orders API"):
        result = refused.filter(has=page.locator("strong", has_text=api))
        expect(result.locator(".badge")).to_have_text("Credentials refused")
        expect(result).to_contain_text("Consumer key is invalid.")
        expect(result).to_contain_text("(HTTP 401)")
    assert page.evaluate("window.__marker") == 1, "the connection test reloaded the page"
    # ...then a good one.
    save_credentials(page, "WooCommerce shop",
                     {"Consumer key": right_key, "Consumer secret": secret})
    works = run_connection_test(page, woo, "WooCommerce shop")
    expect(works.locator(".badge")).to_have_text(["Works"] * 3)

    # Never shown back: not in the fields, not anywhere in the page; stored encrypted,
    # audited without the values.
    card = account_card(page, "WooCommerce shop")
    expect(card.locator(".sgx-facts .badge")).to_have_text("Set")
    for label in ("Consumer key", "Consumer secret"):
        expect(card.get_by_label(label, exact=True)).to_have_value("")
    html = page.evaluate("document.documentElement.outerHTML")
    for value in (wrong_key, right_key, secret):
        assert value not in html
    with server.app.app_context():
        stored = db.session.get(StoreAccount, woo.id)
        assert secret not in stored.credentials_encrypted
        assert read_credentials(state(server.app).credentials, stored) == {
            "consumer_key": right_key, "consumer_secret": secret}
        events = db.session.execute(sa.select(AuditEvent).where(
            AuditEvent.action == "account.credentials_set")).scalars().all()
        assert [e.username for e in events] == ["admin", "admin"]
        assert all(secret not in str(e.detail) and right_key not in str(e.detail)
                   for e in events)


def test_connection_test_shows_an_unreachable_store(page, server):
    big = accounts_of(server.app)["bigcommerce"]
    requests.put(f"{server.sandbox}/_sandbox/bigcommerce/c1/faults",
                 json={"outage": "down"}, timeout=5).raise_for_status()
    as_user(page, "admin")
    page.get_by_role("link", name="Store accounts").click()
    results = run_connection_test(page, big, "BigCommerce store")
    expect(results.locator(".badge")).to_have_text(["Unreachable"] * 3)
    expect(results.first).to_contain_text("Service Unavailable")
    expect(results.first).to_contain_text("(HTTP 503)")
    # The other accounts' results are untouched.
    for platform, other in accounts_of(server.app).items():
        if platform != "bigcommerce":
            expect(page.locator(f"#test-{other.id} li")).to_have_count(0)


def test_an_admin_connects_a_store_then_turns_it_off(page, server):
    """The whole form in a browser: the refused submit keeps what was typed except the
    secret, marks the bad fields and puts the cursor on the first; the good one lands on
    the new account's card, whose connection test works; turning it off shows at once."""
    as_user(page, "admin")
    page.get_by_role("link", name="Store accounts").click()
    page.get_by_role("region", name="Connect a store account").get_by_role(
        "link", name="Shopify").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Connect a Shopify account · Acme Outfitters")
    page.get_by_label("Name").fill("Shopify outlet")
    page.get_by_label("Order source").fill("shopify-1")  # the seeded account's
    page.get_by_label("API address").fill("http://outlet.example.com")
    page.get_by_label("Access token").fill("shpat_browser_secret")
    page.get_by_role("button", name="Connect account").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
    source = page.get_by_label("Order source")
    expect(source).to_be_focused()
    expect(source).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#order_source-error")).to_contain_text("Shopify store")
    expect(page.locator("#endpoint-error")).to_contain_text("Use https://")
    expect(page.get_by_label("Name")).to_have_value("Shopify outlet")
    expect(page.get_by_label("Access token")).to_have_value("")
    assert "shpat_browser_secret" not in page.content()

    source.fill("outlet")
    page.get_by_label("API address").fill(f"{server.sandbox}/shopify/outlet")
    page.get_by_label("Access token").fill("shpat_browser_secret")
    page.get_by_role("button", name="Connect account").click()
    expect(page.get_by_role("status")).to_contain_text("Shopify outlet connected.")
    with server.app.app_context():
        account = db.session.execute(sa.select(StoreAccount).where(
            StoreAccount.name == "Shopify outlet")).scalar_one()
        db.session.expunge(account)
    expect(page).to_have_url(re.compile(rf"#account-{account.id}$"))
    assert page.evaluate("document.querySelector(':target').id") == f"account-{account.id}"
    results = run_connection_test(page, account, "Shopify outlet")
    expect(results.locator(".badge")).to_have_text(["Works"] * 3)

    account_card(page, "Shopify outlet").get_by_role("link", name="Edit settings").click()
    enabled = page.get_by_label("Enabled")
    expect(enabled).to_be_checked()
    enabled.uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("The account is off")
    expect(page.locator(f"#account-{account.id} h2")).to_have_text(
        "Shopify · Shopify outlet Off")
    page.get_by_role("link", name="Back to View eCommerce").click()
    expect(page.locator(".sgx-status")).not_to_contain_text("Shopify outlet")
    expect(page.get_by_label("Account").locator("option", has_text="Shopify outlet (off)")
           ).to_have_count(1)


# -- Export failed for Amazon -------------------------------------------------------------
def amazon_file(download) -> tuple[list[str], list[dict[str, str]]]:
    with open(download.path(), encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(io.StringIO(handle.read()), delimiter="\t")
        return list(reader.fieldnames or []), list(reader)


def packages_in(lines: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(order id, tracking number) of each package, in file order (a line per item)."""
    seen: list[tuple[str, str]] = []
    for line in lines:
        key = (line["order-id"], line["tracking-number"])
        if key not in seen:
            seen.append(key)
    return seen


def test_export_failed_for_amazon_downloads_the_listed_failed_amazon_orders(page, server):
    amazon = accounts_of(server.app)["amazon"]
    with server.app.app_context():
        tz = db.session.get(Company, 1).timezone
    as_user(page, "support")
    link = page.get_by_role("link", name="Export failed for Amazon")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert re.fullmatch(r"amazon-shipping-confirmation-acme-outfitters-\d{4}-\d{2}-\d{2}\.txt",
                        download.suggested_filename)
    header, lines = amazon_file(download)
    assert header == list(FULFILLMENT_FEED_COLUMNS)
    failed = json_items(page, BASE + "orders.json",
                        {"status": "failed", "account": amazon.id, "limit": 200})
    assert failed, "the seed has failed Amazon orders"
    assert packages_in(lines) == [(i["order_id"], i["tracking_number"]) for i in failed]
    assert all(line["carrier-code"] and line["quantity"].isdigit() for line in lines)

    # The link follows the grid's filters (the status filter aside: always the failed).
    today = dt.datetime.now(dt.UTC).astimezone(ZoneInfo(tz)).date()
    start, end = today - dt.timedelta(days=30), today - dt.timedelta(days=5)
    page.get_by_label("Pending", exact=True).check()
    page.get_by_label("From", exact=True).fill(start.isoformat())
    page.get_by_label("To", exact=True).fill(end.isoformat())
    with page.expect_response(lambda r: "date_to=" in r.url):
        page.get_by_role("button", name="Update").click()
    expect(link).to_have_attribute("href", re.compile(r"date_from=.*date_to="))
    with page.expect_download() as info:
        link.click()
    _, lines = amazon_file(info.value)
    in_range = json_items(page, BASE + "orders.json", {
        "status": "failed", "account": amazon.id, "date_from": start.isoformat(),
        "date_to": end.isoformat(), "limit": 200})
    assert in_range and len(in_range) < len(failed)
    assert packages_in(lines) == [(i["order_id"], i["tracking_number"]) for i in in_range]


# -- the shared page fixture itself -----------------------------------------------------------
@pytest.fixture
def bare_site(browser, make_app):
    """The host with no data: enough for a page under its Content-Security-Policy."""
    with serve(make_app()) as url:
        yield url


def test_the_watched_page_fails_on_a_csp_violation(browser, bare_site):
    with (pytest.raises(AssertionError, match="Content Security Policy"),
          watched_page(browser, bare_site) as page):
        page.goto("/login")
        with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
            page.evaluate("""() => {
                const inline = document.createElement("script");
                inline.textContent = "window.__inline = 1";
                document.head.append(inline);
            }""")
        assert page.evaluate("typeof window.__inline") == "undefined"  # blocked


def test_the_watched_page_fails_on_an_uncaught_error(browser, bare_site):
    with (pytest.raises(AssertionError, match="boom from the page"),
          watched_page(browser, bare_site) as page):
        page.goto("/login")
        with page.expect_event("pageerror"):
            page.evaluate("setTimeout(() => { throw new Error('boom from the page'); })")
