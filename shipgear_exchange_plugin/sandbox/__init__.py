"""The marketplace sandbox: a standalone Flask app that speaks the stores' APIs.

Amazon SP-API, Shopify Admin GraphQL, WooCommerce REST v3 and BigCommerce V2/V3 with
their real paths, auth, request validation, error bodies and rate limits, for one
account per ``/{platform}/{key}`` prefix. The demo mounts it in-process at ``/sandbox``;
the tests start it on a free port; ``shipgear-exchange sandbox --port N`` serves it alone.
Faults are set per account through the control API in :mod:`.control`.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from flask import Flask, g, jsonify
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .store import PLATFORMS, Account, SandboxStore

__all__ = ["Account", "SandboxServer", "SandboxStore", "create_app", "current_account"]


def create_app(store: SandboxStore | None = None, config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})
    app.extensions["sandbox"] = store or SandboxStore()
    from .control import bp as control
    from .images import bp as images

    app.register_blueprint(control)
    app.register_blueprint(images)
    for platform in PLATFORMS:
        module = importlib.import_module(f"{__name__}.{platform}")
        app.register_blueprint(module.bp)

    @app.get("/")
    def index():
        return jsonify(sandbox="ShipGear marketplace sandbox", platforms=list(PLATFORMS),
                       control="/_sandbox")

    return app


def current_account() -> Account:
    """The account of the store call being handled (set by each platform blueprint)."""
    return g.sandbox_account


def bind_account(bp, platform: str) -> None:
    """Make ``/{platform}/<key>/...`` views see their account as ``current_account()``."""
    from flask import current_app

    from . import faults

    @bp.url_value_preprocessor
    def _pull_account(endpoint, values):
        key = values.pop("account_key")
        g.sandbox_account = current_app.extensions["sandbox"].account(platform, key)

    bp.after_request(faults.trickle)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-") -> None:  # one line per store call is noise
        return None


class SandboxServer:
    """The sandbox on a real socket in a background thread (tests, the CLI)."""

    def __init__(self, app: Flask | None = None, host: str = "127.0.0.1", port: int = 0):
        self.app = app or create_app()
        self.server: BaseWSGIServer = make_server(host, port, self.app, threaded=True,
                                                   request_handler=_QuietHandler)
        # A short poll makes stop() quick (serve_forever checks for shutdown at each poll).
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True,
                                       name="sandbox-http")

    @property
    def store(self) -> SandboxStore:
        return self.app.extensions["sandbox"]

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def start(self) -> SandboxServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
