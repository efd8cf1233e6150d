"""Sandbox: Amazon SP-API for one seller account under ``/amazon/{key}``.

The real paths, query parameters, bodies and answers of the official models (Orders v0
``confirmShipment``, Orders 2026-01-01 ``getOrder``/``searchOrders``, Catalog Items
2022-04-01, Listings Items 2021-08-01, Feeds 2021-06-30), Amazon's error body
``{"errors": [{"code", "message", "details"}]}`` and the headers ``x-amzn-RequestId`` and
``x-amzn-RateLimit-Limit`` on every SP-API answer. Limits are the specs' usage plans, one
token bucket per operation (overridable through the control API's ``limits`` setting);
a 429 carries ``QuotaExceeded`` and no Retry-After, as Amazon's does.

- ``POST /auth/o2/token``: Login with Amazon. Any client id, secret and refresh token
  are accepted (the sandbox has no app registry); the access token lives an hour. It is
  another service than SP-API: only an outage, added latency and ``auth_refused`` reach it.
- Every SP-API call needs a live ``x-amz-access-token`` (else 403 ``Unauthorized``), then
  passes the account's faults and its operation's bucket.
- ``confirmShipment`` validates the body like the model (plus Amazon's rules: positive
  numeric ``packageReferenceId``, ISO 8601 ``shipDate``, known carrier codes, ``carrierName``
  with "Other", 3-7-7 order ids); the same ``packageReferenceId`` again edits that package.
  In strict mode an order item may not be shipped beyond its ordered quantity; open mode
  takes the host's word for the order lines (and any well-formed order id exists).
- Feeds are processed on read, by the clock: IN_QUEUE, IN_PROGRESS after half of
  ``feed_delay_s``, then DONE (or FATAL when the file has no usable header row). Reading
  or confirming orders first processes every feed whose time has come, as Amazon does
  whether or not anyone asks about the feed. Upload and
  download go to ``/amazon/{key}/_documents/{id}``, standing in for S3's presigned URLs
  (no SP-API auth, faults do not apply, the upload's Content-Type must match the one given
  to ``createFeedDocument``). Good rows are written like ``confirmShipment`` (one package
  per order and tracking number; a tracking number already on the order edits it).
  ``create_feed_answer_s`` makes createFeed answer that much later, the feed already queued.
- The processing report is Amazon's tab-separated flat-file report: a "Feed Processing
  Summary" with "Number of records processed" and "... successful", then a table
  ``original-record-number, order-id, order-item-id, error-code, error-type,
  error-message`` with a row per failed record (data rows count from 1; record 0 is the
  whole file). The error codes are the sandbox's own (99001 no header row, 99002-99010
  row problems).
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import secrets
import time
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from . import bind_account, current_account, faults
from .images import image_url
from .limits import TokenBucket
from .store import Account, Order

bp = Blueprint("sandbox_amazon", __name__, url_prefix="/amazon/<account_key>")
bind_account(bp, "amazon")

TOKEN_TTL_S = 3600
ORDER_ID = re.compile(r"^\d{3}-\d{7}-\d{7}$")
DEFAULT_MARKETPLACE = "ATVPDKIKX0DER"
MARKETPLACES = {
    "ATVPDKIKX0DER": "Amazon.com", "A2EUQ1WTGCTBG2": "Amazon.ca",
    "A1AM78C64UM0Y8": "Amazon.com.mx", "A2Q3Y263D00KWC": "Amazon.com.br",
    "A1F83G8C2ARO7P": "Amazon.co.uk", "A1PA6795UKMFR9": "Amazon.de",
    "A13V1IB3VIYZZH": "Amazon.fr", "APJ6JRA9NG5V4": "Amazon.it", "A1RKKUPIHCS9HS": "Amazon.es",
    "A1805IZSGTT6HS": "Amazon.nl", "A21TJRUUN4KGV": "Amazon.in", "A1VC38T7YXB528": "Amazon.co.jp",
    "A39IBJ37TRP1C6": "Amazon.com.au", "A19VAU5U5O7RUS": "Amazon.sg",
}
#: Amazon's carrier codes; "Other" needs a carrierName.
CARRIER_CODES = frozenset({
    "USPS", "UPS", "UPSMI", "FedEx", "DHL", "Fastway", "GLS", "GO!", "Hermes Logistik Gruppe",
    "Royal Mail", "Parcelforce", "City Link", "TNT", "Target", "SagawaExpress", "NipponExpress",
    "YamatoTransport", "DHL Global Mail", "UPS Mail Innovations", "FedEx SmartPost", "OSM",
    "OnTrac", "Streamlite", "Newgistics", "Canada Post", "Blue Package", "Chronopost",
    "Deutsche Post", "DPD", "La Poste", "Parcelnet", "Poste Italiane", "SDA", "Smartmail",
    "FEDEX_JP", "JP_EXPRESS", "NITTSU", "SAGAWA", "YAMATO", "BlueDart", "AFL/Fedex", "Aramex",
    "India Post", "Professional", "DTDC", "Overnite Express", "First Flight", "Delhivery",
    "Lasership", "Yodel", "Amazon Shipping", "Seur", "Correos", "MRW", "Endopack",
    "Chrono Express", "Nacex", "Correios", "Toll Global Express", "China Post",
    "Australia Post", "Yun Express", "4PX", "YANWEN", "SF Express",
})
#: view -> (limiter name, requests per second, burst): the usage plans in the specs.
USAGE_PLANS = {
    "confirm_shipment": ("confirmShipment", 2, 10),
    "get_order": ("getOrder", 0.5, 30),
    "search_orders": ("searchOrders", 0.0056, 20),
    "search_catalog_items": ("searchCatalogItems", 2, 2),
    "search_listings_items": ("searchListingsItems", 5, 5),
    "create_feed_document": ("createFeedDocument", 0.5, 15),
    "create_feed": ("createFeed", 0.0083, 15),
    "get_feed": ("getFeed", 2, 15),
    "get_feeds": ("getFeeds", 0.0222, 10),
    "cancel_feed": ("cancelFeed", 2, 15),
    "get_feed_document": ("getFeedDocument", 0.0222, 10),
}
ORDER_DATASETS = {"BUYER", "RECIPIENT", "PROCEEDS", "EXPENSE", "PROMOTION", "CANCELLATION",
                  "FULFILLMENT", "PACKAGES", "TAX", "PAYMENT", "FULFILLMENT_ORDERS"}
FULFILLMENT_STATUSES = {"PENDING_AVAILABILITY", "PENDING", "UNSHIPPED", "PARTIALLY_SHIPPED",
                        "SHIPPED", "CANCELLED", "UNFULFILLABLE"}
CATALOG_DATASETS = {"attributes", "classifications", "dimensions", "identifiers", "images",
                    "productTypes", "relationships", "salesRanks", "summaries", "vendorDetails"}
LISTING_DATASETS = {"summaries", "attributes", "issues", "offers", "fulfillmentAvailability",
                    "procurement", "relationships", "productTypes"}
FEED_COLUMNS_NEEDED = ("order-id", "ship-date", "carrier-code", "tracking-number")
REPORT_HEADER = ("original-record-number", "order-id", "order-item-id", "error-code",
                 "error-type", "error-message")


# -- answers ---------------------------------------------------------------------------
def sp_error(status: int, code: str, message: str, details: str = "") -> Response:
    response = jsonify(errors=[{"code": code, "message": message, "details": details}])
    response.status_code = status
    return response


def _invalid(message: str) -> Response:
    return sp_error(400, "InvalidInput", message)


def _not_found(message: str) -> Response:
    return sp_error(404, "NotFound", message)


def _quota_exceeded() -> Response:
    return sp_error(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")


def _lwa_error(status: int, error: str, description: str) -> Response:
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    return response


def _s3_error(status: int, code: str, message: str) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>{uuid.uuid4().hex[:16]}</RequestId></Error>")
    return Response(body, status=status, mimetype="application/xml")


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any, *, date_only: bool = False) -> dt.datetime | None:
    """An ISO 8601 date-time (naive means UTC), or with ``date_only`` also a plain date."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        if "T" not in text:
            if not date_only:
                return None
            return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _iso_text(value: str) -> str:
    parsed = parse_time(value, date_only=True)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else value


def _csv_arg(name: str) -> list[str]:
    """A Swagger ``array`` query parameter: comma-separated and/or repeated."""
    return [part.strip() for raw in request.args.getlist(name) for part in raw.split(",")
            if part.strip()]


def _int_arg(name: str, default: int, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    return int(raw) if raw.isdigit() and low <= int(raw) <= high else None


def _page(rows: list, size: int) -> tuple[list, str | None] | None:
    """(this page, nextToken) for ``pageToken``/``paginationToken`` offsets; None if bad."""
    raw = request.args.get("pageToken") or request.args.get("paginationToken") or "0"
    if not raw.isdigit():
        return None
    start = int(raw)
    more = start + size < len(rows)
    return rows[start:start + size], (str(start + size) if more else None)


# -- the gate every call passes ----------------------------------------------------------
def _plan() -> tuple[str, float, float] | None:
    view = (request.endpoint or "").rsplit(".", 1)[-1]
    return USAGE_PLANS.get(view)


def _bucket(account: Account, plan: tuple[str, float, float]) -> TokenBucket:
    name, rate, burst = plan
    return account.limiter(name, TokenBucket, rate=rate, burst=burst)


@bp.before_request
def _gate():
    plan = _plan()
    if plan is None:  # Login with Amazon and the document URLs are other services
        return None
    account = current_account()
    forced = faults.apply(account, sp_error, _quota_exceeded)
    if forced is not None:
        return forced
    token = request.headers.get("x-amz-access-token", "")
    with account.lock:
        expires = account.tokens.get(token)
    if expires is None:
        return sp_error(403, "Unauthorized", "Access to requested resource is denied.")
    if expires <= account.clock():
        return sp_error(403, "Unauthorized", "Access to requested resource is denied.",
                        "The access token you provided has expired.")
    allowed, _wait = _bucket(account, plan).take()
    return None if allowed else _quota_exceeded()


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    plan = _plan()
    if plan is not None:
        response.headers["x-amzn-RateLimit-Limit"] = str(_bucket(current_account(), plan).rate)
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    if _plan() is None and (request.endpoint or "").endswith("document_content"):
        return _s3_error(exc.code or 500, exc.name.replace(" ", ""), exc.description or "")
    return sp_error(exc.code or 500, exc.name.replace(" ", ""), exc.description or exc.name)


# -- Login with Amazon ---------------------------------------------------------------------
def _count(account: Account) -> None:
    """Calls that skip ``faults.apply`` (LWA, documents) still show in ``/requests``."""
    with account.lock:
        account.requests.append({"at": account.clock(), "method": request.method,
                                 "path": request.path})


@bp.post("/auth/o2/token")
def lwa_token():
    account = current_account()
    _count(account)
    if account.faults.outage == "hang":  # the whole host hangs or is down
        time.sleep(float(account.faults.hang_seconds))
        return Response("upstream timed out", status=504, mimetype="text/plain")
    if account.faults.outage == "down":
        return Response(faults.OUTAGE_PAGE, status=503, mimetype="text/html")
    if account.faults.latency_ms:
        time.sleep(int(account.faults.latency_ms) / 1000)
    if account.faults.auth_refused:
        return _lwa_error(401, "invalid_client", "Client authentication failed")
    form = request.form
    if form.get("grant_type") != "refresh_token":
        return _lwa_error(400, "unsupported_grant_type",
                          "The authorization grant type is not supported by the authorization "
                          "server")
    if not form.get("refresh_token"):
        return _lwa_error(400, "invalid_grant",
                          "The request has an invalid grant parameter : refresh_token")
    if not form.get("client_id") or not form.get("client_secret"):
        return _lwa_error(401, "invalid_client", "Client authentication failed")
    token = "Atza|" + secrets.token_urlsafe(32)
    with account.lock:
        account.tokens[token] = account.clock() + TOKEN_TTL_S
    return jsonify(access_token=token, refresh_token=form["refresh_token"],
                   token_type="bearer", expires_in=TOKEN_TTL_S)  # noqa: S106 - a token type


# -- Orders v0: confirmShipment ------------------------------------------------------------
def _confirmation_problem(body: Any) -> str | None:
    """What makes ``body`` not a valid ConfirmShipmentRequest, in Amazon's words."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object (ConfirmShipmentRequest)."
    marketplace = body.get("marketplaceId")
    if not isinstance(marketplace, str) or not marketplace:
        return "marketplaceId is required and must be a string."
    if marketplace not in MARKETPLACES:
        return f"marketplaceId {marketplace!r} is not a valid marketplace identifier."
    if body.get("codCollectionMethod") not in (None, "DirectPayment"):
        return "codCollectionMethod must be 'DirectPayment'."
    detail = body.get("packageDetail")
    if not isinstance(detail, dict):
        return "packageDetail is required and must be an object."
    for name in ("packageReferenceId", "carrierCode", "trackingNumber", "shipDate",
                 "carrierName", "shippingMethod", "shipFromSupplySourceId"):
        value = detail.get(name)
        required = name in ("packageReferenceId", "carrierCode", "trackingNumber", "shipDate")
        if value is None and required:
            return f"packageDetail.{name} is required."
        if value is not None and not isinstance(value, str):
            return f"packageDetail.{name} must be a string, not {type(value).__name__}."
    if not re.fullmatch(r"[0-9]+", detail["packageReferenceId"]) or not int(
            detail["packageReferenceId"]):
        return "packageDetail.packageReferenceId must be a positive number written as a string."
    code = detail["carrierCode"]
    if code != "Other" and code not in CARRIER_CODES:
        return (f"packageDetail.carrierCode {code!r} is not a valid carrier code. Use one of "
                "Amazon's carrier codes, or 'Other' with carrierName.")
    if code == "Other" and not (detail.get("carrierName") or "").strip():
        return "packageDetail.carrierName is required when carrierCode is 'Other'."
    if not detail["trackingNumber"].strip():
        return "packageDetail.trackingNumber must not be empty."
    if parse_time(detail["shipDate"]) is None:
        return (f"packageDetail.shipDate {detail['shipDate']!r} is not an ISO 8601 date-time "
                "(e.g. 2026-11-27T10:00:00Z).")
    return _order_items_problem(detail.get("orderItems"))


def _order_items_problem(items: Any) -> str | None:
    if not isinstance(items, list) or not items:
        return "packageDetail.orderItems must be a non-empty array."
    seen = set()
    for n, item in enumerate(items):
        where = f"packageDetail.orderItems[{n}]"
        if not isinstance(item, dict):
            return f"{where} must be an object."
        item_id, quantity = item.get("orderItemId"), item.get("quantity")
        if not isinstance(item_id, str) or not item_id:
            return f"{where}.orderItemId is required and must be a string."
        if type(quantity) is not int or quantity <= 0:
            return f"{where}.quantity must be a positive integer."
        if item_id in seen:
            return f"{where}.orderItemId {item_id} is listed twice."
        seen.add(item_id)
        codes = item.get("transparencyCodes")
        if codes is not None and not (isinstance(codes, list)
                                      and all(isinstance(c, str) for c in codes)):
            return f"{where}.transparencyCodes must be an array of strings."
    return None


def _shipped(order: Order, item_id: str, skip: dict | None = None) -> int:
    return sum(int(i["quantity"]) for s in order.shipments if s is not skip
               for i in s.get("items", []) if i["order_item_id"] == item_id)


def _over_shipped(account: Account, order: Order, item_id: str, quantity: int,
                  skip: dict | None = None, claimed: int = 0) -> str | None:
    """Strict mode: more than the line's unshipped quantity. None when it fits."""
    line = order.item(item_id)
    if line is None:
        return f"orderItemId {item_id} is not an item of order {order.order_id}."
    if not account.settings.strict_orders:
        return None
    left = int(line["quantity"]) - _shipped(order, item_id, skip) - claimed
    if quantity > left:
        return (f"quantity {quantity} for orderItemId {item_id} exceeds the {max(left, 0)} "
                f"left unshipped on order {order.order_id} (ordered {line['quantity']}).")
    return None


@bp.post("/orders/v0/orders/<order_id>/shipmentConfirmation")
def confirm_shipment(order_id: str):
    account = current_account()
    if not ORDER_ID.match(order_id):
        return _invalid(f"Invalid orderId {order_id!r}: an Amazon order id has the 3-7-7 format.")
    body = request.get_json(silent=True)
    problem = _confirmation_problem(body)
    if problem:
        return _invalid(problem)
    detail = body["packageDetail"]
    items = [{"order_item_id": i["orderItemId"], "quantity": i["quantity"]}
             for i in detail["orderItems"]]
    with account.lock:
        _feeds_caught_up(account)
        order = account.find_order(order_id, items)
        if order is None:
            return _not_found(f"Order {order_id} was not found.")
        marketplace = order.extra.setdefault("marketplace_id", body["marketplaceId"])
        if marketplace != body["marketplaceId"]:
            return _invalid(f"Order {order_id} is not in marketplace {body['marketplaceId']}.")
        existing = next((s for s in order.shipments
                         if s.get("package_reference_id") == detail["packageReferenceId"]), None)
        for item in items:
            problem = _over_shipped(account, order, item["order_item_id"], item["quantity"],
                                    existing)
            if problem:
                return _invalid(problem)
        account.record_write(
            order, "confirmShipment", detail["trackingNumber"], body, replaces=existing,
            package_reference_id=detail["packageReferenceId"], carrier_code=detail["carrierCode"],
            carrier_name=detail.get("carrierName"), shipping_method=detail.get("shippingMethod"),
            ship_date=_iso_text(detail["shipDate"]), items=items, status="SHIPPED")
    return Response(status=204)


# -- Orders 2026-01-01 -------------------------------------------------------------------
def _datasets() -> tuple[set[str], str | None]:
    wanted = set(_csv_arg("includedData"))
    unknown = sorted(wanted - ORDER_DATASETS)
    return wanted, (f"includedData value {unknown[0]!r} is not valid." if unknown else None)


def _shipped_by_item(shipments: list[dict]) -> dict[str, int]:
    shipped: dict[str, int] = {}
    for shipment in shipments:
        for item in shipment.get("items", []):
            key = item["order_item_id"]
            shipped[key] = shipped.get(key, 0) + int(item["quantity"])
    return shipped


def _fulfillment_status(order: Order, shipped: dict[str, int]) -> str:
    lines = [(shipped.get(i["order_item_id"], 0), int(i["quantity"])) for i in order.items]
    if lines and all(done >= wanted for done, wanted in lines):
        return "SHIPPED"
    return "PARTIALLY_SHIPPED" if any(done for done, _ in lines) else "UNSHIPPED"


def _package_json(shipment: dict) -> dict[str, Any]:
    package = {
        "packageReferenceId": str(shipment["package_reference_id"]),
        "createdTime": iso(shipment["created_at"]),
        "packageStatus": {"status": shipment.get("status", "SHIPPED")},
        "carrier": shipment.get("carrier_name") or shipment["carrier_code"],
        "shipTime": shipment["ship_date"],
        "trackingNumber": shipment["tracking_number"],
        "packageItems": [{"orderItemId": i["order_item_id"], "quantity": int(i["quantity"])}
                         for i in shipment.get("items", [])],
    }
    if shipment.get("shipping_method"):
        package["shippingService"] = shipment["shipping_method"]
    return package


def _order_json(account: Account, order: Order, datasets: set[str]) -> dict[str, Any]:
    """An ``Order`` as Orders 2026-01-01 shows it now (only visible shipments count)."""
    visible = order.visible_shipments(account.clock())
    shipped = _shipped_by_item(visible)
    marketplace = order.extra.get("marketplace_id", DEFAULT_MARKETPLACE)
    items = []
    for line in order.items:
        item: dict[str, Any] = {
            "orderItemId": line["order_item_id"], "quantityOrdered": int(line["quantity"]),
            "product": {"sellerSku": line["sku"], "title": line["title"]}}
        if "FULFILLMENT" in datasets:
            done = min(shipped.get(line["order_item_id"], 0), int(line["quantity"]))
            item["fulfillment"] = {"quantityFulfilled": done,
                                   "quantityUnfulfilled": int(line["quantity"]) - done}
        items.append(item)
    body: dict[str, Any] = {
        "orderId": order.order_id,
        "createdTime": iso(order.created_at),
        "lastUpdatedTime": iso(max([order.created_at] + [s["created_at"] for s in visible])),
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": marketplace,
                         "marketplaceName": MARKETPLACES.get(marketplace, "Amazon")},
        "orderItems": items,
    }
    if "FULFILLMENT" in datasets:
        body["fulfillment"] = {"fulfillmentStatus": _fulfillment_status(order, shipped),
                               "fulfilledBy": "MERCHANT"}
    if "PACKAGES" in datasets:
        body["packages"] = [_package_json(s) for s in visible]
    return body


@bp.get("/orders/2026-01-01/orders/<order_id>")
def get_order(order_id: str):
    account = current_account()
    datasets, problem = _datasets()
    if problem:
        return _invalid(problem)
    if not ORDER_ID.match(order_id):
        return _invalid(f"Invalid orderId {order_id!r}: an Amazon order id has the 3-7-7 format.")
    with account.lock:
        _feeds_caught_up(account)
        order = account.find_order(order_id, [])  # open mode: every well-formed id exists
        if order is None:
            return _not_found(f"Order {order_id} was not found.")
        return jsonify(order=_order_json(account, order, datasets))


@bp.get("/orders/2026-01-01/orders")
def search_orders():
    account = current_account()
    args = request.args
    if bool(args.get("createdAfter")) == bool(args.get("lastUpdatedAfter")):
        return _invalid("Exactly one of createdAfter and lastUpdatedAfter is required.")
    if args.get("createdAfter") and args.get("lastUpdatedBefore"):
        return _invalid("lastUpdatedBefore cannot be combined with createdAfter.")
    bounds = {}
    for name in ("createdAfter", "createdBefore", "lastUpdatedAfter", "lastUpdatedBefore"):
        if args.get(name) is not None:
            parsed = parse_time(args[name])
            if parsed is None:
                return _invalid(f"{name} {args[name]!r} is not an ISO 8601 date-time.")
            bounds[name] = parsed.timestamp()
    size = _int_arg("maxResultsPerPage", 100, 1, 100)
    if size is None:
        return _invalid("maxResultsPerPage must be between 1 and 100.")
    statuses = set(_csv_arg("fulfillmentStatuses"))
    marketplaces = set(_csv_arg("marketplaceIds"))
    datasets, problem = _datasets()
    if problem or statuses - FULFILLMENT_STATUSES or marketplaces - set(MARKETPLACES):
        return _invalid(problem or "fulfillmentStatuses or marketplaceIds has an invalid value.")
    with account.lock:
        _feeds_caught_up(account)
        now = account.clock()
        found = []
        for order in sorted(account.orders.values(), key=lambda o: o.created_at):
            visible = order.visible_shipments(now)
            updated = max([order.created_at] + [s["created_at"] for s in visible])
            status = _fulfillment_status(order, _shipped_by_item(visible))
            if (order.created_at < bounds.get("createdAfter", float("-inf"))
                    or order.created_at > bounds.get("createdBefore", float("inf"))
                    or updated < bounds.get("lastUpdatedAfter", float("-inf"))
                    or updated > bounds.get("lastUpdatedBefore", float("inf"))
                    or (statuses and status not in statuses)
                    or (marketplaces and order.extra.get("marketplace_id", DEFAULT_MARKETPLACE)
                        not in marketplaces)):
                continue
            found.append(order)
        page = _page(found, size)
        if page is None:
            return _invalid("paginationToken is not valid.")
        rows, next_token = page
        body: dict[str, Any] = {"orders": [_order_json(account, o, datasets) for o in rows]}
        if next_token:
            body["pagination"] = {"nextToken": next_token}
        body["createdBefore" if args.get("createdAfter") else "lastUpdatedBefore"] = iso(now)
        return jsonify(body)


# -- Catalog Items 2022-04-01 and Listings Items 2021-08-01 ---------------------------------
def _marketplace_arg(most: int | None = None) -> tuple[str | None, str | None]:
    """(the one marketplace asked for, problem)."""
    marketplaces = _csv_arg("marketplaceIds")
    if not marketplaces:
        return None, "marketplaceIds is required."
    if most is not None and len(marketplaces) > most:
        return None, f"marketplaceIds takes at most {most} value."
    unknown = [m for m in marketplaces if m not in MARKETPLACES]
    if unknown:
        return None, f"marketplaceId {unknown[0]!r} is not a valid marketplace identifier."
    return marketplaces[0], None


def _upc(product: dict) -> str:
    return f"{int(product['product_id']):012d}"


def _catalog_item(product: dict, marketplace: str, datasets: set[str]) -> dict[str, Any]:
    item: dict[str, Any] = {"asin": product["asin"]}
    weight = {"unit": product["weight_unit"], "value": product["weight"]}
    if "summaries" in datasets:
        item["summaries"] = [{"marketplaceId": marketplace, "itemName": product["title"],
                              "brand": "ShipGear Sandbox", "itemClassification": "BASE_PRODUCT"}]
    if "dimensions" in datasets:
        item["dimensions"] = [{"marketplaceId": marketplace,
                               "item": {"weight": {**weight,
                                                   "value": round(product["weight"] * 0.9, 2)}},
                               "package": {"weight": weight,
                                           "length": {"unit": "inches", "value": 10.0}}}]
    if "images" in datasets:
        item["images"] = [{"marketplaceId": marketplace, "images": [
            {"variant": "MAIN", "link": image_url(product), "height": 500, "width": 500}]}]
    if "identifiers" in datasets:
        item["identifiers"] = [{"marketplaceId": marketplace, "identifiers": [
            {"identifierType": "UPC", "identifier": _upc(product)}]}]
    if "attributes" in datasets:
        item["attributes"] = {"item_name": [{"value": product["title"],
                                             "marketplace_id": marketplace}]}
    return item


@bp.get("/catalog/2022-04-01/items")
def search_catalog_items():
    account = current_account()
    marketplace, problem = _marketplace_arg(most=1)
    identifiers, keywords = _csv_arg("identifiers"), _csv_arg("keywords")
    id_type = request.args.get("identifiersType")
    datasets = set(_csv_arg("includedData")) or {"summaries"}
    size = _int_arg("pageSize", 10, 1, 20)
    if not problem and bool(identifiers) == bool(keywords):
        problem = "Either identifiers or keywords must be provided, but not both."
    if not problem and identifiers and id_type not in ("ASIN", "EAN", "GTIN", "ISBN", "JAN",
                                                        "MINSAN", "SKU", "UPC"):
        problem = "identifiersType is required with identifiers (ASIN, EAN, GTIN, ... SKU, UPC)."
    if not problem and len(identifiers) > 20:
        problem = "identifiers takes at most 20 values."
    if not problem and id_type == "SKU" and identifiers and not request.args.get("sellerId"):
        problem = "sellerId is required when identifiersType is SKU."
    if not problem and datasets - CATALOG_DATASETS:
        problem = f"includedData value {sorted(datasets - CATALOG_DATASETS)[0]!r} is not valid."
    if not problem and size is None:
        problem = "pageSize must be between 1 and 20."
    if problem:
        return _invalid(problem)
    wanted = set(identifiers)
    words = [w.lower() for w in keywords]
    matched = [p for p in account.products
               if (identifiers and (p["asin"] if id_type == "ASIN" else p["sku"]
                                    if id_type == "SKU" else _upc(p)) in wanted)
               or (words and all(w in p["title"].lower() for w in words))]
    page = _page(matched, size)
    if page is None:
        return _invalid("pageToken is not valid.")
    rows, next_token = page
    body: dict[str, Any] = {"numberOfResults": len(matched),
                            "items": [_catalog_item(p, marketplace, datasets) for p in rows]}
    if next_token:
        body["pagination"] = {"nextToken": next_token}
    return jsonify(body)


def _listing(product: dict, marketplace: str, datasets: set[str], n: int) -> dict[str, Any]:
    item: dict[str, Any] = {"sku": product["sku"]}
    created = iso(1735689600 + 86400 * n)  # 2025-01-01 plus a day per product
    if "summaries" in datasets:
        item["summaries"] = [{
            "marketplaceId": marketplace, "asin": product["asin"], "productType": "HOME",
            "conditionType": "new_new", "status": ["BUYABLE", "DISCOVERABLE"],
            "itemName": product["title"], "createdDate": created, "lastUpdatedDate": created,
            "mainImage": {"link": image_url(product), "height": 500, "width": 500}}]
    if "attributes" in datasets:
        item["attributes"] = {"item_package_weight": [
            {"unit": product["weight_unit"], "value": product["weight"],
             "marketplace_id": marketplace}]}
    return item


@bp.get("/listings/2021-08-01/items/<seller_id>")
def search_listings_items(seller_id: str):
    account = current_account()
    marketplace, problem = _marketplace_arg()
    datasets = set(_csv_arg("includedData")) or {"summaries"}
    size = _int_arg("pageSize", 10, 1, 20)
    identifiers, id_type = _csv_arg("identifiers"), request.args.get("identifiersType")
    if not problem and datasets - LISTING_DATASETS:
        problem = f"includedData value {sorted(datasets - LISTING_DATASETS)[0]!r} is not valid."
    if not problem and size is None:
        problem = "pageSize must be between 1 and 20."
    if not problem and identifiers and id_type not in ("ASIN", "SKU"):
        problem = "identifiersType (ASIN or SKU in this sandbox) is required with identifiers."
    if not problem and request.args.get("sortBy", "sku") not in (
            "sku", "createdDate", "lastUpdatedDate"):
        problem = "sortBy must be sku, createdDate or lastUpdatedDate."
    if not problem and request.args.get("sortOrder", "ASC") not in ("ASC", "DESC"):
        problem = "sortOrder must be ASC or DESC."
    if problem:
        return _invalid(problem)
    numbered = list(enumerate(account.products))
    if identifiers:
        field = "asin" if id_type == "ASIN" else "sku"
        numbered = [(n, p) for n, p in numbered if p[field] in set(identifiers)]
    if request.args.get("sortOrder") == "DESC":
        numbered.reverse()
    page = _page(numbered, size)
    if page is None:
        return _invalid("pageToken is not valid.")
    rows, next_token = page
    body: dict[str, Any] = {"numberOfResults": len(numbered),
                            "items": [_listing(p, marketplace, datasets, n) for n, p in rows]}
    if next_token:
        body["pagination"] = {"nextToken": next_token}
    return jsonify(body)


# -- Feeds 2021-06-30 ------------------------------------------------------------------
def _document_url(account: Account, document_id: str) -> str:
    return url_for("sandbox_amazon.document_content", account_key=account.key,
                   document_id=document_id, _external=True)


def _new_document(account: Account, **fields: Any) -> str:
    document_id = f"amzn1.tortuga.4.na.{uuid.uuid4()}.T{account.next_id()}"
    account.documents[document_id] = {"created_at": account.clock(), "content": None, **fields}
    return document_id


@bp.post("/feeds/2021-06-30/documents")
def create_feed_document():
    account = current_account()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("contentType"), str) \
            or not body["contentType"].strip():
        return _invalid("contentType is required and must be a string.")
    with account.lock:
        document_id = _new_document(account, kind="input", contentType=body["contentType"],
                                    request=body)
    response = jsonify(feedDocumentId=document_id, url=_document_url(account, document_id))
    response.status_code = 201
    return response


@bp.route("/_documents/<document_id>", methods=["GET", "PUT"])
def document_content(document_id: str):
    """Stands in for the presigned S3 URL of a feed or result document."""
    account = current_account()
    _count(account)
    with account.lock:
        document = account.documents.get(document_id)
        if document is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        if request.method == "GET":
            if document["content"] is None:
                return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
            return Response(document["content"], mimetype=None,
                            content_type=document["contentType"])
        if document["kind"] != "input":
            return _s3_error(403, "AccessDenied", "Access Denied")
        if request.headers.get("Content-Type", "") != document["contentType"]:
            return _s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated "
                             "does not match the signature you provided (Content-Type must be "
                             f"{document['contentType']!r}).")
        document["content"] = request.get_data()
    return Response(status=200)


@bp.post("/feeds/2021-06-30/feeds")
def create_feed():
    account = current_account()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _invalid("The request body must be a JSON object (CreateFeedSpecification).")
    marketplaces = body.get("marketplaceIds")
    if not isinstance(body.get("feedType"), str) or not body["feedType"]:
        return _invalid("feedType is required and must be a string.")
    if not isinstance(marketplaces, list) or not 1 <= len(marketplaces) <= 25 or any(
            m not in MARKETPLACES for m in marketplaces):
        return _invalid("marketplaceIds must list 1 to 25 valid marketplace identifiers.")
    if body["feedType"] != "POST_FLAT_FILE_FULFILLMENT_DATA":
        return _invalid(f"feedType {body['feedType']!r} is not supported by this sandbox.")
    with account.lock:
        document = account.documents.get(str(body.get("inputFeedDocumentId")))
        if document is None or document["kind"] != "input":
            return _invalid(f"inputFeedDocumentId {body.get('inputFeedDocumentId')!r} does not "
                            "name a feed document.")
        now = account.clock()
        feed_id = str(50_000_000_000 + account.next_id())
        account.feeds[feed_id] = {
            "feedId": feed_id, "feedType": body["feedType"], "marketplaceIds": marketplaces,
            "createdTime": iso(now), "processingStatus": "IN_QUEUE",
            "inputFeedDocumentId": body["inputFeedDocumentId"], "created_at": now,
            "delay": float(account.settings.feed_delay_s), "request": body}
    time.sleep(float(account.settings.create_feed_answer_s))
    response = jsonify(feedId=feed_id)
    response.status_code = 202
    return response


def _feed(account: Account, feed_id: str) -> dict | None:
    """The feed, moved along its states by the clock (processed once, on read)."""
    feed = account.feeds.get(feed_id)
    if feed is None or feed["processingStatus"] in ("DONE", "FATAL", "CANCELLED"):
        return feed
    elapsed = account.clock() - feed["created_at"]
    if elapsed >= feed["delay"] / 2 and feed["processingStatus"] == "IN_QUEUE":
        feed["processingStatus"] = "IN_PROGRESS"
        feed["processingStartTime"] = iso(feed["created_at"] + feed["delay"] / 2)
    if elapsed >= feed["delay"]:
        _process(account, feed)
    return feed


def _feeds_caught_up(account: Account) -> None:
    """Every feed whose processing time has come, processed (under the account's lock)."""
    for feed_id, feed in list(account.feeds.items()):
        if feed["processingStatus"] in ("IN_QUEUE", "IN_PROGRESS"):
            _feed(account, feed_id)


def _feed_json(feed: dict) -> dict[str, Any]:
    keys = ("feedId", "feedType", "marketplaceIds", "createdTime", "processingStatus",
            "processingStartTime", "processingEndTime", "resultFeedDocumentId")
    return {k: feed[k] for k in keys if k in feed}


@bp.get("/feeds/2021-06-30/feeds")
def get_feeds():
    """getFeeds: the newest feeds first, filtered by type and status (one page)."""
    account = current_account()
    try:
        size = int(request.args.get("pageSize", "10"))
    except ValueError:
        size = 0
    if not 1 <= size <= 100:
        return _invalid("pageSize must be a whole number from 1 to 100.")
    types = {t for t in request.args.get("feedTypes", "").split(",") if t}
    wanted = {t for t in request.args.get("processingStatuses", "").split(",") if t}
    with account.lock:
        feeds = [_feed(account, feed_id) for feed_id in list(account.feeds)]
        listed = [_feed_json(f) for f in reversed(feeds)
                  if (not types or f["feedType"] in types)
                  and (not wanted or f["processingStatus"] in wanted)]
    return jsonify(feeds=listed[:size])


@bp.get("/feeds/2021-06-30/feeds/<feed_id>")
def get_feed(feed_id: str):
    account = current_account()
    with account.lock:
        feed = _feed(account, feed_id)
        if feed is None:
            return _not_found(f"Feed {feed_id} was not found.")
        return jsonify(_feed_json(feed))


@bp.delete("/feeds/2021-06-30/feeds/<feed_id>")
def cancel_feed(feed_id: str):
    account = current_account()
    with account.lock:
        feed = _feed(account, feed_id)
        if feed is None:
            return _not_found(f"Feed {feed_id} was not found.")
        if feed["processingStatus"] != "IN_QUEUE":
            return _invalid(f"Feed {feed_id} is {feed['processingStatus']}; only a feed "
                            "IN_QUEUE can be cancelled.")
        feed["processingStatus"] = "CANCELLED"
        feed["processingEndTime"] = iso(account.clock())
    return Response(status=200)


@bp.get("/feeds/2021-06-30/documents/<document_id>")
def get_feed_document(document_id: str):
    account = current_account()
    with account.lock:
        document = account.documents.get(document_id)
        if document is None:
            return _not_found(f"Feed document {document_id} was not found.")
    answer = {"feedDocumentId": document_id, "url": _document_url(account, document_id)}
    if document.get("compressionAlgorithm"):
        answer["compressionAlgorithm"] = document["compressionAlgorithm"]
    return jsonify(answer)


# -- feed processing -------------------------------------------------------------------
def _process(account: Account, feed: dict) -> None:
    content = account.documents[feed["inputFeedDocumentId"]]["content"] or b""
    lines = [line for line in content.decode("utf-8", "replace").splitlines() if line.strip()]
    header = [cell.strip() for cell in lines[0].split("\t")] if lines else []
    missing = [c for c in FEED_COLUMNS_NEEDED if c not in header]
    if missing:
        message = (f"The file has no header row with the columns "
                   f"{', '.join(FEED_COLUMNS_NEEDED)} (missing: {', '.join(missing)}).")
        status, processed, errors = "FATAL", 0, [(0, "", "", 99001, "Fatal", message)]
    else:
        rows = [dict(zip(header, [c.strip() for c in line.split("\t")], strict=False))
                for line in lines[1:]]
        status, processed, errors = "DONE", len(rows), _apply_rows(account, feed, rows)
    failed = len({e[0] for e in errors if e[0]})
    report = ["Feed Processing Summary:", f"\tNumber of records processed\t\t{processed}",
              f"\tNumber of records successful\t\t{processed - failed}", "",
              "\t".join(REPORT_HEADER)]
    report += ["\t".join(str(cell) for cell in error) for error in errors]
    document_id = _new_document(account, kind="result", contentType="text/plain; charset=UTF-8")
    content = ("\n".join(report) + "\n").encode("utf-8")
    if account.settings.gzip_reports:
        content = gzip.compress(content)
        account.documents[document_id]["compressionAlgorithm"] = "GZIP"
    account.documents[document_id]["content"] = content
    feed.update(processingStatus=status, resultFeedDocumentId=document_id,
                processingStartTime=feed.get("processingStartTime") or iso(feed["created_at"]),
                processingEndTime=iso(feed["created_at"] + feed["delay"]))


def _row_problem(account: Account, row: dict[str, str], claimed: dict[tuple[str, str], int]):
    """(error code, message) for a bad row, else (None, order, items)."""
    order_id, item_id = row.get("order-id", ""), row.get("order-item-id", "")
    quantity, code = row.get("quantity", ""), row.get("carrier-code", "")
    if not ORDER_ID.match(order_id):
        return (99002, f"order-id {order_id!r} is not an Amazon order id."), None, None
    if not row.get("tracking-number"):
        return (99003, "tracking-number is required."), None, None
    if parse_time(row.get("ship-date"), date_only=True) is None:
        return (99004, f"ship-date {row.get('ship-date')!r} is not an ISO 8601 date."), None, None
    if code not in CARRIER_CODES and not (code in ("Other", "") and row.get("carrier-name")):
        return (99005, f"carrier-code {code!r} is not valid; use an Amazon carrier code or "
                "Other with carrier-name."), None, None
    if item_id and not (quantity.isdigit() and int(quantity) > 0):
        return (99006, f"quantity {quantity!r} must be a positive whole number."), None, None
    hint = [{"order_item_id": item_id, "quantity": int(quantity)}] if item_id else []
    order = account.find_order(order_id, hint)
    if order is None:
        return (99007, f"The order id {order_id} was not found in our system."), None, None
    items = hint or [{"order_item_id": line["order_item_id"], "quantity": int(line["quantity"])}
                     for line in order.items]
    if not items:
        return (99008, f"Order {order_id} has no items to confirm."), None, None
    same = next((s for s in order.shipments
                 if s["tracking_number"] == row["tracking-number"]), None)
    for item in items:
        problem = _over_shipped(account, order, item["order_item_id"], item["quantity"], same,
                                claimed.get((order_id, item["order_item_id"]), 0))
        if problem:
            return (99009, problem), None, None
    for item in items:
        key = (order_id, item["order_item_id"])
        claimed[key] = claimed.get(key, 0) + item["quantity"]
    return None, order, items


def _apply_rows(account: Account, feed: dict, rows: list[dict[str, str]]) -> list[tuple]:
    """Write the good rows (one package per order and tracking number); the bad rows'
    report lines."""
    errors: list[tuple] = []
    claimed: dict[tuple[str, str], int] = {}
    packages: dict[tuple[str, str], dict[str, Any]] = {}
    for number, row in enumerate(rows, start=1):
        problem, order, items = _row_problem(account, row, claimed)
        if problem:
            errors.append((number, row.get("order-id", ""), row.get("order-item-id", ""),
                           problem[0], "Error", problem[1]))
            continue
        package = packages.setdefault((order.order_id, row["tracking-number"]),
                                      {"order": order, "row": row, "items": [], "records": []})
        package["items"] += items
        package["records"].append({"record": number, **row})
    for index, ((_, tracking), package) in enumerate(packages.items(), start=1):
        order, row = package["order"], package["row"]
        existing = next((s for s in order.shipments if s["tracking_number"] == tracking), None)
        reference = existing["package_reference_id"] if existing else f"{feed['feedId']}{index:03d}"
        account.record_write(
            order, "feed", tracking, {"feedId": feed["feedId"], "records": package["records"]},
            replaces=existing, package_reference_id=reference,
            carrier_code=row.get("carrier-code") or "Other",
            carrier_name=row.get("carrier-name") or None,
            shipping_method=row.get("ship-method") or None,
            ship_date=_iso_text(row["ship-date"]), items=package["items"], status="SHIPPED")
    return errors
