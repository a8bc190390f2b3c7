"""indexes on the customer history's foreign keys: the identity card reads a customer's supplies,
bills and tickets by customer (without them every read scans the whole table)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 06:00:00
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

INDEXES = [("identities", "customer_id"), ("supplies", "customer_id"), ("bills", "customer_id"),
           ("bills", "supply_pk"), ("tickets", "customer_id"), ("one_time_codes", "customer_id")]


def upgrade() -> None:
    for table, column in INDEXES:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column], unique=False)


def downgrade() -> None:
    for table, column in reversed(INDEXES):
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
