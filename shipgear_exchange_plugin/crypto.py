"""Store credentials encrypted at rest (Fernet), with key rotation (MultiFernet).

``SHIPGEAR_ENCRYPTION_KEY`` holds one or more comma-separated Fernet keys, newest first:
new secrets are encrypted with the first, and any of them decrypts. To rotate, put a new
key in front, run ``shipgear-exchange rotate-credentials`` (re-encrypts every account with
the first key), then drop the old key.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

HOW_TO_CREATE_A_KEY = (
    "Create one with `shipgear-exchange generate-key` (or "
    "`python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"`)"
    " and set it in SHIPGEAR_ENCRYPTION_KEY."
)


class EncryptionKeyError(RuntimeError):
    """The configured key is missing or is not a Fernet key."""


class CredentialsUnreadable(RuntimeError):
    """Stored credentials that no configured key can decrypt."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class CredentialBox:
    """Encrypts and decrypts credential dictionaries."""

    def __init__(self, keys: str | list[str] | None):
        if isinstance(keys, str):
            keys = [k.strip() for k in keys.split(",") if k.strip()]
        if not keys:
            raise EncryptionKeyError("SHIPGEAR_ENCRYPTION_KEY is not set. " + HOW_TO_CREATE_A_KEY)
        try:
            self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in keys])
        except (ValueError, UnicodeEncodeError):
            raise EncryptionKeyError(
                "SHIPGEAR_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64 bytes). "
                + HOW_TO_CREATE_A_KEY
            ) from None

    def encrypt(self, secrets: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(token.encode("ascii")))
        except InvalidToken:
            raise CredentialsUnreadable(
                "stored credentials cannot be decrypted with SHIPGEAR_ENCRYPTION_KEY; "
                "was a key removed before rotation finished?"
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` with the newest key."""
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")
