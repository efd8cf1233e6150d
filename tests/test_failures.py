"""Failure behaviour (issue #6, item 5): what the user sees when PostgreSQL, Redis, the
disk or a store fails, and that nothing recorded is lost.

Every outage here is real and private to the test: the apps and workers reach
PostgreSQL through a TCP gate of the test's own (tests/services.py) that it closes, which
refuses new connections and cuts open ones as a lost database host would; Redis is a
redis-server of the test's own that it kills; the database server's disk space for a
sort is capped for one app's sessions (``temp_file_limit``), which fails the statement as
a full disk does; the stores are the sandbox with its outage faults. The shared
PostgreSQL server and Redis are never stopped or changed.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
import sqlalchemy as sa
import yaml

from shipgear_exchange_plugin import dispatch
from shipgear_exchange_plugin.devhost import normalise_database_url
from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.devhost.shipments import process_shipment
from shipgear_exchange_plugin.models import Attempt, StoreAccount, Writeback, utcnow
from shipgear_exchange_plugin.paths import OPENAPI_PATH

from .conftest import PG_URL, ROOT, SERVICES_ONLY
from .services import PgGate, RedisProcess, WorkerProcess, worker_env
from .test_openapi import Contract

SERVICES = SERVICES_ONLY  # an outage of PostgreSQL or Redis needs the real servers

BASE = "/companies/1/ecommerce"
HTMX_GRID = {"HX-Request": "true", "HX-Target": "orders-region"}
JSON = {"Accept": "application/json"}
#: Write-backs queued when the database goes away.
ROWS = 8
#: The worker processes' clocks, fast: the same code paths in seconds instead of minutes.
WORKER_SETTINGS = {
    "SHIPGEAR_RETRY_SCHEDULE": "1,1,1,1",
    "SHIPGEAR_VERIFY_SCHEDULE": "0.5,1,2",
    "SHIPGEAR_SWEEP_INTERVAL": "1",
    "SHIPGEAR_CLAIM_STALE_AFTER": "10",
    "SHIPGEAR_HTTP_TIMEOUT": "1,5",
    "SHIPGEAR_HEALTH_EVERY": "3600",
    "SHIPGEAR_PRODUCTS_EVERY": "86400",
    "SHIPGEAR_WORKER_BACKOFF": "1,4",
}


# -- helpers ------------------------------------------------------------------------------
def signed_in(app, username: str = "viewer"):
    client = app.test_client()
    answer = client.post("/login", data={"username": username, "password": "demo"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return client


def recorded(url: str) -> list[tuple]:
    """Every write-back row and attempt as stored, read straight from PostgreSQL (not
    through the gate): what must survive an outage unchanged."""
    engine = sa.create_engine(normalise_database_url(url), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(
                Writeback.id, Writeback.status, Writeback.error_count,
                Writeback.attempt_count, Writeback.tracking_number, Writeback.last_error,
                Writeback.next_attempt_at).order_by(Writeback.id)).all()
            attempts = connection.execute(sa.select(Attempt.writeback_id, Attempt.number,
                                                    Attempt.outcome)
                                          .order_by(Attempt.id)).all()
    finally:
        engine.dispose()
    return [tuple(r) for r in rows] + [("attempt", *a) for a in attempts]


def ship(app, order_id: str, tracking: str, platform: str = "bigcommerce",
         company_id: int = 1) -> int:
    """The store has the order; the desk ships one package of it. The write-back row id."""
    host = app.extensions["exchange.host"]
    sandbox_url = app.config["SHIPGEAR_SANDBOX_URL"]
    items = [{"sku": "SKU-1000", "order_item_id": f"{order_id}01", "quantity": 1}]
    made = requests.post(f"{sandbox_url}/_sandbox/{platform}/c{company_id}/orders",
                         json={"orders": [{"order_id": order_id, "items": items}]}, timeout=5)
    assert made.status_code == 201, made.text
    with app.app_context():
        shipment = process_shipment(host, company_id=company_id,
                                    order_source=f"{platform}-{company_id}", order_id=order_id,
                                    carrier="UPS", service="Ground",
                                    packages=[{"tracking_number": tracking, "items": items}])
        row_id = db.session.execute(sa.select(Writeback.id).where(
            Writeback.shipment_id == shipment.id)).scalar_one()
        db.session.remove()
    return row_id


def rows_by_status(app) -> dict[str, int]:
    with app.app_context():
        counts = dict(db.session.execute(sa.select(Writeback.status, sa.func.count())
                                         .group_by(Writeback.status)).all())
        db.session.remove()
    return counts


def wait_until(check, seconds: float, what, interval: float = 0.2):
    """``check()`` once it is truthy; ``what`` (text, or a function giving it at the time
    of failure) says what did not happen."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, (
            f"not within {seconds} s: {what() if callable(what) else what}")
        time.sleep(interval)


def assert_clear_503(answer, *words: str) -> str:
    """A 503 page that says what happened, asks to come back later and shows no trace."""
    html = answer.get_data(as_text=True)
    assert answer.status_code == 503, html[:500]
    assert answer.mimetype == "text/html"
    assert int(answer.headers["Retry-After"]) > 0
    assert "Content-Disposition" not in answer.headers  # the page shows, no file is saved
    for word in words:
        assert word in html, (word, html[:2000])
    assert "Traceback" not in html and "psycopg" not in html and "sqlalchemy" not in html
    return html


@pytest.fixture
def gate():
    """PostgreSQL behind a gate of this test's own (open at the start)."""
    if not PG_URL:
        pytest.fail("SHIPGEAR_TEST_DATABASE_URL is not set")
    gate = PgGate(PG_URL).open()
    yield gate
    gate.close()


@pytest.fixture
def contract() -> Contract:
    return Contract(yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8")))


# -- 1. PostgreSQL down: the pages ---------------------------------------------------------
@SERVICES
def test_a_lost_database_is_a_clear_503_on_every_page_and_nothing_recorded_is_lost(
        make_app, gate, contract):
    app = make_app(WTF_CSRF_ENABLED=False, DATABASE_URL=gate.url,
                   SHIPGEAR_METRICS_TOKEN="scrape-token")
    with app.app_context():
        seed(app, companies=2, shipments=60)
        failed = db.session.execute(sa.select(Writeback.id).where(
            Writeback.company_id == 1, Writeback.status == "failed")).scalars().first()
        db.session.remove()
    viewer, support = signed_in(app, "viewer"), signed_in(app, "support")
    assert viewer.get(f"{BASE}/").status_code == 200
    before = recorded(PG_URL)

    gate.close()
    page = assert_clear_503(viewer.get(f"{BASE}/", query_string={"status": "failed"}),
                            "The database is unreachable", "Nothing recorded is lost",
                            "tries again by itself in 30 seconds")
    assert page.count('http-equiv="refresh" content="30"') == 1
    assert f'href="{BASE}/?status=failed"' in page  # Try again: the same view
    assert viewer.get(f"{BASE}/").headers["Retry-After"] == "30"
    # htmx swaps no 5xx answer: the grid and the panel refresh reload the page instead,
    # which then shows the 503 page above rather than a grid that silently stays stale.
    for path, headers in ((f"{BASE}/", HTMX_GRID), (f"{BASE}/status", {"HX-Request": "true"})):
        partial = viewer.get(path, headers=headers)
        assert partial.status_code == 503 and partial.headers["HX-Refresh"] == "true"
    assert_clear_503(viewer.get(f"{BASE}/orders/export.csv"), "The database is unreachable")
    for path in ("/status.json", "/orders.json", "/products.json"):
        answer = viewer.get(BASE + path)
        assert answer.headers["Retry-After"] == "30"
        contract.check("GET", path, answer)
        assert answer.status_code == 503 and "cannot be reached" in answer.get_json()["error"]
    retry = support.post(f"{BASE}/orders/{failed}/retry", headers=JSON)
    contract.check("POST", "/orders/{writeback_id}/retry", retry)
    assert retry.status_code == 503
    scrape = app.test_client().get("/metrics",
                                    headers={"Authorization": "Bearer scrape-token"})
    assert (scrape.status_code, scrape.mimetype) == (503, "text/plain")  # target down
    # A host layout that cannot render without the database: the page stands alone.
    host = app.extensions["exchange.host"]
    host.base_template = "no-such-layout.html"
    try:
        alone = assert_clear_503(viewer.get(f"{BASE}/"), "The database is unreachable")
    finally:
        del host.base_template
    assert alone.startswith("<!doctype html>") and "<title>eCommerce unavailable</title>" in alone
    assert "shipgear.css" in alone and 'http-equiv="refresh"' in alone

    gate.open()  # the database is back: the same session works again, nothing is missing
    again = viewer.get(f"{BASE}/", query_string={"status": "failed"})
    assert again.status_code == 200 and 'class="sgx-row"' in again.get_data(as_text=True)
    assert viewer.get(f"{BASE}/orders.json").status_code == 200
    assert recorded(PG_URL) == before


# -- 3. Full disk for an export ------------------------------------------------------------
#: This app's sessions may spill no byte of a sort to disk: the database server's
#: temporary space is full for them (SQLSTATE 53400, answered like disk_full, 53100). With
#: no index scans the export sorts, as PostgreSQL plans it for a large share of a big
#: table, and a sort over work_mem spills.
NO_TEMP_SPACE = {"connect_args": {"options": "-c work_mem=64kB -c temp_file_limit=0 "
                                             "-c enable_indexscan=off -c enable_bitmapscan=off "
                                             "-c enable_indexonlyscan=off"}}


def export_bytes(client, **params) -> bytes:
    answer = client.get(f"{BASE}/orders/export.csv", query_string=params)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return answer.get_data()


@SERVICES
def test_an_export_the_database_has_no_disk_space_for_is_a_clear_503(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        seed(app, companies=1, shipments=1500, enabled=1)
    full = export_bytes(signed_in(app))
    assert full.count(b"\n") > 1500  # the sort needs more than work_mem: it spills to disk
    before = recorded(PG_URL)

    full_disk = make_app(WTF_CSRF_ENABLED=False, SQLALCHEMY_ENGINE_OPTIONS=NO_TEMP_SPACE)
    viewer = signed_in(full_disk)
    assert_clear_503(viewer.get(f"{BASE}/orders/export.csv"),
                     "The database server is out of disk space", "Nothing was changed",
                     "narrower filter", f'href="{BASE}/orders/export.csv"')
    # What fits in memory still downloads from the same app.
    manual = export_bytes(viewer, status="manual")
    assert manual.startswith(b"order_id,") and b",manual," in manual
    assert recorded(PG_URL) == before
    assert export_bytes(signed_in(app)) == full  # nothing lost: the same file as before


@SERVICES
def test_a_database_lost_during_a_download_is_a_503_or_a_failed_download(make_app, gate):
    """Over real HTTP, as a browser gets it. Lost before the first block: the clear 503
    page (and not a 500 from the request's dead connection at teardown). Lost after it
    (the status line is out): the server cuts the connection and the browser reports the
    download failed, never a short file that looks complete."""
    from shipgear_exchange_plugin.sandbox import SandboxServer

    app = make_app(WTF_CSRF_ENABLED=False, DATABASE_URL=gate.url)
    with app.app_context():
        seed(app, companies=1, shipments=3000, enabled=1)
    server = SandboxServer(app).start()  # any WSGI app on a real socket
    try:
        browser = requests.Session()
        assert browser.post(f"{server.url}/login", data={"username": "viewer",
                            "password": "demo"}, allow_redirects=False, timeout=10
                            ).status_code == 302
        url = f"{server.url}{BASE}/orders/export.csv"
        full = browser.get(url, timeout=30).content
        assert len(full) > 400_000

        gate.cut_after(20_000)  # gone while the first block is read
        early = browser.get(url, timeout=30)
        assert (early.status_code, early.headers["Retry-After"]) == (503, "30"), early.text
        assert "The database is unreachable" in early.text and "Traceback" not in early.text

        gate.open()
        gate.cut_after(150_000)  # gone while the rows stream
        got = bytearray()
        with browser.get(url, stream=True, timeout=30) as answer:
            assert answer.status_code == 200  # sent with the first block, before the cut
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                for block in answer.iter_content(16384):
                    got += block
        assert 0 < len(got) < len(full) and full.startswith(bytes(got))

        gate.open()
        assert browser.get(url, timeout=30).content == full  # nothing lost
    finally:
        server.stop()


#: Runs the export in a process that may not write a single byte to any file.
NO_FILE_WRITES = r"""
import hashlib, json, os, resource, signal, sys, tempfile
from shipgear_exchange_plugin.devhost import create_app
config = json.loads(sys.argv[1])
app = create_app(config)
client = app.test_client()
assert client.post("/login", data={"username": "viewer", "password": "demo"}).status_code == 302
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
try:
    with tempfile.TemporaryFile() as probe:
        probe.write(b"x"); probe.flush()
    refused = False
except OSError:
    refused = True
answer = client.get("/companies/1/ecommerce/orders/export.csv")
body = answer.get_data()
print(json.dumps({"refused": refused, "status": answer.status_code,
                  "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}))
"""


@SERVICES
def test_the_web_side_writes_no_file_for_an_export(make_app, tmp_path):
    """Nothing is spooled on this side, so a full disk here cannot break a download: a
    process whose every file write fails (RLIMIT_FSIZE 0) serves the very same bytes."""
    import hashlib
    import json

    app = make_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        seed(app, companies=1, shipments=1500, enabled=1)
    full = export_bytes(signed_in(app))
    config = {"TESTING": True, "SECRET_KEY": "test-secret", "WTF_CSRF_ENABLED": False,
              "SHIPGEAR_ENCRYPTION_KEY": app.config["SHIPGEAR_ENCRYPTION_KEY"],
              "DATABASE_URL": PG_URL, "REDIS_URL": app.config["REDIS_URL"],
              "INSTANCE_PATH": str(tmp_path / "instance")}
    result = subprocess.run([sys.executable, "-c", NO_FILE_WRITES, json.dumps(config)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                 "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["refused"], "the file-size limit did not hold"
    assert (answer["status"], answer["size"]) == (200, len(full))
    assert answer["sha256"] == hashlib.sha256(full).hexdigest()


# -- 2. Workers when PostgreSQL or Redis goes away -------------------------------------------
def sandbox_faults(sandbox, platform: str = "bigcommerce", **values) -> None:
    answer = requests.put(f"{sandbox.url}/_sandbox/{platform}/c1/faults", json=values,
                          timeout=5)
    assert answer.status_code == 200, answer.text


def store_posts(sandbox, platform: str = "bigcommerce") -> list[dict]:
    return [r for r in sandbox.store.account(platform, "c1").requests if r["method"] == "POST"]


@pytest.fixture
def private_redis(tmp_path):
    server = RedisProcess(tmp_path).start()
    yield server
    server.kill()


@SERVICES
def test_a_worker_waits_for_a_lost_database_then_finishes_every_write_back(
        make_app, gate, private_redis, sandbox, tmp_path):
    """A queue full of write-backs and no database: the worker neither fails them nor runs
    through them; it puts the one it took back, sleeps longer and longer, and when the
    database is back every row recorded before the outage reaches the store once."""
    import redis
    from rq import Queue
    from rq.job import Job
    from rq.registry import FailedJobRegistry

    app = make_app(WTF_CSRF_ENABLED=False, DATABASE_URL=gate.url, REDIS_URL=private_redis.url,
                   SHIPGEAR_SANDBOX_URL=sandbox.url)
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    ids = [ship(app, f"81{n:04d}", f"1ZDBDOWN{n:04d}") for n in range(ROWS)]
    connection = redis.Redis.from_url(private_redis.url, socket_timeout=5)
    queue = Queue(dispatch.QUEUE, connection=connection)
    jobs = queue.get_job_ids()
    assert len(jobs) == ROWS  # every row's first attempt is queued

    gate.close()  # PostgreSQL is gone before the worker takes a job
    # The write-back queue first, so that a write-back job is the first to find it gone.
    queues = ("-q", dispatch.QUEUE, "-q", "shipgear-maintenance", "-q", "shipgear-status")
    worker = WorkerProcess(worker_env(app, private_redis.url, gate.url, tmp_path,
                                      **WORKER_SETTINGS), tmp_path / "worker.log", *queues)
    try:
        worker.wait_for_log("next check in 1 s", 60)
        cpu, started = worker.cpu_seconds(), time.monotonic()
        log = worker.wait_for_log("next check in 4 s", 20)  # the pauses grow: 1, 2, 4 s
        time.sleep(max(0.0, 8 - (time.monotonic() - started)))
        log = worker.log()
        assert worker.alive()
        # Asleep, not spinning: a small share of one core over ~8 s of outage.
        assert worker.cpu_seconds() - cpu < 0.8, log[-3000:]
        assert "next check in 2 s" in log and "database reachable again" not in log
        # One job found the database gone; it was put back for later, none was failed for
        # good, and the worker took no other job while it waited.
        assert log.count("database unreachable (") - log.count("next check in") == 1, log
        assert "(shipgear_exchange_plugin.jobs.writeback.send): database unreachable" in log
        assert "retried in 1 s" in log
        assert FailedJobRegistry(dispatch.QUEUE, connection=connection).count == 0
        statuses = {job.get_status(refresh=False) for job in Job.fetch_many(jobs, connection)
                    if job is not None}
        assert statuses <= {"queued", "scheduled"}, statuses
        assert store_posts(sandbox) == []

        gate.open()  # PostgreSQL is back: every row recorded before the outage goes out
        with app.app_context():
            db.engine.dispose()  # this test's own pooled connections died with the gate
        wait_until(lambda: rows_by_status(app) == {"success": ROWS}, 90,
                   lambda: f"every write-back succeeds; {worker.log()[-3000:]}")
        assert "database reachable again" in worker.log()
        assert len(store_posts(sandbox)) == ROWS
        assert sandbox.store.account("bigcommerce", "c1").duplicates() == {}
        assert worker.stop() == 0  # SIGTERM: a clean, warm shutdown
    finally:
        worker.stop()
    with app.app_context():
        assert sorted(db.session.execute(sa.select(Writeback.id)).scalars()) == sorted(ids)
        db.session.remove()


@SERVICES
def test_a_row_whose_job_lost_the_database_goes_on_once_it_is_back_not_minutes_later(
        make_app, gate, sandbox):
    """The database goes away while the store is taking the shipment: the job cannot
    record it and fails, leaving its claim on the row. Once the database is back, the
    next job of the same worker process releases that claim at once, as the sweeper
    would after SHIPGEAR_CLAIM_STALE_AFTER (5 minutes): the attempt counts as
    interrupted, and the next one asks the store first, finds the shipment, and sends
    nothing again."""
    import threading

    from shipgear_exchange_plugin import runtime

    app = make_app(WTF_CSRF_ENABLED=False, DATABASE_URL=gate.url,
                   SHIPGEAR_SANDBOX_URL=sandbox.url, SHIPGEAR_RETRY_SCHEDULE="0.2,1,1,1")
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    wid = ship(app, "820001", "1ZDBLOST0001")
    other = ship(app, "820002", "1ZDBLOST0002")
    sandbox_faults(sandbox, write_latency_ms=1500)  # the POST lands after 1.5 s
    host = app.extensions["exchange.host"]
    cut = threading.Timer(0.7, gate.close)
    cut.start()
    with app.app_context():
        with pytest.raises(sa.exc.SQLAlchemyError):
            runtime.writeback_service(host).send(wid)
        db.session.remove()
    cut.join()
    assert len(store_posts(sandbox)) == 1  # it reached the store; nothing says so yet

    gate.open()
    sandbox_faults(sandbox, write_latency_ms=0)
    with app.app_context():
        db.engine.dispose()  # the pooled connections died with the gate
        row = db.session.get(Writeback, wid)
        assert row.claimed_by is not None and row.status == "pending"
        db.session.remove()
        # Any next job of this process, here another row's, ends the orphaned claim.
        assert runtime.writeback_service(host).send(other).status == "success"
        row = db.session.get(Writeback, wid)
        assert row.claimed_by is None and row.needs_check and row.error_count == 1
        assert "database was lost" in row.last_error
        db.session.remove()
        time.sleep(0.3)  # the first retry delay; the stale time (300 s) plays no part
        assert runtime.writeback_service(host).send(wid).status == "success"
        outcomes = db.session.execute(sa.select(Attempt.number, Attempt.outcome).where(
            Attempt.writeback_id == wid).order_by(Attempt.number)).all()
        db.session.remove()
    assert [tuple(o) for o in outcomes] == [(1, "interrupted"), (2, "verified")]
    assert len(store_posts(sandbox)) == 2  # one per row: nothing sent twice
    assert sandbox.store.account("bigcommerce", "c1").duplicates() == {}


@SERVICES
def test_an_amazon_feed_that_lost_the_database_leaves_no_row_claimed_for_minutes(
        make_app, gate, sandbox):
    """The database goes away while Amazon is taking a feed of three packages: the job
    cannot record it. Once the database is back, the next job of the same process ends
    all three claims, and since Amazon had taken the feed, each row waits for that
    feed's report (as if it had been recorded in time) instead of being sent again."""
    import threading

    from shipgear_exchange_plugin import runtime

    app = make_app(WTF_CSRF_ENABLED=False, DATABASE_URL=gate.url,
                   SHIPGEAR_SANDBOX_URL=sandbox.url, SHIPGEAR_RETRY_SCHEDULE="0.2,1,1,1")
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    in_feed = [ship(app, f"113-000000{n}-000000{n}", f"1ZFEEDLOST{n}", platform="amazon")
               for n in range(1, 4)]
    other = ship(app, "820002", "1ZDBLOST0002")
    # Amazon takes minutes to process a feed: long after the rows' first retry would be due.
    requests.put(f"{sandbox.url}/_sandbox/amazon/c1/settings", json={"feed_delay_s": 3},
                 timeout=5).raise_for_status()
    sandbox_faults(sandbox, "amazon", write_latency_ms=1000)  # each POST lands after 1 s
    host = app.extensions["exchange.host"]
    cut = threading.Timer(0.5, gate.close)
    cut.start()
    with app.app_context():
        feeds = runtime.amazon_feeds(host)
        (account_id,) = feeds.accounts_due([1], threshold=3)
        with pytest.raises(sa.exc.SQLAlchemyError):
            feeds.submit(account_id)
        db.session.remove()
    cut.join()
    feed_posts = [r for r in store_posts(sandbox, "amazon") if r["path"].endswith("/feeds")]
    assert len(feed_posts) == 1  # Amazon has the feed; nothing says so yet

    gate.open()
    sandbox_faults(sandbox, "amazon", write_latency_ms=0)
    with app.app_context():
        db.engine.dispose()  # the pooled connections died with the gate
        claimed = db.session.execute(sa.select(Writeback.claimed_by, Writeback.status).where(
            Writeback.id.in_(in_feed))).all()
        assert {c for c, _ in claimed} != {None} and {s for _, s in claimed} == {"pending"}
        db.session.remove()
        # Any next job of this process, here a BigCommerce row's, ends the three claims.
        assert runtime.writeback_service(host).send(other).status == "success"
        rows = db.session.execute(sa.select(Writeback).where(
            Writeback.id.in_(in_feed))).scalars().all()
        assert [(r.claimed_by, r.status, r.error_count) for r in rows] == [
            (None, "submitted", 0)] * 3
        (feed_id,) = {r.feed_id for r in rows}
        assert feed_id and all("waiting for its processing report" in r.last_error
                               for r in rows)
        db.session.remove()
        # Sent again now, a row would confirm its package a second time. It is not due;
        # the sweeper polls its feed instead.
        assert {runtime.writeback_service(host).send(i).action for i in in_feed} == {"skipped"}
        feeds = runtime.amazon_feeds(host)
        assert feeds.feeds_due() == [feed_id]
        deadline = time.monotonic() + 10
        while (step := feeds.poll(feed_id)).action == "waiting":
            assert time.monotonic() < deadline, "the feed is processed within 10 s"
            time.sleep(0.5)
        assert step.action == "mapped"
        db.session.execute(sa.update(Writeback).where(Writeback.id.in_(in_feed))
                           .values(next_attempt_at=utcnow()))  # its first check: now
        db.session.commit()
        for row_id in in_feed:
            assert runtime.writeback_service(host).verify(row_id).status == "success"
        outcomes = db.session.execute(sa.select(Attempt.writeback_id, Attempt.number,
                                                Attempt.outcome).where(
            Attempt.writeback_id.in_(in_feed))).all()
        db.session.remove()
    assert sorted(tuple(o) for o in outcomes) == [(i, 1, "accepted") for i in sorted(in_feed)]
    amazon = sandbox.store.account("amazon", "c1")
    assert not [r for r in amazon.requests if r["path"].endswith("/shipmentConfirmation")]
    assert len(amazon.writes) == 3 and amazon.duplicates() == {}


@SERVICES
def test_sigterm_stops_a_worker_that_waits_for_the_database(
        make_app, gate, private_redis, sandbox, tmp_path):
    """A deploy during the outage: the waiting worker stops at once and cleanly; the row
    it could not send waits in the database."""
    app = make_app(WTF_CSRF_ENABLED=False, DATABASE_URL=gate.url, REDIS_URL=private_redis.url,
                   SHIPGEAR_SANDBOX_URL=sandbox.url)
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    row_id = ship(app, "850001", "1ZSIGTERM01")
    gate.close()
    worker = WorkerProcess(worker_env(app, private_redis.url, gate.url, tmp_path,
                                      **WORKER_SETTINGS), tmp_path / "worker.log",
                           "-q", dispatch.QUEUE)
    try:
        worker.wait_for_log("next check in 2 s", 60)
        asked = time.monotonic()
        assert worker.stop() == 0, worker.log()[-3000:]
        assert time.monotonic() - asked < 5
    finally:
        worker.stop()
    gate.open()
    status = {r[0]: r[1] for r in recorded(PG_URL) if r[0] != "attempt"}
    assert status == {row_id: "pending"} and store_posts(sandbox) == []


@SERVICES
def test_a_worker_outlives_redis_going_away_mid_job_and_loses_nothing(
        make_app, private_redis, sandbox, tmp_path):
    app = make_app(WTF_CSRF_ENABLED=False, REDIS_URL=private_redis.url,
                   SHIPGEAR_SANDBOX_URL=sandbox.url)
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    worker = WorkerProcess(worker_env(app, private_redis.url, PG_URL, tmp_path,
                                      **WORKER_SETTINGS), tmp_path / "worker.log")
    try:
        worker.wait_for_log("Listening on", 60)
        sandbox_faults(sandbox, write_latency_ms=3000)  # the store takes 3 s to accept
        first = ship(app, "820001", "1ZREDIS0001")
        wait_until(lambda: store_posts(sandbox), 30, "the worker calls the store")
        private_redis.kill()  # mid-job: the worker is waiting for the store's answer
        worker.wait_for_log("Redis unreachable", 30)
        cpu, started = worker.cpu_seconds(), time.monotonic()
        time.sleep(5)
        assert worker.alive(), worker.log()[-3000:]
        assert worker.cpu_seconds() - cpu < 0.5 * (time.monotonic() - started)
        with app.app_context():  # the store's acceptance was recorded: the DB is the truth
            assert db.session.get(Writeback, first).status in ("submitted", "success")
            db.session.remove()

        private_redis.restarts += 1
        private_redis.start()  # Redis is back, empty: every job it held is gone
        offset = len(worker.log())
        worker.wait_for_log("starting a new worker loop", 30, after=offset)
        sandbox_faults(sandbox, write_latency_ms=0)
        ship(app, "820002", "1ZREDIS0002")  # new work is taken as before
        wait_until(lambda: rows_by_status(app) == {"success": 2}, 60,
                   lambda: f"both write-backs succeed; {worker.log()[-3000:]}")
        assert worker.alive()
        assert len(store_posts(sandbox)) == 2  # the first was not sent twice
        assert sandbox.store.account("bigcommerce", "c1").duplicates() == {}
        assert worker.stop() == 0
    finally:
        worker.stop()


@SERVICES
def test_a_worker_gives_up_when_redis_stays_away(make_app, private_redis, sandbox, tmp_path):
    """Bounded: without Redis for SHIPGEAR_WORKER_REDIS_GIVE_UP seconds the worker exits
    with status 1 (for its supervisor), saying why; the row waits in the database."""
    app = make_app(WTF_CSRF_ENABLED=False, REDIS_URL=private_redis.url,
                   SHIPGEAR_SANDBOX_URL=sandbox.url)
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    worker = WorkerProcess(worker_env(app, private_redis.url, PG_URL, tmp_path,
                                      SHIPGEAR_WORKER_REDIS_GIVE_UP="3",
                                      **WORKER_SETTINGS), tmp_path / "worker.log")
    try:
        worker.wait_for_log("Listening on", 60)
        sandbox_faults(sandbox, write_latency_ms=2000)
        row = ship(app, "830001", "1ZGIVEUP001")
        wait_until(lambda: store_posts(sandbox), 30, "the worker calls the store")
        private_redis.kill()
        worker.process.wait(timeout=30)
        assert worker.process.returncode == 1
        assert "Redis unreachable for" in worker.log() and "gives up" in worker.log()
    finally:
        worker.stop()
    with app.app_context():
        assert db.session.get(Writeback, row).status in ("submitted", "success")
        db.session.remove()


# -- 4. A store down, then hanging -----------------------------------------------------------
def shipment_panel(client, row_id: int) -> str:
    answer = client.get(f"{BASE}/orders/{row_id}", headers={"HX-Request": "true"})
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def colours_and_info(client, platform: str = "bigcommerce") -> dict[str, tuple[str, str]]:
    body = client.get(f"{BASE}/status.json").get_json()
    account = next(a for a in body["accounts"] if a["platform"] == platform)
    return {api: (value["status"], value["info"]) for api, value in account["apis"].items()}


def test_a_store_down_then_hanging_keeps_the_row_says_why_and_recovers(make_app, sandbox):
    """What is covered elsewhere: each connector calls an outage page and a hang
    retryable (tests/test_connector_*.py), probes of a store that is down turn it Red
    (tests/test_status_panel.py). Here, end to end: the write-back row through both, what
    the user reads about it and about the store, and no duplicate once the store is back."""
    from shipgear_exchange_plugin.jobs.status import probe
    from shipgear_exchange_plugin.jobs.writeback import send, verify

    app = make_app(WTF_CSRF_ENABLED=False, SHIPGEAR_SANDBOX_URL=sandbox.url,
                   SHIPGEAR_HTTP_TIMEOUT="0.5,0.5", SHIPGEAR_RETRY_SCHEDULE="0.2,0.2,0.2,0.2",
                   SHIPGEAR_VERIFY_SCHEDULE="0.2,0.2")
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
        account = db.session.execute(sa.select(StoreAccount.id).where(
            StoreAccount.platform == "bigcommerce")).scalar_one()
        db.session.remove()
    row_id = ship(app, "840001", "1ZSTORE0001")
    viewer = signed_in(app)

    def attempt(job=send) -> tuple[Writeback, float]:
        time.sleep(0.25)  # the row's next attempt is due (0.2 s schedule)
        with app.app_context():
            started = time.monotonic()
            job(row_id)
            took = time.monotonic() - started
            row = db.session.get(Writeback, row_id)
            db.session.expunge(row)
            db.session.remove()
        return row, took

    def probe_store(rounds: int = 3) -> None:
        with app.app_context():
            for _ in range(rounds):
                probe(account)
            db.session.remove()

    sandbox_faults(sandbox, outage="down")
    row, _ = attempt()
    assert (row.status, row.error_count) == ("pending", 1)
    assert "503" in row.last_error
    probe_store()
    apis = colours_and_info(viewer)
    assert {status for status, _ in apis.values()} == {"red"}
    assert apis["writeback"][1] == "The last 3 calls failed; last: HTTP 503."
    panel = shipment_panel(viewer, row_id)
    assert "Pending" in panel and "1 of 5" in panel and "503" in panel

    sandbox_faults(sandbox, outage="hang", hang_seconds=2)
    row, took = attempt()
    assert took < 3, "a hanging store held the worker past its timeouts"
    assert (row.status, row.error_count) == ("pending", 2)
    assert row.last_error.startswith("No answer from the store within 0.5 s")
    probe_store()
    apis = colours_and_info(viewer)
    assert set(apis.values()) == {
        ("red", "The last 3 calls failed; last: no answer (timeout or connection error).")}
    panel = shipment_panel(viewer, row_id)
    assert "2 of 5" in panel and "No answer from the store within 0.5 s" in panel
    grid = viewer.get(f"{BASE}/", query_string={"status": "pending"}).get_data(as_text=True)
    assert f'data-id="{row_id}"' in grid  # still listed, as Pending, for Retry now

    requests.delete(f"{sandbox.url}/_sandbox/bigcommerce/c1/faults", timeout=5)
    time.sleep(2)  # the hung requests end on the store's side
    row, _ = attempt()
    if row.status == "submitted":
        row, _ = attempt(verify)
    assert (row.status, row.error_count) == ("success", 2)
    store = sandbox.store.account("bigcommerce", "c1")
    assert len(store.writes) == 1 and store.duplicates() == {}
