"""An index behind every sort of the orders grid: (company_id, sort columns, id).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 12:10:00
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_sgx_writeback_sort_order": ["company_id", "order_id", "id"],
    "ix_sgx_writeback_sort_account": ["company_id", "account_id", "id"],
    "ix_sgx_writeback_sort_carrier": ["company_id", "carrier", "service", "id"],
    "ix_sgx_writeback_sort_tracking": ["company_id", "tracking_number", "id"],
    "ix_sgx_writeback_sort_qty": ["company_id", "shipped_quantity", "id"],
    "ix_sgx_writeback_sort_errors": ["company_id", "error_count", "id"],
    "ix_sgx_writeback_sort_last_attempt": ["company_id", "last_attempt_at", "id"],
}


def upgrade() -> None:
    with op.batch_alter_table("sgx_writeback", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sgx_writeback", schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
