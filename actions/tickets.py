"""Tickets: the customer's open requests with status, last update and expected date; a
complaint waiting for its answer with the days left to its regulatory deadline, or, once late,
the automatic indemnity owed (`bot.crm.complaint_clock`).

A customer who names a kind of request ("a che punto è il mio reclamo?", "has my callback been
scheduled?") gets the open ones of that kind; a new complaint or callback while a similar one
opened in the last days is still open is asked about first (slot `similar_ticket_choice`)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Dict, Iterable, List, Optional, Sequence, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import DomainSkillAction, language_of, latest_entity, record, verified_customer
from bot import i18n
from bot.crm.card import IdentityCard, TicketView
from bot.crm.service import RecentTicket, recent_open_ticket
from bot.persistence.db import run
from bot.settings import local_zone

KIND_ENTITY = "ticket_kind"
# The kinds of ticket a customer can name (values of the ticket_kind entity): the response that
# introduces the open ones, and the one that says there are none.
KIND_RESPONSES = {
    "complaint": ("utter_open_complaints", "utter_no_open_complaints"),
    "callback": ("utter_open_callbacks", "utter_no_open_callbacks"),
    "outage": ("utter_open_outages", "utter_no_open_outages"),
}

SIMILAR_CHOICE = "similar_ticket_choice"
STATUS, NEW = "status", "new"
# The question asked before opening a ticket like a recent one, per form.
FORM_KINDS = {"complaint_form": "complaint", "callback_form": "callback"}
SIMILAR_QUESTIONS = {"complaint": "utter_ask_similar_complaint",
                     "callback": "utter_ask_similar_callback"}
# Typed answers to that question (accents removed, lower case).
NEW_WORDS = re.compile(r"\b(nuov[oaie]|altr[oaie]|new|another|different|divers[oa]|apri|aprire|"
                       r"aprine|aprirne|chiedern[ei])\b")
STATUS_WORDS = re.compile(r"(a che punto|\bstato\b|\bstatus\b|\bsapere\b|\bnovita|\bnews\b|"
                          r"\bupdate|\baggiorna|\bwhere\b|\bprogress|\besistente\b|\bexisting\b|"
                          r"\bquell[oa] (gia )?apert|\bthe open one\b|\bcheck\b|\bcontrolla)")


def named_kinds(tracker: Tracker) -> List[str]:
    """The kinds of ticket the latest message names, in order, each once."""
    kinds: List[str] = []
    for entity in tracker.latest_message.get("entities") or []:
        value = str(entity.get("value") or "").lower()
        if entity.get("entity") == KIND_ENTITY and value in KIND_RESPONSES \
                and value not in kinds:
            kinds.append(value)
    return kinds


def say_tickets(dispatcher: CollectingDispatcher, header: str, tickets: Iterable[TicketView],
                domain: DomainDict, lang: str) -> None:
    """A header, then one line per ticket with status, last update and expected date; an
    unanswered complaint with its deadline instead (days left, or the indemnity owed)."""
    dispatcher.utter_message(response=header)
    today = i18n.today()
    for t in tickets:
        params = dict(ticket_id=t.ticket_id, subject=t.subject,
                      status=i18n.status(domain, t.status, lang),
                      updated=i18n.moment(t.updated_at or t.opened_at, lang))
        clock = t.clock(today)
        if clock is not None and not clock.answered:
            expected = t.eta if t.eta and t.eta >= today else None  # a past date says nothing
            answer = i18n.answer_note(domain, clock.last_day, clock.days_left, clock.indemnity,
                                      lang, expected=expected)
            dispatcher.utter_message(response="utter_complaint_line", answer=answer, **params)
        elif t.eta:
            dispatcher.utter_message(response="utter_ticket_line_eta",
                                     eta=i18n.day(t.eta, lang), **params)
        else:
            dispatcher.utter_message(response="utter_ticket_line", **params)


def tell_status(dispatcher: CollectingDispatcher, card: IdentityCard, domain: DomainDict,
                lang: str, asked_id: Optional[str] = None, kinds: Sequence[str] = ()) -> None:
    """The status the customer asked for: one ticket by number, the open ones of the kinds
    named (with the other open ones when there is none of those), or all the open ones."""
    if asked_id:
        mine = [t for t in card.tickets if t.ticket_id == asked_id.upper()]
        if mine:
            say_tickets(dispatcher, "utter_open_tickets", mine, domain, lang)
            return
        dispatcher.utter_message(response="utter_ticket_not_yours")
    elif kinds:
        of_kinds = [t for t in card.open_tickets if t.kind in kinds]
        for kind in kinds:
            header, none = KIND_RESPONSES[kind]
            found = [t for t in of_kinds if t.kind == kind]
            if found:
                say_tickets(dispatcher, header, found, domain, lang)
            else:
                dispatcher.utter_message(response=none)
        others = [t for t in card.open_tickets if t.kind not in kinds]
        if not of_kinds and others:
            say_tickets(dispatcher, "utter_other_open_tickets", others, domain, lang)
        return
    if not card.open_tickets:
        dispatcher.utter_message(response="utter_no_open_tickets")
        return
    say_tickets(dispatcher, "utter_open_tickets", card.open_tickets, domain, lang)


class ActionTicketStatus(DomainSkillAction):
    intent = "ticket_status"

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard], domain: Dict[Text, Any]) -> List[EventType]:
        named = latest_entity(tracker, "ticket_id")
        tell_status(dispatcher, card, domain, language_of(tracker), named, named_kinds(tracker))
        await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher,
                     reference=named.upper() if named else None)
        return []


# --- a new request like a recent one -------------------------------------------------------

def _folded(text: str) -> str:
    text = unicodedata.normalize("NFKD", (text or "").lower().replace("’", "'"))
    return "".join(c for c in text if not unicodedata.combining(c)).replace("'", " ")


def similar_choice(intent: Optional[str], new_intent: str, text: str) -> Optional[str]:
    """What an answer to "status of the open one, or a new one?" chooses: the status (asked as
    ticket_status), a new request (the form's own request again), or the words typed."""
    if intent == "ticket_status":
        return STATUS
    if intent == new_intent:
        return NEW
    words = _folded(text)
    if words.strip() in (STATUS, NEW):  # a button's value, or the word itself
        return words.strip()
    if NEW_WORDS.search(words):
        return NEW
    if STATUS_WORDS.search(words):
        return STATUS
    return None


async def similar_open_ticket(tracker: Tracker, kind: str) -> Optional[RecentTicket]:
    """The customer's open ticket of `kind` opened in the last days, if any."""
    code = verified_customer(tracker)
    return await run(recent_open_ticket, code, kind) if code else None


class SimilarTicketCheck:
    """For the validation of a form that opens a ticket of `kind`: when the customer has one of
    that kind open since a few days, the form first asks whether they want to know where it
    stands or really want a new one (`similar_ticket_choice`, the form's first slot). Asking
    for the status ends the form, whose submit action then gives it; nothing is opened."""

    kind: str = ""
    new_intent: str = ""

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        choice = tracker.get_slot(SIMILAR_CHOICE)
        if choice == STATUS:
            return [SIMILAR_CHOICE]
        if choice is None and await similar_open_ticket(tracker, self.kind) is None:
            return [slot for slot in domain_slots if slot != SIMILAR_CHOICE]
        return list(domain_slots)

    def answers(self, tracker: Tracker, domain: DomainDict, slot: str) -> bool:
        """A status request or the form's own request is the answer to the question, not
        another task (see actions.common.FormValidation)."""
        if slot == SIMILAR_CHOICE:
            return self.choice_in(tracker) is not None
        return super().answers(tracker, domain, slot)  # type: ignore[misc]

    def choice_in(self, tracker: Tracker) -> Optional[str]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        return similar_choice(intent, self.new_intent, tracker.latest_message.get("text") or "")

    async def validate_similar_ticket_choice(self, value: Any, dispatcher: CollectingDispatcher,
                                             tracker: Tracker,
                                             domain: DomainDict) -> Dict[Text, Any]:
        choice = value if value in (STATUS, NEW) else self.choice_in(tracker)
        if choice is None:
            dispatcher.utter_message(response="utter_similar_choice_not_understood")
            return {SIMILAR_CHOICE: None}
        return {SIMILAR_CHOICE: choice, **self.details_with_choice(choice, tracker)}

    def details_with_choice(self, choice: str, tracker: Tracker) -> Dict[Text, Any]:
        """Other slots the answer fills (a complaint described with "no, a new one: ...")."""
        return {}


class ActionAskSimilarTicketChoice(Action):
    """Asks about the open ticket like the one being requested: its number and date."""

    def name(self) -> Text:
        return "action_ask_similar_ticket_choice"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        kind = FORM_KINDS.get((tracker.active_loop or {}).get("name") or "")
        ticket = await similar_open_ticket(tracker, kind) if kind else None
        if ticket is None:  # closed meanwhile: the question without its details
            dispatcher.utter_message(response="utter_ask_similar_ticket_choice")
            return []
        lang = language_of(tracker)
        dispatcher.utter_message(response=SIMILAR_QUESTIONS[kind], ticket_id=ticket.ticket_id,
                                 date=i18n.day(ticket.opened_at.astimezone(local_zone()).date(),
                                               lang))
        return []


async def say_status_instead(dispatcher: CollectingDispatcher, tracker: Tracker,
                             card: Optional[IdentityCard], domain: DomainDict,
                             kind: str) -> List[EventType]:
    """For a form's submit action when the customer chose the status of the open ticket."""
    if card is not None:
        tell_status(dispatcher, card, domain, language_of(tracker), kinds=[kind])
        await record(tracker, card, "ticket_status", "resolved", dispatcher=dispatcher)
    return [SlotSet(SIMILAR_CHOICE, None)]
