"""The plugin's settings: ``SHIPGEAR_*`` keys in the host app's config.

The host copies them from the environment; these are the defaults for the ones it leaves
unset. Every threshold the later status and write-back modules use belongs here.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    # Comma-separated Fernet keys, newest first (see crypto.py). Required outside the demo.
    "SHIPGEAR_ENCRYPTION_KEY": None,
    # Base URL of the marketplace sandbox; the demo's store accounts point at it.
    "SHIPGEAR_SANDBOX_URL": None,
    # Seconds without any call after which an API's status is None.
    "SHIPGEAR_STATUS_STALE_AFTER": 600,
}


def apply_defaults(config: dict[str, Any]) -> None:
    for key, value in DEFAULTS.items():
        config.setdefault(key, value)


def int_setting(config: dict[str, Any], key: str) -> int:
    """An integer setting that may have arrived as an environment string."""
    raw = config.get(key, DEFAULTS.get(key))
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a whole number, got {raw!r}") from None
