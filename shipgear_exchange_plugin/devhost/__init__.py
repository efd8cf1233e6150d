"""The reference host: a small Exchange that mounts the plugin.

It exists for the demo, the tests, and as the worked example of the host contract
(``shipgear_exchange_plugin.host_contract``). The plugin core never imports it.

Configuration comes from ``create_app(config)`` first, then the environment:
``DATABASE_URL`` (default: a SQLite file under ``instance/``), ``REDIS_URL`` (default
``memory://``, an in-process Redis), ``SECRET_KEY`` and ``SHIPGEAR_*`` (see README).
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask, current_app
from flask_wtf.csrf import CSRFProtect

from shipgear_exchange_plugin.host_contract import EXTENSION_KEY

from .host import MEMORY_REDIS_URL, ReferenceHost
from .models import db
from .plugins import load_plugins

csrf = CSRFProtect()


class HostConfigError(RuntimeError):
    """The host cannot start with this configuration; the message says why."""


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written the usual way."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _instance_path() -> str:
    return os.environ.get("EXCHANGE_INSTANCE_PATH") or str(Path.cwd() / "instance")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the reference host. ``config`` overrides the environment."""
    config = dict(config or {})
    app = Flask(__name__, instance_path=config.pop("INSTANCE_PATH", None) or _instance_path())
    demo = bool(config.get("EXCHANGE_DEMO"))
    testing = bool(config.get("TESTING"))
    database_url = config.pop("DATABASE_URL", None) or os.environ.get("DATABASE_URL")
    if not database_url:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        database_url = "sqlite:///" + str(Path(app.instance_path) / "exchange-demo.sqlite")
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=normalise_database_url(database_url),
        REDIS_URL=os.environ.get("REDIS_URL") or MEMORY_REDIS_URL,
        SECRET_KEY=os.environ.get("SECRET_KEY"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not (demo or testing),
        EXCHANGE_DEMO=demo,
    )
    for key, value in os.environ.items():
        if key.startswith("SHIPGEAR_"):
            app.config[key] = value
    app.config.update(config)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 30}})
    else:  # a database host that drops packets fails a connect in 5 s, not the OS's minutes
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"connect_timeout": 5}})
    if not app.config.get("SECRET_KEY"):
        if not (demo or testing):
            raise HostConfigError(
                "SECRET_KEY is not set. Set it to a long random string, e.g. "
                "`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`."
            )
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)

    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            sa.event.listen(db.engine, "connect", _sqlite_pragmas)
    csrf.init_app(app)

    from . import views  # noqa: F401 - adds the host's pages to the blueprint
    from .auth import bp

    app.register_blueprint(bp)
    app.extensions["exchange_csp"] = content_security_policy(app.config)
    app.after_request(_security_headers)

    plugins = load_plugins(config.get("EXCHANGE_PLUGIN_ENTRY_POINTS"))
    host = ReferenceHost(app, db, plugins, functools.partial(create_app, config))
    app.extensions[EXTENSION_KEY] = host
    plugins.pm.hook.exchange_init_app(host=host)
    return app


#: No inline script or style anywhere: scripts and styles come from our own static files
#: (htmx's injected indicator style is turned off in the layout), images may come from
#: the stores' CDNs (product thumbnails).
_POLICY = (
    ("default-src", "'self'"), ("script-src", "'self'"), ("style-src", "'self'"),
    ("img-src", "'self' https: data:"), ("connect-src", "'self'"), ("object-src", "'none'"),
    ("base-uri", "'self'"), ("form-action", "'self'"), ("frame-ancestors", "'none'"),
)
CONTENT_SECURITY_POLICY = "; ".join(f"{name} {value}" for name, value in _POLICY)


def content_security_policy(config) -> str:
    """The policy, with the marketplace sandbox's origin among the image sources when one
    is configured: its stores link product images on the sandbox, over plain HTTP in the
    demo and the tests, where real stores link them on their CDNs over HTTPS. Only a
    plain scheme://host[:port] is added (never credentials or anything else from it)."""
    origin = _origin(str(config.get("SHIPGEAR_SANDBOX_URL") or ""))
    if origin is None:
        return CONTENT_SECURITY_POLICY
    return "; ".join(f"{name} {value} {origin}" if name == "img-src" else f"{name} {value}"
                     for name, value in _POLICY)


def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not re.fullmatch(r"[A-Za-z0-9.-]+", host):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _security_headers(response):
    policy = current_app.extensions.get("exchange_csp", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("Content-Security-Policy", policy)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets the demo's web threads read while its worker thread writes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def init_db(app: Flask) -> None:
    """Create the host's tables and install every loaded plugin (idempotent)."""
    from .models import InstalledPlugin

    host: ReferenceHost = app.extensions[EXTENSION_KEY]
    with app.app_context():
        db.create_all()
        for plugin_id, manifest in host.plugins.manifests.items():
            install_plugin(host, plugin_id)
            row = db.session.get(InstalledPlugin, plugin_id)
            if row is not None:
                row.version = manifest.version
        db.session.commit()


def install_plugin(host: ReferenceHost, plugin_id: str) -> None:
    """Run one plugin's install hook and record it as installed."""
    from .models import InstalledPlugin

    host.plugins.call(plugin_id, "exchange_install", host=host)
    if db.session.get(InstalledPlugin, plugin_id) is None:
        db.session.add(
            InstalledPlugin(plugin_id=plugin_id, version=host.plugins.manifests[plugin_id].version)
        )
