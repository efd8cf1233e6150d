"""How the reference host finds, validates and registers plugins.

A plugin that fails to import or has an invalid manifest is logged and listed on the
admin Plugins page; the host starts without it.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Protocol

import pluggy

from shipgear_exchange_plugin.host_contract import (
    ENTRY_POINT_GROUP,
    HOOK_NAMESPACE,
    HOST_API_VERSION,
    HostHooks,
)
from shipgear_exchange_plugin.manifest import Manifest, ManifestError, load_manifest

log = logging.getLogger(__name__)


class EntryPointLike(Protocol):
    name: str

    def load(self) -> object: ...


@dataclass
class LoadedPlugins:
    pm: pluggy.PluginManager
    manifests: dict[str, Manifest] = field(default_factory=dict)
    #: (entry point name, message) for every plugin that was not loaded.
    errors: list[tuple[str, str]] = field(default_factory=list)

    def call(self, plugin_id: str, hook_name: str, **kwargs):
        """Call one hook on one plugin only (install, enable for a company...)."""
        target = self.pm.get_plugin(plugin_id)
        others = [p for p in self.pm.get_plugins() if p is not target]
        return self.pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)


def load_plugins(entry_points: Iterable[EntryPointLike] | None = None) -> LoadedPlugins:
    pm = pluggy.PluginManager(HOOK_NAMESPACE)
    pm.add_hookspecs(HostHooks)
    loaded = LoadedPlugins(pm=pm)
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in entry_points:
        try:
            module = ep.load()
            manifest = _validated_manifest(module)
        except ManifestError as exc:
            _report(loaded, ep.name, f"invalid manifest: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the host
            _report(loaded, ep.name, f"failed to import: {type(exc).__name__}: {exc}")
            continue
        if manifest.id in loaded.manifests:
            _report(loaded, ep.name, f"plugin id {manifest.id!r} is already loaded")
            continue
        pm.register(module, name=manifest.id)
        loaded.manifests[manifest.id] = manifest
    return loaded


def _validated_manifest(module: object) -> Manifest:
    path = getattr(module, "PLUGIN_MANIFEST", None)
    if path is None:
        name = module.__name__ if isinstance(module, ModuleType) else repr(module)
        raise ManifestError(f"{name}: field 'PLUGIN_MANIFEST' is required (path of plugin.yaml)")
    manifest = load_manifest(path)
    if manifest.data["host_api"] != HOST_API_VERSION:
        raise ManifestError(
            f"{manifest.path}: field 'host_api' is {manifest.data['host_api']!r}, "
            f"this host provides {HOST_API_VERSION!r}"
        )
    return manifest


def _report(loaded: LoadedPlugins, name: str, message: str) -> None:
    log.error("plugin %s not loaded: %s", name, message)
    loaded.errors.append((name, message))
