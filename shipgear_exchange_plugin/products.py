"""Products: the stores' catalogues copied into ``sgx_product``, and the tab's queries.

A sync asks the store's Products API for the account's items (item number, title, weight,
image) and makes the table match: new SKUs inserted, changed ones updated, SKUs the store
no longer lists deleted, all in one transaction. The network call comes first and nothing
is written unless it worked, so a store that is down or refuses our credentials leaves the
last good copy in place. ``updated_at`` is when the store last confirmed a row (every
successful sync stamps all of the account's rows), which is what "products older than N
seconds" means for the periodic job.

Every query is scoped by ``company_id``; search pages by keyset on (account, SKU), the
unique key, so a page costs the same wherever it is in the list.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from .addresses import AddressRules
from .connectors import (
    AccountRef,
    CallRecorder,
    Outcome,
    ProductInfo,
    Result,
    Throttle,
    connector_for,
)
from .connectors.base import clip
from .connectors.http import DEFAULT_TIMEOUT
from .credentials import read_credentials
from .crypto import CredentialBox
from .models import Product, StoreAccount, utcnow

#: Most products read from one account per sync (a bound on memory and time).
SYNC_LIMIT = 1000
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
#: Longest search text accepted: enough for any SKU or title fragment.
MAX_QUERY = 200
#: Longest cursor accepted before it is decoded.
MAX_CURSOR = 400
_SKU_MAX = Product.__table__.c.sku.type.length
_TITLE_MAX = Product.__table__.c.title.type.length
_IMAGE_MAX = Product.__table__.c.image_url.type.length
_UNIT_MAX = Product.__table__.c.weight_unit.type.length
_ID_MAX = 2**31 - 1
#: Each platform names weight units its own way; the table keeps one spelling.
_UNIT_SYMBOLS = {
    "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb",
    "oz": "oz", "ounce": "oz", "ounces": "oz",
    "kg": "kg", "kgs": "kg", "kilogram": "kg", "kilograms": "kg",
    "g": "g", "gram": "g", "grams": "g",
}


# -- sync --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncResult:
    """What one account's sync did, in words an admin can read."""

    account_id: int
    ok: bool
    message: str
    listed: int = 0  # products the store listed and we kept
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0  # items without a usable SKU, or a SKU listed twice


@dataclass(frozen=True)
class _Clean:
    """A store item as it will be stored (lengths fit the columns, units normalised)."""

    sku: str
    title: str
    weight: float | None
    weight_unit: str | None
    image_url: str | None


def _clean(info: ProductInfo) -> _Clean | None:
    """The row for ``info``, or None when it has no SKU we can key it by."""
    sku = (info.sku or "").strip()
    if not sku or len(sku) > _SKU_MAX:
        return None  # cutting a SKU could merge two products into one row
    weight = info.weight if isinstance(info.weight, int | float) else None
    if weight is not None and (not math.isfinite(weight) or weight < 0):
        weight = None
    unit = (info.weight_unit or "").strip()
    unit = _UNIT_SYMBOLS.get(unit.lower(), unit)[:_UNIT_MAX] or None
    image = (info.image_url or "").strip()
    # Only web images are shown; a cut URL would point elsewhere, so it is dropped.
    if not image.lower().startswith(("https://", "http://")) or len(image) > _IMAGE_MAX:
        image = None
    return _Clean(sku=sku, title=clip(info.title, _TITLE_MAX),
                  weight=weight, weight_unit=unit if weight is not None else None,
                  image_url=image or None)


def fetch(ref: AccountRef, credentials: dict, recorder: CallRecorder | None = None,
          throttle: Throttle | None = None,
          timeout: tuple[float, float] = DEFAULT_TIMEOUT, limit: int = SYNC_LIMIT,
          addresses: AddressRules | None = None) -> Result:
    """The store's products for one account (network only, no database: it may run in a
    thread beside others)."""
    connector = connector_for(ref, credentials, recorder, timeout, throttle=throttle,
                              addresses=addresses)
    try:
        return connector.missing_credentials() or connector.fetch_products(limit)
    finally:
        connector.close()


def apply(session: Session, account_id: int, company_id: int, result: Result,
          now: Callable[[], dt.datetime] = utcnow) -> SyncResult:
    """Make the account's rows match a fetch ``result``; commits. An error result changes
    nothing and is reported with the store's message."""
    if not result.ok or not isinstance(result.data, list):
        message = result.message or "The store did not answer with products."
        if result.deferred:
            message = "Held back to stay under the store's rate limit; try again shortly."
        return SyncResult(account_id, ok=False, message=message)
    wanted: dict[str, _Clean] = {}
    skipped = 0
    for info in result.data:
        row = _clean(info) if isinstance(info, ProductInfo) else None
        if row is None or row.sku in wanted:
            skipped += 1
            continue
        wanted[row.sku] = row
    for attempt in range(2):  # a sync of the same account may have committed meanwhile
        try:
            return _write(session, account_id, company_id, wanted, skipped, now())
        except (IntegrityError, OperationalError):
            session.rollback()
            if attempt:
                return SyncResult(account_id, ok=False, message=(
                    "The products could not be saved (the database was busy, perhaps "
                    "with another sync of this account); try again in a moment."))
    raise AssertionError("unreachable")  # pragma: no cover


def _write(session: Session, account_id: int, company_id: int, wanted: dict[str, _Clean],
           skipped: int, stamp: dt.datetime) -> SyncResult:
    # Lock the account row first (PostgreSQL): two syncs of one account take turns.
    session.execute(sa.select(StoreAccount.id).where(StoreAccount.id == account_id)
                    .with_for_update())
    existing = {p.sku: p for p in session.execute(
        sa.select(Product).where(Product.account_id == account_id)).scalars()}
    inserted = updated = 0
    for sku, row in wanted.items():
        current = existing.get(sku)
        if current is None:
            session.add(Product(company_id=company_id, account_id=account_id, sku=sku,
                                title=row.title, weight=row.weight,
                                weight_unit=row.weight_unit, image_url=row.image_url,
                                updated_at=stamp))
            inserted += 1
            continue
        changed = False
        for name in ("title", "weight", "weight_unit", "image_url"):
            if getattr(current, name) != getattr(row, name):
                setattr(current, name, getattr(row, name))
                changed = True
        updated += changed
    gone = [p.id for sku, p in existing.items() if sku not in wanted]
    session.flush()
    for start in range(0, len(gone), 500):
        session.execute(sa.delete(Product).where(Product.id.in_(gone[start:start + 500]))
                        .execution_options(synchronize_session=False))
    # Every row the store listed is now confirmed as of this sync.
    session.execute(sa.update(Product).where(Product.account_id == account_id)
                    .values(updated_at=stamp).execution_options(synchronize_session=False))
    session.commit()
    message = (f"{len(wanted)} product{'' if len(wanted) == 1 else 's'} loaded "
               f"({inserted} new, {updated} changed, {len(gone)} removed)")
    if skipped:
        message += f"; {skipped} skipped without a usable item number"
    return SyncResult(account_id, ok=True, message=message, listed=len(wanted),
                      inserted=inserted, updated=updated, deleted=len(gone), skipped=skipped)


def _ref(account: StoreAccount) -> AccountRef:
    return AccountRef(id=account.id, platform=account.platform, endpoint=account.endpoint,
                      options=dict(account.options or {}))


def sync_account(session: Session, account: StoreAccount, box: CredentialBox,
                 recorder: CallRecorder | None = None, throttle: Throttle | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 limit: int = SYNC_LIMIT,
                 addresses: AddressRules | None = None) -> SyncResult:
    """Fetch one account's products from its store and store them; commits."""
    account_id, company_id = account.id, account.company_id
    try:
        result = fetch(_ref(account), read_credentials(box, account), recorder, throttle,
                       timeout, limit, addresses)
    except ValueError as exc:  # an account whose platform has no connector
        result = Result(Outcome.NEEDS_FIXING, str(exc))
    return apply(session, account_id, company_id, result)


def sync_accounts(session: Session, accounts: Sequence[StoreAccount], box: CredentialBox,
                  recorder: CallRecorder | None = None, throttle: Throttle | None = None,
                  timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                  limit: int = SYNC_LIMIT,
                  addresses: AddressRules | None = None) -> list[SyncResult]:
    """Sync several accounts while someone waits: the stores are asked in parallel (so
    the wait is the slowest store, not their sum), then each answer is stored in turn
    through ``session`` (which stays in this thread)."""
    jobs = [(a.id, a.company_id, _ref(a), read_credentials(box, a)) for a in accounts]
    if not jobs:
        return []

    def one(job) -> Result:
        try:
            return fetch(job[2], job[3], recorder, throttle, timeout, limit, addresses)
        except ValueError as exc:
            return Result(Outcome.NEEDS_FIXING, str(exc))

    with ThreadPoolExecutor(max_workers=min(8, len(jobs)),
                            thread_name_prefix="sgx-products") as pool:
        results = list(pool.map(one, jobs))
    return [apply(session, job[0], job[1], result)
            for job, result in zip(jobs, results, strict=True)]


# -- queries -----------------------------------------------------------------------------
class SearchError(ValueError):
    """Input the tab cannot search with; the message is shown to the user (HTTP 400)."""


@dataclass(frozen=True)
class ProductRow:
    account_id: int
    account_name: str
    platform: str
    sku: str
    title: str
    weight: float | None
    weight_unit: str | None
    image_url: str | None
    updated_at: dt.datetime


@dataclass(frozen=True)
class ProductPage:
    rows: list[ProductRow]
    #: Cursor of the next page, or None on the last one.
    next: str | None


def encode_cursor(account_id: int, sku: str) -> str:
    raw = json.dumps([account_id, sku], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """(account id, SKU) of the row a page starts after; SearchError when it is not one
    this module made."""
    bad = SearchError("The page link is not valid; start the search again.")
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw.decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not (isinstance(value, list) and len(value) == 2 and type(value[0]) is int
            and isinstance(value[1], str) and 0 < value[0] <= _ID_MAX
            and 0 < len(value[1]) <= _SKU_MAX and "\x00" not in value[1]):
        raise bad  # (PostgreSQL text cannot hold NUL: such a SKU was never stored)
    return value[0], value[1]


def _like_escaped(text: str) -> str:
    """``text`` as a LIKE pattern that matches it literally (``\\`` is the escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def check_query(q: str | None) -> str:
    q = (q or "").strip()
    if len(q) > MAX_QUERY:
        raise SearchError(f"Search text is too long (at most {MAX_QUERY} characters).")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in q):
        raise SearchError("Search text cannot contain control characters.")
    return q


def company_accounts(session: Session, company_id: int) -> list[StoreAccount]:
    return list(session.execute(
        sa.select(StoreAccount).where(StoreAccount.company_id == company_id)
        .order_by(StoreAccount.platform, StoreAccount.name, StoreAccount.id)).scalars())


def search(session: Session, company_id: int, q: str | None = None,
           account_id: int | None = None, after: str | None = None,
           limit: int = PAGE_SIZE) -> ProductPage:
    """One page of the company's products whose SKU or title contains ``q`` (any case),
    optionally of one account, in (account, SKU) order after the ``after`` cursor."""
    q = check_query(q)
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE_SIZE:
        raise SearchError(f"Page size must be between 1 and {MAX_PAGE_SIZE}.")
    start = decode_cursor(after) if after else None
    query = (sa.select(Product, StoreAccount.name, StoreAccount.platform)
             .join(StoreAccount, StoreAccount.id == Product.account_id)
             .where(Product.company_id == company_id, StoreAccount.company_id == company_id))
    if account_id is not None:
        if type(account_id) is not int or not 0 < account_id <= _ID_MAX or not any(
                a.id == account_id for a in company_accounts(session, company_id)):
            raise SearchError("Choose a store account of this company.")
        query = query.where(Product.account_id == account_id)
    if q:
        pattern = f"%{_like_escaped(q)}%"
        query = query.where(sa.or_(Product.sku.ilike(pattern, escape="\\"),
                                   Product.title.ilike(pattern, escape="\\")))
    if start is not None:
        query = query.where(sa.or_(
            Product.account_id > start[0],
            sa.and_(Product.account_id == start[0], Product.sku > start[1])))
    found = session.execute(
        query.order_by(Product.account_id, Product.sku).limit(limit + 1)).all()
    rows = [ProductRow(account_id=p.account_id, account_name=name, platform=platform,
                       sku=p.sku, title=p.title, weight=p.weight, weight_unit=p.weight_unit,
                       image_url=p.image_url, updated_at=p.updated_at)
            for p, name, platform in found[:limit]]
    more = len(found) > limit
    return ProductPage(rows, encode_cursor(rows[-1].account_id, rows[-1].sku) if more else None)


@dataclass(frozen=True)
class AccountProducts:
    """How many products an account has here and when the store last confirmed them."""

    count: int
    loaded_at: dt.datetime | None


def summary(session: Session, company_id: int) -> dict[int, AccountProducts]:
    rows = session.execute(
        sa.select(Product.account_id, sa.func.count(), sa.func.max(Product.updated_at))
        .where(Product.company_id == company_id).group_by(Product.account_id)).all()
    return {account_id: AccountProducts(count, loaded)
            for account_id, count, loaded in rows}


def due_accounts(session: Session, company_ids: Iterable[int],
                 older_than: dt.datetime) -> list[int]:
    """Enabled accounts of these companies whose products were last confirmed before
    ``older_than`` (or never): the ones the periodic job syncs."""
    company_ids = list(company_ids)
    if not company_ids:
        return []
    newest = (sa.select(Product.account_id, sa.func.max(Product.updated_at).label("loaded"))
              .group_by(Product.account_id).subquery())
    query = (sa.select(StoreAccount.id, newest.c.loaded)
             .outerjoin(newest, newest.c.account_id == StoreAccount.id)
             .where(StoreAccount.company_id.in_(company_ids), StoreAccount.enabled.is_(True))
             .order_by(StoreAccount.id))
    return [account_id for account_id, loaded in session.execute(query).all()
            if loaded is None or loaded < older_than]
