"""Shopify connector contract tests: the real connector over real HTTP against the
marketplace sandbox on a free port, faults and limits set through the control API.
The fault cases every store shares (throttle, 5xx, outage page, hang, closed port,
refused credentials) are in test_connector_faults.py."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import requests

from shipgear_exchange_plugin.connectors import (
    AccountRef,
    Api,
    Item,
    ListRecorder,
    Outcome,
    Package,
    connector_for,
)

TOKEN = {"X-Shopify-Access-Token": "shpat_test", "Content-Type": "application/json"}


class Shop:
    """One Shopify shop in the sandbox: the connector for it and its control API."""

    def __init__(self, base: str, *, credentials: dict | None = None,
                 options: dict | None = None) -> None:
        self.url = f"{base}/shopify/c1"
        self.control = f"{base}/_sandbox/shopify/c1"
        self.graphql = f"{base}/shopify/c1/admin/api/2025-07/graphql.json"
        self.recorder = ListRecorder()
        self.connector = connector_for(
            AccountRef(1, "shopify", self.url, options or {}),
            {"access_token": "shpat_test"} if credentials is None else credentials,
            recorder=self.recorder, timeout=(1, 2))

    def faults(self, **values) -> None:
        requests.put(f"{self.control}/faults", json=values, timeout=5).raise_for_status()

    def settings(self, **values) -> None:
        requests.put(f"{self.control}/settings", json=values, timeout=5).raise_for_status()

    def order(self, order_id: str, *lines: tuple[str, str, int]) -> None:
        items = [{"order_item_id": oid, "sku": sku, "quantity": qty} for oid, sku, qty in lines]
        requests.post(f"{self.control}/orders", json={"orders": [
            {"order_id": order_id, "items": items}]}, timeout=5).raise_for_status()

    def get(self, what: str):
        return requests.get(f"{self.control}/{what}", timeout=5).json()[what]

    def query(self, query: str, variables: dict | None = None) -> dict:
        return requests.post(self.graphql, headers=TOKEN, timeout=5,
                             json={"query": query, "variables": variables or {}}).json()


@pytest.fixture
def shop(sandbox):
    shop = Shop(sandbox.url)
    yield shop
    shop.connector.close()


def package(order_id: str = "5001", tracking: str = "1Z999AA10123456784", *,
            items: tuple[Item, ...] = (Item(2, "11", "SKU-1000"),),
            carrier: str = "UPS") -> Package:
    return Package(order_id=order_id, package_key="77", tracking_number=tracking,
                   carrier=carrier, service="Ground",
                   ship_date=dt.datetime(2026, 11, 20, 15, 30, tzinfo=dt.UTC), items=items)


def test_write_back_then_verify(shop):
    pkg = package()
    written = shop.connector.write_back(pkg)
    assert written.outcome is Outcome.ACCEPTED, written.message
    assert written.data["fulfillment_id"].startswith("gid://shopify/Fulfillment/")
    assert written.request_id and written.http_status == 200 and written.latency_ms is not None
    verified = shop.connector.verify(pkg)
    assert verified.outcome is Outcome.VERIFIED, verified.message
    assert verified.data["fulfillment_id"] == written.data["fulfillment_id"]
    [write] = shop.get("writes")
    sent = write["payload"]
    assert sent["trackingInfo"] == {"company": "UPS", "number": pkg.tracking_number}
    assert sent["notifyCustomer"] is False
    [group] = sent["lineItemsByFulfillmentOrder"]
    assert group["fulfillmentOrderId"].startswith("gid://shopify/FulfillmentOrder/")
    assert [line["quantity"] for line in group["fulfillmentOrderLineItems"]] == [2]


def test_carrier_names_map_to_shopify_companies(shop):
    written = shop.connector.write_back(package(carrier="dhl", tracking="4711000001"))
    assert written.outcome is Outcome.ACCEPTED, written.message
    assert shop.get("writes")[0]["payload"]["trackingInfo"]["company"] == "DHL Express"


def test_verify_before_the_write_is_not_yet_visible(shop):
    result = shop.connector.verify(package())
    assert result.outcome is Outcome.NOT_YET_VISIBLE
    assert "1Z999AA10123456784" in result.message


def test_verification_lag(shop):
    shop.faults(verify_lag_s=1.0)
    pkg = package()
    assert shop.connector.write_back(pkg).outcome is Outcome.ACCEPTED
    assert shop.connector.verify(pkg).outcome is Outcome.NOT_YET_VISIBLE
    time.sleep(1.1)
    assert shop.connector.verify(pkg).outcome is Outcome.VERIFIED


def test_resend_after_success_adds_no_second_fulfillment(shop):
    pkg = package()
    assert shop.connector.write_back(pkg).outcome is Outcome.ACCEPTED
    again = shop.connector.write_back(pkg)
    assert again.outcome is Outcome.VERIFIED, again.message
    assert "not sent again" in again.message
    assert len(shop.get("writes")) == 1
    assert shop.get("duplicates") == {}


def test_two_packages_of_one_order_each_fulfil_their_line(shop):
    shop.order("5002", ("21", "SKU-A", 1), ("22", "SKU-B", 3))
    first = package("5002", "TRACK-A", items=(Item(1, None, "SKU-A"),))
    second = package("5002", "TRACK-B", items=(Item(3, "22", None),))
    assert shop.connector.write_back(first).outcome is Outcome.ACCEPTED
    assert shop.connector.write_back(second).outcome is Outcome.ACCEPTED
    assert shop.connector.write_back(first).outcome is Outcome.VERIFIED  # resend: no dupe
    assert shop.connector.verify(second).outcome is Outcome.VERIFIED
    late = shop.connector.write_back(package("5002", "TRACK-C", items=(Item(1, None, "SKU-A"),)))
    assert late.outcome is Outcome.NEEDS_FIXING
    assert "nothing left to fulfil" in late.message
    assert shop.get("duplicates") == {}


def test_unknown_carrier_is_refused_before_any_request(shop):
    result = shop.connector.write_back(package(carrier="Pony Express"))
    assert result.outcome is Outcome.NEEDS_FIXING
    assert "'Pony Express'" in result.message and "UPS" in result.message
    assert shop.recorder.calls == []
    assert shop.get("requests") == [] and shop.get("writes") == []


def test_store_validation_error_comes_back_with_shopify_message(shop):
    shop.order("5003", ("31", "SKU-1000", 1))
    result = shop.connector.write_back(package("5003", items=(Item(3, "31", "SKU-1000"),)))
    assert result.outcome is Outcome.NEEDS_FIXING
    assert "Invalid fulfillment order line item quantity requested." in result.message
    assert shop.get("writes") == []


def test_strict_mode_unknown_order_needs_fixing(shop):
    shop.settings(strict_orders=True)
    result = shop.connector.write_back(package("999111"))
    assert result.outcome is Outcome.NEEDS_FIXING
    assert "Shopify has no order 999111" in result.message


def test_order_name_instead_of_id_needs_fixing_without_a_request(shop):
    result = shop.connector.write_back(package("#1001"))
    assert result.outcome is Outcome.NEEDS_FIXING and "numeric id" in result.message
    assert shop.recorder.calls == []


def test_missing_token_needs_reauth_without_a_request(sandbox):
    shop = Shop(sandbox.url, credentials={})
    assert shop.connector.verify(package()).outcome is Outcome.NEEDS_REAUTH
    assert shop.recorder.calls == []


def test_exhausted_cost_bucket_is_throttled_with_the_cost_hint(shop):
    shop.settings(limits={"graphql": {"rate": 0.5, "burst": 10}})  # a probe costs 3 points
    for _ in range(3):
        assert shop.connector.probe(Api.PRODUCTS).outcome is Outcome.OK
    result = shop.connector.probe(Api.PRODUCTS)
    assert result.outcome is Outcome.RETRYABLE and result.throttled
    assert result.http_status == 200  # GraphQL: THROTTLED arrives with HTTP 200
    assert 2.0 <= result.retry_after <= 4.0  # (3 requested - 1 available) / 0.5 per second
    assert "cost limit" in result.message
    record = shop.recorder.calls[-1]
    assert record.throttled and record.outcome is Outcome.RETRYABLE and record.api is Api.PRODUCTS


def test_exhausted_request_bucket_answers_429_with_retry_after(shop):
    shop.settings(limits={"requests": {"rate": 0.5, "burst": 2}})
    for _ in range(2):
        assert shop.connector.probe(Api.ORDERS).outcome is Outcome.OK
    result = shop.connector.probe(Api.ORDERS)
    assert result.outcome is Outcome.RETRYABLE and result.throttled
    assert result.http_status == 429 and 1.0 <= result.retry_after <= 2.0


def test_products_with_weight_unit_and_image_across_pages(sandbox):
    shop = Shop(sandbox.url, options={"products_page_size": 8})
    result = shop.connector.fetch_products()
    assert result.outcome is Outcome.OK
    assert len(result.data) == 20
    first = result.data[0]
    assert first.sku == "SKU-1000" and first.title
    assert first.weight and first.weight > 0 and first.weight_unit == "pounds"
    assert first.image_url == f"{sandbox.url}/images/shopify/c1/1000.svg"
    assert [c.api for c in shop.recorder.calls] == [Api.PRODUCTS] * 3  # 8 + 8 + 4
    assert len(shop.connector.fetch_products(limit=5).data) == 5


def test_every_probe_is_ok_and_recorded_under_its_api(shop):
    for api in Api:
        result = shop.connector.probe(api)
        assert result.outcome is Outcome.OK, (api, result.message)
    assert [(c.api, c.outcome) for c in shop.recorder.calls] == [(api, Outcome.OK) for api in Api]


def test_sandbox_answers_like_shopify_to_bad_requests(shop):
    unknown = shop.query("query Nope { shop { name } }")
    assert unknown["errors"][0]["extensions"]["code"] == "UNSUPPORTED_OPERATION"
    bad_id = shop.query("query OrderFulfillments($id: ID!) { order(id: $id) { id } }",
                        {"id": "1001"})
    assert "Invalid global id" in bad_id["errors"][0]["message"]
    mutation = "mutation FulfillmentCreate($fulfillment: FulfillmentInput!) { x }"
    refused = shop.query(mutation, {"fulfillment": {
        "lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/9"}],
        "trackingInfo": {"company": "UPS"}}})
    payload = refused["data"]["fulfillmentCreate"]
    assert payload["fulfillment"] is None
    assert {e["message"] for e in payload["userErrors"]} == {
        "Fulfillment order does not exist.", "Tracking number can't be blank"}
    cost = refused["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 10
    assert cost["throttleStatus"]["maximumAvailable"] == 2000
    assert cost["throttleStatus"]["restoreRate"] == 100
    no_token = requests.post(shop.graphql, json={"query": "query ProbeOrders { x }"}, timeout=5)
    assert no_token.status_code == 401 and "Invalid API key" in no_token.json()["errors"]
