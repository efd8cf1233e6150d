"""A write-back's manual actions (Retry now, Mark confirmed) in its shipment panel: the
audit events by (company_id, target, created_at), instead of walking the company's whole
audit trail for each panel.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 00:20:00
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sgx_audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_sgx_audit_event_company_target",
                              ["company_id", "target", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sgx_audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_sgx_audit_event_company_target")
