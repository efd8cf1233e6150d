"""``/metrics`` for Prometheus: off unless ``SHIPGEAR_METRICS_TOKEN`` is set, and then
only for a scraper that sends it as a bearer token (metrics span every company)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request

from .. import PLUGIN_ID, metrics
from ..host_contract import get_host
from ..plugin import state


def create_metrics_blueprint(path: str) -> Blueprint:
    bp = Blueprint("shipgear_metrics", __name__)
    bp.add_url_rule(path, "metrics", scrape)
    return bp


def scrape():
    token = current_app.config.get("SHIPGEAR_METRICS_TOKEN")
    if not token:
        abort(404)
    sent = request.headers.get("Authorization", "")
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return Response("A bearer token is required.\n", status=401,
                        headers={"WWW-Authenticate": "Bearer"}, mimetype="text/plain")
    host = get_host()
    plugin = state(host.app)
    body = metrics.render(host, plugin.manifest.queues, plugin.thresholds,
                          host.enabled_company_ids(PLUGIN_ID))
    return Response(body, mimetype=metrics.CONTENT_TYPE)
