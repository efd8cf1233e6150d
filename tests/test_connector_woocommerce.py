"""WooCommerce connector contract tests: the real connector over real HTTP against the
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

KEYS = ("ck_test", "cs_test")
TRACKINGS = "/wp-json/wc-shipment-tracking/v3/orders/{}/shipment-trackings"


class Site:
    """One WooCommerce site in the sandbox: the connector for it and its control API."""

    def __init__(self, base: str, *, credentials: dict | None = None,
                 endpoint: str | None = None, options: dict | None = None) -> None:
        self.url = endpoint or f"{base}/woocommerce/c1"
        self.control = f"{base}/_sandbox/woocommerce/c1"
        self.recorder = ListRecorder()
        self.connector = connector_for(
            AccountRef(1, "woocommerce", self.url, options or {}),
            {"consumer_key": KEYS[0], "consumer_secret": KEYS[1]} if credentials is None
            else credentials, recorder=self.recorder, timeout=(1, 2))

    def faults(self, **values) -> None:
        requests.put(f"{self.control}/faults", json=values, timeout=5).raise_for_status()

    def settings(self, **values) -> None:
        requests.put(f"{self.control}/settings", json=values, timeout=5).raise_for_status()

    def order(self, order_id: str) -> dict:
        return requests.get(f"{self.control}/orders/{order_id}", timeout=5).json()

    def get(self, what: str):
        return requests.get(f"{self.control}/{what}", timeout=5).json()[what]

    def store_call(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("auth", KEYS)
        return requests.request(method, self.url + path, timeout=5, **kwargs)


@pytest.fixture
def site(sandbox):
    site = Site(sandbox.url)
    yield site
    site.connector.close()


def package(order_id: str = "4501", tracking: str = "9400111899560000000000", *,
            carrier: str = "USPS") -> Package:
    return Package(order_id=order_id, package_key="78", tracking_number=tracking,
                   carrier=carrier, service="Ground Advantage",
                   ship_date=dt.datetime(2026, 11, 20, 15, 30, tzinfo=dt.UTC),
                   items=(Item(1, "45011", "SKU-1000"),))


def test_write_back_then_verify(site):
    pkg = package()
    written = site.connector.write_back(pkg)
    assert written.outcome is Outcome.ACCEPTED, written.message
    assert written.data["order_status"] == "completed" and written.data["tracking_id"]
    assert written.request_id and written.http_status == 200
    verified = site.connector.verify(pkg)
    assert verified.outcome is Outcome.VERIFIED, verified.message
    [write] = site.get("writes")
    assert write["payload"] == {"tracking_provider": "USPS", "tracking_number": pkg.tracking_number,
                                "date_shipped": "2026-11-20"}
    order = site.order("4501")
    assert order["status"] == "completed"
    assert order["shipments"][0]["tracking_link"].endswith(pkg.tracking_number)
    # the order's status first (a closed order is not reopened), the trackings, the new
    # tracking, the status update; then verify reads the order and its trackings
    assert [(c.api, c.outcome) for c in site.recorder.calls] == (
        [(Api.WRITEBACK, Outcome.OK)] * 4 + [(Api.ORDERS, Outcome.OK)] * 2)


def test_carrier_names_map_to_the_extension_providers(site):
    assert site.connector.write_back(package(carrier="fedex")).outcome is Outcome.ACCEPTED
    assert site.get("writes")[0]["payload"]["tracking_provider"] == "Fedex"


def test_verify_before_the_write_is_not_yet_visible_and_says_what_is_missing(site):
    result = site.connector.verify(package())
    assert result.outcome is Outcome.NOT_YET_VISIBLE
    assert "9400111899560000000000 is not listed" in result.message
    assert "'processing', not 'completed'" in result.message


def test_verification_lag(site):
    site.faults(verify_lag_s=1.0)
    pkg = package()
    assert site.connector.write_back(pkg).outcome is Outcome.ACCEPTED
    lagging = site.connector.verify(pkg)
    assert lagging.outcome is Outcome.NOT_YET_VISIBLE and "not listed" in lagging.message
    time.sleep(1.1)
    assert site.connector.verify(pkg).outcome is Outcome.VERIFIED


def test_resend_after_success_adds_no_second_tracking_item(site):
    pkg = package()
    assert site.connector.write_back(pkg).outcome is Outcome.ACCEPTED
    again = site.connector.write_back(pkg)
    assert again.outcome is Outcome.ACCEPTED and "already on order" in again.message
    assert len(site.get("writes")) == 1
    assert site.get("duplicates") == {}


def test_retry_after_a_half_done_write_only_completes_the_order(site):
    pkg = package("4502")
    first_try = site.store_call("POST", TRACKINGS.format("4502"), json={
        "tracking_provider": "USPS", "tracking_number": pkg.tracking_number})
    assert first_try.status_code == 201  # tracking added, then the attempt died
    assert site.connector.verify(pkg).outcome is Outcome.NOT_YET_VISIBLE
    retry = site.connector.write_back(pkg)
    assert retry.outcome is Outcome.ACCEPTED, retry.message
    assert site.order("4502")["status"] == "completed"
    assert len(site.get("writes")) == 1 and site.get("duplicates") == {}
    assert site.connector.verify(pkg).outcome is Outcome.VERIFIED


def test_unknown_carrier_is_refused_before_any_request(site):
    result = site.connector.write_back(package(carrier="Pony Express"))
    assert result.outcome is Outcome.NEEDS_FIXING
    assert "'Pony Express'" in result.message and "UPS" in result.message
    assert site.recorder.calls == []
    assert site.get("requests") == [] and site.get("writes") == []


def test_store_validation_error_comes_back_with_the_store_message(site):
    result = site.connector.write_back(package(tracking=" "))
    assert result.outcome is Outcome.NEEDS_FIXING and result.http_status == 400
    assert "Invalid parameter(s): tracking_number" in result.message
    assert "must not be empty" in result.message
    assert site.get("writes") == []


def test_strict_mode_unknown_order_needs_fixing(site):
    site.settings(strict_orders=True)
    result = site.connector.write_back(package("999111"))
    assert result.outcome is Outcome.NEEDS_FIXING and result.http_status == 404
    assert "Invalid ID." in result.message


def test_non_numeric_order_id_needs_fixing_without_a_request(site):
    result = site.connector.write_back(package("WC-4501"))
    assert result.outcome is Outcome.NEEDS_FIXING and "digits only" in result.message
    assert site.recorder.calls == []


def test_missing_keys_need_reauth_without_a_request(sandbox):
    site = Site(sandbox.url, credentials={"consumer_key": "ck_only"})
    result = site.connector.write_back(package())
    assert result.outcome is Outcome.NEEDS_REAUTH and "consumer_secret" in result.message
    assert site.recorder.calls == []


def test_exhausted_request_bucket_answers_429_with_retry_after(site):
    site.settings(limits={"requests": {"rate": 0.5, "burst": 2}})
    for _ in range(2):
        assert site.connector.probe(Api.ORDERS).outcome is Outcome.OK
    result = site.connector.probe(Api.ORDERS)
    assert result.outcome is Outcome.RETRYABLE and result.throttled
    assert result.http_status == 429 and result.retry_after == 2.0  # whole seconds


def test_products_with_weight_unit_and_image_across_pages(sandbox):
    site = Site(sandbox.url, options={"products_page_size": 8})
    result = site.connector.fetch_products()
    assert result.outcome is Outcome.OK
    assert len(result.data) == 20
    first = result.data[0]
    assert first.sku == "SKU-1000" and first.title
    assert first.weight and first.weight > 0 and first.weight_unit == "pounds"
    assert first.image_url == f"{sandbox.url}/images/woocommerce/c1/1000.svg"
    assert [c.api for c in site.recorder.calls] == [Api.PRODUCTS] * 4  # unit + 3 pages
    assert len(site.connector.fetch_products(limit=5).data) == 5


def test_every_probe_is_ok_and_recorded_under_its_api(site):
    for api in Api:
        result = site.connector.probe(api)
        assert result.outcome is Outcome.OK, (api, result.message)
    assert [(c.api, c.outcome) for c in site.recorder.calls] == [(api, Outcome.OK) for api in Api]
    assert len(site.get("requests")) == 4  # the Writeback probe made two calls


def test_the_writeback_probe_says_when_the_shop_refuses_the_key(sandbox):
    """The extension's providers route takes no key: the probe also reads one order with
    it, so refused credentials show on the Writeback API too, not only on the others."""
    site = Site(sandbox.url, credentials={"consumer_key": "ck_wrong", "consumer_secret": "x"})
    for api in Api:
        result = site.connector.probe(api)
        assert result.outcome is Outcome.NEEDS_REAUTH, (api, result.message)


def test_a_site_without_the_extension_is_named_in_the_probe(sandbox):
    # Below this endpoint the sandbox's WordPress knows no routes: it answers rest_no_route,
    # as a site without the Shipment Tracking extension does for the extension's paths.
    site = Site(sandbox.url, endpoint=f"{sandbox.url}/woocommerce/c1/wp-json/elsewhere")
    result = site.connector.probe(Api.WRITEBACK)
    assert result.outcome is Outcome.NEEDS_FIXING and result.http_status == 404
    assert "Shipment Tracking extension is not installed" in result.message


def test_sandbox_answers_like_woocommerce_to_bad_requests(site):
    path = TRACKINGS.format("4503")
    bad_date = site.store_call("POST", path, json={
        "tracking_provider": "UPS", "tracking_number": "1Z1", "date_shipped": "20/11/2026"})
    assert bad_date.status_code == 400
    assert bad_date.json()["code"] == "rest_invalid_param"
    assert bad_date.json()["data"]["params"] == {"date_shipped": "Invalid date."}
    unknown = site.store_call("POST", path, json={"tracking_provider": "Pony Express",
                                                  "tracking_number": "1Z1"})
    assert unknown.status_code == 400 and "tracking_provider" in unknown.json()["data"]["params"]
    missing = site.store_call("POST", path, json={"tracking_provider": "UPS"})
    assert missing.status_code == 400 and missing.json()["code"] == "rest_missing_callback_param"
    no_auth = site.store_call("GET", "/wp-json/wc/v3/orders", auth=None)
    assert no_auth.status_code == 401 and no_auth.json() == {
        "code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.",
        "data": {"status": 401}}
    site.settings(strict_orders=True)
    gone = site.store_call("GET", "/wp-json/wc/v3/orders/123")
    assert gone.status_code == 404 and gone.json() == {
        "code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.",
        "data": {"status": 404}}
    assert site.get("writes") == []


@pytest.mark.parametrize("closed", ["cancelled", "refunded"])
def test_a_closed_order_is_not_reopened_and_needs_fixing(site, closed):
    """WooCommerce takes a status update on any order: marking a cancelled or refunded
    order completed would reopen it. The write-back says so instead and changes nothing."""
    pkg = package("4502")
    assert site.store_call("PUT", "/wp-json/wc/v3/orders/4502",
                           json={"status": closed}).status_code == 200
    result = site.connector.write_back(pkg)
    assert result.outcome is Outcome.NEEDS_FIXING, result.message
    assert f"is {closed} on WooCommerce" in result.message
    assert site.order("4502")["status"] == closed
    assert site.store_call("GET", TRACKINGS.format("4502")).json() == []


def test_an_order_already_completed_is_not_updated_again(site):
    pkg = package("4503")
    assert site.store_call("PUT", "/wp-json/wc/v3/orders/4503",
                           json={"status": "completed"}).status_code == 200
    result = site.connector.write_back(pkg)
    assert result.outcome is Outcome.ACCEPTED, result.message
    puts = [c for c in site.get("requests") if c["method"] == "PUT"]
    assert len(puts) == 1  # only the test's own
    assert site.connector.verify(pkg).outcome is Outcome.VERIFIED
