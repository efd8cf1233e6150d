"""Status history: each API's colour per minute, kept 24 hours (B11).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sgx_status_history",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("api", sa.String(length=12), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["sgx_store_account.id"],
                                name=op.f("fk_sgx_status_history_account_id_sgx_store_account")),
        sa.PrimaryKeyConstraint("account_id", "api", "minute", name=op.f("pk_sgx_status_history")),
    )
    with op.batch_alter_table("sgx_status_history", schema=None) as batch_op:
        batch_op.create_index("ix_sgx_status_history_minute", ["minute"], unique=False)


def downgrade() -> None:
    op.drop_table("sgx_status_history")
