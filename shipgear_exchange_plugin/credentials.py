"""Store-account credentials: set, read for a connector, rotate. Never rendered back."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .crypto import CredentialBox
from .models import StoreAccount


def set_credentials(box: CredentialBox, account: StoreAccount, secrets: dict[str, Any]) -> None:
    account.credentials_encrypted = box.encrypt(secrets)


def read_credentials(box: CredentialBox, account: StoreAccount) -> dict[str, Any]:
    """Decrypted credentials for a connector; only ever passed to the store's API."""
    if not account.credentials_encrypted:
        return {}
    return box.decrypt(account.credentials_encrypted)


def rotate_all(session: Session, box: CredentialBox) -> int:
    """Re-encrypt every account's credentials with the newest key; commits."""
    count = 0
    for account in session.execute(
        sa.select(StoreAccount).where(StoreAccount.credentials_encrypted.is_not(None))
    ).scalars():
        account.credentials_encrypted = box.rotate(account.credentials_encrypted)
        count += 1
    session.commit()
    return count
