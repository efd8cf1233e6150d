"""Browser tests: Debian's Chromium, driven by Playwright, against the host over real HTTP.

Embedded backend only; CSRF stays on so the sign-in form is exercised for real.
``SHIPGEAR_UPDATE_SCREENSHOT=1`` refreshes ``docs/screenshot.png``.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.jobs.status import probe
from shipgear_exchange_plugin.models import StoreAccount

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent
VIEWPORT = {"width": 1440, "height": 900}
ACCOUNTS = ["Amazon US", "Shopify store", "WooCommerce shop", "BigCommerce store"]
APIS = ["Products API", "Writeback API", "Orders API"]


def require_chromium(path: str = CHROMIUM, in_ci: bool = IN_CI) -> None:
    """Fail under CI, else skip, when the browser is not installed."""
    if Path(path).is_file():
        return
    message = f"Chromium not found at {path}"
    if in_ci:
        pytest.fail(f"{message}; CI=true requires the browser tests to run.", pytrace=False)
    pytest.skip(f"{message}; install it with `apt-get install -y chromium`.")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module."""
    require_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def backend() -> str:
    """Browser tests run on the embedded backend only."""
    return "embedded"


@pytest.fixture
def live_server(browser, make_app):
    """The seeded host served over HTTP on a free port; yields its base URL."""
    app = make_app()
    with app.app_context():
        seed(app, companies=3, shipments=300)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def page(browser, live_server):
    """A fresh, signed-out browser tab on the live server; uncaught JS errors fail it."""
    context = browser.new_context(base_url=live_server, viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    page = context.new_page()
    js_errors: list[str] = []
    page.on("pageerror", lambda error: js_errors.append(str(error)))
    page.on("console", lambda message: js_errors.append(message.text)
            if "Content Security Policy" in message.text else None)
    yield page
    context.close()
    assert not js_errors, f"uncaught JavaScript errors or CSP violations: {js_errors}"


def sign_in(page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def admin_page(page):
    """A tab signed in as admin, on My Companies."""
    sign_in(page, "admin", "demo")
    expect(page.get_by_role("heading", name="My Companies")).to_be_visible()
    return page


def company_row(page, name: str):
    return page.locator("tbody tr").filter(
        has=page.get_by_role("cell", name=name, exact=True))


def open_acme(page) -> None:
    company_row(page, "Acme Outfitters").get_by_role("link", name="View eCommerce").click()
    expect(page.get_by_role("heading", name="View eCommerce")).to_be_visible()


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
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", probe_company_1
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def test_status_panel_shows_four_colours_and_refreshes_in_place(browser, coloured_server,
                                                                sandbox, tmp_path):
    base, probe_company_1 = coloured_server
    context = browser.new_context(base_url=base, viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    page = context.new_page()
    sign_in(page, "admin", "demo")
    open_acme(page)
    panel = page.locator("#status-region")
    for name, colour in (("Amazon US", "Green"), ("Shopify store", "Red"),
                         ("WooCommerce shop", "Yellow"), ("BigCommerce store", "None")):
        badges = panel.locator(".sgx-account").filter(has_text=name).locator(".badge")
        expect(badges).to_have_text([colour] * 3)
    expect(panel.locator(".sgx-account").filter(has_text="Shopify store")).to_contain_text(
        "The last 3 calls failed; last: HTTP 401.")
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
    context.close()


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
