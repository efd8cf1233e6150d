"""Store credentials: encrypted at rest, rotatable, never shown; the app needs a valid key."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shipgear_exchange_plugin.credentials import read_credentials, rotate_all, set_credentials
from shipgear_exchange_plugin.crypto import (
    CredentialBox,
    CredentialsUnreadable,
    EncryptionKeyError,
    generate_key,
)
from shipgear_exchange_plugin.devhost import HostConfigError, create_app
from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.models import StoreAccount
from shipgear_exchange_plugin.plugin import state


def test_credentials_are_stored_encrypted_and_never_rendered(seeded, client_as):
    with seeded.app_context():
        account = db.session.execute(sa.select(StoreAccount).limit(1)).scalar_one()
        set_credentials(state(seeded).credentials, account,
                        {"refresh_token": "Atzr|SECRET-REFRESH-TOKEN"})
        db.session.commit()
        raw = db.session.execute(sa.text(
            "select credentials_encrypted from sgx_store_account where id = :id"),
            {"id": account.id}).scalar_one()
        company_id = account.company_id
        assert "SECRET-REFRESH-TOKEN" not in raw
        assert read_credentials(state(seeded).credentials, account) == {
            "refresh_token": "Atzr|SECRET-REFRESH-TOKEN"}
    client = client_as("admin")
    for path in ("/", "/status.json", "/orders/export.csv"):
        body = client.get(f"/companies/{company_id}/ecommerce{path}").get_data(as_text=True)
        assert "SECRET-REFRESH-TOKEN" not in body and raw not in body


def test_rotation_reencrypts_with_the_newest_key(seeded):
    old = seeded.config["SHIPGEAR_ENCRYPTION_KEY"]
    new = generate_key()
    with seeded.app_context():
        rotated = rotate_all(db.session, CredentialBox(f"{new},{old}"))
        assert rotated == 8
        account = db.session.execute(sa.select(StoreAccount).limit(1)).scalar_one()
        secrets = CredentialBox(new).decrypt(account.credentials_encrypted)
        assert secrets and all(value.startswith("demo-") for value in secrets.values())
        with pytest.raises(CredentialsUnreadable):
            CredentialBox(old).decrypt(account.credentials_encrypted)


@pytest.mark.parametrize("key", [None, "", "not-a-fernet-key"])
def test_app_refuses_to_start_without_a_valid_key_and_says_how_to_make_one(tmp_path, key):
    with pytest.raises(EncryptionKeyError) as info:
        create_app({"SECRET_KEY": "x", "SHIPGEAR_ENCRYPTION_KEY": key,
                    "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite",
                    "INSTANCE_PATH": str(tmp_path)})
    assert "SHIPGEAR_ENCRYPTION_KEY" in str(info.value)
    assert "shipgear-exchange generate-key" in str(info.value)


def test_production_mode_requires_a_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(HostConfigError, match="SECRET_KEY is not set"):
        create_app({"SHIPGEAR_ENCRYPTION_KEY": generate_key(),
                    "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite",
                    "INSTANCE_PATH": str(tmp_path)})
