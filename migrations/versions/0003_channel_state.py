"""messaging channels: delivered message ids and the options last sent

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 06:10:00
"""
import sqlalchemy as sa
from alembic import op

import bot.persistence.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('channel_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('received_at', bot.persistence.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'message_id', name='uq_channel_message')
    )
    op.create_table('channel_options',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=128), nullable=False),
    sa.Column('options', sa.Text(), nullable=False),
    sa.Column('sent_at', bot.persistence.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'recipient', name='uq_channel_options')
    )


def downgrade() -> None:
    op.drop_table('channel_options')
    op.drop_table('channel_messages')
