"""Contact data: validate a new e-mail or phone, confirm the change with a one-time code sent
to the contact on file today (not the new one, so that whoever took over a conversation cannot
redirect the customer's codes), store it, confirm it masked."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import FormValidation, language_of, record, verified_customer
from bot import i18n
from bot.crm.card import load_identity_card
from bot.crm.service import check_otp, issue_otp, set_email, set_phone
from bot.crm.validation import is_valid_email, normalise_phone
from bot.masks import mask_email, mask_phone
from bot.notify import DeliveryError
from bot.persistence.db import run

CONFIRMED, STOPPED = "confirmed", "stopped"  # contact_otp values that end the form
PAUSED = "paused_contact"  # read by actions.given_data when the code comes after a digression


def parse_contact(text: str) -> tuple[str, str] | None:
    """("email", value) or ("phone", E.164), or None when it is neither."""
    text = (text or "").strip()
    for word in text.split():
        word = word.strip(".,;:()<>")
        if "@" in word:
            return ("email", word.lower()) if is_valid_email(word) else None
    phone = normalise_phone(text)
    return ("phone", phone) if phone else None


def is_checked_contact(value: Any) -> bool:
    """Whether a value is a new contact already validated ("phone:+39...", as stored in the
    slot), not text typed by the customer."""
    return isinstance(value, str) and value.startswith(("email:", "phone:"))


async def store_contact(dispatcher: CollectingDispatcher, tracker: Tracker, kind: str,
                        value: str) -> None:
    code = verified_customer(tracker)
    if kind == "email":
        await run(set_email, code, value)
        dispatcher.utter_message(response="utter_email_updated", masked=mask_email(value))
    else:
        await run(set_phone, code, value)
        dispatcher.utter_message(response="utter_phone_updated", masked=mask_phone(value))
    card = await load_identity_card(code)
    await record(tracker, card, "update_contact", "resolved", dispatcher=dispatcher)


class ValidateContactForm(FormValidation):
    def name(self) -> Text:
        return "validate_contact_form"

    def answers(self, tracker: Tracker, domain: DomainDict, slot: str) -> bool:
        text = tracker.latest_message.get("text") or ""
        if slot == "new_contact" and parse_contact(text):
            return True  # "no, it's mario@example.it" corrects the new contact
        if slot == "contact_otp" and re.search(r"\b\d{4,8}\b", text):
            return True
        return super().answers(tracker, domain, slot)

    def paused(self, tracker: Tracker, asked: Optional[str]) -> List[EventType]:
        """A code already sent stays good while another request is answered: the change and
        where the code went are kept for the code typed afterwards."""
        if asked != "contact_otp" or not tracker.get_slot("new_contact"):
            return []
        return [SlotSet(PAUSED, {"new_contact": tracker.get_slot("new_contact"),
                                 "contact_otp_to": tracker.get_slot("contact_otp_to")})]

    async def validate_new_contact(self, value: Any, dispatcher: CollectingDispatcher,
                                   tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if is_checked_contact(value) and tracker.get_slot("contact_otp_to"):
            return {"new_contact": value}  # resumed: its code was sent before the digression
        parsed = parse_contact(str(value or ""))
        if parsed is None:
            dispatcher.utter_message(response="utter_contact_not_valid", value=str(value)[:60])
            return {"new_contact": None}
        code = verified_customer(tracker)
        if not code:
            return {"new_contact": None, "contact_otp": STOPPED}
        try:
            issued = await run(issue_otp, code, tracker.sender_id)
        except DeliveryError:
            dispatcher.utter_message(response="utter_technical_problem")
            return {"new_contact": None, "contact_otp": STOPPED}
        if issued.locked_until:
            dispatcher.utter_message(response="utter_verification_locked",
                                     until=i18n.moment(issued.locked_until, language_of(tracker)))
        elif issued.limited:
            dispatcher.utter_message(response="utter_otp_limit")
        if not issued.sent:
            dispatcher.utter_message(response="utter_contact_not_changed")
            return {"new_contact": f"{parsed[0]}:{parsed[1]}", "contact_otp": STOPPED}
        return {"new_contact": f"{parsed[0]}:{parsed[1]}", "contact_otp": None,
                "contact_otp_to": issued.masked_destination}

    async def validate_contact_otp(self, value: Any, dispatcher: CollectingDispatcher,
                                   tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        # Only a code that checks confirms: a customer typing "confirmed" is a wrong code.
        if not value:  # reset when the code was sent
            return {"contact_otp": None}
        code = verified_customer(tracker)
        if not code:
            return {"contact_otp": STOPPED}
        result = await run(check_otp, code, tracker.sender_id, str(value or ""))
        if result.ok:
            return {"contact_otp": CONFIRMED}
        if result.locked_until:
            dispatcher.utter_message(response="utter_verification_locked",
                                     until=i18n.moment(result.locked_until, language_of(tracker)))
        elif not result.expired:
            dispatcher.utter_message(response="utter_otp_wrong",
                                     attempts_left=result.attempts_left)
            return {"contact_otp": None}
        dispatcher.utter_message(response="utter_contact_not_changed")
        return {"contact_otp": STOPPED}


class ActionContactSubmit(Action):
    def name(self) -> Text:
        return "action_contact_submit"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        value = tracker.get_slot("new_contact") or ""
        confirmed = tracker.get_slot("contact_otp") == CONFIRMED
        if verified_customer(tracker) and confirmed and ":" in value:
            kind, contact = value.split(":", 1)
            await store_contact(dispatcher, tracker, kind, contact)
        return [SlotSet("new_contact", None), SlotSet("contact_otp", None),
                SlotSet("contact_otp_to", None)]
