"""Moving home: explains trasloco, voltura, subentro, disdetta; then a sales advisor takes over."""

from __future__ import annotations

from typing import List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import SkillAction, prepare_verification
from bot.crm.card import IdentityCard


class ActionMoveHome(SkillAction):
    intent = "move_home"
    needs_identity = False

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard]) -> List[EventType]:
        dispatcher.utter_message(response="utter_moving_options")
        if card is None:
            dispatcher.utter_message(response="utter_moving_verify")
            return await prepare_verification(dispatcher, tracker, self.intent)
        # Moving needs a sales advisor: a person takes over.
        from actions.handover import hand_over

        dispatcher.utter_message(response="utter_moving_advisor")
        return await hand_over(dispatcher, tracker, "move_home", card)
