"""BigCommerce connector contract tests: the real connector over real HTTP against the
marketplace sandbox on a free port, faults set through the sandbox's control API, and the
shipment bodies and answers checked against BigCommerce's own Orders V2 specification.
The fault cases every store shares (throttle, 5xx, outage page, hang, closed port,
refused credentials) are in test_connector_faults.py."""

from __future__ import annotations

import copy
import datetime as dt
import time

import pytest
import requests
import yaml
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from shipgear_exchange_plugin.connectors import (
    AccountRef,
    Api,
    Item,
    ListRecorder,
    Outcome,
    Package,
    connector_for,
)

from .conftest import spec_file

TOKEN = {"X-Auth-Token": "t", "Accept": "application/json"}


class Shop:
    """One BigCommerce store in the sandbox: the connector for it and its control API."""

    def __init__(self, base: str, credentials: dict | None = None, key: str = "c1") -> None:
        self.url = f"{base}/bigcommerce/{key}"
        self.control = f"{base}/_sandbox/bigcommerce/{key}"
        self.recorder = ListRecorder()
        self.connector = connector_for(
            AccountRef(1, "bigcommerce", self.url, {}),
            {"access_token": "t"} if credentials is None else credentials,
            recorder=self.recorder, timeout=(1, 2))

    def faults(self, **values) -> None:
        requests.put(f"{self.control}/faults", json=values, timeout=5).raise_for_status()

    def settings(self, **values) -> None:
        requests.put(f"{self.control}/settings", json=values, timeout=5).raise_for_status()

    def order(self, order_id: str, *lines: tuple[str | None, str, int]) -> None:
        items = [{"order_item_id": oid, "sku": sku, "quantity": qty} for oid, sku, qty in lines]
        requests.post(f"{self.control}/orders", json={"orders": [
            {"order_id": order_id, "items": items}]}, timeout=5).raise_for_status()

    def writes(self) -> list[dict]:
        return requests.get(f"{self.control}/writes", timeout=5).json()["writes"]

    def duplicates(self) -> dict:
        return requests.get(f"{self.control}/duplicates", timeout=5).json()["duplicates"]

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, headers=TOKEN, timeout=5, **kwargs)

    def post(self, path: str, body) -> requests.Response:
        return requests.post(self.url + path, headers=TOKEN, json=body, timeout=5)


@pytest.fixture
def shop(sandbox):
    shop = Shop(sandbox.url)
    yield shop
    shop.connector.close()


def package(order_id: str, tracking: str, *items: tuple[str | None, str | None, int],
            carrier: str = "UPS", service: str = "Ground") -> Package:
    return Package(order_id=order_id, package_key="41", tracking_number=tracking,
                   carrier=carrier, service=service,
                   ship_date=dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC),
                   items=tuple(Item(quantity=qty, order_item_id=oid, sku=sku)
                               for oid, sku, qty in items))


# -- write-back and verification ------------------------------------------------------------
def test_write_back_then_verify(shop):
    shop.order("1001", ("100101", "SKU-1000", 2), (None, "SKU-1001", 1))
    pkg = package("1001", "1Z999AA10123456784", ("100101", None, 2), (None, "SKU-1001", 1))

    written = shop.connector.write_back(pkg)
    assert written.outcome == Outcome.ACCEPTED, written.message
    assert written.http_status == 201 and written.request_id and written.latency_ms is not None
    assert isinstance(written.data["shipment_id"], int)

    verified = shop.connector.verify(pkg)
    assert verified.outcome == Outcome.VERIFIED, verified.message
    assert verified.data["status"] == "Shipped"
    [write] = shop.writes()
    assert write["payload"] == {
        "order_address_id": 10011, "tracking_number": "1Z999AA10123456784",
        "shipping_method": "Ground", "shipping_provider": "ups", "tracking_carrier": "ups",
        "items": [{"order_product_id": 100101, "quantity": 2},
                  {"order_product_id": 100102, "quantity": 1}]}
    assert {c.api for c in shop.recorder.calls} == {Api.WRITEBACK, Api.ORDERS}


def test_verify_before_write_back_is_not_yet_visible(shop):
    shop.order("1002", ("100201", "SKU-1000", 1))
    result = shop.connector.verify(package("1002", "1ZNOTSENT", ("100201", None, 1)))
    assert result.outcome == Outcome.NOT_YET_VISIBLE
    assert "1ZNOTSENT" in result.message
    assert shop.get("/v2/orders/1002/shipments").status_code == 204  # empty: no body


def test_verification_lag(shop):
    shop.faults(verify_lag_s=0.5)
    shop.order("1003", ("100301", "SKU-1002", 1))
    pkg = package("1003", "1ZLAG0001", ("100301", None, 1))
    assert shop.connector.write_back(pkg).outcome == Outcome.ACCEPTED
    assert shop.connector.verify(pkg).outcome == Outcome.NOT_YET_VISIBLE
    time.sleep(0.6)
    assert shop.connector.verify(pkg).outcome == Outcome.VERIFIED


def test_resend_after_success_creates_no_second_shipment(shop):
    shop.order("1004", ("100401", "SKU-1003", 3))
    pkg = package("1004", "1ZRESEND01", ("100401", None, 3))
    assert shop.connector.write_back(pkg).outcome == Outcome.ACCEPTED
    again = shop.connector.write_back(pkg)  # e.g. the engine lost the first answer
    assert again.outcome == Outcome.VERIFIED, again.message
    assert len(shop.writes()) == 1
    assert shop.duplicates() == {}


def test_two_packages_of_one_order(shop):
    shop.order("1005", ("100501", "SKU-1004", 1), ("100502", "SKU-1005", 2))
    first = package("1005", "1ZFIRST001", ("100501", None, 1))
    second = package("1005", "9400111899223344556677", ("100502", None, 2), carrier="usps",
                     service="Priority Mail")
    assert shop.connector.write_back(first).outcome == Outcome.ACCEPTED
    assert shop.connector.verify(first).data["status"] == "Partially Shipped"
    assert shop.get("/v2/orders/1005").json()["status_id"] == 3
    assert shop.connector.write_back(second).outcome == Outcome.ACCEPTED
    assert shop.connector.verify(second).data["status"] == "Shipped"
    assert shop.get("/v2/orders/1005").json()["status_id"] == 2
    shipments = shop.get("/v2/orders/1005/shipments").json()
    assert [s["tracking_number"] for s in shipments] == ["1ZFIRST001", "9400111899223344556677"]
    assert [s["shipping_provider"] for s in shipments] == ["ups", "usps"]


def test_carriers_map_case_insensitively_and_custom_ones_use_tracking_carrier(shop):
    shop.order("1006", ("100601", "SKU-1000", 1), ("100602", "SKU-1001", 1))
    assert shop.connector.write_back(package("1006", "123456789012", ("100601", None, 1),
                                             carrier="fedex")).outcome == Outcome.ACCEPTED
    assert shop.connector.write_back(package("1006", "JD0146000012345", ("100602", None, 1),
                                             carrier="DHL")).outcome == Outcome.ACCEPTED
    fedex, dhl = (w["payload"] for w in shop.writes())
    assert (fedex["shipping_provider"], fedex["tracking_carrier"]) == ("fedex", "fedex")
    assert "shipping_provider" not in dhl and dhl["tracking_carrier"] == "dhl"


def test_open_mode_orders_have_lines_derived_from_their_id(shop):
    lines = shop.get("/v2/orders/7070/products").json()
    assert lines == shop.get("/v2/orders/7070/products").json()  # same order, same lines
    assert 1 <= len(lines) <= 3 and all(line["sku"].startswith("SKU-") for line in lines)
    pkg = package("7070", "1ZOPEN0001", (None, lines[0]["sku"], lines[0]["quantity"]))
    assert shop.connector.write_back(pkg).outcome == Outcome.ACCEPTED
    assert shop.connector.verify(pkg).outcome == Outcome.VERIFIED


# -- errors the host has to fix ---------------------------------------------------------------
def test_unknown_carrier_is_refused_before_any_request(shop):
    shop.order("1007", ("100701", "SKU-1000", 1))
    result = shop.connector.write_back(package("1007", "PX1", ("100701", None, 1),
                                               carrier="Pony Express"))
    assert result.outcome == Outcome.NEEDS_FIXING
    assert "Pony Express" in result.message and "UPS" in result.message
    assert shop.recorder.calls == []
    assert shop.writes() == []


def test_quantity_above_what_remains_needs_fixing(shop):
    shop.settings(strict_orders=True)
    shop.order("1008", ("100801", "SKU-1000", 1))
    result = shop.connector.write_back(package("1008", "1ZTOOMANY", (None, "SKU-1000", 3)))
    assert result.outcome == Outcome.NEEDS_FIXING
    assert "1 left to ship" in result.message and "3" in result.message
    assert shop.writes() == []


def test_item_not_on_the_order_needs_fixing(shop):
    shop.order("1009", ("100901", "SKU-1000", 1))
    result = shop.connector.write_back(package("1009", "1ZNOITEM", (None, "SKU-9999", 1)))
    assert result.outcome == Outcome.NEEDS_FIXING and "SKU-9999" in result.message
    assert shop.writes() == []


def test_order_id_that_is_not_a_number_needs_fixing_without_a_request(shop):
    result = shop.connector.write_back(package("A-17", "1ZX", (None, "SKU-1000", 1)))
    assert result.outcome == Outcome.NEEDS_FIXING and "A-17" in result.message
    assert shop.recorder.calls == []


def test_unknown_order_in_strict_mode_needs_fixing(shop):
    shop.settings(strict_orders=True)
    result = shop.connector.write_back(package("424242", "1ZNOORDER", (None, "SKU-1000", 1)))
    assert result.outcome == Outcome.NEEDS_FIXING
    assert result.http_status == 404
    assert "The requested resource was not found." in result.message


def test_store_validation_error_reaches_the_host_with_the_store_message(shop):
    shop.faults(error_rate=1.0, error_status=400)
    shop.order("1010", ("101001", "SKU-1000", 1))
    result = shop.connector.write_back(package("1010", "1ZBAD", ("101001", None, 1)))
    assert result.outcome == Outcome.NEEDS_FIXING and result.http_status == 400
    assert "Injected error 400" in result.message


MALFORMED = [
    ({"order_address_id": None}, "The required field 'order_address_id' was not supplied."),
    ({"items": []}, "The required field 'items' was not supplied."),
    ({"order_address_id": 5}, "The field 'order_address_id' is invalid."),
    ({"items": [{"order_product_id": 999, "quantity": 1}]}, "order_product_id"),
    ({"items": [{"order_product_id": 110101, "quantity": 5}]}, "greater than the quantity"),
    ({"items": [{"order_product_id": 110101, "product_id": 0, "quantity": 1}]},
     "The field 'product_id' cannot be written to."),
    ({"shipping_provider": "dhl"}, "The field 'shipping_provider' is invalid"),
]


def test_sandbox_rejects_malformed_shipments_like_bigcommerce(shop):
    shop.settings(strict_orders=True)
    shop.order("1101", ("110101", "SKU-1000", 2))
    valid = {"order_address_id": 11011, "tracking_number": "1ZMALFORMED",
             "shipping_provider": "ups", "items": [{"order_product_id": 110101, "quantity": 1}]}
    for change, message in MALFORMED:
        body = {k: v for k, v in {**valid, **change}.items() if v is not None}
        response = shop.post("/v2/orders/1101/shipments", body)
        assert response.status_code == 400, change
        [error] = response.json()
        assert error["status"] == 400 and message in error["message"], (change, error)
    assert shop.writes() == []
    unknown = shop.get("/v2/orders/31337/shipments")
    assert unknown.status_code == 404
    assert unknown.json() == [{"status": 404, "message": "The requested resource was not found."}]


# -- credentials --------------------------------------------------------------------------------
def test_missing_token_is_refused_by_the_store_and_by_the_connector(sandbox):
    response = requests.get(f"{sandbox.url}/bigcommerce/c1/v2/orders", timeout=5)
    assert response.status_code == 401
    assert response.json()[0]["status"] == 401
    v3 = requests.get(f"{sandbox.url}/bigcommerce/c1/v3/catalog/products", timeout=5)
    assert v3.status_code == 401 and v3.json()["status"] == 401 and "title" in v3.json()
    shop = Shop(sandbox.url, credentials={})
    assert shop.connector.probe(Api.ORDERS).outcome == Outcome.NEEDS_REAUTH
    assert shop.recorder.calls == []


# -- throttling and outages -------------------------------------------------------------------
def test_exhausted_quota_window_is_retryable_with_the_reset_time(shop):
    shop.settings(limits={"requests": {"limit": 3, "window": 30}})
    for _ in range(3):
        assert shop.connector.probe(Api.ORDERS).outcome == Outcome.OK
    result = shop.connector.probe(Api.ORDERS)
    assert result.outcome == Outcome.RETRYABLE and result.throttled
    assert result.http_status == 429 and 25 < result.retry_after <= 30
    response = shop.get("/v2/orders")
    assert response.status_code == 429
    assert response.headers["X-Rate-Limit-Requests-Left"] == "0"
    assert response.headers["X-Rate-Limit-Requests-Quota"] == "3"
    assert response.headers["X-Rate-Limit-Time-Window-Ms"] == "30000"
    assert 25000 < int(response.headers["X-Rate-Limit-Time-Reset-Ms"]) <= 30000
    assert shop.recorder.calls[-1].throttled


def test_every_answer_carries_the_quota_headers(shop):
    response = shop.get("/v3/catalog/products", params={"limit": 1})
    assert response.headers["X-Rate-Limit-Requests-Quota"] == "150"
    assert response.headers["X-Rate-Limit-Requests-Left"] == "149"
    assert int(response.headers["X-Rate-Limit-Time-Reset-Ms"]) <= 30000


# -- products and probes -------------------------------------------------------------------------
def test_products_with_weight_unit_and_image(shop, sandbox):
    result = shop.connector.fetch_products()
    assert result.outcome == Outcome.OK
    catalogue = sandbox.store.account("bigcommerce", "c1").products
    assert len(result.data) == len(catalogue) == 20
    first, seeded = result.data[0], catalogue[0]
    assert (first.sku, first.title, first.weight) == (seeded["sku"], seeded["title"],
                                                      seeded["weight"])
    assert first.weight_unit == "lb"
    assert first.image_url == f"{sandbox.url}/images/{seeded['image']}.svg"


def test_products_are_paged(shop, sandbox):
    sandbox.store.account("bigcommerce", "c1").seed_products(300)
    result = shop.connector.fetch_products(limit=260)
    assert result.outcome == Outcome.OK and len(result.data) == 260
    assert result.data[-1].sku == "SKU-1259"
    assert [c.api for c in shop.recorder.calls] == [Api.PRODUCTS] * 3  # store + two pages


def test_every_probe_works_and_is_recorded_under_its_api(shop):
    for api in Api:
        result = shop.connector.probe(api)
        assert result.outcome == Outcome.OK, (api, result.message)
        assert result.http_status in (200, 204)
    assert [(c.api, c.outcome) for c in shop.recorder.calls] == [
        (api, Outcome.OK) for api in Api]


# -- BigCommerce's specification ------------------------------------------------------------------
def _load(name: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(spec_file("bigcommerce", name).read_text(),  # noqa: S506 - a safe loader
                     Loader=loader)


def _errata(spec: dict) -> dict:
    """Two places where orders.v2's schemas contradict its own text and examples: billing
    ``zip``/``phone`` are typed number while every example sends strings, and the shipment's
    ``shipping_provider`` enum has " " where the description allows an empty string."""
    fixed = copy.deepcopy(spec)
    schemas = fixed["components"]["schemas"]
    for name in ("zip", "phone"):
        schemas["billingAddress_Base"]["properties"][name]["type"] = ["string", "number"]
    schemas["orderShipment"]["properties"]["shipping_provider"]["enum"].append("")
    return fixed


def _validator(spec: dict, pointer: str) -> Draft4Validator:
    registry = Registry().with_resource("urn:spec", Resource(spec, specification=DRAFT4))
    return Draft4Validator({"$ref": f"urn:spec#{pointer}"}, registry=registry)


def _problems(validator: Draft4Validator, instance) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(instance)]


@pytest.fixture(scope="module")
def orders_spec() -> dict:
    return _load("orders.v2.oas2.yml")


def test_errata_are_only_the_specs_own_contradictions(orders_spec):
    example = orders_spec["components"]["responses"]["orderShipment_Resp"]["content"][
        "application/json"]["examples"]["application/json"]["value"]
    pointer = "/components/schemas/orderShipment"
    assert _problems(_validator(orders_spec, pointer), example)  # the spec fails its example
    assert _problems(_validator(_errata(orders_spec), pointer), example) == []


def test_shipments_sent_and_answered_match_the_orders_v2_spec(shop, orders_spec):
    spec = _errata(orders_spec)
    request_schema = _validator(orders_spec, "/components/schemas/orderShipment_Post")
    content = "/content/application~1json/schema"
    shop.order("1017", ("101701", "SKU-1000", 2), ("101702", "SKU-1001", 1))
    assert shop.connector.write_back(package("1017", "1ZSPEC0001", ("101701", None, 1))
                                     ).outcome == Outcome.ACCEPTED
    assert shop.connector.write_back(package("1017", "JD014600SPEC", ("101702", None, 1),
                                             carrier="DHL")).outcome == Outcome.ACCEPTED
    for write in shop.writes():  # the bodies the connector sent, validated unpatched
        assert _problems(request_schema, write["payload"]) == []

    created = shop.post("/v2/orders/1017/shipments", {
        "order_address_id": 10171, "tracking_number": "1ZSPEC0003", "shipping_provider": "ups",
        "items": [{"order_product_id": 101701, "quantity": 1}]})
    assert created.status_code == 201
    one = _validator(spec, "/components/responses/orderShipment_Resp" + content)
    assert _problems(one, created.json()) == []
    assert email_date(created.json()["date_created"])

    answers = {
        "/v2/orders/1017/shipments": "orderShipmentCollection_Resp",
        "/v2/orders/1017/products": "orderProductsCollection_Resp",
        "/v2/orders/1017/shipping_addresses": "orderShippingAddressCollection_Resp",
        "/v2/orders/1017": "order_Resp",
        "/v2/orders/count": "ordersCount_Resp",
    }
    for path, response in answers.items():
        answer = shop.get(path)
        assert answer.status_code == 200, path
        validator = _validator(spec, f"/components/responses/{response}{content}")
        assert _problems(validator, answer.json()) == [], path
    assert len(shop.get("/v2/orders/1017/shipments").json()) == 3


def test_catalog_answer_matches_the_catalog_v3_spec(shop):
    spec = _load("catalog.v3.yml")
    answer = shop.get("/v3/catalog/products", params={"include": "images", "limit": 5})
    validator = _validator(spec, "/responses/ProductCollectionResponse/schema")
    assert _problems(validator, answer.json()) == []
    assert answer.json()["meta"]["pagination"]["total_pages"] == 4


def email_date(text: str) -> dt.datetime:
    """RFC 2822, as BigCommerce V2 writes dates ("Mon, 11 Mar 2019 17:22:08 +0000")."""
    import email.utils

    return email.utils.parsedate_to_datetime(text)
