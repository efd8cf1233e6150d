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


def test_rows_from_before_the_natural_order_sort_are_given_their_key(seeded, client_as):
    """Migration 0007 fills ``order_sort`` for the write-backs already there, so that an
    upgraded installation's Order column sorts numbers as numbers at once; down and up
    again keeps every row."""
    from alembic import command

    from shipgear_exchange_plugin.models import order_sort_key

    with seeded.app_context(), db.engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0006")
    with seeded.app_context():
        assert "order_sort" not in {c["name"] for c in sa.inspect(db.engine).get_columns(
            "sgx_writeback")}
        with db.engine.begin() as conn:
            count = conn.execute(sa.text("select count(*) from sgx_writeback")).scalar()
            ids = conn.execute(sa.text("select id from sgx_writeback where company_id = 1 "
                                       "order by id limit 3")).scalars().all()
            for row_id, order_id in zip(ids, ("#1000", "#999", "#99"), strict=True):
                conn.execute(sa.text("update sgx_writeback set order_id = :o where id = :i"),
                             {"o": order_id, "i": row_id})
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text("select order_id, order_sort from sgx_writeback")).all()
    assert len(rows) == count
    assert all(key == order_sort_key(order_id) for order_id, key in rows)
    answer = client_as("viewer").get("/companies/1/ecommerce/orders.json", query_string={
        "sort": "order", "q": "#9", "limit": 500})
    listed = answer.get_json()["items"]
    assert [i["order_id"] for i in listed if i["order_id"] in ("#99", "#999")] == ["#99", "#999"]
    listed = client_as("viewer").get("/companies/1/ecommerce/orders.json", query_string={
        "sort": "order", "q": "#", "limit": 500}).get_json()["items"]
    hash_ids = [i["order_id"] for i in listed]
    assert hash_ids.index("#999") < hash_ids.index("#1000")
