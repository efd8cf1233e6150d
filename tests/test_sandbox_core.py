"""The sandbox's own machinery: store rate limiters, deterministic data, the control API
and the duplicate report (the platform APIs are covered by the connector tests)."""

from __future__ import annotations

import requests

from shipgear_exchange_plugin.sandbox.limits import FixedWindow, TokenBucket
from shipgear_exchange_plugin.sandbox.store import SandboxStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_the_rate():
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=10, clock=clock)
    assert all(bucket.take()[0] for _ in range(10))
    allowed, wait = bucket.take()
    assert (allowed, wait) == (False, 0.5)
    clock.now += 0.5
    assert bucket.take() == (True, 0.0)
    assert bucket.take()[0] is False


def test_token_bucket_charges_a_cost_like_shopifys_query_cost():
    clock = Clock()
    bucket = TokenBucket(rate=100, burst=1000, clock=clock)
    assert bucket.take(900)[0]
    allowed, wait = bucket.take(300)
    assert allowed is False and wait == 2.0


def test_fixed_window_counts_requests_and_resets():
    clock = Clock()
    window = FixedWindow(limit=3, window=30, clock=clock)
    assert [window.take()[:2] for _ in range(3)] == [(True, 2), (True, 1), (True, 0)]
    allowed, left, reset = window.take()
    assert (allowed, left, reset) == (False, 0, 30)
    clock.now += 30
    assert window.take()[:2] == (True, 2)


def test_the_same_seed_gives_the_same_store_data():
    first, second = SandboxStore(seed=3), SandboxStore(seed=3)
    a = first.account("amazon", "c1")
    b = second.account("amazon", "c1")
    assert a.products == b.products
    assert [o.order_id for o in a.seed_orders(5)] == [o.order_id for o in b.seed_orders(5)]
    assert SandboxStore(seed=4).account("amazon", "c1").products != a.products


def test_duplicates_count_new_shipments_with_the_same_tracking_not_edits():
    account = SandboxStore().account("shopify", "c1")
    order = account.add_order("1001", [{"sku": "A", "quantity": 2}])
    first = account.record_write(order, "create", "TRACK1", {})
    account.record_write(order, "edit", "TRACK1", {}, replaces=first)
    assert account.duplicates() == {}
    account.record_write(order, "create", "TRACK1", {})
    assert account.duplicates() == {"1001": 1}
    assert len(order.shipments) == 2


def test_open_mode_creates_unknown_orders_strict_mode_does_not():
    account = SandboxStore().account("bigcommerce", "c1")
    assert account.find_order("555", [{"sku": "X", "quantity": 1}]) is not None
    account.settings.update({"strict_orders": True})
    assert account.find_order("556", [{"sku": "X", "quantity": 1}]) is None


def test_control_api_sets_and_clears_faults(sandbox):
    base = f"{sandbox.url}/_sandbox/amazon/c9"
    answer = requests.put(f"{base}/faults", json={"error_rate": 0.25, "outage": "down"},
                          timeout=5)
    assert answer.status_code == 200
    assert sandbox.store.account("amazon", "c9").faults.outage == "down"
    assert requests.get(base, timeout=5).json()["faults"]["error_rate"] == 0.25
    assert requests.delete(f"{base}/faults", timeout=5).json()["outage"] is None


def test_control_api_refuses_bad_input_with_a_message(sandbox):
    base = f"{sandbox.url}/_sandbox"
    cases = [
        ("put", f"{base}/amazon/c1/faults", {"error_rate": 3}, "between 0 and 1"),
        ("put", f"{base}/amazon/c1/faults", {"outage": "sometimes"}, "outage must be"),
        ("put", f"{base}/amazon/c1/faults", {"colour": "red"}, "unknown fault 'colour'"),
        ("put", f"{base}/amazon/c1/faults", {"throttle": True, "latency_ms": "slow"},
         "latency_ms must be a number"),
        ("put", f"{base}/amazon/c1/settings", {"speed": 1}, "unknown setting 'speed'"),
        ("put", f"{base}/amazon/c1/faults", ["not", "an", "object"], "JSON object"),
        ("post", f"{base}/amazon/c1/orders", {"nothing": 1}, "{'orders'"),
        ("get", f"{base}/ebay/c1", None, "unknown platform 'ebay'"),
    ]
    for method, url, body, words in cases:
        answer = requests.request(method, url, json=body, timeout=5)
        assert 400 <= answer.status_code < 500, (url, body)
        assert words in answer.json()["error"], (url, body)
    faults = sandbox.store.account("amazon", "c1").faults  # a refused update changes nothing
    assert (faults.error_rate, faults.outage, faults.throttle) == (0.0, None, False)


def test_control_api_creates_orders_and_resets(sandbox):
    base = f"{sandbox.url}/_sandbox/woocommerce/c2"
    made = requests.post(f"{base}/orders", json={"orders": [
        {"order_id": "77", "items": [{"order_item_id": "1", "sku": "MUG", "quantity": 2}]}]},
        timeout=5)
    assert made.status_code == 201
    assert requests.get(f"{base}/orders/77", timeout=5).json()["items"][0]["sku"] == "MUG"
    seeded = requests.post(f"{base}/orders", json={"count": 3}, timeout=5).json()["orders"]
    assert len(seeded) == 3
    assert requests.post(f"{base}/reset", timeout=5).json() == {"ok": True}
    assert requests.get(f"{base}/orders/77", timeout=5).status_code == 404


def test_product_images_are_served_by_the_sandbox_itself(sandbox):
    """The demo's Products tab shows a thumbnail per product with no outside image host:
    every product link the stores give answers an SVG, and a link to no product is a 404."""
    listed = requests.get(f"{sandbox.url}/woocommerce/c1/wp-json/wc/v3/products",
                          params={"per_page": 2}, auth=("ck_demo_c1", "cs_demo_c1"), timeout=5)
    assert listed.status_code == 200, listed.text
    links = [p["images"][0]["src"] for p in listed.json()]
    assert links == [f"{sandbox.url}/images/woocommerce/c1/{n}.svg" for n in (1000, 1001)]
    title = sandbox.store.account("woocommerce", "c1").products[0]["title"] + " (SKU-1000)"
    for link in (links[0], links[0].replace(".svg", "-thumb.svg")):
        image = requests.get(link, timeout=5)
        assert image.status_code == 200
        assert image.headers["Content-Type"].startswith("image/svg+xml")
        assert f"<title>{title}</title>" in image.text
    assert requests.get(links[0], timeout=5).text != requests.get(links[1], timeout=5).text
    for missing in ("woocommerce/c1/999.svg", "woocommerce/c1/1000.jpg", "ebay/c1/1000.svg"):
        assert requests.get(f"{sandbox.url}/images/{missing}", timeout=5).status_code == 404
