"""The grid's downloads on both backends: ``orders/export.csv`` lists exactly what paging
through ``orders.json`` lists, in the same order, with formula cells neutralised, UTF-8,
a dated file name and nothing of another company; ``orders/export-amazon.txt`` is the
failed Amazon packages in Seller Central's shipping-confirmation layout (B9).

On PostgreSQL the CSV comes from COPY; the tests also run the csv-module path against
the same PostgreSQL data and require the very same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from shipgear_exchange_plugin import export, orders
from shipgear_exchange_plugin.devhost.models import Company, db
from shipgear_exchange_plugin.models import StoreAccount, Writeback

from .test_grid import page_through as grid_pages

BASE = "/companies/{company}/ecommerce"
JSON_URL = BASE.format(company=1) + "/orders.json"
CSV_URL = BASE.format(company=1) + "/orders/export.csv"
AMAZON_URL = BASE.format(company=1) + "/orders/export-amazon.txt"
HEADER = ["order_id", "account", "platform", "ship_date", "carrier", "service",
          "tracking_number", "shipped_quantity", "status", "error_count", "last_attempt_at",
          "last_error"]
AMAZON_HEADER = "order-id\torder-item-id\tquantity\tship-date\tcarrier-code\tcarrier-name\t" \
                "tracking-number\tship-method"
#: (tracking number, last error) pairs that a spreadsheet would run as formulas.
INJECTIONS = [
    ("=1+1", "=HYPERLINK(\"http://evil.example\",\"x\")"),
    ("+41 22 000", "+cmd|' /C calc'!A0"),
    ("-2+3", "-1+1"),
    ("@SUM(A1)", "@SUM(1,2)"),
    ("\tTAB123", "\tstarts with a tab"),
    ("\rCR123", "\rstarts with a carriage return"),
]


# -- helpers -----------------------------------------------------------------------------
def page_through(client, params: dict, limit: int = 37) -> list[dict]:
    return grid_pages(client, params, limit)


def neutralised(text: str) -> str:
    """The rule the file must follow, written independently of the code under test."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def utc_second(value: str | None) -> str:
    if not value:
        return ""
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expected_csv_row(item: dict) -> list[str]:
    """What the CSV must hold for one orders.json item."""
    cells = [item["order_id"], item["account"], item["platform"],
             utc_second(item["ship_date"]), item["carrier"], item["service"],
             item["tracking_number"], str(item["shipped_quantity"]), item["status"],
             str(item["error_count"]), utc_second(item["last_attempt_at"]),
             item["last_error"] or ""]
    return [neutralised(c) for c in cells]


def read_csv(answer) -> list[list[str]]:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return list(csv.reader(io.StringIO(answer.get_data().decode("utf-8"), newline="")))


def company_today(app, company_id: int = 1) -> dt.date:
    with app.app_context():
        timezone = db.session.get(Company, company_id).timezone
    return dt.datetime.now(ZoneInfo(timezone)).date()


def export_params(app) -> list[dict]:
    """Sorts and filters: every sort appears, and each filter at least once."""
    today = company_today(app)
    with app.app_context():
        shopify = db.session.execute(sa.select(StoreAccount.id).where(
            StoreAccount.company_id == 1, StoreAccount.platform == "shopify")).scalar_one()
        prefix = db.session.execute(sa.select(Writeback.tracking_number).where(
            Writeback.company_id == 1).order_by(Writeback.id).limit(1)).scalar_one()[:3]
    window = {"date_from": (today - dt.timedelta(days=20)).isoformat(),
              "date_to": (today - dt.timedelta(days=4)).isoformat()}
    return [
        {},
        {"sort": "order", "status": "failed,pending"},
        {"sort": "-account", "status": "success"},
        {"sort": "carrier", **window},
        {"sort": "-tracking", "q": prefix.lower()},
        {"sort": "qty", "account": shopify},
        {"sort": "-status"},
        {"sort": "errors", "status": "failed,manual,submitted", **window},
        {"sort": "-last_attempt"},
        {"sort": "last_attempt", "status": "pending,submitted"},
        {"sort": "ship_date", "status": "manual", "account": shopify},
    ]


def set_rows(app, changes: list[tuple[int, dict]]) -> None:
    with app.app_context():
        for row_id, values in changes:
            db.session.execute(sa.update(Writeback).where(Writeback.id == row_id).values(
                **values))
        db.session.commit()


def company_rows(app, company_id: int = 1, **where) -> list[Writeback]:
    with app.app_context():
        query = sa.select(Writeback).where(Writeback.company_id == company_id).order_by(
            Writeback.id)
        for name, value in where.items():
            query = query.where(getattr(Writeback, name) == value)
        rows = db.session.execute(query).scalars().all()
        db.session.expunge_all()
        return rows


# -- CSV ---------------------------------------------------------------------------------
def test_the_export_equals_every_page_of_the_grid_for_each_sort_and_filter(seeded, client_as):
    client = client_as("viewer")
    for params in export_params(seeded):
        items = page_through(client, params)
        rows = read_csv(client.get(CSV_URL, query_string=params))
        assert rows[0] == HEADER
        assert rows[1:] == [expected_csv_row(i) for i in items], params
    assert len(read_csv(client.get(CSV_URL))) - 1 == len(company_rows(seeded))


def test_the_cursor_does_not_cut_the_export(seeded, client_as):
    client = client_as("viewer")
    first = client.get(JSON_URL, query_string={"sort": "qty", "limit": 10}).get_json()
    whole = client.get(CSV_URL, query_string={"sort": "qty"}).get_data()
    assert client.get(CSV_URL, query_string={"sort": "qty", "after": first["next"]}
                      ).get_data() == whole


def inject_formulas(app) -> list[Writeback]:
    """Six failed rows whose tracking number and last error start like formulas."""
    rows = company_rows(app)[10:10 + len(INJECTIONS)]
    set_rows(app, [(row.id, {"tracking_number": tracking, "last_error": error,
                             "status": "failed"})
                   for row, (tracking, error) in zip(rows, INJECTIONS, strict=True)])
    return rows


def test_formula_cells_are_neutralised(seeded, client_as):
    inject_formulas(seeded)
    client = client_as("viewer")
    params = {"status": "failed", "sort": "order"}
    got = read_csv(client.get(CSV_URL, query_string=params))
    for tracking, error in INJECTIONS:
        cells = next(r for r in got[1:] if r[6] == "'" + tracking)
        assert cells[11] == "'" + error
    assert got[1:] == [expected_csv_row(i) for i in page_through(client, params)]
    for cells in got[1:]:
        assert not any(c[:1] in ("=", "+", "-", "@", "\t", "\r") for c in cells), cells


def test_quotes_commas_line_breaks_and_empty_cells_survive(seeded, client_as):
    row = company_rows(seeded)[0]
    message = 'Store said "no", then:\nretry later; 100% sure'
    set_rows(seeded, [(row.id, {"last_error": message, "service": "", "status": "failed"})])
    got = read_csv(client_as("viewer").get(CSV_URL, query_string={"status": "failed"}))
    cells = next(r for r in got[1:] if r[11] == message)
    assert cells[5] == ""


def test_non_ascii_text_is_utf_8(seeded, client_as):
    with seeded.app_context():
        account = db.session.execute(sa.select(StoreAccount).where(
            StoreAccount.company_id == 1, StoreAccount.platform == "amazon")).scalar_one()
        account.name = "Bücher & Café — 東京"
        db.session.commit()
        account_id = account.id
    row = company_rows(seeded, account_id=account_id)[0]
    set_rows(seeded, [(row.id, {"last_error": "Échec: adresse refusée ✗"})])
    answer = client_as("viewer").get(CSV_URL)
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    raw = answer.get_data()
    assert "Bücher & Café — 東京".encode() in raw
    assert "Échec: adresse refusée ✗".encode() in raw
    assert not raw.startswith(b"\xef\xbb\xbf")  # no BOM: the header is the first row


def test_the_file_name_has_the_company_and_its_date(seeded, client_as):
    answer = client_as("viewer").get(CSV_URL)
    today = company_today(seeded).isoformat()
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="ecommerce-orders-acme-outfitters-{today}.csv"')
    assert answer.headers["Cache-Control"] == "no-store"
    assert export.file_name("Café Ünion / Løk", "x", dt.date(2026, 11, 27), "csv") == (
        "x-cafe-union-lk-2026-11-27.csv")
    assert export.file_name("東京", "x", dt.date(2026, 11, 27), "csv") == (
        "x-company-2026-11-27.csv")


def test_the_same_bytes_from_copy_and_from_the_csv_module(seeded, client_as):
    """On PostgreSQL the file is COPY's; the csv-module path over the same rows must give
    the same bytes (so both backends write the same file for the same data)."""
    inject_formulas(seeded)
    set_rows(seeded, [(company_rows(seeded)[3].id, {"last_error": 'a "b", c\nd', "service": ""}),
                      (company_rows(seeded)[4].id, {"shipped_quantity": -2})])
    client = client_as("viewer")
    for params in export_params(seeded):
        served = client.get(CSV_URL, query_string=params).get_data()
        query = client.get(JSON_URL, query_string=params)  # same parsing as the export
        assert query.status_code == 200
        flt = orders.OrderFilter(
            statuses=tuple(s for s in params.get("status", "").split(",") if s),
            date_from=dt.date.fromisoformat(params["date_from"]) if "date_from" in params
            else None,
            date_to=dt.date.fromisoformat(params["date_to"]) if "date_to" in params else None,
            timezone="America/New_York",
            accounts=(int(params["account"]),) if "account" in params else (),
            search=params.get("q", ""), sort=params.get("sort", orders.DEFAULT_SORT))
        with seeded.app_context():
            module = b"".join(export.csv_module_chunks(db.session, 1, flt, 1000))
        assert served == module, params


def test_a_search_with_quotes_backslashes_and_wildcards_is_data(seeded, client_as):
    """Filter text reaches COPY as a parameter merged by the driver, never as SQL."""
    row = company_rows(seeded)[7]
    strange = "O'Br\\ien%_'); drop table sgx_writeback; --"
    set_rows(seeded, [(row.id, {"order_id": strange})])
    client = client_as("viewer")
    for q in ("O'Br\\ien%_'", "O'Br\\ien%_'); drop", "O'Br\\ien%%"):
        got = read_csv(client.get(CSV_URL, query_string={"q": q}))
        items = page_through(client, {"q": q})
        assert got[1:] == [expected_csv_row(i) for i in items]
        assert [r[0] for r in got[1:]] == ([strange] if q != "O'Br\\ien%%" else [])
    assert len(company_rows(seeded)) > 100  # the table is still there


@pytest.mark.parametrize(("params", "words"), [
    ({"status": "nope"}, "not a valid choice"),
    ({"date_from": "2026-13-45"}, "Not a valid date"),
    ({"date_from": "2026-02-02", "date_to": "2026-01-01"}, "'To' is before 'From'"),
    ({"sort": "price"}, "Unknown sort"),
    ({"q": "x" * 10_000}, "at most 100 characters"),
    ({"q": "a\rb"}, "control characters"),
    ({"account": "one"}, "whole numbers"),
])
def test_bad_filters_are_a_400_json_error(seeded, client_as, params, words):
    client = client_as("viewer")
    for url in (CSV_URL, AMAZON_URL):
        answer = client.get(url, query_string=params)
        assert answer.status_code == 400
        assert words in answer.get_json()["error"]


def test_another_companys_rows_never_reach_the_file(seeded, client_as):
    mine, theirs = company_rows(seeded, 1), company_rows(seeded, 2)
    assert mine and theirs
    admin = client_as("admin")
    body = admin.get(CSV_URL).get_data(as_text=True)
    assert len(read_csv(admin.get(CSV_URL))) - 1 == len(mine)
    own = {r.tracking_number for r in mine}
    assert not [r.tracking_number for r in theirs if r.tracking_number not in own
                and r.tracking_number in body]
    with seeded.app_context():
        foreign_account = db.session.execute(sa.select(StoreAccount.id).where(
            StoreAccount.company_id == 2)).scalars().first()
    refused = admin.get(CSV_URL, query_string={"account": foreign_account})
    assert refused.status_code == 400
    viewer = client_as("viewer")  # a member of the first company only
    for path in ("/orders/export.csv", "/orders/export-amazon.txt"):
        assert viewer.get(BASE.format(company=2) + path).status_code == 404
        assert admin.get(BASE.format(company=3) + path).status_code == 404  # plugin off
    anonymous = seeded.test_client().get(CSV_URL)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


# -- Amazon flat file --------------------------------------------------------------------
def amazon_failed(app, company_id: int = 1, at_least: int = 0) -> list[Writeback]:
    """The company's failed Amazon rows in the grid's default order; with ``at_least``,
    more of its Amazon rows are failed first if there are too few."""
    with app.app_context():
        if at_least:
            amazon = sa.select(StoreAccount.id).where(StoreAccount.company_id == company_id,
                                                      StoreAccount.platform == "amazon")
            ids = db.session.execute(sa.select(Writeback.id).where(
                Writeback.account_id.in_(amazon.scalar_subquery())).order_by(
                Writeback.id).limit(at_least * 2)).scalars().all()
            db.session.execute(sa.update(Writeback).where(Writeback.id.in_(ids)).values(
                status="failed", error_count=5))
            db.session.commit()
        rows = db.session.execute(
            sa.select(Writeback).join(StoreAccount, StoreAccount.id == Writeback.account_id)
            .where(Writeback.company_id == company_id, Writeback.status == "failed",
                   StoreAccount.platform == "amazon")
            .order_by(Writeback.ship_date.desc(), Writeback.id.desc())).scalars().all()
        db.session.expunge_all()
        return rows


def read_amazon(answer) -> list[list[str]]:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    text = answer.get_data().decode("utf-8")
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    assert lines[0] == AMAZON_HEADER
    return [line.split("\t") for line in lines[1:]]


def test_the_amazon_file_lists_failed_amazon_packages_one_line_per_item(seeded, client_as):
    rows = amazon_failed(seeded, at_least=4)
    two_items = [{"sku": "SKU-1", "order_item_id": "11111111111111", "quantity": 2},
                 {"sku": "SKU-2", "order_item_id": "22222222222222", "quantity": 1}]
    set_rows(seeded, [(rows[0].id, {"items": two_items, "carrier": "UPS"}),
                      (rows[1].id, {"carrier": "United Parcel Service"}),
                      (rows[2].id, {"carrier": "Purolator"}),
                      (rows[3].id, {"carrier": "FedEx", "service": "Home Delivery"})])
    rows = amazon_failed(seeded)
    answer = client_as("viewer").get(AMAZON_URL)
    assert answer.headers["Content-Type"].startswith("text/tab-separated-values")
    today = company_today(seeded).isoformat()
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="amazon-shipping-confirmation-acme-outfitters-{today}.txt"')
    lines = read_amazon(answer)
    expected = []
    for row in rows:
        code, name = {"UPS": ("UPS", ""), "United Parcel Service": ("UPS", ""),
                      "FedEx": ("FedEx", ""), "USPS": ("USPS", ""), "DHL": ("DHL", ""),
                      "Purolator": ("Other", "Purolator")}[row.carrier]
        for item in row.items:
            expected.append([row.order_id, item["order_item_id"], str(item["quantity"]),
                             row.ship_date.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                             code, name, row.tracking_number, row.service])
    assert lines == expected
    assert lines[0][:3] == [rows[0].order_id, "11111111111111", "2"]
    assert lines[1][:3] == [rows[0].order_id, "22222222222222", "1"]
    assert all(re.fullmatch(r"\d{3}-\d{7}-\d{7}", line[0]) for line in lines)
    assert ["Other", "Purolator"] in [line[4:6] for line in lines]


def test_the_amazon_file_keeps_the_filters_but_not_another_status(seeded, client_as):
    client = client_as("viewer")
    rows = amazon_failed(seeded, at_least=10)
    everything = read_amazon(client.get(AMAZON_URL))
    assert read_amazon(client.get(AMAZON_URL, query_string={"status": "pending"})) == everything
    assert read_amazon(client.get(AMAZON_URL, query_string={"status": "failed,success"})
                       ) == everything
    target = rows[0]
    day = target.ship_date.astimezone(ZoneInfo("America/New_York")).date().isoformat()
    same_day = read_amazon(client.get(AMAZON_URL, query_string={
        "date_from": day, "date_to": day, "sort": "order"}))
    assert target.order_id in [line[0] for line in same_day]
    assert [line[0] for line in same_day] == sorted(line[0] for line in same_day)
    assert len(same_day) < len(everything)
    with seeded.app_context():
        shopify = db.session.execute(sa.select(StoreAccount.id).where(
            StoreAccount.company_id == 1, StoreAccount.platform == "shopify")).scalar_one()
    assert read_amazon(client.get(AMAZON_URL, query_string={"account": shopify})) == []
    assert read_amazon(client.get(AMAZON_URL, query_string={"q": "no-such-order"})) == []


def test_the_amazon_file_holds_no_other_company_and_neutralises_formulas(seeded, client_as):
    mine, theirs = amazon_failed(seeded, 1, at_least=3), amazon_failed(seeded, 2, at_least=3)
    set_rows(seeded, [(mine[0].id, {"tracking_number": "=HYPERLINK(1)",
                                    "service": "\t@Ground", "carrier": "-Purolator"})])
    lines = read_amazon(client_as("admin").get(AMAZON_URL))
    assert {line[0] for line in lines} <= {r.order_id for r in mine}
    assert not {r.order_id for r in theirs} - {r.order_id for r in mine} & {
        line[0] for line in lines}
    first = next(line for line in lines if line[0] == mine[0].order_id)
    assert first[6] == "'=HYPERLINK(1)"
    assert first[7] == "'@Ground"
    assert first[4:6] == ["Other", "'-Purolator"]
