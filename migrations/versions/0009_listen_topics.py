"""Listen: a CX lead marks the customer messages of a topic as asking for a missing skill

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 19:30:00
"""
import sqlalchemy as sa
from alembic import op

import bot.persistence.types

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'missing_skill_marks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('at', bot.persistence.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['message_id'], ['conversation_messages.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['desk_users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('message_id'),
    )


def downgrade() -> None:
    op.drop_table('missing_skill_marks')
