"""Conversation actions: context on every message, greeting, fallback, yes/no, feedback."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import (
    SKILL_ACTIONS,
    channel_of,
    language_of,
    latest_entity,
    linkable,
    record,
    start_verification,
    verified_customer,
)
from actions.given_data import actions_of_last_turn, data_beyond_doubt, task_for_data
from bot import i18n
from bot.channels import MESSAGING
from bot.crm.card import load_identity_card
from bot.crm.nba import NextBestAction, next_best_action, unresolved_recent_contact
from bot.crm.service import conversation_recorded, customer_for_identity
from bot.language import detect
from bot.nlu.companies import names_other_company
from bot.persistence.db import run
from bot.safety import smells_of_gas
from bot.settings import get_settings, local_zone

log = logging.getLogger(__name__)

IDENTITY_SLOTS = ("customer_code", "verified", "auth_method", "first_name", "persona", "vip")


class ActionUpdateContext(Action):
    """Runs on every user message (custom slot mapping): who is writing, in which language.

    Identity is bound to what cannot be replayed, and checked again on every message:
    - web (REST, socket.io): the customer token of the company's site, which the channel checked
      and replaced by the customer it proves (`metadata.customer`, connectors/identity.py). A
      customer identified by token stays identified only while each message carries a valid
      token; a message without one makes the conversation anonymous again.
    - messaging apps: a verified (channel, user id) link, trusted only on its own signed
      webhook (the input channel is set by the connector, never by the client).
    - a one-time code: valid while the customer keeps writing; after
      `VERIFICATION_IDLE_MINUTES` without a message the conversation is anonymous again.
    A customer code typed in the chat never identifies anybody by itself.
    """

    def name(self) -> Text:
        return "action_update_context"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        if tracker.is_paused():  # with an agent: the bot neither answers nor needs context
            return []
        events: List[EventType] = []
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if tracker.get_slot("offer") and intent not in ("affirm", "deny"):
            events.append(SlotSet("offer", None))  # an offer is answered at once or not at all
        metadata = tracker.latest_message.get("metadata") or {}
        proven = metadata.get("customer") if isinstance(metadata, dict) else None
        proven = proven if isinstance(proven, dict) else None
        channel = channel_of(tracker)
        method = tracker.get_slot("auth_method")
        code, new_method = None, None
        try:
            if proven is not None:
                code, new_method = proven.get("code"), "token"
            elif channel in MESSAGING and linkable(tracker):
                code = await run(customer_for_identity, channel, tracker.sender_id)
                new_method = "channel"
            current = tracker.get_slot("customer_code")
            if code and (code != current or tracker.get_slot("verified") is not True
                         or method != new_method):
                card = await load_identity_card(code)
                if card is not None:
                    events += [
                        SlotSet("customer_code", code), SlotSet("verified", True),
                        SlotSet("auth_method", new_method),
                        SlotSet("first_name", card.first_name),
                        SlotSet("persona", card.persona), SlotSet("vip", card.vip),
                    ]
                    if tracker.get_slot("language_source") != "user":
                        events += [SlotSet("language", card.language),
                                   SlotSet("language_source", "profile")]
                    return events
            if not code and _identity_lapsed(tracker, method, channel):
                events += forget_identity()
        except Exception:
            log.exception("could not read the customer's identity")
        if tracker.get_slot("language_source") not in ("profile", "user"):
            text = tracker.latest_message.get("text") or ""
            detected = None if text.startswith("/") else detect(text)
            if detected:
                events += [SlotSet("language", detected), SlotSet("language_source", "detected")]
        return events


def forget_identity() -> List[EventType]:
    """The conversation is anonymous again."""
    return [SlotSet(name, None) for name in IDENTITY_SLOTS if name != "verified"] + [
        SlotSet("verified", False)]


def _identity_lapsed(tracker: Tracker, method: str | None, channel: str) -> bool:
    """Whether the identity held in the slots no longer stands for this message."""
    if tracker.get_slot("verified") is not True:
        return False
    if method == "token":  # the token must come with every message
        return True
    if method == "channel":  # only on the channel that proved it
        return channel not in MESSAGING
    if method == "otp":  # no earlier message in this session: it expired, so did the code's
        idle = _idle_minutes(tracker)
        return idle is None or idle > get_settings().verification_idle_minutes
    return True  # an identity nobody proved


def _idle_minutes(tracker: Tracker) -> float | None:
    """Minutes between the customer's previous message and this one; None when the previous
    one is not in this session (Rasa sends the current session only)."""
    times = [e.get("timestamp") for e in tracker.events if e.get("event") == "user"]
    times = [t for t in times if isinstance(t, (int, float))]
    if len(times) < 2:
        return None
    return (times[-1] - times[-2]) / 60


class ActionGreet(Action):
    """Greets by name with the single most relevant next best action."""

    def name(self) -> Text:
        return "action_greet"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        code = verified_customer(tracker)
        lang = language_of(tracker)
        try:
            card = await load_identity_card(code) if code else None
        except Exception:
            log.exception("could not read the identity card")
            card = None
        if card is None:
            dispatcher.utter_message(response="utter_greet_anonymous")
            return [SlotSet("offer", None)]
        dispatcher.utter_message(response="utter_greet_known", first_name=card.first_name)
        now = datetime.now(timezone.utc)
        offer = None
        nba = next_best_action(card, now)
        if nba is not None:
            offer = nba_message(dispatcher, domain, nba, lang)
        recent = unresolved_recent_contact(card, channel_of(tracker), now)
        if recent is not None:
            dispatcher.utter_message(
                response="utter_recent_contact",
                when=i18n.relative_day(domain, recent.at,
                                       now.astimezone(local_zone()).date(), lang),
                channel=i18n.channel(domain, recent.channel, lang),
                topic=i18n.topic(domain, recent.topic, lang),
            )
            offer = recent.topic if recent.topic in SKILL_ACTIONS else offer
        if nba is None and recent is None:
            dispatcher.utter_message(response="utter_how_can_i_help")
        return [SlotSet("offer", offer)]


def nba_message(dispatcher: CollectingDispatcher, domain: Dict[Text, Any], nba: NextBestAction,
                lang: str) -> Optional[str]:
    """Say the next best action; returns the offer the customer may accept with "yes"."""
    if nba.kind == "outage":
        o = nba.params["outage"]
        dispatcher.utter_message(response="utter_nba_outage",
                                 supply=i18n.supply(domain, o.type, lang),
                                 postcode=", ".join(o.postcodes),
                                 expected_end=i18n.moment(o.expected_end, lang))
        return None
    if nba.kind == "overdue_bill":
        b = nba.params["bill"]
        dispatcher.utter_message(response="utter_nba_overdue_bill",
                                 amount=i18n.money(b.amount_eur, lang),
                                 due_date=i18n.day(b.due_date, lang),
                                 days_overdue=max(-i18n.days_until(b.due_date, i18n.today()), 0))
        return "pay_bill"
    if nba.kind == "ticket_news":
        t = nba.params["ticket"]
        dispatcher.utter_message(response="utter_nba_ticket_news", ticket_id=t.ticket_id,
                                 subject=t.subject, status=i18n.status(domain, t.status, lang))
        return "ticket_status"
    if nba.kind == "reading_window":
        dispatcher.utter_message(response="utter_nba_reading_window")
        return "submit_meter_reading"
    dispatcher.utter_message(response="utter_nba_paperless")
    return "activate_ebill"


class ActionGoodbye(Action):
    def name(self) -> Text:
        return "action_goodbye"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(response="utter_goodbye")
        code = verified_customer(tracker)
        try:
            if code and not await run(conversation_recorded, tracker.sender_id):
                card = await load_identity_card(code)
                await record(tracker, card, "goodbye", "resolved")
        except Exception:
            log.exception("could not record the conversation")
        return [SlotSet("offer", None)]


class ActionGiveFeedback(Action):
    def name(self) -> Text:
        return "action_give_feedback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        rating = latest_entity(tracker, "rating") or tracker.get_slot("rating")
        try:
            value = int(float(rating)) if rating is not None else None
        except ValueError:
            value = None
        if value is None or not 1 <= value <= 5:
            dispatcher.utter_message(response="utter_feedback_comment")
            return [SlotSet("offer", None)]
        if value <= 2:
            dispatcher.utter_message(response="utter_feedback_sorry", rating=value)
            return [SlotSet("rating", value), SlotSet("offer", "request_human")]
        dispatcher.utter_message(response="utter_feedback_thanks", rating=value)
        return [SlotSet("rating", value), SlotSet("offer", None)]


# "can you write in English? my Italian is not great": the language asked for follows "in".
ASKED_LANGUAGE = re.compile(r"\b(?:in|into|speak|parla|parli|parlare|usa|use)\s+$", re.IGNORECASE)


def wanted_language(tracker: Tracker) -> Optional[str]:
    """The language asked for: the one named after "in" ("in inglese", "in English"), else the
    last one named."""
    text = tracker.latest_message.get("text") or ""
    named = [e for e in tracker.latest_message.get("entities") or []
             if e.get("entity") == "language" and e.get("value")]
    for entity in named:
        if isinstance(entity.get("start"), int) and ASKED_LANGUAGE.search(text[:entity["start"]]):
            return str(entity["value"])
    return latest_entity(tracker, "language")


class ActionChangeLanguage(Action):
    def name(self) -> Text:
        return "action_change_language"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        wanted = wanted_language(tracker)
        if wanted not in ("it", "en"):
            wanted = "en" if language_of(tracker) == "it" else "it"
        # The confirmation (utter_language_switched, next in the rule) comes after the slot is
        # set, so it is said in the new language.
        return [SlotSet("language", wanted), SlotSet("language_source", "user")]


class ActionDefaultFallback(Action):
    """Low confidence: an honest "I did not understand" with the menu; after two in a row
    (one for seniors, business customers and VIPs) a person takes over."""

    def name(self) -> Text:
        return "action_nlu_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        metadata = tracker.latest_message.get("metadata") or {}
        text = (tracker.latest_message.get("text") or "").strip()
        if not text or metadata.get("empty_message"):
            dispatcher.utter_message(response="utter_empty_message")
            return []
        if metadata.get("unsupported_media"):  # an image, audio, ... from a messaging app
            dispatcher.utter_message(response="utter_unsupported_message")
            return []
        if smells_of_gas(text):  # whatever the classifier thought
            dispatcher.utter_message(response="utter_gas_emergency",
                                     number=get_settings().gas_emergency_number)
        if latest_entity(tracker, "rating") and "action_goodbye" in actions_of_last_turn(tracker):
            # "3, va bene ma preferisco il telefono": the rating just asked for, with a comment
            return [FollowupAction("action_give_feedback")]
        if latest_entity(tracker, "customer_code") and not verified_customer(tracker):
            # a customer code alone may fall under the classifier's threshold
            return await start_verification(dispatcher, tracker, tracker.get_slot("pending_intent"))
        started = await start_task_for_data(dispatcher, tracker)
        if started is not None:  # "the meter says 4723, please use that"
            return started
        count = int(tracker.get_slot("misunderstandings") or 0) + 1
        important = tracker.get_slot("persona") == "business" or bool(tracker.get_slot("vip"))
        patient = important or tracker.get_slot("persona") == "senior"
        limit = 1 if patient else 2
        if count >= limit:  # a person takes over
            from actions.handover import hand_over

            dispatcher.utter_message(response="utter_misunderstood_handover")
            return await hand_over(dispatcher, tracker, "vip" if important else "misunderstanding")
        dispatcher.utter_message(response="utter_did_not_understand")
        return [SlotSet("misunderstandings", count)]


class ActionOutOfScope(Action):
    """Something the bot cannot do: said honestly; a business or VIP customer gets a person.
    A message that carries data for a task (a reading with its meter, an IBAN) is that task,
    whatever the classifier thought; not when it is about another company's account."""

    def name(self) -> Text:
        return "action_out_of_scope"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        if data_beyond_doubt(tracker) and not names_other_company(
                tracker.latest_message.get("text")):
            started = await start_task_for_data(dispatcher, tracker)
            if started is not None:  # "cool. also my electricity meter says 41083"
                return started
        dispatcher.utter_message(response="utter_out_of_scope")
        if tracker.get_slot("persona") == "business" or tracker.get_slot("vip"):
            from actions.handover import hand_over

            return await hand_over(dispatcher, tracker, "vip")
        return []


class ActionAffirm(Action):
    """A "yes" with nothing to accept (offers are accepted by rules on the `offer` slot)."""

    def name(self) -> Text:
        return "action_affirm"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(response="utter_how_can_i_help")
        return [SlotSet("offer", None)]


class ActionDeny(Action):
    def name(self) -> Text:
        return "action_deny"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        started = await start_task_for_data(dispatcher, tracker)
        if started is not None:  # "no scusa ho letto male, è 30498": a correction
            return started
        dispatcher.utter_message(response="utter_ok_something_else")
        return [SlotSet("offer", None)]


class ActionInform(Action):
    """A piece of data outside any form: a customer code starts verification."""

    def name(self) -> Text:
        return "action_inform"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        if latest_entity(tracker, "customer_code") and not verified_customer(tracker):
            return await start_verification(dispatcher, tracker, tracker.get_slot("pending_intent"))
        started = await start_task_for_data(dispatcher, tracker)
        if started is not None:
            return started
        dispatcher.utter_message(response="utter_how_can_i_help")
        return []


async def start_task_for_data(dispatcher: CollectingDispatcher,
                              tracker: Tracker) -> Optional[List[EventType]]:
    """The task a piece of data is for (actions/given_data.py), started with it; an anonymous
    customer verifies first, and the task follows."""
    found = task_for_data(tracker)
    if found is None:
        return None
    intent, filled = found
    if not verified_customer(tracker):
        return filled + await start_verification(dispatcher, tracker, intent)
    return filled + [FollowupAction(SKILL_ACTIONS[intent])]

