"""The ``shipgear-exchange`` console script.

It needs a host app to run in. ``EXCHANGE_APP`` names the host's app factory
(``module:function``); the default is the reference host. This module is the one place
outside ``devhost`` that names it, and only as that default string.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from pathlib import Path

import click
from flask import Flask

DEFAULT_APP = "shipgear_exchange_plugin.devhost:create_app"
#: Seconds over which the demo's seeded backlog comes due (see seed.spread_backlog).
BACKLOG_SPREAD_S = 600


def _factory(spec: str | None = None):
    module_name, _, attr = (spec or os.environ.get("EXCHANGE_APP") or DEFAULT_APP).partition(":")
    return getattr(importlib.import_module(module_name), attr or "create_app")


def _make_app(config: dict | None = None) -> Flask:
    from .crypto import EncryptionKeyError

    try:
        return _factory()(config)
    except EncryptionKeyError as exc:
        raise click.ClickException(str(exc)) from None
    except RuntimeError as exc:  # the host's own configuration errors
        if type(exc).__name__.endswith("ConfigError"):
            raise click.ClickException(str(exc)) from None
        raise


def _host(app: Flask):
    from .host_contract import EXTENSION_KEY

    return app.extensions[EXTENSION_KEY]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """ShipGear Exchange eCommerce plugin: demo, worker, seed and database commands."""


@main.command()
@click.option("--host", "bind", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--shipments", default=3000, show_default=True, type=int,
              help="Shipments to seed into a new demo database.")
@click.option("--ship-every", default=8.0, show_default=True, type=click.FloatRange(0),
              help="Seconds between the demo desk's new shipments (0: none).")
def demo(bind: str, port: int, shipments: int, ship_every: float) -> None:
    """Serve the reference host with the plugin on embedded defaults.

    SQLite under instance/, an in-process Redis and worker, demo data on first start.
    With DATABASE_URL and REDIS_URL set it uses those, and workers run separately.
    """
    from .devhost import init_db
    from .devhost.host import MEMORY_REDIS_URL
    from .devhost.seed import DEMO_PASSWORD, seed, spread_backlog
    from .worker import EmbeddedWorker

    config = _demo_config()
    own_sandbox = not os.environ.get("SHIPGEAR_SANDBOX_URL")
    if own_sandbox:
        config["SHIPGEAR_SANDBOX_URL"] = f"http://{bind}:{port}/sandbox"
    app = _make_app(config)
    sandbox_app = None
    if own_sandbox:  # the stores, in-process, reached over real HTTP like real ones
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        from .sandbox import create_app as create_sandbox

        sandbox_app = create_sandbox()
        app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/sandbox": sandbox_app})
        # The worker's own store calls would drown the access log the user reads.
        logging.getLogger("werkzeug").addFilter(
            lambda record: " /sandbox/" not in record.getMessage())
    init_db(app)
    host = _host(app)
    with app.app_context():
        from .devhost.models import User, db

        if db.session.query(User).count() == 0:
            click.echo(f"Seeding demo data ({shipments} shipments)...")
            seed(app, companies=3, shipments=shipments)
            spread_backlog(BACKLOG_SPREAD_S)
        if sandbox_app is not None:  # the stores know the orders still being written back
            from .devhost.simulate import apply_demo_faults, preload_open_orders

            preload_open_orders(sandbox_app.test_client())
            apply_demo_faults(sandbox_app.test_client())
        else:  # a sandbox of its own (SHIPGEAR_SANDBOX_URL): it must know the orders too
            import requests

            from .devhost.simulate import preload_open_orders

            try:
                preload_open_orders()
            except requests.RequestException as exc:
                click.echo(f"The sandbox at {app.config['SHIPGEAR_SANDBOX_URL']} did not "
                           f"take the open orders ({exc}); write-backs to orders it does "
                           "not know will fail.", err=True)
    manifest = host.plugins.manifests.get("shipgear-ecommerce")
    worker = None
    if app.config["REDIS_URL"].startswith(MEMORY_REDIS_URL) and manifest is not None:
        worker = EmbeddedWorker(app, host.redis(), manifest.queues, threads=3,
                                periodic_jobs=manifest.data["periodic_jobs"]).start()
    click.echo(f"\nExchange with the ShipGear eCommerce plugin: http://{bind}:{port}/")
    click.echo(f"Logins (password '{DEMO_PASSWORD}'): admin (host admin, every company), "
               "support and viewer (first company only).")
    if worker is None:
        click.echo("REDIS_URL is set: run `shipgear-exchange worker` for background jobs.")
    desk = None
    if ship_every > 0:
        from .devhost.simulate import ShipmentSimulator

        desk = ShipmentSimulator(app, "shipgear-ecommerce", every=ship_every)
        desk.start()
        click.echo(f"A new shipment is processed every {ship_every:g} s (--ship-every 0: off).")
    try:
        app.run(host=bind, port=port, threaded=True, use_reloader=False)
    finally:
        if desk is not None:
            desk.stop()
        if worker is not None:
            worker.stop()


def _demo_config() -> dict[str, str | bool]:
    """Demo mode with its own SECRET_KEY and encryption key, kept across restarts under
    instance/ (values set in the environment win)."""
    import secrets as pysecrets

    from .crypto import generate_key

    instance = Path(os.environ.get("EXCHANGE_INSTANCE_PATH") or Path.cwd() / "instance")
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "demo-secrets.json"
    if path.exists():
        values = json.loads(path.read_text())
    else:
        values = {"SECRET_KEY": pysecrets.token_urlsafe(32),
                  "SHIPGEAR_ENCRYPTION_KEY": generate_key()}
        path.write_text(json.dumps(values))
        path.chmod(0o600)
    from .config import DEMO_OVERRIDES

    config: dict[str, str | bool] = {"EXCHANGE_DEMO": True, "INSTANCE_PATH": str(instance)}
    for key, value in DEMO_OVERRIDES.items():
        config[key] = os.environ.get(key) or value
    for key, value in values.items():
        config[key] = os.environ.get(key) or value
    return config


@main.command()
@click.option("--host", "bind", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5001, show_default=True, type=int)
@click.option("--seed", "seed_value", default=7, show_default=True, type=int,
              help="Random seed of the stores' products and seeded orders.")
def sandbox(bind: str, port: int, seed_value: int) -> None:
    """Serve the marketplace sandbox alone (Amazon, Shopify, WooCommerce, BigCommerce).

    Accounts live under /{platform}/{key}; faults are set under /_sandbox (see README).
    """
    from .sandbox import SandboxServer, SandboxStore, create_app

    server = SandboxServer(create_app(SandboxStore(seed=seed_value)), bind, port)
    click.echo(f"Marketplace sandbox: {server.url}/  (control API: {server.url}/_sandbox)")
    try:
        server.server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        pass
    finally:
        server.server.server_close()


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--queues", "-q", multiple=True, help="Queues to work (default: plugin.yaml's).")
def worker(burst: bool, queues: tuple[str, ...]) -> None:
    """Run an RQ worker (with RQ's scheduler) on the plugin's queues."""
    from .plugin import state
    from .worker import run_worker

    app = _make_app()
    names = list(queues) or state(app).manifest.queues
    connection = _host(app).redis()
    if app.config["REDIS_URL"].startswith("memory://"):
        raise click.ClickException(
            "REDIS_URL is not set: a separate worker needs a real Redis (the demo runs its own).")
    click.echo(f"Working queues: {', '.join(names)}")
    run_worker(app, connection, names, burst=burst,
               periodic_jobs=state(app).manifest.data["periodic_jobs"])


@main.command("seed")
@click.option("--companies", default=3, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--shipments", default=3000, show_default=True, type=click.IntRange(0))
@click.option("--seed", "seed_value", default=7, show_default=True, type=int,
              help="Random seed: the same seed gives the same data.")
def seed_command(companies: int, shipments: int, seed_value: int) -> None:
    """Generate companies, users, store accounts and shipments into DATABASE_URL."""
    from .devhost import init_db
    from .devhost.seed import seed

    app = _make_app(None if os.environ.get("SHIPGEAR_ENCRYPTION_KEY") else _demo_config())
    init_db(app)
    with app.app_context():
        result = seed(app, companies=companies, shipments=shipments, seed_value=seed_value)
    click.echo(f"Seeded {result.companies} companies, {result.accounts} store accounts, "
               f"{result.shipments} shipments.")


@main.group()
def db() -> None:
    """The plugin's database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the plugin's migrations to DATABASE_URL (its tables only)."""
    from .migrate import current_revision, upgrade

    app = _make_app()
    with app.app_context():
        engine = _host(app).db.engine
        upgrade(engine, revision)
        click.echo(f"Plugin tables at revision {current_revision(engine)}.")


@main.command("generate-key")
def generate_key_command() -> None:
    """Print a new Fernet key for SHIPGEAR_ENCRYPTION_KEY."""
    from .crypto import generate_key

    click.echo(generate_key())


@main.command("rotate-credentials")
def rotate_credentials() -> None:
    """Re-encrypt every store account's credentials with the newest key."""
    from .credentials import rotate_all
    from .plugin import state

    app = _make_app()
    with app.app_context():
        count = rotate_all(_host(app).db.session, state(app).credentials)
    click.echo(f"Re-encrypted credentials of {count} store accounts.")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
