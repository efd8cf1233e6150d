"""Browser tests: Debian's Chromium, driven by Playwright, against the host over real HTTP.

Embedded backend only; CSRF stays on so the sign-in form is exercised for real.
``SHIPGEAR_UPDATE_SCREENSHOT=1`` refreshes ``docs/screenshot.png``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.jobs.status import probe
from shipgear_exchange_plugin.models import StoreAccount

from .browser_helpers import company_row, open_acme, serve, sign_in, watched_page

pytestmark = pytest.mark.browser
pytest_plugins = ["tests.browser_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = ["Amazon US", "Shopify store", "WooCommerce shop", "BigCommerce store"]
APIS = ["Products API", "Writeback API", "Orders API"]


@pytest.fixture
def backend() -> str:
    """Browser tests run on the embedded backend only."""
    return "embedded"


@pytest.fixture
def site_url(browser, make_app):
    """The seeded host served over HTTP on a free port; yields its base URL."""
    app = make_app()
    with app.app_context():
        seed(app, companies=3, shipments=300)
    with serve(app) as url:
        yield url


@pytest.fixture
def admin_page(page):
    """A tab signed in as admin, on My Companies."""
    sign_in(page, "admin", "demo")
    expect(page.get_by_role("heading", name="My Companies")).to_be_visible()
    return page


def test_login_then_my_companies_shows_the_plugin_button_where_enabled(page):
    page.goto("/login")
    expect(page.locator('input[name="csrf_token"]')).to_have_count(1)
    sign_in(page, "admin", "wrong")
    expect(page.get_by_role("status")).to_have_text("Wrong username or password.")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    sign_in(page, "admin", "demo")
    expect(page).to_have_url(re.compile(r"/companies/$"))
    expect(page.get_by_role("heading", name="My Companies")).to_be_visible()
    for name, buttons in [("Acme Outfitters", 1), ("Birch & Bramble Home", 1),
                          ("Cobalt Supply Co.", 0)]:
        row = company_row(page, name)
        expect(row).to_have_count(1)
        expect(row.get_by_role("link", name="View eCommerce")).to_have_count(buttons)
    expect(company_row(page, "Cobalt Supply Co.")).to_contain_text("No plugin actions")


def test_plugin_page_shows_status_panel_and_orders(admin_page):
    page = admin_page
    open_acme(page)
    expect(page.get_by_role("heading", name="Connection Status")).to_be_visible()
    accounts = page.locator(".sgx-status .sgx-account")
    expect(accounts).to_have_count(len(ACCOUNTS))
    for name in ACCOUNTS:
        account = accounts.filter(has_text=name)
        expect(account).to_have_count(1)
        expect(account.locator(".sgx-api-name")).to_have_text(APIS)
    expect(page.locator("#orders-region tbody tr.sgx-row").first).to_be_visible()
    assert page.locator("#orders-region tbody tr.sgx-row").count() > 1

    failed_row = page.locator(".sgx-row").filter(has=page.locator(".badge-wb-failed")).first
    tracking = failed_row.locator("td").nth(4).inner_text()
    failed_row.click()
    expect(page.locator("#shipment-region")).to_contain_text(tracking)


@pytest.fixture
def coloured_server(browser, make_app, sandbox):
    """The host with its store accounts on the sandbox, after health probes that left
    Acme's accounts in four colours: Amazon green, Shopify red (credentials refused),
    WooCommerce yellow (throttled), BigCommerce none (not probed yet)."""
    app = make_app(SHIPGEAR_SANDBOX_URL=sandbox.url)
    with app.app_context():
        seed(app, companies=3, shipments=300)
    for platform, faults in (("shopify", {"auth_refused": True}),
                             ("woocommerce", {"throttle": True})):
        requests.put(f"{sandbox.url}/_sandbox/{platform}/c1/faults", json=faults, timeout=5)

    def probe_company_1(platforms):
        with app.app_context():
            session = app.extensions["exchange.host"].db.session
            for account in session.query(StoreAccount).filter_by(company_id=1).all():
                if account.platform in platforms:
                    for _ in range(3):
                        probe(account.id)

    probe_company_1({"amazon", "shopify", "woocommerce"})
    with serve(app) as url:
        yield url, probe_company_1


def test_status_panel_shows_four_colours_and_refreshes_in_place(browser, coloured_server,
                                                                sandbox, tmp_path):
    base, probe_company_1 = coloured_server
    with watched_page(browser, base) as page:
        sign_in(page, "admin", "demo")
        open_acme(page)
        panel = page.locator("#status-region")
        for name, colour in (("Amazon US", "Green"), ("Shopify store", "Red"),
                             ("WooCommerce shop", "Yellow"), ("BigCommerce store", "None")):
            badges = panel.locator(".sgx-account").filter(has_text=name).locator(".badge")
            expect(badges).to_have_text([colour] * 3)
        expect(panel.locator(".sgx-account").filter(has_text="Shopify store")).to_contain_text(
            "The last 3 calls failed; last: HTTP 401.")
        # A failed order open beside the grid, as support sees it (and the screenshot).
        failed_row = page.locator(".sgx-row").filter(has=page.locator(".badge-wb-failed")).first
        tracking = failed_row.locator("td").nth(4).inner_text()
        failed_row.click()
        expect(page.locator("#shipment-region")).to_contain_text(tracking)
        expect(page.locator("#shipment-region")).to_contain_text("Attempts")
        if os.environ.get("SHIPGEAR_UPDATE_SCREENSHOT") == "1":
            target = ROOT / "docs" / "screenshot.png"
            target.parent.mkdir(exist_ok=True)
        else:
            target = tmp_path / "screenshot.png"
        page.screenshot(path=str(target), full_page=True)
        assert target.stat().st_size > 10_000

        page.evaluate("window.__marker = 1")
        requests.put(f"{sandbox.url}/_sandbox/bigcommerce/c1/faults", json={"outage": "down"},
                     timeout=5)
        probe_company_1({"bigcommerce"})
        with page.expect_response(lambda r: r.url.endswith("/ecommerce/status")):
            page.get_by_role("button", name="Update").click()
        big = panel.locator(".sgx-account").filter(has_text="BigCommerce store").locator(".badge")
        expect(big).to_have_text(["Red"] * 3)
        assert page.evaluate("window.__marker") == 1, "the status refresh reloaded the page"


def test_status_filter_refreshes_the_grid_with_htmx(admin_page):
    page = admin_page
    open_acme(page)
    page.evaluate("window.__marker = 1")
    page.get_by_label("Failed", exact=True).check()
    with page.expect_response(lambda r: "status=failed" in r.url) as response:
        page.get_by_role("button", name="Update").click()
    assert response.value.request.headers.get("hx-request") == "true"
    expect(page).to_have_url(re.compile(r"[?&]status=failed(&|$)"))
    badges = page.locator("#orders-region tbody .badge")
    expect(badges.filter(has_not_text="Failed")).to_have_count(0)
    texts = badges.all_inner_texts()
    assert texts and set(texts) == {"Failed"}
    assert page.evaluate("window.__marker") == 1, "the filter reloaded the whole page"
    expect(page.get_by_role("link", name="Export", exact=True)).to_have_attribute(
        "href", re.compile(r"export\.csv\?.*status=failed"))


def test_an_invalid_filter_shows_its_message_next_to_the_filters(admin_page):
    page = admin_page
    open_acme(page)
    page.get_by_label("From", exact=True).fill("2026-02-02")
    page.get_by_label("To", exact=True).fill("2026-01-01")
    page.get_by_role("button", name="Update").click()
    expect(page.locator("#orders-region").get_by_role("alert")).to_contain_text(
        "'To' is before 'From'.")


def test_clicking_a_row_shows_the_shipment_and_exit_returns(admin_page):
    page = admin_page
    open_acme(page)
    row = page.locator(".sgx-row").nth(2)
    cells = row.locator("td")
    tracking, errors = cells.nth(4).inner_text(), cells.nth(7).inner_text()
    row.click()
    shipment = page.locator("#shipment-region")
    expect(shipment.get_by_role("heading", name="Shipment Information")).to_be_visible()
    expect(shipment.locator(".sgx-copy")).to_have_text(tracking)
    expect(shipment).to_contain_text(f"{errors} of 5")
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    assert page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"), "page wider than window"

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    shipment.locator(".sgx-copy").click()
    expect(shipment.locator(".sgx-copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == tracking

    expect(page).to_have_url(re.compile(r"[?&]selected=\d+"))
    page.reload()
    expect(page.locator("#shipment-region .sgx-copy")).to_have_text(tracking)

    page.get_by_role("link", name="Exit").click()
    expect(page).to_have_url(re.compile(r"/companies/$"))
    expect(page.get_by_role("heading", name="My Companies")).to_be_visible()


def test_htmx_is_loaded_exactly_once(admin_page):
    page = admin_page
    open_acme(page)
    assert page.locator('script[src*="htmx"]').count() == 1
    assert page.evaluate("typeof window.htmx") == "object"
