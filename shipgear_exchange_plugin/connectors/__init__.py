"""Store connectors: one class per platform behind the interface in :mod:`.base`.

``connector_for`` builds the right connector for a store account; the write-back engine,
the health checks and the products sync only ever talk to that interface.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import (
    AccountRef,
    Api,
    CallRecord,
    CallRecorder,
    Connector,
    Item,
    ListRecorder,
    NullRecorder,
    Outcome,
    Package,
    ProductInfo,
    Result,
    Throttle,
)
from .http import DEFAULT_TIMEOUT

if TYPE_CHECKING:  # pragma: no cover
    from ..addresses import AddressRules
    from ..models import StoreAccount, Writeback

__all__ = [
    "AccountRef", "Api", "CallRecord", "CallRecorder", "Connector", "Item", "ListRecorder",
    "NullRecorder", "Outcome", "Package", "ProductInfo", "Result", "Throttle", "connector_class",
    "connector_for", "package_of",
]

_MODULES = {
    "amazon": "AmazonConnector",
    "shopify": "ShopifyConnector",
    "woocommerce": "WooCommerceConnector",
    "bigcommerce": "BigCommerceConnector",
}


def connector_class(platform: str) -> type[Connector]:
    try:
        class_name = _MODULES[platform]
    except KeyError:
        raise ValueError(f"no connector for platform {platform!r}") from None
    module = importlib.import_module(f"{__name__}.{platform}")
    return getattr(module, class_name)


def account_ref(account: StoreAccount) -> AccountRef:
    return AccountRef(id=account.id, platform=account.platform, endpoint=account.endpoint,
                      options=dict(account.options or {}))


def connector_for(account: StoreAccount | AccountRef, credentials: dict[str, Any],
                  recorder: CallRecorder | None = None,
                  timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                  throttle: Throttle | None = None,
                  addresses: AddressRules | None = None) -> Connector:
    """A connector for ``account`` using its decrypted ``credentials``; ``throttle`` is
    the shared rate limiter every worker consults before a call; ``addresses``, the
    installation's rules for where store calls may go (None: anywhere, for tests and
    tools that build a connector by hand)."""
    ref = account if isinstance(account, AccountRef) else account_ref(account)
    cls = connector_class(ref.platform)
    extra: dict[str, Any] = {}
    if throttle is not None:
        extra["throttle"] = throttle
    if addresses is not None:
        extra["addresses"] = addresses
    return cls(ref, credentials, recorder=recorder, timeout=timeout, **extra)


def package_of(writeback: Writeback) -> Package:
    """The connector's view of an outbox row."""
    return Package(
        order_id=writeback.order_id,
        package_key=writeback.package_key,
        tracking_number=writeback.tracking_number,
        carrier=writeback.carrier,
        service=writeback.service,
        ship_date=writeback.ship_date,
        items=tuple(Item.from_dict(raw) for raw in writeback.items or ()),
    )
