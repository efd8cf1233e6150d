"""Products (PRODUCT.md S1, issue 5 items 2 and 6) on both backends, against the sandbox
over real HTTP: the sync loads every platform's catalogue and follows the store's
changes, a failed sync keeps the last good copy, the tab searches and pages without
repeats or gaps, refuses bad input with a 400 and a message, never shows another
company's products, and only admins sync (with CSRF). The periodic job picks only stale
accounts of enabled companies."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest
import requests
import sqlalchemy as sa

from shipgear_exchange_plugin import PLUGIN_ID, products
from shipgear_exchange_plugin.connectors import Outcome, ProductInfo, Result
from shipgear_exchange_plugin.devhost.models import PluginCompany, db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.models import AuditEvent, Product, StoreAccount
from shipgear_exchange_plugin.plugin import state

from .conftest import csrf_token_from

PLATFORMS = ("amazon", "bigcommerce", "shopify", "woocommerce")
BASE = "/companies/1/ecommerce/products"


@pytest.fixture
def shop(store_host):
    """Two companies with the plugin enabled, their 8 accounts pointing at the sandbox."""
    return store_host(companies=2)


def accounts(app, company_id: int = 1) -> dict[str, StoreAccount]:
    with app.app_context():
        rows = db.session.execute(sa.select(StoreAccount).where(
            StoreAccount.company_id == company_id)).scalars().all()
        db.session.expunge_all()
        return {a.platform: a for a in rows}


def sync(app, company_id: int = 1, platforms=PLATFORMS) -> dict[str, products.SyncResult]:
    out = {}
    with app.app_context():
        for platform in platforms:
            account = db.session.execute(sa.select(StoreAccount).where(
                StoreAccount.company_id == company_id,
                StoreAccount.platform == platform)).scalar_one()
            out[platform] = products.sync_account(db.session, account, state(app).credentials,
                                                  timeout=(2.0, 5.0))
    return out


def stored(app, account_id: int) -> dict[str, Product]:
    with app.app_context():
        rows = db.session.execute(sa.select(Product).where(
            Product.account_id == account_id)).scalars().all()
        db.session.expunge_all()
        return {p.sku: p for p in rows}


def catalogue(sandbox, platform: str, key: str = "c1") -> list[dict]:
    return sandbox.store.account(platform, key).products


def signed_in(app, username: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    data = {"username": username, "password": "demo"}
    if 'name="csrf_token"' in page:
        data["csrf_token"] = csrf_token_from(page)
    assert client.post("/login", data=data).status_code == 302
    return client


def walk(client, query: str = "", limit: int = 7) -> list[tuple[int, str]]:
    """Every product of a search, page by page through products.json."""
    seen, after = [], None
    for _ in range(100):
        url = f"{BASE}.json?limit={limit}{query}" + (f"&after={after}" if after else "")
        answer = client.get(url)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        assert len(body["items"]) <= limit
        seen += [(item["account_id"], item["sku"]) for item in body["items"]]
        after = body["next"]
        if after is None:
            return seen
    raise AssertionError("paging never ended")


# -- sync ---------------------------------------------------------------------------------
def test_sync_loads_every_platforms_products(shop, sandbox):
    results = sync(shop)
    for platform, account in accounts(shop).items():
        result = results[platform]
        assert result.ok, (platform, result.message)
        assert (result.listed, result.inserted, result.deleted) == (20, 20, 0)
        assert "20 products loaded" in result.message
        rows = stored(shop, account.id)
        expected = {p["sku"]: p for p in catalogue(sandbox, platform)}
        assert set(rows) == set(expected), platform
        for sku, row in rows.items():
            assert row.title == expected[sku]["title"], platform
            assert row.company_id == 1
            assert row.weight and row.weight > 0, platform
            assert row.weight_unit == "lb", (platform, row.weight_unit)
            assert row.image_url == f"{sandbox.url}/images/{expected[sku]['image']}.svg"


def test_resync_inserts_updates_and_removes(shop, sandbox):
    sync(shop, platforms=["shopify"])
    shopify = accounts(shop)["shopify"]
    before = stored(shop, shopify.id)
    items = catalogue(sandbox, "shopify")
    items[0]["title"] = "Renamed Mug"
    items[1]["weight"] = 7.25
    removed = items.pop(2)["sku"]
    items.append({**items[3], "sku": "SKU-NEW-1", "product_id": 999, "title": "New Lamp"})
    (result,) = sync(shop, platforms=["shopify"]).values()
    assert result.ok and (result.inserted, result.updated, result.deleted) == (1, 2, 1)
    after = stored(shop, shopify.id)
    assert removed not in after and "SKU-NEW-1" in after and len(after) == 20
    assert after[items[0]["sku"]].title == "Renamed Mug"
    assert after[items[1]["sku"]].weight == 7.25
    untouched = items[4]["sku"]
    assert after[untouched].id == before[untouched].id  # updated in place, not re-created
    assert after[untouched].updated_at >= before[untouched].updated_at
    assert stored(shop, accounts(shop)["amazon"].id) == {}  # other accounts untouched


def test_refused_credentials_keep_the_products_and_say_why(shop, sandbox):
    sync(shop, platforms=["woocommerce"])
    woo = accounts(shop)["woocommerce"]
    before = {sku: (p.id, p.title, p.updated_at) for sku, p in stored(shop, woo.id).items()}
    catalogue(sandbox, "woocommerce").clear()  # would remove all if the answer were used
    answer = requests.put(f"{sandbox.url}/_sandbox/woocommerce/c1/faults",
                          json={"auth_refused": True}, timeout=5)
    assert answer.status_code == 200
    (result,) = sync(shop, platforms=["woocommerce"]).values()
    assert not result.ok and result.message
    assert "credential" in result.message.lower() or "401" in result.message, result.message
    after = {sku: (p.id, p.title, p.updated_at) for sku, p in stored(shop, woo.id).items()}
    assert after == before and len(after) == 20


def test_items_without_a_usable_sku_or_with_odd_values_are_handled(shop, sandbox):
    catalogue(sandbox, "bigcommerce")[3]["image_url"] = "javascript:alert(1)"
    sync(shop, platforms=["bigcommerce"])
    bigcommerce = accounts(shop)["bigcommerce"]
    assert stored(shop, bigcommerce.id)["SKU-1003"].image_url is None  # only web images
    odd = [ProductInfo("", "No SKU"), ProductInfo("A" * 121, "SKU too long"),
           ProductInfo("SKU-1", "First", 1.5, "kilograms", "https://img.example/1.jpg"),
           ProductInfo("SKU-1", "Listed twice", 2.0, "kg"),
           ProductInfo("SKU-2", "T" * 900, float("nan"), "pounds", "https://x/" + "y" * 1000),
           ProductInfo("  SKU-3 ", "Weightless", None, "ounces")]
    with shop.app_context():
        result = products.apply(db.session, bigcommerce.id, 1,
                                Result(Outcome.OK, data=odd))
    assert result.ok and (result.listed, result.skipped, result.deleted) == (3, 3, 20)
    assert "3 skipped without a usable item number" in result.message
    rows = stored(shop, bigcommerce.id)
    assert set(rows) == {"SKU-1", "SKU-2", "SKU-3"}
    assert (rows["SKU-1"].title, rows["SKU-1"].weight, rows["SKU-1"].weight_unit) == (
        "First", 1.5, "kg")
    assert len(rows["SKU-2"].title) == 500 and rows["SKU-2"].weight is None
    assert rows["SKU-2"].image_url is None and rows["SKU-3"].weight_unit is None


# -- the tab ------------------------------------------------------------------------------
def test_the_tab_lists_products_with_thumbnails_escaped(shop, sandbox):
    catalogue(sandbox, "shopify")[0]["title"] = '<script>alert("x")</script> Mug'
    sync(shop)
    html = signed_in(shop, "viewer").get(BASE).get_data(as_text=True)
    assert html.count('loading="lazy"') == 50  # the first page
    assert 'width="48" height="48"' in html and "Next page" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(" in html
    assert "SKU-1000" in html and " lb" in html and "Amazon US" in html
    assert "Sync now" not in html  # viewers do not sync


def test_search_is_case_insensitive_and_takes_wildcards_literally(shop, sandbox):
    items = catalogue(sandbox, "amazon")
    items[0]["title"] = "100% Cotton Towel"
    items[1]["sku"] = "SKU_UNDER"
    items[2]["title"] = "Back\\slash Tray"
    sync(shop, platforms=["amazon", "shopify"])
    client = signed_in(shop, "viewer")
    word = items[5]["title"].split()[0]
    matching = [p["sku"] for name in ("amazon", "shopify") for p in catalogue(sandbox, name)
                if word.lower() in p["title"].lower()]
    found = walk(client, f"&q={word.upper()}")
    assert sorted(sku for _, sku in found) == sorted(matching) and found
    assert [sku for _, sku in walk(client, "&q=%25")] == [items[0]["sku"]]
    assert [sku for _, sku in walk(client, "&q=_")] == ["SKU_UNDER"]
    assert [sku for _, sku in walk(client, "&q=sku_1")] == []  # not SKU-1000
    assert [sku for _, sku in walk(client, "&q=%5C")] == [items[2]["sku"]]  # backslash
    assert [sku for _, sku in walk(client, "&q=sku_under")] == ["SKU_UNDER"]
    html = client.get(f"{BASE}?q=zzz-nothing").get_data(as_text=True)
    assert "No products match this search." in html


def test_paging_has_no_repeats_or_gaps_and_follows_account_order(shop):
    sync(shop)
    client = signed_in(shop, "viewer")
    everything = walk(client, limit=7)
    assert len(everything) == 80 and len(set(everything)) == 80
    assert everything == sorted(everything)
    one = accounts(shop)["woocommerce"].id
    only = walk(client, f"&account={one}", limit=6)
    assert only == [pair for pair in everything if pair[0] == one]
    first = client.get(BASE)
    html = first.get_data(as_text=True)
    next_href = html.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(next_href).get_data(as_text=True)
    assert second.count('loading="lazy"') == 30 and "Next page" not in second
    assert "First page" in second


def test_htmx_search_swaps_the_table_only(shop):
    sync(shop, platforms=["shopify"])
    client = signed_in(shop, "viewer")
    headers = {"HX-Request": "true", "HX-Target": "products-region"}
    answer = client.get(f"{BASE}?q=SKU-1001", headers=headers)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and html.lstrip().startswith('<div id="products-region"')
    assert "SKU-1001" in html and "SKU-1002" not in html and "<html" not in html
    assert "HX-Request" in answer.headers.get("Vary", "")
    bad = client.get(f"{BASE}?after=nope", headers=headers)
    assert bad.status_code == 400 and "The page link is not valid" in bad.get_data(True)


@pytest.mark.parametrize(("query", "message"), [
    ("q=" + "x" * 10240, "Search text is too long"),
    ("q=a%00b", "control characters"),
    ("after=not-a-cursor", "The page link is not valid"),
    ("after=" + base64.urlsafe_b64encode(b'["1","SKU"]').decode(), "The page link is not valid"),
    ("after=" + base64.urlsafe_b64encode(b"[99999999999999999999,\"S\"]").decode(),
     "The page link is not valid"),
    ("after=" + "A" * 5000, "The page link is not valid"),
    ("account=abc", "Choose a store account of this company"),
    ("account=99999999999999999999", "Choose a store account of this company"),
    ("limit=0", "Page size must be between"),
    ("limit=100000", "Page size must be between"),
])
def test_bad_input_is_a_400_with_a_message(shop, query, message):
    client = signed_in(shop, "viewer")
    page = client.get(f"{BASE}?{query}")
    assert page.status_code == 400 and message in page.get_data(as_text=True)
    assert 'role="search"' in page.get_data(as_text=True)  # the form is there to fix it
    answer = client.get(f"{BASE}.json?{query}")
    assert answer.status_code == 400 and message in answer.get_json()["error"]


def test_another_companys_products_never_show(shop):
    sync(shop, company_id=1)
    sync(shop, company_id=2)
    foreign = accounts(shop, 2)["amazon"].id
    client = signed_in(shop, "admin")  # a member of both companies
    html = client.get(f"{BASE}?limit=200").get_data(as_text=True)
    assert html.count('loading="lazy"') == 80
    assert "/c1/" in html and "/c2/" not in html  # image URLs name the store account
    refused = client.get(f"{BASE}?account={foreign}")
    assert refused.status_code == 400 and "/c2/" not in refused.get_data(as_text=True)
    assert client.get(f"{BASE}.json?account={foreign}").status_code == 400
    assert {item["account_id"] for item in
            client.get(f"{BASE}.json?limit=200").get_json()["items"]} == {
        a.id for a in accounts(shop, 1).values()}
    # A cursor naming company 2's account only moves the position, never the scope.
    cursor = products.encode_cursor(foreign, "A")
    assert all(item["account_id"] in {a.id for a in accounts(shop, 1).values()}
               for item in client.get(f"{BASE}.json?after={cursor}").get_json()["items"])
    viewer = signed_in(shop, "viewer")  # not a member of company 2
    assert viewer.get("/companies/2/ecommerce/products").status_code == 404


def test_only_admins_sync_and_each_account_is_reported(shop, sandbox):
    requests.put(f"{sandbox.url}/_sandbox/bigcommerce/c1/faults", json={"auth_refused": True},
                 timeout=5)
    assert signed_in(shop, "viewer").post(f"{BASE}/sync").status_code == 403
    assert signed_in(shop, "support").post(f"{BASE}/sync").status_code == 403
    answer = signed_in(shop, "admin").post(f"{BASE}/sync")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200, html
    assert html.count("20 products loaded (20 new, 0 changed, 0 removed)") == 3
    assert html.count(">Failed<") == 1 and "BigCommerce" in html
    with shop.app_context():
        count = db.session.execute(sa.select(sa.func.count()).select_from(Product).where(
            Product.company_id == 1)).scalar_one()
        event = db.session.execute(sa.select(AuditEvent).where(
            AuditEvent.action == "products.sync")).scalar_one()
    assert count == 60 and event.username == "admin" and len(event.detail["accounts"]) == 4


def test_the_tab_shows_each_stores_products_api_status_and_why(shop, sandbox):
    """A store whose product syncs keep failing shows 0 products; the tab says why, with
    the Products API's status from Connection Status, instead of leaving it a mystery."""
    requests.put(f"{sandbox.url}/_sandbox/woocommerce/c1/faults", json={"auth_refused": True},
                 timeout=5)
    admin = signed_in(shop, "admin")
    html = admin.get(BASE).get_data(as_text=True)
    assert html.count("No calls recorded yet.") == 4  # nothing asked yet
    for _ in range(3):  # the scheduled syncs would do the same
        assert admin.post(f"{BASE}/sync").status_code == 200
    html = admin.get(BASE).get_data(as_text=True)
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r"<tr>\s*<td>(\w+)\b.*?</td>(.*?)</tr>", html, re.S)}
    woo = rows["WooCommerce"]
    assert ">0<" in woo and "badge-red" in woo and "The last 3 calls failed" in woo
    for label in ("Amazon", "Shopify", "BigCommerce"):  # Amazon may throttle 3 syncs
        assert ">20<" in rows[label] and "badge-red" not in rows[label], label
        assert re.search(r"badge-(green|yellow)", rows[label]), label


def test_sync_needs_the_csrf_token(make_app, sandbox):
    app = make_app(SHIPGEAR_SANDBOX_URL=sandbox.url)  # CSRF on
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    client = signed_in(app, "admin")
    page = client.get(BASE).get_data(as_text=True)
    assert "Sync now" in page
    assert client.post(f"{BASE}/sync").status_code == 400
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Product)
                                  ).scalar_one() == 0
    done = client.post(f"{BASE}/sync", data={"csrf_token": csrf_token_from(page)})
    assert done.status_code == 200 and done.get_data(as_text=True).count("20 products") == 4


# -- jobs ---------------------------------------------------------------------------------
def test_sync_due_enqueues_only_stale_accounts_of_enabled_companies(make_app, sandbox):
    from shipgear_exchange_plugin.jobs.products import QUEUE, sync_due
    from shipgear_exchange_plugin.jobs.products import sync as sync_job

    app = make_app(WTF_CSRF_ENABLED=False, SHIPGEAR_SANDBOX_URL=sandbox.url,
                   SHIPGEAR_PRODUCTS_EVERY=3600)
    with app.app_context():
        seed(app, companies=3, shipments=0, enabled=3)
    sync(app, company_id=1)
    one, three = accounts(app, 1), accounts(app, 3)
    with app.app_context():
        old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        db.session.execute(sa.update(Product).where(
            Product.account_id == one["shopify"].id).values(updated_at=old))
        db.session.execute(sa.update(StoreAccount).where(
            StoreAccount.id == one["amazon"].id).values(enabled=False))
        db.session.delete(db.session.get(PluginCompany, (PLUGIN_ID, 3)))
        db.session.commit()
    expected = {one["shopify"].id} | {a.id for a in accounts(app, 2).values()}
    host = app.extensions["exchange.host"]
    with app.app_context():
        assert sync_due() == {"due": 5, "enqueued": 5}
        queue = host.queue(QUEUE)
        jobs = [queue.fetch_job(job_id) for job_id in queue.job_ids]
        assert {job.args[0] for job in jobs} == expected
        assert not expected & {a.id for a in three.values()}
        assert sync_due() == {"due": 5, "enqueued": 0}  # tried recently: not piled up
        lock = host.redis().lock("sgx:lock:products-due", timeout=60)
        assert lock.acquire(blocking=False)
        assert sync_due() == {"skipped": 1}
        lock.release()
        assert sync_job(one["shopify"].id).startswith("ok: 20 products loaded")
        assert sync_job(three["amazon"].id) == "skipped: plugin disabled for the company"
        assert sync_job(one["amazon"].id) == "skipped: no such enabled account"
        assert products.due_accounts(db.session, [1], dt.datetime.now(dt.UTC)
                                     - dt.timedelta(hours=1)) == []


def test_cursor_round_trips_and_rejects_forgeries():
    cursor = products.encode_cursor(12, "SKU-1000 ü")
    assert products.decode_cursor(cursor) == (12, "SKU-1000 ü")
    for bad in ("", "!!!", base64.urlsafe_b64encode(json.dumps([0, "x"]).encode()).decode(),
                base64.urlsafe_b64encode(json.dumps([True, "x"]).encode()).decode(),
                base64.urlsafe_b64encode(json.dumps([1, ""]).encode()).decode(),
                base64.urlsafe_b64encode(b"\xff\xfe").decode()):
        with pytest.raises(products.SearchError):
            products.decode_cursor(bad)
