"""request_human: always honoured at once. Until the live handover lands, it opens a callback
ticket and says so honestly."""

from __future__ import annotations

from rasa_sdk.events import SlotSet

from actions.common import SkillAction, channel_of, record
from bot.crm.service import open_ticket, run
from bot.crm.validation import mask_phone


FORM_SLOTS = ("code_input", "otp_input", "supply_choice", "reading_value", "new_contact",
              "iban_input", "complaint_text", "callback_phone", "callback_slot")


class ActionRequestHuman(SkillAction):
    intent = "request_human"
    needs_identity = False

    async def run(self, dispatcher, tracker, domain):
        # A form left half-way must not come back with stale answers.
        events = await super().run(dispatcher, tracker, domain)
        return events + [SlotSet(name, None) for name in FORM_SLOTS if tracker.get_slot(name)]

    async def handle(self, dispatcher, tracker, card):
        if card is None:
            dispatcher.utter_message(response="utter_human_anonymous")
            return []
        if not card.phone:
            dispatcher.utter_message(response="utter_human_no_phone")
            return []
        ticket = await run(open_ticket, card.customer_code, "callback",
                           "Il cliente chiede di parlare con un operatore", channel_of(tracker),
                           description=tracker.latest_message.get("text") or "",
                           callback_phone=card.phone, eta_days=1,
                           conversation_id=tracker.sender_id)
        dispatcher.utter_message(response="utter_human_callback_opened",
                                 ticket_id=ticket.ticket_id, masked=mask_phone(card.phone))
        await record(tracker, card, self.intent, "handover")
        return []
