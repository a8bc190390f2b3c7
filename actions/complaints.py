"""Complaints: collect the complaint, open a ticket with its regulatory deadline (the date is
told to the customer, `bot.crm.complaint_clock`), offer a person.

A complaint described in the request itself ("voglio fare un reclamo perché mi avete addebitato
due volte...") is taken from it and not asked again; a complaint like one opened in the last
days asks first whether the customer wants to know where that one stands."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import FormValidation, channel_of, language_of, record, verified_customer
from actions.interruptions import DIGRESSION_CONFIDENCE, is_question
from actions.tickets import NEW, SIMILAR_CHOICE, STATUS, SimilarTicketCheck, say_status_instead
from bot import i18n
from bot.crm.card import load_identity_card
from bot.crm.service import open_ticket
from bot.persistence.db import run

MIN_LENGTH = 15
# Words that only ask to complain ("voglio fare un reclamo formale"): what a request says
# besides them is its description.
REQUEST_WORDS = frozenset("""
    voglio vorrei volevo desidero intendo devo posso potete puoi come dove si fa fare faccio
    presentare presento sporgere aprire apro apri aprite mandare inviare scrivere un uno una il
    lo la l i gli le reclamo reclami reclamare formale formalmente ufficiale ufficialmente
    contestazione segnalazione nuovo nuova altro altra per perche perché xke x che e ed di a al
    ciao buongiorno buonasera salve mi ne ho già gia qui ora adesso subito anche favore grazie
    i i'd id i'm im want would like to file make lodge open submit raise put in a an the formal
    official officially complaint complaints complain new another please pls because about hi
    hello how do can where there is this my
""".split())
WORD = re.compile(r"[^\W\d_]+|\d+", re.UNICODE)


def description_of(text: str) -> str:
    """What a request to complain says about the problem, without the words that only ask."""
    words = WORD.findall((text or "").lower().replace("’", "'"))
    return " ".join(w for w in words if w not in REQUEST_WORDS)


def describes_a_problem(text: str) -> bool:
    """Whether a request is also a complaint: long enough once the asking words are gone."""
    return len(description_of(text)) >= MIN_LENGTH


class ValidateComplaintForm(SimilarTicketCheck, FormValidation):
    kind = "complaint"
    new_intent = "file_complaint"
    # the complaint is free text: whatever it is classified as, it is the answer
    free_text_slots = frozenset({"complaint_text"})

    def name(self) -> Text:
        return "validate_complaint_form"

    def answers(self, tracker: Tracker, domain: DomainDict, slot: str) -> bool:
        """Asked to describe the problem, a customer asking where a complaint stands wants its
        status (another task), not a complaint saying so."""
        intent = tracker.latest_message.get("intent") or {}
        if slot == "complaint_text" and intent.get("name") == "ticket_status" \
                and float(intent.get("confidence") or 0) >= DIGRESSION_CONFIDENCE \
                and is_question(tracker.latest_message.get("text") or ""):
            return False
        return super().answers(tracker, domain, slot)

    async def validate_complaint_text(self, value: Any, dispatcher: CollectingDispatcher,
                                      tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        text = " ".join(str(value or "").split())
        if tracker.get_slot("requested_slot") != "complaint_text":
            # from the request itself: kept only if it describes the problem, else asked
            return {"complaint_text": text[:4000] if describes_a_problem(text) else None}
        if len(text) < MIN_LENGTH:
            dispatcher.utter_message(response="utter_complaint_too_short")
            return {"complaint_text": None}
        return {"complaint_text": text[:4000]}

    def details_with_choice(self, choice: str, tracker: Tracker) -> Dict[Text, Any]:
        """"No, a new one: you cut my power without notice" describes the new complaint."""
        text = " ".join((tracker.latest_message.get("text") or "").split())
        if choice == NEW and not tracker.get_slot("complaint_text") \
                and not text.startswith("/") and describes_a_problem(text):
            return {"complaint_text": text[:4000]}
        return {}


class ActionComplaintSubmit(Action):
    def name(self) -> Text:
        return "action_complaint_submit"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        code = verified_customer(tracker)
        text = tracker.get_slot("complaint_text")
        cleared = [SlotSet("complaint_text", None), SlotSet(SIMILAR_CHOICE, None)]
        if code and tracker.get_slot(SIMILAR_CHOICE) == STATUS:
            card = await load_identity_card(code)
            return cleared + await say_status_instead(dispatcher, tracker, card, domain,
                                                      "complaint")
        if not code or not text:
            return cleared
        ticket = await run(open_ticket, code, "complaint", text[:120], channel_of(tracker),
                           description=text, skill="billing",
                           conversation_id=tracker.sender_id)
        # the regulatory deadline of this kind of complaint (bot.crm.complaint_clock)
        dispatcher.utter_message(response="utter_complaint_opened", ticket_id=ticket.ticket_id,
                                 answer_by=i18n.day(ticket.answer_by, language_of(tracker)))
        await record(tracker, await load_identity_card(code), "file_complaint", "resolved",
                     text[:200], dispatcher=dispatcher, reference=ticket.ticket_id)
        return cleared + [SlotSet("offer", "request_human")]
