"""The shipgear-exchange console script, including the demo served over real HTTP."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.fernet import Fernet

from shipgear_exchange_plugin import migrate
from shipgear_exchange_plugin.cli import main

from .services import free_port

SCRIPT = str(Path(sys.executable).parent / "shipgear-exchange")


@pytest.mark.parametrize("args", [[], ["demo"], ["worker"], ["seed"], ["db"], ["db", "upgrade"],
                                  ["generate-key"], ["rotate-credentials"]])
def test_every_command_has_help(args):
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_generate_key_prints_a_usable_fernet_key():
    result = CliRunner().invoke(main, ["generate-key"])
    Fernet(result.output.strip().encode())


def _env(tmp_path, **extra) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite", "SECRET_KEY": "s",
            "SHIPGEAR_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "EXCHANGE_INSTANCE_PATH": str(tmp_path / "instance"), **extra}


def test_db_upgrade_then_seed_fill_the_database(tmp_path):
    env = _env(tmp_path)
    upgraded = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"revision {migrate.head_revision()}" in upgraded.output
    seeded = CliRunner().invoke(main, ["seed", "--companies", "2", "--shipments", "40"], env=env)
    assert seeded.exit_code == 0, seeded.output
    assert "Seeded 2 companies, 4 store accounts, 40 shipments." in seeded.output
    engine = sa.create_engine(env["DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from host_shipment")).scalar() == 40
        assert conn.execute(sa.text("select count(*) from sgx_writeback")).scalar() >= 40
    engine.dispose()


def test_missing_key_stops_the_command_with_instructions(tmp_path):
    env = _env(tmp_path, SHIPGEAR_ENCRYPTION_KEY="")
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 1
    assert "SHIPGEAR_ENCRYPTION_KEY is not set" in result.output
    assert "generate-key" in result.output


def test_seed_rejects_nonsense_counts(tmp_path):
    result = CliRunner().invoke(main, ["seed", "--shipments", "-5"], env=_env(tmp_path))
    assert result.exit_code == 2
    assert "-5 is not in the range" in result.output


def test_demo_serves_the_plugin_page_with_the_documented_logins(tmp_path):
    """What `make demo` runs, on embedded defaults, reached over real HTTP."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} and not k.startswith("SHIPGEAR")}
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    process = subprocess.Popen([SCRIPT, "demo", "--port", str(port), "--ship-every", "1"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                requests.get(base + "/login", timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.stdout.read()) from None
                time.sleep(0.3)
        assert (tmp_path / "instance" / "exchange-demo.sqlite").exists()
        http = requests.Session()
        for username in ("admin", "support", "viewer"):
            http.cookies.clear()
            login_page = http.get(base + "/login", timeout=5).text
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login_page).group(1)
            companies = http.post(base + "/login", timeout=5, data={
                "username": username, "password": "demo", "csrf_token": token})
            assert companies.url.endswith("/companies/"), username
            assert "View eCommerce" in companies.text
        page = http.get(base + "/companies/1/ecommerce/", timeout=10)
        assert page.status_code == 200
        assert "Connection Status" in page.text and "Amazon US" in page.text
        # A living demo: the in-process worker writes shipments back to the in-process
        # sandbox stores, over HTTP, while the demo desk keeps shipping.
        writes, deadline = 0, time.monotonic() + 60
        while not writes and time.monotonic() < deadline:
            writes = sum(requests.get(f"{base}/sandbox/_sandbox/{platform}/c1", timeout=5)
                         .json()["writes"] for platform in ("amazon", "shopify", "bigcommerce"))
            time.sleep(0.5)
        assert writes > 0, "no write-back reached the demo's sandbox"
        # ... and the shipments processed since it started go out within seconds, not
        # queued behind the seeded backlog (3,000 shipments, as `make demo` seeds).
        database = sqlite3.connect(tmp_path / "instance" / "exchange-demo.sqlite")
        first, deadline = None, time.monotonic() + 30
        while (first is None or first[1] is None) and time.monotonic() < deadline:
            first = database.execute(  # the first shipment the demo desk processed
                "SELECT created_at, last_attempt_at FROM sgx_writeback WHERE created_at > ? "
                "ORDER BY id LIMIT 1", (started.isoformat(sep=" "),)).fetchone()
            time.sleep(0.5)
        database.close()
        assert first is not None and first[1] is not None, (
            f"the demo's first new shipment was not attempted within 30 s: {first}")
        waited = (dt.datetime.fromisoformat(first[1])
                  - dt.datetime.fromisoformat(first[0])).total_seconds()
        assert waited < 15, f"the demo's first new shipment waited {waited:.0f} s"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/" in output
    assert "admin" in output and "'demo'" in output


def test_demo_with_a_sandbox_of_its_own_registers_the_open_orders_there(tmp_path, sandbox):
    """`SHIPGEAR_SANDBOX_URL` points the demo at a separate sandbox (a load test, a shared
    one): the orders still waiting for a write-back are registered there at start, as with
    the in-process one, so the worker's first attempts meet orders the store knows."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} and not k.startswith("SHIPGEAR")}
    env["SHIPGEAR_SANDBOX_URL"] = sandbox.url
    process = subprocess.Popen([SCRIPT, "demo", "--port", str(port), "--shipments", "200",
                                "--ship-every", "0"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.stdout.read()) from None
                time.sleep(0.3)
        known = {platform: sandbox.store.account(platform, "c1").snapshot()["orders"]
                 for platform in ("amazon", "shopify", "woocommerce", "bigcommerce")}
        assert all(count > 0 for count in known.values()), known
        # failed ones too: support's Retry now must meet an order the store knows
        database = sqlite3.connect(tmp_path / "instance" / "exchange-demo.sqlite")
        failed = database.execute(
            "SELECT a.endpoint, w.order_id FROM sgx_writeback w JOIN sgx_store_account a "
            "ON a.id = w.account_id WHERE w.status = 'failed'").fetchall()
        database.close()
        assert failed
        for endpoint, order_id in failed:
            platform, key = endpoint.rstrip("/").split("/")[-2:]
            assert order_id in sandbox.store.account(platform, key).orders, (endpoint, order_id)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=20)
