"""Browser tests of the orders grid (issue 7): filters, sorting, keyboard, copy, export,
paging with the browser's history, bulk Retry selected, the at-risk badge, packages and
Exit. Debian's Chromium driven by Playwright over real HTTP; embedded backend only.

Every test fails on an uncaught JavaScript error or a Content-Security-Policy violation.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from shipgear_exchange_plugin import atrisk
from shipgear_exchange_plugin.devhost.models import Company, db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.models import StoreAccount, Writeback

from .browser_helpers import as_user, serve, watched_page

pytestmark = pytest.mark.browser
pytest_plugins = ["tests.browser_fixtures"]

BASE = "/companies/1/ecommerce/"
JSON_URL = BASE + "orders.json"


@pytest.fixture
def backend() -> str:
    """Browser tests run on the embedded backend only."""
    return "embedded"


@pytest.fixture
def server(browser, make_app):
    """The seeded host over HTTP; ``.url`` and ``.app``. The at-risk template filter is
    registered here when the plugin does not register it (yet)."""
    app = make_app()
    if "sgx_at_risk" not in app.jinja_env.filters:
        app.add_template_filter(atrisk.label, "sgx_at_risk")
    with app.app_context():
        seed(app, companies=3, shipments=300)
    with serve(app) as url:
        yield SimpleNamespace(url=url, app=app)


@pytest.fixture
def site_url(server) -> str:
    """Where the shared ``page`` fixture opens its tab."""
    return server.url


def grid_ids(page) -> list[int]:
    return [int(i) for i in page.locator("#orders-region tbody tr.sgx-row").evaluate_all(
        "rows => rows.map(r => r.dataset.id)")]


def json_pages(page, params: dict, limit: int = 50, pages: int | None = None) -> list[dict]:
    """orders.json through the browser's own session, page after page."""
    items, after, done = [], None, 0
    while True:
        query = {**params, "limit": limit, **({"after": after} if after else {})}
        answer = page.request.get(JSON_URL, params=query)
        assert answer.ok, answer.text()
        body = answer.json()
        items += body["items"]
        after, done = body["next"], done + 1
        if after is None or (pages is not None and done >= pages):
            return items


def query_of(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def company_today(app) -> dt.date:
    with app.app_context():
        tz = db.session.get(Company, 1).timezone
    return dt.datetime.now(dt.UTC).astimezone(ZoneInfo(tz)).date()


def test_filter_by_failed_and_a_date_range_with_update(page, server):
    as_user(page, "viewer")
    today = company_today(server.app)
    start, end = today - dt.timedelta(days=20), today - dt.timedelta(days=3)
    page.evaluate("window.__marker = 1")
    page.get_by_label("Failed", exact=True).check()
    page.get_by_label("From", exact=True).fill(start.isoformat())
    page.get_by_label("To", exact=True).fill(end.isoformat())
    with page.expect_response(lambda r: "date_to=" in r.url and "/orders" not in r.url):
        page.get_by_role("button", name="Update").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    query = query_of(page)
    assert query["date_from"] == [start.isoformat()] and query["date_to"] == [end.isoformat()]
    assert page.evaluate("window.__marker") == 1, "Update reloaded the whole page"

    expected = json_pages(page, {"status": "failed", "date_from": start.isoformat(),
                                 "date_to": end.isoformat()}, pages=1)
    assert expected, "the seed has failed orders in the range"
    assert grid_ids(page) == [item["id"] for item in expected]
    assert set(page.locator("#orders-region tbody .badge").all_inner_texts()) == {"Failed"}
    for shown in page.locator("#orders-region tbody tr.sgx-row td:nth-child(3)").all_inner_texts():
        assert start.isoformat() <= shown[:10] <= end.isoformat(), shown
    # Reload keeps the filtered view (bookmarkable), with the boxes still set.
    page.reload()
    expect(page.get_by_label("Failed", exact=True)).to_be_checked()
    assert grid_ids(page) == [item["id"] for item in expected]


def test_a_heading_sorts_ascending_then_descending(page):
    as_user(page, "viewer")
    heading = page.locator("#orders-region thead th").filter(has_text="Tracking")
    expect(heading).not_to_have_attribute("aria-sort", re.compile("."))
    for sort, direction, mark in (("tracking", "ascending", "▲"),
                                  ("-tracking", "descending", "▼")):
        with page.expect_response(lambda r, s=sort: f"sort={s}" in r.url):
            if direction == "ascending":
                heading.get_by_role("link").click()
            else:  # the keyboard works too, and keeps the focus on the heading
                heading.get_by_role("link").focus()
                page.keyboard.press("Enter")
        expect(heading).to_have_attribute("aria-sort", direction)
        expect(heading.locator(".sgx-sort-mark")).to_have_text(f" {mark}")
        expect(page).to_have_url(re.compile(rf"sort={re.escape(sort)}(&|$)"))
        expected = [item["id"] for item in json_pages(page, {"sort": sort}, pages=1)]
        assert grid_ids(page) == expected
        shown = page.locator("#orders-region tbody td.mono").all_inner_texts()
        assert shown == sorted(shown, reverse=direction == "descending")
    expect(heading.get_by_role("link")).to_be_focused()
    # Only one column says how the grid is sorted.
    expect(page.locator("#orders-region thead th[aria-sort]")).to_have_count(1)


def test_keyboard_opens_a_row_and_copy_says_copied(page):
    as_user(page, "viewer")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    expect(page.locator(".sgx-pick")).to_have_count(0)  # viewers cannot act: no selection
    expect(page.get_by_role("button", name="Retry selected")).to_have_count(0)
    page.locator("#orders-region thead").get_by_role("link", name="Last attempt").focus()
    page.keyboard.press("Tab")
    first = page.locator("#orders-region tbody tr.sgx-row").first
    expect(first).to_be_focused()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("ArrowDown")
    second = page.locator("#orders-region tbody tr.sgx-row").nth(1)
    expect(second).to_be_focused()
    tracking = second.locator("td").nth(4).inner_text()
    page.keyboard.press("Enter")
    shipment = page.locator("#shipment-region")
    expect(shipment.locator(".sgx-copy")).to_have_text(tracking)
    expect(page).to_have_url(re.compile(rf"selected={second.get_attribute('data-id')}"))
    expect(second).to_have_attribute("aria-current", "true")

    copy = shipment.get_by_role("button", name=f"Copy tracking number {tracking}")
    copy.focus()
    page.keyboard.press("Enter")
    note = shipment.locator(".sgx-copied")
    expect(note).to_have_text("Copied")
    expect(note).to_be_visible()
    expect(note).to_have_attribute("role", "status")
    assert page.evaluate("navigator.clipboard.readText()") == tracking


def test_export_equals_the_grid_and_orders_json(page):
    as_user(page, "viewer")
    page.get_by_label("Failed", exact=True).check()
    page.get_by_label("Success", exact=True).check()
    with page.expect_response(lambda r: "status=success" in r.url):
        page.get_by_role("button", name="Update").click()
    heading = page.locator("#orders-region thead th").filter(has_text="Carrier/Service")
    with page.expect_response(lambda r: "sort=carrier" in r.url):
        heading.get_by_role("link").click()
    expect(heading).to_have_attribute("aria-sort", "ascending")
    with page.expect_download() as info:
        page.get_by_role("link", name="Export", exact=True).click()
    download = info.value
    assert re.fullmatch(r"ecommerce-orders-acme-outfitters-\d{4}-\d{2}-\d{2}\.csv",
                        download.suggested_filename)
    with open(download.path(), encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    items = json_pages(page, {"status": "failed,success", "sort": "carrier"}, limit=40)
    assert len(rows) == len(items) > 50
    assert [(r["order_id"], r["tracking_number"]) for r in rows] == [
        (i["order_id"], i["tracking_number"]) for i in items]
    assert {r["status"] for r in rows} == {"failed", "success"}
    grid = page.locator("#orders-region tbody tr.sgx-row")
    shown = [(cells[0].strip(), cells[4].strip()) for cells in grid.evaluate_all(
        "rows => rows.map(r => Array.from(r.cells, c => c.innerText))")]
    assert shown == [(r["order_id"], r["tracking_number"]) for r in rows[:len(shown)]]


def test_next_page_then_back_restores_the_previous_page(page):
    as_user(page, "viewer")
    first_page = grid_ids(page)
    assert len(first_page) == 50
    page.evaluate("window.__marker = 1")
    with page.expect_response(lambda r: "after=" in r.url):
        page.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(re.compile(r"after="))
    expect(page.get_by_role("link", name="First page")).to_be_visible()
    second_page = grid_ids(page)
    assert second_page and not set(first_page) & set(second_page)
    expected = json_pages(page, {}, pages=2)
    assert second_page == [item["id"] for item in expected[50:100]]

    page.go_back()
    expect(page).not_to_have_url(re.compile(r"after="))
    expect(page.get_by_role("link", name="First page")).to_have_count(0)
    assert grid_ids(page) == first_page
    page.go_forward()
    expect(page).to_have_url(re.compile(r"after="))
    expect(page.locator("#orders-region tbody tr.sgx-row").first).to_have_attribute(
        "data-id", str(second_page[0]))
    assert page.evaluate("window.__marker") == 1, "paging reloaded the whole page"
    # The page's own Previous page link does what Back did, in place.
    page.get_by_role("link", name="Previous page").click()
    expect(page.get_by_role("link", name="Previous page")).to_have_count(0)
    assert grid_ids(page) == first_page
    assert page.evaluate("window.__marker") == 1

    page.get_by_role("link", name="Exit").click()
    expect(page).to_have_url(re.compile(r"/companies/$"))
    expect(page.get_by_role("heading", name="My Companies")).to_be_visible()


def _statuses(app, ids: list[int]) -> dict[int, str]:
    with app.app_context():
        return dict(db.session.execute(sa.select(Writeback.id, Writeback.status).where(
            Writeback.id.in_(ids))).all())


def test_support_selects_rows_and_retries_them(page, server):
    as_user(page, "support")
    with page.expect_response(lambda r: "status=pending" in r.url):
        page.goto(BASE + "?status=failed&status=pending")
    page.evaluate("window.__marker = 1")
    failed = page.locator("#orders-region tr.sgx-row").filter(
        has=page.locator(".badge-wb-failed"))
    assert failed.count() >= 3
    picks = [failed.nth(n) for n in range(3)]
    ids = [int(row.get_attribute("data-id")) for row in picks]
    retry = page.get_by_role("button", name="Retry selected")
    expect(retry).to_be_disabled()
    for row in picks:
        row.get_by_role("checkbox").check()
    expect(page.locator("#sgx-selection")).to_have_text("3 selected on this page.")
    expect(page.get_by_label("Select all orders on this page")).to_have_js_property(
        "indeterminate", True)
    # Ticking a box does not open the row.
    expect(page.locator("#shipment-region")).to_contain_text("Select an order in the grid")
    assert "selected=" not in page.url
    expect(retry).to_be_enabled()
    # Several orders at once are retried only once the user says yes.
    messages: list[str] = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.dismiss()))
    retry.click()
    expect(page.locator("#sgx-bulk-status")).to_have_text("Nothing was retried.")
    assert messages and messages[0].startswith("Retry 3 orders now?")
    assert set(_statuses(server.app, ids).values()) == {"failed"}
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response(lambda r: r.url.endswith("/orders/retry")) as answer:
        retry.click()
    assert answer.value.request.headers.get("x-csrftoken")
    status = page.get_by_role("status").filter(has_text="queued for retry")
    expect(status).to_have_text("3 of 3 selected orders queued for retry.")
    for writeback_id in ids:
        row = page.locator(f'#orders-region tr.sgx-row[data-id="{writeback_id}"]')
        expect(row.locator(".badge")).to_have_text("Pending")
    assert set(_statuses(server.app, ids).values()) == {"pending"}
    expect(page.locator("#sgx-selection")).to_have_text("No orders selected")

    # Retry now in the shipment panel updates the grid's row as well.
    other = failed.first
    other_id = other.get_attribute("data-id")
    assert int(other_id) not in ids
    other.locator("td").nth(3).click()
    panel = page.locator("#shipment-region")
    expect(panel.locator(".badge-wb-failed")).to_have_count(1)
    panel.get_by_role("button", name="Retry now").click()
    expect(panel).to_contain_text("Retry queued")
    expect(page.locator(f'#orders-region tr.sgx-row[data-id="{other_id}"] .badge')).to_have_text(
        "Pending")
    assert page.evaluate("window.__marker") == 1, "an action reloaded the whole page"


def test_support_selects_all_matching_and_retries_them(page, server):
    as_user(page, "support")
    with server.app.app_context():
        failed_ids = db.session.execute(sa.select(Writeback.id).where(
            Writeback.company_id == 1, Writeback.status == "failed")).scalars().all()
    assert len(failed_ids) > 10
    page.goto(BASE + "?status=failed&limit=10")
    page.get_by_label("Select all orders on this page").check()
    expect(page.locator("#sgx-selection")).to_have_text("10 selected on this page.")
    expect(page.locator("#orders-region .sgx-pick:checked")).to_have_count(10)
    select_all = page.get_by_role("button", name=f"Select all {len(failed_ids)} matching orders")
    # Past the endpoint's cap (1,000; lowered here) the first ones are taken, and it says so.
    page.locator("#sgx-bulk").evaluate("form => form.setAttribute('data-bulk-max', '7')")
    select_all.click()
    expect(page.locator("#sgx-selection")).to_have_text(
        f"The first 7 of {len(failed_ids)} matching orders selected "
        "(Retry selected takes at most 7 at a time).")
    # Clear selection undoes it all, and the link to select every match comes back.
    clear = page.get_by_role("button", name="Clear selection")
    expect(select_all).to_be_hidden()
    clear.click()
    expect(page.locator("#sgx-selection")).to_have_text("No orders selected")
    expect(page.locator("#orders-region .sgx-pick:checked")).to_have_count(0)
    expect(clear).to_be_hidden()
    page.locator("#sgx-bulk").evaluate("form => form.setAttribute('data-bulk-max', '1000')")
    select_all.click()
    expect(page.locator("#sgx-selection")).to_have_text(
        f"All {len(failed_ids)} matching orders selected.")
    messages: list[str] = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Retry selected").click()
    expect(page.locator("#sgx-bulk-status")).to_have_text(
        f"{len(failed_ids)} of {len(failed_ids)} selected orders queued for retry.")
    assert messages == [f"Retry {len(failed_ids)} orders now? Each runs its next attempt at "
                        "once; failed ones start a new round of up to 5 attempts."]
    expect(page.locator("#orders-region")).to_contain_text("No shipped orders match")
    assert set(_statuses(server.app, failed_ids).values()) == {"pending"}


def _amazon_rows(app, where) -> list[Writeback]:
    with app.app_context():
        rows = db.session.execute(sa.select(Writeback).join(StoreAccount).where(
            Writeback.company_id == 1, StoreAccount.platform == "amazon", *where)
            .order_by(Writeback.ship_date)).scalars().all()
        db.session.expunge_all()
        return rows


def test_at_risk_badge_in_the_grid_and_the_panel(page, server):
    now = dt.datetime.now(dt.UTC)
    old_failed = _amazon_rows(server.app, [Writeback.status == "failed"])[0]
    with server.app.app_context():
        tz = db.session.get(Company, 1).timezone
    risk = atrisk.assess(old_failed, now, 5, tz)
    assert risk is not None, "the seed's oldest failed Amazon row is past 5 business days"
    as_user(page, "viewer")
    page.goto(BASE + f"?q={old_failed.order_id}&selected={old_failed.id}")
    row = page.locator(f'#orders-region tr.sgx-row[data-id="{old_failed.id}"]')
    expect(row.locator(".sgx-risk")).to_have_text("At risk")
    expect(row.locator(".sgx-risk")).to_have_attribute("title", risk.message)
    panel = page.locator("#shipment-region")
    expect(panel.locator(".sgx-risk")).to_have_text("At risk")
    expect(panel).to_contain_text(
        "Amazon may cancel unconfirmed orders after about 7 business days; "
        f"shipped {risk.business_days} business days ago.")

    confirmed = _amazon_rows(server.app, [Writeback.status == "success"])[0]
    page.goto(BASE + f"?q={confirmed.order_id}&selected={confirmed.id}")
    expect(page.locator(f'#orders-region tr.sgx-row[data-id="{confirmed.id}"]')).to_be_visible()
    expect(page.locator(".sgx-risk")).to_have_count(0)


def test_a_multi_package_order_shows_each_package_and_words_for_outcomes(page, server):
    with server.app.app_context():
        order = db.session.execute(
            sa.select(Writeback.account_id, Writeback.order_id).where(Writeback.company_id == 1)
            .group_by(Writeback.account_id, Writeback.order_id)
            .having(sa.func.count() > 1).limit(1)).first()
        assert order is not None, "the seed makes some two-package orders"
        packages = db.session.execute(sa.select(Writeback).where(
            Writeback.company_id == 1, Writeback.account_id == order.account_id,
            Writeback.order_id == order.order_id).order_by(Writeback.package_key)
        ).scalars().all()
        db.session.expunge_all()
    first, second = packages[0], packages[1]
    as_user(page, "viewer")
    page.goto(BASE + f"?q={order.order_id}&selected={first.id}")
    panel = page.locator("#shipment-region")
    expect(panel.get_by_role("heading", name="Packages of this order (2)")).to_be_visible()
    table = panel.locator("table.sgx-packages")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tr[aria-current]")).to_contain_text(first.tracking_number)
    expect(table.locator("tbody tr").nth(1)).to_contain_text(second.tracking_number)
    with page.expect_response(lambda r: f"/orders/{second.id}" in r.url):
        table.get_by_role("link", name="Package 2 of 2").click()
    expect(panel.locator(".sgx-copy")).to_have_text(second.tracking_number)
    expect(page).to_have_url(re.compile(rf"selected={second.id}(&|$)"))
    assert query_of(page)["q"] == [order.order_id], "the grid's filters are kept"
    expect(page.locator(f'#orders-region tr.sgx-row[data-id="{second.id}"]')).to_have_class(
        re.compile(r"\bselected\b"))

    # The attempt timeline says outcomes in words.
    with server.app.app_context():
        retried = db.session.execute(sa.select(Writeback).where(
            Writeback.company_id == 1, Writeback.status == "failed")).scalars().first()
        db.session.expunge_all()
    page.goto(BASE + f"?selected={retried.id}")
    outcomes = panel.locator("table.sgx-attempts tbody td:nth-child(3)").all_inner_texts()
    assert outcomes and set(outcomes) == {"Retryable error"}
    expect(panel).not_to_contain_text("retryable_error")


def test_back_from_another_page_shows_the_whole_page_not_the_bare_grid(page):
    """Filter (the grid alone comes back for that URL), leave, press Back: the browser
    must not show the grid fragment it fetched for that URL as the page."""
    as_user(page, "viewer")
    page.get_by_label("Failed", exact=True).check()
    with page.expect_response(lambda r: "status=failed" in r.url):
        page.get_by_role("button", name="Update").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    page.get_by_role("link", name="Exit").click()
    expect(page.get_by_role("heading", name="My Companies")).to_be_visible()
    page.go_back()
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page.locator("#status-region")).to_be_visible()
    expect(page.get_by_role("button", name="Update")).to_be_visible()
    expect(page.get_by_label("Failed", exact=True)).to_be_checked()


def test_update_keeps_the_column_sort_and_back_keeps_the_filters_in_step(page):
    as_user(page, "viewer")
    qty = page.locator("#orders-region thead th").filter(has_text="Qty").get_by_role("link")
    with page.expect_response(lambda r: "sort=qty" in r.url):
        qty.click()
    page.get_by_label("Failed", exact=True).check()
    with page.expect_response(lambda r: "status=failed" in r.url):
        page.get_by_role("button", name="Update").click()
    expect(page).to_have_url(re.compile(r"status=failed.*sort=qty(&|$)"))
    expect(page.locator("#orders-region thead th[aria-sort]")).to_have_text(re.compile("Qty"))
    expected = json_pages(page, {"status": "failed", "sort": "qty"}, pages=1)
    assert grid_ids(page) == [item["id"] for item in expected]

    # Another sort, then Back: the failed-only grid comes back with its box still ticked,
    # so the next Update keeps showing failed orders.
    with page.expect_response(lambda r: "sort=-qty" in r.url):
        page.locator("#orders-region thead th").filter(has_text="Qty").get_by_role(
            "link").click()
    page.go_back()
    expect(page).to_have_url(re.compile(r"sort=qty(&|$)"))
    expect(page.get_by_label("Failed", exact=True)).to_be_checked()
    with page.expect_response(lambda r: "status=failed" in r.url):
        page.get_by_role("button", name="Update").click()
    assert set(page.locator("#orders-region tbody .badge").all_inner_texts()) == {"Failed"}


def test_opening_a_row_below_the_fold_scrolls_its_shipment_into_view(page):
    """On a laptop-sized window the shipment panel sits under the grid."""
    page.set_viewport_size({"width": 1280, "height": 700})
    as_user(page, "viewer")
    panel = page.locator("#shipment-region")
    assert panel.bounding_box()["y"] > 700, "the panel starts below the window"
    row = page.locator("#orders-region tbody tr.sgx-row").first
    row.click()
    expect(panel.get_by_text(row.locator("td.mono").inner_text())).to_be_visible()
    expect(panel).to_be_in_viewport()


def test_a_later_page_and_filters_in_error_say_what_is_listed(page):
    as_user(page, "viewer")
    expect(page.locator("#sgx-count")).to_contain_text("Showing the first 50 of")
    with page.expect_response(lambda r: "after=" in r.url):
        page.get_by_role("link", name="Next page").click()
    expect(page.locator("#sgx-count")).to_have_text(re.compile(r"^Showing 51–\d+ of \d+"))
    page.get_by_label("From", exact=True).fill("2026-11-20")
    page.get_by_label("To", exact=True).fill("2026-11-10")
    page.get_by_role("button", name="Update").click()
    expect(page.get_by_role("alert")).to_contain_text("before")
    expect(page.get_by_role("button", name="Export")).to_be_disabled()
    expect(page.locator("#sgx-export")).to_have_count(0)


def test_every_column_fits_on_a_laptop_screen(page):
    """At 1280 px the grid beside the status panel shows all its columns: none hidden
    behind a sideways scroll."""
    page.set_viewport_size({"width": 1280, "height": 800})
    as_user(page, "support")
    expect(page.locator("#orders-region tbody tr.sgx-row").first).to_be_visible()
    overflow = page.locator(".sgx-grid-scroll").evaluate("s => s.scrollWidth - s.clientWidth")
    assert overflow <= 1, f"the grid is {overflow}px wider than its box"
    last = page.get_by_role("columnheader", name="Last attempt")
    assert last.bounding_box()["x"] + last.bounding_box()["width"] <= 1280
    # And an order id, Amazon's 19 characters too, takes at most two lines (it took
    # three): rows stay short enough to see several at once.
    ids = page.locator("#orders-region .sgx-order-cell span")
    heights = ids.evaluate_all("spans => spans.map(s => s.getBoundingClientRect().height)")
    assert any(len(text) >= 19 for text in ids.all_inner_texts())
    assert max(heights) < 2.5 * min(heights), heights


def _set_status(app, writeback_id: int, status: str) -> None:
    """What a worker's write-back does to the row, as far as the page can see."""
    with app.app_context():
        db.session.execute(sa.update(Writeback).where(Writeback.id == writeback_id).values(
            status=status, last_attempt_at=dt.datetime.now(dt.UTC)))
        db.session.commit()


def test_the_grid_and_an_open_shipment_follow_write_backs_without_a_reload(browser, make_app):
    """Write-backs move while support watches: the grid and an open shipment that is not
    final reload in place, but never under a user who has rows ticked."""
    app = make_app(SHIPGEAR_PAGE_REFRESH=1)
    with app.app_context():
        seed(app, companies=3, shipments=300)
    with serve(app) as url, watched_page(browser, url) as page:
        as_user(page, "support")
        page.evaluate("window.__marker = 1")
        # Nothing new: the grid is asked again but not swapped (focus and reading undisturbed).
        page.evaluate("document.getElementById('orders-region').__same = 1")
        with page.expect_response(lambda r: r.request.headers.get("x-sgx-live") is not None):
            pass
        page.wait_for_timeout(500)
        assert page.evaluate("document.getElementById('orders-region').__same") == 1
        pending = page.locator("#orders-region tr.sgx-row").filter(
            has=page.locator(".badge-wb-pending"))
        first, second, third = (pending.nth(n).get_attribute("data-id") for n in range(3))
        row = page.locator(f'#orders-region tr.sgx-row[data-id="{first}"]')
        row.locator("td").nth(3).click()
        panel = page.locator("#shipment-region")
        expect(panel.locator(".badge")).to_have_text("Pending")

        _set_status(app, int(first), "success")
        expect(panel.locator(".badge")).to_have_text("Success", timeout=10_000)
        expect(row.locator(".badge")).to_have_text("Success", timeout=10_000)
        expect(row).to_have_class(re.compile(r"\bselected\b"))  # still the open one

        # Rows ticked: the grid waits, so the selection is not lost under the user.
        box = page.locator(f'#orders-region tr.sgx-row[data-id="{second}"]').get_by_role(
            "checkbox")
        box.check()
        _set_status(app, int(third), "failed")
        page.wait_for_timeout(5000)  # beyond the quiet time after a click (3 s)
        third_badge = page.locator(f'#orders-region tr.sgx-row[data-id="{third}"] .badge')
        expect(third_badge).to_have_text("Pending")
        expect(box).to_be_checked()
        box.uncheck()
        expect(third_badge).to_have_text("Failed", timeout=10_000)
        assert page.evaluate("window.__marker") == 1, "the page reloaded as a whole"
