"""Amazon's batch path through the engine (PRODUCT.md B5): due packages of one account
go as one flat-file feed, the processing report is mapped back per package, and a bad
record fails only its own row."""

from __future__ import annotations

import datetime as dt
import time

import requests
import sqlalchemy as sa

from shipgear_exchange_plugin.connectors import Outcome, package_of
from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.devhost.shipments import process_shipment
from shipgear_exchange_plugin.feeds import AmazonFeeds
from shipgear_exchange_plugin.models import Attempt, Writeback
from shipgear_exchange_plugin.writeback import FEED_MAX_POLLS

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


def _feed_setup(make_app, sandbox, **settings):
    app = make_app(WTF_CSRF_ENABLED=False, SHIPGEAR_SANDBOX_URL=sandbox.url)
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    requests.put(f"{sandbox.url}/_sandbox/amazon/c1/settings",
                 json={"strict_orders": True, **settings}, timeout=5)
    ids = _ship_amazon(app, sandbox, [("111-0000001-0000001", "9001"),
                                      ("111-0000002-0000002", "9002")])
    return app, ids


def _confirm_shipment_calls(sandbox) -> int:
    return sum("shipmentConfirmation" in r["path"]
               for r in sandbox.store.account("amazon", "c1").requests)


def _send_when_due(app, clock: Clock, ids: list[int]) -> dict[int, Writeback]:
    """Each row's next attempt, at the time it is due."""
    with app.app_context():
        engine = service(app, clock)
        for writeback_id in ids:
            clock.to(db.session.get(Writeback, writeback_id, populate_existing=True)
                     .next_attempt_at)
            engine.send(writeback_id)
        return {w.id: w for w in db.session.execute(
            sa.select(Writeback).where(Writeback.id.in_(ids))
            .execution_options(populate_existing=True)).scalars()}


def test_a_feed_whose_worker_died_after_createfeed_is_found_not_confirmed_again(
        make_app, sandbox):
    """The worker is killed once Amazon has queued the feed, before anything is recorded
    (emulated: the claim and the feed are made, then the job's work is dropped). Asking
    Amazon a minute later would find nothing yet, and confirmShipment would ship the
    packages a second time when the feed is processed: the rows wait for the feed."""
    app, ids = _feed_setup(make_app, sandbox, feed_delay_s=1.0)
    clock = Clock()
    with app.app_context():
        engine = service(app, clock)
        feeds = AmazonFeeds(engine, poll_every=1)
        (account_id,) = feeds.accounts_due([1], threshold=2)
        rows = feeds._claim_batch(account_id, 10, {})
        connector = engine._connector_factory(rows[0])
        assert connector.submit_feed([package_of(r) for r in rows]).outcome is Outcome.ACCEPTED
        connector.close()
        db.session.rollback()  # the job is gone with its worker

        clock.now += dt.timedelta(seconds=FAST.claim_stale_after + 1)
        assert engine.release_stale_claims() == 2
        rows = db.session.execute(sa.select(Writeback).where(Writeback.id.in_(ids))).scalars()
        for row in rows:
            assert (row.status, row.error_count, row.needs_check) == ("pending", 1, True)
            assert row.next_attempt_at >= clock.now + dt.timedelta(seconds=FAST.feed_settle)
            assert ("Amazon may have taken the feed: the next attempt waits at least 30 "
                    "minutes") in row.last_error
        # a minute later, when an ordinary interrupted attempt would go again, and support
        # clicking Retry now: still not due
        clock.now += dt.timedelta(seconds=60)
        assert engine.retry_now(1, ids, user_id=None, username="support") == ids
        assert engine.send(ids[0]).action == "skipped"
        assert _confirm_shipment_calls(sandbox) == 0
    time.sleep(1.2)  # Amazon processes the feed meanwhile
    rows = _send_when_due(app, clock, ids)
    assert {(row.status, row.feed_id) for row in rows.values()} == {("success", None)}
    assert _confirm_shipment_calls(sandbox) == 0
    shipped = sandbox.store.account("amazon", "c1").writes
    assert sorted(w["order_id"] for w in shipped) == ["111-0000001-0000001",
                                                      "111-0000002-0000002"]


def test_a_createfeed_answer_that_never_came_waits_for_the_feed(make_app, sandbox):
    """createFeed queued the feed but answered after the read timeout: the same wait, and
    the package is then found on Amazon instead of confirmed again."""
    app, ids = _feed_setup(make_app, sandbox, feed_delay_s=0.5, create_feed_answer_s=1.5)
    clock = Clock()
    with app.app_context():
        feeds = AmazonFeeds(service(app, clock), poll_every=1)
        (account_id,) = feeds.accounts_due([1], threshold=2)
        step = feeds.submit(account_id)
        assert (step.action, step.feed_id) == ("failed", None)
        for row in db.session.execute(sa.select(Writeback).where(Writeback.id.in_(ids))
                                      ).scalars():
            assert (row.status, row.needs_check) == ("pending", True)
            assert row.next_attempt_at >= clock.now + dt.timedelta(seconds=FAST.feed_settle)
            assert "Amazon may have taken the feed" in row.last_error
        assert feeds.accounts_due([1], threshold=2) == []  # not put in another feed either
        # when an ordinary failed attempt would go again, the feed still processing:
        clock.now += dt.timedelta(seconds=FAST.retry_schedule[-1])
        assert [service(app, clock).send(i).action for i in ids] == ["skipped", "skipped"]
        assert _confirm_shipment_calls(sandbox) == 0
    time.sleep(1.5)
    rows = _send_when_due(app, clock, ids)
    assert {row.status for row in rows.values()} == {"success"}
    assert _confirm_shipment_calls(sandbox) == 0
    assert len(sandbox.store.account("amazon", "c1").feeds) == 1


def test_a_feed_that_failed_before_createfeed_is_retried_on_the_usual_schedule(
        make_app, sandbox):
    """A timeout on createFeedDocument leaves no feed at Amazon: no wait, no check."""
    app, ids = _feed_setup(make_app, sandbox)
    requests.put(f"{sandbox.url}/_sandbox/amazon/c1/faults", json={"write_latency_ms": 1500},
                 timeout=5)
    clock = Clock()
    with app.app_context():
        feeds = AmazonFeeds(service(app, clock), poll_every=1)
        (account_id,) = feeds.accounts_due([1], threshold=2)
        assert feeds.submit(account_id).action == "failed"
        for row in db.session.execute(sa.select(Writeback).where(Writeback.id.in_(ids))
                                      ).scalars():
            assert (row.status, row.error_count, row.needs_check) == ("pending", 1, False)
            assert row.next_attempt_at <= clock.now + dt.timedelta(
                seconds=FAST.retry_schedule[0])
    assert sandbox.store.account("amazon", "c1").feeds == {}


def test_a_last_attempt_in_an_unknown_feed_fails_saying_amazon_may_still_ship_it(
        make_app, sandbox):
    """The 5th attempt went in a feed whose createFeed answer was lost: the row fails, but
    support is told to look on Amazon first, and Retry now waits for the feed and then
    finds the package there instead of confirming it again."""
    app, ids = _feed_setup(make_app, sandbox, feed_delay_s=0.5, create_feed_answer_s=1.5)
    with app.app_context():
        db.session.execute(sa.update(Writeback).where(Writeback.id.in_(ids))
                           .values(error_count=4, attempt_count=4))
        db.session.commit()
    clock = Clock()
    with app.app_context():
        engine = service(app, clock)
        feeds = AmazonFeeds(engine, poll_every=1)
        (account_id,) = feeds.accounts_due([1], threshold=2)
        assert feeds.submit(account_id).action == "failed"
        for row in db.session.execute(sa.select(Writeback).where(Writeback.id.in_(ids))
                                      ).scalars():
            assert (row.status, row.error_count) == ("failed", 5)
            assert "Amazon may still ship the package" in row.last_error
            assert "Check the order on Amazon before confirming it by hand" in row.last_error
        assert engine.retry_now(1, ids, user_id=None, username="support") == ids
        rows = db.session.execute(sa.select(Writeback).where(Writeback.id.in_(ids))
                                  .execution_options(populate_existing=True)).scalars().all()
        assert {(r.status, r.error_count, r.needs_check) for r in rows} == {("pending", 0, True)}
        assert min(r.next_attempt_at for r in rows) >= clock.now + dt.timedelta(
            seconds=FAST.feed_settle - 5)
    time.sleep(1.5)
    rows = _send_when_due(app, clock, ids)
    assert {(row.status, row.feed_id) for row in rows.values()} == {("success", None)}
    assert _confirm_shipment_calls(sandbox) == 0


def test_a_feed_amazon_never_processes_is_given_up_and_its_rows_ask_first(make_app, sandbox):
    """After FEED_MAX_POLLS checks the feed counts as a failed attempt; Amazon may still
    process it later, so the next attempt of each row asks Amazon before sending."""
    app, ids = _feed_setup(make_app, sandbox, feed_delay_s=3600)
    clock = Clock()
    with app.app_context():
        feeds = AmazonFeeds(service(app, clock), poll_every=1)
        (account_id,) = feeds.accounts_due([1], threshold=2)
        step = feeds.submit(account_id)
        for _ in range(FEED_MAX_POLLS):
            clock.now += feeds.poll_every
            last = feeds.poll(step.feed_id)
        assert last.action == "failed"
        for row in db.session.execute(sa.select(Writeback).where(Writeback.id.in_(ids))
                                      ).scalars():
            assert (row.status, row.error_count, row.needs_check) == ("pending", 1, True)
            assert f"Amazon had not processed feed {step.feed_id}" in row.last_error


def test_a_feed_of_an_account_turned_off_is_not_polled_until_it_is_on(make_app, sandbox):
    """Turned off after its feed went: no call reaches Amazon for it (no poll, no login)
    and its rows keep their checks; once on again the sweeper's list has it and it maps."""
    from shipgear_exchange_plugin.models import StoreAccount

    app, ids = _feed_setup(make_app, sandbox, feed_delay_s=0)
    clock = Clock()
    with app.app_context():
        feeds = AmazonFeeds(service(app, clock, FAST), poll_every=1)
        (account_id,) = feeds.accounts_due([1], threshold=2)
        step = feeds.submit(account_id)
        assert step.action == "submitted"
        db.session.get(StoreAccount, account_id).enabled = False
        db.session.commit()
        assert feeds.accounts_due([1], threshold=1) == []
        calls = len(sandbox.store.account("amazon", "c1").requests)
        clock.now += feeds.poll_every
        assert feeds.feeds_due() == []
        assert feeds.poll(step.feed_id).action == "skipped"
        assert len(sandbox.store.account("amazon", "c1").requests) == calls
        assert {r.verify_checks for r in db.session.execute(sa.select(Writeback)).scalars()
                } == {0}
        db.session.get(StoreAccount, account_id).enabled = True
        db.session.commit()
        assert feeds.feeds_due() == [step.feed_id]
        deadline = time.monotonic() + 10
        while (result := feeds.poll(step.feed_id)).action == "waiting" and (
                time.monotonic() < deadline):
            time.sleep(0.3)
            clock.now += feeds.poll_every
        assert result.action == "mapped"
