"""Contact data: validate a new e-mail or phone, store it, confirm it masked."""

from __future__ import annotations

from typing import Any, Dict, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import FormValidation, record, verified_customer
from bot.crm.card import load_identity_card
from bot.crm.service import run, set_email, set_phone
from bot.crm.validation import is_valid_email, mask_email, mask_phone, normalise_phone


def parse_contact(text: str) -> tuple[str, str] | None:
    """("email", value) or ("phone", E.164), or None when it is neither."""
    text = (text or "").strip()
    for word in text.split():
        word = word.strip(".,;:()<>")
        if "@" in word:
            return ("email", word.lower()) if is_valid_email(word) else None
    phone = normalise_phone(text)
    return ("phone", phone) if phone else None


async def store_contact(dispatcher, tracker, kind: str, value: str) -> None:
    code = verified_customer(tracker)
    if kind == "email":
        await run(set_email, code, value)
        dispatcher.utter_message(response="utter_email_updated", masked=mask_email(value))
    else:
        await run(set_phone, code, value)
        dispatcher.utter_message(response="utter_phone_updated", masked=mask_phone(value))
    card = await load_identity_card(code)
    await record(tracker, card, "update_contact", "resolved")


class ValidateContactForm(FormValidation):
    def name(self) -> Text:
        return "validate_contact_form"

    async def validate_new_contact(self, value: Any, dispatcher: CollectingDispatcher,
                                   tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        parsed = parse_contact(str(value or ""))
        if parsed is None:
            dispatcher.utter_message(response="utter_contact_not_valid", value=str(value)[:60])
            return {"new_contact": None}
        return {"new_contact": f"{parsed[0]}:{parsed[1]}"}


class ActionContactSubmit(Action):
    def name(self) -> Text:
        return "action_contact_submit"

    async def run(self, dispatcher, tracker, domain):
        value = tracker.get_slot("new_contact") or ""
        if verified_customer(tracker) and ":" in value:
            kind, contact = value.split(":", 1)
            await store_contact(dispatcher, tracker, kind, contact)
        return [SlotSet("new_contact", None)]
