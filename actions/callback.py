"""Callback: a phone number (the one on file by default) and a time slot; opens a ticket."""

from __future__ import annotations

from typing import Any, Dict, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import FormValidation, channel_of, record, verified_customer
from bot.crm.card import load_identity_card
from bot.crm.service import open_ticket, run
from bot.crm.validation import mask_phone, normalise_phone

ON_FILE = "on_file"


class ActionAskCallbackPhone(Action):
    def name(self) -> Text:
        return "action_ask_callback_phone"

    async def run(self, dispatcher, tracker, domain):
        card = await load_identity_card(verified_customer(tracker))
        if card and card.phone:
            dispatcher.utter_message(response="utter_ask_callback_phone",
                                     masked=mask_phone(card.phone))
        else:
            dispatcher.utter_message(response="utter_ask_callback_phone_none")
        return []


class ValidateCallbackForm(FormValidation):
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
        text = " ".join(str(value or "").split())[:100]
        return {"callback_slot": text or None}


class ActionCallbackSubmit(Action):
    def name(self) -> Text:
        return "action_callback_submit"

    async def run(self, dispatcher, tracker, domain):
        code = verified_customer(tracker)
        phone, slot = tracker.get_slot("callback_phone"), tracker.get_slot("callback_slot")
        events = [SlotSet("callback_phone", None), SlotSet("callback_slot", None)]
        if not code or not phone:
            return events
        ticket = await run(open_ticket, code, "callback", "Richiesta di richiamata",
                           channel_of(tracker), callback_phone=phone, callback_slot=slot,
                           eta_days=1, conversation_id=tracker.sender_id)
        dispatcher.utter_message(response="utter_callback_opened", ticket_id=ticket.ticket_id,
                                 masked=mask_phone(phone), slot=slot)
        await record(tracker, await load_identity_card(code), "request_callback", "resolved")
        return events
