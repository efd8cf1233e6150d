"""The plugin's tables, in the host's database but on their own metadata.

Every table is prefixed ``sgx_`` and every row carries ``company_id``. The metadata is
separate from the host's so that the plugin's Alembic migrations (and autogenerate) see
only these tables; sessions still come from the host's Flask-SQLAlchemy ``db``, whose
session binds unknown metadata to the default engine, so plugin rows commit in the host's
transaction.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

TABLE_PREFIX = "sgx_"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Timezone-aware now in UTC; every stored time is UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """A datetime stored in UTC and always returned timezone-aware.

    SQLite keeps no zone; PostgreSQL ``timestamptz`` does. Both come back aware in UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store times in UTC with a tzinfo")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: sa.JSON}


class Platform(enum.StrEnum):
    AMAZON = "amazon"
    SHOPIFY = "shopify"
    WOOCOMMERCE = "woocommerce"
    BIGCOMMERCE = "bigcommerce"

    @property
    def label(self) -> str:
        return {"woocommerce": "WooCommerce", "bigcommerce": "BigCommerce"}.get(
            self.value, self.value.capitalize()
        )


class WritebackStatus(enum.StrEnum):
    """PRODUCT.md section 3: the write-back status of one package."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    SUCCESS = "success"
    FAILED = "failed"
    MANUAL = "manual"


MAX_ATTEMPTS = 5

#: Byte order on every database (PostgreSQL's default collation may follow a locale),
#: so that the grid's order is the one :func:`order_sort_key` builds.
SORT_TEXT = sa.String(160).with_variant(sa.String(160, collation="C"), "postgresql")
_DIGIT_RUN = re.compile(r"[0-9]+")


def order_sort_key(order_id: str) -> str:
    """The order id as the grid sorts it: numbers as numbers ("#999" before "#1000",
    "113-2..." before "113-10..."), letters without regard to case. Each run of digits
    becomes its length (two digits) and its value without leading zeros, so that a
    shorter number comes first and equal lengths compare digit by digit."""
    def number(match: re.Match[str]) -> str:
        digits = match.group().lstrip("0") or "0"
        return f"{len(digits):02d}{digits}"

    return _DIGIT_RUN.sub(number, order_id.strip().casefold())


def _order_sort_default(context) -> str:
    return order_sort_key(context.get_current_parameters()["order_id"])


class StoreAccount(Base):
    """A connected store account of a company. Credentials are Fernet tokens."""

    __tablename__ = "sgx_store_account"
    __table_args__ = (sa.UniqueConstraint("company_id", "order_source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(index=True)
    platform: Mapped[str] = mapped_column(sa.String(20))
    name: Mapped[str] = mapped_column(sa.String(120))
    #: The host's name for the order source whose shipments belong to this account.
    order_source: Mapped[str] = mapped_column(sa.String(120))
    #: Base URL of the store's API (the sandbox in the demo and the tests).
    endpoint: Mapped[str] = mapped_column(sa.String(500))
    #: Platform-specific, non-secret settings (marketplace id, store hash...).
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    credentials_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def platform_label(self) -> str:
        return Platform(self.platform).label

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)


class Writeback(Base):
    """One package to write back to a store: the outbox row and its current state."""

    __tablename__ = "sgx_writeback"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "package_key"),
        sa.Index("ix_sgx_writeback_company_ship_date", "company_id", "ship_date", "id"),
        sa.Index("ix_sgx_writeback_company_status_ship_date", "company_id", "status",
                 "ship_date", "id"),
        sa.Index("ix_sgx_writeback_due", "status", "next_attempt_at"),
        # One index per grid sort (orders.SORTS), so every sort is an index scan, and
        # the order id's own for the search by its start (migration 0007).
        sa.Index("ix_sgx_writeback_sort_order", "company_id", "order_id", "id"),
        sa.Index("ix_sgx_writeback_sort_order_sort", "company_id", "order_sort", "id"),
        sa.Index("ix_sgx_writeback_sort_account", "company_id", "account_id", "id"),
        sa.Index("ix_sgx_writeback_sort_carrier", "company_id", "carrier", "service", "id"),
        sa.Index("ix_sgx_writeback_sort_tracking", "company_id", "tracking_number", "id"),
        sa.Index("ix_sgx_writeback_sort_qty", "company_id", "shipped_quantity", "id"),
        sa.Index("ix_sgx_writeback_sort_errors", "company_id", "error_count", "id"),
        sa.Index("ix_sgx_writeback_sort_last_attempt", "company_id", "last_attempt_at", "id"),
        # The same sorts under a status filter (the support desk's usual view); the
        # trailing ship_date lets the index itself check a date range (migration 0005).
        *(sa.Index(f"ix_sgx_writeback_status_sort_{name}", "company_id", "status", *columns,
                   "id", "ship_date")
          for name, columns in (("order_sort", ("order_sort",)), ("account", ("account_id",)),
                                ("carrier", ("carrier", "service")),
                                ("tracking", ("tracking_number",)),
                                ("qty", ("shipped_quantity",)), ("errors", ("error_count",)),
                                ("last_attempt", ("last_attempt_at",)))),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column()
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("sgx_store_account.id"), index=True)
    #: The host's shipment id.
    shipment_id: Mapped[int] = mapped_column(index=True)
    order_id: Mapped[str] = mapped_column(sa.String(64))
    #: ``order_sort_key(order_id)``: what the grid's Order column sorts by. Set on every
    #: insert (the default) and by migration 0007; nullable only so that SQLite could add it.
    order_sort: Mapped[str | None] = mapped_column(SORT_TEXT, default=_order_sort_default)
    #: Stable key per package, recorded before the first send (no duplicates, B2).
    package_key: Mapped[str] = mapped_column(sa.String(80))
    ship_date: Mapped[dt.datetime] = mapped_column()
    carrier: Mapped[str] = mapped_column(sa.String(60))
    service: Mapped[str] = mapped_column(sa.String(120))
    tracking_number: Mapped[str] = mapped_column(sa.String(80), index=True)
    shipped_quantity: Mapped[int] = mapped_column()
    items: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    status: Mapped[str] = mapped_column(sa.String(12), default=WritebackStatus.PENDING)
    error_count: Mapped[int] = mapped_column(default=0)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    #: When the next send (pending) or verification check (submitted) is due.
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    #: Attempt numbers handed out so far (an attempt is numbered before it is sent).
    attempt_count: Mapped[int] = mapped_column(default=0, server_default="0")
    #: The worker working this row right now, and since when (stale claims are released).
    claimed_by: Mapped[str | None] = mapped_column(sa.String(64))
    claimed_at: Mapped[dt.datetime | None] = mapped_column()
    #: The last send may have reached the store unseen: ask the store before resending.
    needs_check: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    #: Verification checks made since the store accepted the package.
    verify_checks: Mapped[int] = mapped_column(default=0, server_default="0")
    submitted_at: Mapped[dt.datetime | None] = mapped_column()
    #: The Amazon feed this package travels in (B5), while it is processed.
    feed_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    account: Mapped[StoreAccount] = relationship(lazy="joined", innerjoin=True)
    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="writeback", order_by="Attempt.number", cascade="all, delete-orphan"
    )


class Attempt(Base):
    """One try at writing a package back: the shipment's timeline (B7)."""

    __tablename__ = "sgx_attempt"
    __table_args__ = (sa.UniqueConstraint("writeback_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(index=True)
    writeback_id: Mapped[int] = mapped_column(sa.ForeignKey("sgx_writeback.id"))
    number: Mapped[int] = mapped_column()
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(sa.String(24))
    http_status: Mapped[int | None] = mapped_column()
    request_id: Mapped[str | None] = mapped_column(sa.String(120))
    message: Mapped[str | None] = mapped_column(sa.Text)
    latency_ms: Mapped[int | None] = mapped_column()

    writeback: Mapped[Writeback] = relationship(back_populates="attempts")


class Product(Base):
    """An item as the store's Products API describes it."""

    __tablename__ = "sgx_product"
    __table_args__ = (sa.UniqueConstraint("account_id", "sku"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(index=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("sgx_store_account.id"))
    sku: Mapped[str] = mapped_column(sa.String(120))
    title: Mapped[str] = mapped_column(sa.String(500))
    weight: Mapped[float | None] = mapped_column(sa.Float)
    weight_unit: Mapped[str | None] = mapped_column(sa.String(12))
    image_url: Mapped[str | None] = mapped_column(sa.String(1000))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CompanySettings(Base):
    """Per-company plugin settings (declared in plugin.yaml) as one JSON document."""

    __tablename__ = "sgx_company_settings"

    company_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    """Who did what and when: manual actions, plugin enable/disable, account changes."""

    __tablename__ = "sgx_audit_event"
    __table_args__ = (
        sa.Index("ix_sgx_audit_event_company_created", "company_id", "created_at"),
        # a write-back's manual actions, shown in its shipment panel (migration 0006)
        sa.Index("ix_sgx_audit_event_company_target", "company_id", "target", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column()
    user_id: Mapped[int | None] = mapped_column()
    username: Mapped[str | None] = mapped_column(sa.String(120))
    action: Mapped[str] = mapped_column(sa.String(60))
    target: Mapped[str | None] = mapped_column(sa.String(120))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StatusSample(Base):
    """One API's colour in one minute: 24 hours of these draw the panel's history (B11)
    and a change from the previous sample raises an alert."""

    __tablename__ = "sgx_status_history"
    __table_args__ = (sa.Index("ix_sgx_status_history_minute", "minute"),)

    account_id: Mapped[int] = mapped_column(sa.ForeignKey("sgx_store_account.id"),
                                            primary_key=True)
    api: Mapped[str] = mapped_column(sa.String(12), primary_key=True)
    minute: Mapped[dt.datetime] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column()
    status: Mapped[str] = mapped_column(sa.String(8))
