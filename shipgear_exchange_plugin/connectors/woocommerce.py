"""WooCommerce: REST API v3 for orders and products, the Shipment Tracking extension
(``wc-shipment-tracking/v3``) for the tracking number.

A write-back reads the order's tracking items first and adds ours only if it is missing,
then sets the order ``completed``: a retry after a half-done attempt never adds a second
tracking item (B2). Verification wants both: our tracking number listed and the order
completed.

Consumer key and secret go as HTTP Basic auth, which WooCommerce accepts over HTTPS (the
sandbox accepts it over plain HTTP too). WooCommerce has no rate limit of its own; hosts
and CDNs add one, so a 429 is read through ``Retry-After`` or ``RateLimit-Reset``.

Account options: ``carrier_map`` (host carrier name -> provider name, for providers a shop
added itself) and ``products_page_size`` (at most 100, WooCommerce's cap).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import requests

from .base import Api, Outcome, Package, ProductInfo, Result, clip, unknown_carrier
from .http import HttpConnector, Reply

TRACKING_PATH = "/wp-json/wc-shipment-tracking/v3/orders/{order_id}/shipment-trackings"
#: Public route of the extension listing its providers (the WRITEBACK probe).
PROVIDERS_PATH = "/wp-json/wc-shipment-tracking/v3/shipment-trackings/providers"
ORDER_PATH = "/wp-json/wc/v3/orders/{order_id}"
PAGE_SIZE = 100
COMPLETED = "completed"
#: Orders the shop has closed without shipping: marking them completed would reopen them.
CLOSED = ("cancelled", "refunded", "failed", "trash")

#: Host carrier name (compared case-insensitively) -> the Shipment Tracking extension's
#: provider name, spelled as the extension spells it ("Fedex", "DHL US"). Carriers the
#: extension does not list are refused before sending (B6) rather than sent as a custom
#: provider: a custom provider has no tracking link unless we also knew its URL format.
PROVIDERS: dict[str, str] = {
    "ups": "UPS",
    "usps": "USPS",
    "us postal service": "USPS",
    "fedex": "Fedex",
    "fed ex": "Fedex",
    "fedex sameday": "FedEx Sameday",
    "dhl": "DHL",
    "dhl express": "DHL",
    "dhl us": "DHL US",
    "dhl ecommerce": "DHL eCommerce",
    "ontrac": "OnTrac",
    "globalpost": "GlobalPost",
    "canada post": "Canada Post",
    "purolator": "Purolator",
    "royal mail": "Royal Mail",
    "parcelforce": "ParcelForce",
    "evri": "EVRi",
    "australia post": "Australia Post",
    "postnl": "PostNL",
    "colissimo": "Colissimo",
    "correios": "Correios",
}

_WEIGHT_UNITS = {"kg": "kilograms", "g": "grams", "lbs": "pounds", "oz": "ounces"}


class WooCommerceConnector(HttpConnector):
    """One WooCommerce site: its base URL and a REST API key pair with read/write access."""

    platform = "woocommerce"
    credential_fields = ("consumer_key", "consumer_secret")
    credential_help = {
        "consumer_key": "A REST API key with Read/Write permission (WordPress admin: "
                        "WooCommerce, Settings, Advanced, REST API, Add key); it starts "
                        "with ck_.",
        "consumer_secret": "Shown once, beside the consumer key, when the key is made; it "
                           "starts with cs_.",
    }
    endpoint_example = "https://shop.example.com"
    #: WordPress sends no request id; hosts' proxies and Cloudflare do.
    request_id_headers = ("X-Request-Id", "CF-Ray")

    @classmethod
    def demo_credentials(cls, account_key: str) -> dict[str, str]:
        return {"consumer_key": f"ck_demo_{account_key}",
                "consumer_secret": f"cs_demo_{account_key}"}

    def retry_hint(self, response: requests.Response) -> float | None:
        for header in ("Retry-After", "RateLimit-Reset"):
            try:
                return max(0.0, float(response.headers[header]))
            except (KeyError, ValueError):
                continue
        return None

    # -- the four operations ---------------------------------------------------------
    def write_back(self, package: Package) -> Result:
        provider = self._provider(package.carrier)
        if provider is None:
            return unknown_carrier(package.carrier, "WooCommerce Shipment Tracking",
                                   list(dict.fromkeys(PROVIDERS.values())))
        refused = self.missing_credentials() or _bad_order_id(package.order_id)
        if refused:
            return refused
        order = ORDER_PATH.format(order_id=package.order_id)
        reply = self._call(Api.WRITEBACK, "GET", order, expect=dict,  # part of the write
                           params={"_fields": "id,status"})
        if reply.error:
            return reply.error
        before = reply.json.get("status")
        if before in CLOSED:  # WooCommerce would take the update and reopen the order
            return reply.result(Outcome.NEEDS_FIXING,
                                f"Order {package.order_id} is {before} on WooCommerce, so it "
                                "was not marked completed; check the order with the shop")
        trackings = TRACKING_PATH.format(order_id=package.order_id)
        reply = self._call(Api.WRITEBACK, "GET", trackings, expect=list)
        if reply.error:
            return reply.error
        item = _with_tracking(reply.json, package.tracking_number)
        added = item is None
        if added:
            reply = self._call(Api.WRITEBACK, "POST", trackings, expect=dict, json={
                "tracking_provider": provider,
                "tracking_number": package.tracking_number,
                "date_shipped": package.ship_date.date().isoformat(),
            })
            if reply.error:
                return reply.error
            item = reply.json
        status = before
        if before != COMPLETED:
            reply = self._call(Api.WRITEBACK, "PUT", order, expect=dict,
                               json={"status": COMPLETED})
            if reply.error:
                return reply.error
            status = reply.json.get("status")
        how = "added to" if added else "already on"
        return reply.result(Outcome.ACCEPTED,
                            f"Tracking {package.tracking_number} ({provider}) {how} order "
                            f"{package.order_id}; order status {status}",
                            data={"tracking_id": item.get("tracking_id"), "order_status": status})

    def verify(self, package: Package) -> Result:
        refused = self.missing_credentials() or _bad_order_id(package.order_id)
        if refused:
            return refused
        reply = self._call(Api.ORDERS, "GET", ORDER_PATH.format(order_id=package.order_id),
                           expect=dict, params={"_fields": "id,status"})
        if reply.error:
            return reply.error
        status = reply.json.get("status")
        reply = self._call(Api.ORDERS, "GET", TRACKING_PATH.format(order_id=package.order_id),
                           expect=list)
        if reply.error:
            return reply.error
        item = _with_tracking(reply.json, package.tracking_number)
        missing = []
        if item is None:
            missing.append(f"tracking {package.tracking_number} is not listed")
        if status != COMPLETED:
            missing.append(f"the order is {status!r}, not {COMPLETED!r}")
        if missing:
            return reply.result(Outcome.NOT_YET_VISIBLE,
                                f"Order {package.order_id}: " + " and ".join(missing))
        return reply.result(Outcome.VERIFIED,
                            f"Order {package.order_id} is completed with tracking "
                            f"{package.tracking_number}",
                            data={"tracking_id": item.get("tracking_id")})

    def fetch_products(self, limit: int = 250) -> Result:
        refused = self.missing_credentials()
        if refused:
            return refused
        reply = self._call(Api.PRODUCTS, "GET",
                           "/wp-json/wc/v3/settings/products/woocommerce_weight_unit",
                           expect=dict)
        if reply.error:
            return reply.error
        unit = _WEIGHT_UNITS.get(str(reply.json.get("value")))
        size = max(1, min(PAGE_SIZE, int(self.options.get("products_page_size") or PAGE_SIZE)))
        products: list[ProductInfo] = []
        page = 1
        while len(products) < limit:
            reply = self._call(Api.PRODUCTS, "GET", "/wp-json/wc/v3/products", expect=list,
                               params={"per_page": size, "page": page,
                                       "_fields": "id,name,sku,weight,images"})
            if reply.error:
                return reply.error
            products += [_product(raw, unit) for raw in reply.json
                         if isinstance(raw, Mapping) and str(raw.get("sku") or "").strip()]
            if not reply.json or page >= _int(reply.headers.get("X-WP-TotalPages"), 1):
                break
            page += 1
        products = products[:max(0, limit)]
        return reply.result(Outcome.OK, f"{len(products)} products read", data=products)

    def probe(self, api: Api) -> Result:
        """PRODUCTS and ORDERS: one item of each. WRITEBACK: the Shipment Tracking
        extension's providers, which shows the extension is installed and answering, then
        one order with the key (the providers route takes no key, so alone it would say
        "works" with credentials the shop refuses). Each probe counts as one call for the
        status rules: the providers call only when it failed."""
        refused = self.missing_credentials()
        if refused:
            return refused
        if api is Api.WRITEBACK:
            reply = self._call(api, "GET", PROVIDERS_PATH, expect=dict, record=False)
            if reply.error is None:
                reply = self._call(api, "GET", "/wp-json/wc/v3/orders", expect=list,
                                   params={"per_page": 1, "_fields": "id"})
            else:
                self.http.record(api, reply)
        else:
            reply = self._call(api, "GET", f"/wp-json/wc/v3/{api.value}", expect=list,
                               params={"per_page": 1, "_fields": "id"})
        if reply.error:
            return reply.error
        return reply.result(Outcome.OK, f"WooCommerce {api.value} API answered")

    # -- helpers -----------------------------------------------------------------------
    def _provider(self, carrier: str) -> str | None:
        overrides = {_key(k): v for k, v in (self.options.get("carrier_map") or {}).items()}
        return overrides.get(_key(carrier)) or PROVIDERS.get(_key(carrier))

    def _call(self, api: Api, method: str, path: str, *, expect: type, **kwargs: Any) -> Reply:
        """One REST call with the key pair; the body must be a JSON ``expect``."""
        auth = (str(self.credentials.get("consumer_key", "")),
                str(self.credentials.get("consumer_secret", "")))

        def check(reply: Reply) -> Result | None:
            if isinstance(reply.json, expect):
                return None
            return Result(Outcome.RETRYABLE, f"WooCommerce answered {method} {path} without "
                          f"the expected JSON {expect.__name__}: {clip(reply.text, 120)}",
                          http_status=reply.status, request_id=reply.request_id,
                          latency_ms=reply.latency_ms)

        reply = self.http.request(api, method, path, auth=auth, check=check,
                                  headers={"Accept": "application/json"}, **kwargs)
        if reply.error is not None and reply.status is not None:
            reply.error = _explained(reply.error, reply.json, path)
        return reply


def _explained(error: Result, body: Any, path: str) -> Result:
    """Woo's error body says more than its message: which parameters were wrong, or
    that the Shipment Tracking extension is missing altogether."""
    if not isinstance(body, Mapping):
        return error
    code = body.get("code")
    if code == "rest_no_route" and "wc-shipment-tracking" in path:
        return dataclasses.replace(error, message=(
            "HTTP 404: the WooCommerce Shipment Tracking extension is not installed or not "
            "active on the store. Install it, then retry."))
    data = body.get("data")
    params = data.get("params") if isinstance(data, Mapping) else None
    if isinstance(params, Mapping) and params:
        detail = "; ".join(f"{k}: {v}" for k, v in list(params.items())[:3])
        return dataclasses.replace(error, message=clip(f"{error.message} ({detail})"))
    return error


def _with_tracking(items: list[Any], tracking_number: str) -> dict[str, Any] | None:
    wanted = _tracking_key(tracking_number)
    for item in items:
        if isinstance(item, dict) and _tracking_key(str(item.get("tracking_number"))) == wanted:
            return item
    return None


def _product(raw: Mapping[str, Any], unit: str | None) -> ProductInfo:
    images = raw.get("images")
    image = images[0].get("src") if isinstance(images, list) and images and isinstance(
        images[0], Mapping) else None
    try:
        weight = float(raw.get("weight"))  # a string such as "1.25", or "" when unset
    except (TypeError, ValueError):
        weight = None
    return ProductInfo(sku=str(raw["sku"]).strip(), title=str(raw.get("name") or raw["sku"]),
                       weight=weight, weight_unit=unit if weight is not None else None,
                       image_url=image)


def _bad_order_id(order_id: str) -> Result | None:
    if re.fullmatch(r"\d+", order_id):
        return None
    return Result(Outcome.NEEDS_FIXING, f"{order_id!r} is not a WooCommerce order id: the host "
                  "must send the order's number (digits only).")


def _key(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def _tracking_key(number: str) -> str:
    return "".join(number.split()).upper()


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
