"""Sandbox: Shopify's Admin GraphQL endpoint, ``POST /shopify/{key}/admin/api/{v}/graphql.json``.

Not a GraphQL engine: it recognises the operations the connector sends by their names
(:data:`OPERATIONS`) and answers each with Shopify's response shape, ``extensions.cost``
included. Anything else gets a GraphQL error. Variables are validated the way Shopify does
it: bad ids are top-level errors, a fulfillment Shopify would refuse comes back as
``userErrors``.

Limits, per account (override with ``PUT /_sandbox/shopify/{key}/settings``):
- ``graphql``: the cost bucket, 2000 points restoring 100/s. A query is let in when the
  bucket holds its *requested* cost and charged its *actual* cost, as Shopify does; short
  of points the answer is HTTP 200 with a ``THROTTLED`` error.
- ``requests``: a request-count bucket (40, leaking 2/s) answering HTTP 429 with
  ``Retry-After``, as Shopify's REST side does. The ``throttle`` fault answers the same.

Fulfillment orders live in ``order.extra["fulfillment_orders"]``: one OPEN fulfillment order
holds every line the order has when Shopify first sees it; it becomes IN_PROGRESS when
partly fulfilled and CLOSED when nothing is left. In open mode an unknown order is created
from the lines in the connector's ``X-Sandbox-Order-Lines`` header (see the connector); in
strict mode, or without that header, an unknown order reads as ``null`` as on Shopify.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from . import bind_account, current_account, faults
from .images import image_url
from .limits import TokenBucket
from .store import Account, Order

bp = Blueprint("sandbox_shopify", __name__, url_prefix="/shopify/<account_key>")
bind_account(bp, "shopify")

HINT_HEADER = "X-Sandbox-Order-Lines"
REFUSED_LOGIN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
MAX_QUERY_COST = 1000
SCOPES = ["read_products", "read_orders", "write_orders", "read_fulfillments",
          "write_fulfillments", "read_merchant_managed_fulfillment_orders",
          "write_merchant_managed_fulfillment_orders"]
TRACKING_URLS = {
    "UPS": "https://www.ups.com/track?tracknum={}",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "FedEx": "https://www.fedex.com/fedextrack/?trknbr={}",
    "DHL Express": "https://www.dhl.com/en/express/tracking.html?AWB={}",
    "DHL eCommerce": "https://webtrack.dhlecs.com/?trackingnumber={}",
}
_WEIGHT_UNITS = {"pounds": "POUNDS", "ounces": "OUNCES", "kilograms": "KILOGRAMS",
                 "grams": "GRAMS"}
_OPERATION_RE = re.compile(r"^\s*(query|mutation)\s+([_A-Za-z]\w*)")
_VERSION_RE = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")


class GraphQLError(Exception):
    """A top-level GraphQL error: ``{"errors": [{"message", "extensions": {"code"}}]}``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message, self.code = message, code


# -- before and after every store call ------------------------------------------------------
def _error(status: int, code: str, message: str) -> Response:
    text = REFUSED_LOGIN if status == 401 else message
    response = jsonify(errors=text)
    response.status_code = status
    return response


def _too_many(wait: float = 2.0) -> Response:
    response = jsonify(errors="Exceeded 2 calls per second for api client. Reduce request "
                              "rates to resume uninterrupted service.")
    response.status_code = 429
    response.headers["Retry-After"] = f"{max(1.0, wait):.1f}"
    return response


@bp.before_request
def _gate():
    account = current_account()
    forced = faults.apply(account, _error, _too_many)
    if forced is not None:
        return forced
    if not request.headers.get("X-Shopify-Access-Token", "").strip():
        return _error(401, "", "")
    allowed, wait = account.limiter("requests", TokenBucket, rate=2, burst=40).take()
    if not allowed:
        return _too_many(wait)
    return None


@bp.after_request
def _request_id(response: Response) -> Response:
    response.headers.setdefault("X-Request-Id", str(uuid.uuid4()))
    return response


# -- the endpoint ------------------------------------------------------------------------------
@bp.post("/admin/api/<version>/graphql.json")
def graphql(version: str):
    if not _VERSION_RE.match(version):
        return _error(404, "", "Not Found")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        response = jsonify(errors={"query": "Required parameter missing or invalid"})
        response.status_code = 400
        return response
    variables = body.get("variables") or {}
    match = _OPERATION_RE.match(body["query"])
    name = match.group(2) if match else None
    account = current_account()
    try:
        if name not in OPERATIONS or not isinstance(variables, dict):
            raise GraphQLError(f"Operation {name or '(anonymous)'} is not one the ShipGear "
                               "sandbox answers", "UNSUPPORTED_OPERATION")
        requested_of, handler = OPERATIONS[name]
        requested = requested_of(variables)
        if requested > MAX_QUERY_COST:
            raise GraphQLError(f"Query cost is {requested}, which exceeds the single query max "
                               f"cost limit ({MAX_QUERY_COST}).", "MAX_COST_EXCEEDED")
        bucket = account.limiter("graphql", TokenBucket, rate=100, burst=2000)
        if bucket.available < requested:
            return _answer({"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}
            ]}, bucket, requested, None, version)
        data, actual = handler(account, variables)
    except GraphQLError as exc:
        return _answer({"errors": [{"message": exc.message,
                                    "extensions": {"code": exc.code}}]}, None, 0, None, version)
    bucket.take(min(actual, bucket.available))
    return _answer({"data": data}, bucket, requested, actual, version)


@bp.route("/admin/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
def not_found(rest: str):
    return _error(404, "", "Not Found")


def _answer(body: dict[str, Any], bucket: TokenBucket | None, requested: int,
            actual: int | None, version: str) -> Response:
    if bucket is not None:
        body["extensions"] = {"cost": {
            "requestedQueryCost": requested, "actualQueryCost": actual,
            "throttleStatus": {"maximumAvailable": bucket.burst,
                               "currentlyAvailable": int(bucket.available),
                               "restoreRate": bucket.rate}}}
    response = jsonify(body)
    response.headers["X-Shopify-API-Version"] = version
    return response


# -- operations ----------------------------------------------------------------------------------
def _order_fulfillment_orders(account: Account, variables: dict[str, Any]):
    order = _order(account, variables)
    if order is None:
        return {"order": None}, 1
    fos = _fulfillment_orders(account, order)
    shipments = order.visible_shipments(account.clock())
    lines = sum(len(fo["lines"]) for fo in fos)
    data = {"order": {**_order_head(order),
                      "fulfillmentOrders": {"nodes": [_fo_json(order, fo) for fo in fos]},
                      "fulfillments": [_fulfillment_json(s) for s in shipments]}}
    return data, 3 + 3 * len(fos) + 2 * lines + 2 * len(shipments)


def _order_fulfillments(account: Account, variables: dict[str, Any]):
    order = _order(account, variables)
    if order is None:
        return {"order": None}, 1
    shipments = order.visible_shipments(account.clock())
    return ({"order": {**_order_head(order),
                       "fulfillments": [_fulfillment_json(s) for s in shipments]}},
            1 + 2 * len(shipments))


def _fulfillment_create(account: Account, variables: dict[str, Any]):
    fulfillment = variables.get("fulfillment")
    groups = fulfillment.get("lineItemsByFulfillmentOrder") if isinstance(fulfillment,
                                                                          dict) else None
    if not isinstance(groups, list):
        raise GraphQLError("Variable $fulfillment of type FulfillmentInput! was provided "
                           "invalid value for lineItemsByFulfillmentOrder (Expected value to "
                           "not be null)", "INVALID_VARIABLE")
    tracking = fulfillment.get("trackingInfo") or {}
    number = str(tracking.get("number") or "").strip()
    company = str(tracking.get("company") or "").strip() or None
    with account.lock:
        errors, order, changes = _check_fulfillment(account, groups)
        if not number:
            errors.append({"field": ["fulfillment", "trackingInfo", "number"],
                           "message": "Tracking number can't be blank"})
        if errors:
            return {"fulfillmentCreate": {"fulfillment": None, "userErrors": errors}}, 10
        for line, quantity in changes:
            line["remaining"] -= quantity
        for fo in order.extra["fulfillment_orders"]:
            if fo["status"] in ("OPEN", "IN_PROGRESS"):
                left = sum(line["remaining"] for line in fo["lines"])
                fo["status"] = "CLOSED" if left == 0 else (
                    "IN_PROGRESS" if left < sum(line["quantity"] for line in fo["lines"])
                    else "OPEN")
        url = tracking.get("url") or (TRACKING_URLS[company].format(number)
                                      if company in TRACKING_URLS else None)
        record = account.record_write(
            order, "fulfillmentCreate", number, fulfillment, status="SUCCESS",
            company=company, url=url, notify_customer=bool(fulfillment.get("notifyCustomer")),
            line_items=[{"order_item_id": line["order_item_id"], "quantity": quantity}
                        for line, quantity in changes])
    return {"fulfillmentCreate": {"fulfillment": _fulfillment_json(record),
                                  "userErrors": []}}, 10


def _check_fulfillment(account: Account, groups: list[Any]):
    """userErrors, the order, and (line, quantity) changes for a fulfillmentCreate."""
    errors: list[dict[str, Any]] = []
    orders: set[str] = set()
    changes: list[tuple[dict[str, Any], int]] = []
    found_order: Order | None = None
    if not groups:
        errors.append({"field": ["fulfillment", "lineItemsByFulfillmentOrder"],
                       "message": "Line items by fulfillment order can't be blank"})
    for index, group in enumerate(groups):
        field = ["fulfillment", "lineItemsByFulfillmentOrder", str(index)]
        group = group if isinstance(group, dict) else {}
        fo_gid = str(group.get("fulfillmentOrderId") or "")
        order, fo = _find_fo(account, fo_gid)
        if fo is None:
            errors.append({"field": [*field, "fulfillmentOrderId"],
                           "message": "Fulfillment order does not exist."})
            continue
        found_order = order
        orders.add(order.order_id)
        if fo["status"] not in ("OPEN", "IN_PROGRESS"):
            errors.append({"field": ["fulfillment"], "message": f"Fulfillment order {fo['id']} "
                           f"has an unfulfillable status= {fo['status'].lower()}."})
            continue
        wanted = group.get("fulfillmentOrderLineItems")
        if wanted is None:  # no lines named: everything still open on it
            changes += [(line, line["remaining"]) for line in fo["lines"] if line["remaining"]]
            continue
        for n, raw in enumerate(wanted if isinstance(wanted, list) else []):
            raw = raw if isinstance(raw, dict) else {}
            line = next((x for x in fo["lines"] if _gid("FulfillmentOrderLineItem", x["id"])
                         == raw.get("id")), None)
            quantity = raw.get("quantity")
            if line is None:
                errors.append({"field": [*field, "fulfillmentOrderLineItems", str(n), "id"],
                               "message": "Fulfillment order line item does not exist."})
            elif not isinstance(quantity, int) or not 0 < quantity <= line["remaining"]:
                errors.append({"field": [*field, "fulfillmentOrderLineItems", str(n),
                                         "quantity"],
                               "message": "Invalid fulfillment order line item quantity "
                                          "requested."})
            else:
                changes.append((line, quantity))
    if len(orders) > 1:
        errors.append({"field": ["fulfillment"],
                       "message": "All fulfillment orders must belong to the same order."})
    return errors, found_order, changes


def _products(account: Account, variables: dict[str, Any]):
    first = variables.get("first")
    if not isinstance(first, int) or not 0 < first <= 250:
        raise GraphQLError("The first argument must be an integer between 1 and 250",
                           "BAD_USER_INPUT")
    start = 0
    if variables.get("after"):
        try:
            last = json.loads(base64.urlsafe_b64decode(str(variables["after"])))["last_id"]
            start = next(n for n, p in enumerate(account.products) if p["product_id"] == last) + 1
        except (ValueError, KeyError, TypeError, StopIteration):
            raise GraphQLError("Invalid cursor for current pagination sort.",
                               "BAD_USER_INPUT") from None
    page = account.products[start:start + first]
    more = start + first < len(account.products)
    cursor = _cursor(page[-1]["product_id"]) if page else None
    nodes = [_product_json(p) for p in page]
    return ({"products": {"nodes": nodes,
                          "pageInfo": {"hasNextPage": more, "endCursor": cursor}}},
            2 + 10 * len(nodes))


def _probe_products(account: Account, variables: dict[str, Any]):
    return {"products": {"nodes": [{"id": _gid("Product", p["product_id"])}
                                   for p in account.products[:1]]}}, 3


def _probe_orders(account: Account, variables: dict[str, Any]):
    with account.lock:
        ids = list(account.orders)[:1]
    return {"orders": {"nodes": [{"id": _gid("Order", i)} for i in ids]}}, 3


def _probe_scopes(account: Account, variables: dict[str, Any]):
    return {"currentAppInstallation": {"accessScopes": [{"handle": s} for s in SCOPES]}}, 2


Handler = Callable[[Account, dict[str, Any]], tuple[dict[str, Any], int]]
#: Operation name -> (requested cost from the variables, handler returning data and the
#: actual cost). Requested costs follow Shopify's calculator for the connector's queries:
#: 1 per object, 2 + first x (child cost) per connection, 10 per mutation.
OPERATIONS: dict[str, tuple[Callable[[dict[str, Any]], int], Handler]] = {
    "OrderFulfillmentOrders": (lambda v: 638, _order_fulfillment_orders),
    "FulfillmentCreate": (lambda v: 10, _fulfillment_create),
    "OrderFulfillments": (lambda v: 121, _order_fulfillments),
    "Products": (lambda v: 2 + 46 * (v["first"] if isinstance(v.get("first"), int) else 0),
                 _products),
    "ProbeProducts": (lambda v: 3, _probe_products),
    "ProbeOrders": (lambda v: 3, _probe_orders),
    "ProbeAccessScopes": (lambda v: 2, _probe_scopes),
}


# -- the store's data as Shopify shows it ------------------------------------------------------
def _order(account: Account, variables: dict[str, Any]) -> Order | None:
    gid = variables.get("id")
    match = re.fullmatch(r"gid://shopify/Order/(\d+)", str(gid or ""))
    if not match:
        raise GraphQLError(f"Invalid global id '{gid}'", "argumentLiteralsIncompatible")
    return account.find_order(match.group(1), _hint())


def _hint() -> list[dict[str, Any]] | None:
    raw = request.headers.get(HINT_HEADER)
    try:
        lines = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(lines, list):
        return None
    return [{"sku": line.get("sku"), "order_item_id": line.get("order_item_id"),
             "quantity": int(line.get("quantity") or 1)}
            for line in lines if isinstance(line, dict)] or None


def _fulfillment_orders(account: Account, order: Order) -> list[dict[str, Any]]:
    """The order's fulfillment orders, with a line for every order line (lines added to
    the order later go to its OPEN fulfillment order, or to a new one)."""
    with account.lock:
        fos = order.extra.setdefault("fulfillment_orders", [])
        covered = {line["order_item_id"] for fo in fos for line in fo["lines"]}
        missing = [item for item in order.items if item["order_item_id"] not in covered]
        if missing:
            fo = next((f for f in fos if f["status"] == "OPEN"), None)
            if fo is None:
                fo = {"id": account.next_id(), "status": "OPEN", "lines": []}
                fos.append(fo)
            for item in missing:
                fo["lines"].append({"id": account.next_id(), "order_item_id":
                                    item["order_item_id"], "quantity": item["quantity"],
                                    "remaining": item["quantity"]})
        return fos


def _find_fo(account: Account, fo_gid: str):
    match = re.fullmatch(r"gid://shopify/FulfillmentOrder/(\d+)", fo_gid)
    if match:
        for order in account.orders.values():
            for fo in order.extra.get("fulfillment_orders", []):
                if fo["id"] == int(match.group(1)):
                    return order, fo
    return None, None


def _order_head(order: Order) -> dict[str, Any]:
    return {"id": _gid("Order", order.order_id), "name": f"#{1000 + order.extra['number']}"}


def _fo_json(order: Order, fo: dict[str, Any]) -> dict[str, Any]:
    nodes = []
    for line in fo["lines"]:
        item = order.item(order_item_id=line["order_item_id"]) or {}
        nodes.append({"id": _gid("FulfillmentOrderLineItem", line["id"]),
                      "remainingQuantity": line["remaining"],
                      "lineItem": {"id": _gid("LineItem", line["order_item_id"]),
                                   "sku": item.get("sku")}})
    return {"id": _gid("FulfillmentOrder", fo["id"]), "status": fo["status"],
            "lineItems": {"nodes": nodes}}


def _fulfillment_json(shipment: dict[str, Any]) -> dict[str, Any]:
    created = dt.datetime.fromtimestamp(shipment["created_at"], dt.UTC)
    return {"id": _gid("Fulfillment", shipment["id"]), "status": shipment.get("status"),
            "createdAt": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "trackingInfo": [{"number": shipment["tracking_number"],
                              "company": shipment.get("company"), "url": shipment.get("url")}]}


def _product_json(product: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _gid("Product", product["product_id"]), "title": product["title"],
        "featuredMedia": {"preview": {"image": {"url": image_url(product)}}},
        "variants": {"nodes": [{
            "sku": product["sku"], "title": "Default Title",
            "inventoryItem": {"measurement": {"weight": {
                "value": product["weight"],
                "unit": _WEIGHT_UNITS.get(product["weight_unit"], "POUNDS")}}}}]},
    }


def _cursor(product_id: int) -> str:
    raw = json.dumps({"last_id": product_id, "last_value": product_id}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _gid(kind: str, value: Any) -> str:
    return f"gid://shopify/{kind}/{value}"
