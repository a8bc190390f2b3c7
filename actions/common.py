"""What every action shares: who the customer is, their language, and the skill template."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.interruptions import (
    Interruption,
    classify,
    has_entity,
    request_in_remainder,
    says_stop,
    slot_entities,
)
from bot import i18n
from bot.channels import MESSAGING, history_channel
from bot.crm.card import IdentityCard, load_identity_card
from bot.crm.service import issue_otp, record_interaction
from bot.notify import DeliveryError
from bot.persistence.db import run
from bot.skills import SKILL_ACTIONS, intent_of_form, is_form, task_marker

log = logging.getLogger(__name__)

# The tasks (forms) a customer can interrupt, and how the bot offers to go back to each.
RESUME_OFFERS = {
    "submit_meter_reading": "utter_resume_submit_meter_reading",
    "update_contact": "utter_resume_update_contact",
    "setup_direct_debit": "utter_resume_setup_direct_debit",
    "file_complaint": "utter_resume_file_complaint",
    "request_callback": "utter_resume_request_callback",
}


def channel_of(tracker: Tracker) -> str:
    return history_channel(tracker.get_latest_input_channel())


def linkable(tracker: Tracker) -> bool:
    """Whether this sender id is a messaging identity that may be linked to a customer: an SMS
    sender through Twilio can be spoofed, a WhatsApp one cannot."""
    if tracker.get_latest_input_channel() == "twilio":
        return tracker.sender_id.startswith("whatsapp:")
    return channel_of(tracker) in MESSAGING


def language_of(tracker: Tracker) -> str:
    return tracker.get_slot("language") or "it"


def verified_customer(tracker: Tracker) -> Optional[str]:
    """The customer code, only when the identity was verified (token, one-time code, channel)."""
    if tracker.get_slot("verified") is True:
        return tracker.get_slot("customer_code")
    return None


def latest_entity(tracker: Tracker, name: str) -> Optional[str]:
    values = [e.get("value") for e in tracker.latest_message.get("entities", [])
              if e.get("entity") == name and e.get("value")]
    return str(values[-1]) if values else None


def done(dispatcher: CollectingDispatcher, skill: str, reference: Optional[str] = None) -> None:
    """Mark the reply just given as the one that did `skill`'s job (bot.skills.task_marker):
    the conversation log counts the task resolved from that reply's metadata."""
    if dispatcher.messages:
        dispatcher.messages[-1].update(task_marker(skill, reference))
    else:  # every caller replies first: a task done without a word is a bug
        log.warning("task %s done without a reply to mark", skill)


async def record(tracker: Tracker, card: IdentityCard, topic: str, outcome: str,
                 summary: str = "", *, dispatcher: Optional[CollectingDispatcher] = None,
                 reference: Optional[str] = None) -> None:
    """Write this conversation's interaction to the customer history (never fails the reply).
    With `dispatcher`, a resolved task also marks the reply that did it (`done`); `reference`
    is the ticket id or bill number it was about."""
    if dispatcher is not None and outcome == "resolved":
        done(dispatcher, topic, reference)
    try:
        await run(record_interaction, card.customer_code, channel_of(tracker), topic, outcome,
                  summary, tracker.sender_id)
    except Exception:  # the history must not break the conversation
        log.exception("could not record the interaction")


class SkillAction(Action, ABC):
    """A skill: checks identity (asks for verification when needed), reads the identity card
    once, and answers with the domain's responses. Subclasses implement `handle`; skills that
    need the domain (its vocabulary) derive from DomainSkillAction instead."""

    intent: str = ""
    needs_identity: bool = True

    def name(self) -> Text:
        return SKILL_ACTIONS[self.intent]

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        events: List[EventType] = [SlotSet("misunderstandings", 0), SlotSet("offer", None)]
        try:
            code = verified_customer(tracker)
            card = await load_identity_card(code) if code else None
            if self.needs_identity and card is None:
                return events + await self.ask_verification(dispatcher, tracker)
            events += await self.answer(dispatcher, tracker, card, domain) or []
            return events + await offer_resume(dispatcher, tracker)
        except Exception:
            log.exception("action %s failed", self.name())
            dispatcher.utter_message(response="utter_technical_problem")
            return events

    async def ask_verification(self, dispatcher: CollectingDispatcher,
                               tracker: Tracker) -> List[EventType]:
        dispatcher.utter_message(response="utter_need_verification")
        return await start_verification(dispatcher, tracker, self.intent)

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard], domain: Dict[Text, Any]) -> List[EventType]:
        return await self.handle(dispatcher, tracker, card)

    @abstractmethod
    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard]) -> List[EventType]:
        """The skill's answer for this customer (None when `needs_identity` is False and the
        customer is anonymous)."""


class DomainSkillAction(SkillAction, ABC):
    """A skill whose replies carry vocabulary words (bot.i18n.word), resolved from the domain
    rasa-sdk passes to `run`: subclasses implement `answer`."""

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard]) -> List[EventType]:
        # never called: `run` calls `answer`
        raise NotImplementedError

    @abstractmethod
    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard], domain: Dict[Text, Any]) -> List[EventType]:
        """The skill's answer for this customer, with the domain at hand."""


def skill_action(intent: Optional[str]) -> Optional[SkillAction]:
    """The skill action that answers `intent` at once (not a form, not a person), if any."""
    if not intent or intent == "request_human" or is_form(SKILL_ACTIONS.get(intent, "_form")):
        return None
    pending = list(SkillAction.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if getattr(cls, "intent", "") == intent and not getattr(cls, "__abstractmethods__", None):
            return cls()
    return None


LOCKED = "LOCKED"


async def send_code(dispatcher: CollectingDispatcher, tracker: Tracker,
                    customer_code: str) -> Optional[List[EventType]]:
    """Send a one-time code; the same reply whether or not the customer code exists."""
    try:
        issued = await run(issue_otp, customer_code, tracker.sender_id)
    except DeliveryError:  # logged (masked) where it failed; the customer is told
        dispatcher.utter_message(response="utter_technical_problem")
        return None
    if issued.locked_until:
        dispatcher.utter_message(response="utter_verification_locked",
                                 until=i18n.moment(issued.locked_until, language_of(tracker)))
        return None
    if issued.limited:
        dispatcher.utter_message(response="utter_otp_limit")
        return None
    dispatcher.utter_message(response="utter_otp_sent")
    return [SlotSet("code_input", customer_code), SlotSet("otp_sent_for", customer_code)]


async def prepare_verification(dispatcher: CollectingDispatcher, tracker: Tracker,
                               pending_intent: Optional[str]) -> List[EventType]:
    """Slots for the verify form (which rules run next); a customer code already in the
    message gets its one-time code at once."""
    events: List[EventType] = [SlotSet("pending_intent", pending_intent),
                               SlotSet("code_input", None), SlotSet("otp_input", None),
                               SlotSet("otp_sent_for", None)]
    code = latest_entity(tracker, "customer_code")
    if code:
        sent = await send_code(dispatcher, tracker, code.upper())
        if sent is None:  # verification locked, and said so: the form ends at once
            return events + [SlotSet("code_input", code.upper()), SlotSet("otp_input", LOCKED)]
        events += sent
    return events


async def start_verification(dispatcher: CollectingDispatcher, tracker: Tracker,
                             pending_intent: Optional[str]) -> List[EventType]:
    """For actions that find out themselves that verification is needed."""
    return await prepare_verification(dispatcher, tracker, pending_intent) + [
        FollowupAction("verify_form")]


class FormValidation(FormValidationAction, ABC):
    """Every form's validation. Before the form's own checks:
    - a picture, voice note or other non-text message gets the same polite reply as outside
      forms, fills nothing, and the form asks again;
    - "annulla", "never mind"... stop the task; "bye" stops it and says goodbye;
    - help, thanks, "are you a bot?" or an out-of-scope question are answered, then the form
      asks its question again;
    - another request (a bill, an outage...) ends the form, that skill answers, and the bot
      offers to resume the interrupted task once (the `interrupted` slot);
    - a message carrying a value for the slot asked ("no, it's 5192") is an answer, whatever
      the classifier thought of it: corrections never start another task.
    A person asked for is handled by each form's rules (request_human rejects the form).
    """

    # Slots whose answer is free text (a complaint): only an explicit stop interrupts them.
    free_text_slots: frozenset = frozenset()

    @abstractmethod
    def name(self) -> Text:
        """validate_<form name>"""

    def answers(self, tracker: Tracker, domain: Dict[Text, Any], slot: str) -> bool:
        """Whether the latest message carries a value for `slot` (its entities by default); any
        text but an explicit stop answers a free-text slot."""
        if slot in self.free_text_slots:
            return not says_stop(tracker)
        return has_entity(tracker, slot_entities(domain, slot))

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        metadata = tracker.latest_message.get("metadata") or {}
        if isinstance(metadata, dict) and metadata.get("unsupported_media"):
            dispatcher.utter_message(response="utter_unsupported_message")
            return [SlotSet(name, None) for name in tracker.slots_to_validate()]
        asked = tracker.get_slot("requested_slot")
        if asked:  # not at activation, when the request itself is the latest message
            own, answers = intent_of_form(self.form_name()), self.answers(tracker, domain, asked)
            interruption = classify(tracker, domain, own, answers)
            if not answers and (interruption is None or interruption.kind == "aside"):
                # "thanks, also can you tell me when my contract ends?": the question after the
                # remark, classified on its own
                later = await request_in_remainder(tracker, own, after_remark=True)
                if later is not None:
                    interruption = Interruption("skill", later)
            if interruption is not None:
                return await self.interrupted(interruption, dispatcher, tracker, domain)
        return await super().run(dispatcher, tracker, domain)

    def ended(self, domain: Dict[Text, Any]) -> List[EventType]:
        """Events that end this form and forget what it collected."""
        return [SlotSet(name, None) for name in self.domain_slots(domain)] + [
            SlotSet("requested_slot", None)]

    def paused(self, tracker: Tracker, asked: Optional[str]) -> List[EventType]:
        """Events that keep what must outlive another request answered in the middle of this
        form (a code already sent), so the task can go on afterwards; none by default."""
        return []

    async def interrupted(self, interruption: Interruption, dispatcher: CollectingDispatcher,
                          tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        asked = tracker.get_slot("requested_slot")
        if interruption.kind == "stop":
            dispatcher.utter_message(response="utter_form_cancelled")
            intent = interruption.intent or await request_in_remainder(
                tracker, intent_of_form(self.form_name()))
            then = SKILL_ACTIONS.get(intent or "", "action_listen")
            return self.ended(domain) + [SlotSet("interrupted", None), FollowupAction(then)]
        if interruption.kind == "goodbye":
            return self.ended(domain) + [FollowupAction("action_goodbye")]
        if interruption.kind == "language":
            return self.ended(domain) + [FollowupAction("action_change_language")]
        if interruption.kind == "skill":
            target = SKILL_ACTIONS[interruption.intent]
            own = intent_of_form(self.form_name())
            resume = own if own and not is_form(target) else None
            return self.ended(domain) + self.paused(tracker, asked) + [
                SlotSet("interrupted", resume), FollowupAction(target)]
        if interruption.response:  # an aside: answered, then the question again
            dispatcher.utter_message(response=interruption.response)
        return [SlotSet(asked, None)]


async def offer_resume(dispatcher: CollectingDispatcher, tracker: Tracker) -> List[EventType]:
    """After answering a request made in the middle of a task: offer that task again, once."""
    task = tracker.get_slot("interrupted")
    if task not in RESUME_OFFERS:
        return []
    dispatcher.utter_message(response=RESUME_OFFERS[task])
    return [SlotSet("interrupted", None), SlotSet("offer", task)]
