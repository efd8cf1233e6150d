"""BigCommerce: V2 order shipments for write-back and read-back, V3 catalog for products.

One package is one shipment (``POST /v2/orders/{id}/shipments``) naming the order products
it contains. BigCommerce has no idempotency key, so before creating a shipment the
connector reads the order's shipments: one with our tracking number is an earlier attempt
that landed, and creating another would duplicate it (B2). The store's request quota
(150 per 30 s by default, shared by every app on the store) comes back in the
``X-Rate-Limit-*`` headers of every answer; a 429 is retried after
``X-Rate-Limit-Time-Reset-Ms``.

Endpoint: ``https://api.bigcommerce.com/stores/{store_hash}`` (the sandbox:
``{sandbox}/bigcommerce/{key}``); paths ``/v2/...`` and ``/v3/...`` below it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import requests

from .base import Api, Outcome, Package, ProductInfo, Result, clip, unknown_carrier
from .http import HttpConnector, Reply

#: Host carrier name -> (``shipping_provider``, ``tracking_carrier``). ``shipping_provider``
#: takes only the values orders.v2 lists (auspost, canadapost, endicia, usps, fedex, ups,
#: upsready, upsonline, shipperhq); any other carrier is a custom shipment, so the field
#: is left out and ``tracking_carrier`` (BigCommerce's tracking-carrier list) makes the
#: tracking link. DHL is not a shipping provider: it travels as tracking carrier "dhl".
CARRIERS: dict[str, tuple[str, str]] = {
    "UPS": ("ups", "ups"),
    "USPS": ("usps", "usps"),
    "FedEx": ("fedex", "fedex"),
    "DHL": ("", "dhl"),
    "DHL Express": ("", "dhl"),
    "DHL eCommerce": ("", "dhl-global-mail"),
    "Canada Post": ("canadapost", "canada-post"),
    "Australia Post": ("auspost", "australia-post"),
    "Endicia": ("endicia", "usps"),
    "OnTrac": ("", "ontrac"),
    "LaserShip": ("", "lasership"),
    "Purolator": ("", "purolator"),
    "Royal Mail": ("", "royal-mail"),
    "DPD": ("", "dpd"),
    "GLS": ("", "gls"),
    "TNT": ("", "tnt"),
}
_ALIASES = {
    "unitedparcelservice": "UPS",
    "unitedstatespostalservice": "USPS",
    "federalexpress": "FedEx",
    "auspost": "Australia Post",
    "canadapost": "Canada Post",
}

#: Order statuses that show the order was shipped (orders.v2 ``/order_statuses``).
SHIPPED_STATUSES = {2: "Shipped", 3: "Partially Shipped"}
#: ``GET /v2/store`` ``weight_units`` -> the unit stored with a product's weight.
WEIGHT_UNITS = {"lbs": "lb", "pounds": "lb", "ounces": "oz", "oz": "oz", "kgs": "kg",
                "kg": "kg", "kilograms": "kg", "grams": "g", "g": "g", "tonnes": "t"}
#: BigCommerce's largest page for V2 collections and V3 catalog lists.
PAGE_SIZE = 250
#: Enough pages for any real order's shipments or lines; a bound against a looping store.
MAX_PAGES = 20


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", (name or "").lower())


_LOOKUP = {_norm(name): fields for name, fields in CARRIERS.items()}
_LOOKUP.update({alias: CARRIERS[name] for alias, name in _ALIASES.items()})


def carrier_fields(carrier: str) -> dict[str, str] | None:
    """The shipment's carrier fields for a host carrier name (any case), or None."""
    found = _LOOKUP.get(_norm(carrier))
    if found is None:
        return None
    provider, tracking_carrier = found
    fields = {"tracking_carrier": tracking_carrier}
    if provider:
        fields["shipping_provider"] = provider
    return fields


def _same_tracking(a: Any, b: str) -> bool:
    return _norm(str(a or "")) == _norm(b) != ""


class BigCommerceConnector(HttpConnector):
    platform = "bigcommerce"
    credential_fields = ("access_token",)
    credential_help = {
        "access_token": "Of a store-level API account (control panel: Settings, API, "
                        "Store-level API accounts) that may modify orders and read "
                        "products. The API path shown there gives the address.",
    }
    endpoint_example = "https://api.bigcommerce.com/stores/{store_hash}"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As :class:`HttpConnector`; every call then carries the token and Accept."""
        super().__init__(*args, **kwargs)
        self.http.session.headers.update({
            "X-Auth-Token": str(self.credentials.get("access_token") or ""),
            "Accept": "application/json",
        })

    def retry_hint(self, response: requests.Response) -> float | None:
        """When the quota is used up, the seconds until its window resets (BigCommerce's
        hint); for other errors a Retry-After if the store sent one."""
        raw = response.headers.get("X-Rate-Limit-Time-Reset-Ms")
        exhausted = (response.status_code == 429
                     or response.headers.get("X-Rate-Limit-Requests-Left") == "0")
        if exhausted and raw is not None:
            try:
                return max(0.0, int(raw) / 1000)
            except ValueError:
                pass
        return super().retry_hint(response)

    # -- the interface ---------------------------------------------------------------
    def write_back(self, package: Package) -> Result:
        carrier = carrier_fields(package.carrier)
        if carrier is None:
            return unknown_carrier(package.carrier, "BigCommerce", list(CARRIERS))
        refused = self.missing_credentials() or _bad_order_id(package.order_id)
        if refused:
            return refused
        base = f"/v2/orders/{package.order_id}"
        listed = self._list(Api.WRITEBACK, f"{base}/shipments")
        if isinstance(listed, Result):
            return listed
        shipments, reply = listed
        earlier = _with_tracking(shipments, package.tracking_number)
        if earlier is not None:  # an earlier attempt landed: sending again would duplicate
            return reply.result(
                Outcome.VERIFIED, f"BigCommerce order {package.order_id} already has shipment "
                f"{earlier.get('id')} with tracking {package.tracking_number}",
                data={"shipment_id": earlier.get("id")})
        listed = self._list(Api.WRITEBACK, f"{base}/products")
        if isinstance(listed, Result):
            return listed
        plan = _plan_items(package, listed[0])
        if isinstance(plan, Result):
            return plan
        address_id, items = plan
        if address_id is None:
            address_id = self._only_address(package.order_id)
            if isinstance(address_id, Result):
                return address_id
        body = {"order_address_id": address_id, "tracking_number": package.tracking_number,
                "shipping_method": package.service, **carrier, "items": items}
        reply = self._call(Api.WRITEBACK, "POST", f"{base}/shipments", json=body)
        if reply.error:
            return reply.error
        shipment_id = reply.json.get("id") if isinstance(reply.json, Mapping) else None
        return reply.result(Outcome.ACCEPTED, f"Shipment {shipment_id} created on BigCommerce "
                            f"order {package.order_id}", data={"shipment_id": shipment_id})

    def verify(self, package: Package) -> Result:
        refused = self.missing_credentials() or _bad_order_id(package.order_id)
        if refused:
            return refused
        base = f"/v2/orders/{package.order_id}"
        listed = self._list(Api.ORDERS, f"{base}/shipments")
        if isinstance(listed, Result):
            return listed
        shipments, reply = listed
        shipment = _with_tracking(shipments, package.tracking_number)
        if shipment is None:
            return reply.result(Outcome.NOT_YET_VISIBLE, f"BigCommerce order {package.order_id} "
                                f"has no shipment with tracking {package.tracking_number} yet")
        reply = self._call(Api.ORDERS, "GET", base)
        if reply.error:
            return reply.error
        order = reply.json if isinstance(reply.json, Mapping) else {}
        status_id, status = order.get("status_id"), order.get("status") or "unknown"
        data = {"shipment_id": shipment.get("id"), "status_id": status_id, "status": status}
        if status_id in SHIPPED_STATUSES:
            return reply.result(Outcome.VERIFIED, f"BigCommerce order {package.order_id} is "
                                f"{SHIPPED_STATUSES[status_id]} with tracking "
                                f"{package.tracking_number}", data=data)
        return reply.result(Outcome.NOT_YET_VISIBLE, f"BigCommerce order {package.order_id} has "
                            f"the shipment but its status is {status!r}, not Shipped or "
                            "Partially Shipped", data=data)

    def fetch_products(self, limit: int = 250) -> Result:
        refused = self.missing_credentials()
        if refused:
            return refused
        store = self._call(Api.PRODUCTS, "GET", "/v2/store")
        if store.error:
            return store.error
        raw_unit = store.json.get("weight_units") if isinstance(store.json, Mapping) else None
        unit = WEIGHT_UNITS.get(_norm(str(raw_unit or ""))) or (raw_unit or None)
        products: list[ProductInfo] = []
        reply = store
        for page in range(1, MAX_PAGES + 1):
            reply = self._call(Api.PRODUCTS, "GET", "/v3/catalog/products", params={
                "include": "images", "limit": min(max(limit, 1), PAGE_SIZE), "page": page})
            if reply.error:
                return reply.error
            body = reply.json if isinstance(reply.json, Mapping) else {}
            data = body.get("data")
            if not isinstance(data, list):
                return _unexpected(reply, "/v3/catalog/products", "a {data, meta} object")
            products.extend(_product(raw, unit) for raw in data if isinstance(raw, Mapping))
            pagination = (body.get("meta") or {}).get("pagination") or {}
            if len(products) >= limit or not data or page >= int(
                    pagination.get("total_pages") or page):
                break
        return reply.result(Outcome.OK, f"{min(len(products), limit)} products from BigCommerce",
                            data=products[:limit])

    def probe(self, api: Api) -> Result:
        """PRODUCTS: one catalog product. ORDERS: one order. WRITEBACK: the order count, a
        read of the same V2 Orders API (and token scope) the shipments are written to; a
        shipment read would need an order id the probe does not have."""
        refused = self.missing_credentials()
        if refused:
            return refused
        path, params = {
            Api.PRODUCTS: ("/v3/catalog/products", {"limit": 1}),
            Api.ORDERS: ("/v2/orders", {"limit": 1}),
            Api.WRITEBACK: ("/v2/orders/count", None),
        }[api]
        reply = self._call(api, "GET", path, params=params)
        return reply.error or reply.result(Outcome.OK, f"BigCommerce {api.value} API answered")

    # -- helpers -----------------------------------------------------------------------
    def _call(self, api: Api, method: str, path: str, **kwargs: Any) -> Reply:
        return self.http.request(api, method, path, **kwargs)

    def _list(self, api: Api, path: str) -> tuple[list[Any], Reply] | Result:
        """Every item of a V2 collection. An empty one is answered 204 with no body."""
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            reply = self._call(api, "GET", path, params={"limit": PAGE_SIZE, "page": page})
            if reply.error:
                return reply.error
            batch = [] if reply.json is None else reply.json
            if not isinstance(batch, list):
                return _unexpected(reply, path, "a list")
            items.extend(batch)
            if len(batch) < PAGE_SIZE:
                break
        return items, reply

    def _only_address(self, order_id: str) -> int | Result:
        listed = self._list(Api.WRITEBACK, f"/v2/orders/{order_id}/shipping_addresses")
        if isinstance(listed, Result):
            return listed
        ids = [a.get("id") for a in listed[0] if isinstance(a, Mapping)]
        if len(ids) == 1:
            return ids[0]
        return Result(Outcome.NEEDS_FIXING, f"BigCommerce order {order_id} has {len(ids)} "
                      "shipping addresses and its products do not say which one this package "
                      "goes to. Create the shipment on the store by hand.")


def _bad_order_id(order_id: str) -> Result | None:
    if str(order_id).isdigit():
        return None
    return Result(Outcome.NEEDS_FIXING, f"{order_id!r} is not a BigCommerce order id (a number). "
                  "Correct the order number on the shipment, then retry.")


def _with_tracking(shipments: list[Any], tracking_number: str) -> Mapping[str, Any] | None:
    return next((s for s in shipments if isinstance(s, Mapping)
                 and _same_tracking(s.get("tracking_number"), tracking_number)), None)


def _remaining(line: Mapping[str, Any]) -> int:
    try:
        return int(line.get("quantity") or 0) - int(line.get("quantity_shipped") or 0)
    except (TypeError, ValueError):
        return 0


def _plan_items(package: Package, lines: list[Any]) -> tuple[int | None, list[dict]] | Result:
    """The shipment's items and shipping address from the order's products.

    An item matches the order product whose id is its ``order_item_id``, else the first
    one with its SKU that still has enough to ship. Each order product belongs to one
    shipping address (``order_address_id``), which picks the address deterministically
    even on multi-address orders; None when the products do not say.
    """
    lines = [line for line in lines if isinstance(line, Mapping)]
    wanted: dict[Any, int] = {}
    by_id: dict[Any, Mapping[str, Any]] = {}
    for item in package.items:
        line = next((x for x in lines if item.order_item_id
                     and str(x.get("id")) == str(item.order_item_id)), None)
        if line is None and item.sku:
            same_sku = [x for x in lines if x.get("sku") == item.sku]
            line = next((x for x in same_sku if _remaining(x) >= item.quantity),
                        same_sku[0] if same_sku else None)
        if line is None:
            named = item.sku or item.order_item_id
            return Result(Outcome.NEEDS_FIXING, f"BigCommerce order {package.order_id} has no "
                          f"product {named!r}. Check the package's items against the order.")
        by_id[line.get("id")] = line
        wanted[line.get("id")] = wanted.get(line.get("id"), 0) + item.quantity
    for line_id, quantity in wanted.items():
        left = _remaining(by_id[line_id])
        if quantity > left:
            line = by_id[line_id]
            return Result(Outcome.NEEDS_FIXING, f"BigCommerce order {package.order_id}: "
                          f"{line.get('sku') or line.get('name')!r} has {max(left, 0)} left to "
                          f"ship but the package holds {quantity}. Correct the quantities.")
    addresses = {line.get("order_address_id") for line in by_id.values()} - {None, 0}
    if len(addresses) > 1:
        return Result(Outcome.NEEDS_FIXING, f"The package's items go to {len(addresses)} "
                      f"shipping addresses of BigCommerce order {package.order_id}; split it "
                      "into one package per address.")
    items = [{"order_product_id": line_id, "quantity": quantity}
             for line_id, quantity in wanted.items()]
    return (addresses.pop() if addresses else None), items


def _product(raw: Mapping[str, Any], unit: str | None) -> ProductInfo:
    try:
        weight = float(raw["weight"]) if raw.get("weight") is not None else None
    except (TypeError, ValueError):
        weight = None
    return ProductInfo(sku=str(raw.get("sku") or raw.get("id") or ""),
                       title=str(raw.get("name") or ""), weight=weight,
                       weight_unit=unit if weight is not None else None,
                       image_url=_image(raw.get("images")))


def _image(images: Any) -> str | None:
    """The thumbnail image's standard URL, else the first image's."""
    if not isinstance(images, list):
        return None
    images = [i for i in images if isinstance(i, Mapping)]
    images.sort(key=lambda i: (not i.get("is_thumbnail"), i.get("sort_order") or 0))
    for image in images:
        url = image.get("url_standard") or image.get("url_thumbnail")
        if url:
            return str(url)
    return None


def _unexpected(reply: Reply, path: str, expected: str) -> Result:
    return Result(Outcome.RETRYABLE, f"BigCommerce answered {path} without {expected}: "
                  f"{clip(reply.text, 120) or 'an empty body'}", http_status=reply.status,
                  request_id=reply.request_id, latency_ms=reply.latency_ms)
