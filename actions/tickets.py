"""Tickets: the customer's open requests with status, last update and expected date."""

from __future__ import annotations

from actions.common import DomainSkillAction, language_of, latest_entity, record
from bot import i18n


class ActionTicketStatus(DomainSkillAction):
    intent = "ticket_status"

    async def answer(self, dispatcher, tracker, card, domain):
        lang = language_of(tracker)
        asked = latest_entity(tracker, "ticket_id")
        tickets = card.open_tickets
        if asked:
            mine = [t for t in card.tickets if t.ticket_id == asked.upper()]
            if mine:
                tickets = mine
            else:
                dispatcher.utter_message(response="utter_ticket_not_yours")
        if not tickets:
            dispatcher.utter_message(response="utter_no_open_tickets")
            await record(tracker, card, self.intent, "resolved")
            return []
        dispatcher.utter_message(response="utter_open_tickets")
        for t in tickets:
            params = dict(ticket_id=t.ticket_id, subject=t.subject,
                          status=i18n.status(domain, t.status, lang),
                          updated=i18n.moment(t.updated_at or t.opened_at, lang))
            if t.eta:
                dispatcher.utter_message(response="utter_ticket_line_eta",
                                         eta=i18n.day(t.eta, lang), **params)
            else:
                dispatcher.utter_message(response="utter_ticket_line", **params)
        await record(tracker, card, self.intent, "resolved")
        return []
