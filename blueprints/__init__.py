"""HTTP views of the plugin (installed as ``shipgear_exchange_plugin.blueprints``).

Views stay thin: they check access, parse input with forms, call the core and render.
A database that cannot serve a request (down, cut off, out of disk space) is answered by
:func:`database_unavailable` with a 503 saying so, on every route of the blueprints.
"""

from __future__ import annotations

import contextlib

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, render_template, request

from .. import dberrors
from ..paths import STATIC_DIR, TEMPLATES_DIR
from .errors import wants_json

#: Seconds a client is asked to wait before trying again (``Retry-After``).
RETRY_AFTER = {dberrors.UNREACHABLE: 30, dberrors.OUT_OF_SPACE: 300}
HEADINGS = {dberrors.UNREACHABLE: "The database is unreachable",
            dberrors.OUT_OF_SPACE: "The database server is out of disk space"}


def create_blueprint(name: str) -> Blueprint:
    """The plugin's blueprint, named as the manifest says."""
    from . import accounts, actions, ecommerce, errors, export, products

    bp = Blueprint(name, __name__, template_folder=str(TEMPLATES_DIR),
                   static_folder=str(STATIC_DIR), static_url_path="/static")
    ecommerce.register(bp)
    accounts.register(bp)
    actions.register(bp)
    products.register(bp)
    export.register(bp)
    errors.register(bp)
    _register_database_errors(bp)
    return bp


def create_metrics_blueprint(path: str) -> Blueprint:
    """``/metrics`` for Prometheus, outside the per-company pages."""
    from .metrics import create_metrics_blueprint as create

    bp = create(path)
    _register_database_errors(bp, metrics_unavailable)
    return bp


def _register_database_errors(bp: Blueprint, handler=None) -> None:
    """Also catches what the host's own before-request hooks raise on these routes (the
    signed-in user is loaded from the same database)."""
    handler = handler or database_unavailable
    bp.register_error_handler(sa.exc.DBAPIError, handler)
    bp.register_error_handler(sa.exc.TimeoutError, handler)
    try:  # COPY reads through psycopg directly: its errors arrive unwrapped
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return
    bp.register_error_handler(psycopg.Error, handler)


def _reason(error: Exception) -> str:
    """The kind of database failure; any other database error is a bug: re-raised (500)."""
    reason = dberrors.classify(error)
    if reason is None:
        raise error
    current_app.logger.warning("%s %s: database %s (%s)", request.method, request.path,
                               reason.replace("_", " "), dberrors.summary(error))
    _drop_session()
    return reason


def _drop_session() -> None:
    """Close the request's session now. Its connection may be dead: rolling it back at
    the app context's teardown would raise there, after this answer, and turn it into a
    500. A session that cannot even close is forgotten (the pool discards its connection)."""
    from ..host_contract import get_host

    session = get_host().db.session
    try:
        session.remove()
    except Exception:  # noqa: BLE001 - the database is gone; the answer says so
        with contextlib.suppress(Exception):
            session.registry.clear()


def metrics_unavailable(error: Exception):
    """``/metrics`` without a database: a plain 503, so the scraper marks the target down."""
    reason = _reason(error)
    return Response(dberrors.MESSAGES[reason] + "\n", status=503, mimetype="text/plain",
                    headers={"Retry-After": str(RETRY_AFTER[reason])})


def database_unavailable(error: Exception):
    """503 with ``Retry-After``: an HTML page saying the database cannot serve this now
    (htmx requests get ``HX-Refresh``, so the whole page shows it: htmx swaps no 5xx), or
    ``{"error": ...}`` for JSON. Any other database error is a bug: re-raised (a 500)."""
    reason = _reason(error)
    retry_after = RETRY_AFTER[reason]
    headers = {"Retry-After": str(retry_after), "Cache-Control": "no-store"}
    message = dberrors.MESSAGES[reason]
    if wants_json():
        return jsonify({"error": message}), 503, headers
    if request.headers.get("HX-Request") == "true":
        headers["HX-Refresh"] = "true"
    return _render_unavailable(reason, message, retry_after), 503, headers


def _render_unavailable(reason: str, message: str, retry_after: int) -> str:
    from ..host_contract import get_host

    host = get_host()
    try:
        exit_url = host.my_companies_url()
    except Exception:  # noqa: BLE001 - a host link that needs the database: none
        exit_url = "/"
    context = {
        "reason": reason, "heading": HEADINGS[reason], "message": message,
        "retry_after": retry_after, "exit_url": exit_url,
        "reload": request.method == "GET" and reason == dberrors.UNREACHABLE,
        "retry_url": request.full_path.rstrip("?") if request.method == "GET" else None,
    }
    try:  # the host's layout, unless it needs the database too
        return render_template("shipgear_exchange/unavailable.html",
                               base_template=host.base_template, **context)
    except Exception:  # noqa: BLE001
        current_app.logger.info("the host's base template did not render; plain 503 page")
        return render_template("shipgear_exchange/unavailable.html", base_template=None,
                               **context)

