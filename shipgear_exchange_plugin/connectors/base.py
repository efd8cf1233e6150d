"""The one connector interface every store speaks, and the typed outcome of every call.

A connector writes one package back to a store, verifies it through the store's Orders
API, fetches products, and probes each API cheaply. It never retries on its own: one
method call is one attempt, and the write-back engine decides what happens next from the
returned :class:`Result`.
"""

from __future__ import annotations

import abc
import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

#: Messages that quote a store's answer are cut to this many characters.
MESSAGE_LIMIT = 300


class Api(enum.StrEnum):
    """The three APIs of a store account whose health the status panel shows."""

    PRODUCTS = "products"
    WRITEBACK = "writeback"
    ORDERS = "orders"


class Outcome(enum.StrEnum):
    """What one call achieved; PRODUCT.md B1 and B3."""

    ACCEPTED = "accepted"  # the store took the write-back; not verified yet
    VERIFIED = "verified"  # the Orders API shows the package shipped with our tracking
    NOT_YET_VISIBLE = "not_yet_visible"  # asked the Orders API; not there (yet)
    OK = "ok"  # a read (products, probe) that worked
    RETRYABLE = "retryable_error"  # timeout, connection error, 429, 5xx, garbled answer
    NEEDS_FIXING = "needs_fixing"  # validation error, unknown carrier: retrying cannot help
    NEEDS_REAUTH = "needs_reauth"  # 401/403: the account must be reconnected

    @property
    def is_error(self) -> bool:
        return self in (Outcome.RETRYABLE, Outcome.NEEDS_FIXING, Outcome.NEEDS_REAUTH)


def clip(text: str | None, limit: int = MESSAGE_LIMIT) -> str:
    """One line, at most ``limit`` characters: store bodies can be huge HTML pages."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Result:
    """The typed outcome of one connector call.

    ``retry_after`` is the store's hint in seconds (Retry-After, rate-limit headers), or
    None. ``maybe_applied`` is True when the request was sent but no answer came back
    (read timeout): the engine must ask the store whether it landed before resending.
    ``deferred`` is True when the call was held back here, never sent, to stay under the
    store's rate limit: it costs no attempt.
    """

    outcome: Outcome
    message: str = ""
    http_status: int | None = None
    request_id: str | None = None
    latency_ms: int | None = None
    retry_after: float | None = None
    throttled: bool = False
    maybe_applied: bool = False
    deferred: bool = False
    data: Any = None

    @property
    def ok(self) -> bool:
        return not self.outcome.is_error


@dataclass(frozen=True)
class Item:
    """One order line in a package: the store's order item id, the SKU and the quantity."""

    quantity: int
    order_item_id: str | None = None
    sku: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Item:
        return cls(quantity=int(raw["quantity"]), order_item_id=raw.get("order_item_id"),
                   sku=raw.get("sku"))


@dataclass(frozen=True)
class Package:
    """One package to write back: what the host shipped and the stable package key (B2)."""

    order_id: str
    package_key: str
    tracking_number: str
    carrier: str
    service: str
    ship_date: dt.datetime
    items: tuple[Item, ...]

    @property
    def quantity(self) -> int:
        return sum(item.quantity for item in self.items)


@dataclass(frozen=True)
class ProductInfo:
    """A store product as the Products API describes it."""

    sku: str
    title: str
    weight: float | None = None
    weight_unit: str | None = None
    image_url: str | None = None


@dataclass(frozen=True)
class AccountRef:
    """What a connector needs to know about a store account (never the secrets)."""

    id: int
    platform: str
    endpoint: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptionField:
    """A non-secret account option that an admin sets on the Store accounts page."""

    name: str
    label: str
    help: str = ""
    required: bool = False
    #: A regular expression the whole value must match, and what to say when it does not.
    pattern: str | None = None
    pattern_message: str = ""


@dataclass(frozen=True)
class CallRecord:
    """One HTTP call to a store, as reported to the recorder (the status engine's input)."""

    account_id: int
    api: Api
    outcome: Outcome
    latency_ms: int
    http_status: int | None
    throttled: bool
    at: dt.datetime


class Throttle(Protocol):
    """Seconds to wait before a call to ``api`` of the account may go (0: go now)."""

    def wait_for(self, account_id: int, platform: str, api: Api) -> float: ...


class CallRecorder(Protocol):
    """Receives every call any connector makes. Must not raise: recording never fails a
    write-back (an implementation that cannot store the call logs the miss)."""

    def record(self, call: CallRecord) -> None: ...


class NullRecorder:
    def record(self, call: CallRecord) -> None:
        return None


class ListRecorder:
    """Keeps calls in a list: for tests and for one-off tools."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)


def unknown_carrier(carrier: str, store: str, known: list[str]) -> Result:
    """B6: a carrier the store cannot take is refused before any request is made."""
    sample = ", ".join(known[:8])
    return Result(Outcome.NEEDS_FIXING,
                  f"Carrier {carrier!r} is not one {store} accepts. Map it to one of its "
                  f"carriers ({sample}, ...) in the shipment, then retry.")


class Connector(abc.ABC):
    """A store's API for one account. Subclasses set ``platform`` and implement the four
    operations; :mod:`.http` gives them timeouts, classification and recording."""

    platform: ClassVar[str]
    #: Keys the account's encrypted credentials must hold.
    credential_fields: ClassVar[tuple[str, ...]] = ()
    #: Where the admin who connects the account finds each credential on the store.
    credential_help: ClassVar[dict[str, str]] = {}
    #: Options an admin sets when connecting or editing the account.
    option_fields: ClassVar[tuple[OptionField, ...]] = ()
    #: What the store's API address looks like, shown to the admin who connects it.
    endpoint_example: ClassVar[str] = ""
    #: The store applies a write before answering, so reading the order straight back
    #: is a meaningful check (Amazon processes confirmations later: False there).
    shows_writes_at_once: ClassVar[bool] = True

    @abc.abstractmethod
    def write_back(self, package: Package) -> Result:
        """Send one package's shipment. ACCEPTED (or VERIFIED if the answer proves it)."""

    @abc.abstractmethod
    def verify(self, package: Package) -> Result:
        """Ask the Orders API: VERIFIED when the order or package shows as shipped with
        ``package.tracking_number``, NOT_YET_VISIBLE when not."""

    @abc.abstractmethod
    def fetch_products(self, limit: int = 250) -> Result:
        """OK with ``data`` a list of :class:`ProductInfo` (at most ``limit``)."""

    @abc.abstractmethod
    def probe(self, api: Api) -> Result:
        """The cheapest authenticated read that shows whether ``api`` works."""

    def missing_credentials(self) -> Result | None:
        """NEEDS_REAUTH when the stored credentials lack a field, else None."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most connectors override it
        """Release the HTTP session."""

    @classmethod
    def demo_credentials(cls, account_key: str) -> dict[str, str]:
        """Credentials the sandbox accepts, for the demo's seeded accounts."""
        return {name: f"demo-{name}-{account_key}" for name in cls.credential_fields}

    @classmethod
    def default_options(cls, endpoint: str) -> dict[str, Any]:
        """Non-secret account options a new account starts with."""
        return {}
