"""The write-back engine's reliability proof (PRODUCT.md §7, issue 4), end to end:
real PostgreSQL, a redis-server of the test's own that it kills and starts again empty,
``shipgear-exchange worker`` processes killed with SIGKILL, and the marketplace sandbox
over real HTTP with 30% transient errors. Nothing is mocked: the assertions read the
database and the sandbox's own records of what reached each store.

Three properties:
- chaos: every shipment ends success or failed, none has more than 5 attempts, no store
  received a confirmation twice, and every success is on its store;
- rate limit: two workers against one store whose limit is just our budget get no 429;
- one write-back's send job enqueued 100 times, concurrently: one confirmation.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa
from flask import request
from rq import Queue, Worker
from rq.job import Job

from shipgear_exchange_plugin import dispatch
from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.devhost.seed import seed
from shipgear_exchange_plugin.devhost.simulate import load_accounts, ship_spread
from shipgear_exchange_plugin.models import Attempt, StoreAccount, Writeback
from shipgear_exchange_plugin.ratelimit import DEFAULT_LIMITS
from shipgear_exchange_plugin.sandbox import SandboxServer, SandboxStore
from shipgear_exchange_plugin.sandbox import create_app as create_sandbox_app
from shipgear_exchange_plugin.sandbox.store import PLATFORMS

from .conftest import IN_CI, ROOT, SERVICES_ONLY, _truncate_all
from .services import REDIS_SERVER, SCRIPT, RedisProcess, stop_group

# Real worker processes and a Redis the test can kill need the services backend: always in
# CI (conftest fails the session there when PostgreSQL or Redis is missing).
pytestmark = SERVICES_ONLY

FINAL = ("success", "failed")
#: Fast clocks for the worker processes: the same code paths, seconds instead of minutes.
#: A claim must outlive the longest attempt (a few calls of at most 1+3 s, plus up to 3 s of
#: waiting for the shared rate limit per call) or a slow live worker could lose it.
WORKER_SETTINGS = {
    "SHIPGEAR_RETRY_SCHEDULE": "0.2,0.4,0.6,0.8",
    "SHIPGEAR_VERIFY_SCHEDULE": "0.2,0.5,1,2",
    "SHIPGEAR_SWEEP_INTERVAL": "1",
    "SHIPGEAR_CLAIM_STALE_AFTER": "10",
    "SHIPGEAR_HTTP_TIMEOUT": "1,3",
    "SHIPGEAR_FEED_POLL_EVERY": "1",
    "SHIPGEAR_HEALTH_EVERY": "3600",
}


# -- processes of our own: tests/services.py ----------------------------------------------
class Workers:
    """``shipgear-exchange worker`` processes, each in its own process group (the worker
    and the scheduler process RQ forks), so that SIGKILL takes both, like a crashed host."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env, self.logdir = env, logdir
        self.running: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.killed = 0
        self.exited = 0  # workers that stopped by themselves (RQ quits when Redis goes away)

    def start(self) -> None:
        path = self.logdir / f"worker-{len(self.logs)}.log"
        self.logs.append(path)
        with open(path, "w") as log:
            self.running.append(subprocess.Popen(  # noqa: S603 - our own console script
                [SCRIPT, "worker"], env=self.env, cwd=self.logdir, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True))

    def keep(self, count: int) -> None:
        """Replace workers that stopped by themselves (counted) and start up to ``count``;
        give up when they keep dying (a worker that cannot start at all)."""
        for process in list(self.running):
            if process.poll() is not None:
                self.running.remove(process)
                stop_group(process)  # its scheduler child, if it outlived it
                self.exited += 1
        assert self.exited <= 20, f"workers keep stopping by themselves:\n{self.tail()}"
        while len(self.running) < count:
            self.start()

    def kill_oldest(self) -> None:
        stop_group(self.running.pop(0))
        self.killed += 1

    def stop(self) -> None:
        while self.running:
            stop_group(self.running.pop())

    def tail(self, lines: int = 25) -> str:
        out = []
        for path in self.logs[-3:]:
            text = path.read_text(errors="replace").splitlines()
            out.append(f"--- {path.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


def wait_for_workers(connection: redis.Redis, count: int, seconds: float = 60) -> None:
    """Until ``count`` RQ workers are registered (imports and app start take a while)."""
    deadline = time.monotonic() + seconds
    while len(Worker.all(connection=connection)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} workers started"
        time.sleep(0.1)


class CountingSandbox:
    """The sandbox on a free port, counting every status it answers per store account,
    so the test knows whether any store call was answered 429."""

    def __init__(self) -> None:
        self.app = create_sandbox_app(SandboxStore())
        self.answered: Counter[tuple[str, str, int]] = Counter()
        lock = threading.Lock()

        @self.app.after_request
        def _count(response):
            parts = request.path.split("/")
            if len(parts) > 2 and parts[1] in PLATFORMS:
                with lock:
                    self.answered[(parts[1], parts[2], response.status_code)] += 1
            return response

        self.server = SandboxServer(self.app).start()
        self.url = self.server.url

    def control(self, method: str, platform: str, key: str, what: str = "", **kwargs):
        answer = requests.request(method, f"{self.url}/_sandbox/{platform}/{key}{what}",
                                  timeout=10, **kwargs)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def status_count(self, platform: str, key: str, status: int) -> int:
        return self.answered[(platform, key, status)]


@pytest.fixture
def private_redis(tmp_path):
    if REDIS_SERVER is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; the chaos test needs its own Redis")
        pytest.skip("redis-server is not installed")
    server = RedisProcess(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def counting_sandbox():
    sandbox = CountingSandbox()
    yield sandbox
    sandbox.server.stop()


@pytest.fixture
def engine(make_app, private_redis, counting_sandbox, tmp_path):
    """The host app on PostgreSQL and the private Redis, the worker processes' environment,
    and the tables emptied again afterwards for the tests that follow."""
    app = make_app(WTF_CSRF_ENABLED=False, REDIS_URL=private_redis.url,
                   SHIPGEAR_SANDBOX_URL=counting_sandbox.url)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SHIPGEAR") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(WORKER_SETTINGS, DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               REDIS_URL=private_redis.url, SECRET_KEY="test-secret",
               SHIPGEAR_ENCRYPTION_KEY=app.config["SHIPGEAR_ENCRYPTION_KEY"],
               SHIPGEAR_SANDBOX_URL=counting_sandbox.url,  # store calls may go to it
               PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
               EXCHANGE_INSTANCE_PATH=str(tmp_path / "instance"))
    workers = Workers(env, tmp_path)
    yield app, workers
    workers.stop()
    _truncate_all(app)


# -- shipping -------------------------------------------------------------------------------
def _accounts(app, platforms: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """(company id, platform, sandbox key) of every seeded account on these platforms."""
    with app.app_context():
        accounts = load_accounts(platforms)
        db.session.remove()
    return accounts


def ship_many(app, sandbox: CountingSandbox, accounts: list[tuple[int, str, str]], count: int,
              first: int = 0) -> None:
    """``count`` one-package shipments spread over ``accounts``, each order on its store
    first; the host's hook stores each write-back and enqueues it after commit."""
    with app.app_context():
        ship_spread(app.extensions["exchange.host"], sandbox.url, accounts, count, first)
        db.session.remove()


def by_status(app) -> Counter[str]:
    with app.app_context():
        counts = Counter(dict(db.session.execute(sa.select(
            Writeback.status, sa.func.count()).group_by(Writeback.status)).all()))
        db.session.remove()
    return counts


def unfinished(app, limit: int = 10) -> list[tuple]:
    with app.app_context():
        rows = db.session.execute(sa.select(
            Writeback.id, Writeback.status, Writeback.error_count, Writeback.attempt_count,
            Writeback.verify_checks, Writeback.next_attempt_at, Writeback.claimed_by,
            Writeback.claimed_at).where(Writeback.status.not_in(FINAL))
            .order_by(Writeback.id).limit(limit)).all()
        db.session.remove()
    return [tuple(r) for r in rows]


def their_jobs(connection: redis.Redis, rows: list[tuple]) -> list[str]:
    """What RQ holds for unfinished rows: each row's next job (by the engine's own job id)
    and its status, and who holds RQ's scheduler lock; for failure messages."""
    wanted = [dispatch.job_id("send" if status == "pending" else "verify", wid,
                              attempts + 1 if status == "pending" else 0, due)
              for wid, status, _, attempts, _, due, *_ in rows]
    found = Job.fetch_many(wanted, connection=connection)
    lock = connection.get(f"rq:scheduler-lock:{dispatch.QUEUE}")
    return [f"{jid}: {job.get_status(refresh=False) if job else 'no job'}"
            for jid, job in zip(wanted, found, strict=True)] + [f"scheduler lock: {lock}"]


def drain(app, workers: Workers, seconds: float, keep: int = 2,
          trace: list[tuple[float, int]] | None = None, since: float = 0) -> Counter[str]:
    """Keep ``keep`` workers running until every row is final or ``seconds`` pass;
    ``trace`` gets (seconds since ``since``, rows not final) every 5 seconds."""
    deadline = time.monotonic() + seconds
    while True:
        workers.keep(keep)
        counts = by_status(app)
        at = round(time.monotonic() - since)
        if trace is not None and (not trace or at >= trace[-1][0] + 5):
            trace.append((at, sum(counts.values()) - sum(counts[s] for s in FINAL)))
        if not set(counts) - set(FINAL) or time.monotonic() > deadline:
            return counts
        time.sleep(0.3)


# -- the proofs -------------------------------------------------------------------------------
CHAOS_PLATFORMS = ("amazon", "shopify", "woocommerce", "bigcommerce")
CHAOS_COMPANIES = 16
CHAOS_SHIPMENTS = 320
SHIPPED_WHILE_REDIS_IS_DOWN = 40
#: (what, share of rows final before it happens): SIGKILL the oldest worker (and start a
#: new one), or SIGKILL redis-server and start it again empty.
CHAOS_EVENTS = [("kill", 0.02), ("kill", 0.08), ("redis", 0.15), ("kill", 0.22),
                ("kill", 0.30), ("kill", 0.38), ("redis", 0.45), ("kill", 0.55), ("kill", 0.65)]


def test_chaos_killed_workers_and_an_empty_redis_lose_nothing_and_duplicate_nothing(
        engine, private_redis, counting_sandbox):
    """PRODUCT.md §7 at CI size: the database must carry every write-back through lost
    jobs, lost claims and lost Redis state; the sandbox tells what the stores received."""
    app, workers = engine
    sandbox = counting_sandbox
    with app.app_context():
        seed(app, companies=CHAOS_COMPANIES, shipments=0, enabled=CHAOS_COMPANIES)
    accounts = _accounts(app, CHAOS_PLATFORMS)
    for _, platform, key in accounts:
        sandbox.control("PUT", platform, key, "/faults",
                        json={"error_rate": 0.3, "error_status": 503})
    ship_many(app, sandbox, accounts, CHAOS_SHIPMENTS)
    total = CHAOS_SHIPMENTS + SHIPPED_WHILE_REDIS_IS_DOWN
    started = time.monotonic()
    happened: list[tuple[str, float, int]] = []  # (event, seconds in, rows not final then)
    try:
        workers.keep(2)
        last = time.monotonic()
        events = list(CHAOS_EVENTS)
        while events and time.monotonic() - started < 150:
            workers.keep(2)
            counts = by_status(app)
            done = sum(counts[s] for s in FINAL) / total
            what, share = events[0]
            if done >= share and time.monotonic() - last >= 1.5:
                events.pop(0)
                open_rows = total - sum(counts[s] for s in FINAL)
                happened.append((what, round(time.monotonic() - started, 1), open_rows))
                if what == "kill":
                    workers.kill_oldest()
                else:
                    private_redis.kill()
                    if private_redis.restarts == 0:  # shipments keep coming meanwhile
                        ship_many(app, sandbox, accounts, SHIPPED_WHILE_REDIS_IS_DOWN,
                                  first=CHAOS_SHIPMENTS)
                    private_redis.restart_empty()
                last = time.monotonic()
            time.sleep(0.2)
        trace: list[tuple[float, int]] = []
        counts = drain(app, workers, seconds=150, trace=trace, since=started)
    finally:
        workers.stop()
    elapsed = time.monotonic() - started
    summary = (f"{total} write-backs in {elapsed:.0f}s; final {dict(counts)}; events "
               f"(what, at s, rows not final) {happened}; then rows not final at s {trace}; "
               f"workers killed {workers.killed}, stopped by themselves {workers.exited}")
    print(summary)
    assert sum(counts.values()) == total, summary
    if not set(counts) <= set(FINAL):
        stuck = unfinished(app)
        raise AssertionError(f"{summary}\nnot final: {stuck}\n"
                             f"{their_jobs(redis.Redis.from_url(private_redis.url), stuck)}\n"
                             f"{workers.tail()}")
    # The chaos really happened in the middle of the work.
    assert [e for e, _, open_rows in happened if open_rows > 0].count("redis") == 2, summary
    assert [e for e, _, open_rows in happened if open_rows > 0].count("kill") >= 6, summary

    with app.app_context():
        rows = db.session.execute(sa.select(
            Writeback.id, Writeback.order_id, Writeback.tracking_number, Writeback.status,
            Writeback.error_count, Writeback.attempt_count, Writeback.last_error,
            StoreAccount.platform, StoreAccount.endpoint).join(StoreAccount)).all()
        attempts = dict(db.session.execute(sa.select(
            Attempt.writeback_id, sa.func.count()).group_by(Attempt.writeback_id)).all())
        highest = db.session.execute(sa.select(sa.func.max(Attempt.number))).scalar()
        db.session.remove()
    assert highest <= 5
    over = [(r.id, attempts.get(r.id, 0), r.error_count) for r in rows
            if attempts.get(r.id, 0) > 5 or r.error_count > 5 or r.attempt_count > 5]
    assert over == [], f"more than 5 attempts: {over[:10]}"
    # Only transient errors were injected: a row fails only after using all 5 attempts.
    early = [(r.id, r.error_count, r.last_error) for r in rows
             if r.status == "failed" and r.error_count != 5]
    assert early == [], f"failed before the 5th attempt: {early[:5]}"

    on_store: set[tuple[str, str, str]] = set()
    for _, platform, key in accounts:
        assert sandbox.control("GET", platform, key, "/duplicates")["duplicates"] == {}, (
            f"{platform}/{key} received a confirmation twice")
        on_store |= {(platform, w["order_id"], w["tracking_number"])
                     for w in sandbox.control("GET", platform, key, "/writes")["writes"]}
    missing = [(r.id, r.platform, r.order_id) for r in rows if r.status == "success"
               and (r.platform, r.order_id, r.tracking_number) not in on_store]
    assert missing == [], f"success rows whose tracking is not on the store: {missing[:10]}"


RATE_PLATFORM = "woocommerce"
RATE_SHIPMENTS = 32


def test_two_workers_never_exceed_a_stores_rate_limit(engine, counting_sandbox):
    """The store's limit is set to our own budget for it (plus one request in flight per
    worker), far below what two workers send unchecked: the shared limiter in Redis must
    keep both workers under it together."""
    app, workers = engine
    sandbox = counting_sandbox
    rate, burst = DEFAULT_LIMITS[RATE_PLATFORM][None]
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    accounts = _accounts(app, (RATE_PLATFORM,))
    (_, platform, key), = accounts
    sandbox.control("PUT", platform, key, "/settings",
                    json={"limits": {"requests": {"rate": rate, "burst": burst + 2}}})
    ship_many(app, sandbox, accounts, RATE_SHIPMENTS)
    try:
        counts = drain(app, workers, seconds=150)
    finally:
        workers.stop()
    calls = sandbox.control("GET", platform, key, "/requests")["requests"]
    assert calls, f"{dict(counts)}: the store saw no call\n{workers.tail()}"
    span = max(calls[-1]["at"] - calls[0]["at"], 0.001)
    summary = (f"{dict(counts)}; {len(calls)} store calls in {span:.1f}s "
               f"({len(calls) / span:.1f}/s against a limit of {rate:g}/s, burst {burst + 2:g})")
    print(summary)
    assert counts == Counter(success=RATE_SHIPMENTS), f"{summary}\n{workers.tail()}"
    assert sandbox.status_count(platform, key, 429) == 0, summary
    with app.app_context():
        throttled = db.session.execute(sa.select(sa.func.count()).select_from(Attempt)
                                       .where(Attempt.http_status == 429)).scalar()
        db.session.remove()
    assert throttled == 0
    # The limit mattered: the workers were held near it, not idling far below it.
    assert len(calls) >= burst + 0.5 * rate * span, summary


def test_a_send_job_enqueued_100_times_at_once_confirms_once(engine, private_redis,
                                                             counting_sandbox):
    """No store offers an idempotency key: the row's claim alone must make every late or
    doubled job a no-op, whether it reuses the job id or not."""
    app, workers = engine
    sandbox = counting_sandbox
    with app.app_context():
        seed(app, companies=1, shipments=0, enabled=1)
    accounts = _accounts(app, ("bigcommerce",))
    (_, platform, key), = accounts
    # A slow store: the first confirmation is still in flight when the copies arrive.
    sandbox.control("PUT", platform, key, "/faults", json={"write_latency_ms": 300})
    connection = redis.Redis.from_url(private_redis.url)
    try:
        workers.keep(2)
        wait_for_workers(connection, 2)
        ship_many(app, sandbox, accounts, 1)
        with app.app_context():
            wid = db.session.execute(sa.select(Writeback.id)).scalar_one()
            db.session.remove()
        queue = Queue(dispatch.QUEUE, connection=connection)
        barrier = threading.Barrier(100)
        errors: list[BaseException] = []

        def enqueue(n: int) -> None:
            try:
                barrier.wait()
                # Even copies reuse the first attempt's job id, odd ones make new ids.
                dispatch.enqueue(queue, "send", wid, 1 if n % 2 == 0 else n, None)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(100)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        counts = drain(app, workers, seconds=60)
        deadline = time.monotonic() + 60  # every copy ran, not just the row's own jobs
        while queue.count or queue.started_job_registry.count:
            assert time.monotonic() < deadline, "the copies were not all worked"
            time.sleep(0.2)
        copies = [job for job in Job.fetch_many(
            [dispatch.job_id("send", wid, n, None) for n in range(1, 100, 2)],
            connection=connection) if job is not None]
        results = Counter(job.return_value() for job in copies)
    finally:
        workers.stop()
    assert counts == Counter(success=1), workers.tail()
    # Every copy with an id of its own ran; at most one of all of them sent anything.
    assert len(copies) == 50 and set(results) <= {"sent", "skipped"}, results
    assert results["sent"] <= 1, results
    writes = sandbox.control("GET", platform, key, "/writes")["writes"]
    assert [w["tracking_number"] for w in writes] == ["1Z0000000000000000"]
    assert sandbox.control("GET", platform, key, "/duplicates")["duplicates"] == {}
    posts = [r for r in sandbox.control("GET", platform, key, "/requests")["requests"]
             if r["method"] == "POST"]
    assert len(posts) == 1
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Attempt)).scalar() == 1
        db.session.remove()
