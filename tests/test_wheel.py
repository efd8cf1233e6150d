"""The built wheel works on its own: right files inside, installs from PyPI, serves the page.

The wheel is built from the repository, installed into a fresh virtual environment, and
exercised there from a directory outside the repository, so nothing of the checkout (its
top-level ``blueprints/``, ``jobs/``, ``templates/``...) can stand in for a missing file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "shipgear_exchange_plugin"

REQUIRED_FILES = [
    f"{PACKAGE}/plugin.yaml",
    f"{PACKAGE}/blueprints/__init__.py",
    f"{PACKAGE}/jobs/__init__.py",
    f"{PACKAGE}/templates/shipgear_exchange/page.html",
    f"{PACKAGE}/static/shipgear.js",
    f"{PACKAGE}/migrations/versions/0001_plugin_tables.py",
    f"{PACKAGE}/devhost/templates/devhost/layout.html",
    f"{PACKAGE}/devhost/templates/devhost/login.html",
    f"{PACKAGE}/devhost/templates/devhost/companies.html",
    f"{PACKAGE}/devhost/templates/devhost/plugins.html",
    f"{PACKAGE}/devhost/static/vendor/htmx-2.0.11.min.js",
]
# The checkout's layout folders must only ever install inside the package.
FORBIDDEN_TOP_LEVEL = {"blueprints", "jobs", "tests", "templates", "static", "plugin.yaml"}

# Runs inside the fresh venv, with the temporary directory as cwd: argv[1] is that directory.
CHECK_SCRIPT = textwrap.dedent(
    '''
    import importlib
    import importlib.metadata
    import subprocess
    import sys
    import sysconfig
    from pathlib import Path

    from cryptography.fernet import Fernet

    tmp = Path(sys.argv[1])
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()

    # The checkout's top-level folders are not importable from the installed wheel.
    for name in ("blueprints", "jobs"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            pass
        else:
            raise AssertionError(f"`import {name}` worked; the wheel leaks a top-level package")

    import shipgear_exchange_plugin
    from shipgear_exchange_plugin.manifest import load_manifest
    from shipgear_exchange_plugin.paths import MANIFEST_PATH

    package_file = Path(shipgear_exchange_plugin.__file__).resolve()
    assert package_file.is_relative_to(site_packages), (package_file, site_packages)
    assert MANIFEST_PATH.resolve().is_relative_to(site_packages), (MANIFEST_PATH, site_packages)
    manifest = load_manifest(MANIFEST_PATH)
    installed_version = importlib.metadata.version("shipgear-exchange-plugin")
    assert manifest.version == installed_version, (manifest.version, installed_version)

    # The reference host, with the plugin found through its installed entry point.
    from shipgear_exchange_plugin.devhost import create_app, init_db
    from shipgear_exchange_plugin.devhost.seed import seed

    app = create_app({
        "TESTING": True,
        "SECRET_KEY": "x",
        "SHIPGEAR_ENCRYPTION_KEY": Fernet.generate_key().decode("ascii"),
        "DATABASE_URL": f"sqlite:///{tmp / 'w.sqlite'}",
        "INSTANCE_PATH": str(tmp / "instance"),
        "WTF_CSRF_ENABLED": False,
    })
    init_db(app)
    with app.app_context():
        seed(app, companies=3, shipments=50)

    client = app.test_client()
    response = client.post("/login", data={"username": "admin", "password": "demo"})
    assert response.status_code == 302, (response.status_code, response.get_data(as_text=True))

    response = client.get("/companies/")
    assert response.status_code == 200, response.status_code
    assert "View eCommerce" in response.get_data(as_text=True), "no View eCommerce button"

    response = client.get("/companies/1/ecommerce/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, (response.status_code, html[:2000])
    assert "Connection Status" in html, html[:2000]

    response = client.get("/companies/1/ecommerce/static/shipgear.js")
    assert response.status_code == 200, response.status_code
    response.close()

    # The connectors and the sandbox are in the wheel and talk over real HTTP.
    from shipgear_exchange_plugin.connectors import AccountRef, Api, connector_class
    from shipgear_exchange_plugin.sandbox import SandboxServer

    server = SandboxServer().start()
    for platform in ("amazon", "shopify", "woocommerce", "bigcommerce"):
        cls = connector_class(platform)
        endpoint = f"{server.url}/{platform}/w1"
        connector = cls(AccountRef(1, platform, endpoint, cls.default_options(endpoint)),
                        cls.demo_credentials("w1"))
        probe = connector.probe(Api.PRODUCTS)
        assert probe.ok, (platform, probe)
    server.stop()

    # The console script is installed and its commands load.
    script = Path(sys.executable).parent / "shipgear-exchange"
    for args in (["--help"], ["db", "upgrade", "--help"], ["sandbox", "--help"]):
        done = subprocess.run([str(script), *args], capture_output=True, text=True,
                              cwd=tmp, timeout=120)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)

    print("WHEEL OK")
    '''
)


def run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd``; fail the test with its output unless it exits with 0."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert done.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited with {done.returncode}\n"
        f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
    )
    return done


def clean_env() -> dict[str, str]:
    """The environment without anything that points Python back at the repository."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from the repository root (in an isolated build environment)."""
    outdir = tmp_path_factory.mktemp("dist")
    build_dir = ROOT / "build"
    had_build_dir = build_dir.exists()
    try:
        run([sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(ROOT)],
            timeout=600)
    finally:
        if not had_build_dir:  # setuptools' in-tree scratch folder; leave the checkout as found
            shutil.rmtree(build_dir, ignore_errors=True)
    wheels = list(outdir.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_the_package_and_its_data_only(wheel):
    """Code, data files and migrations are inside the package; nothing else at the top."""
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in REQUIRED_FILES if name not in names]
    assert not missing, f"missing from {wheel.name}: {missing}"
    leaked = sorted(name for name in names if name.split("/")[0] in FORBIDDEN_TOP_LEVEL)
    assert not leaked, f"top-level entries that belong inside the package: {leaked}"


def test_installed_wheel_serves_the_plugin(wheel, tmp_path):
    """A fresh venv with only the wheel (and its PyPI dependencies) runs the host and CLI."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    python = venv / "bin" / "python"
    env = clean_env()
    run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(wheel)], timeout=600, cwd=tmp_path, env=env)

    script = tmp_path / "check_wheel.py"
    script.write_text(CHECK_SCRIPT)
    done = run([str(python), "-I", str(script), str(tmp_path)],
               timeout=600, cwd=tmp_path, env=env)
    assert done.stdout.strip().endswith("WHEEL OK"), done.stdout + done.stderr
