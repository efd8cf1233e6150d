"""The reference host's own pages: My Companies and the admin Plugins page."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from shipgear_exchange_plugin.host_contract import get_host

from . import install_plugin
from .auth import admin_required, bp, login_required
from .models import Company, HostAudit, PluginCompany, db


@bp.route("/")
def index():
    return redirect(url_for("devhost.companies"))


@bp.route("/companies/")
@login_required
def companies():
    host = get_host()
    user = host.current_user()
    rows = []
    for company in g.user.companies:
        hc = host.company_for_user(user, company.id)
        actions = [a for result in host.plugins.pm.hook.exchange_company_actions(
            host=host, user=user, company=hc) for a in result]
        rows.append((company, actions))
    return render_template("devhost/companies.html", rows=rows, form=FlaskForm())


@bp.route("/companies/<int:company_id>/ship", methods=["POST"])
@login_required
def ship(company_id: int):
    """Process a made-up shipment for the company (the demo's shipping desk)."""
    from .simulate import process_random_shipment

    host = get_host()
    if host.company_for_user(host.current_user(), company_id) is None:
        abort(404)
    if not FlaskForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    shipment = process_random_shipment(host, company_id)
    if shipment is None:
        flash("This company has no store connection to ship orders from.", "error")
    else:
        flash(f"Processed shipment {shipment.id} for order {shipment.order_id} "
              f"({shipment.order_source}).", "info")
    return redirect(url_for("devhost.companies"))


@bp.route("/admin/plugins", methods=["GET", "POST"])
@admin_required
def plugins():
    host = get_host()
    form = FlaskForm()  # CSRF only
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400, "The form expired; reload the page and try again.")
        plugin_id = request.form.get("plugin_id", "")
        if plugin_id not in host.plugins.manifests:
            abort(404)
        action = request.form.get("action")
        if action == "install":
            install_plugin(host, plugin_id)
            _audit("plugin.install", plugin_id)
            flash(f"Installed {plugin_id}.", "info")
        elif action in {"enable", "disable"}:
            if not host.is_installed(plugin_id):
                abort(400, "Install the plugin before enabling it for a company.")
            company = _company_or_400(request.form.get("company_id", ""))
            _set_enabled(host, plugin_id, company, action == "enable")
            flash(f"{action.capitalize()}d {plugin_id} for {company.name}.", "info")
        else:
            abort(400, "Unknown action.")
        db.session.commit()
        return redirect(url_for("devhost.plugins"))
    companies_ = db.session.execute(sa.select(Company).order_by(Company.name)).scalars().all()
    enabled = {(row.plugin_id, row.company_id) for row in
               db.session.execute(sa.select(PluginCompany)).scalars()}
    audit = db.session.execute(
        sa.select(HostAudit).order_by(HostAudit.id.desc()).limit(20)).scalars().all()
    return render_template(
        "devhost/plugins.html", form=form, plugins=host.plugins, companies=companies_,
        enabled=enabled, audit=audit, is_installed=host.is_installed,
    )


def _company_or_400(raw: str) -> Company:
    company = db.session.get(Company, int(raw)) if raw.isdigit() else None
    if company is None:
        abort(400, "Unknown company.")
    return company


def _set_enabled(host, plugin_id: str, company: Company, enabled: bool) -> None:
    row = db.session.get(PluginCompany, (plugin_id, company.id))
    if enabled and row is None:
        db.session.add(PluginCompany(plugin_id=plugin_id, company_id=company.id))
    elif not enabled and row is not None:
        db.session.delete(row)
    else:
        return
    _audit(f"plugin.{'enable' if enabled else 'disable'}", f"{plugin_id} for {company.name}")
    host.plugins.call(plugin_id, "exchange_company_enabled", host=host, company_id=company.id,
                      enabled=enabled, user=host.current_user())


def _audit(action: str, detail: str) -> None:
    db.session.add(HostAudit(user_id=g.user.id, username=g.user.username, action=action,
                             detail=detail))
