"""Store accounts page for admins (``ecommerce.manage``): connect an account, edit its
settings or turn it off, replace its credentials, test the connection.

Credentials are write-only here: the page says "set" or "not set", a form replaces them,
and the test button probes each API with them and shows the answers. The rules for the
settings are the core's (:mod:`..store_accounts`); these views only show the forms.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, g, redirect, render_template, request, url_for

from .. import settings, store_accounts
from ..addresses import AddressRules
from ..connectors import connector_class
from ..credentials import set_credentials
from ..health import STATUS_QUEUE, probe_account, probe_soon
from ..host_contract import get_host
from ..models import AuditEvent, Platform, StoreAccount
from ..plugin import state
from ..store_accounts import AccountRefused, AccountValues, Actor
from .forms import AlertsForm, ConfirmForm, account_form, credentials_form

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
    bp.add_url_rule("/accounts/connect/<platform>", "connect_account", connect_account,
                    methods=["GET", "POST"])
    bp.add_url_rule("/accounts/<int:account_id>/settings", "account_settings",
                    account_settings, methods=["GET", "POST"])


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
              "results": {}, "alerts_form": None, "saved": None, "connected": None,
              "updated": None, "result": None, "alerts_saved": False, "platforms": list(Platform)}
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
    items = _company_accounts()

    def named(arg: str) -> StoreAccount | None:
        return next((a for a in items if str(a.id) == request.args.get(arg)), None)

    return _page(saved=named("saved"), connected=named("connected"), updated=named("updated"),
                 result=request.args.get("result"),
                 alerts_saved=request.args.get("alerts") == "saved")


def connect_account(platform: str):
    """Connect a new store account of ``platform``: settings and credentials at once."""
    _require_manage()
    if platform not in {p.value for p in Platform}:
        abort(404)
    connector = connector_class(platform)
    posted = request.method == "POST"
    defaults = connector.default_options(connector.endpoint_example)
    form = account_form(platform, Platform(platform).label, connecting=True,
                        formdata=request.form if posted else None,
                        data={f.name: defaults.get(f.name, "")
                              for f in connector.option_fields})
    if posted and _checked(form):
        try:
            account = store_accounts.connect(
                _session(), state(get_host().app).credentials, g.sgx_company.id, platform,
                _values(form), _credentials(form), _actor(), _rules())
        except AccountRefused as refused:
            _show(form, refused.problems)
        else:
            _probe_soon(account)
            return redirect(url_for(".accounts", connected=account.id,
                                    _anchor=f"account-{account.id}"))
    return _settings_page(form, platform, None, 400 if posted else 200)


def account_settings(account_id: int):
    """Rename the account, change its order source or API address, its options, or turn
    it off and on. Credentials are asked for again only when the address moves to another
    host; otherwise they have their own form on the accounts page (write-only)."""
    _require_manage()
    account = _account(account_id)
    posted = request.method == "POST"
    options = account.options or {}
    current = {"name": account.name, "order_source": account.order_source,
               "endpoint": account.endpoint, "enabled": account.enabled,
               "version": store_accounts.settings_version(account),
               **{f.name: str(options.get(f.name) or "")
                  for f in connector_class(account.platform).option_fields}}
    form = account_form(account.platform, account.platform_label, connecting=False,
                        formdata=request.form if posted else None,
                        data=None if posted else current)
    valid = posted and _checked(form, account)
    if posted and "csrf_token" not in form.errors and form.version.data != current["version"]:
        # Another admin saved meanwhile: show what is there now rather than undo it.
        form = account_form(account.platform, account.platform_label, connecting=False,
                            data=current)
        return _settings_page(form, account.platform, account, 409, stale=True)
    if valid:
        try:
            changes = store_accounts.update(
                _session(), state(get_host().app).credentials, account, _values(form),
                _actor(), _credentials(form), _rules())
        except AccountRefused as refused:
            _show(form, refused.problems)
        else:
            if account.enabled and changes.keys() & {"enabled", "endpoint", "credentials"}:
                _probe_soon(account)
            result = ("unchanged" if not changes else "on" if changes.get("enabled") == [
                False, True] else "saved")
            return redirect(url_for(".accounts", updated=account.id, result=result,
                                    _anchor=f"account-{account.id}"))
    return _settings_page(form, account.platform, account, 400 if posted else 200)


def _checked(form, account: StoreAccount | None = None) -> bool:
    """The form's own checks and the core's (address, names taken) at once, so that one
    submit shows every problem. The core checks again when it saves."""
    valid = form.validate()
    found = store_accounts.problems(_session(), g.sgx_company.id, _values(form), _rules(),
                                    account)
    _show(form, {field: message for field, message in found.items()
                 if not form[field].errors})
    return valid and not found


def _show(form, problems: dict[str, str]) -> None:
    for field, message in problems.items():
        form[field].errors = [*form[field].errors, message]


def _settings_page(form, platform: str, account: StoreAccount | None, status: int,
                   stale: bool = False):
    secrets_typed = any(form[name].data for name in form.credential_names)
    waiting = store_accounts.open_writebacks(_session(), account.id) if account else 0
    return render_template("shipgear_exchange/account_settings.html", form=form,
                           platform_label=Platform(platform).label, account=account,
                           secrets_typed=secrets_typed and bool(form.errors), stale=stale,
                           waiting=waiting), status


def _values(form) -> AccountValues:
    enabled = form["enabled"].data if "enabled" in form else True
    return AccountValues(name=form.name.data or "", order_source=form.order_source.data or "",
                         endpoint=form.endpoint.data or "",
                         options={name: (form[name].data or "").strip()
                                  for name in form.option_names},
                         enabled=bool(enabled))


def _probe_soon(account: StoreAccount) -> None:
    host = get_host()
    try:
        queue = host.queue(STATUS_QUEUE)
    except Exception:  # noqa: BLE001 - no Redis now: the periodic health checks probe it
        return
    probe_soon(queue, account.id)


def _credentials(form) -> dict[str, str]:
    return {name: form[name].data or "" for name in form.credential_names}


def _actor() -> Actor:
    return Actor(g.sgx_user.id, g.sgx_user.username)


def _rules() -> AddressRules:
    return AddressRules.from_config(get_host().app.config)


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
    if account.enabled:
        _probe_soon(account)
    return redirect(url_for(".accounts", saved=account.id))


def test_connection(account_id: int):
    _require_manage()
    account = _account(account_id)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    plugin = state(get_host().app)  # its calls count for Connection Status too
    results = probe_account(account, plugin.credentials, plugin.recorder, timeout=TEST_TIMEOUT,
                            addresses=_rules())
    if request.headers.get("HX-Request") == "true":
        return render_template("shipgear_exchange/_connection_test.html", account=account,
                               results=results)
    return _page(results={account.id: results})
