"""The plugin's hook implementations: what the host calls (see host_contract).

This module is the ``exchange.plugins`` entry point. It wires the blueprint into the
host app, answers My Companies with the View eCommerce button, and turns a processed
shipment into write-back rows inside the host's transaction.
"""

from __future__ import annotations

from typing import Any

from flask import url_for

from . import PLUGIN_ID, config, outbox, settings, status
from .callstats import RedisCallRecorder
from .crypto import CredentialBox
from .host_contract import CompanyAction, Host, HostCompany, HostUser, ProcessedShipment, hookimpl
from .manifest import load_manifest
from .migrate import upgrade
from .models import AuditEvent
from .paths import MANIFEST_PATH
from .ratelimit import parse_limits
from .writeback import Policy

PLUGIN_MANIFEST = MANIFEST_PATH
STATE_KEY = "shipgear_ecommerce"
VIEW_PERMISSION = "ecommerce.view"


class PluginState:
    """What the plugin keeps per host app: its manifest, the credential box, the call
    recorder and the write-back policy (built on first use)."""

    def __init__(self, manifest, credentials: CredentialBox):
        self.manifest = manifest
        self.credentials = credentials
        self.recorder = None
        self.policy = None
        self.thresholds = None
        self.rate_limits = None


def state(app) -> PluginState:
    return app.extensions[STATE_KEY]


@hookimpl
def exchange_init_app(host: Host) -> None:
    from .blueprints import create_blueprint, create_metrics_blueprint

    app = host.app
    config.apply_defaults(app.config)
    config.int_setting(app.config, "SHIPGEAR_STATUS_STALE_AFTER")
    # Refuses to start without a valid key: raises EncryptionKeyError saying how to make one.
    credentials = CredentialBox(app.config["SHIPGEAR_ENCRYPTION_KEY"])
    manifest = load_manifest(PLUGIN_MANIFEST)
    plugin_state = PluginState(manifest, credentials)
    plugin_state.thresholds = status.Thresholds.from_config(app.config)
    # Built now so that a bad setting stops the app at start, saying which one.
    plugin_state.policy = Policy.from_config(app.config)
    plugin_state.rate_limits = parse_limits(app.config.get("SHIPGEAR_RATE_LIMITS"))
    plugin_state.recorder = RedisCallRecorder(host.redis(),
                                              slow_ms=plugin_state.thresholds.slow_ms,
                                              window_minutes=plugin_state.thresholds
                                              .window_minutes + 1)
    app.extensions[STATE_KEY] = plugin_state
    app.register_blueprint(
        create_blueprint(manifest.data["blueprint"]["name"]),
        url_prefix=manifest.data["blueprint"]["url_prefix"],
    )
    app.register_blueprint(create_metrics_blueprint(app.config["SHIPGEAR_METRICS_PATH"]))
    outbox.enqueue_after_commit()


@hookimpl
def exchange_company_actions(host: Host, user: HostUser, company: HostCompany):
    if not host.is_enabled(PLUGIN_ID, company.id):
        return []
    buttons = state(host.app).manifest.data["company_buttons"]
    return [
        CompanyAction(label=b["label"], url=url_for(b["endpoint"], company_id=company.id))
        for b in buttons
        if host.has_permission(user, company.id, b["permission"])
    ]


@hookimpl
def exchange_shipment_processed(host: Host, shipment: ProcessedShipment) -> None:
    outbox.record_shipment(host.db.session, shipment)


@hookimpl
def exchange_install(host: Host) -> None:
    upgrade(host.db.engine)


@hookimpl
def exchange_company_enabled(
    host: Host, company_id: int, enabled: bool, user: HostUser | None
) -> None:
    host.db.session.add(AuditEvent(
        company_id=company_id,
        user_id=user.id if user else None,
        username=user.username if user else None,
        action="plugin.enabled" if enabled else "plugin.disabled",
    ))


@hookimpl
def exchange_company_settings(host: Host, company_id: int) -> list[dict[str, Any]]:
    return settings.describe(host.db.session, state(host.app).manifest, company_id)
