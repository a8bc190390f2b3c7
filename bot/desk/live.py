"""The desk's background work, in every desk process (started by `bot.desk.app`):

- `follow_stream`: reads Rasa's event stream a few times a second (`bot.event_stream`) and
  pushes customers' and agents' messages of a conversation with a person to its agent; a
  customer who cancels while waiting goes back to the bot; a change of the queue in the
  database (by this desk or another) is pushed to everybody;
- `watch_timeouts`: the handover timers (the maximum wait, the agent's reply timeout);
- `offline_later`: an agent whose last page closed goes offline after a grace period.

The conversation log is not built here: that is the log worker (`bot.log_worker`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from sanic import Sanic
from sqlalchemy import select

from bot import event_stream
from bot.desk.hub import Hub
from bot.desk.rasa_api import RasaError
from bot.handover import service as queue
from bot.handover.models import OPEN_STATES, Handover
from bot.handover.pack import transcript
from bot.persistence.db import reading_scope, run
from bot.persistence.reconnect import once_more
from bot.settings import get_settings
from bot.stopwords import is_stop_phrase

log = logging.getLogger(__name__)
POLL_SECONDS = 0.1
CHECK_SECONDS = 2.0
OFFLINE_GRACE_SECONDS = 5.0
# A customer waiting for a person stops waiting with these intents or a stop phrase
# (bot.stopwords). "No" counts here, unlike in a form, where it answers the form's question.
CANCEL_WAIT_INTENTS = ("deny", "cancel")


async def offline_later(app: Sanic, user_id: int) -> None:
    """The agent's browser went away: offline, unless a page comes back within a few seconds
    or the agent chooses a presence meanwhile."""
    closed = queue.now()
    await asyncio.sleep(OFFLINE_GRACE_SECONDS)
    if not app.ctx.hub.sockets.get(user_id):
        await run(queue.set_presence, user_id, "offline", closed)


def _line(event: dict) -> dict | None:
    lines = transcript([event])
    return lines[0] if lines else None


async def follow_stream(app: Sanic) -> None:
    hub: Hub = app.ctx.hub
    signature = None
    while not app.ctx.stopping:
        try:
            events = await run(event_stream.read_after, app.ctx.last_event_id)
            if events:
                app.ctx.last_event_id = events[-1].id
                await on_events(app, events)
            current = await run(once_more, _queue_signature)
            if current != signature:
                if signature is not None:
                    await hub.broadcast({"type": "queue"})
                signature = current
        except Exception:  # the stream must keep flowing
            log.exception("event stream")
            await asyncio.sleep(1)
        await asyncio.sleep(POLL_SECONDS)


def _queue_signature() -> tuple:
    # read ten times a second: one autocommit statement, no transaction around it
    with reading_scope() as db:
        return tuple(db.execute(select(Handover.id, Handover.state, Handover.agent_id)
                                .where(Handover.state.in_(OPEN_STATES))
                                .order_by(Handover.id)).all())


async def on_events(app: Sanic, events: list[event_stream.StreamEvent]) -> None:
    """Customers' and agents' messages of conversations with a person: pushed to the agent;
    a customer who cancels while waiting goes back to the bot. One query per batch."""
    relevant = [e for e in events if e.data.get("event") in ("user", "bot")]
    handovers = await run(once_more, queue.open_by_conversation,
                          [e.sender_id for e in relevant])
    seen: dict[int, datetime] = {}
    pushes: list[tuple[Handover, dict]] = []
    for e in relevant:
        h = handovers.get(e.sender_id)
        if h is None:
            continue
        when = datetime.fromtimestamp(e.data.get("timestamp") or 0, timezone.utc)
        if when < h.created_at:
            continue
        if e.data.get("event") == "user":
            seen[h.id] = max(when, seen.get(h.id, when))
            intent = ((e.data.get("parse_data") or {}).get("intent") or {}).get("name")
            if h.state == "queued" and (intent in CANCEL_WAIT_INTENTS
                                        or is_stop_phrase(e.data.get("text") or "")):
                await give_back(app, h, "abandoned", "cancelled by the customer",
                                "action_handover_cancelled")
                handovers.pop(e.sender_id, None)
                continue
        line = _line(e.data)
        if line and h.state == "assigned" and h.agent_id:
            pushes.append((h, line))
    await run(queue.note_customer_messages, seen)
    if pushes:
        # Only to the agent who has the handover now: not once it has ended or gone to
        # someone else while this batch was read.
        current = await run(once_more, _assigned_agents, sorted({h.id for h, _ in pushes}))
        for h, line in pushes:
            if current.get(h.id) == h.agent_id:
                await app.ctx.hub.send(h.agent_id,
                                       {"type": "message", "handover_id": h.id, **line})


def _assigned_agents(handover_ids: list[int]) -> dict[int, int]:
    """Handover id -> its agent, for those of `handover_ids` assigned right now."""
    with reading_scope() as db:
        return dict(db.execute(select(Handover.id, Handover.agent_id).where(
            Handover.id.in_(handover_ids), Handover.state == "assigned")).all())


async def give_back(app: Sanic, h: Handover, state: str, outcome: str, action: str) -> None:
    """End the handover (`state`, `outcome`) and let the bot go on with `action`."""
    try:
        await run(queue.finish, h.id, state, outcome)
    except queue.Conflict:
        return
    try:
        await app.ctx.rasa.resume_with(h.conversation_id, action)
    except RasaError as exc:
        log.error("could not resume conversation of handover %s: %s", h.id, exc)
    await app.ctx.hub.broadcast({"type": "queue"})


async def watch_timeouts(app: Sanic) -> None:
    s = get_settings()
    while not app.ctx.stopping:
        try:
            for h in await run(queue.waiting_too_long, s.handover_max_wait_seconds):
                await give_back(app, h, "fallback", "maximum wait reached",
                                "action_handover_timeout")
            for h in await run(queue.unanswered, s.agent_reply_timeout_seconds):
                agent = h.agent_id
                try:
                    await run(queue.requeue, h.id, "agent did not answer in time")
                except queue.Conflict:
                    continue
                if agent:
                    await app.ctx.hub.send(agent, {"type": "taken_away", "handover_id": h.id,
                                                   "why": "you did not answer in time"})
                await app.ctx.hub.broadcast({"type": "queue"})
        except Exception:
            log.exception("timeouts")
        await asyncio.sleep(CHECK_SECONDS)
