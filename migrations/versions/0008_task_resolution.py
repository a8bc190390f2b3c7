"""task resolution: the self-care tasks of each conversation and their outcome, the
conversation's resolution, and silent failures flagged on transcript lines

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 19:00:00
"""
import sqlalchemy as sa
from alembic import op

import bot.persistence.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'conversation_tasks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('skill', sa.String(length=64), nullable=False),
        sa.Column('started_at', bot.persistence.types.UTCDateTime(), nullable=False),
        sa.Column('ended_at', bot.persistence.types.UTCDateTime(), nullable=True),
        sa.Column('last_at', bot.persistence.types.UTCDateTime(), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=16), nullable=True),
        sa.Column('confirmed', sa.Boolean(), nullable=False),
        sa.Column('confirmed_by', sa.String(length=16), nullable=True),
        sa.Column('reference', sa.String(length=32), nullable=True),
        sa.Column('turns', sa.Integer(), nullable=False),
        sa.Column('replied', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('conversation_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversation_tasks_conversation_id'),
                              ['conversation_id'], unique=False)
        batch_op.create_index('ix_conversation_task_skill', ['skill', 'started_at'],
                              unique=False)
        batch_op.create_index('ix_conversation_task_reference', ['reference'], unique=False)
    # plain ALTER TABLE (no batch copy): the transcript's table carries the FTS5 triggers on
    # SQLite, which a copy of the table would drop
    op.add_column('conversations', sa.Column('resolution', sa.String(length=16), nullable=True))
    op.add_column('conversations', sa.Column('failures', sa.Integer(), nullable=False,
                                             server_default='0'))
    op.create_index(op.f('ix_conversations_resolution'), 'conversations', ['resolution'],
                    unique=False)
    op.add_column('conversation_messages',
                  sa.Column('response', sa.String(length=64), nullable=True))
    op.add_column('conversation_messages',
                  sa.Column('failure', sa.String(length=16), nullable=True))
    op.create_index(op.f('ix_conversation_messages_failure'), 'conversation_messages',
                    ['failure'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_conversation_messages_failure'), table_name='conversation_messages')
    op.drop_column('conversation_messages', 'failure')
    op.drop_column('conversation_messages', 'response')
    op.drop_index(op.f('ix_conversations_resolution'), table_name='conversations')
    op.drop_column('conversations', 'failures')
    op.drop_column('conversations', 'resolution')
    with op.batch_alter_table('conversation_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_task_reference')
        batch_op.drop_index('ix_conversation_task_skill')
        batch_op.drop_index(batch_op.f('ix_conversation_tasks_conversation_id'))
    op.drop_table('conversation_tasks')
