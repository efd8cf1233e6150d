"""The sandbox's memory: per store account its orders, products, received writes, feeds,
rate limiters and fault settings. Deterministic for a given seed.

Accounts are addressed as (platform, key), the two path segments of the account's
endpoint (``{sandbox}/amazon/c1``). An account comes into being on first use with a
seeded product catalogue. Orders: in the default *open* mode an order the sandbox has not
seen is created on first write from the items the request names (so the demo's host can
ship any order); in *strict* mode (``PUT /_sandbox/{platform}/{key}/settings``
``{"strict_orders": true}``) only seeded or created orders exist, as on a real store.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .limits import Clock

PLATFORMS = ("amazon", "shopify", "woocommerce", "bigcommerce")


@dataclass
class Faults:
    """What the control API can break for one account (all off by default)."""

    error_rate: float = 0.0  # share of store calls answered with error_status
    error_status: int = 503
    latency_ms: int = 0  # added to every store call
    write_latency_ms: int = 0  # added to writes only (POST/PUT/DELETE): slow, but applied
    outage: str | None = None  # "down" (503 HTML page) or "hang" (no answer)
    hang_seconds: float = 30.0
    throttle: bool = False  # every store call answered 429
    auth_refused: bool = False  # credentials refused: 401/403 in the store's shape
    verify_lag_s: float = 0.0  # a write shows in read-backs only after this delay
    trickle_ms: int = 0  # the answer's body goes out a byte at a time, one every trickle_ms

    def update(self, values: dict[str, Any]) -> None:
        """Apply all of ``values`` or, when one is wrong, none of them."""
        checked = _checked(self, values, "fault")
        if not 0.0 <= float(checked.get("error_rate", self.error_rate)) <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if checked.get("outage", self.outage) not in (None, "down", "hang"):
            raise ValueError("outage must be null, 'down' or 'hang'")
        if int(checked.get("trickle_ms", self.trickle_ms)) < 0:
            raise ValueError("trickle_ms must be 0 or more")
        status = int(checked.get("error_status", self.error_status))
        if not 400 <= status <= 599:
            raise ValueError("error_status must be an HTTP error status (400-599)")
        for key, value in checked.items():
            setattr(self, key, value)


@dataclass
class Settings:
    strict_orders: bool = False
    feed_delay_s: float = 2.0  # IN_QUEUE -> IN_PROGRESS -> DONE, each taking about half
    #: Amazon: createFeed queues the feed, then answers only after this long, so that a
    #: client which stops waiting has a feed in the queue without knowing its id.
    create_feed_answer_s: float = 0.0
    #: Amazon: processing reports stored gzip-compressed (getFeedDocument then says
    #: ``compressionAlgorithm: GZIP``), as Amazon often sends them.
    gzip_reports: bool = False
    #: Overrides of the stores' rate limits by limiter name, e.g.
    #: {"confirmShipment": {"rate": 2, "burst": 10}}; each platform module names its own.
    limits: dict[str, dict[str, float]] = field(default_factory=dict)

    def update(self, values: dict[str, Any]) -> None:
        checked = _checked(self, values, "setting")
        limits = checked.get("limits", {})
        if not all(isinstance(v, dict) for v in limits.values()):
            raise ValueError("limits maps a limiter name to {rate, burst} or {limit, window}")
        for key, value in checked.items():
            setattr(self, key, value)


def _checked(target: Any, values: dict[str, Any], what: str) -> dict[str, Any]:
    """``values`` typed like ``target``'s fields, or ValueError naming the first bad one."""
    known = {f.name: f for f in fields(target)}
    checked = {}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"unknown {what} {key!r}; known: {', '.join(known)}")
        default = getattr(type(target)(), key)
        if value is None or default is None:
            checked[key] = value if value is None or isinstance(value, str) else str(value)
            continue
        if isinstance(default, bool):
            ok, kind = isinstance(value, bool), "true or false"
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            kind = "a number"
        else:
            ok, kind = isinstance(value, type(default)), f"a {type(default).__name__}"
        if not ok:
            raise ValueError(f"{key} must be {kind}, got {value!r}")
        checked[key] = value
    return checked


@dataclass
class Order:
    order_id: str
    items: list[dict[str, Any]]  # {order_item_id, sku, title, quantity}
    created_at: float
    #: Writes the store accepted, as the platform module records them (each with
    #: ``tracking_number`` and ``visible_at``); read-backs show the visible ones.
    shipments: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def item(self, order_item_id: str | None = None, sku: str | None = None):
        for item in self.items:
            if (order_item_id and item["order_item_id"] == order_item_id) or (
                    sku and item["sku"] == sku):
                return item
        return None

    def visible_shipments(self, now: float) -> list[dict[str, Any]]:
        return [s for s in self.shipments if s["visible_at"] <= now]


class Account:
    """One store account in the sandbox."""

    def __init__(self, platform: str, key: str, clock: Clock, seed: int = 7) -> None:
        self.platform, self.key, self.clock = platform, key, clock
        self.lock = threading.RLock()
        self.faults = Faults()
        self.settings = Settings()
        self.orders: dict[str, Order] = {}
        self.products: list[dict[str, Any]] = []
        self.writes: list[dict[str, Any]] = []
        #: Every store call received (method, path, time), faults or not.
        self.requests: list[dict[str, Any]] = []
        self.feeds: dict[str, dict[str, Any]] = {}
        self.documents: dict[str, dict[str, Any]] = {}
        self.limiters: dict[str, Any] = {}
        self.tokens: dict[str, float] = {}  # access token -> expiry (Amazon LWA)
        self.counter = 0
        self.seed_value = seed
        self.rng = random.Random(_mix(seed, platform, key))  # noqa: S311 - test data
        self.seed_products(20)

    # -- identifiers -----------------------------------------------------------------
    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def new_order_id(self) -> str:
        if self.platform == "amazon":
            r, low, high = self.rng, 10**6, 10**7 - 1
            return f"{r.randint(100, 999)}-{r.randint(low, high)}-{r.randint(low, high)}"
        return str(self.rng.randint(10**5, 10**7))

    # -- data --------------------------------------------------------------------------
    def seed_products(self, count: int) -> None:
        r = random.Random(_mix(self.seed_value, self.platform, self.key, "products"))  # noqa: S311
        nouns = ["Mug", "Lamp", "Throw", "Candle", "Basket", "Towel", "Planter", "Tray"]
        adjectives = ["Linen", "Oak", "Copper", "Stoneware", "Wool", "Rattan", "Glass"]
        self.products = [
            {"sku": f"SKU-{1000 + n}", "title": f"{r.choice(adjectives)} {r.choice(nouns)}",
             "weight": round(r.uniform(0.1, 9.5), 2), "weight_unit": "pounds",
             "image": f"{self.platform}/{self.key}/{1000 + n}",  # see images.image_url
             "asin": f"B0{r.randint(10**7, 10**8 - 1)}", "product_id": 100 + n}
            for n in range(count)
        ]

    def seed_orders(self, count: int) -> list[Order]:
        created = []
        for _ in range(count):
            product = self.rng.choice(self.products)
            items = [{"order_item_id": str(self.rng.randint(10**12, 10**13)),
                      "sku": product["sku"], "title": product["title"],
                      "quantity": self.rng.randint(1, 3)}]
            created.append(self.add_order(self.new_order_id(), items))
        return created

    def add_order(self, order_id: str, items: list[dict[str, Any]]) -> Order:
        with self.lock:
            normalised = []
            for n, raw in enumerate(items, start=1):
                normalised.append({
                    "order_item_id": str(raw.get("order_item_id") or f"{order_id}-{n}"),
                    "sku": raw.get("sku") or f"SKU-{n}",
                    "title": raw.get("title") or raw.get("sku") or f"Item {n}",
                    "quantity": int(raw.get("quantity", 1)),
                })
            order = Order(order_id, normalised, self.clock(), extra={"number": self.next_id()})
            self.orders[order_id] = order
            return order

    def find_order(self, order_id: str, items_hint: list[dict[str, Any]] | None = None):
        """The order, or (open mode only) a new one made from the items a write names."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None and not self.settings.strict_orders and items_hint is not None:
                order = self.add_order(order_id, items_hint)
            elif order is not None and not self.settings.strict_orders and items_hint:
                for hint in items_hint:  # open mode: lines the host names exist too
                    if not order.item(hint.get("order_item_id"), hint.get("sku")):
                        order.items.append({
                            "order_item_id": str(hint.get("order_item_id")
                                                 or f"{order_id}-{len(order.items) + 1}"),
                            "sku": hint.get("sku") or f"SKU-{len(order.items) + 1}",
                            "title": hint.get("sku") or "Item",
                            "quantity": int(hint.get("quantity", 1))})
            return order

    def record_write(self, order: Order, operation: str, tracking_number: str,
                     payload: dict[str, Any], *, replaces: dict[str, Any] | None = None,
                     **shipment: Any) -> dict[str, Any]:
        """Store an accepted write: a new shipment, or an edit of ``replaces`` (Amazon's
        same packageReferenceId). Every write is logged for the duplicate report."""
        with self.lock:
            now = self.clock()
            entry = {"at": now, "operation": operation, "order_id": order.order_id,
                     "tracking_number": tracking_number, "edit": replaces is not None,
                     "payload": payload}
            self.writes.append(entry)
            record = {"tracking_number": tracking_number, "created_at": now,
                      "visible_at": now + float(self.faults.verify_lag_s),
                      "id": self.next_id(), **shipment}
            if replaces is not None:
                replaces.update(record)
                return replaces
            order.shipments.append(record)
            return record

    def duplicates(self) -> dict[str, int]:
        """Orders that received the same tracking number as a new shipment more than once
        (an edit of the same package is not a duplicate): order id -> extra copies."""
        with self.lock:
            seen: dict[tuple[str, str], int] = {}
            for write in self.writes:
                if not write["edit"]:
                    key = (write["order_id"], write["tracking_number"])
                    seen[key] = seen.get(key, 0) + 1
            result: dict[str, int] = {}
            for (order_id, _), count in seen.items():
                if count > 1:
                    result[order_id] = result.get(order_id, 0) + count - 1
            return result

    def limiter(self, name: str, factory, **defaults: float):
        """The account's limiter ``name``: ``factory(**defaults)`` unless the settings
        override those values (``rate``/``burst`` or ``limit``/``window``)."""
        with self.lock:
            if name not in self.limiters:
                values = {**defaults, **self.settings.limits.get(name, {})}
                self.limiters[name] = factory(**values, clock=_monotonic_of(self.clock))
            return self.limiters[name]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"platform": self.platform, "key": self.key, "faults": asdict(self.faults),
                    "settings": asdict(self.settings), "orders": len(self.orders),
                    "products": len(self.products), "writes": len(self.writes),
                    "requests": len(self.requests),
                    "feeds": len(self.feeds)}


class SandboxStore:
    """Every account the sandbox knows, created on first use."""

    def __init__(self, clock: Clock = time.time, seed: int = 7) -> None:
        self.clock = clock
        self.seed = seed
        self._accounts: dict[tuple[str, str], Account] = {}
        self._lock = threading.Lock()
        self.limit_overrides: dict[tuple[str, str], dict[str, Any]] = {}

    def account(self, platform: str, key: str) -> Account:
        if platform not in PLATFORMS:
            raise KeyError(platform)
        with self._lock:
            account = self._accounts.get((platform, key))
            if account is None:
                account = Account(platform, key, self.clock, self.seed)
                self._accounts[(platform, key)] = account
            return account

    def accounts(self) -> list[Account]:
        with self._lock:
            return list(self._accounts.values())

    def reset(self, platform: str | None = None, key: str | None = None) -> None:
        with self._lock:
            if platform is None:
                self._accounts.clear()
            else:
                self._accounts.pop((platform, key or ""), None)


def _monotonic_of(clock: Clock) -> Clock:
    """Limiters use the store's clock when a test injected one, else monotonic time."""
    return time.monotonic if clock is time.time else clock


def _mix(*parts: Any) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")
