"""Moving home: explains trasloco, voltura, subentro, disdetta; then a sales advisor takes over."""

from __future__ import annotations

from actions.common import SkillAction, prepare_verification


class ActionMoveHome(SkillAction):
    intent = "move_home"
    needs_identity = False

    async def handle(self, dispatcher, tracker, card):
        dispatcher.utter_message(response="utter_moving_options")
        if card is None:
            dispatcher.utter_message(response="utter_moving_verify")
            return await prepare_verification(dispatcher, tracker, self.intent)
        # Moving needs a sales advisor: a person takes over.
        from actions.handover import hand_over

        dispatcher.utter_message(response="utter_moving_advisor")
        return await hand_over(dispatcher, tracker, "move_home", card)
