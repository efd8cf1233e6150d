"""Which network addresses a store account's calls may go to.

A store account's API address is typed by a company admin, and the server makes the
calls with the account's credentials: pointed at this machine or the private network, it
would let that admin reach internal services (a database's HTTP port, a cloud's metadata
service). So an address must be public, unless it is the configured marketplace sandbox
or the operator allowed private addresses (``SHIPGEAR_ALLOW_PRIVATE_ENDPOINTS``).

The form checks what the admin typed (:func:`private_host`); a public name can still
resolve to a private address, at once or later (DNS rebinding), so every new connection
to a store is checked again against the address it actually reached
(:meth:`AddressRules.admits_peer`, called by :mod:`.connectors.http`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .config import flag

#: Names that never leave a private network.
PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa",
                    ".localdomain")
DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int | None]


def origin(url: str | None) -> Origin | None:
    """(scheme, host, port) with the host in lower case and the default port filled in;
    None for no address."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        return (scheme, (parts.hostname or "").rstrip(".").lower(),
                parts.port or DEFAULT_PORTS.get(scheme))
    except ValueError:
        return None


def private_host(hostname: str) -> bool:
    """This machine, a private network or a cloud's metadata service, as far as the name
    itself says: an IP address outside the public internet, "localhost", a single-label
    name (resolved on the local network) or a suffix only private networks use."""
    host = hostname.rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or "." not in host or host.endswith(PRIVATE_SUFFIXES)
    return not address.is_global


def private_ip(ip: str) -> bool:
    """An address a connection reached that is not on the public internet (an IPv4
    address mapped into IPv6 is judged as the IPv4 address it is)."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])  # no IPv6 zone
    except ValueError:
        return True  # not an IP address (a Unix socket?): not a store on the internet
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not address.is_global


@dataclasses.dataclass(frozen=True)
class AddressRules:
    """Which API addresses this installation takes (from its configuration)."""

    sandbox_url: str | None = None
    allow_private: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AddressRules:
        return cls(config.get("SHIPGEAR_SANDBOX_URL") or None,
                   flag(config.get("SHIPGEAR_ALLOW_PRIVATE_ENDPOINTS")))

    def is_sandbox(self, url_origin: Origin | None) -> bool:
        return url_origin is not None and url_origin == origin(self.sandbox_url)

    def admits_peer(self, scheme: str, host: str, port: int | None, ip: str) -> bool:
        """May a connection to ``host`` (as the URL names it), which reached ``ip``, carry
        a store call?"""
        if self.allow_private or self.is_sandbox((scheme, host.rstrip(".").lower(), port)):
            return True
        return not private_ip(ip)
