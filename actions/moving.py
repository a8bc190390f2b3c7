"""Moving home: explains trasloco, voltura, subentro, disdetta; a sales advisor follows up."""

from __future__ import annotations

from actions.common import SkillAction, channel_of, prepare_verification, record
from bot.crm.service import open_ticket, run
from bot.crm.validation import mask_phone


class ActionMoveHome(SkillAction):
    intent = "move_home"
    needs_identity = False

    async def handle(self, dispatcher, tracker, card):
        dispatcher.utter_message(response="utter_moving_options")
        if card is None:
            dispatcher.utter_message(response="utter_moving_verify")
            return await prepare_verification(dispatcher, tracker, self.intent)
        if not card.phone:
            dispatcher.utter_message(response="utter_human_no_phone")
            return []
        # Until the live handover lands, the commercial team calls back.
        ticket = await run(open_ticket, card.customer_code, "request",
                           "Trasloco / voltura / subentro / disdetta", channel_of(tracker),
                           description=tracker.latest_message.get("text") or "",
                           callback_phone=card.phone, eta_days=1, skill="commercial",
                           conversation_id=tracker.sender_id)
        dispatcher.utter_message(response="utter_moving_handover", ticket_id=ticket.ticket_id,
                                 masked=mask_phone(card.phone))
        await record(tracker, card, self.intent, "handover")
        return []
