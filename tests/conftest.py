"""Fixtures: the reference host on each backend, signed-in clients, seeded data.

Every app-level test runs on the embedded default (SQLite file + in-process Redis) and,
when ``SHIPGEAR_TEST_DATABASE_URL`` and ``SHIPGEAR_TEST_REDIS_URL`` are set, on
PostgreSQL + Redis too. Under ``CI=true`` those services are required: a missing or
unreachable one fails the run instead of quietly testing less.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from benchmarks.processes import drop_plugin_tables
from shipgear_exchange_plugin.crypto import generate_key
from shipgear_exchange_plugin.devhost import create_app, init_db, normalise_database_url
from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.models import Base

PG_URL = os.environ.get("SHIPGEAR_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("SHIPGEAR_TEST_REDIS_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent


def _check_services() -> list[str]:
    problems = []
    if not PG_URL or not REDIS_URL:
        problems.append("SHIPGEAR_TEST_DATABASE_URL and SHIPGEAR_TEST_REDIS_URL must be set")
        return problems
    try:
        engine = sa.create_engine(normalise_database_url(PG_URL))
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"PostgreSQL at {PG_URL} unreachable: {exc}")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"Redis at {REDIS_URL} unreachable: {exc}")
    return problems


SERVICE_PROBLEMS = _check_services() if (PG_URL or REDIS_URL or IN_CI) else ["not configured"]
BACKENDS = ["embedded"] + (["services"] if not SERVICE_PROBLEMS else [])
#: For tests that need the real servers (processes of their own, a Redis or PostgreSQL to
#: lose): skipped with the reason outside CI when they are not configured; in CI the
#: session fails instead (pytest_sessionstart).
NEEDS_SERVICES = pytest.mark.skipif(
    "services" not in BACKENDS and not IN_CI,
    reason="needs real PostgreSQL and Redis: set SHIPGEAR_TEST_DATABASE_URL and "
           "SHIPGEAR_TEST_REDIS_URL")
#: The stores' official API descriptions: ../shared/specs beside the project (see its
#: README), or where SHIPGEAR_SPECS_DIR points.
SPECS_DIR = Path(os.environ.get("SHIPGEAR_SPECS_DIR") or ROOT.parent / "shared" / "specs")


def spec_file(folder: str, name: str) -> Path:
    """One spec file. Without the specs a test that needs them is skipped saying where
    they were looked for, except in CI, where that fails the test."""
    path = SPECS_DIR / folder / name
    if not path.is_file():
        message = (f"the stores' API descriptions are not at {path.parent}: keep the project "
                   "beside ../shared, or set SHIPGEAR_SPECS_DIR")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


#: Run a test on the services backend only.
SERVICES_ONLY = pytest.mark.parametrize(
    "backend", [pytest.param("services", marks=NEEDS_SERVICES)], indirect=True)


def pytest_sessionstart(session):
    if IN_CI and SERVICE_PROBLEMS:
        raise pytest.UsageError("CI=true but the real services are not usable: "
                                + "; ".join(SERVICE_PROBLEMS))


def pytest_report_header(config):
    return f"shipgear backends: {', '.join(BACKENDS)}"


_prepared: set[str] = set()


def _reset_postgres(url: str) -> None:
    """Drop every table of ours once per run, so migrations start from nothing."""
    drop_plugin_tables(url)


def _truncate_all(app) -> None:
    with app.app_context():
        existing = set(sa.inspect(db.engine).get_table_names())
        ordered = [*reversed(Base.metadata.sorted_tables), *reversed(db.metadata.sorted_tables)]
        tables = [t.name for t in ordered if t.name in existing]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("truncate " + ", ".join(f'"{t}"' for t in tables)
                                     + " restart identity cascade"))
            else:
                for name in tables:
                    conn.execute(sa.text(f'delete from "{name}"'))


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def make_app(backend, tmp_path):
    """Build apps on this test's backend: ``make_app(**config_overrides)``."""
    created = []

    def factory(**overrides):
        config = {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SHIPGEAR_ENCRYPTION_KEY": generate_key() if not created else
            created[0].config["SHIPGEAR_ENCRYPTION_KEY"],
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SHIPGEAR_SANDBOX_URL": "http://127.0.0.1:9/sandbox",
            # The page's own refresh off, so that a browser test's grid changes only when
            # the test acts; test_browser_grid turns it on to prove it.
            "SHIPGEAR_PAGE_REFRESH": 0,
        }
        if backend == "embedded":
            config["DATABASE_URL"] = f"sqlite:///{tmp_path / 'exchange.sqlite'}"
            config["REDIS_URL"] = f"memory://{tmp_path.name}"
        else:
            config["DATABASE_URL"] = PG_URL
            config["REDIS_URL"] = REDIS_URL
        config.update(overrides)
        app = create_app(config)
        if backend == "services" and "services" not in _prepared:
            _reset_postgres(PG_URL)
            _prepared.add("services")
        if backend == "services" and not created:
            init_db(app)  # the tables exist from here on; empty them for this test
            _truncate_all(app)
            app.extensions["exchange.host"].redis().flushdb()
        init_db(app)
        created.append(app)
        return app

    yield factory
    for app in created:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app(WTF_CSRF_ENABLED=False)


@pytest.fixture
def seeded(app):
    """Three companies (plugin enabled on the first two), 4 accounts each, 300 shipments."""
    from shipgear_exchange_plugin.devhost.seed import seed

    with app.app_context():
        seed(app, companies=3, shipments=300)
    return app


def login(client, username: str, password: str = "demo"):
    return client.post("/login", data={"username": username, "password": password})


@pytest.fixture
def client_as(seeded):
    def make(username: str):
        client = seeded.test_client()
        response = login(client, username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return make


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def sandbox():
    """The marketplace sandbox on a free port of this machine, fresh for each test."""
    from shipgear_exchange_plugin.sandbox import SandboxServer

    server = SandboxServer().start()
    yield server
    server.stop()


@pytest.fixture
def store_host(make_app, sandbox):
    """Build a host whose store accounts live on the test's sandbox: ``store_host(
    companies=2, shipments=20)`` seeds that many companies, all with the plugin enabled
    unless ``enabled`` says how many."""
    from shipgear_exchange_plugin.devhost.seed import seed

    def build(companies: int = 1, shipments: int = 0, enabled: int | None = None):
        app = make_app(WTF_CSRF_ENABLED=False, SHIPGEAR_SANDBOX_URL=sandbox.url)
        with app.app_context():
            seed(app, companies=companies, shipments=shipments,
                 enabled=companies if enabled is None else enabled)
        return app

    return build
