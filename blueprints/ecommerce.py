"""The View eCommerce page under /companies/<company_id>/ecommerce/ and its fragments."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import generate_csrf
from werkzeug.datastructures import MultiDict

from .. import PLUGIN_ID, atrisk, history, orders, status
from ..host_contract import get_host
from ..models import MAX_ATTEMPTS, Writeback, WritebackStatus, utcnow
from ..plugin import state
from .forms import OrderFilterForm

VIEW = "ecommerce.view"


def register(bp: Blueprint) -> None:
    bp.url_value_preprocessor(_pop_company_id)
    bp.url_defaults(_add_company_id)
    bp.before_request(_require_access)
    bp.context_processor(_template_globals)
    bp.add_app_template_filter(_local_time, "sgx_local")
    bp.add_app_template_filter(_local_iso, "sgx_local_iso")
    bp.add_app_template_filter(atrisk.label, "sgx_at_risk")
    bp.add_url_rule("/", "page", page)
    bp.add_url_rule("/orders/<int:writeback_id>", "shipment", shipment)
    bp.add_url_rule("/orders.json", "orders_json", orders_json)
    bp.add_url_rule("/openapi.json", "openapi", openapi)
    bp.add_url_rule("/status.json", "status_json", status_json)
    bp.add_url_rule("/status", "status_fragment", status_fragment)


def _pop_company_id(endpoint, values) -> None:
    g.sgx_company_id = values.pop("company_id", None) if values else None


def _add_company_id(endpoint, values) -> None:
    if "company_id" not in values and g.get("sgx_company_id") is not None:
        values["company_id"] = g.sgx_company_id


def _require_access():
    """Sign-in, then membership and plugin enabled (else 404), then the view permission."""
    host = get_host()
    user = host.current_user()
    if user is None:
        return redirect(host.login_url() + "?next=" + request.full_path)
    company = host.company_for_user(user, g.sgx_company_id)
    if company is None or not host.is_enabled(PLUGIN_ID, company.id):
        abort(404)
    if not host.has_permission(user, company.id, VIEW):
        abort(403)
    g.sgx_user = user
    g.sgx_company = company
    g.sgx_can_manage = host.has_permission(user, company.id, "ecommerce.manage")
    g.sgx_can_act = host.has_permission(user, company.id, "ecommerce.act")
    return None


def _template_globals():
    host = get_host()
    return {
        "base_template": host.base_template,
        "company": g.get("sgx_company"),
        "exit_url": host.my_companies_url(),
        "can_manage": g.get("sgx_can_manage", False),
        "max_attempts": MAX_ATTEMPTS,
        "status_labels": {s.value: s.value.capitalize() for s in WritebackStatus},
        "can_act": g.get("sgx_can_act", False),
        "csrf_token": generate_csrf,
    }


def _local_time(value: dt.datetime | None, timezone: str) -> str:
    """A stored UTC time as the company reads it."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _local_iso(value: str | None, timezone: str) -> str:
    return _local_time(dt.datetime.fromisoformat(value), timezone) if value else ""


def _session():
    return get_host().db.session


@dataclass
class GridQuery:
    """The grid's parsed request: the form (with its errors), the filter, the decoded
    cursor and the page size. ``flt`` is None when the input was refused."""

    form: OrderFilterForm
    flt: orders.OrderFilter | None
    after: list | None = None
    limit: int = orders.PAGE_SIZE
    #: Rows before this page, when its link said (None: a link from orders.json).
    rows_before: int | None = 0

    def error_message(self) -> str:
        return "; ".join(f"{self.form[name].label.text}: {' '.join(errors)}"
                         for name, errors in self.form.errors.items())


def _cursor_codec() -> orders.CursorCodec:
    return orders.CursorCodec(current_app.config["SECRET_KEY"])


def _parse_filters(args: MultiDict) -> GridQuery:
    form = OrderFilterForm(args)
    form.account.choices = [(a.id, a.name if a.enabled else f"{a.name} (off)")
                            for a in status.accounts(_session(), g.sgx_company.id,
                                                     enabled_only=False)]
    if not form.validate():
        return GridQuery(form, None)
    flt = orders.OrderFilter(
        statuses=tuple(form.status.data or ()),
        date_from=form.date_from.data,
        date_to=form.date_to.data,
        timezone=g.sgx_company.timezone,
        accounts=tuple(form.account.data or ()),
        search=(form.q.data or "").strip(),
        sort=form.sort.data,
    )
    after, rows_before = None, 0
    if form.after.data:
        try:
            after, rows_before = _cursor_codec().decode_with_position(flt, form.after.data)
        except orders.CursorError as exc:
            form.after.errors = [str(exc)]
            return GridQuery(form, None)
    return GridQuery(form, flt, after, form.limit.data or orders.PAGE_SIZE, rows_before)


#: The grid's own parameters: the only ones carried into links and redirects.
FILTER_KEYS = ("status", "date_from", "date_to", "account", "q", "sort", "limit", "after")


def _grid_args(exclude: tuple[str, ...] = ("selected", "after")) -> dict[str, list[str]]:
    return {k: v for k, v in request.args.to_dict(flat=False).items()
            if k in FILTER_KEYS + ("selected",) and k not in exclude}


def _previous_cursor(query: GridQuery, first: Writeback) -> str | None:
    """The cursor of the page before a later page: after the row a page size before this
    page's first row. None when that page is the first (the link then has no cursor)."""
    before = orders.rows_before(_session(), g.sgx_company.id, query.flt,
                                orders.cursor_values(query.flt, first), query.limit + 1)
    if len(before) <= query.limit:
        return None
    position = None if query.rows_before is None else query.rows_before - query.limit
    return _cursor_codec().encode(query.flt, before[query.limit],
                                  position if position is not None and position > 0 else None)


def page():
    query = _parse_filters(request.args)
    rows, total, next_cursor, previous_cursor = [], None, None, None
    if query.flt is not None:
        rows, more = orders.page(_session(), g.sgx_company.id, query.flt, query.limit,
                                 query.after)
        total = orders.count_bounded(_session(), g.sgx_company.id, query.flt)
        if more and rows:
            next_cursor = _cursor_codec().encode(
                query.flt, rows[-1],
                None if query.rows_before is None else query.rows_before + len(rows))
        if query.after is not None and rows:
            previous_cursor = _previous_cursor(query, rows[0])
    selected, selected_id = None, None
    raw_selected = request.args.get("selected", "").strip()
    # ASCII digits only ("²".isdigit() is true, int() refuses it); a huge id is no row's.
    if raw_selected.isascii() and raw_selected.isdigit() and len(raw_selected.lstrip("0")) <= 10:
        selected_id = int(raw_selected)
    fragment = _is_htmx_grid()
    if selected_id is not None and not fragment:  # the grid alone only marks its row
        selected = shipment_context(selected_id)
    template = "shipgear_exchange/_grid.html" if fragment else "shipgear_exchange/page.html"
    sort = query.flt.sort if query.flt else orders.DEFAULT_SORT
    response = make_response(render_template(
        template,
        form=query.form,
        rows=rows,
        **({} if fragment else _status_context()),  # the panel refreshes on its own
        selected=selected,
        selected_id=selected_id,
        total=total,
        total_bound=orders.COUNT_BOUND,
        sort=sort,
        sort_keys=orders.SORTS,
        grid_args=_grid_args(("selected", "after", "sort")),
        export_args=_grid_args(),
        page_args=_grid_args(("selected",)),
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
        on_later_page=query.after is not None,
        rows_before=query.rows_before,
    ), 200 if query.flt is not None else 400)
    # The same URL answers the whole page or, to htmx, the grid alone. Were the grid kept
    # in the browser's cache, Back to this URL from another page would show it bare.
    response.vary.add("HX-Request")
    if fragment:
        response.headers["Cache-Control"] = "no-store"
    return response


def openapi():
    """The OpenAPI 3.1 description of these JSON surfaces (shipped as openapi.yaml)."""
    import yaml

    from ..paths import OPENAPI_PATH

    document = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    document["servers"] = [{"url": url_for(".page").rstrip("/")}]
    return jsonify(document)


def orders_json():
    """``orders.json``: the grid's rows as JSON, same parameters, cursor paging."""
    query = _parse_filters(request.args)
    if query.flt is None:
        return jsonify({"error": query.error_message()}), 400
    rows, more = orders.page(_session(), g.sgx_company.id, query.flt, query.limit, query.after)
    return jsonify({
        "items": [_row_json(row) for row in rows],
        "next": _cursor_codec().encode(query.flt, rows[-1]) if more and rows else None,
    })


def _row_json(row) -> dict:
    return {
        "id": row.id, "order_id": row.order_id, "account": row.account.name,
        "account_id": row.account_id, "platform": row.account.platform,
        "ship_date": row.ship_date.isoformat(), "carrier": row.carrier,
        "service": row.service, "tracking_number": row.tracking_number,
        "shipped_quantity": row.shipped_quantity, "status": row.status,
        "error_count": row.error_count,
        "last_attempt_at": row.last_attempt_at.isoformat() if row.last_attempt_at else None,
        "last_error": row.last_error,
    }


def _is_htmx_grid() -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get(
        "HX-Target") == "orders-region"


def shipment_context(writeback_id: int):
    row = orders.get(_session(), g.sgx_company.id, writeback_id)
    if row is None:
        return None
    return {
        "row": row,
        "packages": orders.packages_of_order(_session(), g.sgx_company.id, row),
        "actions": orders.manual_actions(_session(), g.sgx_company.id, row.id),
    }


def shipment(writeback_id: int):
    context = shipment_context(writeback_id)
    if context is None:
        abort(404)
    if request.headers.get("HX-Request") == "true":
        return render_template("shipgear_exchange/_shipment.html", selected=context)
    args = {k: v for k, v in request.args.to_dict(flat=False).items() if k in FILTER_KEYS}
    args["selected"] = [str(writeback_id)]
    return redirect(url_for(".page", **args))


def _status_context() -> dict:
    host = get_host()
    try:
        connection = host.redis()
    except Exception:  # noqa: BLE001 - no status store: the panel says so
        connection = None
    rows, error = status.panel(_session(), connection, g.sgx_company.id,
                               state(host.app).thresholds)
    bars = history.slots(_session(), [item.account.id for item in rows], utcnow())
    turned_off = 0 if rows else len(status.accounts(
        _session(), g.sgx_company.id, enabled_only=False))
    return {"panel": rows, "status_error": error, "api_labels": status.API_LABELS,
            "history": bars, "turned_off": turned_off}


def status_fragment():
    """The Connection Status panel alone, for its HTMX refresh."""
    return render_template("shipgear_exchange/_status_panel.html", **_status_context())


def status_json():
    context = _status_context()
    return jsonify({
        "error": context["status_error"],
        "accounts": [
            {
                "id": item.account.id,
                "platform": item.account.platform,
                "name": item.account.name,
                "apis": {name: {"status": api.status, "info": api.info,
                                "last_run_at": api.last_run_at}
                         for name, api in item.apis.items()},
            }
            for item in context["panel"]
        ],
    })
