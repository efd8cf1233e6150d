"""The write-back engine on both backends, against the sandbox over real HTTP: attempts
are capped at 5, errors are classified, a send that may have landed is checked before it
is resent, a row is worked by one worker at a time, and lost work is found again."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import requests
import sqlalchemy as sa
from rq import Queue

from shipgear_exchange_plugin import PLUGIN_ID, dispatch
from shipgear_exchange_plugin.devhost.models import PluginCompany, db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.devhost.shipments import process_shipment
from shipgear_exchange_plugin.models import Attempt, AuditEvent, Writeback
from shipgear_exchange_plugin.plugin import state
from shipgear_exchange_plugin.ratelimit import RedisRateLimiter
from shipgear_exchange_plugin.worker import AppWorker
from shipgear_exchange_plugin.writeback import Policy, WritebackService

PLATFORM = "bigcommerce"
FAST = Policy(retry_schedule=(1, 2, 3, 4), verify_schedule=(1, 2, 3), claim_stale_after=60,
              timeout=(1.0, 1.0))


class Clock:
    """The engine's idea of now, moved by the test instead of waiting."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)

    def __call__(self) -> dt.datetime:
        return self.now

    def to(self, when: dt.datetime | None) -> None:
        if when is not None and when > self.now:
            self.now = when


@pytest.fixture
def engine_app(store_host):
    return store_host(companies=2)


def faults(sandbox, **values) -> None:
    answer = requests.put(f"{sandbox.url}/_sandbox/{PLATFORM}/c1/faults", json=values, timeout=5)
    assert answer.status_code == 200, answer.text


def store(sandbox):
    return sandbox.store.account(PLATFORM, "c1")


def ship(app, carrier: str = "UPS", order_id: str = "5001", packages: int = 1,
         company_id: int = 1, platform: str = PLATFORM) -> list[int]:
    """The store has the order (as the host imported it); the desk ships it."""
    host = app.extensions["exchange.host"]
    boxes = [{"tracking_number": f"1Z{order_id}{n}",
              "items": [{"sku": f"SKU-{1000 + n}", "order_item_id": f"{order_id}0{n}",
                         "quantity": 1}]} for n in range(packages)]
    sandbox_url = app.config["SHIPGEAR_SANDBOX_URL"]
    made = requests.post(f"{sandbox_url}/_sandbox/{platform}/c{company_id}/orders", json={
        "orders": [{"order_id": order_id, "items": [i for b in boxes for i in b["items"]]}]},
        timeout=5)
    assert made.status_code == 201, made.text
    with app.app_context():
        shipment = process_shipment(
            host, company_id=company_id, order_source=f"{platform}-{company_id}",
            order_id=order_id, carrier=carrier, service="Ground", packages=boxes)
        return list(db.session.execute(sa.select(Writeback.id).where(
            Writeback.shipment_id == shipment.id).order_by(Writeback.id)).scalars())


def service(app, clock: Clock, policy: Policy = FAST) -> WritebackService:
    return WritebackService(db.session, state(app).credentials, policy=policy, now=clock)


def drive(app, clock: Clock, writeback_id: int, steps: int = 30) -> Writeback:
    """Run the row's due steps one after another, moving the clock instead of sleeping."""
    with app.app_context():
        engine = service(app, clock)
        for _ in range(steps):
            row = db.session.get(Writeback, writeback_id, populate_existing=True)
            if row.status not in ("pending", "submitted"):
                break
            clock.to(row.next_attempt_at)
            (engine.send if row.status == "pending" else engine.verify)(writeback_id)
        row = db.session.get(Writeback, writeback_id, populate_existing=True)
        db.session.expunge_all()
        return row


def attempts(app, writeback_id: int) -> list[Attempt]:
    with app.app_context():
        rows = db.session.execute(sa.select(Attempt).where(
            Attempt.writeback_id == writeback_id).order_by(Attempt.number)).scalars().all()
        db.session.expunge_all()
        return rows


def test_a_write_back_is_accepted_then_verified_on_the_store(engine_app, sandbox):
    """A store that applies a write before answering is read straight back in the same
    job: one send, one read of the order, success."""
    (wid,) = ship(engine_app)
    with engine_app.app_context():
        step = service(engine_app, Clock()).send(wid)
    assert (step.status, step.next_kind) == ("success", None)
    row = drive(engine_app, Clock(), wid)
    assert (row.status, row.error_count, row.verify_checks) == ("success", 0, 1), row.last_error
    assert [a.outcome for a in attempts(engine_app, wid)] == ["accepted"]
    assert [w["tracking_number"] for w in store(sandbox).writes] == ["1Z50010"]
    methods = [r["method"] for r in store(sandbox).requests]
    assert methods.count("POST") == 1 and methods[methods.index("POST") + 1:], methods
    assert set(methods[methods.index("POST") + 1:]) == {"GET"}  # the order, read back


def test_amazon_is_checked_later_because_it_processes_confirmations_after_answering(
        engine_app, sandbox):
    (wid,) = ship(engine_app, platform="amazon", order_id="114-1234567-7654321")
    clock = Clock()
    with engine_app.app_context():
        step = service(engine_app, clock).send(wid)
    assert (step.status, step.next_kind) == ("submitted", "verify")
    assert step.next_at == clock.now + dt.timedelta(seconds=FAST.verify_schedule[0])
    assert drive(engine_app, clock, wid).status == "success"


def test_an_always_failing_store_gets_exactly_five_attempts(engine_app, sandbox):
    faults(sandbox, error_rate=1.0, error_status=503)
    (wid,) = ship(engine_app)
    row = drive(engine_app, Clock(), wid)
    assert (row.status, row.error_count, row.attempt_count) == ("failed", 5, 5)
    assert row.last_error.startswith("Failed after 5 attempts")
    assert [a.number for a in attempts(engine_app, wid)] == [1, 2, 3, 4, 5]
    assert len(store(sandbox).requests) == 5  # one store call per attempt, then nothing
    with engine_app.app_context():  # a late job for the row does nothing
        assert service(engine_app, Clock()).send(wid).action == "skipped"
    assert len(store(sandbox).requests) == 5


def test_an_unknown_carrier_fails_at_once_without_calling_the_store(engine_app, sandbox):
    (wid,) = ship(engine_app, carrier="Pigeon Post")
    row = drive(engine_app, Clock(), wid)
    assert (row.status, row.error_count) == ("failed", 1)
    assert "Pigeon Post" in row.last_error and "will not help" in row.last_error
    assert store(sandbox).requests == []


def test_refused_credentials_fail_at_once_and_say_to_reconnect(engine_app, sandbox):
    faults(sandbox, auth_refused=True)
    (wid,) = ship(engine_app)
    row = drive(engine_app, Clock(), wid)
    assert (row.status, row.error_count) == ("failed", 1)
    assert "reconnect the account" in row.last_error
    assert len(store(sandbox).requests) == 1


def test_retryable_errors_wait_for_the_schedule_or_the_stores_longer_hint(engine_app, sandbox):
    faults(sandbox, error_rate=1.0, error_status=503)
    (wid,) = ship(engine_app)
    clock = Clock()
    with engine_app.app_context():
        step = service(engine_app, clock).send(wid)
    assert step.next_kind == "send"
    assert step.next_at - clock.now >= dt.timedelta(seconds=1)
    slow = Policy(retry_schedule=(2,), verify_schedule=(1,))
    assert slow.retry_delay(1, hint=30) == dt.timedelta(seconds=30)
    assert slow.retry_delay(3, hint=None) == dt.timedelta(seconds=2)


def test_a_send_that_timed_out_is_found_on_the_store_and_not_sent_again(engine_app, sandbox):
    faults(sandbox, write_latency_ms=1500)  # the store takes it, the answer comes too late
    (wid,) = ship(engine_app)
    clock = Clock()
    with engine_app.app_context():
        first = service(engine_app, clock).send(wid)
    assert first.next_kind == "send"
    faults(sandbox, write_latency_ms=0)
    threading.Event().wait(1.0)  # the store finishes handling the first request
    row = drive(engine_app, clock, wid)
    assert row.status == "success"
    outcomes = [a.outcome for a in attempts(engine_app, wid)]
    assert outcomes == ["retryable_error", "verified"]
    posts = [r for r in store(sandbox).requests if r["method"] == "POST"]
    assert len(posts) == 1 and store(sandbox).duplicates() == {}


def test_concurrent_workers_confirm_a_package_once(engine_app, sandbox):
    (wid,) = ship(engine_app)
    clock = Clock()
    barrier = threading.Barrier(12)
    actions = []

    def worker():
        with engine_app.app_context():
            barrier.wait()
            actions.append(service(engine_app, clock).send(wid).action)
            db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(actions) == ["sent"] + ["skipped"] * 11
    assert len(store(sandbox).writes) == 1
    assert len(attempts(engine_app, wid)) == 1


def test_a_stale_claim_is_released_as_an_interrupted_attempt_that_checks_first(engine_app):
    (wid,) = ship(engine_app)
    clock = Clock()
    with engine_app.app_context():
        engine = service(engine_app, clock)
        assert engine._claim(wid, "pending", reserve_attempt=True) is not None  # then "killed"
        clock.now += dt.timedelta(seconds=61)
        assert engine.release_stale_claims() == 1
        row = db.session.get(Writeback, wid, populate_existing=True)
        assert (row.claimed_by, row.error_count, row.needs_check) == (None, 1, True)
    assert [(a.number, a.outcome) for a in attempts(engine_app, wid)] == [(1, "interrupted")]


class Meanwhile:
    """A throttle that lets the store call go, but first makes something happen in another
    thread (with its own session), as if the worker had stalled in the rate limiter."""

    def __init__(self, app, what) -> None:
        self.app, self.what, self.done = app, what, False

    def wait_for(self, account_id, platform, api) -> float:
        if not self.done:
            self.done = True
            thread = threading.Thread(target=self._run)
            thread.start()
            thread.join(30)
        return 0.0

    def _run(self) -> None:
        with self.app.app_context():
            self.what()
            db.session.remove()


def sweeper_at(app, when: dt.datetime):
    def sweep():
        assert service(app, lambda: when).release_stale_claims() == 1
    return sweep


def test_a_worker_that_lost_its_claim_records_nothing_and_the_next_attempt_checks_first(
        engine_app, sandbox):
    """A worker stalls; the sweeper takes its row as interrupted. The stalled worker's
    send still lands, but its result must not be written over the sweeper's: the next
    attempt asks the store first, finds the package, and sends nothing more."""
    (wid,) = ship(engine_app)
    clock = Clock()
    later = clock.now + dt.timedelta(seconds=FAST.claim_stale_after + 1)
    with engine_app.app_context():
        stalled = WritebackService(db.session, state(engine_app).credentials, policy=FAST,
                                   now=clock, throttle=Meanwhile(engine_app,
                                                                 sweeper_at(engine_app, later)))
        assert stalled.send(wid).action == "lost"
        db.session.remove()
    assert len(store(sandbox).writes) == 1  # the stalled send did reach the store
    clock.to(later)
    row = drive(engine_app, clock, wid)
    assert (row.status, row.attempt_count, row.error_count) == ("success", 2, 1)
    assert [(a.number, a.outcome) for a in attempts(engine_app, wid)] == [
        (1, "interrupted"), (2, "verified")]
    assert len(store(sandbox).writes) == 1 and store(sandbox).duplicates() == {}


def test_a_slow_worker_renews_its_claim_so_the_sweeper_leaves_it(engine_app, sandbox):
    (wid,) = ship(engine_app)
    clock = Clock()
    start = clock.now

    def time_passes():  # the worker stalled for half the stale time before calling
        clock.now = start + dt.timedelta(seconds=FAST.claim_stale_after / 2)

    with engine_app.app_context():
        slow = WritebackService(db.session, state(engine_app).credentials, policy=FAST,
                                now=clock, throttle=Meanwhile(engine_app, time_passes))
        assert slow.send(wid).action == "sent"
        sweeper = service(engine_app, lambda: start + dt.timedelta(
            seconds=FAST.claim_stale_after + 1))
        assert sweeper.release_stale_claims() == 0
        db.session.remove()
    assert [(a.number, a.outcome) for a in attempts(engine_app, wid)] == [(1, "accepted")]


def test_a_worker_that_finds_its_claim_gone_before_calling_sends_nothing(engine_app, sandbox):
    (wid,) = ship(engine_app)
    clock = Clock()
    start = clock.now
    sweep = sweeper_at(engine_app, start + dt.timedelta(seconds=FAST.claim_stale_after + 1))

    def stalled_then_swept():
        sweep()
        clock.now = start + dt.timedelta(seconds=FAST.claim_stale_after / 2)

    with engine_app.app_context():
        stalled = WritebackService(db.session, state(engine_app).credentials, policy=FAST,
                                   now=clock, throttle=Meanwhile(engine_app,
                                                                 stalled_then_swept))
        assert stalled.send(wid).action == "lost"
        db.session.remove()
    assert store(sandbox).writes == []
    assert [(a.number, a.outcome) for a in attempts(engine_app, wid)] == [(1, "interrupted")]


def test_a_claim_shorter_than_a_store_call_is_refused():
    with pytest.raises(ValueError, match="SHIPGEAR_CLAIM_STALE_AFTER"):
        Policy(claim_stale_after=20, timeout=(3.05, 15.0))


def test_retry_now_and_mark_confirmed_are_audited(engine_app, sandbox):
    faults(sandbox, auth_refused=True)
    first, second = ship(engine_app, packages=2)
    clock = Clock()
    assert drive(engine_app, clock, first).status == "failed"
    faults(sandbox, auth_refused=False)
    with engine_app.app_context():
        engine = service(engine_app, clock)
        assert engine.retry_now(1, [first], 7, "support") == [first]
        assert engine.retry_now(2, [second], 7, "support") == []  # another company's row
        row = db.session.get(Writeback, first, populate_existing=True)
        assert (row.status, row.error_count, row.needs_check) == ("pending", 0, True)
    assert drive(engine_app, clock, first).status == "success"
    assert [a.number for a in attempts(engine_app, first)] == [1, 2]
    with engine_app.app_context():
        engine = service(engine_app, clock)
        assert engine.mark_confirmed(1, second, 7, "support", "done in the admin").status == (
            "manual")
        events = db.session.execute(sa.select(AuditEvent.action, AuditEvent.username,
                                              AuditEvent.target)).all()
    assert (("writeback.retry_now", "support", f"writeback:{first}") in events
            and ("writeback.mark_confirmed", "support", f"writeback:{second}") in events)


def test_committed_shipments_are_enqueued_and_the_sweeper_recovers_lost_jobs(engine_app,
                                                                              sandbox):
    host = engine_app.extensions["exchange.host"]
    (wid,) = ship(engine_app)
    queue = Queue(dispatch.QUEUE, connection=host.redis())
    with engine_app.app_context():
        due = db.session.get(Writeback, wid).next_attempt_at
    assert queue.job_ids == [dispatch.job_id("send", wid, 1, due)]
    from shipgear_exchange_plugin.jobs.writeback import sweep

    with engine_app.app_context():  # the outbox's job is the one the sweeper looks for
        assert sweep()["enqueued"] == 0
    assert len(queue.job_ids) == 1
    host.redis().flushdb()  # Redis restarted: it kept nothing
    with engine_app.app_context():
        assert sweep()["enqueued"] == 1
        assert sweep()["enqueued"] == 0  # the job is alive: nothing doubled
    worker = AppWorker([queue], connection=host.redis(), app=engine_app)
    worker.work(burst=True)
    with engine_app.app_context():
        row = db.session.get(Writeback, wid)
        assert row.status == "success"  # sent and read back by the one job
        assert len(store(sandbox).writes) == 1


def test_a_disabled_company_waits_and_resumes_when_enabled(engine_app, sandbox):
    from shipgear_exchange_plugin.jobs.writeback import send, sweep

    (wid,) = ship(engine_app)
    with engine_app.app_context():
        db.session.delete(db.session.get(PluginCompany, (PLUGIN_ID, 1)))
        db.session.commit()
        assert send(wid).startswith("waiting")
        assert sweep()["due"] == 0
        db.session.add(PluginCompany(plugin_id=PLUGIN_ID, company_id=1))
        db.session.commit()
        assert sweep()["due"] == 1
        assert send(wid) == "sent"
    assert len(store(sandbox).writes) == 1


def test_a_disabled_store_account_waits_and_resumes_when_enabled(engine_app, sandbox):
    """An admin turned the account off (the shop is closed for now): its shipments keep
    their rows, nothing is sent and the sweeper leaves them be; other accounts go on."""
    from shipgear_exchange_plugin.jobs.writeback import send, sweep
    from shipgear_exchange_plugin.models import StoreAccount

    (wid,) = ship(engine_app)
    (other,) = ship(engine_app, order_id="6001", platform="shopify")
    with engine_app.app_context():
        account = db.session.get(Writeback, wid).account
        account.enabled = False
        db.session.commit()
        assert send(wid).startswith("waiting")
        assert sweep()["due"] == 1  # only the Shopify row
        assert send(other) == "sent"
        db.session.get(StoreAccount, account.id).enabled = True
        db.session.commit()
        assert sweep()["due"] == 1
        assert send(wid) == "sent"
        assert db.session.get(Writeback, wid).attempt_count == 1  # the wait cost no attempt
    assert len(store(sandbox).writes) == 1


def test_the_shared_rate_limiter_spans_workers(engine_app):
    from shipgear_exchange_plugin.connectors import Api

    host = engine_app.extensions["exchange.host"]
    limits = {"shopify": {None: (1.0, 3)}}
    one, two = RedisRateLimiter(host.redis(), limits), RedisRateLimiter(host.redis(), limits)
    waits = [limiter.wait_for(99, "shopify", Api.WRITEBACK) for limiter in (one, two, one, two)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.5 < waits[3] <= 1.0
    assert one.wait_for(99, "woocommerce-unknown", Api.WRITEBACK) == 0.0


def test_callers_turned_away_are_told_to_come_back_one_at_a_time(engine_app):
    """Five jobs find the bucket empty: each is told a different time, a token's worth
    (1/rate) after the one before, instead of all the same time (when one would get the
    token and four would be turned away again). Back at its time, a job finds a token."""
    import time

    from shipgear_exchange_plugin.connectors import Api

    host = engine_app.extensions["exchange.host"]
    limiter = RedisRateLimiter(host.redis(), {"amazon": {Api.ORDERS: (4.0, 2)}})
    assert [limiter.wait_for(5, "amazon", Api.ORDERS) for _ in range(2)] == [0.0, 0.0]
    waits = [limiter.wait_for(5, "amazon", Api.ORDERS) for _ in range(5)]
    assert 0.2 < waits[0] <= 0.25
    gaps = [later - earlier for earlier, later in zip(waits, waits[1:], strict=False)]
    assert all(0.2 < gap <= 0.25 for gap in gaps), waits
    time.sleep(waits[0])
    assert limiter.wait_for(5, "amazon", Api.ORDERS) == 0.0  # its token is there
    time.sleep(waits[-1] - waits[0] + 0.3)  # every promised time has passed
    assert limiter.wait_for(5, "amazon", Api.ORDERS) == 0.0
    assert limiter.wait_for(5, "amazon", Api.ORDERS) == 0.0  # the bucket refilled to 2
    assert 0.2 < limiter.wait_for(5, "amazon", Api.ORDERS) <= 0.25  # no old promise left


def test_promised_times_nobody_came_back_for_are_given_back(engine_app):
    """Five jobs are told to come back over the next 1.25 s, and none does (their rows
    went into an Amazon feed instead): the tokens that pile up meanwhile pull the promised
    times back, so the next job turned away waits less than behind all five."""
    import time

    from shipgear_exchange_plugin.connectors import Api

    host = engine_app.extensions["exchange.host"]
    limiter = RedisRateLimiter(host.redis(), {"amazon": {Api.ORDERS: (4.0, 2)}})
    assert [limiter.wait_for(6, "amazon", Api.ORDERS) for _ in range(2)] == [0.0, 0.0]
    promised = [limiter.wait_for(6, "amazon", Api.ORDERS) for _ in range(5)]
    assert 1.2 < promised[-1] <= 1.25
    time.sleep(0.5)  # two tokens unclaimed: the bucket is full again
    assert [limiter.wait_for(6, "amazon", Api.ORDERS) for _ in range(2)] == [0.0, 0.0]
    wait = limiter.wait_for(6, "amazon", Api.ORDERS)
    assert 0.2 < wait < 0.85  # behind all five promises it would be about 1.0 s


def test_a_jobs_store_calls_are_counted_for_connection_status(engine_app, sandbox):
    """The job counts its calls together when it ends: Connection Status sees each one."""
    from shipgear_exchange_plugin import callstats, runtime
    from shipgear_exchange_plugin.connectors import Api

    faults(sandbox, error_rate=1.0, error_status=503)
    (wid,) = ship(engine_app)
    host = engine_app.extensions["exchange.host"]
    with engine_app.app_context():
        account_id = db.session.get(Writeback, wid).account_id
        assert runtime.writeback_service(host).send(wid).status == "pending"
        stats = callstats.read_many(host.redis(), [(account_id, Api.WRITEBACK),
                                                   (account_id, Api.ORDERS)],
                                    dt.datetime.now(dt.UTC), 15)
    calls = [r for r in store(sandbox).requests]
    assert sum(s.calls for s in stats.values()) == len(calls) >= 1
    assert sum(s.failed for s in stats.values()) == len(calls)


def test_configured_rate_limits_replace_the_defaults_for_every_worker(make_app, sandbox):
    """SHIPGEAR_RATE_LIMITS sets our shared budget for a store (a larger plan, or a share
    kept for other apps): at 1 call per second with no burst, a second call right after the
    first waits about a second, whichever worker makes it."""
    from shipgear_exchange_plugin import runtime
    from shipgear_exchange_plugin.connectors import Api

    app = make_app(SHIPGEAR_SANDBOX_URL=sandbox.url,
                   SHIPGEAR_RATE_LIMITS="bigcommerce=1/1, amazon.orders=0.2/2")
    host = app.extensions["exchange.host"]
    with app.app_context():
        one, two = runtime.rate_limiter(host), runtime.rate_limiter(host)
        assert one.budget("bigcommerce", Api.ORDERS) == ("all", (1.0, 1.0))
        assert one.budget("amazon", Api.ORDERS) == ("orders", (0.2, 2.0))
        assert one.budget("amazon", Api.WRITEBACK) == ("writeback", (1.8, 9))  # default kept
        assert one.wait_for(7, "bigcommerce", Api.WRITEBACK) == 0
        assert 0.8 < two.wait_for(7, "bigcommerce", Api.WRITEBACK) <= 1.0


@pytest.mark.parametrize("bad", ["bigcommerce=fast", "ebay=1/1", "shopify.refunds=1/1",
                                 "woocommerce=0/5", "bigcommerce=2", "shopify=nan/nan",
                                 "shopify=inf/10"])
def test_a_bad_rate_limit_setting_stops_the_app_saying_which_entry(make_app, bad):
    with pytest.raises(ValueError, match=f"SHIPGEAR_RATE_LIMITS: '{bad}'"):
        make_app(SHIPGEAR_RATE_LIMITS=bad)


def test_a_stale_claim_is_left_to_the_sweeper_not_taken_over_by_a_job(engine_app, sandbox):
    """A job that meets a row whose worker died does not take it: only the sweeper
    releases it, counting the attempt as interrupted, so the next attempt asks first."""
    (wid,) = ship(engine_app)
    clock = Clock()
    with engine_app.app_context():
        dead = service(engine_app, clock)
        assert isinstance(dead._claim(wid, "pending", reserve_attempt=True), Writeback)
        clock.now += dt.timedelta(seconds=FAST.claim_stale_after + 1)
        assert service(engine_app, clock).send(wid).action == "skipped"
        assert service(engine_app, clock).release_stale_claims() == 1
        assert db.session.get(Writeback, wid, populate_existing=True).needs_check is True
    assert drive(engine_app, clock, wid).status == "success"
    assert [(a.number, a.outcome) for a in attempts(engine_app, wid)] == [
        (1, "interrupted"), (2, "accepted")]
    assert len(store(sandbox).writes) == 1


class ReadBackBreaks:
    """The real connector, except that reading an order back raises (a connector bug)."""

    def __init__(self, connector) -> None:
        self.connector = connector
        self.shows_writes_at_once = True
        self.write_back = connector.write_back
        self.close = connector.close

    def verify(self, package):
        raise RuntimeError("read-back bug")


def test_a_read_back_that_fails_leaves_the_accepted_write_to_the_scheduled_checks(
        engine_app, sandbox):
    (wid,) = ship(engine_app)
    with engine_app.app_context():
        engine = service(engine_app, Clock())
        engine._connector_factory = lambda row: ReadBackBreaks(engine._connector(row))
        step = engine.send(wid)
    assert (step.status, step.next_kind) == ("submitted", "verify")
    row = drive(engine_app, Clock(), wid)
    assert (row.status, row.error_count) == ("success", 0)
    assert [a.outcome for a in attempts(engine_app, wid)] == ["accepted"]
    assert len(store(sandbox).writes) == 1


def test_retry_now_leaves_a_row_that_a_worker_is_sending_to_that_worker(engine_app, sandbox):
    """Taking the row from a worker in the middle of its send could send it twice: the
    attempt in flight is the retry, and it records its outcome as usual."""
    (wid,) = ship(engine_app)
    clock = Clock()

    def user_clicks_retry_now():
        assert service(engine_app, clock).retry_now(1, [wid], None, "support") == [wid]

    with engine_app.app_context():
        busy = WritebackService(db.session, state(engine_app).credentials, policy=FAST,
                                now=clock, throttle=Meanwhile(engine_app, user_clicks_retry_now))
        assert busy.send(wid).action == "sent"
        db.session.remove()
    row = drive(engine_app, clock, wid)
    assert row.status == "success" and len(store(sandbox).writes) == 1
    assert [a.outcome for a in attempts(engine_app, wid)] == ["accepted"]


def test_a_job_the_worker_put_back_for_later_is_not_taken_for_lost(engine_app):
    """A job scheduled again by the worker (the database was unreachable) keeps its id:
    the sweeper sees it alive in RQ's scheduled registry instead of adding another."""
    host = engine_app.extensions["exchange.host"]
    (wid,) = ship(engine_app)
    queue = Queue(dispatch.QUEUE, connection=host.redis())
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    job = dispatch.enqueue(queue, "send", wid, 1, long_ago)  # queued, then retried later:
    queue.remove(job)
    queue.schedule_job(job, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    assert dispatch.ensure_jobs(queue, [(wid, "send", 1, long_ago)]) == 0
    host.redis().zrem(queue.scheduled_job_registry.key, job.id)  # the schedule was lost
    assert dispatch.ensure_jobs(queue, [(wid, "send", 1, long_ago)]) == 1


def test_a_sweeper_killed_holding_its_lock_holds_the_others_off_for_a_few_intervals(
        make_app, sandbox):
    """The lock a killed sweeper leaves behind expires after a few sweep intervals (it
    was 5 minutes: after Redis restarted empty, nothing was enqueued for that long)."""
    from shipgear_exchange_plugin.jobs.locks import once
    from shipgear_exchange_plugin.jobs.writeback import sweep, sweep_lock_seconds

    app = make_app(SHIPGEAR_SANDBOX_URL=sandbox.url, SHIPGEAR_SWEEP_INTERVAL=1)
    host = app.extensions["exchange.host"]
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
        dead = once(host.redis(), "sweep", sweep_lock_seconds(1))
        assert dead.__enter__() is True  # the sweeper took the lock, then was SIGKILLed
        assert sweep() == {"skipped": 1}
        threading.Event().wait(sweep_lock_seconds(1) + 0.5)
        assert "skipped" not in sweep()
    assert sweep_lock_seconds(30) <= 90


def test_a_claim_whose_job_lost_the_database_is_released_once_by_the_next_job(engine_app):
    """The job's note (row, worker) is released by the next job of the process: the
    attempt counts as interrupted and the next one asks the store first. A note whose
    claim is no longer that job's (another worker holds the row now) changes nothing, and
    a note older than the stale time is left to the sweeper."""
    import time

    from shipgear_exchange_plugin import writeback as engine

    clock = Clock()
    (first,), (second,) = ship(engine_app), ship(engine_app, order_id="5002")
    with engine_app.app_context():
        for wid, worker in ((first, "w-lost"), (second, "w-alive")):
            row = db.session.get(Writeback, wid)
            row.claimed_by, row.claimed_at, row.attempt_count = worker, clock(), 1
        db.session.commit()
        engine._ORPHANED.clear()
        engine._ORPHANED[(first, "w-lost")] = engine._Orphan(time.monotonic())
        engine._ORPHANED[(second, "w-gone")] = engine._Orphan(time.monotonic())  # w-alive's now
        engine._ORPHANED[(999, "w-old")] = engine._Orphan(
            time.monotonic() - FAST.claim_stale_after - 1)
        assert service(engine_app, clock).release_orphaned_claims() == 1
        assert engine._ORPHANED == {}
        assert service(engine_app, clock).release_orphaned_claims() == 0
        lost, alive = db.session.get(Writeback, first), db.session.get(Writeback, second)
        assert lost.claimed_by is None and lost.needs_check and lost.error_count == 1
        assert alive.claimed_by == "w-alive" and alive.error_count == 0
        db.session.remove()
    assert [(a.number, a.outcome) for a in attempts(engine_app, first)] == [(1, "interrupted")]
    assert attempts(engine_app, second) == []


def test_checks_of_accepted_write_backs_go_ahead_of_a_backlog_of_sends(engine_app):
    """During a burst of new shipments a due check does not wait behind every send: it
    is queued at the front, whether it is due now or comes due later (RQ's scheduler
    moves it to the front then)."""
    import time

    from rq.scheduler import RQScheduler

    host = engine_app.extensions["exchange.host"]
    queue = Queue(dispatch.QUEUE, connection=host.redis())
    now = dt.datetime.now(dt.UTC)
    sends = [dispatch.enqueue(queue, "send", wid, 1, now).id for wid in (101, 102, 103)]
    due_now = dispatch.enqueue(queue, "verify", 104, 0, now - dt.timedelta(seconds=1)).id
    assert queue.get_job_ids() == [due_now, *sends]
    later = dispatch.enqueue(queue, "verify", 105, 0, now + dt.timedelta(seconds=1)).id
    assert later not in queue.get_job_ids()  # scheduled, not queued yet
    time.sleep(max(0.0, (now + dt.timedelta(seconds=2.1) - dt.datetime.now(dt.UTC))
                   .total_seconds()))
    scheduler = RQScheduler([queue], connection=host.redis())
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    assert queue.get_job_ids() == [later, due_now, *sends]


def test_a_row_amazon_took_in_a_feed_waits_for_that_feed_after_the_database_came_back(
        engine_app):
    """The feed job lost the database after Amazon had taken the feed: the release
    records the attempt as accepted in that feed and leaves the row waiting for the
    feed's report, due for a poll at once, instead of counting an interrupted attempt
    that would send the package again while Amazon still processes the feed."""
    import time

    from shipgear_exchange_plugin import writeback as engine

    clock = Clock()
    (wid,) = ship(engine_app)
    with engine_app.app_context():
        row = db.session.get(Writeback, wid)
        row.claimed_by, row.claimed_at, row.attempt_count = "w-feed", clock(), 1
        db.session.commit()
        engine._ORPHANED.clear()
        engine._ORPHANED[(wid, "w-feed")] = engine._Orphan(time.monotonic(), "50001018")
        assert service(engine_app, clock).release_orphaned_claims() == 1
        assert engine._ORPHANED == {}
        row = db.session.get(Writeback, wid)
        assert (row.status, row.feed_id, row.claimed_by, row.error_count) == (
            "submitted", "50001018", None, 0)
        assert row.next_attempt_at <= clock() and not row.needs_check
        db.session.remove()
    assert [(a.number, a.outcome) for a in attempts(engine_app, wid)] == [(1, "accepted")]
