"""Contract: tariff, supply codes (POD/PDR), start and end dates, per supply."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import DomainSkillAction, language_of, record
from bot import i18n
from bot.crm.card import IdentityCard


class ActionContractInfo(DomainSkillAction):
    intent = "contract_info"

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard], domain: Dict[Text, Any]) -> List[EventType]:
        lang = language_of(tracker)
        if not card.supplies:
            dispatcher.utter_message(response="utter_no_active_supply")
            return []
        dispatcher.utter_message(response="utter_contract_supplies")
        for s in card.supplies:
            params = dict(supply=i18n.supply(domain, s.type, lang),
                          code_name="POD" if s.type == "electricity" else "PDR",
                          supply_id=s.supply_id, address=f"{s.address}, {s.city}",
                          tariff=s.tariff, unit_price=i18n.money(s.unit_price_eur, lang),
                          unit=s.unit, start_date=i18n.day(s.start_date, lang))
            if s.end_date:
                dispatcher.utter_message(response="utter_contract_line_end",
                                         end_date=i18n.day(s.end_date, lang), **params)
            else:
                dispatcher.utter_message(response="utter_contract_line", **params)
        await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher)
        return []
