"""Where the plugin's data files are, in a checkout and in an installed wheel.

The card's layout keeps ``templates/``, ``static/`` and ``plugin.yaml`` next to
``blueprints/``. An editable install maps ``shipgear_exchange_plugin.blueprints`` to the
repository's ``blueprints/`` folder; a wheel puts all of them inside the package. In both
cases the folder above ``blueprints`` is the plugin root, so we locate data by path rather
than through ``importlib.resources`` (a data-only mapped folder is not importable in an
editable install).
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

# find_spec locates the package without importing it: the core never imports the views.
PLUGIN_ROOT = Path(find_spec("shipgear_exchange_plugin.blueprints").origin).resolve().parent.parent
MANIFEST_PATH = PLUGIN_ROOT / "plugin.yaml"
TEMPLATES_DIR = PLUGIN_ROOT / "templates"
STATIC_DIR = PLUGIN_ROOT / "static"
#: Files that live inside the core package itself (package data in the wheel).
PACKAGE_DIR = Path(__file__).resolve().parent
OPENAPI_PATH = PACKAGE_DIR / "openapi.yaml"
