"""ShipGear Exchange eCommerce plugin.

The core package: models, the write-back service, connectors and status logic. The HTTP
views live in ``shipgear_exchange_plugin.blueprints`` and the RQ jobs in
``shipgear_exchange_plugin.jobs``; a host loads the plugin through the
``exchange.plugins`` entry point (see ``host_contract``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("shipgear-exchange-plugin")
except PackageNotFoundError:  # pragma: no cover - only when run from an uninstalled tree
    __version__ = "0+unknown"

PLUGIN_ID = "shipgear-ecommerce"
