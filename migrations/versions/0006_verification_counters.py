"""one-time codes: counters of sends and failures per customer, destination and sender

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 19:00:00
"""
import sqlalchemy as sa
from alembic import op

import bot.persistence.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('verification_counters',
    sa.Column('key', sa.String(length=96), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('window_start', bot.persistence.types.UTCDateTime(), nullable=False),
    sa.Column('locked_until', bot.persistence.types.UTCDateTime(), nullable=True),
    sa.Column('locks', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('verification_counters')
