"""HTTP views of the plugin (installed as ``shipgear_exchange_plugin.blueprints``).

Views stay thin: they check access, parse input with forms, call the core and render.
"""

from __future__ import annotations

from flask import Blueprint

from ..paths import STATIC_DIR, TEMPLATES_DIR


def create_blueprint(name: str) -> Blueprint:
    """The plugin's blueprint, named as the manifest says."""
    from . import accounts, actions, ecommerce, export, products

    bp = Blueprint(name, __name__, template_folder=str(TEMPLATES_DIR),
                   static_folder=str(STATIC_DIR), static_url_path="/static")
    ecommerce.register(bp)
    accounts.register(bp)
    actions.register(bp)
    products.register(bp)
    export.register(bp)
    return bp


def create_metrics_blueprint(path: str) -> Blueprint:
    """``/metrics`` for Prometheus, outside the per-company pages."""
    from .metrics import create_metrics_blueprint as create

    return create(path)
