"""Callback: a phone number (the one on file by default) and a time slot; opens a ticket.

A number or a time given in the request ("richiamatemi domani mattina al 333 1234567") is used
and not asked again; a callback like one asked for in the last days asks first whether the
customer wants to know where that one stands."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import FormValidation, channel_of, record, verified_customer
from actions.tickets import SIMILAR_CHOICE, STATUS, SimilarTicketCheck, say_status_instead
from bot.crm.card import load_identity_card
from bot.crm.service import open_ticket
from bot.crm.validation import normalise_phone
from bot.masks import mask_phone
from bot.persistence.db import run

_HOUR = r"\d{1,2}(?:[:.]\d{2})?"
_AMPM = r"(?:\s*(?:am|pm))?"
_DAYS_IT = (r"oggi|domani|dopodomani|stasera|stamattina|stamani|stanotte|"
            r"luned[iì]|marted[iì]|mercoled[iì]|gioved[iì]|venerd[iì]|sabato|domenica|"
            r"in settimana|in giornata|entro (?:oggi|domani|sera)")
_PARTS_IT = (r"(?:in |di |la |nel )?(?:mattinata|mattina|pomeriggio|serata|sera|pausa pranzo|"
             r"ora di pranzo)|dopo pranzo|dopo cena|prima di cena|verso sera")
_DAYS_EN = (r"today|tomorrow|tonight|this (?:morning|afternoon|evening)|"
            r"(?:on )?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)|"
            r"(?:in the )?(?:morning|afternoon|evening)|at lunch(?:time)?|lunchtime|"
            r"after work|after dinner")
# When a customer wants to be called, as they say it in a request (never a phone number).
TIME_SLOT = re.compile("|".join([
    rf"\b(?:{_DAYS_IT}|{_PARTS_IT}|{_DAYS_EN})\b",
    rf"\b(?:dopo|prima|verso|entro|intorno)\s+(?:le|alle)\s+{_HOUR}(?!\d)",
    rf"\b(?:alle|dalle)\s+{_HOUR}(?:\s+(?:alle|e le)\s+{_HOUR})?(?!\d)",
    rf"\b(?:tra|fra)\s+le\s+{_HOUR}\s+e\s+le\s+{_HOUR}(?!\d)",
    r"\b(?:tra|fra)\s+(?:mezz['’ ]?ora|un['’ ]ora|\d{1,2}\s+(?:minuti|ore))\b",
    rf"\bbetween\s+{_HOUR}{_AMPM}\s+and\s+{_HOUR}{_AMPM}(?![\d\w])",
    rf"\b(?:after|before|around|at|by|from)\s+{_HOUR}{_AMPM}"
    rf"(?:\s*(?:to|until|-)\s*{_HOUR}{_AMPM})?(?![\d\w])",
    r"\bin\s+(?:half an hour|an hour|\d{1,2}\s+(?:minutes|mins|hours))\b",
    r"(?<![\d+])\b\d{1,2}\s*(?:am|pm)\b",
]), re.IGNORECASE)


def time_slot_in(text: str) -> Optional[str]:
    """The customer's words that say when to call ("domani mattina", "after 3pm"), or None."""
    spans = [match.group(0).strip() for match in TIME_SLOT.finditer(text or "")]
    return " ".join(spans)[:100] or None


class ActionAskCallbackPhone(Action):
    def name(self) -> Text:
        return "action_ask_callback_phone"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        card = await load_identity_card(verified_customer(tracker))
        if card and card.phone:
            dispatcher.utter_message(response="utter_ask_callback_phone",
                                     masked=mask_phone(card.phone))
        else:
            dispatcher.utter_message(response="utter_ask_callback_phone_none")
        return []


class ValidateCallbackForm(SimilarTicketCheck, FormValidation):
    kind = "callback"
    new_intent = "request_callback"
    # "domani pomeriggio" may be classified as anything: it is the answer to "when?"
    free_text_slots = frozenset({"callback_slot"})

    def name(self) -> Text:
        return "validate_callback_form"

    async def validate_callback_phone(self, value: Any, dispatcher: CollectingDispatcher,
                                      tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent == "affirm":
            card = await load_identity_card(verified_customer(tracker))
            if card and card.phone:
                return {"callback_phone": card.phone}
        phone = normalise_phone(str(value or ""))
        if phone is None:
            dispatcher.utter_message(response="utter_phone_not_valid", value=str(value)[:40])
            return {"callback_phone": None}
        return {"callback_phone": phone}

    async def validate_callback_slot(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if tracker.get_slot("requested_slot") != "callback_slot":
            # from the request itself: only the words that say when, if any (else asked)
            return {"callback_slot": time_slot_in(str(value or ""))}
        text = " ".join(str(value or "").split())[:100]
        return {"callback_slot": text or None}


class ActionCallbackSubmit(Action):
    def name(self) -> Text:
        return "action_callback_submit"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        code = verified_customer(tracker)
        phone, slot = tracker.get_slot("callback_phone"), tracker.get_slot("callback_slot")
        events = [SlotSet("callback_phone", None), SlotSet("callback_slot", None),
                  SlotSet(SIMILAR_CHOICE, None)]
        if code and tracker.get_slot(SIMILAR_CHOICE) == STATUS:
            card = await load_identity_card(code)
            return events + await say_status_instead(dispatcher, tracker, card, domain,
                                                     "callback")
        if not code or not phone:
            return events
        ticket = await run(open_ticket, code, "callback", "Richiesta di richiamata",
                           channel_of(tracker), callback_phone=phone, callback_slot=slot,
                           eta_days=1, conversation_id=tracker.sender_id)
        dispatcher.utter_message(response="utter_callback_opened", ticket_id=ticket.ticket_id,
                                 masked=mask_phone(phone), slot=slot)
        await record(tracker, await load_identity_card(code), "request_callback", "resolved",
                     dispatcher=dispatcher, reference=ticket.ticket_id)
        return events
