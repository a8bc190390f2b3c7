"""Complaints: collect the complaint, open a ticket, offer a person."""

from __future__ import annotations

from typing import Any, Dict, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import FormValidation, channel_of, record, verified_customer
from bot.crm.card import load_identity_card
from bot.crm.service import open_ticket, run

MIN_LENGTH = 15


class ValidateComplaintForm(FormValidation):
    def name(self) -> Text:
        return "validate_complaint_form"

    async def validate_complaint_text(self, value: Any, dispatcher: CollectingDispatcher,
                                      tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        text = " ".join(str(value or "").split())
        if len(text) < MIN_LENGTH:
            dispatcher.utter_message(response="utter_complaint_too_short")
            return {"complaint_text": None}
        return {"complaint_text": text[:4000]}


class ActionComplaintSubmit(Action):
    def name(self) -> Text:
        return "action_complaint_submit"

    async def run(self, dispatcher, tracker, domain):
        code = verified_customer(tracker)
        text = tracker.get_slot("complaint_text")
        if not code or not text:
            return [SlotSet("complaint_text", None)]
        ticket = await run(open_ticket, code, "complaint", text[:120], channel_of(tracker),
                           description=text, eta_days=30, skill="billing",
                           conversation_id=tracker.sender_id)
        dispatcher.utter_message(response="utter_complaint_opened", ticket_id=ticket.ticket_id)
        await record(tracker, await load_identity_card(code), "file_complaint", "resolved",
                     text[:200])
        return [SlotSet("complaint_text", None), SlotSet("offer", "request_human")]
