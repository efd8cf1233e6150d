"""The reference host's implementation of :class:`host_contract.Host`."""

from __future__ import annotations

import threading
from collections.abc import Callable

import fakeredis
import redis
import sqlalchemy as sa
from flask import Flask, g, url_for
from flask_sqlalchemy import SQLAlchemy
from rq import Queue

from shipgear_exchange_plugin.host_contract import HostCompany, HostUser

from .models import Company, InstalledPlugin, PluginCompany, User, membership
from .plugins import LoadedPlugins

MEMORY_REDIS_URL = "memory://"
_fake_servers: dict[str, fakeredis.FakeServer] = {}
_fake_lock = threading.Lock()


def connect_redis(url: str) -> redis.Redis:
    """A Redis client; ``memory://`` gives an in-process server shared by the process.

    Every connection made for the same ``memory://`` URL sees the same data, so the web
    threads, the worker thread and the scheduler thread of the demo share one "Redis".
    """
    if url.startswith(MEMORY_REDIS_URL):
        with _fake_lock:
            server = _fake_servers.setdefault(url, fakeredis.FakeServer())
        return fakeredis.FakeRedis(server=server)
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


class ReferenceHost:
    """A small Exchange: just enough host for the demo, the tests and as an example."""

    base_template = "devhost/layout.html"

    def __init__(
        self,
        app: Flask,
        db: SQLAlchemy,
        plugins: LoadedPlugins,
        app_factory: Callable[[], Flask],
    ):
        self.app = app
        self.db = db
        self.plugins = plugins
        self.app_factory = app_factory
        self._redis: redis.Redis | None = None

    # -- users and companies -------------------------------------------------------------
    def current_user(self) -> HostUser | None:
        user = g.get("user")
        if user is None:
            return None
        return HostUser(id=user.id, username=user.username, is_admin=user.is_admin)

    def company_for_user(self, user: HostUser, company_id: int) -> HostCompany | None:
        row = self.db.session.execute(
            sa.select(Company)
            .join(membership, membership.c.company_id == Company.id)
            .where(Company.id == company_id, membership.c.user_id == user.id)
        ).scalar_one_or_none()
        if row is None:
            return None
        return HostCompany(id=row.id, name=row.name, timezone=row.timezone)

    def has_permission(self, user: HostUser, company_id: int, permission: str) -> bool:
        if self.company_for_user(user, company_id) is None:
            return False
        role = self.db.session.get(User, user.id).role
        return any(role in m.roles_with(permission) for m in self.plugins.manifests.values())

    # -- plugins -------------------------------------------------------------------------
    def is_installed(self, plugin_id: str) -> bool:
        return self.db.session.get(InstalledPlugin, plugin_id) is not None

    def is_enabled(self, plugin_id: str, company_id: int) -> bool:
        return self.db.session.get(PluginCompany, (plugin_id, company_id)) is not None

    def enabled_company_ids(self, plugin_id: str) -> list[int]:
        return list(
            self.db.session.execute(
                sa.select(PluginCompany.company_id).where(PluginCompany.plugin_id == plugin_id)
            ).scalars()
        )

    # -- infrastructure ------------------------------------------------------------------
    def redis(self) -> redis.Redis:
        if self._redis is None:
            self._redis = connect_redis(self.app.config["REDIS_URL"])
        return self._redis

    def queue(self, name: str) -> Queue:
        return Queue(name, connection=self.redis())

    def login_url(self) -> str:
        return url_for("devhost.login")

    def my_companies_url(self) -> str:
        return url_for("devhost.companies")
