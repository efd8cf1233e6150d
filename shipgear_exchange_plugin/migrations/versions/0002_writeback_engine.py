"""Write-back engine state: attempt numbering, claims, unknown outcomes, verification, feeds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 11:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sgx_writeback", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt_count", sa.Integer(), server_default="0",
                                      nullable=False))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("needs_check", sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column("verify_checks", sa.Integer(), server_default="0",
                                      nullable=False))
        batch_op.add_column(sa.Column("submitted_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("feed_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_sgx_writeback_feed_id"), ["feed_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sgx_writeback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sgx_writeback_feed_id"))
        for column in ("feed_id", "submitted_at", "verify_checks", "needs_check", "claimed_at",
                       "claimed_by", "attempt_count"):
            batch_op.drop_column(column)
