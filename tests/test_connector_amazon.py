"""Amazon SP-API connector contract tests: the real connector over real HTTP against the
marketplace sandbox on a free port, faults and limits set through the control API.

Every request body the connector sends in these tests (confirmShipment, createFeedDocument,
createFeed) is checked against the official models in ../shared/specs/amazon-sp-api after
each test, with the models closed (no property they do not declare), and the sandbox's
answers are checked against the models' response definitions.

The fault cases every store shares (throttle, 5xx, outage page, hang, closed port,
refused credentials) are in test_connector_faults.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
import uuid
import warnings
from functools import cache

import pytest
import requests
from jsonschema import Draft4Validator, FormatChecker

from shipgear_exchange_plugin.connectors import (
    AccountRef,
    Api,
    Item,
    ListRecorder,
    Outcome,
    Package,
    connector_for,
)
from shipgear_exchange_plugin.connectors.amazon import (
    FULFILLMENT_FEED_COLUMNS,
    MAX_REPORT,
    AmazonConnector,
    amazon_carrier,
)

from .conftest import IN_CI, SPECS_DIR, spec_file

ORDER = "111-0000001-0000001"
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value) -> bool:
    if isinstance(value, str):
        if "T" not in value:
            raise ValueError(f"{value!r} has no time")
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@cache
def _spec(name: str) -> dict:
    return json.loads(spec_file("amazon-sp-api", name).read_text())


def schema(spec: str, definition: str) -> Draft4Validator:
    """The official definition, closed: an object may only carry the properties its model
    declares (the models leave ``additionalProperties`` open, which would hide a typo)."""
    definitions = copy.deepcopy(_spec(spec)["definitions"])
    for model in definitions.values():
        if model.get("type") == "object" and "properties" in model:
            model.setdefault("additionalProperties", False)
    return Draft4Validator({"$ref": f"#/definitions/{definition}", "definitions": definitions},
                           format_checker=FORMATS)


def assert_valid(spec: str, definition: str, instance) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in schema(spec, definition).iter_errors(instance)]
    assert errors == [], f"{definition}: {errors}"


class Seller:
    """One Amazon seller account in the sandbox: connectors for it and its control API."""

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.endpoint = f"{sandbox.url}/amazon/c1"
        self.control = f"{sandbox.url}/_sandbox/amazon/c1"
        self.recorder = ListRecorder()
        self.client_id = f"amzn1.application-oa2-client.{uuid.uuid4().hex}"  # no shared cache
        self.made: list[AmazonConnector] = []

    def connector(self, *, endpoint: str | None = None, timeout=(1, 2), client_id=None,
                  throttle=None, **options) -> AmazonConnector:
        endpoint = endpoint or self.endpoint
        ref = AccountRef(1, "amazon", endpoint,
                         {**AmazonConnector.default_options(endpoint), **options})
        credentials = {"client_id": client_id or self.client_id, "client_secret": "secret",
                       "refresh_token": "Atzr|refresh-token"}
        connector = connector_for(ref, credentials, recorder=self.recorder, timeout=timeout,
                                  throttle=throttle)
        self.made.append(connector)
        return connector

    @property
    def account(self):
        return self.sandbox.store.account("amazon", "c1")

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

    def token(self) -> str:
        """An access token the way any client gets one (for raw calls in tests)."""
        reply = requests.post(f"{self.endpoint}/auth/o2/token", timeout=5, data={
            "grant_type": "refresh_token", "refresh_token": "Atzr|raw",
            "client_id": "raw-client", "client_secret": "secret"})
        reply.raise_for_status()
        return reply.json()["access_token"]


@pytest.fixture
def seller(sandbox):
    seller = Seller(sandbox)
    yield seller
    for connector in seller.made:
        connector.close()
    if IN_CI or (SPECS_DIR / "amazon-sp-api").is_dir():
        check_bodies_against_the_models(seller)
    else:  # a checkout without ../shared: the behaviour still ran, say what did not
        warnings.warn(f"request bodies not checked: no Amazon models at {SPECS_DIR}",
                      stacklevel=1)


def check_bodies_against_the_models(seller: Seller) -> None:
    """Schema proof: every body this test sent, as the sandbox received it."""
    for write in seller.get("writes"):
        if write["operation"] == "confirmShipment":
            assert_valid("ordersV0.json", "ConfirmShipmentRequest", write["payload"])
    for document in seller.account.documents.values():
        if "request" in document:
            assert_valid("feeds_2021-06-30.json", "CreateFeedDocumentSpecification",
                         document["request"])
    for feed in seller.account.feeds.values():
        assert_valid("feeds_2021-06-30.json", "CreateFeedSpecification", feed["request"])


def package(key: str = "101", tracking: str = "1Z999AA10000000001", *, order_id: str = ORDER,
            carrier: str = "UPS", items: tuple[Item, ...] = (Item(2, "5551", "SKU-1000"),),
            ) -> Package:
    return Package(order_id=order_id, package_key=key, tracking_number=tracking,
                   carrier=carrier, service="Ground",
                   ship_date=dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC), items=items)


# -- write-back and verification -------------------------------------------------------
def test_write_back_then_verify(seller):
    amazon, pkg = seller.connector(), package()
    before = amazon.verify(pkg)
    assert before.outcome is Outcome.NOT_YET_VISIBLE, before.message
    assert "no packages" in before.message

    written = amazon.write_back(pkg)
    assert written.outcome is Outcome.ACCEPTED, written.message
    assert written.http_status == 204 and written.request_id and written.latency_ms is not None

    checked = amazon.verify(pkg)
    assert checked.outcome is Outcome.VERIFIED, checked.message
    assert "1Z999AA10000000001" in checked.message and checked.request_id

    [write] = seller.get("writes")
    detail = write["payload"]["packageDetail"]
    assert write["payload"]["marketplaceId"] == "ATVPDKIKX0DER"
    assert detail == {"packageReferenceId": "101", "carrierCode": "UPS",
                      "shippingMethod": "Ground", "trackingNumber": "1Z999AA10000000001",
                      "shipDate": "2026-11-27T10:00:00Z",
                      "orderItems": [{"orderItemId": "5551", "quantity": 2}]}


def test_verification_waits_for_the_store_to_show_the_package(seller):
    seller.faults(verify_lag_s=0.5)
    amazon, pkg = seller.connector(), package()
    assert amazon.write_back(pkg).outcome is Outcome.ACCEPTED
    early = amazon.verify(pkg)
    assert early.outcome is Outcome.NOT_YET_VISIBLE, early.message
    time.sleep(0.6)
    assert amazon.verify(pkg).outcome is Outcome.VERIFIED


def test_resend_edits_the_package_and_a_second_package_adds(seller):
    amazon = seller.connector()
    first, second = package("101"), package("102", "1Z999AA10000000002",
                                            items=(Item(1, "5552", "SKU-1001"),))
    for pkg in (first, first, second):
        assert amazon.write_back(pkg).outcome is Outcome.ACCEPTED
    assert [w["edit"] for w in seller.get("writes")] == [False, True, False]
    assert seller.get("duplicates") == {}
    shipments = requests.get(f"{seller.control}/orders/{ORDER}", timeout=5).json()["shipments"]
    assert sorted(s["package_reference_id"] for s in shipments) == ["101", "102"]
    assert amazon.verify(second).outcome is Outcome.VERIFIED


def test_carrier_names_map_to_amazon_codes():
    assert amazon_carrier("ups") == ("UPS", None)
    assert amazon_carrier("United States Postal Service") == ("USPS", None)
    assert amazon_carrier("Fed Ex") == ("FedEx", None)
    assert amazon_carrier("DHL Express") == ("DHL", None)
    assert amazon_carrier("ontrac") == ("OnTrac", None)
    assert amazon_carrier("Local Courier") is None
    assert amazon_carrier("local courier", ["Local Courier"]) == ("Other", "local courier")
    assert amazon_carrier("Other", ["Other"]) is None and amazon_carrier("  ") is None


def test_what_amazon_cannot_take_is_refused_before_any_request(seller):
    amazon = seller.connector()
    unknown = amazon.write_back(package(carrier="Pony Express"))
    assert unknown.outcome is Outcome.NEEDS_FIXING
    assert "Pony Express" in unknown.message and "Other" in unknown.message
    assert amazon.write_back(package(carrier="")).outcome is Outcome.NEEDS_FIXING
    no_item = amazon.write_back(package(items=(Item(1, None, "SKU-1007"),)))
    assert no_item.outcome is Outcome.NEEDS_FIXING and "SKU-1007" in no_item.message
    bad_order = amazon.write_back(package(order_id="4711"))
    assert bad_order.outcome is Outcome.NEEDS_FIXING and "3-7-7" in bad_order.message
    assert seller.get("requests") == [] and seller.recorder.calls == []
    assert seller.account.tokens == {}


def test_a_listed_other_carrier_goes_as_other_with_its_name(seller):
    amazon = seller.connector(other_carriers=["Local Courier"])
    assert amazon.write_back(package(carrier="Local Courier")).outcome is Outcome.ACCEPTED
    detail = seller.get("writes")[0]["payload"]["packageDetail"]
    assert (detail["carrierCode"], detail["carrierName"]) == ("Other", "Local Courier")


def test_amazon_validation_errors_are_needs_fixing_with_its_message(seller):
    seller.settings(strict_orders=True)
    seller.order(ORDER, ("5551", "SKU-1000", 1))
    amazon = seller.connector()
    wrong_item = amazon.write_back(package(items=(Item(1, "9999", "SKU-1000"),)))
    assert wrong_item.outcome is Outcome.NEEDS_FIXING and wrong_item.http_status == 400
    assert "InvalidInput" in wrong_item.message and "9999" in wrong_item.message
    too_many = amazon.write_back(package(items=(Item(2, "5551", "SKU-1000"),)))
    assert too_many.outcome is Outcome.NEEDS_FIXING and "exceeds" in too_many.message
    unknown = amazon.write_back(package(order_id="222-0000002-0000002"))
    assert unknown.outcome is Outcome.NEEDS_FIXING and unknown.http_status == 404
    assert "NotFound" in unknown.message
    assert seller.get("writes") == []


def test_the_sandbox_rejects_malformed_confirmations_like_amazon(seller):
    headers = {"x-amz-access-token": seller.token()}
    url = f"{seller.endpoint}/orders/v0/orders/{ORDER}/shipmentConfirmation"
    good = seller.connector().confirmation_body(package())
    cases = {
        "packageReferenceId": lambda b: b["packageDetail"].update(packageReferenceId=101),
        "shipDate": lambda b: b["packageDetail"].update(shipDate="11/27/2026"),
        "carrierName": lambda b: b["packageDetail"].update(carrierCode="Other"),
        "carrierCode": lambda b: b["packageDetail"].update(carrierCode="Pony"),
        "quantity": lambda b: b["packageDetail"]["orderItems"][0].update(quantity=0),
        "marketplaceId": lambda b: b.pop("marketplaceId"),
    }
    for field, spoil in cases.items():
        body = copy.deepcopy(good)
        spoil(body)
        reply = requests.post(url, json=body, headers=headers, timeout=5)
        assert reply.status_code == 400, field
        assert_valid("ordersV0.json", "ConfirmShipmentErrorResponse", reply.json())
        assert field in reply.json()["errors"][0]["message"]
        assert reply.headers["x-amzn-RequestId"] and reply.headers["x-amzn-RateLimit-Limit"]
    assert seller.get("writes") == []


# -- credentials -----------------------------------------------------------------------
def test_credentials_refused_at_login_need_reauthorising(seller):
    # With a token in hand the refusal is a shared case (test_connector_faults.py); here
    # a connector without one is refused at the token exchange itself.
    seller.faults(auth_refused=True)
    fresh = seller.connector(client_id="another-client").probe(Api.PRODUCTS)
    assert fresh.outcome is Outcome.NEEDS_REAUTH
    assert seller.get("writes") == []


def test_one_token_exchange_serves_many_calls_and_a_revoked_one_is_replaced(seller):
    for _ in range(2):  # a new connector per job, as the worker builds them
        amazon = seller.connector()
        assert amazon.probe(Api.ORDERS).ok and amazon.write_back(package()).ok
        assert amazon.verify(package()).outcome is Outcome.VERIFIED
    assert len(seller.account.tokens) == 1
    tokens = [r for r in seller.get("requests") if r["path"].endswith("/auth/o2/token")]
    assert len(tokens) == 1

    with seller.account.lock:
        seller.account.tokens.clear()  # Amazon forgot it (revoked, expired early)
    seller.recorder.calls.clear()
    assert seller.connector().verify(package()).outcome is Outcome.VERIFIED
    assert len(seller.account.tokens) == 1
    assert [c.outcome for c in seller.recorder.calls] == [Outcome.OK, Outcome.OK]


# -- throttling and failures -------------------------------------------------------------
def test_an_exhausted_confirm_shipment_bucket_answers_429(seller):
    seller.settings(limits={"confirmShipment": {"rate": 1, "burst": 2}})
    amazon = seller.connector()
    results = [amazon.write_back(package(str(100 + n), f"1Z999AA1000000000{n}"))
               for n in range(1, 4)]
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.ACCEPTED,
                                            Outcome.RETRYABLE]
    assert results[2].throttled and results[2].retry_after == pytest.approx(1.0)
    assert "retry in 1 s" in results[2].message
    assert len(seller.get("writes")) == 2


class SpentBudget:
    """The shared rate limit with nothing left for the next 5 seconds."""

    def wait_for(self, account_id, platform, api) -> float:
        return 5.0


def test_a_call_held_back_by_the_shared_rate_limit_is_deferred_unsent(seller):
    result = seller.connector(throttle=SpentBudget()).write_back(package())
    assert result.outcome is Outcome.RETRYABLE and result.deferred and not result.maybe_applied
    # Login with Amazon is outside the SP-API budget; no SP-API call went out.
    sent = [r["path"] for r in seller.get("requests")]
    assert all(path.endswith("/auth/o2/token") for path in sent)
    assert [c.api for c in seller.recorder.calls if c.http_status != 200] == []
    assert "confirmShipment" not in str(seller.get("writes"))


def test_a_store_hanging_at_login_is_retryable_and_not_applied(seller):
    # Hanging after the token exchange is a shared case (test_connector_faults.py); hanging
    # at the token exchange, nothing can have reached confirmShipment.
    seller.faults(outage="hang", hang_seconds=3)
    at_login = seller.connector(client_id="late-client", timeout=(1, 1)).write_back(package())
    assert at_login.outcome is Outcome.RETRYABLE and not at_login.maybe_applied
    assert "Login with Amazon" in at_login.message


# -- products and probes -------------------------------------------------------------------
def test_products_come_with_weight_unit_and_image(seller):
    seller.account.seed_products(45)
    amazon = seller.connector()
    result = amazon.fetch_products(limit=45)
    assert result.outcome is Outcome.OK, result.message
    expected = {p["sku"]: p for p in seller.account.products}
    assert [p.sku for p in result.data] == list(expected)
    for product in result.data:
        store = expected[product.sku]
        assert (product.title, product.weight, product.weight_unit, product.image_url) == (
            store["title"], store["weight"], "pounds",
            f"{seller.sandbox.url}/images/{store['image']}.svg")
    assert len(amazon.fetch_products(limit=7).data) == 7
    throttled = [c for c in seller.recorder.calls if c.throttled]
    assert throttled == [] and {c.api for c in seller.recorder.calls} == {Api.PRODUCTS}

    no_seller = seller.connector(seller_id="").fetch_products()
    assert no_seller.outcome is Outcome.NEEDS_FIXING and "seller ID" in no_seller.message


def test_every_probe_is_ok_and_recorded_under_its_api(seller):
    amazon = seller.connector()
    for api in Api:
        seen = len(seller.recorder.calls)
        result = amazon.probe(api)
        assert result.outcome is Outcome.OK, (api, result.message)
        calls = seller.recorder.calls[seen:]
        assert calls and {c.api for c in calls} == {api}
        assert all(c.outcome is Outcome.OK and c.http_status == 200 for c in calls)


# -- feeds ---------------------------------------------------------------------------------
def wait_for_feed(amazon: AmazonConnector, feed_id: str) -> list[str]:
    seen = []
    for _ in range(50):
        status = amazon.feed_status(feed_id)
        assert status.outcome is Outcome.OK, status.message
        if not seen or seen[-1] != status.data["status"]:
            seen.append(status.data["status"])
        if status.data["status"] not in ("IN_QUEUE", "IN_PROGRESS"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"feed {feed_id} never finished: {seen}")


def test_a_feed_runs_to_done_and_maps_results_per_package(seller):
    seller.settings(strict_orders=True, feed_delay_s=0.5)
    seller.order(ORDER, ("5551", "SKU-1000", 2))
    seller.order("111-0000002-0000002", ("6661", "SKU-1001", 1), ("6662", "SKU-1002", 1))
    good = package()
    two_lines = package("201", "9400100000000000000002", order_id="111-0000002-0000002",
                        carrier="USPS", items=(Item(1, "6661", "SKU-1001"),
                                               Item(1, "6662", "SKU-1002")))
    unknown = package("301", "9400100000000000000003", order_id="999-0000009-0000009")
    packages = [good, two_lines, unknown]
    amazon = seller.connector()

    submitted = amazon.submit_feed(packages)
    assert submitted.outcome is Outcome.ACCEPTED, submitted.message
    early = amazon.feed_results(submitted.data, packages)
    assert early.outcome is Outcome.NOT_YET_VISIBLE and "IN_" in early.message
    states = wait_for_feed(amazon, submitted.data)
    assert states[0] in ("IN_QUEUE", "IN_PROGRESS") and states[-1] == "DONE"

    results = amazon.feed_results(submitted.data, packages)
    assert results.outcome is Outcome.OK, results.message
    assert results.data["101"] == (True, "") and results.data["201"] == (True, "")
    ok, message = results.data["301"]
    assert not ok and "999-0000009-0000009" in message and "not found" in message
    # The engine polls only the rows still waiting: a subset maps just as well.
    assert amazon.feed_results(submitted.data, [two_lines]).data == {"201": (True, "")}

    assert [w["operation"] for w in seller.get("writes")] == ["feed", "feed"]
    assert amazon.verify(two_lines).outcome is Outcome.VERIFIED
    document = next(d for d in seller.account.documents.values() if d["kind"] == "input")
    lines = document["content"].decode().splitlines()
    assert lines[0].split("\t") == list(FULFILLMENT_FEED_COLUMNS) and len(lines) == 5
    assert document["contentType"] == "text/tab-separated-values; charset=UTF-8"


def test_a_feed_nobody_polls_is_still_applied_when_its_time_comes(seller):
    """Amazon processes a feed whether or not its sender asks about it (the poll job may
    be lost): once the feed's time has passed, the order shows the package."""
    seller.settings(strict_orders=True, feed_delay_s=0.4)
    seller.order(ORDER, ("5551", "SKU-1000", 2))
    amazon = seller.connector()
    assert amazon.submit_feed([package()]).outcome is Outcome.ACCEPTED
    assert amazon.verify(package()).outcome is Outcome.NOT_YET_VISIBLE  # still in the queue
    time.sleep(0.5)
    assert amazon.verify(package()).outcome is Outcome.VERIFIED, "no getFeed call was made"
    assert [w["operation"] for w in seller.get("writes")] == ["feed"]


def test_gzip_processing_reports_are_unpacked_and_a_broken_one_is_not_taken_for_results(
        seller):
    """Amazon often sends processing reports compressed (getFeedDocument's
    ``compressionAlgorithm: GZIP``): each package gets its result as from a plain report.
    A damaged download is retried; one that unpacks past the size cap is left to a person,
    never read into memory."""
    import gzip

    seller.settings(strict_orders=True, feed_delay_s=0.3, gzip_reports=True)
    seller.order(ORDER, ("5551", "SKU-1000", 2))
    good, unknown = package(), package("301", "9400100000000000000003",
                                       order_id="999-0000009-0000009")
    amazon = seller.connector()
    submitted = amazon.submit_feed([good, unknown])
    assert wait_for_feed(amazon, submitted.data)[-1] == "DONE"
    report = next(d for d in seller.account.documents.values() if d["kind"] == "result")
    assert report["content"][:2] == b"\x1f\x8b"  # stored compressed, as Amazon does

    results = amazon.feed_results(submitted.data, [good, unknown])
    assert results.outcome is Outcome.OK, results.message
    assert results.data["101"] == (True, "")
    assert not results.data["301"][0] and "not found" in results.data["301"][1]

    whole = report["content"]
    report["content"] = whole[: len(whole) // 2]  # cut short in transfer
    broken = amazon.feed_results(submitted.data, [good, unknown])
    assert broken.outcome is Outcome.RETRYABLE and "could not be unpacked" in broken.message

    report["content"] = gzip.compress(b"x" * (MAX_REPORT + 1))
    huge = amazon.feed_results(submitted.data, [good, unknown])
    assert huge.outcome is Outcome.NEEDS_FIXING and "larger than 16 MB" in huge.message

    report["content"] = whole + gzip.compress(b"more")  # a second member: not one report
    assert amazon.feed_results(submitted.data, [good]).outcome is Outcome.RETRYABLE

    # Unpacked on the way (the URL said Content-Encoding: gzip, which requests undoes).
    report["content"] = gzip.decompress(whole)
    assert amazon.feed_results(submitted.data, [good, unknown]).data == results.data


def raw_feed(seller: Seller, content: bytes) -> str:
    """A feed as a careless client would send it (the connector always writes a header)."""
    headers = {"x-amz-access-token": seller.token()}
    base = f"{seller.endpoint}/feeds/2021-06-30"
    spec = {"contentType": "text/tab-separated-values; charset=UTF-8"}
    document = requests.post(f"{base}/documents", json=spec, headers=headers, timeout=5).json()
    requests.put(document["url"], data=content, timeout=5,
                 headers={"Content-Type": spec["contentType"]}).raise_for_status()
    created = requests.post(f"{base}/feeds", headers=headers, timeout=5, json={
        "feedType": "POST_FLAT_FILE_FULFILLMENT_DATA", "marketplaceIds": ["ATVPDKIKX0DER"],
        "inputFeedDocumentId": document["feedDocumentId"]})
    assert created.status_code == 202
    return created.json()["feedId"]


def test_fatal_and_cancelled_feeds_fail_every_package(seller):
    seller.settings(feed_delay_s=0.3)
    amazon, packages = seller.connector(), [package(), package("102", "1Z999AA10000000002")]
    fatal = raw_feed(seller, b"just some words\nno header at all\n")
    assert wait_for_feed(amazon, fatal)[-1] == "FATAL"
    results = amazon.feed_results(fatal, packages)
    assert results.outcome is Outcome.OK
    for ok, message in results.data.values():
        assert not ok and "FATAL" in message and "header" in message

    seller.settings(feed_delay_s=30)  # stays IN_QUEUE until cancelled
    cancelled = raw_feed(seller, b"order-id\n")
    headers = {"x-amz-access-token": seller.token()}
    assert requests.delete(f"{seller.endpoint}/feeds/2021-06-30/feeds/{cancelled}",
                           headers=headers, timeout=5).status_code == 200
    results = amazon.feed_results(cancelled, packages)
    assert all(not ok and "cancelled" in message for ok, message in results.data.values())
    assert seller.get("writes") == []


# -- the sandbox's answers against the official models ---------------------------------------
def test_sandbox_answers_match_the_official_response_models(seller):
    amazon = seller.connector(other_carriers=["Local Courier"])
    assert amazon.write_back(package(carrier="Local Courier")).ok
    headers = {"x-amz-access-token": seller.token()}

    def get(path: str, **params):
        reply = requests.get(f"{seller.endpoint}{path}", params=params, headers=headers,
                             timeout=5)
        assert reply.headers["x-amzn-RequestId"] and reply.headers["x-amzn-RateLimit-Limit"]
        return reply

    order = get(f"/orders/2026-01-01/orders/{ORDER}", includedData="PACKAGES,FULFILLMENT")
    assert_valid("orders_2026-01-01.json", "GetOrderResponse", order.json())
    [shown] = order.json()["order"]["packages"]
    assert (shown["carrier"], shown["packageStatus"]["status"]) == ("Local Courier", "SHIPPED")
    assert order.json()["order"]["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    found = get("/orders/2026-01-01/orders", createdAfter="2020-01-01T00:00:00Z",
                includedData="PACKAGES")
    assert_valid("orders_2026-01-01.json", "SearchOrdersResponse", found.json())
    assert [o["orderId"] for o in found.json()["orders"]] == [ORDER]
    missing = get("/orders/2026-01-01/orders")
    assert missing.status_code == 400
    assert_valid("orders_2026-01-01.json", "ErrorList", missing.json())

    asins = ",".join(p["asin"] for p in seller.account.products[:3])
    catalog = get("/catalog/2022-04-01/items", identifiers=asins, identifiersType="ASIN",
                  marketplaceIds="ATVPDKIKX0DER",
                  includedData="attributes,dimensions,identifiers,images,summaries")
    assert_valid("catalogItems_2022-04-01.json", "ItemSearchResults", catalog.json())
    assert catalog.json()["numberOfResults"] == 3
    listings = get("/listings/2021-08-01/items/A1SANDBOXSELLER", marketplaceIds="ATVPDKIKX0DER",
                   includedData="summaries,attributes", pageSize=5)
    assert_valid("listingsItems_2021-08-01.json", "ItemSearchResults", listings.json())
    assert listings.json()["pagination"]["nextToken"]

    feed_id = raw_feed(seller, b"order-id\n")
    assert_valid("feeds_2021-06-30.json", "Feed",
                 get(f"/feeds/2021-06-30/feeds/{feed_id}").json())
    unknown_feed = get("/feeds/2021-06-30/feeds/123")
    assert unknown_feed.status_code == 404
    assert_valid("feeds_2021-06-30.json", "ErrorList", unknown_feed.json())

    refused = requests.get(f"{seller.endpoint}/orders/2026-01-01/orders/{ORDER}", timeout=5)
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "Unauthorized"
    bad_grant = requests.post(f"{seller.endpoint}/auth/o2/token", timeout=5,
                              data={"grant_type": "refresh_token", "client_id": "x"})
    assert (bad_grant.status_code, bad_grant.json()["error"]) == (400, "invalid_grant")
