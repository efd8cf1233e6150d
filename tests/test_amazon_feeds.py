"""Amazon's batch path through the engine (PRODUCT.md B5): due packages of one account
go as one flat-file feed, the processing report is mapped back per package, and a bad
record fails only its own row."""

from __future__ import annotations

import time

import requests
import sqlalchemy as sa

from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.devhost.shipments import process_shipment
from shipgear_exchange_plugin.feeds import AmazonFeeds
from shipgear_exchange_plugin.models import Attempt, Writeback

from .test_writeback_engine import FAST, Clock, service


def _ship_amazon(app, sandbox, orders: list[tuple[str, str]]) -> list[int]:
    """Ship one package per (order id, order item id); the store knows only the orders
    whose item id does not start with 'X'."""
    host = app.extensions["exchange.host"]
    known = [{"order_id": o, "items": [{"order_item_id": i, "sku": "SKU-1000", "quantity": 1}]}
             for o, i in orders if not i.startswith("X")]
    base = f"{sandbox.url}/_sandbox/amazon/c1"
    assert requests.post(f"{base}/orders", json={"orders": known}, timeout=5).status_code == 201
    ids = []
    with app.app_context():
        for n, (order_id, item_id) in enumerate(orders):
            shipment = process_shipment(
                host, company_id=1, order_source="amazon-1", order_id=order_id, carrier="UPS",
                service="Ground", packages=[{"tracking_number": f"1ZFEED{n:04d}", "items": [
                    {"order_item_id": item_id, "sku": "SKU-1000", "quantity": 1}]}])
            ids.append(db.session.execute(sa.select(Writeback.id).where(
                Writeback.shipment_id == shipment.id)).scalar_one())
    return ids


def test_a_feed_confirms_many_packages_and_fails_a_bad_record_alone(make_app, sandbox):
    app = make_app(WTF_CSRF_ENABLED=False, SHIPGEAR_SANDBOX_URL=sandbox.url)
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    requests.put(f"{sandbox.url}/_sandbox/amazon/c1/settings",
                 json={"strict_orders": True, "feed_delay_s": 0.4}, timeout=5)
    orders = [("111-0000001-0000001", "9001"), ("111-0000002-0000002", "9002"),
              ("111-0000003-0000003", "X-unknown-item")]
    good_one, good_two, bad = _ship_amazon(app, sandbox, orders)
    clock = Clock()
    with app.app_context():
        feeds = AmazonFeeds(service(app, clock, FAST), poll_every=1)
        (account_id,) = feeds.accounts_due([1], threshold=3)
        assert feeds.accounts_due([1], threshold=4) == []
        step = feeds.submit(account_id)
        assert (step.action, step.rows) == ("submitted", 3)
        statuses = db.session.execute(sa.select(Writeback.status, Writeback.feed_id).where(
            Writeback.id.in_([good_one, good_two, bad]))).all()
        assert {s for s, _ in statuses} == {"submitted"}
        assert {f for _, f in statuses} == {step.feed_id}
        clock.now += feeds.poll_every
        assert feeds.feeds_due() == [step.feed_id]
        result = feeds.poll(step.feed_id)
        deadline = time.monotonic() + 10
        while result.action == "waiting" and time.monotonic() < deadline:
            time.sleep(0.3)
            clock.now += feeds.poll_every
            result = feeds.poll(step.feed_id)
        assert result.action == "mapped"
        rows = {r.id: r for r in db.session.execute(sa.select(Writeback)).scalars()}
        assert (rows[good_one].status, rows[good_one].feed_id) == ("submitted", None)
        assert (rows[bad].status, rows[bad].error_count) == ("pending", 1)
        assert "Amazon feed record failed" in rows[bad].last_error
        timeline = db.session.execute(sa.select(Attempt.writeback_id, Attempt.outcome)).all()
        assert (bad, "retryable_error") in timeline and (good_one, "accepted") in timeline
        # the confirmed records go on to the usual verification
        clock.now += feeds.poll_every * 5
        verified = service(app, clock, FAST).verify(good_one)
        assert verified.status == "success"
    written = [w["order_id"] for w in sandbox.store.account("amazon", "c1").writes]
    assert sorted(written) == ["111-0000001-0000001", "111-0000002-0000002"]
