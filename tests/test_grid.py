"""The orders grid's sorts, keyset paging, filters and orders.json on both backends:
every sort both ways pages through every row once, in the order the export writes."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from shipgear_exchange_plugin.devhost.models import Company, db
from shipgear_exchange_plugin.models import StoreAccount, Writeback
from shipgear_exchange_plugin.orders import SORTS

URL = "/companies/1/ecommerce/orders.json"


def all_rows(app, company_id: int = 1) -> list[Writeback]:
    with app.app_context():
        rows = db.session.execute(sa.select(Writeback).where(
            Writeback.company_id == company_id)).scalars().all()
        db.session.expunge_all()
        return rows


def expected_order(rows: list[Writeback], sort: str) -> list[int]:
    """The grid's order, worked out in Python: blanks (never attempted) last whichever
    way, on every database."""
    key, descending = sort.lstrip("-"), sort.startswith("-")
    columns = [c.key for c in SORTS[key]]
    blank = [r for r in rows if any(getattr(r, name) is None for name in columns)]
    filled = [r for r in rows if r not in blank]

    def sort_key(row):
        return (*(getattr(row, name) for name in columns), row.id)

    return [r.id for r in [*sorted(filled, key=sort_key, reverse=descending),
                           *sorted(blank, key=lambda r: r.id, reverse=descending)]]


def page_through(client, params: dict, limit: int = 23) -> list[dict]:
    items, after = [], None
    for _ in range(1000):
        query = {**params, "limit": limit, **({"after": after} if after else {})}
        answer = client.get(URL, query_string=query)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        items += body["items"]
        after = body["next"]
        if after is None:
            return items
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("sort", ["last_attempt", "-last_attempt"])
def test_never_attempted_shipments_come_last_whichever_way_last_attempt_is_sorted(
        seeded, client_as, sort):
    """As blanks in a spreadsheet, and the same in the demo (SQLite) as in production."""
    items = page_through(client_as("viewer"), {"sort": sort}, limit=7)
    attempted = [item["last_attempt_at"] is not None for item in items]
    assert True in attempted and False in attempted
    assert attempted == sorted(attempted, reverse=True)  # every attempted one first
    times = [item["last_attempt_at"] for item in items if item["last_attempt_at"]]
    assert times == sorted(times, reverse=sort.startswith("-"))


@pytest.mark.parametrize("sort", [s for key in SORTS for s in (key, f"-{key}")])
def test_every_sort_pages_through_every_row_once_in_order(seeded, client_as, sort):
    client = client_as("viewer")
    items = page_through(client, {"sort": sort})
    ids = [item["id"] for item in items]
    assert ids == expected_order(all_rows(seeded), sort)
    assert len(set(ids)) == len(ids)


def test_the_export_equals_the_pages_in_the_same_order(seeded, client_as):
    client = client_as("viewer")
    params = {"sort": "-errors", "status": "failed,pending,submitted"}
    pages = page_through(client, params, limit=17)
    answer = client.get("/companies/1/ecommerce/orders/export.csv", query_string=params)
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [(r["order_id"], r["tracking_number"]) for r in rows] == [
        (i["order_id"], i["tracking_number"]) for i in pages]
    assert {i["status"] for i in pages} <= {"failed", "pending", "submitted"}


def test_filters_by_account_search_and_dates(seeded, client_as):
    client = client_as("viewer")
    rows = all_rows(seeded)
    with seeded.app_context():
        shopify = db.session.execute(sa.select(StoreAccount.id).where(
            StoreAccount.company_id == 1, StoreAccount.platform == "shopify")).scalar_one()
    items = page_through(client, {"account": shopify})
    assert {i["platform"] for i in items} == {"shopify"}
    assert len(items) == sum(1 for r in rows if r.account_id == shopify)
    target = rows[5]
    by_tracking = page_through(client, {"q": target.tracking_number[:8].lower()})
    assert target.id in [i["id"] for i in by_tracking]
    assert all(i["tracking_number"].upper().startswith(target.tracking_number[:8].upper())
               or i["order_id"].startswith(target.tracking_number[:8]) for i in by_tracking)
    by_order = page_through(client, {"q": target.order_id})
    assert target.id in [i["id"] for i in by_order]
    assert page_through(client, {"q": "100%_"}) == []  # wildcards are literal
    with seeded.app_context():  # the filter's days are the company's, not UTC's
        zone = ZoneInfo(db.session.get(Company, 1).timezone)
    day = target.ship_date.astimezone(zone).date()
    same_day = page_through(client, {"date_from": day.isoformat(), "date_to": day.isoformat()})
    assert target.id in [i["id"] for i in same_day]


@pytest.mark.parametrize(("params", "words"), [
    ({"sort": "colour"}, "Unknown sort 'colour'"),
    ({"sort": "--ship_date"}, "Unknown sort"),
    ({"status": "lost"}, "Status"),
    ({"date_from": "2026-13-40"}, "From"),
    ({"date_from": "2026-02-02", "date_to": "2026-01-01"}, "'To' is before 'From'"),
    ({"after": "not-a-cursor"}, "damaged"),
    ({"limit": "0"}, "1 to 500 rows"),
    ({"limit": "many"}, "Rows"),
    ({"q": "x" * 10_000}, "at most 100 characters"),
    ({"q": "abc\x00"}, "control characters"),
    ({"account": "abc"}, "whole numbers"),
])
def test_bad_input_is_a_400_with_a_message(seeded, client_as, params, words):
    client = client_as("viewer")
    answer = client.get(URL, query_string=params)
    assert answer.status_code == 400
    assert words in answer.get_json()["error"]
    page = client.get("/companies/1/ecommerce/", query_string=params)
    assert page.status_code == 400
    assert 'role="alert"' in page.get_data(as_text=True)


def test_another_companys_account_and_a_cursor_from_another_sort_are_refused(seeded, client_as):
    client = client_as("admin")
    with seeded.app_context():
        foreign = db.session.execute(sa.select(StoreAccount.id).where(
            StoreAccount.company_id == 2)).scalars().first()
    answer = client.get(URL, query_string={"account": foreign})
    assert answer.status_code == 400 and "Account" in answer.get_json()["error"]
    first = client.get(URL, query_string={"sort": "qty", "limit": 5}).get_json()
    other = client.get(URL, query_string={"sort": "errors", "after": first["next"]})
    assert other.status_code == 400 and "another sort" in other.get_json()["error"]
    tampered = first["next"][:-3] + ("AAA" if not first["next"].endswith("AAA") else "BBB")
    assert client.get(URL, query_string={"sort": "qty", "after": tampered}).status_code == 400
    ids = {i["id"] for i in page_through(client, {})}
    assert ids == {r.id for r in all_rows(seeded, 1)}  # never another company's row


def test_headings_sort_and_click_again_to_reverse(seeded, client_as):
    client = client_as("viewer")
    html = client.get("/companies/1/ecommerce/").get_data(as_text=True)
    assert 'aria-sort="descending"' in html and "Ship date<span" in html
    assert "sort=tracking" in html
    html = client.get("/companies/1/ecommerce/?sort=tracking").get_data(as_text=True)
    assert 'aria-sort="ascending"' in html and "sort=-tracking" in html
    assert "Next page" in html
    rows = all_rows(seeded)
    first_tracking = min(r.tracking_number for r in rows)
    assert html.index(first_tracking) < html.index("Next page")


def test_a_later_page_is_as_fresh_as_the_first(seeded, client_as):
    """Keyset paging: rows added after the first page do not shift the next one."""
    client = client_as("viewer")
    first = client.get(URL, query_string={"sort": "ship_date", "limit": 10}).get_json()
    with seeded.app_context():
        row = db.session.execute(sa.select(Writeback).limit(1)).scalar_one()
        row.ship_date = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # now sorts before page 1
        db.session.commit()
    second = client.get(URL, query_string={"sort": "ship_date", "limit": 10,
                                           "after": first["next"]}).get_json()
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}


def test_the_grid_says_which_time_zone_its_dates_and_times_are_in(seeded, client_as):
    """The grid and its date filters use the company's zone; the CSV writes UTC (…Z)."""
    html = client_as("viewer").get("/companies/1/ecommerce/").get_data(as_text=True)
    assert "Times in America/New_York" in html


def test_order_numbers_sort_as_numbers_both_ways(seeded, client_as):
    """Sorting by Order puts #999 before #1000 (and Amazon's 113-2... before 113-10...),
    as a person reading the ids expects, not character by character; shipments the host
    processes now are sorted so as well as the seeded ones."""
    from shipgear_exchange_plugin.devhost.shipments import process_shipment

    ids = ["#1000", "#999", "#100", "113-10-1", "113-2-1", "#0998"]
    host = seeded.extensions["exchange.host"]
    with seeded.app_context():
        account = db.session.execute(sa.select(StoreAccount).where(
            StoreAccount.company_id == 1, StoreAccount.platform == "shopify")).scalar_one()
        for order_id in ids:
            process_shipment(host, company_id=1, order_source=account.order_source,
                             order_id=order_id, carrier="UPS", service="Ground", packages=[{
                                 "tracking_number": f"1ZNAT{len(order_id)}{order_id[-2:]}",
                                 "items": [{"sku": "A", "order_item_id": "1", "quantity": 1}]}])
    client = client_as("viewer")
    for sort, expected in (("order", ["#100", "#0998", "#999", "#1000", "113-2-1", "113-10-1"]),
                           ("-order", ["113-10-1", "113-2-1", "#1000", "#999", "#0998", "#100"])):
        listed = [item["order_id"] for item in page_through(client, {"sort": sort}, limit=97)]
        assert [o for o in listed if o in ids] == expected, sort


@pytest.mark.parametrize("sort", ["-ship_date", "order", "last_attempt", "-last_attempt"])
def test_previous_page_goes_back_one_page_at_a_time_to_the_first(seeded, client_as, sort):
    """Next page four times, then Previous page: each click shows the page seen before
    it, with the same "Showing" line, and the last one is the first page itself (no
    cursor). The nullable sort crosses from the never-attempted rows back to the others."""
    import re
    from html import unescape

    def shown(html: str) -> tuple[list[str], str]:
        ids = re.findall(r'<tr[^>]*data-id="(\d+)"', html)
        showing = re.search(r"Showing[^<]*", html)
        return ids, showing.group(0) if showing else ""

    def link(html: str, key: str) -> str | None:
        found = re.search(rf'<a href="([^"]+)"[^>]*data-key="{key}"', html)
        return unescape(found.group(1)) if found else None

    client = client_as("viewer")
    url = f"/companies/1/ecommerce/?sort={sort}&limit=20"
    seen = []
    for _ in range(5):
        html = client.get(url).get_data(as_text=True)
        seen.append((url, shown(html)))
        url = link(html, "next")
    assert len({ids[0] for _, (ids, _) in seen}) == 5  # five different pages
    assert link(client.get(seen[0][0]).get_data(as_text=True), "previous") is None
    html = client.get(seen[-1][0]).get_data(as_text=True)
    for _, earlier in reversed(seen[:-1]):
        back = link(html, "previous")
        html = client.get(back).get_data(as_text=True)
        assert shown(html) == earlier
    assert "after=" not in back and "First page" not in html
