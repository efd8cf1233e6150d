"""Shopify through the Admin GraphQL API (REST Admin is legacy since 2024-10).

A write-back is ``fulfillmentCreate`` against the order's fulfillment orders that still
have the shipped lines open; verification reads the order's fulfillments back. Shopify
throttles two ways and both come back as RETRYABLE with the store's hint: the GraphQL
cost bucket (HTTP 200 with a ``THROTTLED`` error and ``extensions.cost``) and a plain
HTTP 429 with ``Retry-After``.

Account options: ``api_version`` (default :data:`API_VERSION`), ``carrier_map`` (host
carrier name -> Shopify tracking company, on top of :data:`TRACKING_COMPANIES`),
``products_page_size`` (at most :data:`PAGE_SIZE`) and ``sandbox_hints`` (see
:data:`HINT_HEADER`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from .base import Api, Item, Outcome, Package, ProductInfo, Result, clip, unknown_carrier
from .http import HttpConnector, Reply, store_error_text

API_VERSION = "2025-07"
_VERSION_RE = re.compile(r"^(\d{4}-\d{2}|unstable)$")
#: Fulfillment order statuses ``fulfillmentCreate`` accepts (IN_PROGRESS: partly shipped).
FULFILLABLE = ("OPEN", "IN_PROGRESS")
#: Any one of these lets an app create fulfillments for the merchant (the WRITEBACK probe).
WRITE_SCOPES = ("write_merchant_managed_fulfillment_orders", "write_assigned_fulfillment_orders",
                "write_third_party_fulfillment_orders")
#: Products per page: 2 + 20 x 46 = 922 cost points, under Shopify's 1000-point query cap.
PAGE_SIZE = 20
#: Only for accounts pointing at the sandbox: the package's lines, so that the sandbox's
#: open mode can create an order it has never seen before the first query. Shopify ignores
#: unknown request headers; the option ``sandbox_hints`` defaults to on for endpoints that
#: are not ``*.myshopify.com``.
HINT_HEADER = "X-Sandbox-Order-Lines"

#: Shopify's own tracking company names: it builds the tracking link from them.
_SHOPIFY_COMPANIES = (
    "4PX", "Amazon Logistics UK", "Amazon Logistics US", "An Post", "APC", "Asendia USA",
    "Australia Post", "BPost", "Canada Post", "Canpar", "China Post", "Chronopost",
    "Colissimo", "Correios", "Correos", "CTT", "Deutsche Post", "DHL eCommerce",
    "DHL eCommerce Asia", "DHL Express", "DPD", "DPD Local", "DPD UK", "Evri", "FedEx", "GLS",
    "Japan Post (EN)", "La Poste", "Lasership", "New Zealand Post", "OnTrac", "PostNL",
    "PostNord SE", "Purolator", "Royal Mail", "Sendle", "SF Express", "Singapore Post",
    "StarTrack", "Swiss Post", "TNT", "UPS", "USPS", "YunExpress",
)
#: Host carrier name (compared case-insensitively) -> Shopify tracking company (B6).
TRACKING_COMPANIES: dict[str, str] = {
    **{name.lower(): name for name in _SHOPIFY_COMPANIES},
    "united parcel service": "UPS",
    "us postal service": "USPS",
    "united states postal service": "USPS",
    "fed ex": "FedEx",
    "federal express": "FedEx",
    "dhl": "DHL Express",
    "dhl express worldwide": "DHL Express",
    "dhl ecom": "DHL eCommerce",
    "amazon": "Amazon Logistics US",
    "amazon logistics": "Amazon Logistics US",
    "nz post": "New Zealand Post",
    "postnord": "PostNord SE",
}

#: The names an unknown-carrier message suggests, the usual ones first.
_SUGGESTED = dict.fromkeys(["UPS", "USPS", "FedEx", "DHL Express", "DHL eCommerce", "OnTrac",
                            "Canada Post", "Royal Mail", *_SHOPIFY_COMPANIES])

ORDER_FULFILLMENT_ORDERS = """
query OrderFulfillmentOrders($id: ID!) {
  order(id: $id) {
    id
    name
    fulfillmentOrders(first: 5) {
      nodes {
        id
        status
        lineItems(first: 50) { nodes { id remainingQuantity lineItem { id sku } } }
      }
    }
    fulfillments(first: 20) { id status trackingInfo(first: 5) { number company } }
  }
}
"""

FULFILLMENT_CREATE = """
mutation FulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status trackingInfo(first: 5) { number company url } }
    userErrors { field message }
  }
}
"""

ORDER_FULFILLMENTS = """
query OrderFulfillments($id: ID!) {
  order(id: $id) {
    id
    name
    fulfillments(first: 20) { id status trackingInfo(first: 5) { number company } }
  }
}
"""

PRODUCTS = """
query Products($first: Int!, $after: String) {
  products(first: $first, after: $after) {
    nodes {
      id
      title
      featuredMedia { preview { image { url } } }
      variants(first: 10) {
        nodes {
          sku
          title
          inventoryItem { measurement { weight { value unit } } }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

#: The cheapest authenticated read per API. WRITEBACK reads the token's access scopes:
#: it proves the token works and that it may create fulfillments, without touching orders.
PROBES = {
    Api.PRODUCTS: "query ProbeProducts { products(first: 1) { nodes { id } } }",
    Api.ORDERS: "query ProbeOrders { orders(first: 1) { nodes { id } } }",
    Api.WRITEBACK: "query ProbeAccessScopes { currentAppInstallation { accessScopes { handle } } }",
}

_WEIGHT_UNITS = {"GRAMS": "grams", "KILOGRAMS": "kilograms", "OUNCES": "ounces",
                 "POUNDS": "pounds"}


class ShopifyConnector(HttpConnector):
    """One Shopify shop: ``https://{shop}.myshopify.com`` and an Admin API access token."""

    platform = "shopify"
    credential_fields = ("access_token",)
    credential_help = {
        "access_token": "The Admin API access token of a custom app installed in this shop "
                        "(Shopify admin: Settings, Apps and sales channels, Develop apps), "
                        "allowed to read orders and products and to write fulfillments; it "
                        "starts with shpat_.",
    }
    endpoint_example = "https://your-shop.myshopify.com"
    request_id_headers = ("X-Request-Id",)

    @classmethod
    def default_options(cls, endpoint: str) -> dict[str, Any]:
        return {"api_version": API_VERSION, "sandbox_hints": not _is_shopify_host(endpoint)}

    @classmethod
    def demo_credentials(cls, account_key: str) -> dict[str, str]:
        return {"access_token": f"shpat_demo_{account_key}"}

    # -- the four operations ---------------------------------------------------------
    def write_back(self, package: Package) -> Result:
        company = self._company(package.carrier)
        if company is None:
            return unknown_carrier(package.carrier, "Shopify", list(_SUGGESTED))
        refused = self.missing_credentials() or _bad_order_id(package.order_id)
        if refused:
            return refused
        reply = self._graphql(Api.WRITEBACK, ORDER_FULFILLMENT_ORDERS,
                              {"id": _order_gid(package.order_id)}, package)
        if reply.error:
            return reply.error
        order = reply.json["data"].get("order")
        if not isinstance(order, dict):
            return _no_order(reply, package.order_id)
        name = order.get("name") or package.order_id
        landed = _fulfillment_with(order, package.tracking_number)
        if landed is not None:  # B2: an earlier attempt got through; never send it twice
            return reply.result(Outcome.VERIFIED,
                                f"Order {name} already has fulfillment {landed.get('id')} with "
                                f"tracking {package.tracking_number}; not sent again",
                                data={"fulfillment_id": landed.get("id")})
        open_orders = [fo for fo in _nodes(order.get("fulfillmentOrders"))
                       if fo.get("status") in FULFILLABLE]
        if not open_orders:
            return reply.result(Outcome.NEEDS_FIXING,
                                f"Order {name} has nothing left to fulfil on Shopify (no open "
                                "fulfillment order: it is fulfilled, cancelled or on hold). "
                                "Check it in the Shopify admin.")
        plan, problem = _allocate(package.items, open_orders)
        if problem:
            return reply.result(Outcome.NEEDS_FIXING, f"Order {name}: {problem}")
        fulfillment = {
            "lineItemsByFulfillmentOrder": plan,
            "trackingInfo": {"company": company, "number": package.tracking_number},
            "notifyCustomer": False,
        }
        reply = self._graphql(Api.WRITEBACK, FULFILLMENT_CREATE, {"fulfillment": fulfillment})
        if reply.error:
            return reply.error
        payload = _obj(reply.json["data"].get("fulfillmentCreate"))
        user_errors = _nodes(payload.get("userErrors"))
        if user_errors:
            text = "; ".join(str(e.get("message")) for e in user_errors[:3])
            return reply.result(Outcome.NEEDS_FIXING,
                                f"Shopify refused the fulfillment for order {name}: {clip(text)}")
        created = _obj(payload.get("fulfillment"))
        return reply.result(Outcome.ACCEPTED,
                            f"Fulfillment {created.get('id')} created on order {name} with "
                            f"{company} tracking {package.tracking_number}",
                            data={"fulfillment_id": created.get("id")})

    def verify(self, package: Package) -> Result:
        refused = self.missing_credentials() or _bad_order_id(package.order_id)
        if refused:
            return refused
        reply = self._graphql(Api.ORDERS, ORDER_FULFILLMENTS,
                              {"id": _order_gid(package.order_id)}, package)
        if reply.error:
            return reply.error
        order = reply.json["data"].get("order")
        if not isinstance(order, dict):
            return _no_order(reply, package.order_id)
        name = order.get("name") or package.order_id
        found = _fulfillment_with(order, package.tracking_number, statuses=None)
        if found is None:
            return reply.result(Outcome.NOT_YET_VISIBLE,
                                f"Order {name} has no fulfillment with tracking "
                                f"{package.tracking_number} yet")
        if found.get("status") != "SUCCESS":
            return reply.result(Outcome.NOT_YET_VISIBLE,
                                f"Order {name}: the fulfillment with tracking "
                                f"{package.tracking_number} is {found.get('status')}, not SUCCESS")
        return reply.result(Outcome.VERIFIED,
                            f"Order {name} shows fulfillment {found.get('id')} with tracking "
                            f"{package.tracking_number}", data={"fulfillment_id": found.get("id")})

    def fetch_products(self, limit: int = 250) -> Result:
        refused = self.missing_credentials()
        if refused:
            return refused
        size = max(1, min(PAGE_SIZE, int(self.options.get("products_page_size") or PAGE_SIZE)))
        products: list[ProductInfo] = []
        after: str | None = None
        while True:
            reply = self._graphql(Api.PRODUCTS, PRODUCTS, {"first": size, "after": after})
            if reply.error:
                return reply.error
            connection = _obj(reply.json["data"].get("products"))
            for product in _nodes(connection):
                products.extend(_product_infos(product))
            page = _obj(connection.get("pageInfo"))
            after = page.get("endCursor")
            if len(products) >= limit or not page.get("hasNextPage") or not after:
                break
        products = products[:max(0, limit)]
        return reply.result(Outcome.OK, f"{len(products)} products read", data=products)

    def probe(self, api: Api) -> Result:
        refused = self.missing_credentials()
        if refused:
            return refused
        check = _check_write_scope if api is Api.WRITEBACK else None
        reply = self._graphql(api, PROBES[api], extra_check=check)
        if reply.error:
            return reply.error
        return reply.result(Outcome.OK, f"Shopify {api.value} API answered")

    # -- helpers -----------------------------------------------------------------------
    def _company(self, carrier: str) -> str | None:
        overrides = {_key(k): v for k, v in (self.options.get("carrier_map") or {}).items()}
        return overrides.get(_key(carrier)) or TRACKING_COMPANIES.get(_key(carrier))

    def _graphql(self, api: Api, query: str, variables: dict[str, Any] | None = None,
                 package: Package | None = None, *, extra_check=None) -> Reply:
        version = str(self.options.get("api_version") or API_VERSION)
        if not _VERSION_RE.match(version):
            return Reply(None, error=Result(
                Outcome.NEEDS_FIXING, f"The account's api_version {version!r} is not a Shopify "
                f"API version (such as {API_VERSION}). Fix it in the account settings."))
        headers = {"X-Shopify-Access-Token": str(self.credentials.get("access_token", "")),
                   "Accept": "application/json"}
        hints = self.options.get("sandbox_hints", not _is_shopify_host(self.account.endpoint))
        if package is not None and hints:
            headers[HINT_HEADER] = json.dumps([
                {"sku": i.sku, "order_item_id": i.order_item_id, "quantity": i.quantity}
                for i in package.items])

        def check(reply: Reply) -> Result | None:
            problem = _check_graphql(reply)
            if problem is None and extra_check is not None:
                problem = extra_check(reply)
            return problem

        return self.http.request(api, "POST", f"/admin/api/{version}/graphql.json",
                                 json={"query": query, "variables": variables or {}},
                                 headers=headers, check=check)


# -- answers ------------------------------------------------------------------------------
def _check_graphql(reply: Reply) -> Result | None:
    """A 200 is not success in GraphQL: errors (THROTTLED above all) and missing data."""
    body = reply.json
    common = {"http_status": reply.status, "request_id": reply.request_id,
              "latency_ms": reply.latency_ms}
    if not isinstance(body, dict):
        return Result(Outcome.RETRYABLE, f"Shopify answered without a GraphQL result: "
                      f"{clip(reply.text, 120)}", **common)
    errors = body.get("errors")
    if errors:
        errors = errors if isinstance(errors, list) else [errors]
        errors = [e if isinstance(e, dict) else {"message": str(e)} for e in errors]
        codes = {str(_dig(e, "extensions", "code") or "").upper() for e in errors}
        text = clip(store_error_text({"errors": errors}), 240)
        if "THROTTLED" in codes:
            wait = _throttle_wait(body)
            return Result(Outcome.RETRYABLE, f"Throttled by Shopify's GraphQL cost limit; retry "
                          f"in {wait:g} s", retry_after=wait, throttled=True, **common)
        if codes & {"ACCESS_DENIED", "UNAUTHORIZED", "FORBIDDEN"}:
            return Result(Outcome.NEEDS_REAUTH, f"Shopify denied access: {text}. Reinstall the "
                          "app with the access scopes it needs.", **common)
        if codes & {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"}:
            return Result(Outcome.RETRYABLE, f"Shopify failed the query: {text}", **common)
        return Result(Outcome.NEEDS_FIXING, f"Shopify refused the query: {text}", **common)
    if not isinstance(body.get("data"), dict):
        return Result(Outcome.RETRYABLE, "Shopify's answer has no data", **common)
    return None


def _throttle_wait(body: dict[str, Any]) -> float:
    """Seconds until the cost bucket holds the requested cost: (requested - available) /
    restoreRate, from ``extensions.cost``; one second if Shopify left it out."""
    cost = _obj(_dig(body, "extensions", "cost"))
    status = _obj(cost.get("throttleStatus"))
    try:
        needed = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        return round(max(0.0, needed / float(status["restoreRate"])), 2)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 1.0


def _check_write_scope(reply: Reply) -> Result | None:
    scopes = {str(s.get("handle")) for s in
              _nodes(_dig(reply.json, "data", "currentAppInstallation", "accessScopes"))}
    if scopes & set(WRITE_SCOPES):
        return None
    return Result(Outcome.NEEDS_REAUTH, "The access token may not create fulfillments: it lacks "
                  f"{WRITE_SCOPES[0]}. Reinstall the app with that scope.",
                  http_status=reply.status, request_id=reply.request_id,
                  latency_ms=reply.latency_ms)


def _no_order(reply: Reply, order_id: str) -> Result:
    return reply.result(Outcome.NEEDS_FIXING,
                        f"Shopify has no order {order_id}. The host must send the order's "
                        "numeric id (not its name such as #1001).")


# -- orders and fulfillments ------------------------------------------------------------
def _allocate(items: Iterable[Item], fulfillment_orders: list[dict[str, Any]]
              ) -> tuple[list[dict[str, Any]], str | None]:
    """Spread each shipped item over the open fulfillment-order lines that match it.

    A quantity beyond what is open goes to the last matching line: Shopify then refuses
    with its own message, which is the one support needs to see.
    """
    lines = [(fo["id"], line) for fo in fulfillment_orders if fo.get("id")
             for line in _nodes(fo.get("lineItems")) if line.get("id")]
    left_on = {line["id"]: _whole(line.get("remainingQuantity")) for _, line in lines}
    chosen: dict[str, dict[str, int]] = {}  # fulfillment order id -> line id -> quantity

    def add(fo_id: str, line_id: str, quantity: int) -> None:
        per_order = chosen.setdefault(fo_id, {})
        per_order[line_id] = per_order.get(line_id, 0) + quantity

    for item in items:
        matches = _matching(item, lines)
        if not matches:
            label = item.sku or item.order_item_id
            return [], (f"no open line for {label} (not on the order, or already fulfilled). "
                        "Check the shipment's items against the order.")
        wanted = item.quantity
        for fo_id, line in matches:
            take = min(wanted, left_on[line["id"]])
            if take > 0:
                add(fo_id, line["id"], take)
                left_on[line["id"]] -= take
                wanted -= take
        if wanted:
            add(matches[-1][0], matches[-1][1]["id"], wanted)
    plan = [{"fulfillmentOrderId": fo_id,
             "fulfillmentOrderLineItems": [{"id": lid, "quantity": q} for lid, q in qty.items()]}
            for fo_id, qty in chosen.items()]
    return plan, None


def _matching(item: Item, lines: list[tuple[str, dict[str, Any]]]):
    """Lines for ``item``: by the host's order item id (Shopify's line item id) when one
    matches, else by SKU."""
    if item.order_item_id:
        wanted = str(item.order_item_id)
        by_id = [(fo, line) for fo, line in lines
                 if str(_dig(line, "lineItem", "id") or "").rsplit("/", 1)[-1] == wanted
                 or _dig(line, "lineItem", "id") == wanted]
        if by_id:
            return by_id
    if item.sku:
        return [(fo, line) for fo, line in lines if _dig(line, "lineItem", "sku") == item.sku]
    return []


def _fulfillment_with(order: dict[str, Any], tracking: str,
                      statuses: tuple[str, ...] | None = ("SUCCESS", "OPEN", "PENDING")):
    """The order's fulfillment carrying ``tracking`` (in one of ``statuses``), or None."""
    wanted = _tracking_key(tracking)
    for fulfillment in _nodes(order.get("fulfillments")):
        if statuses is not None and fulfillment.get("status") not in statuses:
            continue
        numbers = {_tracking_key(str(t.get("number") or ""))
                   for t in _nodes(fulfillment.get("trackingInfo"))}
        if wanted in numbers:
            return fulfillment
    return None


def _product_infos(product: dict[str, Any]) -> list[ProductInfo]:
    """One ProductInfo per variant with a SKU: variants are what orders and hosts name."""
    image = _dig(product, "featuredMedia", "preview", "image", "url")
    infos = []
    for variant in _nodes(product.get("variants")):
        sku = (variant.get("sku") or "").strip()
        if not sku:
            continue
        title = str(product.get("title") or sku)
        if variant.get("title") and variant["title"] != "Default Title":
            title = f"{title} - {variant['title']}"
        weight = _obj(_dig(variant, "inventoryItem", "measurement", "weight"))
        value = weight.get("value")
        infos.append(ProductInfo(
            sku=sku, title=title,
            weight=float(value) if isinstance(value, (int, float)) else None,
            weight_unit=_WEIGHT_UNITS.get(str(weight.get("unit"))),
            image_url=image))
    return infos


# -- small pieces ------------------------------------------------------------------------
def _nodes(connection: Any) -> list[dict[str, Any]]:
    """Objects of a connection (``nodes`` or ``edges``) or of a plain list."""
    if isinstance(connection, dict):
        if isinstance(connection.get("nodes"), list):
            connection = connection["nodes"]
        else:
            connection = [e.get("node") for e in _nodes(connection.get("edges"))]
    if not isinstance(connection, list):
        return []
    return [n for n in connection if isinstance(n, dict)]


def _whole(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _key(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def _tracking_key(number: str) -> str:
    return "".join(number.split()).upper()


def _order_gid(order_id: str) -> str:
    order_id = order_id.strip()
    return order_id if order_id.startswith("gid://") else f"gid://shopify/Order/{order_id}"


def _bad_order_id(order_id: str) -> Result | None:
    if re.fullmatch(r"\d+|gid://shopify/Order/\d+", order_id.strip()):
        return None
    return Result(Outcome.NEEDS_FIXING,
                  f"{order_id!r} is not a Shopify order id: the host must send the order's "
                  "numeric id (not its name such as #1001).")


def _is_shopify_host(endpoint: str) -> bool:
    return (urlsplit(endpoint).hostname or "").endswith(".myshopify.com")

