"""Resolution and silent-failure figures of the conversation log, for the KPIs
(`bot.analytics.kpis`, which defines the period, filters and break-downs).

- A task (`ConversationTask`, `bot.analytics.tasks`) is resolved, handed over or not resolved;
  a resolution is confirmed or assumed.
- **Net of recontact**: a resolved task is withdrawn when the same customer comes back about the
  same topic within `RESOLUTION_RECONTACT_DAYS` (7) after it was resolved, on any channel: a
  task of the same skill or about the same ticket or bill (`reference`) in a later conversation,
  or an interaction imported into the customer history (phone, e-mail, store...: those without
  a bot conversation id) with the same topic or the ticket or bill number in its summary. The
  same customer is the same customer code; an anonymous conversation is matched only with the
  later sessions of its own conversation id (Rasa's sender id). Computed when asked, never
  stored, so a recontact that arrives later withdraws a resolution of an earlier period.
- A conversation is resolved when all its tasks are; conversations without a task have no
  resolution and are left out of that rate.
- A silent failure is a transcript line flagged `silent_turn`, `error_reply` or `wrong_skill`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, exists, func, literal, null, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import ColumnElement

from bot.analytics.models import FAILURES, Conversation, ConversationMessage, ConversationTask
from bot.crm.models import Customer, Interaction
from bot.settings import get_settings

TASK_COUNTS = ("tasks", "resolved", "confirmed", "withdrawn", "handed_over", "not_resolved")
CONVERSATION_COUNTS = ("conversations", "with_tasks", "resolved_conversations",
                       "failed_conversations")


def recontact_days() -> int:
    return get_settings().resolution_recontact_days


def _within(db: Session, start: ColumnElement, later: ColumnElement, days: int) -> ColumnElement:
    """start < later <= start + days, on both backends."""
    if db.bind.dialect.name == "postgresql":
        return and_(later > start, later <= start + func.make_interval(0, 0, 0, days))
    return and_(later > start,
                func.julianday(later) - func.julianday(start) <= days)


def withdrawn(db: Session, days: int) -> ColumnElement:
    """Whether the resolved `ConversationTask` (of the `Conversation` it is joined to) has a
    recontact: see the module's docstring."""
    task, conv = ConversationTask, Conversation
    later_task = aliased(ConversationTask, name="later_task")
    later = aliased(Conversation, name="later_conv")
    same_customer = or_(later.sender_id == conv.sender_id,
                        and_(conv.customer_code.isnot(None),
                             later.customer_code == conv.customer_code))
    same_topic = or_(later_task.skill == task.skill,
                     and_(task.reference.isnot(None), later_task.reference == task.reference))
    in_conversation = exists(
        select(literal(1)).select_from(later_task)
        .join(later, later.id == later_task.conversation_id)
        .where(later.id != conv.id, same_customer, same_topic,
               _within(db, task.ended_at, later_task.started_at, days))
        .correlate(task, conv))
    about = or_(Interaction.topic == task.skill,
                and_(task.reference.isnot(None),
                     Interaction.summary.contains(task.reference)))
    imported = exists(
        select(literal(1)).select_from(Interaction)
        .join(Customer, Customer.id == Interaction.customer_id)
        .where(conv.customer_code.isnot(None), Customer.customer_code == conv.customer_code,
               Interaction.conversation_id.is_(None), about,
               _within(db, task.ended_at, Interaction.at, days))
        .correlate(task, conv))
    return and_(task.outcome == "resolved", or_(in_conversation, imported))


def task_counts(db: Session, where: list, source: Any, group: Any,
                days: int) -> dict[Any, dict[str, int]]:
    """Tasks per group (of the conversations matching `where`): resolved, confirmed, withdrawn
    by a recontact, handed over, not resolved."""
    t = ConversationTask
    inner = (select((group if group is not None else null()).label("grp"),
                    t.outcome.label("outcome"), t.confirmed.label("confirmed"),
                    case((withdrawn(db, days), 1), else_=0).label("withdrawn"))
             .select_from(source.join(t, t.conversation_id == Conversation.id))
             .where(*where).subquery("tasks_in_scope"))
    query = (select(inner.c.grp, inner.c.outcome, inner.c.confirmed, inner.c.withdrawn,
                    func.count())
             .group_by(inner.c.grp, inner.c.outcome, inner.c.confirmed, inner.c.withdrawn))
    out: dict[Any, dict[str, int]] = {}
    for grp, outcome, confirmed, gone, n in db.execute(query):
        counts = out.setdefault(grp, dict.fromkeys(TASK_COUNTS, 0))
        counts["tasks"] += n
        counts[outcome] = counts.get(outcome, 0) + n
        if outcome == "resolved":
            counts["confirmed"] += n if confirmed else 0
            counts["withdrawn"] += n if gone else 0
    return out


def conversation_counts(db: Session, where: list, source: Any,
                        group: Any) -> dict[Any, dict[str, int]]:
    """Conversations per group: with a task, resolved (all tasks), with a silent failure."""
    c = Conversation

    def count_if(condition: ColumnElement):
        return func.sum(case((condition, 1), else_=0))

    figures = (func.count(), count_if(c.resolution.isnot(None)),
               count_if(c.resolution == "resolved"), count_if(c.failures > 0))
    if group is None:
        query = select(null(), *figures).select_from(source).where(*where)
    else:
        query = select(group, *figures).select_from(source).where(*where).group_by(group)
    return {key: dict(zip(CONVERSATION_COUNTS, (int(v or 0) for v in values)))
            for key, *values in db.execute(query)}


def failure_counts(db: Session, where: list) -> dict[str, int]:
    """Transcript lines per kind of silent failure, in the conversations matching `where`."""
    m = ConversationMessage
    found = dict(db.execute(select(m.failure, func.count())
                            .join(Conversation, Conversation.id == m.conversation_id)
                            .where(m.failure.isnot(None), *where).group_by(m.failure)).all())
    return {kind: int(found.get(kind, 0)) for kind in FAILURES}


def rates(counts: dict[str, int] | None) -> dict[str, float | int | None]:
    """The resolution KPIs of one group's counts (task and conversation counts merged)."""
    counts = counts or {}
    tasks = counts.get("tasks", 0)
    resolved, confirmed = counts.get("resolved", 0), counts.get("confirmed", 0)

    def rate(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return {
        "tasks": tasks,
        "resolution_rate": rate(resolved, tasks),
        "confirmed_resolution_rate": rate(confirmed, tasks),
        "assumed_resolution_rate": rate(resolved - confirmed, tasks),
        "net_resolution_rate": rate(resolved - counts.get("withdrawn", 0), tasks),
        "conversation_resolution_rate": rate(counts.get("resolved_conversations", 0),
                                             counts.get("with_tasks", 0)),
        "silent_failure_rate": rate(counts.get("failed_conversations", 0),
                                    counts.get("conversations", 0)),
    }
