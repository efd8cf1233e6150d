"""Probing a store account's three APIs: the admin's connection test (and, with the
status issue, the periodic health checks)."""

from __future__ import annotations

from .connectors import Api, CallRecorder, Result, Throttle, connector_for
from .connectors.http import DEFAULT_TIMEOUT
from .credentials import read_credentials
from .crypto import CredentialBox
from .models import StoreAccount


def probe_account(account: StoreAccount, box: CredentialBox,
                  recorder: CallRecorder | None = None,
                  timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                  throttle: Throttle | None = None) -> dict[Api, Result]:
    """One cheap call per API, in the order the panel shows them."""
    connector = connector_for(account, read_credentials(box, account), recorder, timeout,
                              throttle=throttle)
    try:
        missing = connector.missing_credentials()
        if missing is not None:
            return dict.fromkeys(Api, missing)
        return {api: connector.probe(api) for api in Api}
    finally:
        connector.close()
