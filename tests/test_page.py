"""The View eCommerce page: access rules, real data in every region, filters, export."""

from __future__ import annotations

import csv
import html as htmllib
import io
import re

import sqlalchemy as sa

from shipgear_exchange_plugin.devhost.models import Company, db
from shipgear_exchange_plugin.models import StoreAccount, Writeback


def _company(app, name_prefix: str) -> Company:
    with app.app_context():
        return db.session.execute(
            sa.select(Company).where(Company.name.startswith(name_prefix))).scalar_one()


def test_page_lists_the_companys_accounts_and_writebacks(seeded, client_as):
    acme = _company(seeded, "Acme")
    html = client_as("viewer").get(f"/companies/{acme.id}/ecommerce/").get_data(as_text=True)
    with seeded.app_context():
        accounts = db.session.execute(
            sa.select(StoreAccount).where(StoreAccount.company_id == acme.id)).scalars().all()
        newest = db.session.execute(
            sa.select(Writeback).where(Writeback.company_id == acme.id)
            .order_by(Writeback.ship_date.desc()).limit(1)).scalar_one()
    assert "Connection Status" in html
    for account in accounts:
        assert account.name in html
    assert html.count("Products API") == len(accounts)
    assert newest.tracking_number in html
    assert "Shipment Information" in html and "Export" in html and "Exit" in html


def test_non_member_and_disabled_company_get_404(seeded, client_as):
    birch = _company(seeded, "Birch")  # plugin enabled, but support is not a member
    cobalt = _company(seeded, "Cobalt")  # plugin disabled
    support = client_as("support")
    assert support.get(f"/companies/{birch.id}/ecommerce/").status_code == 404
    assert support.get(f"/companies/{birch.id}/ecommerce/status.json").status_code == 404
    admin = client_as("admin")
    assert admin.get(f"/companies/{birch.id}/ecommerce/").status_code == 200
    assert admin.get(f"/companies/{cobalt.id}/ecommerce/").status_code == 404
    assert admin.get("/companies/999999/ecommerce/").status_code == 404


def test_signed_out_user_is_sent_to_login(seeded):
    response = seeded.test_client().get("/companies/1/ecommerce/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_status_filter_and_date_range(seeded, client_as):
    acme = _company(seeded, "Acme")
    client = client_as("viewer")
    html = client.get(f"/companies/{acme.id}/ecommerce/?status=failed").get_data(as_text=True)
    assert html.count('class="sgx-row"') > 0
    assert "badge-wb-success" not in html.split("<tbody>", 1)[1]
    empty = client.get(f"/companies/{acme.id}/ecommerce/?date_from=2001-01-01&date_to=2001-01-02")
    assert "No shipped orders match" in empty.get_data(as_text=True)


def test_bad_filters_answer_400_with_the_message(seeded, client_as):
    acme = _company(seeded, "Acme")
    client = client_as("viewer")
    bad_status = client.get(f"/companies/{acme.id}/ecommerce/?status=shipped")
    assert bad_status.status_code == 400
    assert "not a valid choice" in bad_status.get_data(as_text=True)
    bad_date = client.get(f"/companies/{acme.id}/ecommerce/?date_from=2026-13-45")
    assert bad_date.status_code == 400
    assert "Not a valid date" in bad_date.get_data(as_text=True)
    reversed_ = client.get(
        f"/companies/{acme.id}/ecommerce/?date_from=2026-02-02&date_to=2026-01-01")
    assert reversed_.status_code == 400
    assert "before" in reversed_.get_data(as_text=True)
    export = client.get(f"/companies/{acme.id}/ecommerce/orders/export.csv?status=nope")
    assert export.status_code == 400
    assert "not a valid choice" in export.get_json()["error"]


def test_shipment_panel_shows_the_clicked_order_and_not_other_companies(seeded, client_as):
    acme, birch = _company(seeded, "Acme"), _company(seeded, "Birch")
    with seeded.app_context():
        mine = db.session.execute(sa.select(Writeback).where(
            Writeback.company_id == acme.id, Writeback.error_count > 0).limit(1)).scalar_one()
        theirs = db.session.execute(sa.select(Writeback).where(
            Writeback.company_id == birch.id).limit(1)).scalar_one()
    client = client_as("viewer")
    fragment = client.get(f"/companies/{acme.id}/ecommerce/orders/{mine.id}",
                          headers={"HX-Request": "true"}).get_data(as_text=True)
    assert mine.tracking_number in fragment
    assert f"{mine.error_count} of 5" in fragment
    assert "Attempts" in fragment and mine.last_error in fragment
    other = client.get(f"/companies/{acme.id}/ecommerce/orders/{theirs.id}",
                       headers={"HX-Request": "true"})
    assert other.status_code == 404


def test_export_lists_every_matching_row_in_grid_order_with_formulas_neutralised(
        seeded, client_as):
    acme = _company(seeded, "Acme")
    with seeded.app_context():
        row = db.session.execute(sa.select(Writeback).where(
            Writeback.company_id == acme.id, Writeback.status == "failed").limit(1)).scalar_one()
        row.last_error = "=HYPERLINK(\"http://evil\")"
        db.session.commit()
        expected = db.session.execute(
            sa.select(Writeback.order_id).where(Writeback.company_id == acme.id,
                                                Writeback.status == "failed")
            .order_by(Writeback.ship_date.desc(), Writeback.id.desc())).scalars().all()
    response = client_as("viewer").get(
        f"/companies/{acme.id}/ecommerce/orders/export.csv?status=failed")
    assert response.status_code == 200
    assert "acme-outfitters" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][0] == "order_id"
    assert [r[0] for r in rows[1:]] == expected
    assert "'=HYPERLINK(\"http://evil\")" in [r[-1] for r in rows[1:]]


def test_status_json_has_every_account_with_three_apis(seeded, client_as):
    acme = _company(seeded, "Acme")
    body = client_as("viewer").get(f"/companies/{acme.id}/ecommerce/status.json").get_json()
    assert body["error"] is None
    assert {a["platform"] for a in body["accounts"]} == {
        "amazon", "shopify", "woocommerce", "bigcommerce"}
    for account in body["accounts"]:
        assert set(account["apis"]) == {"products", "writeback", "orders"}
        assert all(api["status"] in {"green", "yellow", "red", "none"}
                   for api in account["apis"].values())


def test_pages_carry_the_security_headers_and_no_inline_script(seeded, client_as):
    answer = client_as("viewer").get("/companies/1/ecommerce/")
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    html = answer.get_data(as_text=True)
    assert "<script>" not in html and " onclick=" not in html and "style=" not in html
    cookie = client_as("viewer").get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_the_policy_lets_product_images_come_from_the_configured_sandbox(make_app):
    """The sandbox's stores link product thumbnails on the sandbox (plain HTTP in the demo
    and the tests): the page may load images from there, and from nowhere else over HTTP."""
    app = make_app(SHIPGEAR_SANDBOX_URL="http://127.0.0.1:5999/sandbox")
    policy = app.test_client().get("/login").headers["Content-Security-Policy"]
    assert "img-src 'self' https: data: http://127.0.0.1:5999;" in policy
    assert "script-src 'self';" in policy
    for odd_url in ("http://x; script-src *", "http://bad host/", "ftp://files.example/"):
        odd = make_app(SHIPGEAR_SANDBOX_URL=odd_url)
        policy = odd.test_client().get("/login").headers["Content-Security-Policy"]
        assert "script-src *" not in policy, odd_url
        assert "img-src 'self' https: data:;" in policy, odd_url
    with_user = make_app(SHIPGEAR_SANDBOX_URL="http://user:secret@10.0.0.1:8080/sandbox")
    policy = with_user.test_client().get("/login").headers["Content-Security-Policy"]
    assert "img-src 'self' https: data: http://10.0.0.1:8080;" in policy
    assert "secret" not in policy


def test_later_pages_say_which_rows_they_list(client_as):
    """Page after page says "Showing 21–40 of N": the count of earlier rows rides in the
    signed page link, so a link from orders.json (which has none) falls back to "Showing
    20 of N" and an edited one is refused."""
    client = client_as("viewer")
    url, start, seen = "/companies/1/ecommerce/?limit=20", 1, []
    total = None
    while True:
        text = client.get(url).get_data(as_text=True)
        count = re.search(r'id="sgx-count">\s*([^<]*?)\s*</span>', text).group(1)
        ids = re.findall(r'class="sgx-row[^"]*" data-id="(\d+)"', text)
        if start == 1:
            total = int(re.search(r"of ([\d,]+) matching", count).group(1).replace(",", ""))
            assert count == f"Showing the first 20 of {total:,} matching orders"
        else:
            last = start + len(ids) - 1
            assert count == f"Showing {start:,}–{last:,} of {total:,} matching orders"
        seen += ids
        link = re.search(r'href="([^"]+)"[^>]*data-key="next"', text)
        if link is None:
            break
        url, start = htmllib.unescape(link.group(1)), start + len(ids)
    assert len(seen) == len(set(seen)) == total > 40
    json_next = client.get("/companies/1/ecommerce/orders.json?limit=20").get_json()["next"]
    text = client.get(f"/companies/1/ecommerce/?limit=20&after={json_next}").get_data(as_text=True)
    assert f"Showing 20 of {total:,} matching orders" in text
    edited = client.get(f"/companies/1/ecommerce/?limit=20&after={json_next[:-3]}abc")
    assert edited.status_code == 400


def test_a_grid_with_filters_in_error_does_not_refresh_itself(make_app):
    from shipgear_exchange_plugin.devhost.seed import seed

    from .conftest import login

    app = make_app(SHIPGEAR_PAGE_REFRESH=10, WTF_CSRF_ENABLED=False)
    with app.app_context():
        seed(app, companies=1, shipments=20)
    client = app.test_client()
    assert login(client, "viewer").status_code == 302
    good = client.get("/companies/1/ecommerce/").get_data(as_text=True)
    assert 'data-refresh-every="10"' in good
    bad = client.get("/companies/1/ecommerce/?date_from=2026-02-30")
    assert bad.status_code == 400
    assert 'data-refresh-every="0"' in bad.get_data(as_text=True)
