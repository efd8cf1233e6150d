"""The grid's Order column sorts numbers as numbers: ``order_sort`` holds the order id
as ``models.order_sort_key`` builds it ("#999" before "#1000"), filled in for the rows
already there, with its own sort indexes. The order id's own index stays, for the search
by the start of an order id; its status-filtered twin was only for sorting and goes.

A later change to ``order_sort_key`` needs a migration of its own that fills the column
again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 15:45:00
"""

import sqlalchemy as sa
from alembic import op

from shipgear_exchange_plugin.models import SORT_TEXT, order_sort_key

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    # Plain ALTERs, no batch: SQLite would copy the table, and dropping the old one fails
    # on the attempts that refer to it. So the column stays nullable there and here; the
    # model's default fills it on every insert.
    op.add_column("sgx_writeback", sa.Column("order_sort", SORT_TEXT, nullable=True))
    _fill()
    op.drop_index("ix_sgx_writeback_status_sort_order", table_name="sgx_writeback")
    op.create_index("ix_sgx_writeback_sort_order_sort", "sgx_writeback",
                    ["company_id", "order_sort", "id"], unique=False)
    op.create_index("ix_sgx_writeback_status_sort_order_sort", "sgx_writeback",
                    ["company_id", "status", "order_sort", "id", "ship_date"], unique=False)


def _fill() -> None:
    """In batches by id, so a large table is never read into memory at once."""
    table = sa.table("sgx_writeback", sa.column("id", sa.Integer),
                     sa.column("order_id", sa.String), sa.column("order_sort", sa.String))
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(sa.select(table.c.id, table.c.order_id)
                            .where(table.c.id > last).order_by(table.c.id).limit(BATCH)).all()
        if not rows:
            return
        conn.execute(table.update().where(table.c.id == sa.bindparam("row_id"))
                     .values(order_sort=sa.bindparam("key")),
                     [{"row_id": r.id, "key": order_sort_key(r.order_id)} for r in rows])
        last = rows[-1].id


def downgrade() -> None:
    op.drop_index("ix_sgx_writeback_status_sort_order_sort", table_name="sgx_writeback")
    op.drop_index("ix_sgx_writeback_sort_order_sort", table_name="sgx_writeback")
    op.create_index("ix_sgx_writeback_status_sort_order", "sgx_writeback",
                    ["company_id", "status", "order_id", "id", "ship_date"], unique=False)
    op.drop_column("sgx_writeback", "order_sort")  # SQLite 3.35 and later
