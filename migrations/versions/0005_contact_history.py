"""contact history: every e-mail address and phone number a customer has had (erasure removes
what was sent to any of them); the current ones of existing customers are recorded

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09 10:12:00
"""
import sqlalchemy as sa
from alembic import op

import bot.persistence.types

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contact_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('value', sa.String(length=254), nullable=False),
    sa.Column('valid_from', bot.persistence.types.UTCDateTime(), nullable=True),
    sa.Column('valid_until', bot.persistence.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('contact_history', schema=None) as batch_op:
        batch_op.create_index('ix_contact_history_customer', ['customer_id', 'kind'], unique=False)

    # The customers already there: their current contacts, in force since the customer was
    # created (both columns are naive UTC on every backend, so the value is copied as it is).
    for kind in ('email', 'phone'):
        op.execute(
            "INSERT INTO contact_history (customer_id, kind, value, valid_from) "
            f"SELECT id, '{kind}', {kind}, created_at FROM customers "
            f"WHERE {kind} IS NOT NULL AND {kind} <> ''")


def downgrade() -> None:
    with op.batch_alter_table('contact_history', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_history_customer')

    op.drop_table('contact_history')
