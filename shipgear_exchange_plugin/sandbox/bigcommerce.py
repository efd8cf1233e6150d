"""Sandbox: BigCommerce V2 orders and shipments, V3 catalog products, for one store per
account under ``/bigcommerce/{key}``.

As on BigCommerce: ``X-Auth-Token`` required (any non-empty token); one request quota per
store (``FixedWindow`` "requests", 150 per 30 s; ``PUT /_sandbox/bigcommerce/{key}/settings``
``{"limits": {"requests": {"limit": 3, "window": 30}}}`` changes it) with the four
``X-Rate-Limit-*`` headers on every answer and 429 past it; V2 errors as
``[{"status", "message"}]``, V3 errors as ``{"status", "title", "type", "errors"}``; empty
V2 collections answered 204 with no body; dates in RFC 2822.

Orders: ids are numbers. In open mode an order id the store has not seen comes into being
on first read, with one to three lines drawn from the account's catalogue by a generator
seeded with the account key and order id (the same order always has the same lines); the
connector reads the order before it writes, so no write could name the lines first.
Orders made through the control API keep their items; an ``order_item_id`` made of digits
is the order product id, any other gets ``order id * 100 + line number``. Every order has
one shipping address. Shipments update ``quantity_shipped`` per product and the status
(2 Shipped when everything is shipped, 3 Partially Shipped before) in ``order.extra``;
reads show only shipments past the verification lag.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import uuid
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from . import bind_account, current_account, faults
from .images import image_url
from .limits import FixedWindow
from .store import Account, Order

bp = Blueprint("sandbox_bigcommerce", __name__, url_prefix="/bigcommerce/<account_key>")
bind_account(bp, "bigcommerce")

QUOTA = {"limit": 150, "window": 30}
PROVIDERS = ("", "auspost", "canadapost", "endicia", "usps", "fedex", "ups", "upsready",
             "upsonline", "shipperhq")
STATUSES = {2: "Shipped", 3: "Partially Shipped", 11: "Awaiting Fulfillment"}
ERROR_TYPE = "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes"
NOT_FOUND = "The requested resource was not found."
V2_PAGE = (50, 250)  # default and largest page of V2 collections
V3_PAGE = (50, 250)


# -- errors, faults, quota ----------------------------------------------------------------
def _error(status: int, title: str, message: str) -> Response:
    """An error in the shape of the API version the request went to."""
    if "/v3/" in request.path:
        body: Any = {"status": status, "title": message, "type": ERROR_TYPE, "errors": {}}
    else:
        body = [{"status": status, "message": message}]
    response = jsonify(body)
    response.status_code = status
    return response


def _bad(message: str) -> Response:
    return _error(400, "Bad Request", message)


def _quota(account: Account) -> FixedWindow:
    return account.limiter("requests", FixedWindow, **QUOTA)


def _peek(window: FixedWindow) -> tuple[int, float]:
    """(requests left, seconds to reset) without using a request."""
    elapsed = window.clock() - window.start
    if elapsed >= window.window:
        return window.limit, window.window
    return max(0, window.limit - window.used), window.window - elapsed


def _throttled() -> Response:
    window = _quota(current_account())
    g.bc_quota = (0, _peek(window)[1], window)
    return _error(429, "Too Many Requests", "You have exceeded your request quota; retry "
                  "after the time in X-Rate-Limit-Time-Reset-Ms.")


@bp.before_request
def _gate() -> Response | None:
    account = current_account()
    forced = faults.apply(account, _error, _throttled)
    if forced is not None:
        if account.faults.outage is None and "bc_quota" not in g:
            window = _quota(account)
            g.bc_quota = (*_peek(window), window)
        return forced
    window = _quota(account)
    allowed, left, reset = window.take()
    g.bc_quota = (left, reset, window)
    if not request.headers.get("X-Auth-Token", "").strip():
        return _error(401, "Unauthorized", "You are not authorized to access this resource. "
                      "Send the store's API token in X-Auth-Token.")
    if not allowed:
        return _throttled()
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    quota = g.get("bc_quota")
    if quota is not None:
        left, reset, window = quota
        response.headers["X-Rate-Limit-Requests-Left"] = str(left)
        response.headers["X-Rate-Limit-Requests-Quota"] = str(window.limit)
        response.headers["X-Rate-Limit-Time-Reset-Ms"] = str(max(1, int(reset * 1000)))
        response.headers["X-Rate-Limit-Time-Window-Ms"] = str(int(window.window * 1000))
    response.headers["X-Request-Id"] = uuid.uuid4().hex
    return response


# -- the store's data as BigCommerce shows it -----------------------------------------------
def _rfc2822(timestamp: float) -> str:
    return email.utils.format_datetime(dt.datetime.fromtimestamp(timestamp, dt.UTC))


def _page(default_and_max: tuple[int, int]) -> tuple[int, int]:
    default, largest = default_and_max
    try:
        limit = min(max(int(request.args.get("limit", default)), 1), largest)
        page = max(int(request.args.get("page", 1)), 1)
    except ValueError:
        limit, page = default, 1
    return limit, page


def _collection(items: list[Any]) -> Response:
    """A V2 page: a JSON array, or 204 with no body when the page is empty."""
    limit, page = _page(V2_PAGE)
    chosen = items[(page - 1) * limit: page * limit]
    return jsonify(chosen) if chosen else Response(status=204)


def _derived_lines(account: Account, order_id: str) -> list[dict[str, Any]]:
    rng = random.Random(f"bigcommerce|{account.key}|{order_id}")  # noqa: S311 - test data
    picks = rng.sample(account.products, k=min(rng.randint(1, 3), len(account.products)))
    return [{"order_item_id": f"{order_id}{n:02d}", "sku": p["sku"], "title": p["title"],
             "quantity": rng.randint(2, 5)} for n, p in enumerate(picks, start=1)]


def _order(order_id: str) -> Order | None:
    """The order, or in open mode a new one with lines derived from its id."""
    if not order_id.isdigit():
        return None
    account = current_account()
    with account.lock:
        order = account.orders.get(order_id)
        if order is None and not account.settings.strict_orders:
            order = account.find_order(order_id, _derived_lines(account, order_id))
        if order is not None:
            order.extra.setdefault("status_id", 11)
            order.extra.setdefault("quantity_shipped", {})
        return order


def _line_id(order: Order, index: int) -> int:
    raw = str(order.items[index]["order_item_id"])
    return int(raw) if raw.isdigit() else int(order.order_id) * 100 + index + 1


def _address_id(order: Order) -> int:
    return int(order.order_id) * 10 + 1


def _address(order: Order, kind: str) -> dict[str, Any]:
    rng = random.Random(f"{kind}|{order.order_id}")  # noqa: S311 - test data
    first, last = rng.choice(["Jane", "Ana", "Li", "Sam"]), rng.choice(["Doe", "Ray", "Kim"])
    return {"first_name": first, "last_name": last, "company": "",
            "street_1": f"{rng.randint(1, 999)} Main Street", "street_2": "", "city": "Austin",
            "state": "Texas", "zip": f"{rng.randint(10000, 99999)}", "country": "United States",
            "country_iso2": "US", "phone": "",
            "email": f"{first.lower()}.{last.lower()}@example.com"}


def _shipped(order: Order) -> dict[str, int]:
    return order.extra.setdefault("quantity_shipped", {})


def _catalogue_id(sku: str) -> int:
    product = next((p for p in current_account().products if p["sku"] == sku), None)
    return int(product["product_id"]) if product else 0


def _line_json(order: Order, index: int) -> dict[str, Any]:
    item, line_id = order.items[index], _line_id(order, index)
    return {"id": line_id, "order_id": int(order.order_id),
            "product_id": _catalogue_id(item["sku"]), "variant_id": 0,
            "order_address_id": _address_id(order), "name": item["title"],
            "name_customer": item["title"], "name_merchant": item["title"], "sku": item["sku"],
            "type": "physical", "base_price": "10.0000", "price_ex_tax": "10.0000",
            "price_inc_tax": "10.0000", "price_tax": "0.0000", "quantity": item["quantity"],
            "quantity_shipped": _shipped(order).get(str(line_id), 0), "is_refunded": False,
            "quantity_refunded": 0, "applied_discounts": [], "product_options": []}


def _order_json(order: Order) -> dict[str, Any]:
    status_id = order.extra.get("status_id", 11)
    base = f"/orders/{order.order_id}"
    url = f"{request.url_root.rstrip('/')}/bigcommerce/{current_account().key}/v2{base}"
    return {
        "id": int(order.order_id), "customer_id": 0, "status_id": status_id,
        "status": STATUSES.get(status_id, "Awaiting Fulfillment"),
        "date_created": _rfc2822(order.created_at),
        "date_modified": _rfc2822(order.extra.get("modified_at", order.created_at)),
        "date_shipped": _rfc2822(order.extra["shipped_at"]) if "shipped_at" in order.extra
        else "",
        "items_total": sum(i["quantity"] for i in order.items),
        "items_shipped": sum(_shipped(order).values()), "payment_status": "captured",
        "currency_code": "USD", "order_source": "www", "is_deleted": False,
        "shipping_address_count": 1, "billing_address": _address(order, "billing"),
        "products": {"url": f"{url}/products", "resource": f"{base}/products"},
        "shipping_addresses": {"url": f"{url}/shipping_addresses",
                               "resource": f"{base}/shipping_addresses"},
        "coupons": {"url": f"{url}/coupons", "resource": f"{base}/coupons"},
    }


def _shipment_json(order: Order, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"], "order_id": int(order.order_id), "customer_id": 0,
        "order_address_id": record["order_address_id"],
        "date_created": _rfc2822(record["created_at"]),
        "tracking_number": record["tracking_number"],
        "merchant_shipping_cost": "0.0000",
        "shipping_method": record["shipping_method"],
        "shipping_provider": record["shipping_provider"],
        "tracking_carrier": record["tracking_carrier"],
        "tracking_link": record["tracking_link"], "comments": record["comments"],
        "billing_address": _address(order, "billing"),
        "shipping_address": _address(order, "shipping"),
        "items": record["items"],
    }


def _tracking_link(carrier: str, tracking: str) -> str:
    if not (carrier and tracking):
        return ""
    return f"https://track.example.com/{carrier}/{tracking}"


# -- V2 ---------------------------------------------------------------------------------------
@bp.get("/v2/store")
def store_info():
    key = current_account().key
    return jsonify(id=key, domain=f"{key}.mybigcommerce.com", name=f"Sandbox store {key}",
                   weight_units="LBS", dimension_units="Inches", currency="USD",
                   timezone={"name": "UTC"})


def _numbered_orders() -> list[Order]:
    account = current_account()
    with account.lock:
        orders = [o for o in account.orders.values() if o.order_id.isdigit()]
    return sorted(orders, key=lambda o: int(o.order_id))


@bp.get("/v2/orders")
def list_orders():
    return _collection([_order_json(o) for o in _numbered_orders()])


@bp.get("/v2/orders/count")
def count_orders():
    orders = _numbered_orders()
    statuses = [{"id": sid, "name": name, "system_label": name, "custom_label": name,
                 "count": sum(1 for o in orders if o.extra.get("status_id", 11) == sid)}
                for sid, name in STATUSES.items()]
    return jsonify(statuses=statuses, count=len(orders))


@bp.get("/v2/orders/<order_id>")
def get_order(order_id: str):
    order = _order(order_id)
    return jsonify(_order_json(order)) if order else _error(404, "Not Found", NOT_FOUND)


@bp.get("/v2/orders/<order_id>/products")
def order_products(order_id: str):
    order = _order(order_id)
    if order is None:
        return _error(404, "Not Found", NOT_FOUND)
    return _collection([_line_json(order, i) for i in range(len(order.items))])


@bp.get("/v2/orders/<order_id>/shipping_addresses")
def shipping_addresses(order_id: str):
    order = _order(order_id)
    if order is None:
        return _error(404, "Not Found", NOT_FOUND)
    shipped = sum(_shipped(order).values())
    address = {"id": _address_id(order), "order_id": int(order.order_id),
               **_address(order, "shipping"),
               "items_total": sum(i["quantity"] for i in order.items), "items_shipped": shipped,
               "shipping_method": "Flat Rate", "base_cost": "5.0000", "cost_ex_tax": "5.0000",
               "cost_inc_tax": "5.0000", "cost_tax": "0.0000", "shipping_zone_id": 1,
               "shipping_zone_name": "United States", "form_fields": []}
    return _collection([address])


@bp.get("/v2/orders/<order_id>/shipments")
def list_shipments(order_id: str):
    order = _order(order_id)
    if order is None:
        return _error(404, "Not Found", NOT_FOUND)
    visible = order.visible_shipments(current_account().clock())
    return _collection([_shipment_json(order, s) for s in visible])


@bp.post("/v2/orders/<order_id>/shipments")
def create_shipment(order_id: str):
    account = current_account()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _bad("The request body is not a valid JSON object.")
    with account.lock:
        order = _order(order_id)
        if order is None:
            return _error(404, "Not Found", NOT_FOUND)
        problem = _validate_shipment(order, body)
        if problem:
            return _bad(problem)
        shipped = _shipped(order)
        for item in body["items"]:
            key = str(item["order_product_id"])
            shipped[key] = shipped.get(key, 0) + int(item["quantity"])
        done = all(shipped.get(str(_line_id(order, i)), 0) >= line["quantity"]
                   for i, line in enumerate(order.items))
        now = account.clock()
        order.extra.update(status_id=2 if done else 3, shipped_at=now, modified_at=now)
        provider = body.get("shipping_provider", "")
        tracking_carrier = body.get("tracking_carrier", "")
        record = account.record_write(
            order, "createShipment", str(body.get("tracking_number", "")), body,
            order_address_id=int(body["order_address_id"]),
            shipping_method=str(body.get("shipping_method", "")),
            shipping_provider=provider, tracking_carrier=tracking_carrier,
            tracking_link=_tracking_link(provider or tracking_carrier,
                                         str(body.get("tracking_number", ""))),
            comments=str(body.get("comments", "")),
            items=[{"order_product_id": int(i["order_product_id"]),
                    "product_id": _catalogue_id(_sku_of(order, int(i["order_product_id"]))),
                    "quantity": int(i["quantity"])} for i in body["items"]])
        return jsonify(_shipment_json(order, record)), 201


def _sku_of(order: Order, line_id: int) -> str:
    for index, item in enumerate(order.items):
        if _line_id(order, index) == line_id:
            return item["sku"]
    return ""


def _validate_shipment(order: Order, body: dict[str, Any]) -> str | None:
    """BigCommerce's answer to a malformed shipment, or None when it is fine."""
    for name in ("order_address_id", "items"):
        if name not in body or body[name] in (None, "", []):
            return f"The required field '{name}' was not supplied."
    if str(body["order_address_id"]) != str(_address_id(order)):
        return "The field 'order_address_id' is invalid."
    if body.get("shipping_provider", "") not in PROVIDERS:
        return (f"The field 'shipping_provider' is invalid: {body['shipping_provider']!r} is "
                f"not one of: {', '.join(p for p in PROVIDERS if p)} or an empty string.")
    for name in ("tracking_number", "shipping_method", "tracking_carrier", "comments"):
        if name in body and not isinstance(body[name], str):
            return f"The field '{name}' is invalid."
    items = body["items"]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return "The field 'items' is invalid."
    lines = {_line_id(order, i): line for i, line in enumerate(order.items)}
    wanted: dict[int, int] = {}
    for item in items:
        if "product_id" in item:
            return ("The field 'product_id' cannot be written to. Please remove it from your "
                    "request before trying again.")
        line_id, quantity = item.get("order_product_id"), item.get("quantity")
        if not isinstance(line_id, int) or line_id not in lines:
            return f"The field 'order_product_id' is invalid: no order product {line_id!r}."
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            return "The field 'quantity' is invalid."
        wanted[line_id] = wanted.get(line_id, 0) + quantity
    for line_id, quantity in wanted.items():
        left = lines[line_id]["quantity"] - _shipped(order).get(str(line_id), 0)
        if quantity > left:
            return (f"The quantity {quantity} of order product {line_id} is greater than the "
                    f"quantity left to ship ({max(left, 0)}).")
    return None


# -- V3 ---------------------------------------------------------------------------------------
@bp.get("/v3/catalog/products")
def catalog_products():
    limit, page = _page(V3_PAGE)
    include = set(request.args.get("include", "").split(","))
    products = current_account().products
    chosen = products[(page - 1) * limit: page * limit]
    total_pages = max(1, -(-len(products) // limit))
    links = {"current": f"?page={page}&limit={limit}"}
    if page > 1:
        links["previous"] = f"?page={page - 1}&limit={limit}"
    if page < total_pages:
        links["next"] = f"?page={page + 1}&limit={limit}"
    return jsonify(data=[_product_json(p, "images" in include) for p in chosen],
                   meta={"pagination": {"total": len(products), "count": len(chosen),
                                        "per_page": limit, "current_page": page,
                                        "total_pages": total_pages, "links": links}})


def _product_json(product: dict[str, Any], with_images: bool) -> dict[str, Any]:
    body = {"id": product["product_id"], "name": product["title"], "type": "physical",
            "sku": product["sku"], "weight": product["weight"], "price": 10.0,
            "is_visible": True, "inventory_level": 0, "inventory_tracking": "none",
            "availability": "available"}
    if with_images:
        url = image_url(product)
        body["images"] = [{
            "id": product["product_id"] * 10, "product_id": product["product_id"],
            "is_thumbnail": True, "sort_order": 0, "description": "",
            "image_file": url.rsplit("/", 1)[-1], "url_zoom": url, "url_standard": url,
            "url_thumbnail": image_url(product, "-thumb"),
            "url_tiny": image_url(product, "-tiny"),
            "date_modified": "2026-01-01T00:00:00+00:00"}]
    return body
