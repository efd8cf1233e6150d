"""Store accounts page for admins (``ecommerce.manage``): credentials and connection test.

Credentials are write-only here: the page says "set" or "not set", a form replaces them,
and the test button probes each API with them and shows the answers.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, g, redirect, render_template, request, url_for

from .. import settings
from ..connectors import connector_class
from ..credentials import set_credentials
from ..health import probe_account
from ..host_contract import get_host
from ..models import AuditEvent, StoreAccount
from ..plugin import state
from .forms import AlertsForm, ConfirmForm, credentials_form

MANAGE = "ecommerce.manage"
#: An admin waits for the test: keep it short (connect, read) per call.
TEST_TIMEOUT = (3.05, 8.0)


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/accounts", "accounts", accounts)
    bp.add_url_rule("/accounts/<int:account_id>/credentials", "set_credentials",
                    save_credentials, methods=["POST"])
    bp.add_url_rule("/accounts/<int:account_id>/test", "test_connection", test_connection,
                    methods=["POST"])
    bp.add_url_rule("/accounts/alerts", "save_alerts", save_alerts, methods=["POST"])


def _require_manage() -> None:
    host = get_host()
    if not host.has_permission(g.sgx_user, g.sgx_company.id, MANAGE):
        abort(403)


def _session():
    return get_host().db.session


def _company_accounts() -> list[StoreAccount]:
    return list(_session().execute(
        sa.select(StoreAccount).where(StoreAccount.company_id == g.sgx_company.id)
        .order_by(StoreAccount.platform, StoreAccount.name)).scalars())


def _account(account_id: int) -> StoreAccount:
    account = _session().get(StoreAccount, account_id)
    if account is None or account.company_id != g.sgx_company.id:
        abort(404)
    return account


def _forms(accounts, failed: StoreAccount | None = None, failed_form=None):
    forms = {}
    for account in accounts:
        if failed is not None and account.id == failed.id:
            forms[account.id] = failed_form
        else:
            forms[account.id] = credentials_form(
                connector_class(account.platform).credential_fields, formdata=None)
    return forms


def _page(status: int = 200, **context):
    """The accounts page; ``context`` overrides the defaults (a form with errors...)."""
    items = _company_accounts()
    values = {"accounts": items, "forms": _forms(items), "test_form": ConfirmForm(),
              "results": {}, "alerts_form": None, "saved": None, "alerts_saved": False}
    values.update(context)
    if values["alerts_form"] is None:
        values["alerts_form"] = _alerts_form()
    if "failed" in values:
        account, form = values.pop("failed")
        values["forms"] = _forms(items, account, form)
    return render_template("shipgear_exchange/accounts.html", **values), status


def _alerts_form(formdata=None) -> AlertsForm:
    current = settings.values(_session(), state(get_host().app).manifest, g.sgx_company.id)
    form = AlertsForm(formdata=formdata)
    if formdata is None:
        form.alert_webhook_url.data = current.get("alert_webhook_url") or ""
    return form


def accounts():
    _require_manage()
    saved = next((a for a in _company_accounts() if str(a.id) == request.args.get("saved")),
                 None)
    return _page(saved=saved, alerts_saved=request.args.get("alerts") == "saved")


def save_alerts():
    """The company's webhook for Connection Status changes; audited."""
    _require_manage()
    form = AlertsForm()
    if not form.validate_on_submit():
        return _page(400, alerts_form=form)
    url = form.alert_webhook_url.data or None
    settings.update(_session(), state(get_host().app).manifest, g.sgx_company.id,
                    {"alert_webhook_url": url})
    _session().add(AuditEvent(
        company_id=g.sgx_company.id, user_id=g.sgx_user.id, username=g.sgx_user.username,
        action="settings.alert_webhook", detail={"url": url}))
    _session().commit()
    return redirect(url_for(".accounts", alerts="saved"))


def save_credentials(account_id: int):
    _require_manage()
    account = _account(account_id)
    fields = connector_class(account.platform).credential_fields
    form = credentials_form(fields, formdata=request.form)
    if not form.validate():
        return _page(400, failed=(account, form))
    set_credentials(state(get_host().app).credentials, account,
                    {name: form[name].data for name in fields})
    _session().add(AuditEvent(
        company_id=g.sgx_company.id, user_id=g.sgx_user.id, username=g.sgx_user.username,
        action="account.credentials_set", target=f"account:{account.id}",
        detail={"fields": list(fields)}))  # which fields, never their values
    _session().commit()
    return redirect(url_for(".accounts", saved=account.id))


def test_connection(account_id: int):
    _require_manage()
    account = _account(account_id)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    results = probe_account(account, state(get_host().app).credentials, timeout=TEST_TIMEOUT)
    if request.headers.get("HX-Request") == "true":
        return render_template("shipgear_exchange/_connection_test.html", account=account,
                               results=results)
    return _page(results={account.id: results})
