"""The sandbox's control API, under ``/_sandbox`` (a path no store uses).

- ``GET  /_sandbox/health``: ``{"ok": true}``.
- ``POST /_sandbox/reset``: forget every account (orders, writes, faults, limits).
- ``GET  /_sandbox/{platform}/{key}``: the account's faults, settings and counts.
- ``PUT  /_sandbox/{platform}/{key}/faults``: set faults (JSON, any of ``error_rate``
  0-1, ``error_status``, ``latency_ms``, ``write_latency_ms`` (writes only, then applied),
  ``outage`` null/"down"/"hang", ``hang_seconds``,
  ``throttle``, ``auth_refused``, ``verify_lag_s``, ``trickle_ms`` (the body a byte at
  a time)); ``DELETE`` clears them.
- ``PUT  /_sandbox/{platform}/{key}/settings``: ``strict_orders``, ``feed_delay_s``,
  ``gzip_reports`` and ``create_feed_answer_s`` (Amazon), ``limits`` (e.g.
  ``{"confirmShipment": {"rate": 2, "burst": 10}}``).
- ``POST /_sandbox/{platform}/{key}/orders``: create orders
  ``{"orders": [{"order_id", "items": [{"order_item_id", "sku", "quantity"}]}]}`` or seed
  ``{"count": N}``; answers the orders created.
- ``GET  /_sandbox/{platform}/{key}/orders/{order_id}``: an order with its shipments.
- ``GET  /_sandbox/{platform}/{key}/writes``: every write received, oldest first.
- ``GET  /_sandbox/{platform}/{key}/requests``: every store call received (method, path).
- ``GET  /_sandbox/{platform}/{key}/duplicates``: ``{"duplicates": {order_id: extra}}``.
- ``POST /_sandbox/{platform}/{key}/reset``: forget that one account.
"""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, abort, current_app, jsonify, request

from .store import PLATFORMS, Account, SandboxStore

bp = Blueprint("sandbox_control", __name__, url_prefix="/_sandbox")


def _store() -> SandboxStore:
    return current_app.extensions["sandbox"]


def _account(platform: str, key: str) -> Account:
    if platform not in PLATFORMS:
        abort(404, f"unknown platform {platform!r}; one of {', '.join(PLATFORMS)}")
    return _store().account(platform, key)


def _json_object() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "send a JSON object")
    return body


@bp.errorhandler(400)
@bp.errorhandler(404)
def _error(exc):
    return jsonify(error=exc.description), exc.code


@bp.get("/health")
def health():
    return jsonify(ok=True)


@bp.post("/reset")
def reset_all():
    _store().reset()
    return jsonify(ok=True)


@bp.get("/<platform>/<key>")
def account_info(platform: str, key: str):
    return jsonify(_account(platform, key).snapshot())


@bp.put("/<platform>/<key>/faults")
def set_faults(platform: str, key: str):
    account = _account(platform, key)
    try:
        account.faults.update(_json_object())
    except (TypeError, ValueError) as exc:
        abort(400, str(exc))
    return jsonify(asdict(account.faults))


@bp.delete("/<platform>/<key>/faults")
def clear_faults(platform: str, key: str):
    account = _account(platform, key)
    account.faults.update(asdict(type(account.faults)()))
    return jsonify(asdict(account.faults))


@bp.put("/<platform>/<key>/settings")
def set_settings(platform: str, key: str):
    account = _account(platform, key)
    try:
        account.settings.update(_json_object())
    except (TypeError, ValueError) as exc:
        abort(400, str(exc))
    with account.lock:
        account.limiters.clear()  # new limits apply from the next call
    return jsonify(asdict(account.settings))


@bp.post("/<platform>/<key>/orders")
def create_orders(platform: str, key: str):
    account = _account(platform, key)
    body = _json_object()
    if "count" in body:
        orders = account.seed_orders(int(body["count"]))
    else:
        raw = body.get("orders")
        if not isinstance(raw, list):
            abort(400, "send {'orders': [...]} or {'count': N}")
        orders = [account.add_order(str(o["order_id"]), list(o.get("items") or []))
                  for o in raw]
    return jsonify(orders=[_order_json(o) for o in orders]), 201


@bp.get("/<platform>/<key>/orders/<order_id>")
def order_info(platform: str, key: str, order_id: str):
    order = _account(platform, key).orders.get(order_id)
    if order is None:
        abort(404, f"no order {order_id!r}")
    return jsonify(_order_json(order))


@bp.get("/<platform>/<key>/writes")
def writes(platform: str, key: str):
    account = _account(platform, key)
    with account.lock:
        return jsonify(writes=list(account.writes))


@bp.get("/<platform>/<key>/requests")
def requests_received(platform: str, key: str):
    account = _account(platform, key)
    with account.lock:
        return jsonify(requests=list(account.requests))


@bp.get("/<platform>/<key>/duplicates")
def duplicates(platform: str, key: str):
    return jsonify(duplicates=_account(platform, key).duplicates())


@bp.post("/<platform>/<key>/reset")
def reset_account(platform: str, key: str):
    _account(platform, key)
    _store().reset(platform, key)
    return jsonify(ok=True)


def _order_json(order) -> dict:
    return {"order_id": order.order_id, "items": order.items,
            "shipments": [{k: v for k, v in s.items() if k != "payload"}
                          for s in order.shipments], **order.extra}
