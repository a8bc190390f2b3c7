"""Direct debit: validate the IBAN checksum, store it, confirm it masked."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import FormValidation, record, verified_customer
from bot.crm.card import load_identity_card
from bot.crm.service import set_iban
from bot.crm.validation import normalise_iban
from bot.masks import mask_iban
from bot.persistence.db import run


async def store_iban(dispatcher: CollectingDispatcher, tracker: Tracker, iban: str) -> None:
    code = verified_customer(tracker)
    await run(set_iban, code, iban)
    dispatcher.utter_message(response="utter_direct_debit_done", masked=mask_iban(iban))
    await record(tracker, await load_identity_card(code), "setup_direct_debit", "resolved",
                 dispatcher=dispatcher)


class ActionAskIbanInput(Action):
    """Asks for the IBAN, showing the current one (masked) when there is one."""

    def name(self) -> Text:
        return "action_ask_iban_input"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        card = await load_identity_card(verified_customer(tracker) or "")
        if card and card.direct_debit_iban:
            dispatcher.utter_message(response="utter_direct_debit_current",
                                     masked=mask_iban(card.direct_debit_iban))
        else:
            dispatcher.utter_message(response="utter_ask_iban_input")
        return []


class ValidateDirectDebitForm(FormValidation):
    def name(self) -> Text:
        return "validate_direct_debit_form"

    async def validate_iban_input(self, value: Any, dispatcher: CollectingDispatcher,
                                  tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        iban = normalise_iban(str(value or ""))
        if iban is None:
            dispatcher.utter_message(response="utter_iban_not_valid", value=str(value)[:40])
            return {"iban_input": None}
        return {"iban_input": iban}


class ActionDirectDebitSubmit(Action):
    def name(self) -> Text:
        return "action_direct_debit_submit"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        iban = tracker.get_slot("iban_input")
        if verified_customer(tracker) and iban:
            await store_iban(dispatcher, tracker, iban)
        return [SlotSet("iban_input", None)]
