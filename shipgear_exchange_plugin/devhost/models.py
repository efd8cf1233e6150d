"""The reference host's own tables: users, companies, shipments, installed plugins.

These stand in for Exchange's tables. They live on the host's metadata (``db.Model``),
not the plugin's, and are created with ``db.create_all()`` (the host's business).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from shipgear_exchange_plugin.models import UTCDateTime, utcnow


class HostBase(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=HostBase)


class Role(enum.StrEnum):
    ADMIN = "admin"  # host admin: manages plugins, member of every company in the demo
    SUPPORT = "support"
    VIEWER = "viewer"


membership = sa.Table(
    "host_membership",
    db.metadata,
    sa.Column("user_id", sa.ForeignKey("host_user.id"), primary_key=True),
    sa.Column("company_id", sa.ForeignKey("host_company.id"), primary_key=True),
)


class User(db.Model):
    __tablename__ = "host_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[str] = mapped_column(sa.String(20), default=Role.VIEWER)
    companies: Mapped[list[Company]] = relationship(
        secondary=membership, order_by="Company.name", back_populates="members"
    )

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Company(db.Model):
    __tablename__ = "host_company"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    members: Mapped[list[User]] = relationship(secondary=membership, back_populates="companies")


class Shipment(db.Model):
    """A shipment the desk processed (a label bought) for an eCommerce order."""

    __tablename__ = "host_shipment"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(sa.ForeignKey("host_company.id"), index=True)
    order_source: Mapped[str] = mapped_column(sa.String(120))
    order_id: Mapped[str] = mapped_column(sa.String(64))
    ship_date: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    carrier: Mapped[str] = mapped_column(sa.String(60))
    service: Mapped[str] = mapped_column(sa.String(120))
    #: [{"tracking_number": str, "items": [{"sku", "order_item_id", "quantity"}]}]
    packages: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InstalledPlugin(db.Model):
    __tablename__ = "host_installed_plugin"

    plugin_id: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(40))
    installed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PluginCompany(db.Model):
    """A plugin enabled for a company (a row exists only while enabled)."""

    __tablename__ = "host_plugin_company"

    plugin_id: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    company_id: Mapped[int] = mapped_column(sa.ForeignKey("host_company.id"), primary_key=True)
    enabled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class HostAudit(db.Model):
    """The host's audit trail of administrative actions."""

    __tablename__ = "host_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column()
    username: Mapped[str | None] = mapped_column(sa.String(80))
    action: Mapped[str] = mapped_column(sa.String(60))
    detail: Mapped[str] = mapped_column(sa.String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
