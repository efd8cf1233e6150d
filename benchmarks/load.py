"""Load: signed-in users browse View eCommerce while workers write back (issue 6, item 6).

Everything runs on this machine's loopback, each part in a process of its own:

- the **reference host** with the plugin, served by ``shipgear-exchange demo`` (the demo's
  own server: Werkzeug's multi-threaded WSGI server, one thread per connection) against
  PostgreSQL and Redis; as in the living demo its shipping desk processes a new shipment
  every ``--ship-every`` seconds, so new write-backs keep arriving during the run;
- ``--workers`` real ``shipgear-exchange worker`` processes (RQ, its scheduler, the
  sweeper) writing back to the **marketplace sandbox** over HTTP, with the demo's clock
  (``config.DEMO_OVERRIDES``: retries after 3-24 s, checks after 2-30 s, sweeps every 5 s).
  Like the demo's first minutes, they start with a backlog: the seed's pending and
  submitted rows (about 15%) are due, and the stores' rate budgets pace them;
- the **users**: ``--users`` threads of this process, each with its own
  ``requests.Session``, each signed in through the host's login form (its CSRF token
  included) as a user of its own of a seeded company. Each first takes a fixed tour of
  every surface, then browses at random until ``--seconds`` are over: My Companies, the
  View eCommerce page, the Connection Status panel (its HTMX fragment) and ``status.json``,
  the grid (HTMX) with filters, sorts and cursor pages, ``orders.json`` with the same, the
  shipment detail panel (HTMX), and the CSV export. HTMX requests carry the headers and the
  ``X-CSRFToken`` the host's page sends. Between two requests a user pauses at random
  (0 to 2x ``--think`` seconds).

Every HTTP call has a timeout (``--timeout`` for reading, 5 s to connect); redirects are
not followed, so a request that lands on the login page counts as failed. It prints per
surface the requests, errors, p50 and p95 latency, the total requests/s, and what the
workers did meanwhile (write-backs completed, send attempts, store calls). Exit status 1
if any request failed (an unexpected status, a bad body, a timeout or a connection
error), 2 if no write-back completed during the run (then the set-up is broken).

    .venv/bin/python benchmarks/load.py            # 20 users, 60 s
    .venv/bin/python benchmarks/load.py --users 5 --seconds 8 --shipments 500

It owns its database (created when missing; its ``sgx_``/``host_`` tables are dropped and
made again) and empties the Redis database it is given. ``tests/test_load.py`` runs the
same code, shortened, in CI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import math
import os
import platform
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # imported by tests/test_load.py as benchmarks.load
    sys.path.append(str(HERE))

from processes import free_port, stop_group  # noqa: E402 - shared with the tests
from writeback_throughput import (  # noqa: E402
    SCRIPT,
    Workers,
    cpu_by_process,
    cpu_used,
    machine_cpu_seconds,
    prepare_database,
)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/shipgear_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
PLUGIN_ID = "shipgear-ecommerce"
CONNECT_TIMEOUT = 5.0
STATUSES = ("pending", "submitted", "success", "failed", "manual")
FINAL = ("success", "failed")

#: What a user does after the tour, and how often (relative weights).
ACTIONS = {
    "grid": 5,            # filters or a sort (HTMX), then maybe a few cursor pages
    "orders.json": 3,     # the same through the JSON API, cursor pages followed
    "shipment": 4,        # the detail panel of a row seen in the last list
    "status": 2,          # the Connection Status panel's HTMX refresh
    "status.json": 2,
    "page": 1.5,          # the whole View eCommerce page again (a reload, a filter link)
    "export.csv": 1,      # Export of what the filters list
    "my companies": 0.5,  # back to My Companies, then View eCommerce again
}
#: The surfaces in the order the report lists them.
ENDPOINTS = ("my companies", "page", "status", "status.json", "grid", "grid next page",
             "orders.json", "orders.json next page", "shipment", "export.csv")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2,
                        help="`shipgear-exchange worker` processes")
    parser.add_argument("--companies", type=int, default=5,
                        help="seeded companies; the plugin is enabled on all but one")
    parser.add_argument("--shipments", type=int, default=5000, help="seeded shipments")
    parser.add_argument("--ship-every", type=float, default=1.0,
                        help="seconds between the host's new shipments during the run")
    parser.add_argument("--think", type=float, default=0.25,
                        help="mean pause of a user between two requests (seconds)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="read timeout of every request (seconds)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--logs", type=Path, default=Path("/tmp/sgx-load"),
                        help="server, worker and sandbox logs")
    parser.add_argument("--seed", type=int, default=7, help="random seed (data and users)")
    return parser.parse_args(argv)


# -- measurements ---------------------------------------------------------------------------
def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class EndpointStats:
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, latencies: list[float], errors: int) -> EndpointStats:
        if not latencies:
            return cls(0, errors, None, None, None)
        return cls(len(latencies), errors, percentile(latencies, 0.5) * 1000,
                   percentile(latencies, 0.95) * 1000, max(latencies) * 1000)


@dataclass
class LoadResult:
    users: int
    seconds: float
    elapsed: float
    endpoints: dict[str, EndpointStats]
    total: EndpointStats
    login: EndpointStats
    error_samples: list[str]
    writebacks: dict[str, int]
    cpu: dict[str, float]
    load_before: float
    load_after: float

    @property
    def errors(self) -> int:
        return self.total.errors + self.login.errors

    @property
    def requests_per_s(self) -> float:
        return self.total.requests / self.elapsed if self.elapsed else 0.0


# -- one user -------------------------------------------------------------------------------
NEXT_LINK = re.compile(r'<a href="([^"]*)"[^>]*data-key="next"')
ROW_LINK = re.compile(r'/ecommerce/orders/(\d+)\b')
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
CSRF_META = re.compile(r'name="csrf-token" content="([^"]+)"')
ECOMMERCE_LINK = re.compile(r'href="(/companies/\d+/ecommerce/)"')


class User(threading.Thread):
    """One person at a browser: its own session (cookies, one keep-alive connection)."""

    def __init__(self, index: int, base_url: str, username: str, password: str,
                 args: argparse.Namespace, ready: threading.Barrier, go: threading.Event,
                 window: dict[str, float]) -> None:
        super().__init__(name=f"user-{index}", daemon=True)
        import requests

        self.base, self.username, self.password = base_url, username, password
        self.timeout, self.think = (CONNECT_TIMEOUT, args.timeout), args.think
        self.rng = random.Random(args.seed * 1000 + index)  # noqa: S311 - load pattern
        self.ready, self.go, self.window = ready, go, window
        self.session = requests.Session()
        self.latencies: dict[str, list[float]] = {}
        self.errors: Counter[str] = Counter()
        self.samples: list[str] = []
        self.login_latency: list[float] = []
        self.login_errors = 0
        self.last_problem: str | None = None
        self.page_path = ""          # /companies/<id>/ecommerce/
        self.csrf = ""               # the page's token, sent on HTMX requests
        self.row_ids: list[str] = []  # rows seen in the last list
        self.order_ids: list[str] = []
        self.account_ids: list[int] = []

    # The HTTP call every request goes through: timed, checked, never raising.
    def call(self, name: str, path: str, params=None, headers=None, data=None,
             method: str = "GET", expect: tuple[int, ...] = (200,), check=None,
             record: bool = True):
        import requests

        started = time.perf_counter()
        problem, response = None, None
        try:
            response = self.session.request(method, self.base + path, params=params,
                                            headers=headers, data=data, timeout=self.timeout,
                                            allow_redirects=False)
            if response.status_code not in expect:
                where = response.headers.get("Location")
                problem = f"HTTP {response.status_code}" + (f" -> {where}" if where else "")
            elif check is not None:
                problem = check(response)
        except requests.RequestException as exc:
            problem = f"{type(exc).__name__}: {exc}"
        except ValueError as exc:  # a body that is not what it should be (bad JSON)
            problem = f"bad body: {exc}"
        elapsed = time.perf_counter() - started
        if not record:
            self.last_problem = problem
            return response if problem is None else None
        self.latencies.setdefault(name, []).append(elapsed)
        if problem is not None:
            self.errors[name] += 1
            if len(self.samples) < 10:
                self.samples.append(f"{self.username} {name} {method} {path} {params or ''}: "
                                    f"{problem}"[:400])
            return None
        return response

    def htmx(self, target: str) -> dict[str, str]:
        return {"HX-Request": "true", "HX-Target": target, "X-CSRFToken": self.csrf}

    def sign_in(self) -> bool:
        """GET the form for its CSRF token, POST it; measured as one login."""
        started = time.perf_counter()
        form = self.call("login", "/login", record=False)
        token = CSRF_INPUT.search(form.text) if form is not None else None
        answer = None
        if token:
            answer = self.call("login", "/login", method="POST", expect=(302,), record=False,
                               data={"username": self.username, "password": self.password,
                                     "csrf_token": html.unescape(token.group(1))})
        self.login_latency.append(time.perf_counter() - started)
        if answer is None or "/login" in answer.headers.get("Location", "/login"):
            self.login_errors += 1
            why = self.last_problem or ("no CSRF token in the form" if form is not None
                                        else "refused")
            self.samples.append(f"{self.username}: sign-in failed: {why}"[:400])
            return False
        return True

    def run(self) -> None:
        signed_in = False
        try:
            signed_in = self.sign_in()
        except Exception as exc:  # noqa: BLE001 - a bug of this script must show, not hide
            self.login_errors += 1
            self.samples.append(f"{self.username}: sign-in crashed: {exc!r}")
        try:
            self.ready.wait(timeout=120)
        except threading.BrokenBarrierError:
            return
        if not signed_in or not self.go.wait(timeout=120):
            return
        try:
            self.browse()
        except Exception as exc:  # noqa: BLE001 - counted as an error: the run is not valid
            self.errors["(load script crashed)"] += 1
            self.samples.append(f"{self.username}: the load script crashed: {exc!r}")

    def pause(self) -> None:
        left = self.window["deadline"] - time.monotonic()
        if left > 0:
            time.sleep(min(left, self.rng.uniform(0, 2 * self.think)))

    def over(self) -> bool:
        return time.monotonic() >= self.window["deadline"]

    def browse(self) -> None:
        tour = ["my companies", "page", "status", "status.json", "grid", "orders.json",
                "shipment", "export.csv"]
        names, weights = list(ACTIONS), list(ACTIONS.values())
        while not self.over():
            touring = bool(tour)  # the tour sees every surface as it first opens
            action = tour.pop(0) if touring else self.rng.choices(names, weights)[0]
            getattr(self, "do_" + action.replace(" ", "_").replace(".", "_"))(first=touring)
            self.pause()

    # -- the surfaces
    def do_my_companies(self, first: bool = False) -> None:
        answer = self.call("my companies", "/companies/",
                           check=lambda r: None if ECOMMERCE_LINK.search(r.text)
                           else "no View eCommerce link")
        if answer is not None:
            self.page_path = ECOMMERCE_LINK.search(answer.text).group(1)
            self.pause()
            self.do_page(first=True)

    def do_page(self, first: bool = False) -> None:
        if not self.page_path:
            return
        params = {} if first else self.filters()
        answer = self.call("page", self.page_path, params=params,
                           check=lambda r: None if 'id="orders-region"' in r.text
                           else "no orders grid in the page")
        if answer is not None:
            meta = CSRF_META.search(answer.text)
            self.csrf = html.unescape(meta.group(1)) if meta else ""
            self.remember_rows(answer.text)

    def do_status(self, first: bool = False) -> None:
        self.call("status", self.page_path + "status", headers=self.htmx("sgx-status"),
                  check=lambda r: None if "Connection Status" in r.text
                  else "no Connection Status panel")

    def do_status_json(self, first: bool = False) -> None:
        def check(response):
            body = response.json()
            if body.get("error") is not None:
                return f"status.json error: {body['error']}"
            return None if body.get("accounts") else "status.json lists no account"

        answer = self.call("status.json", self.page_path + "status.json", check=check)
        if answer is not None:
            self.account_ids = [a["id"] for a in answer.json()["accounts"]]

    def do_grid(self, first: bool = False) -> None:
        params = {} if first else self.filters()
        answer = self.call("grid", self.page_path, params=params,
                           headers=self.htmx("orders-region"), check=self.grid_check)
        pages = 0
        # The tour always follows one page; later a user pages on half the time, up to 3.
        while answer is not None and not self.over() and (
                (first and pages == 0) or (pages < 3 and self.rng.random() < 0.5)):
            found = NEXT_LINK.search(answer.text)
            if not found:
                break
            self.remember_rows(answer.text)
            self.pause()
            answer = self.call("grid next page", html.unescape(found.group(1)),
                               headers=self.htmx("orders-region"), check=self.grid_check)
            pages += 1
        if answer is not None:
            self.remember_rows(answer.text)

    @staticmethod
    def grid_check(response) -> str | None:
        return None if '<div id="orders-region"' in response.text else "not the grid fragment"

    def do_orders_json(self, first: bool = False) -> None:
        params = {} if first else self.filters()
        if not first and self.rng.random() < 0.3:
            params["limit"] = str(self.rng.choice([20, 100, 200]))

        def check(response):
            body = response.json()
            return None if isinstance(body.get("items"), list) else "no items"

        answer = self.call("orders.json", self.page_path + "orders.json", params=params,
                           check=check)
        pages = 0
        while answer is not None and not self.over() and (
                (first and pages == 0) or (pages < 3 and self.rng.random() < 0.5)):
            body = answer.json()
            self.remember_items(body["items"])
            if not body["next"]:
                break
            self.pause()
            answer = self.call("orders.json next page", self.page_path + "orders.json",
                               params={**params, "after": body["next"]}, check=check)
            pages += 1
        if answer is not None:
            self.remember_items(answer.json()["items"])

    def do_shipment(self, first: bool = False) -> None:
        if not self.row_ids:
            self.do_page(first=True)
            return
        row = self.rng.choice(self.row_ids)
        self.call("shipment", f"{self.page_path}orders/{row}",
                  headers=self.htmx("shipment-region"),
                  check=lambda r: None if "Shipment Information" in r.text
                  else "no shipment information")

    def do_export_csv(self, first: bool = False) -> None:
        params = {} if first else self.filters()

        def check(response):
            if not response.headers.get("Content-Type", "").startswith("text/csv"):
                return f"not CSV: {response.headers.get('Content-Type')}"
            return None if response.text.count("\n") >= 1 else "no header row"

        self.call("export.csv", self.page_path + "orders/export.csv", params=params,
                  check=check)

    # -- what a user types into the filters
    def filters(self) -> dict[str, str]:
        rng, params = self.rng, {}
        if rng.random() < 0.5:
            params["status"] = ",".join(rng.sample(STATUSES, rng.choice([1, 1, 2])))
        if rng.random() < 0.4:
            start = dt.date.today() - dt.timedelta(days=rng.randint(0, 30))
            params["date_from"] = start.isoformat()
            params["date_to"] = (start + dt.timedelta(days=rng.randint(0, 14))).isoformat()
        if rng.random() < 0.7:
            from shipgear_exchange_plugin.orders import SORTS

            params["sort"] = rng.choice(["", "-"]) + rng.choice(list(SORTS))
        if self.order_ids and rng.random() < 0.1:
            params["q"] = rng.choice(self.order_ids)[:rng.randint(3, 8)]
        if self.account_ids and rng.random() < 0.15:
            params["account"] = str(rng.choice(self.account_ids))
        return params

    def remember_rows(self, text: str) -> None:
        ids = ROW_LINK.findall(text)
        if ids:
            self.row_ids = ids

    def remember_items(self, items: list[dict]) -> None:
        if items:
            self.row_ids = [str(i["id"]) for i in items]
            self.order_ids = [i["order_id"] for i in items]


# -- the processes --------------------------------------------------------------------------
@dataclass
class Stack:
    """Sandbox, host server and workers, each in a process group of its own."""

    app: object
    base_url: str
    sandbox_url: str
    users: list[tuple[str, int]]
    password: str
    sandbox: subprocess.Popen
    server: subprocess.Popen | None = None
    workers: Workers | None = None

    def stop(self) -> None:
        if self.server is not None:
            stop_group(self.server, signal.SIGTERM, wait=30)
        if self.workers is not None:
            self.workers.stop()
        stop_group(self.sandbox, signal.SIGKILL)

    def check(self) -> None:
        if self.server is not None and self.server.poll() is not None:
            raise SystemExit(f"the host server stopped (exit {self.server.returncode}); "
                             "see server.log")
        if self.workers is not None:
            self.workers.check()


def wait_until(what: str, ready, seconds: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if not alive() or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start; see the logs")
        time.sleep(0.2)


def http_ok(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=(1, 5), allow_redirects=False).status_code == 200
    except requests.RequestException:
        return False


def seed_data(app, args: argparse.Namespace) -> tuple[list[tuple[str, int]], str]:
    """Companies, store accounts and shipments (``devhost.seed``), and one host user per
    load user, a member (support or viewer) of one enabled company, round robin."""
    import sqlalchemy as sa
    from werkzeug.security import generate_password_hash

    from shipgear_exchange_plugin.devhost.models import Company, PluginCompany, Role, db
    from shipgear_exchange_plugin.devhost.models import User as HostUser
    from shipgear_exchange_plugin.devhost.seed import DEMO_PASSWORD, seed

    with app.app_context():
        seed(app, companies=args.companies, shipments=args.shipments,
             enabled=max(1, args.companies - 1), seed_value=args.seed)
        enabled = db.session.execute(
            sa.select(Company).join(PluginCompany, PluginCompany.company_id == Company.id)
            .where(PluginCompany.plugin_id == PLUGIN_ID).order_by(Company.id)).scalars().all()
        hashed = generate_password_hash(DEMO_PASSWORD)  # once: the same password for all
        users = []
        for n in range(args.users):
            company = enabled[n % len(enabled)]
            user = HostUser(username=f"load{n + 1:02d}", password_hash=hashed,
                            role=Role.SUPPORT if n % 2 else Role.VIEWER)
            user.companies.append(company)
            db.session.add(user)
            users.append((user.username, company.id))
        db.session.commit()
        db.session.remove()
    return users, DEMO_PASSWORD


def start_stack(args: argparse.Namespace) -> Stack:
    """Fresh tables and Redis, the sandbox, seeded data (its open orders registered with
    their sandbox stores, as the demo does), then the host server and the workers;
    returns when all of them answer."""
    import redis
    import rq

    from shipgear_exchange_plugin.config import DEMO_OVERRIDES
    from shipgear_exchange_plugin.crypto import generate_key
    from shipgear_exchange_plugin.devhost import create_app, init_db
    from shipgear_exchange_plugin.devhost.models import db
    from shipgear_exchange_plugin.devhost.simulate import preload_open_orders

    args.logs.mkdir(parents=True, exist_ok=True)
    prepare_database(args.database_url)
    connection = redis.Redis.from_url(args.redis_url)
    connection.flushdb()
    sandbox_url = f"http://127.0.0.1:{free_port()}"
    with open(args.logs / "sandbox.log", "w") as log:
        sandbox = subprocess.Popen(  # noqa: S603 - the throughput benchmark's sandbox mode
            [sys.executable, str(HERE / "writeback_throughput.py"), "--serve-sandbox",
             sandbox_url.rsplit(":", 1)[1]],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stack = None
    try:
        key, secret = generate_key(), "load-" + os.urandom(8).hex()
        app = create_app({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                          "SECRET_KEY": secret, "SHIPGEAR_ENCRYPTION_KEY": key,
                          "SHIPGEAR_SANDBOX_URL": sandbox_url, "TESTING": True,
                          "INSTANCE_PATH": str(args.logs / "instance")})
        init_db(app)
        users, password = seed_data(app, args)
        wait_until("the sandbox", lambda: http_ok(f"{sandbox_url}/_sandbox/health"), 30,
                   lambda: sandbox.poll() is None)
        with app.app_context():  # as the demo does before its worker starts
            preload_open_orders()
            db.session.remove()
        stack = Stack(app, f"http://127.0.0.1:{free_port()}", sandbox_url, users, password,
                      sandbox)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SHIPGEAR")
               and k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "EXCHANGE_APP")}
        env.update({k: str(v) for k, v in DEMO_OVERRIDES.items()})
        env.update(DATABASE_URL=args.database_url, REDIS_URL=args.redis_url,
                   SECRET_KEY=secret, SHIPGEAR_ENCRYPTION_KEY=key,
                   SHIPGEAR_SANDBOX_URL=sandbox_url, PYTHONPATH=str(ROOT),
                   PYTHONUNBUFFERED="1", EXCHANGE_INSTANCE_PATH=str(args.logs / "instance"))
        port = stack.base_url.rsplit(":", 1)[1]
        with open(args.logs / "server.log", "w") as log:
            stack.server = subprocess.Popen(  # noqa: S603 - our own console script
                [SCRIPT, "demo", "--host", "127.0.0.1", "--port", port,
                 "--ship-every", str(args.ship_every)],
                env=env, cwd=args.logs, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        stack.workers = Workers(env, args.logs, args.workers, label="worker")
        wait_until("the host server", lambda: http_ok(f"{stack.base_url}/login"), 90,
                   lambda: stack.server.poll() is None)
        wait_until("the workers",
                   lambda: len(rq.Worker.all(connection=connection)) >= args.workers, 90,
                   lambda: all(p.poll() is None for p in stack.workers.processes))
        return stack
    except BaseException:
        if stack is not None:
            stack.stop()
        else:
            stop_group(sandbox, signal.SIGKILL)
        raise


# -- the run --------------------------------------------------------------------------------
def writeback_figures(app, since: dt.datetime, until: dt.datetime) -> dict[str, int]:
    """What the host and the workers did between ``since`` and ``until``, from the rows."""
    import sqlalchemy as sa

    from shipgear_exchange_plugin.devhost.models import Shipment, db
    from shipgear_exchange_plugin.models import Attempt, Writeback

    def count(*where, model=Writeback) -> int:
        return db.session.execute(sa.select(sa.func.count()).select_from(model)
                                  .where(*where)).scalar()

    done = Writeback.status.in_(FINAL)
    within = Writeback.updated_at.between(since, until)
    new = Writeback.created_at.between(since, until)
    with app.app_context():
        figures = {
            "completed": count(done, within),
            "succeeded": count(Writeback.status == "success", within),
            "failed": count(Writeback.status == "failed", within),
            "send_attempts": count(Attempt.started_at.between(since, until), model=Attempt),
            "new_shipments": count(Shipment.created_at.between(since, until), model=Shipment),
            "new_writebacks": count(new),
            "new_completed": count(new, done, within),
            "not_final_now": count(Writeback.status.in_(("pending", "submitted"))),
        }
        db.session.remove()
    return figures


def store_calls(sandbox_url: str) -> int:
    import requests

    answered = requests.get(f"{sandbox_url}/_bench/answered", timeout=10).json()
    return sum(answered.values())


def run(args: argparse.Namespace, out=print) -> LoadResult:
    """Start everything, let the users browse for ``args.seconds``, stop everything."""
    import sqlalchemy as sa

    from shipgear_exchange_plugin.models import utcnow

    load_before = os.getloadavg()[0]
    out(f"load average before: {load_before:.2f}")
    out(f"starting: sandbox, {args.shipments} shipments seeded over {args.companies} "
        f"companies, `shipgear-exchange demo` (ship every {args.ship_every:g} s), "
        f"{args.workers} workers...")
    stack = start_stack(args)
    try:
        ready = threading.Barrier(args.users + 1)
        go = threading.Event()
        window = {"deadline": math.inf}
        users = [User(n, stack.base_url, name, stack.password, args, ready, go, window)
                 for n, (name, _) in enumerate(stack.users)]
        for user in users:
            user.start()
        ready.wait(timeout=180)  # every user signed in (or gave up)
        stack.check()
        database = sa.make_url(args.database_url).database
        groups = {
            "host server": lambda pid, group, cmd: group == stack.server.pid,
            "workers": lambda pid, group, cmd: group in stack.workers.pids,
            "sandbox": lambda pid, group, cmd: group == stack.sandbox.pid,
            f"postgres ({database})":
                lambda pid, group, cmd: cmd.startswith("postgres:") and f" {database} " in cmd,
            "load generator": lambda pid, group, cmd: pid == os.getpid(),
        }
        calls_before = store_calls(stack.sandbox_url)
        cpu_before = {name: cpu_by_process(wanted) for name, wanted in groups.items()}
        machine_before = machine_cpu_seconds()
        since = utcnow()
        started = time.monotonic()
        window["deadline"] = started + args.seconds
        out(f"{args.users} users signed in; browsing for {args.seconds:g} s...")
        go.set()
        end = started + args.seconds + 2 * (CONNECT_TIMEOUT + args.timeout) + 30
        for user in users:
            user.join(timeout=max(0.0, end - time.monotonic()))
        elapsed = time.monotonic() - started
        until = utcnow()
        cpu = {name: cpu_used(cpu_before[name], cpu_by_process(wanted))
               for name, wanted in groups.items()}
        cpu["whole machine"] = machine_cpu_seconds() - machine_before
        cpu["rest (redis-server, other sessions)"] = max(
            0.0, cpu["whole machine"] - sum(v for k, v in cpu.items() if k != "whole machine"))
        calls = store_calls(stack.sandbox_url) - calls_before
        stack.check()  # the server and every worker still running
        figures = writeback_figures(stack.app, since, until)
        figures["store_calls"] = calls
        stuck = [u.name for u in users if u.is_alive()]
        if stuck:
            raise SystemExit(f"users still running after the run: {stuck}")
    finally:
        stack.stop()
    latencies: dict[str, list[float]] = {}
    errors: Counter[str] = Counter()
    for user in users:
        for name, values in user.latencies.items():
            latencies.setdefault(name, []).extend(values)
        errors.update(user.errors)
    seen = set(latencies) | set(errors)
    names = [n for n in ENDPOINTS if n in seen] + sorted(seen - set(ENDPOINTS))
    return LoadResult(
        users=args.users, seconds=args.seconds, elapsed=elapsed,
        endpoints={n: EndpointStats.of(latencies.get(n, []), errors[n]) for n in names},
        total=EndpointStats.of([v for n in names for v in latencies.get(n, [])],
                               sum(errors.values())),
        login=EndpointStats.of([v for u in users for v in u.login_latency],
                               sum(u.login_errors for u in users)),
        error_samples=[s for u in users for s in u.samples][:20],
        writebacks=figures, cpu=cpu, load_before=load_before,
        load_after=os.getloadavg()[0])


def report(result: LoadResult) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    lines = [f"\n{'surface':<24} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} "
             f"{'max ms':>7}"]
    rows = [*result.endpoints.items(), ("all", result.total)]
    for name, s in rows:
        lines.append(f"{name:<24} {s.requests:>8} {s.errors:>6} {ms(s.p50_ms):>7} "
                     f"{ms(s.p95_ms):>7} {ms(s.max_ms):>7}")
    s = result.login
    lines.append(f"(sign-in before the run: {s.requests} users, {s.errors} failed, "
                 f"p50 {ms(s.p50_ms)} ms, p95 {ms(s.p95_ms)} ms)")
    lines.append(f"\n{result.total.requests} requests in {result.elapsed:.1f} s = "
                 f"{result.requests_per_s:.1f} requests/s from {result.users} users; "
                 f"errors: {result.errors}")
    wb = result.writebacks
    lines.append(
        f"meanwhile: the host processed {wb['new_shipments']} new shipments "
        f"({wb['new_writebacks']} write-backs); the workers completed {wb['completed']} "
        f"write-backs ({wb['succeeded']} success, {wb['failed']} failed; "
        f"{wb['new_completed']} of them new ones), made {wb['send_attempts']} send attempts "
        f"and {wb['store_calls']} store calls; {wb['not_final_now']} rows pending or "
        "submitted at the end")
    available = result.elapsed * (os.cpu_count() or 1)
    lines.append("CPU seconds during the run: " + ", ".join(
        f"{k} {v:.1f}" for k, v in result.cpu.items()) + f" (of {available:.0f} available)")
    lines.append(f"load average before/after: {result.load_before:.2f} / "
                 f"{result.load_after:.2f}")
    if result.error_samples:
        lines.append("errors (first ones):")
        lines.extend(f"  {sample}" for sample in result.error_samples)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import redis

    connection = redis.Redis.from_url(args.redis_url)
    print(f"# Load, {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python "
          f"{platform.python_version()}, Redis {connection.info()['redis_version']}")
    connection.close()
    print(f"{args.users} users, {args.seconds:g} s, think {args.think:g} s, timeout "
          f"{args.timeout:g} s; {args.workers} workers; database {args.database_url}, "
          f"Redis {args.redis_url}; logs in {args.logs}")
    result = run(args)
    print(report(result))
    summary = {"users": result.users, "seconds": round(result.elapsed, 1),
               "requests": result.total.requests, "errors": result.errors,
               "requests_per_s": round(result.requests_per_s, 1),
               "p50_ms": {n: round(s.p50_ms or 0, 1) for n, s in result.endpoints.items()},
               "p95_ms": {n: round(s.p95_ms or 0, 1) for n, s in result.endpoints.items()},
               "writebacks": result.writebacks}
    print("json: " + json.dumps(summary))
    if result.errors:
        print(f"FAIL: {result.errors} requests failed")
        return 1
    if not result.writebacks["completed"]:
        print("FAIL: no write-back completed during the run (see the worker logs)")
        return 2
    print("PASS: no request failed, write-backs completed during the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
