"""Meter self-reading: pick the supply, validate the value, store it."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import FormValidation, channel_of, language_of, record, verified_customer
from bot import i18n
from bot.crm.card import IdentityCard, SupplyView, load_identity_card
from bot.crm.service import check_reading, store_reading
from bot.crm.validation import parse_reading
from bot.persistence.db import run

SUPPLY_WORDS = {
    "electricity": {"electricity", "luce", "elettricità", "elettricita", "corrente", "power",
                    "electric", "energia", "1"},
    "gas": {"gas", "metano", "2"},
}


def reading_in(text: str) -> Optional[Decimal]:
    """The reading in an answer: the whole answer ("4821,5"), or its only number ("no sorry,
    it's 5192"); None when there is no number or more than one."""
    whole = parse_reading(text)
    if whole is not None:
        return whole
    numbers = [parse_reading(n.strip(".,")) for n in re.findall(r"\d[\d.,]*", text or "")]
    numbers = [n for n in numbers if n is not None]
    return numbers[0] if len(numbers) == 1 else None


def resolve_supply_words(text: str) -> bool:
    """Whether a message names a kind of supply ("luce", "gas", "electricity"...)."""
    words = set(re.findall(r"\w+", (text or "").lower()))
    return any(words & {w for w in names if not w.isdigit()} for names in SUPPLY_WORDS.values())


def the_only_supply(card: Optional[IdentityCard]) -> Optional[str]:
    supplies = card.active_supplies if card else []
    return supplies[0].supply_id if len(supplies) == 1 else None


def resolve_supply(card: Optional[IdentityCard], value: Any) -> Optional[SupplyView]:
    """The active supply a customer's answer names: its id, "luce"/"gas" (or any word of
    SUPPLY_WORDS in the message), or its number in the list of buttons."""
    supplies = card.active_supplies if card else []
    text = str(value or "").strip().lower()
    if not text:
        return None
    for s in supplies:
        if s.supply_id.lower() == text:
            return s
    words = set(re.findall(r"\w+", text))
    for kind, names in SUPPLY_WORDS.items():
        if text in names or words & {w for w in names if not w.isdigit()}:
            return next((s for s in supplies if s.type == kind), None)
    if text.isdigit() and 1 <= int(text) <= len(supplies):
        return supplies[int(text) - 1]
    return None


def chosen_supply(card: Optional[IdentityCard], tracker: Tracker) -> Optional[SupplyView]:
    """The supply this reading is for: the one chosen, or the customer's only one when none
    was named (a supply named that the customer does not have is no supply at all)."""
    named = tracker.get_slot("supply_choice")
    if named:
        return resolve_supply(card, named)
    return card.active_supplies[0] if card is not None and the_only_supply(card) else None


class ActionAskSupplyChoice(Action):
    def name(self) -> Text:
        return "action_ask_supply_choice"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        card = await load_identity_card(verified_customer(tracker))
        lang = language_of(tracker)
        buttons = [{"title": f"{i18n.supply(domain, s.type, lang)} – {s.address}",
                    "payload": s.supply_id} for s in card.active_supplies]
        dispatcher.utter_message(response="utter_ask_supply_choice", buttons=buttons)
        return []


class ActionAskReadingValue(Action):
    def name(self) -> Text:
        return "action_ask_reading_value"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        card = await load_identity_card(verified_customer(tracker))
        lang = language_of(tracker)
        supply = chosen_supply(card, tracker)
        if supply is None:  # nothing to ask about: the form's validation explains
            dispatcher.utter_message(response="utter_no_active_supply")
            return []
        last = supply.last_reading
        dispatcher.utter_message(
            response="utter_ask_reading_value", supply=i18n.supply(domain, supply.type, lang),
            supply_id=supply.supply_id, unit=supply.unit,
            last_value=i18n.number(last.value, lang) if last else "—",
            last_date=i18n.day(last.date, lang) if last else "—")
        return []


class ValidateMeterReadingForm(FormValidation):
    """Asks which supply only when there are several; explains every rejected reading."""

    def name(self) -> Text:
        return "validate_meter_reading_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        card = await load_identity_card(verified_customer(tracker) or "")
        only = the_only_supply(card)
        if only and tracker.get_slot("supply_choice") in (None, only):
            return ["reading_value"]
        return domain_slots  # a supply named in the request is checked like an answer

    def answers(self, tracker: Tracker, domain: DomainDict, slot: str) -> bool:
        text = tracker.latest_message.get("text") or ""
        if slot == "reading_value" and re.search(r"\d", text):
            return True  # "no sorry, it's 5192" corrects the reading
        if slot == "supply_choice" and (text.strip().isdigit() or resolve_supply_words(text)):
            return True
        return super().answers(tracker, domain, slot)

    async def validate_supply_choice(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        card = await load_identity_card(verified_customer(tracker))
        supply = resolve_supply(card, value)
        if supply is not None:
            return {"supply_choice": supply.supply_id}
        dispatcher.utter_message(response="utter_supply_not_understood")
        return {"supply_choice": None}

    async def validate_reading_value(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        lang = language_of(tracker)
        text = str(value or "").strip()
        number = reading_in(text)
        code = verified_customer(tracker)
        card = await load_identity_card(code)
        supply = chosen_supply(card, tracker)
        if supply is None:
            dispatcher.utter_message(response="utter_supply_not_understood")
            return {"reading_value": None, "supply_choice": None}
        supply_id = supply.supply_id
        if number is None:
            dispatcher.utter_message(response="utter_reading_not_a_number", value=text[:40])
            return {"reading_value": None}
        check = await run(check_reading, code, supply_id, number)
        unit = supply.unit
        if check.problem == "lower":
            dispatcher.utter_message(
                response="utter_reading_lower", value=i18n.number(number, lang), unit=unit,
                last_value=i18n.number(check.last_value, lang),
                last_date=i18n.day(check.last_date, lang))
            return {"reading_value": None}
        if check.problem == "implausible":
            dispatcher.utter_message(
                response="utter_reading_implausible", value=i18n.number(number, lang), unit=unit,
                consumption=i18n.number(number - check.last_value, lang),
                last_date=i18n.day(check.last_date, lang),
                max_value=i18n.number(check.max_value, lang))
            return {"reading_value": None}
        if not check.ok:
            dispatcher.utter_message(response="utter_reading_not_a_number", value=text[:40])
            return {"reading_value": None}
        return {"reading_value": str(number)}


class ActionMeterReadingSubmit(Action):
    def name(self) -> Text:
        return "action_meter_reading_submit"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        lang = language_of(tracker)
        code = verified_customer(tracker)
        value = parse_reading(tracker.get_slot("reading_value") or "")
        card = await load_identity_card(code) if code else None
        chosen = chosen_supply(card, tracker)
        events = [SlotSet("reading_value", None), SlotSet("supply_choice", None)]
        if not card or value is None or chosen is None:
            return events
        supply_id = chosen.supply_id
        result = await run(store_reading, code, supply_id, value, channel_of(tracker))
        card = await load_identity_card(code)
        supply = card.supply(supply_id)
        if not result.ok:  # changed between validation and submission: explain and stop
            dispatcher.utter_message(response="utter_reading_not_a_number", value=str(value))
            return events
        dispatcher.utter_message(
            response="utter_reading_stored", value=i18n.number(value, lang), unit=supply.unit,
            supply=i18n.supply(domain, supply.type, lang), supply_id=supply_id,
            consumption=i18n.number(result.consumption or 0, lang))
        await record(tracker, card, "submit_meter_reading", "resolved", dispatcher=dispatcher)
        return events
