"""The layout the card promises: core, views and jobs separated; data shipped in-package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from shipgear_exchange_plugin import paths

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "shipgear_exchange_plugin"
# Not core: the reference host itself, the migrations, and the console script, which is
# the composition root (its demo and seed commands run the reference host).
NOT_CORE = {"devhost", "migrations", "cli.py"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_core_never_imports_the_reference_host_or_the_views():
    offenders = []
    for path in CORE.rglob("*.py"):
        relative = path.relative_to(CORE)
        if relative.parts[0] in NOT_CORE:
            continue
        for name in _imports(path):
            if "devhost" in name or "blueprints" in name.split("."):
                if (str(relative), name) == ("plugin.py", ".blueprints"):
                    continue  # the init hook that mounts the views on the host app
                offenders.append(f"{relative}: {name}")
    assert offenders == []


def test_blueprints_and_jobs_only_import_under_the_plugin_package(tmp_path):
    script = (
        "import importlib, sys\n"
        "import shipgear_exchange_plugin.blueprints, shipgear_exchange_plugin.jobs\n"
        "for name in ('blueprints', 'jobs'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        continue\n"
        "    sys.exit(f'top-level {name} importable')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr + result.stdout


def test_data_files_are_found_next_to_blueprints():
    assert paths.MANIFEST_PATH.is_file()
    assert (paths.TEMPLATES_DIR / "shipgear_exchange" / "page.html").is_file()
    assert (paths.STATIC_DIR / "shipgear.js").is_file()
