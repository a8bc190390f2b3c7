"""complaint clocks: a complaint's kind of deadline and deadline, a ticket's answer moment; the
complaints already there get the 30 days the bot promised them, the tickets already resolved or
closed their last update as their answer

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 19:40:00
"""
from datetime import datetime, time, timedelta, timezone

import sqlalchemy as sa
from alembic import op

import bot.persistence.types
from bot.settings import local_zone

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

PROMISED_DAYS = 30  # what utter_complaint_opened said to every complaint before this revision


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('complaint_kind', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('answer_due_at', bot.persistence.types.UTCDateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column('answered_at', bot.persistence.types.UTCDateTime(),
                                      nullable=True))
        batch_op.create_index('ix_tickets_answer_due_at', ['answer_due_at'], unique=False)
        batch_op.create_index('ix_tickets_answered_at', ['answered_at'], unique=False)

    # Both datetime columns are naive UTC on every backend (bot.persistence.types.UTCDateTime).
    op.execute("UPDATE tickets SET answered_at = updated_at "
               "WHERE status IN ('resolved', 'closed') AND updated_at IS NOT NULL")
    connection = op.get_bind()
    tickets = sa.table('tickets', sa.column('id', sa.Integer),
                       sa.column('opened_at', sa.DateTime), sa.column('kind', sa.String),
                       sa.column('complaint_kind', sa.String),
                       sa.column('answer_due_at', sa.DateTime))
    zone = local_zone()
    for ticket_id, opened_at in connection.execute(
            sa.select(tickets.c.id, tickets.c.opened_at).where(tickets.c.kind == 'complaint')
    ).all():
        received = opened_at.replace(tzinfo=timezone.utc).astimezone(zone).date()
        end = datetime.combine(received + timedelta(days=PROMISED_DAYS + 1), time(0), zone)
        connection.execute(tickets.update().where(tickets.c.id == ticket_id).values(
            complaint_kind='general',
            answer_due_at=end.astimezone(timezone.utc).replace(tzinfo=None)))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_answered_at')
        batch_op.drop_index('ix_tickets_answer_due_at')
        batch_op.drop_column('answered_at')
        batch_op.drop_column('answer_due_at')
        batch_op.drop_column('complaint_kind')
