"""Verification of anonymous customers: customer code, then a one-time code sent on file."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    LOCKED,
    SKILL_ACTIONS,
    FormValidation,
    channel_of,
    language_of,
    linkable,
    prepare_verification,
    send_code,
)
from actions.interruptions import Interruption
from bot import i18n
from bot.crm import validation
from bot.crm.card import load_identity_card
from bot.crm.service import check_otp, link_identity
from bot.persistence.db import run

# Values given for a task before verification (actions/given_data.py fills them).
GIVEN_BEFORE = ("new_contact", "iban_input", "reading_value", "supply_choice")
CODE = re.compile(rf"\b{validation.CUSTOMER_CODE}\b", re.IGNORECASE)
OTP = re.compile(r"\b\d{4,8}\b")


class ValidateVerifyForm(FormValidation):
    """Customer code, then the one-time code. Another request while verifying becomes the
    request served once verified; stopping ends verification."""

    def name(self) -> Text:
        return "validate_verify_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        """A customer proven meanwhile (the site's token came with this message, or a linked
        messaging account) is not asked for codes: the form ends as verified and what they
        asked for is served (action_verify_done)."""
        if tracker.get_slot("verified") is True and tracker.get_slot("customer_code"):
            intent = (tracker.latest_message.get("intent") or {}).get("name")
            events: List[EventType] = [SlotSet("code_input", tracker.get_slot("customer_code")),
                                       SlotSet("otp_input", "ok"), SlotSet("requested_slot", None)]
            if intent in SKILL_ACTIONS:  # this message's request, asked afresh: what was given
                # for the request before it (a number, an IBAN) is not its answer
                events += [SlotSet("pending_intent", intent)] + [
                    SlotSet(slot, None) for slot in GIVEN_BEFORE]
            return events
        return await super().run(dispatcher, tracker, domain)

    def answers(self, tracker: Tracker, domain: DomainDict, slot: str) -> bool:
        text = tracker.latest_message.get("text") or ""
        if slot == "code_input" and CODE.search(text):
            return True
        if slot == "otp_input" and OTP.search(text):
            return True
        return super().answers(tracker, domain, slot)

    async def interrupted(self, interruption: Interruption, dispatcher: CollectingDispatcher,
                          tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        if interruption.kind == "stop":
            dispatcher.utter_message(response="utter_verification_stopped")
            return self.ended(domain) + [SlotSet("pending_intent", None),
                                         FollowupAction("action_listen")]
        if interruption.kind == "skill" and interruption.intent in SKILL_ACTIONS:
            # served once the customer is verified; the question is asked again meanwhile
            dispatcher.utter_message(response="utter_after_verification")
            return [SlotSet("pending_intent", interruption.intent),
                    SlotSet(tracker.get_slot("requested_slot"), None)]
        return await super().interrupted(interruption, dispatcher, tracker, domain)

    async def validate_code_input(self, value: Any, dispatcher: CollectingDispatcher,
                                  tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if not value:  # reset when the form starts: nothing typed yet
            return {"code_input": None}
        text = str(value)
        match = CODE.search(text)
        if not match:
            dispatcher.utter_message(response="utter_code_not_valid", value=text[:40])
            return {"code_input": None}
        code = match.group(0).upper()
        if tracker.get_slot("otp_sent_for") == code:
            return {"code_input": code}
        sent = await send_code(dispatcher, tracker, code)
        if sent is None:
            return {"code_input": code, "otp_input": LOCKED}
        return {event["name"]: event["value"] for event in sent}

    async def validate_otp_input(self, value: Any, dispatcher: CollectingDispatcher,
                                 tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        code = tracker.get_slot("code_input")
        if value == LOCKED:
            return {"otp_input": LOCKED}
        if not value or not code:  # reset when the form starts, or no customer code yet
            return {"otp_input": None}
        result = await run(check_otp, code, tracker.sender_id, str(value or ""))
        if result.ok:
            card = await load_identity_card(code)
            channel = channel_of(tracker)
            if linkable(tracker):
                await run(link_identity, code, channel, tracker.sender_id)
            slots = {"otp_input": "ok", "customer_code": code, "verified": True,
                     "auth_method": "otp", "first_name": card.first_name,
                     "persona": card.persona, "vip": card.vip}
            if tracker.get_slot("language_source") != "user":
                slots.update(language=card.language, language_source="profile")
            return slots
        if result.locked_until:
            dispatcher.utter_message(response="utter_verification_locked",
                                     until=i18n.moment(result.locked_until, language_of(tracker)))
            return {"otp_input": LOCKED}
        if result.expired:
            dispatcher.utter_message(response="utter_otp_expired")
            return {"code_input": None, "otp_input": None, "otp_sent_for": None}
        dispatcher.utter_message(response="utter_otp_wrong", attempts_left=result.attempts_left)
        return {"otp_input": None}


class ActionVerifyDone(Action):
    """After the verify form: greet the verified customer and resume what they asked for."""

    def name(self) -> Text:
        return "action_verify_done"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        events: List[EventType] = [SlotSet("code_input", None), SlotSet("otp_input", None),
                                   SlotSet("otp_sent_for", None), SlotSet("pending_intent", None)]
        if tracker.get_slot("verified") is not True:
            return events
        dispatcher.utter_message(response="utter_verified")
        pending = tracker.get_slot("pending_intent")
        if pending in SKILL_ACTIONS:
            events.append(FollowupAction(SKILL_ACTIONS[pending]))
        else:
            events.append(FollowupAction("action_greet"))
        return events


class ActionNeedVerification(Action):
    """An anonymous customer asked for something personal: explain, then the verify form."""

    def name(self) -> Text:
        return "action_need_verification"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(response="utter_need_verification")
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        return await prepare_verification(dispatcher, tracker,
                                          intent if intent in SKILL_ACTIONS else None)
