"""Amazon Selling Partner API: write-back through Orders v0 ``confirmShipment``,
verification through Orders 2026-01-01 ``getOrder``, products through Listings Items and
Catalog Items, and the batch path through Feeds 2021-06-30 (PRODUCT.md B1-B6).

Decisions worth knowing before changing anything here:

- **Login with Amazon.** The refresh token is exchanged for an access token at the
  account's ``lwa_url``; the token is cached process-wide (:data:`TOKENS`) until a minute
  before it expires, so the connector that a job builds for one package reuses the token
  the previous job got. A 401/403 answered to a *cached* token drops it and repeats that
  one call once with a fresh token (the stale call is not reported to the recorder: token
  expiry says nothing about the store's health); a refused exchange is NEEDS_REAUTH.
- **Carriers (B6).** :data:`CARRIER_CODES` maps the host's carrier names to Amazon's
  carrier codes. A name Amazon has no code for goes as ``carrierCode "Other"`` plus
  ``carrierName`` only when the account lists it in its ``other_carriers`` option: an
  unmapped typo sent as "Other" would be an untrackable package that counts against the
  seller's Valid Tracking Rate, so anything else is refused before any request.
- **Rate limits.** Amazon sends no Retry-After; on 429 :meth:`AmazonConnector.retry_hint`
  turns ``x-amzn-RateLimit-Limit`` (requests per second) into a wait. ``fetch_products``
  paces its own pages by the same header (Catalog Items allows 2 requests/s, burst 2).
- **Probes.** ORDERS: ``searchOrders`` with one result. WRITEBACK: ``searchOrders`` for one
  UNSHIPPED/PARTIALLY_SHIPPED order, the orders ``confirmShipment`` writes to; Amazon has
  no dry run of ``confirmShipment`` and this is the cheapest read under the same role.
  ``searchOrders`` allows 0.0056 requests/s (burst 20): probe these two no more often
  than every 6 minutes together. PRODUCTS: ``searchListingsItems`` with one result.
- **Feeds (B5).** :meth:`AmazonConnector.submit_feed`, :meth:`~AmazonConnector.feed_status`
  and :meth:`~AmazonConnector.feed_results` upload a ``POST_FLAT_FILE_FULFILLMENT_DATA``
  flat file (:data:`FULFILLMENT_FEED_COLUMNS`, one row per package item, data rows
  numbered from 1) and read back Amazon's tab-separated processing report (see
  :func:`parse_processing_report`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from .base import (
    Api,
    OptionField,
    Outcome,
    Package,
    ProductInfo,
    Result,
    clip,
    unknown_carrier,
)
from .http import HttpConnector, Reply

SP_API_HOST_SUFFIX = ".amazon.com"
LWA_URL = "https://api.amazon.com/auth/o2/token"
DEFAULT_MARKETPLACE = "ATVPDKIKX0DER"  # amazon.com
#: Seller id the demo's sandbox accounts start with (the sandbox takes any).
SANDBOX_SELLER_ID = "A1SANDBOXSELLER"
_AMAZON_ID = r"[A-Z0-9]{5,30}"
ORDER_ID = re.compile(r"^\d{3}-\d{7}-\d{7}$")

#: Amazon's carrier codes (the ``CarrierCode`` list of its shipping-confirmation
#: documentation). Anything else must be "Other" plus a carrier name.
AMAZON_CARRIER_CODES: tuple[str, ...] = (
    "USPS", "UPS", "UPSMI", "FedEx", "DHL", "Fastway", "GLS", "GO!",
    "Hermes Logistik Gruppe", "Royal Mail", "Parcelforce", "City Link", "TNT", "Target",
    "SagawaExpress", "NipponExpress", "YamatoTransport", "DHL Global Mail",
    "UPS Mail Innovations", "FedEx SmartPost", "OSM", "OnTrac", "Streamlite", "Newgistics",
    "Canada Post", "Blue Package", "Chronopost", "Deutsche Post", "DPD", "La Poste",
    "Parcelnet", "Poste Italiane", "SDA", "Smartmail", "FEDEX_JP", "JP_EXPRESS", "NITTSU",
    "SAGAWA", "YAMATO", "BlueDart", "AFL/Fedex", "Aramex", "India Post", "Professional",
    "DTDC", "Overnite Express", "First Flight", "Delhivery", "Lasership", "Yodel",
    "Amazon Shipping", "Seur", "Correos", "MRW", "Endopack", "Chrono Express", "Nacex",
    "Correios", "Toll Global Express", "China Post", "Australia Post", "Yun Express", "4PX",
    "YANWEN", "SF Express",
)


def _carrier_key(name: str) -> str:
    return " ".join(name.replace(".", " ").lower().split())


#: The host's carrier names (case-insensitive, dots and extra spaces ignored) -> Amazon's
#: carrier code. Every Amazon code maps to itself; the aliases are names hosts use.
CARRIER_CODES: dict[str, str] = {
    **{_carrier_key(code): code for code in AMAZON_CARRIER_CODES},
    "united parcel service": "UPS",
    "us postal service": "USPS",
    "u s postal service": "USPS",
    "united states postal service": "USPS",
    "us mail": "USPS",
    "fed ex": "FedEx",
    "federal express": "FedEx",
    "fedex smart post": "FedEx SmartPost",
    "dhl express": "DHL",
    "ontrac logistics": "OnTrac",
    "amazon logistics": "Amazon Shipping",
}

#: Columns of the ``POST_FLAT_FILE_FULFILLMENT_DATA`` flat file (the Seller Central
#: shipping-confirmation template); the grid's Amazon export uses the same list.
FULFILLMENT_FEED_COLUMNS: tuple[str, ...] = (
    "order-id", "order-item-id", "quantity", "ship-date", "carrier-code", "carrier-name",
    "tracking-number", "ship-method",
)
FULFILLMENT_FEED_TYPE = "POST_FLAT_FILE_FULFILLMENT_DATA"
FEED_CONTENT_TYPE = "text/tab-separated-values; charset=UTF-8"
REPORT_HEADER = ("original-record-number", "order-id", "order-item-id", "error-code",
                 "error-type", "error-message")

#: Package statuses (Orders 2026-01-01 ``PackageStatus``) that prove the package went out.
SHIPPED_STATUSES = frozenset({"SHIPPED", "IN_TRANSIT", "DELIVERED"})
FEED_PENDING = frozenset({"IN_QUEUE", "IN_PROGRESS"})

#: 429 waits: 1 / x-amzn-RateLimit-Limit, kept within these bounds; the default when the
#: header is missing.
MIN_WAIT_S, MAX_WAIT_S, DEFAULT_THROTTLE_WAIT_S = 0.5, 300.0, 5.0
TOKEN_MARGIN_S = 60.0


def amazon_carrier(name: str | None,
                   other_carriers: Iterable[str] = ()) -> tuple[str, str | None] | None:
    """(carrierCode, carrierName) for the host's carrier name, or None when Amazon cannot
    take it. ``other_carriers``: names the seller agreed to send as "Other"."""
    key = _carrier_key(name or "")
    if not key or key == "other":
        return None
    code = CARRIER_CODES.get(key)
    if code:
        return code, None
    if key in {_carrier_key(n) for n in other_carriers}:
        return "Other", (name or "").strip()
    return None


def iso_utc(when: dt.datetime) -> str:
    """ISO 8601 in UTC to the second, e.g. ``2026-11-27T10:00:00Z`` (naive means UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fulfillment_rows(package: Package, carrier_code: str,
                     carrier_name: str | None) -> list[dict[str, str]]:
    """The flat-file rows for one package: one per item, keyed by FULFILLMENT_FEED_COLUMNS."""
    return [{
        "order-id": package.order_id, "order-item-id": item.order_item_id or "",
        "quantity": str(item.quantity), "ship-date": iso_utc(package.ship_date),
        "carrier-code": carrier_code, "carrier-name": carrier_name or "",
        "tracking-number": package.tracking_number, "ship-method": package.service or "",
    } for item in package.items]


def fulfillment_feed_text(rows: Iterable[Mapping[str, str]]) -> str:
    """Header plus rows, tab-separated; tabs and line breaks inside values become spaces."""
    def cell(value: Any) -> str:
        return " ".join(str(value or "").split())

    lines = ["\t".join(FULFILLMENT_FEED_COLUMNS)]
    lines += ["\t".join(cell(row.get(c)) for c in FULFILLMENT_FEED_COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ProcessingReport:
    processed: int | None
    successful: int | None
    #: record number -> [(order-id, order-item-id, error-type, "code: message")]
    errors: dict[int, list[tuple[str, str, str, str]]]


def parse_processing_report(text: str) -> ProcessingReport:
    """Amazon's processing report for flat-file feeds::

        Feed Processing Summary:
        <TAB>Number of records processed<TAB><TAB>3
        <TAB>Number of records successful<TAB><TAB>2

        original-record-number<TAB>order-id<TAB>order-item-id<TAB>error-code<TAB>error-type<TAB>error-message
        2<TAB>111-...<TAB>5551<TAB>18028<TAB>Error<TAB>The order id ... was not found

    Record numbers count the flat file's data rows from 1; record 0 is the whole file.
    """
    def count(label: str) -> int | None:
        match = re.search(rf"{label}\s+(\d+)", text)
        return int(match.group(1)) if match else None

    errors: dict[int, list[tuple[str, str, str, str]]] = {}
    in_table = False
    for line in text.splitlines():
        cells = line.split("\t")
        if cells[0].strip() == REPORT_HEADER[0]:
            in_table = True
            continue
        if not in_table or not cells[0].strip().isdigit():
            continue
        cells += [""] * (6 - len(cells))
        record, order_id, item_id, code, kind, message = (c.strip() for c in cells[:6])
        text_ = f"{code}: {message}" if code else message
        errors.setdefault(int(record), []).append((order_id, item_id, kind or "Error", text_))
    return ProcessingReport(count("Number of records processed"),
                            count("Number of records successful"), errors)


class TokenCache:
    """Login-with-Amazon access tokens shared by every connector of the process, keyed by
    (LWA URL, client id, hash of the refresh token); one exchange at a time per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._key_locks: dict[tuple[str, str, str], threading.Lock] = {}

    @staticmethod
    def key(lwa_url: str, client_id: str, refresh_token: str) -> tuple[str, str, str]:
        return lwa_url, client_id, hashlib.sha256(refresh_token.encode()).hexdigest()

    def exchange_lock(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            token, expires = self._tokens.get(key, ("", 0.0))
            return token if token and time.monotonic() < expires else None

    def put(self, key: tuple[str, str, str], token: str, expires_in: float) -> None:
        margin = min(TOKEN_MARGIN_S, expires_in / 2)
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + expires_in - margin)

    def drop(self, key: tuple[str, str, str], token: str) -> None:
        with self._lock:
            if self._tokens.get(key, ("",))[0] == token:
                del self._tokens[key]


TOKENS = TokenCache()


class AmazonConnector(HttpConnector):
    """One Amazon seller account in one marketplace. Options: ``marketplace_id``,
    ``seller_id`` (Merchant Token, for the products list), ``lwa_url``, ``other_carriers``."""

    platform = "amazon"
    shows_writes_at_once = False  # confirmShipment is processed after the answer
    credential_fields = ("client_id", "client_secret", "refresh_token")
    credential_help = {
        "client_id": "The LWA client ID of your SP-API application (Seller Central, "
                     "Develop Apps: View, under LWA credentials).",
        "client_secret": "The LWA client secret shown beside that client ID.",
        "refresh_token": "Given when this seller account authorizes the application "
                         "(Develop Apps: Authorize app); it starts with Atzr|.",
    }
    option_fields = (
        OptionField("seller_id", "Seller ID", pattern=_AMAZON_ID,
                    pattern_message="Amazon's seller ids are 5 to 30 capital letters and digits, "
                                    "like A2EUQ1WTGCTBG2.",
                    help="Optional. Your Merchant Token (Seller Central: Settings, Account "
                         "Info, Business Information); the Products tab needs it."),
        OptionField("marketplace_id", "Marketplace ID", required=True, pattern=_AMAZON_ID,
                    pattern_message="Amazon's marketplace ids are 5 to 30 capital letters and "
                                    "digits, like ATVPDKIKX0DER.",
                    help=f"{DEFAULT_MARKETPLACE} is amazon.com; each marketplace has its id "
                         "in Amazon's SP-API documentation."),
    )
    endpoint_example = "https://sellingpartnerapi-na.amazon.com"
    request_id_headers = ("x-amzn-RequestId",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_call: dict[str, float] = {}

    @classmethod
    def default_options(cls, endpoint: str) -> dict[str, Any]:
        """Real SP-API hosts (``*.amazon.com``) log in at Amazon's LWA; any other endpoint
        (the sandbox at ``{sandbox}/amazon/{key}``) serves LWA at ``{endpoint}/auth/o2/token``."""
        real = (urlsplit(endpoint).hostname or "").endswith(SP_API_HOST_SUFFIX)
        return {
            "marketplace_id": DEFAULT_MARKETPLACE,
            "seller_id": "" if real else SANDBOX_SELLER_ID,
            "lwa_url": LWA_URL if real else endpoint.rstrip("/") + "/auth/o2/token",
            "other_carriers": [],
        }

    @property
    def marketplace_id(self) -> str:
        return str(self.options.get("marketplace_id") or DEFAULT_MARKETPLACE)

    @property
    def lwa_url(self) -> str:
        return str(self.options.get("lwa_url")
                   or self.default_options(self.account.endpoint)["lwa_url"])

    # -- rate limits -------------------------------------------------------------------
    def retry_hint(self, response: requests.Response) -> float | None:
        """429: 1 / ``x-amzn-RateLimit-Limit`` seconds (bounded), else a default backoff;
        other errors: Retry-After when present."""
        if response.status_code != 429:
            return super().retry_hint(response)
        wait = _wait_for(response.headers.get("x-amzn-RateLimit-Limit"))
        return DEFAULT_THROTTLE_WAIT_S if wait is None else min(max(wait, MIN_WAIT_S), MAX_WAIT_S)

    def _pace(self, operation: str) -> None:
        """Wait until ``operation``'s last answer allows the next call (multi-page reads)."""
        delay = self._next_call.get(operation, 0.0) - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _paced(self, operation: str, reply: Reply) -> None:
        wait = _wait_for(reply.headers.get("x-amzn-RateLimit-Limit")) or 0.0
        self._next_call[operation] = time.monotonic() + min(wait, 5.0)

    # -- HTTP with Login with Amazon ---------------------------------------------------
    def _record(self, api: Api, reply: Reply) -> None:
        """Report a call made with ``record=False`` once its outcome is final (a call the
        shared rate limit held back was never made: StoreHttp does not report those)."""
        if reply.error is None or not reply.error.deferred:
            self.http.record(api, reply)

    def _token_key(self) -> tuple[str, str, str]:
        return TOKENS.key(self.lwa_url, str(self.credentials["client_id"]),
                          str(self.credentials["refresh_token"]))

    def _access_token(self, api: Api) -> tuple[str | None, bool, Result | None]:
        """(token, fresh, error): a cached token, or one exchanged now."""
        missing = self.missing_credentials()
        if missing is not None:
            return None, False, missing
        key = self._token_key()
        with TOKENS.exchange_lock(key):
            token = TOKENS.get(key)
            if token:
                return token, False, None
            reply = self.http.request(api, "POST", self.lwa_url, record=False,
                                      rate_limited=False, data={
                "grant_type": "refresh_token",
                "refresh_token": self.credentials["refresh_token"],
                "client_id": self.credentials["client_id"],
                "client_secret": self.credentials["client_secret"],
            })
            body = reply.json if isinstance(reply.json, Mapping) else {}
            if reply.error is None and not body.get("access_token"):
                reply.error = Result(Outcome.RETRYABLE, "Login with Amazon answered without an "
                                     f"access token: {clip(reply.text, 120)}",
                                     http_status=reply.status, latency_ms=reply.latency_ms)
            if reply.error is not None:
                reply.error = self._token_error(reply, body)
            self._record(api, reply)
            if reply.error is not None:
                return None, False, reply.error
            token = str(body["access_token"])
            TOKENS.put(key, token, float(body.get("expires_in") or 3600))
            return token, True, None

    @staticmethod
    def _token_error(reply: Reply, body: Mapping[str, Any]) -> Result:
        error = reply.error
        assert error is not None
        if reply.status in (400, 401):
            reason = ": ".join(str(body[k]) for k in ("error", "error_description") if body.get(k))
            return replace(error, outcome=Outcome.NEEDS_REAUTH, message=(
                "Login with Amazon refused the stored credentials"
                f"{' (' + clip(reason, 160) + ')' if reason else ''}. Authorise the app again "
                "in Seller Central and store the new refresh token."))
        # Nothing reached SP-API yet: a timeout here cannot have applied a write.
        return replace(error, maybe_applied=False,
                       message=f"Login with Amazon failed: {error.message}")

    def _sp(self, api: Api, method: str, path: str, **kwargs: Any) -> Reply:
        """An SP-API call with the access token; a cached token refused is replaced once."""
        token, fresh, error = self._access_token(api)
        if error is not None:
            return Reply(status=error.http_status, latency_ms=error.latency_ms or 0, error=error)
        reply = self._send_sp(api, method, path, token, kwargs)
        if reply.status in (401, 403) and not fresh:
            TOKENS.drop(self._token_key(), token or "")
            token, fresh, error = self._access_token(api)
            if error is not None:
                return Reply(status=error.http_status, latency_ms=error.latency_ms or 0,
                             error=error)
            reply = self._send_sp(api, method, path, token, kwargs)
        self._record(api, reply)  # the stale token's refusal is not the store's health
        return reply

    def _send_sp(self, api: Api, method: str, path: str, token: str | None,
                 kwargs: dict[str, Any]) -> Reply:
        headers = {"x-amz-access-token": token or "", "Accept": "application/json"}
        return self.http.request(api, method, path, record=False, headers=headers, **kwargs)

    # -- write-back --------------------------------------------------------------------
    def check(self, package: Package) -> Result | None:
        """NEEDS_FIXING when Amazon could not take ``package`` (B6: carrier first); None
        when it can be sent. No request is made."""
        if amazon_carrier(package.carrier, self._other_carriers()) is None:
            result = unknown_carrier(package.carrier, "Amazon", list(AMAZON_CARRIER_CODES))
            return replace(result, message=result.message + " A carrier Amazon has no code for "
                           "goes as \"Other\" once it is listed in the account's other carriers.")
        if not ORDER_ID.match(package.order_id or ""):
            return Result(Outcome.NEEDS_FIXING, f"{package.order_id!r} is not an Amazon order "
                          "id (3-7-7 digits, e.g. 123-1234567-1234567).")
        if not (package.package_key or "").isdigit() or int(package.package_key) <= 0:
            return Result(Outcome.NEEDS_FIXING, f"Package key {package.package_key!r} is not a "
                          "positive number, which Amazon's packageReferenceId requires.")
        if not (package.tracking_number or "").strip():
            return Result(Outcome.NEEDS_FIXING, "The package has no tracking number.")
        if not package.items:
            return Result(Outcome.NEEDS_FIXING, "The package lists no items to confirm.")
        for item in package.items:
            if not item.order_item_id:
                return Result(Outcome.NEEDS_FIXING, f"Item {item.sku or '(no SKU)'} has no "
                              "Amazon order item id; re-import the order from Amazon, then retry.")
            if item.quantity <= 0:
                return Result(Outcome.NEEDS_FIXING, f"Item {item.sku or item.order_item_id} "
                              f"has quantity {item.quantity}.")
        return None

    def _other_carriers(self) -> list[str]:
        value = self.options.get("other_carriers") or []
        return [value] if isinstance(value, str) else list(value)

    def confirmation_body(self, package: Package) -> dict[str, Any]:
        """The ``ConfirmShipmentRequest`` for a package that passed :meth:`check`."""
        carrier = amazon_carrier(package.carrier, self._other_carriers())
        assert carrier is not None
        code, name = carrier
        detail: dict[str, Any] = {"packageReferenceId": str(package.package_key),
                                  "carrierCode": code}
        if name:
            detail["carrierName"] = name
        if package.service:
            detail["shippingMethod"] = package.service
        detail.update({
            "trackingNumber": package.tracking_number.strip(),
            "shipDate": iso_utc(package.ship_date),
            "orderItems": [{"orderItemId": str(item.order_item_id), "quantity": int(item.quantity)}
                           for item in package.items],
        })
        return {"marketplaceId": self.marketplace_id, "packageDetail": detail}

    def write_back(self, package: Package) -> Result:
        problem = self.check(package)
        if problem is not None:
            return problem
        body = self.confirmation_body(package)
        reply = self._sp(Api.WRITEBACK, "POST",
                         f"/orders/v0/orders/{package.order_id}/shipmentConfirmation", json=body)
        if reply.error is not None:
            return reply.error
        detail = body["packageDetail"]
        return reply.result(Outcome.ACCEPTED, "Amazon accepted package "
                            f"{detail['packageReferenceId']} ({detail['carrierCode']} "
                            f"{detail['trackingNumber']}).")

    def verify(self, package: Package) -> Result:
        if not ORDER_ID.match(package.order_id or ""):
            return Result(Outcome.NEEDS_FIXING, f"{package.order_id!r} is not an Amazon order id.")
        reply = self._sp(Api.ORDERS, "GET", f"/orders/2026-01-01/orders/{package.order_id}",
                         params={"includedData": "PACKAGES"})
        if reply.error is not None:
            return reply.error
        order = reply.json.get("order") if isinstance(reply.json, Mapping) else None
        if not isinstance(order, Mapping):
            return Result(Outcome.RETRYABLE, "Amazon's getOrder answer has no order: "
                          f"{clip(reply.text, 120)}", http_status=reply.status,
                          request_id=reply.request_id, latency_ms=reply.latency_ms)
        wanted = _tracking_key(package.tracking_number)
        shown = []
        for pkg in order.get("packages") or []:
            if not isinstance(pkg, Mapping):
                continue
            status = str((pkg.get("packageStatus") or {}).get("status") or "no status")
            tracking = str(pkg.get("trackingNumber") or "")
            if _tracking_key(tracking) == wanted and status in SHIPPED_STATUSES:
                return reply.result(Outcome.VERIFIED, f"Amazon shows package "
                                    f"{pkg.get('packageReferenceId')} {status} with tracking "
                                    f"{tracking}.")
            shown.append(f"{tracking or '(no tracking)'} {status}")
        what = ", ".join(shown[:4]) + ("…" if len(shown) > 4 else "") if shown else "no packages"
        return reply.result(Outcome.NOT_YET_VISIBLE, f"Amazon shows {what} on order "
                            f"{package.order_id}; tracking {package.tracking_number} not shipped "
                            "there yet.")

    # -- products ----------------------------------------------------------------------
    def fetch_products(self, limit: int = 250) -> Result:
        """The seller's listings (Listings Items), each page's weight and main image from
        Catalog Items by ASIN."""
        seller = self.options.get("seller_id")
        if not seller:
            return _no_seller_id()
        products: list[ProductInfo] = []
        page_token = None
        last: Reply | None = None
        while len(products) < limit:
            params = {"marketplaceIds": self.marketplace_id, "includedData": "summaries",
                      "pageSize": min(20, limit - len(products))}
            if page_token:
                params["pageToken"] = page_token
            self._pace("searchListingsItems")
            last = self._sp(Api.PRODUCTS, "GET", f"/listings/2021-08-01/items/{quote(seller)}",
                            params=params)
            if last.error is not None:
                return last.error
            self._paced("searchListingsItems", last)
            body = last.json if isinstance(last.json, Mapping) else {}
            listings = [i for i in body.get("items") or []
                        if isinstance(i, Mapping) and i.get("sku")]
            summaries = {i["sku"]: self._for_marketplace(i.get("summaries")) for i in listings}
            asins = [s["asin"] for s in summaries.values() if s.get("asin")]
            catalog: dict[str, Mapping[str, Any]] = {}
            if asins:
                reply = self._catalog(asins)
                if reply.error is not None:
                    return reply.error
                items = reply.json.get("items") if isinstance(reply.json, Mapping) else None
                catalog = {i["asin"]: i for i in items or [] if isinstance(i, Mapping)
                           and i.get("asin")}
            for listing in listings:
                summary = summaries[listing["sku"]]
                products.append(self._product(listing["sku"], summary,
                                              catalog.get(summary.get("asin") or "", {})))
            page_token = (body.get("pagination") or {}).get("nextToken")
            if not page_token or not listings:
                break
        assert last is not None
        return last.result(Outcome.OK, f"{len(products)} products", data=products[:limit])

    def _catalog(self, asins: Sequence[str]) -> Reply:
        self._pace("searchCatalogItems")
        reply = self._sp(Api.PRODUCTS, "GET", "/catalog/2022-04-01/items", params={
            "identifiers": ",".join(asins), "identifiersType": "ASIN",
            "marketplaceIds": self.marketplace_id, "includedData": "dimensions,images,summaries",
            "pageSize": min(20, len(asins))})
        self._paced("searchCatalogItems", reply)
        return reply

    def _for_marketplace(self, entries: Any) -> Mapping[str, Any]:
        """The entry of a per-marketplace list for this account's marketplace."""
        entries = [e for e in entries or [] if isinstance(e, Mapping)]
        return next((e for e in entries if e.get("marketplaceId") == self.marketplace_id),
                    entries[0] if entries else {})

    def _product(self, sku: str, summary: Mapping[str, Any],
                 item: Mapping[str, Any]) -> ProductInfo:
        dims = self._for_marketplace(item.get("dimensions"))
        weight = (dims.get("package") or {}).get("weight") or (dims.get("item") or {}).get("weight")
        images = self._for_marketplace(item.get("images")).get("images") or []
        main = next((i for i in images if i.get("variant") == "MAIN"), images[0] if images else {})
        title = (summary.get("itemName")
                 or self._for_marketplace(item.get("summaries")).get("itemName") or sku)
        value = weight.get("value") if isinstance(weight, Mapping) else None
        return ProductInfo(
            sku=sku, title=str(title),
            weight=float(value) if isinstance(value, int | float) else None,
            weight_unit=weight.get("unit") if isinstance(weight, Mapping) and value is not None
            else None,
            image_url=main.get("link") or (summary.get("mainImage") or {}).get("link"))

    # -- probes ------------------------------------------------------------------------
    def probe(self, api: Api) -> Result:
        if api is Api.PRODUCTS:
            seller = self.options.get("seller_id")
            if not seller:
                return _no_seller_id()
            reply = self._sp(api, "GET", f"/listings/2021-08-01/items/{quote(seller)}", params={
                "marketplaceIds": self.marketplace_id, "pageSize": 1})
        elif api is Api.WRITEBACK:
            # Amazon has no dry run of confirmShipment; getFeeds of our fulfillment feeds
            # exercises the write path's permissions (0.0222/s: fine every few minutes,
            # while searchOrders at 0.0056/s could not take two probes per round).
            reply = self._sp(api, "GET", "/feeds/2021-06-30/feeds", params={
                "feedTypes": FULFILLMENT_FEED_TYPE, "pageSize": 1})
        else:
            now = dt.datetime.now(dt.UTC)
            reply = self._sp(api, "GET", "/orders/2026-01-01/orders", params={
                "marketplaceIds": self.marketplace_id, "maxResultsPerPage": 1,
                "lastUpdatedAfter": iso_utc(now - dt.timedelta(days=1))})
        return reply.error or reply.result(Outcome.OK, f"Amazon {api.value} API answered")

    # -- feeds (B5) --------------------------------------------------------------------
    def feed_rows(self, packages: Sequence[Package]) -> list[tuple[str, dict[str, str]]]:
        """(package_key, row) per flat-file data row, in file order (record n = index n-1)."""
        rows = []
        for package in packages:
            code, name = amazon_carrier(package.carrier, self._other_carriers()) or ("", None)
            rows += [(package.package_key, row) for row in fulfillment_rows(package, code, name)]
        return rows

    def submit_feed(self, packages: Sequence[Package]) -> Result:
        """createFeedDocument, upload the flat file, createFeed. ACCEPTED with ``data`` the
        feedId. Every package must pass :meth:`check` (the first that does not is returned,
        nothing is sent): filter with it before batching. Only createFeed puts a feed in
        Amazon's queue, so only its failure may have ``maybe_applied``: a timeout there
        means a feed may exist that nobody knows the id of."""
        if not packages:
            return Result(Outcome.NEEDS_FIXING, "No packages to send in a feed.")
        for package in packages:
            problem = self.check(package)
            if problem is not None:
                return replace(problem, message=f"Package {package.package_key} (order "
                               f"{package.order_id}): {problem.message}")
        text = fulfillment_feed_text(row for _, row in self.feed_rows(packages))
        reply = self._sp(Api.WRITEBACK, "POST", "/feeds/2021-06-30/documents",
                         json={"contentType": FEED_CONTENT_TYPE})
        if reply.error is not None:
            return replace(reply.error, maybe_applied=False)  # a document alone does nothing
        document = reply.json if isinstance(reply.json, Mapping) else {}
        if not document.get("feedDocumentId") or not document.get("url"):
            return _garbled(reply, "createFeedDocument")
        upload = self.http.request(Api.WRITEBACK, "PUT", str(document["url"]), record=False,
                                   rate_limited=False,
                                   data=text.encode("utf-8"),
                                   headers={"Content-Type": FEED_CONTENT_TYPE})
        if upload.error is not None and upload.status in (400, 403, 404):
            upload.error = replace(upload.error, outcome=Outcome.RETRYABLE, message=(
                f"Uploading the feed document failed (the upload URL may have expired): "
                f"{upload.error.message}"))
        self._record(Api.WRITEBACK, upload)
        if upload.error is not None:
            return replace(upload.error, maybe_applied=False)
        reply = self._sp(Api.WRITEBACK, "POST", "/feeds/2021-06-30/feeds", json={
            "feedType": FULFILLMENT_FEED_TYPE, "marketplaceIds": [self.marketplace_id],
            "inputFeedDocumentId": str(document["feedDocumentId"])})
        queued = reply.status is not None and 200 <= reply.status < 300  # whatever it says
        if reply.error is not None:
            return replace(reply.error, maybe_applied=True) if queued else reply.error
        feed_id = reply.json.get("feedId") if isinstance(reply.json, Mapping) else None
        if not feed_id:
            return replace(_garbled(reply, "createFeed"), maybe_applied=True)
        return reply.result(Outcome.ACCEPTED, f"Feed {feed_id} with {len(packages)} packages "
                            "submitted", data=str(feed_id))

    def feed_status(self, feed_id: str) -> Result:
        """OK with ``data`` {"status": processingStatus, "result_document_id": id or None}."""
        reply = self._sp(Api.WRITEBACK, "GET", f"/feeds/2021-06-30/feeds/{quote(feed_id)}")
        if reply.error is not None:
            return reply.error
        feed = reply.json if isinstance(reply.json, Mapping) else {}
        if not feed.get("processingStatus"):
            return _garbled(reply, "getFeed")
        status = str(feed["processingStatus"])
        return reply.result(Outcome.OK, f"Feed {feed_id} is {status}", data={
            "status": status, "result_document_id": feed.get("resultFeedDocumentId") or None})

    def feed_results(self, feed_id: str | None, packages: Sequence[Package], *,
                     document_id: str | None = None) -> Result:
        """OK with ``data`` {package_key: (ok, message)} from the processing report, or
        NOT_YET_VISIBLE while the feed is queued or processing. ``packages`` are the ones
        given to :meth:`submit_feed` (or some of them), in the same order. A known
        ``document_id`` (the result document) saves the getFeed call."""
        status = "DONE"
        if document_id is None:
            state = self.feed_status(feed_id or "")
            if state.outcome is not Outcome.OK:
                return state
            status, document_id = state.data["status"], state.data["result_document_id"]
            if status in FEED_PENDING:
                return replace(state, outcome=Outcome.NOT_YET_VISIBLE,
                               message=f"Feed {feed_id} is still {status}")
            if status == "CANCELLED":
                return replace(state, message=f"Feed {feed_id} was cancelled", data={
                    p.package_key: (False, "The feed was cancelled; nothing was applied.")
                    for p in packages})
            if not document_id:
                return replace(state, outcome=Outcome.RETRYABLE,
                               message=f"Feed {feed_id} is {status} but has no result document yet")
        reply = self._report(str(document_id))
        if reply.error is not None:
            return reply.error
        report = parse_processing_report(reply.text)
        data = self._map_report(report, packages, fatal=status == "FATAL")
        failed = sum(1 for ok, _ in data.values() if not ok)
        return reply.result(Outcome.OK, f"Feed {feed_id or document_id} {status}: "
                            f"{len(data) - failed} packages confirmed, {failed} failed", data=data)

    def _report(self, document_id: str) -> Reply:
        """getFeedDocument, then download the report from its (presigned) URL."""
        reply = self._sp(Api.WRITEBACK, "GET", f"/feeds/2021-06-30/documents/{quote(document_id)}")
        if reply.error is not None:
            return reply
        document = reply.json if isinstance(reply.json, Mapping) else {}
        if not document.get("url"):
            reply.error = _garbled(reply, "getFeedDocument")
            return reply
        algorithm = document.get("compressionAlgorithm")
        if algorithm not in (None, "GZIP"):
            reply.error = Result(Outcome.NEEDS_FIXING, f"Amazon sent a processing report "
                                 f"compressed with {clip(str(algorithm), 40)}, which this "
                                 "plugin cannot read; see the feed in Seller Central.")
            return reply
        download = self.http.request(Api.WRITEBACK, "GET", str(document["url"]), record=False,
                                     rate_limited=False)
        if download.error is not None and download.status == 200 and download.content:
            download.error = None  # a text report, not JSON: that is what we asked for
        if download.error is None and algorithm == "GZIP":
            _gunzip_report(download)
        self._record(Api.WRITEBACK, download)
        return download

    @staticmethod
    def _map_report(report: ProcessingReport, packages: Sequence[Package],
                    fatal: bool) -> dict[str, tuple[bool, str]]:
        """Failed records find their package by order id and order item id; the record
        number (file order of ``packages``) only breaks ties, so a subset of the packages
        submitted still maps right. Warnings do not fail a record."""
        if fatal:
            whole = "; ".join(m for *_, m in report.errors.get(0, []))
            message = "Amazon rejected the whole feed (FATAL)" + (f": {whole}" if whole else "")
            return {p.package_key: (False, clip(message)) for p in packages}
        by_record: dict[int, Package] = {}
        by_line: dict[tuple[str, str], list[Package]] = {}
        for package in packages:
            for item in package.items:
                by_record[len(by_record) + 1] = package
                by_line.setdefault((package.order_id, item.order_item_id or ""), []).append(package)
        problems: dict[str, list[str]] = {}
        for record, rows in report.errors.items():
            for order_id, item_id, kind, message in rows:
                if kind.lower() != "error":
                    continue
                if record == 0:  # the whole file
                    hit = list(packages)
                elif len(by_line.get((order_id, item_id), [])) == 1:
                    hit = by_line[(order_id, item_id)]
                elif (package := by_record.get(record)) and package.order_id == order_id:
                    hit = [package]
                else:
                    hit = [p for p in packages if p.order_id == order_id]
                for package in hit:
                    problems.setdefault(package.package_key, []).append(message)
        return {p.package_key: (False, clip("; ".join(problems[p.package_key])))
                if p.package_key in problems else (True, "") for p in packages}


#: The most a processing report may hold once decompressed (a few hundred bytes per
#: failed record): more is not a report, and is not read into memory.
MAX_REPORT = 16 * 1024 * 1024


def _gunzip_report(download: Reply) -> None:
    """Replace a GZIP processing report by its text, or set the reply's error. A body that
    is not GZIP is taken as it is: the download was already unpacked on the way (the URL
    answered with ``Content-Encoding: gzip``, which requests undoes)."""
    if not download.content.startswith(b"\x1f\x8b"):
        return
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(download.content, MAX_REPORT)
        complete = inflater.eof and not inflater.unconsumed_tail and not inflater.unused_data
    except zlib.error:
        raw, complete = b"", False
    if not complete:
        too_big = bool(inflater.unconsumed_tail)
        download.error = Result(
            Outcome.NEEDS_FIXING if too_big else Outcome.RETRYABLE,
            f"Amazon's processing report is larger than {MAX_REPORT // 2**20} MB unpacked; "
            "see the feed in Seller Central" if too_big else
            "Amazon's GZIP processing report could not be unpacked (damaged or cut short)",
            http_status=download.status, request_id=download.request_id,
            latency_ms=download.latency_ms)
        return
    download.content = raw
    download.text = raw.decode("utf-8", errors="replace")


def _wait_for(limit: str | None) -> float | None:
    """Seconds per request for an ``x-amzn-RateLimit-Limit`` value, or None."""
    try:
        rate = float(limit) if limit else 0.0
    except ValueError:
        return None
    return 1.0 / rate if rate > 0 else None


def _tracking_key(tracking: str) -> str:
    return "".join((tracking or "").split()).upper()


def _no_seller_id() -> Result:
    return Result(Outcome.NEEDS_FIXING, "The account has no Amazon seller ID (Merchant Token, "
                  "Seller Central > Settings > Account Info). Set it to read the products.")


def _garbled(reply: Reply, operation: str) -> Result:
    return Result(Outcome.RETRYABLE, f"Amazon's {operation} answer is missing fields: "
                  f"{clip(reply.text, 120)}", http_status=reply.status,
                  request_id=reply.request_id, latency_ms=reply.latency_ms)
