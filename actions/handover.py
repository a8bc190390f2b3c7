"""Handover to a human agent.

`hand_over` is the one way into the queue, used by every trigger: `request_human` (at any moment,
also inside a form), repeated misunderstanding, a frustrated customer (the NLU marks the message),
skills that need a person (moving home, a complaint the customer wants to discuss) and business
or VIP customers the bot cannot help. It checks business hours and online agents with the right
skill and language, stores the handover with its context pack, tells the customer their position
and an honest expected wait, and pauses the conversation. With nobody available it offers a
callback or a written request instead, so nobody is left waiting alone.

The desk resumes the conversation and runs the `action_handover_*` actions below when the agent
hands back or closes, when the customer cancels, or when the wait runs too long.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import (
    SkillAction,
    channel_of,
    language_of,
    record,
    skill_action,
    start_verification,
    verified_customer,
)
from actions.interruptions import DIGRESSION_CONFIDENCE
from bot.crm.card import IdentityCard, load_identity_card
from bot.crm.service import open_ticket
from bot.handover import hours, pack, service as queue
from bot.persistence.db import run
from bot.safety import smells_of_gas
from bot.settings import get_settings

log = logging.getLogger(__name__)

FORM_SLOTS = ("code_input", "otp_input", "supply_choice", "reading_value", "new_contact",
              "iban_input", "complaint_text", "callback_phone", "callback_slot",
              "similar_ticket_choice", "contact_otp", "contact_otp_to")
SKILL_OF_REASON = {"move_home": "commercial", "complaint": "commercial"}


# A "yes" to the offer of a person made by these actions hands over for their reason.
REASON_OF_OFFER = {"action_complaint_submit": "complaint", "action_give_feedback": "feedback",
                   "action_nlu_fallback": "misunderstanding"}


def reason_of(tracker: Tracker) -> str:
    if tracker.latest_message.get("frustration"):
        return "frustration"
    if (tracker.latest_message.get("intent") or {}).get("name") == "affirm":
        for event in reversed(tracker.events[:-1]):
            if event.get("event") == "action" and event.get("name") != "action_listen" \
                    and not str(event.get("name", "")).startswith("action_update"):
                return REASON_OF_OFFER.get(event.get("name"), "request_human")
    return "request_human"


async def hand_over(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str,
                    card: Optional[IdentityCard] = None) -> List[EventType]:
    """Queue the conversation for an agent and pause the bot, or offer a callback/ticket."""
    settings = get_settings()
    language = language_of(tracker)
    events: List[EventType] = [SlotSet(name, None) for name in FORM_SLOTS
                               if tracker.get_slot(name)]
    events.append(SlotSet("misunderstandings", 0))
    if smells_of_gas(tracker.latest_message.get("text")):  # safety first, whatever else
        dispatcher.utter_message(response="utter_gas_emergency",
                                 number=settings.gas_emergency_number)
    if card is None and verified_customer(tracker):
        card = await load_identity_card(verified_customer(tracker))
    intents = pack.intents_of(tracker.events)
    skill = SKILL_OF_REASON.get(reason) or queue.skill_for(intents)
    available = await run(queue.availability, skill, language)
    if not available.available:
        opening = hours.describe(settings.desk_hours, language)
        response = ("utter_handover_closed" if available.why_not == "closed" and opening
                    else "utter_handover_no_agent")
        dispatcher.utter_message(response=response, hours=opening)
        dispatcher.utter_message(response="utter_handover_alternatives")
        if card is not None:
            await record(tracker, card, "request_human", "handover", "no agent available")
        return events + [SlotSet("offer", "handover_ticket")]
    channel = channel_of(tracker)
    context, summary = pack.build(card, tracker.events, reason, language, channel, skill,
                                  datetime.now(timezone.utc).date())
    queued = await run(
        queue.enqueue, conversation_id=tracker.sender_id, channel=channel,
        input_channel=tracker.get_latest_input_channel() or "", language=language,
        reason=reason, skill=skill, customer_code=card.customer_code if card else None,
        customer_name=f"{card.first_name} {card.last_name}" if card else "",
        persona=card.persona if card else None, vip=bool(card and card.vip), summary=summary,
        context_pack=context, agents=available.agents)
    minutes = max(1, round(queued.expected_wait_seconds / 60))
    dispatcher.utter_message(response="utter_handover_queued", position=queued.position,
                             minutes=minutes)
    if card is not None:
        await record(tracker, card, "request_human", "handover", pack.REASONS.get(reason, ""))
    return events + [SlotSet("offer", None), ConversationPaused()]


class ActionRequestHuman(SkillAction):
    """`request_human`, or a frustrated customer: honoured at once."""

    intent = "request_human"
    needs_identity = False

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard]) -> List[EventType]:
        # never called: `answer` is
        raise NotImplementedError

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard], domain: Dict[Text, Any]) -> List[EventType]:
        """An angry customer who asked something the bot can answer at once ("WHY IS THE BILL
        SO HIGH???") gets that answer before the person: nobody waits for what they asked."""
        reason = reason_of(tracker)
        events: List[EventType] = []
        skill = skill_asked_in_anger(tracker) if reason == "frustration" else None
        if skill is not None and card is not None:
            events += await skill.answer(dispatcher, tracker, card, domain) or []
        return events + await hand_over(dispatcher, tracker, reason, card)


def skill_asked_in_anger(tracker: Tracker) -> Optional[SkillAction]:
    """The answering skill (no form, no verification to start) a frustrated message was
    understood as, when the classifier was confident of it."""
    understood = (tracker.latest_message.get("frustration") or {}).get("understood") or {}
    if float(understood.get("confidence") or 0) < DIGRESSION_CONFIDENCE:
        return None
    return skill_action(understood.get("name"))


class ActionHandoverTicket(Action):
    """Nobody available and the customer chose a written request: a ticket an agent answers."""

    def name(self) -> Text:
        return "action_handover_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        events: List[EventType] = [SlotSet("offer", None)]
        code = verified_customer(tracker)
        if not code:
            dispatcher.utter_message(response="utter_need_verification")
            return events + await start_verification(dispatcher, tracker, "handover_ticket")
        card = await load_identity_card(code)
        lines = pack.transcript(tracker.events)
        said = [line["text"] for line in lines if line["who"] == "customer"][-5:]
        ticket = await run(open_ticket, code, "request", "Richiesta di contatto dalla chat",
                           channel_of(tracker), description="\n".join(said),
                           callback_phone=card.phone if card else None, eta_days=1,
                           skill=queue.skill_for(pack.intents_of(tracker.events)),
                           conversation_id=tracker.sender_id)
        dispatcher.utter_message(response="utter_handover_ticket_opened",
                                 ticket_id=ticket.ticket_id)
        if card is not None:
            await record(tracker, card, "request_human", "handover", "written request opened")
        return events


class _DeskAction(Action, ABC):
    """Run by the desk through Rasa's HTTP API, after it resumed the conversation."""

    response: str = ""
    then: Optional[str] = None
    offer: Optional[str] = None

    @abstractmethod
    def name(self) -> Text:
        """The action's name in the domain."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        name = tracker.get_slot("first_name") or ""
        dispatcher.utter_message(response=self.response, first_name=name)
        if self.then:
            dispatcher.utter_message(response=self.then)
        return [SlotSet("offer", self.offer), SlotSet("misunderstandings", 0)]


class ActionHandoverBack(_DeskAction):
    response, then = "utter_handover_back", "utter_ask_feedback"

    def name(self) -> Text:
        return "action_handover_back"


class ActionHandoverResolved(_DeskAction):
    response, then = "utter_handover_resolved", "utter_ask_feedback"

    def name(self) -> Text:
        return "action_handover_resolved"


class ActionHandoverCancelled(_DeskAction):
    response = "utter_handover_cancelled"

    def name(self) -> Text:
        return "action_handover_cancelled"


class ActionHandoverTimeout(_DeskAction):
    response = "utter_handover_timeout"
    then, offer = "utter_handover_alternatives", "handover_ticket"

    def name(self) -> Text:
        return "action_handover_timeout"
