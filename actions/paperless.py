"""Paperless billing: says so when already on; otherwise switches to the e-mail on file."""

from __future__ import annotations

from typing import List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import SkillAction, record
from bot.crm.card import IdentityCard
from bot.crm.service import set_paperless
from bot.masks import mask_email
from bot.persistence.db import run


class ActionActivateEbill(SkillAction):
    intent = "activate_ebill"

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard]) -> List[EventType]:
        if card.paperless and card.email:
            dispatcher.utter_message(response="utter_already_paperless",
                                     email=mask_email(card.email))
        elif not card.email:
            dispatcher.utter_message(response="utter_paperless_no_email")
            await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher)
            return []
        else:
            await run(set_paperless, card.customer_code)
            dispatcher.utter_message(response="utter_paperless_activated",
                                     email=mask_email(card.email))
        await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher)
        return []
