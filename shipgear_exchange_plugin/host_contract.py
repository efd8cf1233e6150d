"""The host contract: the one module an Exchange host author has to read.

How a host loads a plugin
-------------------------
1. Find plugins through the entry-point group ``exchange.plugins``. Each entry point
   names a module with ``PLUGIN_MANIFEST`` (the path of its ``plugin.yaml``) and pluggy
   hook implementations marked with :data:`hookimpl`.
2. Validate the manifest with :func:`shipgear_exchange_plugin.manifest.load_manifest`.
   A plugin whose manifest is invalid, or whose module fails to import, is reported and
   skipped; the host keeps starting.
3. Register the module with a ``pluggy.PluginManager("exchange")`` that has
   :class:`HostHooks` added, put a :class:`Host` object in
   ``app.extensions["exchange.host"]`` and call ``exchange_init_app(host=...)``.

What a host provides (:class:`Host`)
------------------------------------
The Flask ``app``; the Flask-SQLAlchemy ``db`` (plugins use ``db.session`` so that their
rows commit in the host's transaction); the current user; company lookup restricted to
the user's memberships; a permission check; the enabled-for-company check; the base
template plugins extend (blocks ``title``, ``head`` and ``content``); the Redis
connection and an RQ queue factory; and an app factory that workers call to get an app
context.

What a host calls (:class:`HostHooks`)
--------------------------------------
``exchange_init_app`` once per app; ``exchange_company_actions`` when it renders
My Companies; ``exchange_shipment_processed`` inside the transaction that stores a
shipment; ``exchange_install`` when an admin installs a plugin;
``exchange_company_enabled`` when an admin enables or disables it for a company;
``exchange_company_settings`` to list a plugin's per-company settings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pluggy
from flask import current_app

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy
    from redis import Redis
    from rq import Queue

HOST_API_VERSION = "1"
ENTRY_POINT_GROUP = "exchange.plugins"
HOOK_NAMESPACE = "exchange"
EXTENSION_KEY = "exchange.host"

hookspec = pluggy.HookspecMarker(HOOK_NAMESPACE)
hookimpl = pluggy.HookimplMarker(HOOK_NAMESPACE)


@dataclass(frozen=True)
class HostUser:
    """The signed-in user as the host sees them."""

    id: int
    username: str
    is_admin: bool = False


@dataclass(frozen=True)
class HostCompany:
    """A company the current user belongs to. ``timezone`` is an IANA name."""

    id: int
    name: str
    timezone: str = "UTC"


@dataclass(frozen=True)
class CompanyAction:
    """A button on the host's My Companies page."""

    label: str
    url: str


@dataclass(frozen=True)
class ShippedPackage:
    """One package of a processed shipment: what the store must learn about."""

    tracking_number: str
    #: [{"sku": str, "order_item_id": str, "quantity": int}]
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def quantity(self) -> int:
        return sum(int(item.get("quantity", 0)) for item in self.items)


@dataclass(frozen=True)
class ProcessedShipment:
    """A shipment the host has just stored; ``order_source`` names the store account."""

    company_id: int
    shipment_id: int
    order_source: str
    order_id: str
    ship_date: dt.datetime
    carrier: str
    service: str
    packages: list[ShippedPackage]


@runtime_checkable
class Host(Protocol):
    """What the host gives every plugin (stored in ``app.extensions["exchange.host"]``)."""

    app: Flask
    db: SQLAlchemy
    #: Template the plugin's pages extend; it defines blocks title, head and content.
    base_template: str
    #: Returns a fresh Flask app configured like the web app, for worker processes.
    app_factory: Callable[[], Flask]

    def current_user(self) -> HostUser | None:
        """The signed-in user of the current request, or None."""

    def company_for_user(self, user: HostUser, company_id: int) -> HostCompany | None:
        """The company if ``user`` is a member of it, else None (plugins answer 404)."""

    def has_permission(self, user: HostUser, company_id: int, permission: str) -> bool:
        """Whether ``user`` holds ``permission`` (declared in the plugin manifest)."""

    def is_enabled(self, plugin_id: str, company_id: int) -> bool:
        """Whether an admin enabled the plugin for the company."""

    def enabled_company_ids(self, plugin_id: str) -> list[int]:
        """Every company the plugin is enabled for (workers use it)."""

    def redis(self) -> Redis:
        """The shared Redis connection (queues and short-lived counters)."""

    def queue(self, name: str) -> Queue:
        """An RQ queue on :meth:`redis` by name (names come from the manifest)."""

    def login_url(self) -> str:
        """Where to send a signed-out user."""

    def my_companies_url(self) -> str:
        """The My Companies page (the plugin's Exit button)."""


class HostHooks:
    """The pluggy hook specifications a host calls."""

    @hookspec
    def exchange_init_app(self, host: Host) -> None:
        """Register blueprints, template folders and extensions on ``host.app``."""

    @hookspec
    def exchange_company_actions(
        self, host: Host, user: HostUser, company: HostCompany
    ) -> list[CompanyAction]:
        """Buttons to show for ``company`` on My Companies (empty when not allowed)."""

    @hookspec
    def exchange_shipment_processed(self, host: Host, shipment: ProcessedShipment) -> None:
        """Called inside the host's transaction; add rows to ``host.db.session`` only.

        Anything that talks to the network must wait until after commit.
        """

    @hookspec
    def exchange_install(self, host: Host) -> None:
        """Create or upgrade the plugin's tables. Idempotent."""

    @hookspec
    def exchange_company_enabled(
        self, host: Host, company_id: int, enabled: bool, user: HostUser | None
    ) -> None:
        """The plugin was enabled or disabled for a company (the host has audited it)."""

    @hookspec
    def exchange_company_settings(self, host: Host, company_id: int) -> list[dict[str, Any]]:
        """The plugin's per-company settings: ``[{"key", "label", "type", "value"}]``."""


def get_host() -> Host:
    """The host object of the current Flask app."""
    return current_app.extensions[EXTENSION_KEY]
