"""Connection Status: each store account's Products, Writeback and Orders API.

PRODUCT.md section 3 defines the colours from the last 15 minutes of calls. Until the call
recorder exists (the status issue) no call is recorded, so every API honestly reads
``none`` ("no calls recorded yet"); the panel's structure and the JSON shape are final.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .models import StoreAccount

APIS = ("products", "writeback", "orders")
API_LABELS = {"products": "Products API", "writeback": "Writeback API", "orders": "Orders API"}
COLOURS = ("green", "yellow", "red", "none")


@dataclass(frozen=True)
class ApiStatus:
    status: str
    info: str
    last_run_at: str | None = None


@dataclass(frozen=True)
class AccountStatus:
    account: StoreAccount
    apis: dict[str, ApiStatus]


def accounts(session: Session, company_id: int) -> list[StoreAccount]:
    return session.execute(
        sa.select(StoreAccount)
        .where(StoreAccount.company_id == company_id, StoreAccount.enabled.is_(True))
        .order_by(StoreAccount.platform, StoreAccount.name)
    ).scalars().all()


def panel(session: Session, company_id: int) -> list[AccountStatus]:
    unknown = ApiStatus("none", "No calls recorded yet.")
    return [AccountStatus(a, dict.fromkeys(APIS, unknown)) for a in accounts(session, company_id)]
