"""Outages: gas emergencies first, known outages without duplicates, otherwise a fault ticket."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import DomainSkillAction, channel_of, language_of, record
from bot import i18n
from bot.crm.card import IdentityCard
from bot.crm.service import open_ticket
from bot.persistence.db import run
from bot.safety import smells_of_gas
from bot.settings import get_settings


class ActionReportOutage(DomainSkillAction):
    intent = "report_outage"
    needs_identity = False

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        # A smell of gas gets the emergency number before anything else, identified or not.
        if smells_of_gas(tracker.latest_message.get("text")):
            dispatcher.utter_message(response="utter_gas_emergency",
                                     number=get_settings().gas_emergency_number)
        return await super().run(dispatcher, tracker, domain)

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard], domain: Dict[Text, Any]) -> List[EventType]:
        lang = language_of(tracker)
        if card is None:
            dispatcher.utter_message(response="utter_outage_anonymous")
            from actions.common import prepare_verification

            return await prepare_verification(dispatcher, tracker, self.intent)
        wanted = next((e.get("value") for e in tracker.latest_message.get("entities", [])
                       if e.get("entity") == "supply_type"), None)
        if smells_of_gas(tracker.latest_message.get("text")):
            wanted = "gas"
        supplies = [s for s in card.active_supplies if wanted in (None, s.type)] \
            or card.active_supplies
        if not supplies:
            dispatcher.utter_message(response="utter_no_active_supply")
            return []
        for outage in card.outages:
            if any(s.type == outage.type for s in supplies):
                postcode = next(s.postcode for s in supplies if s.postcode in outage.postcodes)
                dispatcher.utter_message(
                    response="utter_outage_known", supply=i18n.supply(domain, outage.type, lang),
                    postcode=postcode, description=outage.description,
                    expected_end=i18n.moment(outage.expected_end, lang))
                await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher)
                return []
        existing = [t for t in card.open_tickets if t.kind == "outage"]
        if existing:
            t = existing[0]
            dispatcher.utter_message(response="utter_outage_ticket_exists", ticket_id=t.ticket_id,
                                     status=i18n.status(domain, t.status, lang))
            await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher,
                         reference=t.ticket_id)
            return []
        supply = supplies[0]
        text = tracker.latest_message.get("text") or ""
        ticket = await run(open_ticket, card.customer_code, "outage",
                           f"Guasto {i18n.supply(domain, supply.type, 'it')} {supply.supply_id}",
                           channel_of(tracker), description=text[:1000], eta_days=1,
                           skill="technical", conversation_id=tracker.sender_id)
        dispatcher.utter_message(response="utter_outage_ticket_opened", ticket_id=ticket.ticket_id,
                                 supply=i18n.supply(domain, supply.type, lang),
                                 address=f"{supply.address}, {supply.city}",
                                 eta=i18n.day(ticket.eta, lang))
        await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher,
                     reference=ticket.ticket_id)
        return [SlotSet("offer", None)]
