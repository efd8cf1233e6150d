"""Manual write-back actions (PRODUCT.md B8): Retry now (one or many) and Mark confirmed
manually. POST only, CSRF-checked, ``ecommerce.act`` required, audited by the core.

Retry now on a pending row runs its next attempt at once and keeps its error count; on a
failed row it starts a new round of up to 5 attempts (error count back to 0, the attempt
timeline kept, the store asked first whether an earlier send landed). A package that may
be in an Amazon feed still processing waits for it first, and the answer says so.
"""

from __future__ import annotations

import math

from flask import Blueprint, abort, g, jsonify, redirect, render_template, request, url_for

from .. import dispatch, orders, runtime
from ..host_contract import get_host
from ..models import utcnow
from .errors import wants_json
from .forms import BulkRetryForm, ConfirmForm, MarkConfirmedForm

ACT = "ecommerce.act"


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/orders/<int:writeback_id>/retry", "retry_one", retry_one, methods=["POST"])
    bp.add_url_rule("/orders/retry", "retry_many", retry_many, methods=["POST"])
    bp.add_url_rule("/orders/<int:writeback_id>/mark-confirmed", "mark_confirmed",
                    mark_confirmed, methods=["POST"])


def _refuse(status: int, message: str):
    """Stop the request with ``status`` and a message: ``{"ok": false, "message"}`` to a
    JSON client (openapi.yaml), the host's error page saying it to the others."""
    if wants_json():
        response = jsonify({"ok": False, "message": message})
        response.status_code = status
        abort(response)
    abort(status, message)


def _require_act() -> None:
    if not get_host().has_permission(g.sgx_user, g.sgx_company.id, ACT):
        _refuse(403, "Your role may not retry or confirm write-backs; ask support or an "
                     "admin.")


NOT_FOUND = "No such write-back in this company."


def _retry(ids: list[int]) -> list[int]:
    host = get_host()
    done = runtime.writeback_service(host).retry_now(
        g.sgx_company.id, ids, g.sgx_user.id, g.sgx_user.username)
    queue = runtime.writeback_queue(host)
    dispatch.enqueue_new(queue, [(wid, 0, None) for wid in done])
    return done


def _answer(writeback_id: int, message: str, status: int = 200):
    if wants_json():
        return jsonify({"ok": status < 400, "message": message, "id": writeback_id}), status
    if request.headers.get("HX-Request") == "true":
        from .ecommerce import shipment_context

        return render_template("shipgear_exchange/_shipment.html",
                               selected=shipment_context(writeback_id), notice=message), status
    return redirect(url_for(".page", selected=writeback_id))


def retry_one(writeback_id: int):
    _require_act()
    if not ConfirmForm().validate_on_submit():
        _refuse(400, "The form expired; reload the page and try again.")
    row = orders.get(get_host().db.session, g.sgx_company.id, writeback_id)
    if row is None:
        _refuse(404, NOT_FOUND)
    done = _retry([writeback_id])
    if not done:
        return _answer(writeback_id, f"Nothing to retry: this write-back is {row.status}.", 409)
    if not row.account.enabled:
        return _answer(writeback_id, f"Retry queued, but the store account {row.account.name} "
                       "is turned off: the attempt runs once an admin turns it on again.")
    later = orders.waiting_for_feed(get_host().db.session, g.sgx_company.id, done)
    if later:
        minutes = max(1, math.ceil((later[writeback_id] - utcnow()).total_seconds() / 60))
        return _answer(writeback_id, "Retry queued. This package may be in an Amazon feed "
                       f"that Amazon is still processing: the next attempt waits about "
                       f"{minutes} minutes for it, then asks Amazon first.")
    return _answer(writeback_id, "Retry queued: the next attempt runs now.")


def retry_many():
    _require_act()
    form = BulkRetryForm()
    if not form.validate_on_submit():
        message = "; ".join(e for errors in form.errors.values() for e in errors)
        return jsonify({"ok": False, "message": message}), 400
    done = _retry(form.id_list)
    message = f"{len(done)} of {len(form.id_list)} selected orders queued for retry."
    waiting = len(orders.waiting_for_feed(get_host().db.session, g.sgx_company.id, done))
    if waiting:
        message += (f" {waiting} of them may be in an Amazon feed that Amazon is still "
                    "processing: they wait for it, then ask Amazon first.")
    off = orders.of_accounts_turned_off(get_host().db.session, g.sgx_company.id, done)
    if len(off) == 1:
        message += (" 1 of them belongs to a store account that is turned off: it runs "
                    "once an admin turns the account on again.")
    elif off:
        message += (f" {len(off)} of them belong to store accounts that are turned off: "
                    "they run once an admin turns their account on again.")
    if wants_json() or request.headers.get("HX-Request") == "true":
        return jsonify({"ok": True, "message": message, "retried": done})
    return redirect(url_for(".page"))


def mark_confirmed(writeback_id: int):
    _require_act()
    form = MarkConfirmedForm()
    if not form.validate_on_submit():
        _refuse(400, "The form expired or the note is too long; reload and try again.")
    if not orders.valid_id(writeback_id):  # no row has it (and the database refuses it)
        _refuse(404, NOT_FOUND)
    host = get_host()
    row = runtime.writeback_service(host).mark_confirmed(
        g.sgx_company.id, writeback_id, g.sgx_user.id, g.sgx_user.username,
        form.note.data or "")
    if row is None:
        _refuse(404, NOT_FOUND)
    return _answer(writeback_id, f"Marked {row.status}: confirmed by hand on the store.")
