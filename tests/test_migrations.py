"""The plugin's Alembic migrations: own version table, idempotent, never the host's tables."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shipgear_exchange_plugin import migrate
from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.models import Base


def test_upgrade_is_idempotent_and_uses_its_own_version_table(app):
    with app.app_context():
        migrate.upgrade(db.engine)
        migrate.upgrade(db.engine)
        assert migrate.current_revision(db.engine) == migrate.head_revision()
        names = set(sa.inspect(db.engine).get_table_names())
    assert "sgx_alembic_version" in names
    assert "alembic_version" not in names  # the host's own Alembic table stays the host's
    assert {t.name for t in Base.metadata.sorted_tables} <= names


def test_models_match_migrations_and_autogenerate_ignores_host_tables(app):
    """Autogenerate against a database holding host tables proposes nothing at all."""
    with app.app_context(), db.engine.connect() as conn:
        assert "host_shipment" in sa.inspect(conn).get_table_names()
        context = MigrationContext.configure(conn, opts={
            "include_name": migrate.include_name, "compare_type": True,
            "version_table": migrate.VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []


def test_every_plugin_table_is_prefixed_and_carries_company_id():
    for table in Base.metadata.sorted_tables:
        assert table.name.startswith("sgx_")
        assert "company_id" in table.columns, table.name
