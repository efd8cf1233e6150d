"""Sandbox: a WooCommerce site with the Shipment Tracking extension, under
``/woocommerce/{key}/wp-json/...``.

- ``wc/v3``: ``GET orders``, ``GET|PUT orders/{id}``, ``GET products``,
  ``GET settings/products/woocommerce_weight_unit``.
- ``wc-shipment-tracking/v3``: ``GET|POST orders/{id}/shipment-trackings``,
  ``GET orders/{id}/shipment-trackings/providers`` and the public
  ``GET shipment-trackings/providers``.

Auth is HTTP Basic with any ``ck_...``/``cs_...`` pair; errors use WordPress's body
``{"code", "message", "data": {"status"}}`` and a bad parameter answers 400
``rest_invalid_param`` with ``data.params`` (``rest_missing_callback_param`` when a
required one is absent), as WordPress does. Orders live in the store core; in open mode an
order id seen for the first time becomes an order whose lines are picked from the catalogue,
deterministically from the id. The order status lives in ``order.extra["status"]``.

WooCommerce has no rate limit of its own; the sandbox plays a host that adds one: the
``requests`` bucket (50, refilling 10/s) answers 429 with ``Retry-After``, as does the
``throttle`` fault.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import re
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request

from . import bind_account, current_account, faults
from .images import image_url
from .limits import TokenBucket
from .store import Account, Order

bp = Blueprint("sandbox_woocommerce", __name__, url_prefix="/woocommerce/<account_key>")
bind_account(bp, "woocommerce")

WC = "/wp-json/wc/v3"
ST = "/wp-json/wc-shipment-tracking/v3"
STATUSES = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded",
            "failed", "checkout-draft", "trash")
#: The extension's providers (a part of its list), grouped by region as its API answers.
PROVIDERS: dict[str, dict[str, str]] = {
    "Australia": {"Australia Post": "https://auspost.com.au/mypost/track/#/details/%1$s"},
    "Brazil": {"Correios": "http://websro.correios.com.br/sro_bin/txect01$.QueryList"
                           "?P_LINGUA=001&P_TIPO=001&P_COD_UNI=%1$s"},
    "Canada": {"Canada Post": "https://www.canadapost-postescanada.ca/track-reperage/en"
                              "#/resultList?searchFor=%1$s",
               "Purolator": "https://www.purolator.com/purolator/ship-track/"
                            "tracking-summary.page?pin=%1$s"},
    "France": {"Colissimo": "https://www.laposte.fr/outils/suivre-vos-envois?code=%1$s"},
    "Netherlands": {"PostNL": "https://postnl.nl/tracktrace/?B=%1$s&P=%2$s&D=%3$s&T=C"},
    "United Kingdom": {
        "DHL": "https://www.dhl.com/content/g0/en/express/tracking.shtml?brand=DHL&AWB=%1$s",
        "EVRi": "https://www.evri.com/track/parcel/%1$s",
        "ParcelForce": "https://www.parcelforce.com/track-trace?trackNumber=%1$s",
        "Royal Mail": "https://www3.royalmail.com/track-your-item#/tracking-results/%1$s",
    },
    "United States": {
        "DHL US": "https://www.logistics.dhl/us-en/home/tracking/tracking-ecommerce.html"
                  "?tracking-id=%1$s",
        "DHL eCommerce": "https://webtrack.dhlecs.com/orders?trackingNumber=%1$s",
        "Fedex": "https://www.fedex.com/apps/fedextrack/?action=track&tracknumbers=%1$s",
        "FedEx Sameday": "https://www.fedexsameday.com/fdx_dotracking_ua.aspx?tracknum=%1$s",
        "GlobalPost": "https://www.goglobalpost.com/track-detail/?t=%1$s",
        "OnTrac": "https://www.ontrac.com/tracking/?number=%1$s",
        "UPS": "https://www.ups.com/track?loc=en_US&tracknum=%1$s",
        "USPS": "https://tools.usps.com/go/TrackConfirmAction_input?qtc_tLabels1=%1$s",
    },
}
_LINKS = {name.lower(): (name, url) for group in PROVIDERS.values()
          for name, url in group.items()}
_UNITS = {"pounds": "lbs", "ounces": "oz", "kilograms": "kg", "grams": "g"}
#: What WooCommerce says when the key is missing, by endpoint.
_NO_KEY = {
    "order": ("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."),
    "update_order": ("woocommerce_rest_cannot_edit",
                     "Sorry, you are not allowed to edit this resource."),
    "add_tracking": ("woocommerce_rest_cannot_create",
                     "Sorry, you are not allowed to create resources."),
    "weight_unit": ("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."),
}


# -- WordPress's answers -----------------------------------------------------------------------
def wp_error(status: int, code: str, message: str, **data: Any) -> Response:
    response = jsonify(code=code, message=message, data={"status": status, **data})
    response.status_code = status
    return response


def _invalid(params: dict[str, str]) -> Response:
    return wp_error(400, "rest_invalid_param", f"Invalid parameter(s): {', '.join(params)}",
                    params=params)


def _fault_error(status: int, code: str, message: str) -> Response:
    if status == 401:
        return wp_error(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
    return wp_error(status, "internal_server_error" if status >= 500 else
                    "woocommerce_rest_invalid_request", message)


def _too_many(wait: float = 2.0) -> Response:
    seconds = max(1, math.ceil(wait))
    response = wp_error(429, "rate_limit_exceeded",
                        f"Too many requests. Please wait {seconds} seconds before trying again.")
    response.headers.update({"Retry-After": str(seconds), "RateLimit-Remaining": "0",
                             "RateLimit-Reset": str(seconds)})
    return response


@bp.before_request
def _gate():
    account = current_account()
    forced = faults.apply(account, _fault_error, _too_many)
    if forced is not None:
        return forced
    endpoint = (request.endpoint or "").rsplit(".", 1)[-1]
    if endpoint not in ("providers", "no_route"):  # the providers route is public
        refused = _check_key(endpoint)
        if refused is not None:
            return refused
    allowed, wait = account.limiter("requests", TokenBucket, rate=10, burst=50).take()
    return None if allowed else _too_many(wait)


def _check_key(endpoint: str) -> Response | None:
    auth = request.authorization
    key = (auth.username if auth else None) or request.args.get("consumer_key")
    secret = (auth.password if auth else None) or request.args.get("consumer_secret")
    if not key or not secret:
        code, message = _NO_KEY.get(endpoint, ("woocommerce_rest_cannot_view",
                                               "Sorry, you cannot list resources."))
        return wp_error(401, code, message)
    if not key.startswith("ck_"):
        return wp_error(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
    if not secret.startswith("cs_"):
        return wp_error(401, "woocommerce_rest_authentication_error",
                        "Consumer secret is invalid.")
    return None


@bp.after_request
def _ray(response: Response) -> Response:
    response.headers.setdefault("CF-Ray", f"{uuid.uuid4().hex[:16]}-SBX")
    return response


# -- wc/v3 -------------------------------------------------------------------------------------
@bp.get(f"{WC}/orders")
def orders():
    account = current_account()
    with account.lock:
        found = sorted(account.orders.values(), key=lambda o: o.created_at, reverse=True)
    return _paged([_order_json(o) for o in found])


@bp.get(f"{WC}/orders/<int:order_id>")
def order(order_id: int):
    found = _order(current_account(), order_id)
    return jsonify(_fields(_order_json(found))) if found else _no_order()


@bp.route(f"{WC}/orders/<int:order_id>", methods=["PUT", "POST", "PATCH"])
def update_order(order_id: int):
    account = current_account()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return wp_error(400, "rest_invalid_json", "Invalid JSON body passed.")
    status = body.get("status")
    if status is not None and status not in STATUSES:
        return _invalid({"status": f"status is not one of {', '.join(STATUSES[:-1])}, and "
                                   f"{STATUSES[-1]}."})
    found = _order(account, order_id)
    if found is None:
        return _no_order()
    if status is not None:
        with account.lock:
            found.extra["status"] = status
            if status == "completed":
                found.extra["date_completed"] = _iso(account.clock())
    return jsonify(_order_json(found))


@bp.get(f"{WC}/products")
def products():
    return _paged([_product_json(p) for p in current_account().products])


@bp.get(f"{WC}/settings/products/woocommerce_weight_unit")
def weight_unit():
    account = current_account()
    unit = _UNITS.get(account.products[0]["weight_unit"], "lbs") if account.products else "lbs"
    text = "This controls what unit you will define weights in."
    return jsonify(id="woocommerce_weight_unit", label="Weight unit", description=text,
                   type="select", default="kg",
                   options={"kg": "kg", "g": "g", "lbs": "lbs", "oz": "oz"}, tip=text,
                   value=unit, group_id="products")


# -- wc-shipment-tracking/v3 ---------------------------------------------------------------------
@bp.get(f"{ST}/orders/<int:order_id>/shipment-trackings")
def trackings(order_id: int):
    account = current_account()
    found = _order(account, order_id)
    if found is None:
        return _no_order()
    return jsonify([_tracking_json(found, s) for s in found.visible_shipments(account.clock())])


@bp.post(f"{ST}/orders/<int:order_id>/shipment-trackings")
def add_tracking(order_id: int):
    account = current_account()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return wp_error(400, "rest_invalid_json", "Invalid JSON body passed.")
    if "tracking_number" not in body:
        return wp_error(400, "rest_missing_callback_param",
                        "Missing parameter(s): tracking_number", params=["tracking_number"])
    problems, fields = _tracking_fields(body, account)
    if problems:
        return _invalid(problems)
    found = _order(account, order_id)
    if found is None:
        return _no_order()
    number = fields.pop("tracking_number")
    digest = hashlib.md5(f"{order_id}-{number}-{account.next_id()}".encode(),
                         usedforsecurity=False).hexdigest()
    record = account.record_write(found, "shipment-tracking", number, body,
                                  tracking_id=digest, **fields)
    response = jsonify(_tracking_json(found, record))
    response.status_code = 201
    response.headers["Location"] = f"{request.base_url}/{digest}"
    return response


@bp.get(f"{ST}/orders/<int:order_id>/shipment-trackings/providers",
        endpoint="order_providers")
@bp.get(f"{ST}/shipment-trackings/providers", endpoint="providers")
def providers(order_id: int | None = None):
    return jsonify(PROVIDERS)


@bp.route("/wp-json/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def no_route(rest: str):
    return wp_error(404, "rest_no_route",
                    "No route was found matching the URL and request method.")


def _tracking_fields(body: dict[str, Any], account: Account):
    """Problems by parameter, or the tracking item's stored fields."""
    problems: dict[str, str] = {}
    number = str(body.get("tracking_number") or "").strip()
    if not number:
        problems["tracking_number"] = "tracking_number must not be empty."
    shipped = body.get("date_shipped")
    if shipped in (None, ""):
        shipped = dt.datetime.fromtimestamp(account.clock(), dt.UTC).date().isoformat()
    elif not (isinstance(shipped, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", shipped)
              and _is_date(shipped)):
        problems["date_shipped"] = "Invalid date."
    name, link = None, ""
    provider, custom = body.get("tracking_provider"), body.get("custom_tracking_provider")
    if provider:
        name, template = _LINKS.get(str(provider).lower(), (None, ""))
        if name is None:
            problems["tracking_provider"] = (f"{provider!r} is not one of the Shipment Tracking "
                                             "providers.")
        link = template.replace("%1$s", number)
    elif custom:
        name, link = str(custom), str(body.get("custom_tracking_link") or "")
    else:
        problems["tracking_provider"] = ("Either tracking_provider or custom_tracking_provider "
                                         "is required.")
    return problems, {"tracking_number": number, "tracking_provider": name,
                      "tracking_link": link, "date_shipped": shipped}


# -- the store's data as WooCommerce shows it ---------------------------------------------------
def _order(account: Account, order_id: int) -> Order | None:
    """The order; in open mode one seen for the first time is created from the catalogue."""
    key = str(order_id)
    found = account.find_order(key)
    if found is None and not account.settings.strict_orders:
        found = account.find_order(key, _lines_for(account, key))
    if found is not None:
        with account.lock:
            found.extra.setdefault("status", "processing")
    return found


def _lines_for(account: Account, order_id: str) -> list[dict[str, Any]]:
    seed = hashlib.sha256(f"{account.key}|{order_id}".encode()).digest()
    rng = random.Random(int.from_bytes(seed[:8], "big"))  # noqa: S311 - test data
    picked = rng.sample(account.products, k=min(len(account.products), rng.randint(1, 2)))
    return [{"order_item_id": f"{order_id}{n}", "sku": p["sku"], "title": p["title"],
             "quantity": rng.randint(1, 3)} for n, p in enumerate(picked, start=1)]


def _no_order() -> Response:
    return wp_error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")


def _order_json(order: Order) -> dict[str, Any]:
    created = _iso(order.created_at)
    return {
        "id": int(order.order_id), "parent_id": 0, "number": order.order_id,
        "status": order.extra.get("status", "processing"), "currency": "USD",
        "date_created": created, "date_created_gmt": created,
        "date_completed": order.extra.get("date_completed"),
        "line_items": [{"id": _number(item["order_item_id"]), "name": item["title"],
                        "product_id": 0, "variation_id": 0, "quantity": item["quantity"],
                        "sku": item["sku"]} for item in order.items],
        "meta_data": [],
    }


def _tracking_json(order: Order, shipment: dict[str, Any]) -> dict[str, Any]:
    base = f"{request.url_root.rstrip('/')}/woocommerce/{current_account().key}"
    collection = f"{base}{ST}/orders/{order.order_id}/shipment-trackings"
    return {"tracking_id": shipment["tracking_id"],
            "tracking_provider": shipment["tracking_provider"],
            "tracking_link": shipment["tracking_link"],
            "tracking_number": shipment["tracking_number"],
            "date_shipped": shipment["date_shipped"],
            "_links": {"self": [{"href": f"{collection}/{shipment['tracking_id']}"}],
                       "collection": [{"href": collection}],
                       "up": [{"href": f"{base}{WC}/orders/{order.order_id}"}]}}


def _product_json(product: dict[str, Any]) -> dict[str, Any]:
    """Weights in the catalogue's unit, which the weight-unit setting names."""
    return {"id": product["product_id"], "name": product["title"], "type": "simple",
            "status": "publish", "sku": product["sku"], "weight": f"{product['weight']:g}",
            "images": [{"id": 5000 + product["product_id"], "src": image_url(product),
                        "name": product["sku"], "alt": product["title"]}]}


def _paged(items: list[dict[str, Any]]) -> Response:
    """A collection page with WordPress's X-WP-Total/X-WP-TotalPages headers."""
    per_page, page = request.args.get("per_page", "10"), request.args.get("page", "1")
    problems = {}
    if not per_page.isdigit() or not 1 <= int(per_page) <= 100:
        problems["per_page"] = "per_page must be between 1 (inclusive) and 100 (inclusive)"
    if not page.isdigit() or int(page) < 1:
        problems["page"] = "page must be greater than or equal to 1"
    if problems:
        return _invalid(problems)
    size, number = int(per_page), int(page)
    chunk = items[(number - 1) * size:number * size]
    response = jsonify([_fields(item) for item in chunk])
    response.headers["X-WP-Total"] = str(len(items))
    response.headers["X-WP-TotalPages"] = str(max(1, math.ceil(len(items) / size)))
    return response


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    wanted = [f for f in request.args.get("_fields", "").split(",") if f]
    return {k: v for k, v in item.items() if k in wanted} if wanted else item


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _number(value: str) -> int | str:
    return int(value) if str(value).isdigit() else value
