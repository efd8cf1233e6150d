"""plugin.yaml: one version with the package, validated, and a bad one never stops the host."""

from __future__ import annotations

import importlib.metadata
import tomllib
import types
from pathlib import Path

import pytest

import shipgear_exchange_plugin
from shipgear_exchange_plugin import paths
from shipgear_exchange_plugin.devhost.plugins import load_plugins
from shipgear_exchange_plugin.host_contract import HOST_API_VERSION
from shipgear_exchange_plugin.manifest import ManifestError, load_manifest, parse_manifest

ROOT = Path(__file__).resolve().parent.parent
GOOD = paths.MANIFEST_PATH.read_text()


def test_manifest_version_is_the_package_version():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    manifest = load_manifest(paths.MANIFEST_PATH)
    assert manifest.version == pyproject["project"]["version"]
    assert manifest.version == importlib.metadata.version("shipgear-exchange-plugin")
    assert manifest.version == shipgear_exchange_plugin.__version__


def test_manifest_declares_what_the_host_needs():
    manifest = load_manifest(paths.MANIFEST_PATH)
    data = manifest.data
    assert data["id"] == shipgear_exchange_plugin.PLUGIN_ID
    assert data["host_api"] == HOST_API_VERSION
    assert data["blueprint"]["url_prefix"] == "/companies/<int:company_id>/ecommerce"
    assert data["company_buttons"] == [{"label": "View eCommerce",
                                        "endpoint": "shipgear_ecommerce.page",
                                        "permission": "ecommerce.view"}]
    assert manifest.roles_with("ecommerce.view") == {"admin", "support", "viewer"}
    assert manifest.roles_with("ecommerce.manage") == {"admin"}
    assert "shipgear-writeback" in manifest.queues
    assert data["migrations"]["version_table"] == "sgx_alembic_version"
    assert manifest.setting_defaults()["timezone"] == "UTC"
    entry = importlib.metadata.entry_points(group="exchange.plugins")
    assert [ep.value for ep in entry if ep.name == "shipgear_ecommerce"] == [data["entry"]]


@pytest.mark.parametrize(("edit", "field"), [
    (lambda t: t.replace("- label: View eCommerce\n    endpoint", "- endpoint"),
     "company_buttons[0].label"),
    (lambda t: t.replace('version: "0.1.0"', "version: banana"), "version"),
    (lambda t: t.replace("queues:\n  - shipgear-maintenance", "queues:\n  - 42"), "queues[0]"),
    (lambda t: t.replace("id: shipgear-ecommerce", "id: shipgear-ecommerce\ncolour: red"),
     "colour"),
    (lambda t: t.replace("type: url", "type: colour"), "settings[1].type"),
    (lambda t: t.replace("host_api: \"1\"\n", ""), "host_api"),
])
def test_invalid_manifest_names_the_file_and_the_field(tmp_path, edit, field):
    path = tmp_path / "plugin.yaml"
    path.write_text(edit(GOOD))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert f"field '{field}'" in message


def test_unreadable_or_non_yaml_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ManifestError, match="cannot be read"):
        load_manifest(tmp_path / "missing.yaml")
    with pytest.raises(ManifestError, match=r"not valid YAML \(line 2\)"):
        parse_manifest("id: x\n  bad: [\n", tmp_path / "plugin.yaml")


class _EntryPoint:
    def __init__(self, name, loader):
        self.name, self._loader = name, loader

    def load(self):
        return self._loader()


def _module_with_manifest(path: Path) -> types.ModuleType:
    module = types.ModuleType("fake_plugin")
    module.PLUGIN_MANIFEST = path
    return module


def test_host_skips_a_plugin_with_a_bad_manifest_and_one_that_fails_to_import(tmp_path):
    bad = tmp_path / "plugin.yaml"
    bad.write_text(GOOD.replace("name: ShipGear eCommerce\n", ""))
    future = tmp_path / "future.yaml"
    future.write_text(GOOD.replace('host_api: "1"', 'host_api: "2"'))

    def explode():
        raise ImportError("No module named 'shipgear_missing_dependency'")

    good_ep = [ep for ep in importlib.metadata.entry_points(group="exchange.plugins")
               if ep.name == "shipgear_ecommerce"][0]
    loaded = load_plugins([
        _EntryPoint("broken_manifest", lambda: _module_with_manifest(bad)),
        _EntryPoint("needs_newer_host", lambda: _module_with_manifest(future)),
        _EntryPoint("broken_import", explode),
        good_ep,
    ])
    errors = dict(loaded.errors)
    assert f"{bad}: field 'name' is required" in errors["broken_manifest"]
    assert "field 'host_api'" in errors["needs_newer_host"]
    assert "shipgear_missing_dependency" in errors["broken_import"]
    assert list(loaded.manifests) == ["shipgear-ecommerce"]


def test_host_starts_and_shows_the_error_when_the_plugin_manifest_is_invalid(make_app, tmp_path):
    bad = tmp_path / "plugin.yaml"
    bad.write_text(GOOD.replace("entry: shipgear_exchange_plugin.plugin", "entry: 12"))
    app = make_app(WTF_CSRF_ENABLED=False,
                   EXCHANGE_PLUGIN_ENTRY_POINTS=[
                       _EntryPoint("shipgear_ecommerce", lambda: _module_with_manifest(bad))])
    from shipgear_exchange_plugin.devhost.models import db
    from shipgear_exchange_plugin.devhost.seed import ensure_users_and_companies

    with app.app_context():
        ensure_users_and_companies(1)
        db.session.commit()
    client = app.test_client()
    client.post("/login", data={"username": "admin", "password": "demo"})
    page = client.get("/admin/plugins").get_data(as_text=True)
    assert "was not loaded" in page and "field &#39;entry&#39;" in page
    assert "View eCommerce" not in client.get("/companies/").get_data(as_text=True)
