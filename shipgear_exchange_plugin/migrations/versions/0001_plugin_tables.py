"""The plugin's tables: store accounts, write-backs, attempts, products, settings, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 07:11:35.152629
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sgx_audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=120), nullable=True),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("target", sa.String(length=120), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sgx_audit_event")),
    )
    with op.batch_alter_table("sgx_audit_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sgx_audit_event_company_created", ["company_id", "created_at"], unique=False
        )

    op.create_table(
        "sgx_company_settings",
        sa.Column("company_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("company_id", name=op.f("pk_sgx_company_settings")),
    )
    op.create_table(
        "sgx_store_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("order_source", sa.String(length=120), nullable=False),
        sa.Column("endpoint", sa.String(length=500), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("credentials_encrypted", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sgx_store_account")),
        sa.UniqueConstraint(
            "company_id", "order_source", name=op.f("uq_sgx_store_account_company_id_order_source")
        ),
    )
    with op.batch_alter_table("sgx_store_account", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sgx_store_account_company_id"), ["company_id"], unique=False
        )

    op.create_table(
        "sgx_product",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=120), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("weight", sa.Float(), nullable=True),
        sa.Column("weight_unit", sa.String(length=12), nullable=True),
        sa.Column("image_url", sa.String(length=1000), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["sgx_store_account.id"],
            name=op.f("fk_sgx_product_account_id_sgx_store_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sgx_product")),
        sa.UniqueConstraint("account_id", "sku", name=op.f("uq_sgx_product_account_id_sku")),
    )
    with op.batch_alter_table("sgx_product", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sgx_product_company_id"), ["company_id"], unique=False)

    op.create_table(
        "sgx_writeback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("shipment_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("package_key", sa.String(length=80), nullable=False),
        sa.Column("ship_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("carrier", sa.String(length=60), nullable=False),
        sa.Column("service", sa.String(length=120), nullable=False),
        sa.Column("tracking_number", sa.String(length=80), nullable=False),
        sa.Column("shipped_quantity", sa.Integer(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["sgx_store_account.id"],
            name=op.f("fk_sgx_writeback_account_id_sgx_store_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sgx_writeback")),
        sa.UniqueConstraint(
            "account_id", "package_key", name=op.f("uq_sgx_writeback_account_id_package_key")
        ),
    )
    with op.batch_alter_table("sgx_writeback", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sgx_writeback_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            "ix_sgx_writeback_company_ship_date", ["company_id", "ship_date", "id"], unique=False
        )
        batch_op.create_index(
            "ix_sgx_writeback_company_status_ship_date",
            ["company_id", "status", "ship_date", "id"],
            unique=False,
        )
        batch_op.create_index("ix_sgx_writeback_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sgx_writeback_shipment_id"), ["shipment_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sgx_writeback_tracking_number"), ["tracking_number"], unique=False
        )

    op.create_table(
        "sgx_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("writeback_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=120), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["writeback_id"],
            ["sgx_writeback.id"],
            name=op.f("fk_sgx_attempt_writeback_id_sgx_writeback"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sgx_attempt")),
        sa.UniqueConstraint(
            "writeback_id", "number", name=op.f("uq_sgx_attempt_writeback_id_number")
        ),
    )
    with op.batch_alter_table("sgx_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sgx_attempt_company_id"), ["company_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sgx_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sgx_attempt_company_id"))

    op.drop_table("sgx_attempt")
    with op.batch_alter_table("sgx_writeback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sgx_writeback_tracking_number"))
        batch_op.drop_index(batch_op.f("ix_sgx_writeback_shipment_id"))
        batch_op.drop_index("ix_sgx_writeback_due")
        batch_op.drop_index("ix_sgx_writeback_company_status_ship_date")
        batch_op.drop_index("ix_sgx_writeback_company_ship_date")
        batch_op.drop_index(batch_op.f("ix_sgx_writeback_account_id"))

    op.drop_table("sgx_writeback")
    with op.batch_alter_table("sgx_product", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sgx_product_company_id"))

    op.drop_table("sgx_product")
    with op.batch_alter_table("sgx_store_account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sgx_store_account_company_id"))

    op.drop_table("sgx_store_account")
    op.drop_table("sgx_company_settings")
    with op.batch_alter_table("sgx_audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_sgx_audit_event_company_created")

    op.drop_table("sgx_audit_event")
