"""Meter self-reading: pick the supply, validate the value, store it."""

from __future__ import annotations

from typing import Any, Dict, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import FormValidation, channel_of, language_of, record, verified_customer
from bot import i18n
from bot.crm.card import load_identity_card
from bot.crm.service import check_reading, run, store_reading
from bot.crm.validation import parse_reading

SUPPLY_WORDS = {
    "electricity": {"electricity", "luce", "elettricità", "elettricita", "corrente", "power",
                    "electric", "energia", "1"},
    "gas": {"gas", "metano", "2"},
}


def the_only_supply(card):
    supplies = card.active_supplies if card else []
    return supplies[0].supply_id if len(supplies) == 1 else None


class ActionAskSupplyChoice(Action):
    def name(self) -> Text:
        return "action_ask_supply_choice"

    async def run(self, dispatcher, tracker, domain):
        card = await load_identity_card(verified_customer(tracker))
        lang = language_of(tracker)
        buttons = [{"title": f"{i18n.supply(domain, s.type, lang)} – {s.address}",
                    "payload": s.supply_id} for s in card.active_supplies]
        dispatcher.utter_message(response="utter_ask_supply_choice", buttons=buttons)
        return []


class ActionAskReadingValue(Action):
    def name(self) -> Text:
        return "action_ask_reading_value"

    async def run(self, dispatcher, tracker, domain):
        card = await load_identity_card(verified_customer(tracker))
        lang = language_of(tracker)
        supply = card.supply(tracker.get_slot("supply_choice") or the_only_supply(card))
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

    async def required_slots(self, domain_slots, dispatcher, tracker, domain):
        card = await load_identity_card(verified_customer(tracker) or "")
        if the_only_supply(card):
            return ["reading_value"]
        return domain_slots

    async def validate_supply_choice(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        card = await load_identity_card(verified_customer(tracker))
        text = str(value or "").strip().lower()
        supplies = card.active_supplies
        for s in supplies:
            if s.supply_id.lower() == text:
                return {"supply_choice": s.supply_id}
        for kind, words in SUPPLY_WORDS.items():
            if text in words or any(w in text.split() for w in words if not w.isdigit()):
                match = [s for s in supplies if s.type == kind]
                if match:
                    return {"supply_choice": match[0].supply_id}
        if text.isdigit() and 1 <= int(text) <= len(supplies):
            return {"supply_choice": supplies[int(text) - 1].supply_id}
        dispatcher.utter_message(response="utter_supply_not_understood")
        return {"supply_choice": None}

    async def validate_reading_value(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        lang = language_of(tracker)
        text = str(value or "").strip()
        number = parse_reading(text)
        code = verified_customer(tracker)
        card = await load_identity_card(code)
        supply_id = tracker.get_slot("supply_choice") or the_only_supply(card)
        if number is None:
            dispatcher.utter_message(response="utter_reading_not_a_number", value=text[:40])
            return {"reading_value": None}
        check = await run(check_reading, code, supply_id, number)
        unit = card.supply(supply_id).unit
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

    async def run(self, dispatcher, tracker, domain):
        lang = language_of(tracker)
        code = verified_customer(tracker)
        value = parse_reading(tracker.get_slot("reading_value") or "")
        card = await load_identity_card(code) if code else None
        supply_id = tracker.get_slot("supply_choice") or the_only_supply(card)
        events = [SlotSet("reading_value", None), SlotSet("supply_choice", None)]
        if not card or value is None or not supply_id:
            return events
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
        await record(tracker, card, "submit_meter_reading", "resolved")
        return events
