"""The handover state machine, the queue and routing, on the shared database.

States: ``queued → assigned → closed``, ``queued → abandoned`` (the customer cancelled),
``queued → fallback`` (callback or ticket offered instead). An assigned conversation whose agent
stops answering goes back to ``queued``. Every transition is stored with its time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.handover import hours
from bot.handover.models import OPEN_STATES, DeskUser, Handover, HandoverTransition
from bot.persistence.db import reading_scope, session_scope
from bot.settings import get_settings

# The agent skill that serves each customer intent; anything else goes to any agent.
SKILL_OF_INTENT = {
    "check_bill": "billing", "explain_bill": "billing", "pay_bill": "billing",
    "setup_direct_debit": "billing", "activate_ebill": "billing",
    "report_outage": "technical", "submit_meter_reading": "technical",
    "ticket_status": "technical",
    "contract_info": "commercial", "move_home": "commercial", "file_complaint": "commercial",
    "update_contact": "commercial", "request_callback": "commercial",
}
ANY_SKILL = "general"
RECENT_HANDLED = 20  # handling times averaged for the expected wait


def now() -> datetime:
    return datetime.now(timezone.utc)


def skill_for(intents: list[str]) -> str:
    """The skill of the customer's latest self-care intent."""
    for intent in reversed(intents):
        if intent in SKILL_OF_INTENT:
            return SKILL_OF_INTENT[intent]
    return ANY_SKILL


def _can_serve(agent: DeskUser, skill: str, language: str) -> bool:
    return (agent.role == "agent" and agent.active and language in agent.language_list
            and (skill == ANY_SKILL or skill in agent.skill_list))


@dataclass(frozen=True)
class Availability:
    available: bool
    why_not: str | None  # "closed" or "no_agent"
    agents: int


def availability(skill: str, language: str, at: datetime | None = None) -> Availability:
    s = get_settings()
    at = at or now()
    if not hours.is_open(s.desk_hours, at, s.timezone):
        return Availability(False, "closed", 0)
    with session_scope() as db:
        agents = [a for a in db.execute(select(DeskUser).where(DeskUser.presence == "online"))
                  .scalars() if _can_serve(a, skill, language)]
    return Availability(bool(agents), None if agents else "no_agent", len(agents))


def _transition(db: Session, h: Handover, state: str, at: datetime, agent_id: int | None = None,
                note: str = "") -> None:
    h.state = state
    db.add(HandoverTransition(handover_id=h.id, state=state, at=at, agent_id=agent_id,
                              note=note[:200]))


def recent_handling_seconds() -> float:
    """The mean handling time of the latest closed handovers (the configured default when
    there are none yet)."""
    with session_scope() as db:
        rows = db.execute(
            select(Handover.handling_seconds).where(Handover.state == "closed",
                                                    Handover.handling_seconds.isnot(None))
            .order_by(Handover.closed_at.desc()).limit(RECENT_HANDLED)).scalars().all()
    if not rows:
        return float(get_settings().handover_default_handling_seconds)
    return sum(rows) / len(rows)


def expected_wait_seconds(position: int, agents: int, handling: float | None = None) -> int:
    """Agents who can serve this customer free a place every `handling / (agents × chats per
    agent)` seconds on average (handling = the recent mean handling time); the customer waits
    for `position` such places, and never less than a minute."""
    handling = recent_handling_seconds() if handling is None else handling
    throughput = max(agents, 1) * get_settings().agent_max_chats / max(handling, 1.0)
    return int(max(60, round(position / throughput)))


@dataclass(frozen=True)
class Queued:
    handover_id: int
    position: int
    expected_wait_seconds: int


def enqueue(*, conversation_id: str, channel: str, input_channel: str, language: str,
            reason: str, skill: str, customer_code: str | None, customer_name: str,
            persona: str | None, vip: bool, summary: str, context_pack: dict[str, Any],
            agents: int) -> Queued:
    at = now()
    with session_scope() as db:
        existing = db.execute(select(Handover).where(
            Handover.conversation_id == conversation_id,
            Handover.state.in_(OPEN_STATES))).scalars().first()
        if existing is not None:  # asking twice does not queue twice
            h = existing
        else:
            h = Handover(conversation_id=conversation_id, channel=channel,
                         input_channel=input_channel, language=language, reason=reason,
                         skill=skill, customer_code=customer_code, customer_name=customer_name,
                         persona=persona, vip=vip,
                         priority=1 if (vip or persona == "business") else 0,
                         state="queued", created_at=at, queued_at=at, summary=summary,
                         context_pack=json.dumps(context_pack, default=str, ensure_ascii=False))
            db.add(h)
            db.flush()
            _transition(db, h, "queued", at, note=reason)
        hid = h.id
    pos = position(hid)
    return Queued(hid, pos, expected_wait_seconds(pos, agents))


def _queue_order():
    return (Handover.priority.desc(), Handover.queued_at.asc(), Handover.id.asc())


def position(handover_id: int) -> int:
    """1 = next; counted among the queued conversations of the same skill and language."""
    with session_scope() as db:
        h = db.get(Handover, handover_id)
        if h is None or h.state != "queued":
            return 0
        ahead = db.execute(select(func.count(Handover.id)).where(
            Handover.state == "queued", Handover.skill == h.skill,
            Handover.language == h.language, Handover.id != h.id,
            (Handover.priority > h.priority)
            | ((Handover.priority == h.priority) & (Handover.queued_at < h.queued_at))
            | ((Handover.priority == h.priority) & (Handover.queued_at == h.queued_at)
               & (Handover.id < h.id)))).scalar_one()
    return ahead + 1


def queue_for(agent_id: int) -> list[Handover]:
    """The waiting conversations this agent can take, most urgent first."""
    with session_scope() as db:
        agent = db.get(DeskUser, agent_id)
        rows = db.execute(select(Handover).where(Handover.state == "queued")
                          .order_by(*_queue_order())).scalars().all()
        return [h for h in rows if agent and _can_serve(agent, h.skill, h.language)]


def assigned_to(agent_id: int) -> list[Handover]:
    with session_scope() as db:
        return db.execute(select(Handover).where(Handover.state == "assigned",
                                                 Handover.agent_id == agent_id)
                          .order_by(Handover.assigned_at)).scalars().all()


def get(handover_id: int) -> Handover | None:
    with session_scope() as db:
        h = db.get(Handover, handover_id)
        if h is not None:
            h.transitions  # loaded for the caller  # noqa: B018
        return h


def open_for_conversation(conversation_id: str) -> Handover | None:
    with session_scope() as db:
        return db.execute(select(Handover).where(
            Handover.conversation_id == conversation_id,
            Handover.state.in_(OPEN_STATES)).order_by(Handover.id.desc())).scalars().first()


class Conflict(Exception):
    """The handover is no longer in the state the request expected."""


def claim(handover_id: int, agent_id: int) -> Handover:
    at = now()
    with session_scope() as db:
        h = db.get(Handover, handover_id, with_for_update=True)
        agent = db.get(DeskUser, agent_id)
        if h is None or h.state != "queued":
            raise Conflict("this conversation is no longer waiting")
        if agent is None or not _can_serve(agent, h.skill, h.language):
            raise Conflict("this conversation needs another skill or language")
        h.agent_id, h.assigned_at = agent_id, at
        if h.wait_seconds is None:
            h.wait_seconds = int((at - h.created_at).total_seconds())
        _transition(db, h, "assigned", at, agent_id)
        return h


def open_by_conversation(conversation_ids: list[str]) -> dict[str, Handover]:
    """The open handovers of these conversations, in one query (the desk asks at every batch
    of events: a read without a transaction, to be repeated if its connection was lost)."""
    if not conversation_ids:
        return {}
    with reading_scope() as db:
        rows = db.execute(select(Handover).where(
            Handover.conversation_id.in_(sorted(set(conversation_ids))),
            Handover.state.in_(OPEN_STATES)).order_by(Handover.id)).scalars().all()
    return {h.conversation_id: h for h in rows}


def note_customer_messages(seen: dict[int, datetime]) -> None:
    """The time of each handover's latest customer message (handover id → time)."""
    if not seen:
        return
    with session_scope() as db:
        for hid, at in seen.items():
            h = db.get(Handover, hid)
            if h is not None and (h.last_customer_at is None or at > h.last_customer_at):
                h.last_customer_at = at


def note_agent_message(handover_id: int, agent_id: int) -> Handover:
    at = now()
    with session_scope() as db:
        h = db.get(Handover, handover_id)
        if h is None or h.state != "assigned" or h.agent_id != agent_id:
            raise Conflict("this conversation is not assigned to you")
        h.last_agent_at = at
        return h


def finish(handover_id: int, state: str, outcome: str, agent_id: int | None = None) -> Handover:
    """closed (handed back / resolved), abandoned (cancelled) or fallback (callback/ticket)."""
    at = now()
    with session_scope() as db:
        h = db.get(Handover, handover_id)
        if h is None or h.state not in OPEN_STATES:
            raise Conflict("this conversation has already ended")
        if state == "closed" and (h.state != "assigned" or h.agent_id != agent_id):
            raise Conflict("this conversation is not assigned to you")
        if h.state == "queued" and h.wait_seconds is None:
            h.wait_seconds = int((at - h.created_at).total_seconds())
        if h.assigned_at is not None and state == "closed":
            h.handling_seconds = int((at - h.assigned_at).total_seconds())
        h.closed_at, h.outcome = at, outcome
        _transition(db, h, state, at, agent_id, outcome)
        return h


def requeue(handover_id: int, note: str) -> Handover:
    at = now()
    with session_scope() as db:
        h = db.get(Handover, handover_id)
        if h is None or h.state != "assigned":
            raise Conflict("this conversation is not assigned")
        previous = h.agent_id
        h.agent_id, h.assigned_at = None, None
        _transition(db, h, "queued", at, previous, note)
        return h


def unanswered(timeout_seconds: int, at: datetime | None = None) -> list[Handover]:
    """Assigned conversations whose customer has been waiting for the agent too long: nothing
    said since the claim, or a customer message left without an answer."""
    at = at or now()
    limit = at - timedelta(seconds=timeout_seconds)
    with session_scope() as db:
        rows = db.execute(select(Handover).where(Handover.state == "assigned")).scalars().all()
    late = []
    for h in rows:
        agent_spoke = h.last_agent_at is not None and h.last_agent_at >= h.assigned_at
        waiting_since = h.assigned_at if not agent_spoke else (
            h.last_customer_at if h.last_customer_at and h.last_customer_at > h.last_agent_at
            else None)
        if waiting_since is not None and waiting_since < limit:
            late.append(h)
    return late


def waiting_too_long(max_wait_seconds: int, at: datetime | None = None) -> list[Handover]:
    at = at or now()
    with session_scope() as db:
        return db.execute(select(Handover).where(
            Handover.state == "queued",
            Handover.created_at < at - timedelta(seconds=max_wait_seconds))).scalars().all()


def set_presence(agent_id: int, presence: str,
                 unless_chosen_since: datetime | None = None) -> None:
    """The agent's presence; with `unless_chosen_since`, left as it is when the agent changed
    it after that moment (the desk going offline for a page that closed must not undo what the
    agent chose since, from another page or the API)."""
    with session_scope() as db:
        agent = db.get(DeskUser, agent_id)
        if agent is None or agent.presence == presence:
            return
        if unless_chosen_since is not None and agent.presence_at > unless_chosen_since:
            return
        agent.presence, agent.presence_at = presence, now()
