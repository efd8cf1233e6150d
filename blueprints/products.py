"""The Products tab: what each store account's Products API gave us (item number, title,
weight, image), searchable and paged, with a JSON twin; admins can sync it now.

"Sync now" runs in the request, not as a job: an admin clicked it and waits for the
answer, so each account's outcome ("20 products loaded", "Credentials refused") is shown
right away instead of "queued". Every store call has a short timeout (3 s to connect, 8 s
to read) and the stores are asked in parallel, so the wait is that of the slowest store,
not the sum over the company's accounts. The periodic job keeps them fresh otherwise.
"""

from __future__ import annotations

from flask import Blueprint, abort, g, jsonify, make_response, render_template, request
from wtforms import Form, SelectField, StringField
from wtforms.validators import Length, ValidationError

from .. import products, status
from ..addresses import AddressRules
from ..host_contract import get_host
from ..models import AuditEvent, StoreAccount
from ..plugin import state
from ..ratelimit import RedisRateLimiter
from .forms import ConfirmForm

MANAGE = "ecommerce.manage"
#: An admin waits for the sync: keep each store call short (connect, read).
SYNC_TIMEOUT = (3.05, 8.0)
REGION = "products-region"


class ProductSearchForm(Form):
    """The tab's search (GET, so no CSRF). Values are checked again by the core."""

    q = StringField("Search", validators=[Length(max=products.MAX_QUERY, message=(
        f"Search text is too long (at most {products.MAX_QUERY} characters)."))])
    account = SelectField("Account", validate_choice=False)
    after = StringField("after", validators=[Length(max=products.MAX_CURSOR, message=(
        "The page link is not valid; start the search again."))])
    limit = StringField("limit")

    def __init__(self, formdata, accounts: list[StoreAccount]):
        super().__init__(formdata)
        self.account.choices = [("", "All accounts")] + [
            (str(a.id), f"{a.platform_label} · {a.name}") for a in accounts]

    def validate_q(self, field):
        try:
            field.data = products.check_query(field.data)
        except products.SearchError as exc:
            raise ValidationError(str(exc)) from None

    def validate_account(self, field):
        if field.data and field.data not in {value for value, _ in self.account.choices}:
            raise ValidationError("Choose a store account of this company.")

    def validate_limit(self, field):
        if field.data and not (field.data.isdigit() and len(field.data) <= 3
                               and 1 <= int(field.data) <= products.MAX_PAGE_SIZE):
            raise ValidationError(
                f"Page size must be between 1 and {products.MAX_PAGE_SIZE}.")

    def messages(self) -> list[str]:
        return [message for errors in self.errors.values() for message in errors]


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/products", "products", products_page)
    bp.add_url_rule("/products.json", "products_json", products_json)
    bp.add_url_rule("/products/sync", "products_sync", sync_now, methods=["POST"])


def _session():
    return get_host().db.session


def _run_search(accounts: list[StoreAccount]):
    """The form, the page found (None when the input was refused) and the messages."""
    form = ProductSearchForm(request.args, accounts)
    if not form.validate():
        return form, None, form.messages()
    try:
        page = products.search(
            _session(), g.sgx_company.id, q=form.q.data,
            account_id=int(form.account.data) if form.account.data else None,
            after=form.after.data or None,
            limit=int(form.limit.data) if form.limit.data else products.PAGE_SIZE)
    except products.SearchError as exc:
        return form, None, [str(exc)]
    return form, page, []


def _page_args(form: ProductSearchForm) -> dict[str, str]:
    """The search as query arguments, for the next-page and first-page links."""
    return {name: value for name, value in (
        ("q", form.q.data), ("account", form.account.data), ("limit", form.limit.data))
        if value}


def _render(accounts, form, page, errors, sync_results=None, status: int = 200):
    htmx_region = (request.headers.get("HX-Request") == "true"
                   and request.headers.get("HX-Target") == REGION)
    template = ("shipgear_exchange/_products_table.html" if htmx_region
                else "shipgear_exchange/products.html")
    body = render_template(
        template, form=form, rows=page.rows if page else [],
        next_cursor=page.next if page else None, errors=errors, accounts=accounts,
        by_id={a.id: a for a in accounts}, page_args=_page_args(form),
        summary=products.summary(_session(), g.sgx_company.id),
        api_status={} if htmx_region else _products_api_status(accounts),
        sync_results=sync_results, sync_form=ConfirmForm())
    response = make_response(body, status)
    response.vary.add("HX-Request")  # the same URL answers a fragment to htmx
    return response


def _products_api_status(accounts) -> dict:
    host = get_host()
    try:
        connection = host.redis()
    except Exception:  # noqa: BLE001 - no status store: each account says so
        connection = None
    return status.of_api(connection, [a.id for a in accounts if a.enabled], "products",
                         state(host.app).thresholds)


def products_page():
    accounts = products.company_accounts(_session(), g.sgx_company.id)
    form, page, errors = _run_search(accounts)
    return _render(accounts, form, page, errors, status=400 if errors else 200)


def products_json():
    accounts = products.company_accounts(_session(), g.sgx_company.id)
    _, page, errors = _run_search(accounts)
    if errors:
        return jsonify({"error": " ".join(errors)}), 400
    return jsonify({
        "items": [{"account_id": r.account_id, "account": r.account_name,
                   "platform": r.platform, "sku": r.sku, "title": r.title,
                   "weight": r.weight, "weight_unit": r.weight_unit,
                   "image_url": r.image_url, "updated_at": r.updated_at.isoformat()}
                  for r in page.rows],
        "next": page.next,
    })


def sync_now():
    host = get_host()
    if not host.has_permission(g.sgx_user, g.sgx_company.id, MANAGE):
        abort(403)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    session = _session()
    accounts = products.company_accounts(session, g.sgx_company.id)
    enabled = [a for a in accounts if a.enabled]
    names = {a.id: f"{a.platform_label} · {a.name}" for a in enabled}
    plugin = state(host.app)
    results = products.sync_accounts(
        session, enabled, plugin.credentials, recorder=plugin.recorder,
        throttle=RedisRateLimiter(host.redis()), timeout=SYNC_TIMEOUT,
        addresses=AddressRules.from_config(host.app.config))
    session.add(AuditEvent(
        company_id=g.sgx_company.id, user_id=g.sgx_user.id, username=g.sgx_user.username,
        action="products.sync", target=f"company:{g.sgx_company.id}",
        detail={"accounts": {str(r.account_id): r.message for r in results}}))
    session.commit()
    accounts = products.company_accounts(session, g.sgx_company.id)
    form = ProductSearchForm(None, accounts)
    form.validate()
    page = products.search(session, g.sgx_company.id)
    return _render(accounts, form, page, [],
                   sync_results=[(names[r.account_id], r) for r in results])
