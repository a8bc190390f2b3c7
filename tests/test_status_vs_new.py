"""Status versus a new request, and what the customer already said (issue 11).

Against a real SQLite database seeded with the demo data. The forms run through Rasa's own
machinery (slot mappings, FormAction, the validation action) with the action server answered
in-process by rasa-sdk; which action follows which is given here as the rules would choose it
(rules are checked by `rasa data validate` and the test stories)."""

from __future__ import annotations

import asyncio
import copy
import re
from datetime import timedelta
from functools import lru_cache
from typing import Any, Dict, List, Optional

import pytest
from rasa.core.actions.action import ActionExtractSlots, action_for_name_or_text
from rasa.core.channels import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.core.nlg.generator import ResponseVariationFilter
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, FollowupAction, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa_sdk.executor import ActionExecutor, CollectingDispatcher
from sqlalchemy import select

from bot.crm import models as m
from bot.persistence.db import session_scope
from tests import test_actions
from tests.test_actions import tracker

seeded = test_actions.seeded  # the fixture, shared with test_actions

MARIA = "C1000001"  # family, no open ticket
GIUSEPPE = "C1000002"  # senior, an outage ticket in progress
LAURA = "C1000003"  # digital, a complaint opened 12 days ago, in progress
JOHN = "C1000004"  # digital, English
ANNA = "C1000006"  # family, no open ticket
DESCRIBED = ("voglio fare un reclamo perché mi avete addebitato due volte la bolletta di ottobre "
             "e nessuno mi risponde")
IBAN = "IT60X0542811101000000123456"


@lru_cache(maxsize=1)
def domain() -> Domain:
    return Domain.load("domain")


class InProcessActionServer:
    """The action endpoint Rasa calls, answered by rasa-sdk's executor in this process."""

    url = "in-process"
    kwargs: Dict[str, Any] = {}

    def __init__(self) -> None:
        self.executor = ActionExecutor()
        self.executor.register_package("actions")

    async def request(self, json: Optional[Dict[str, Any]] = None, **_: Any) -> Dict[str, Any]:
        return await self.executor.run(copy.deepcopy(json))


class Conversation:
    """One conversation: the customer's messages (signed in with the site's token when
    `customer` is given) and the actions the rules would run after each."""

    def __init__(self, customer: Optional[str] = None) -> None:
        self.customer = customer
        self.endpoint = InProcessActionServer()
        self.nlg = TemplatedNaturalLanguageGenerator(domain().responses)
        self.followups: List[str] = []  # FollowupAction of the last turn (another task)
        self.tracker = DialogueStateTracker.from_events(
            "conv-status", [ActionExecuted("action_session_start"),
                            ActionExecuted("action_listen")], slots=domain().slots)

    async def _run(self, action) -> List[BotUttered]:
        events = await action.run(CollectingOutputChannel(), self.nlg, self.tracker, domain())
        self.followups += [e.action_name for e in events if isinstance(e, FollowupAction)]
        if action.name() != "action_extract_slots":
            self.tracker.update(ActionExecuted(action.name()))
        self.tracker.update_with_events(events, domain())
        return [e for e in events if isinstance(e, BotUttered)]

    def say(self, text: str, intent: str, *actions: str, entities=(), signed_in=True,
            confidence: float = 0.95) -> List[Dict[str, Any]]:
        """The customer's message, then `actions`; the bot's messages (response name, text,
        buttons)."""
        metadata = {"customer": {"code": self.customer}} if self.customer and signed_in else {}
        self.tracker.update(UserUttered(text, {"name": intent, "confidence": confidence},
                                        list(entities), metadata=metadata))

        async def turn() -> List[BotUttered]:
            self.followups = []
            said = await self._run(ActionExtractSlots(self.endpoint))
            for name in actions:
                said += await self._run(action_for_name_or_text(name, domain(), self.endpoint))
            self.tracker.update(ActionExecuted("action_listen"))
            return said

        return [{"response": b.metadata.get("utter_action"), "text": b.text,
                 "buttons": b.data.get("buttons") or []} for b in asyncio.run(turn())]

    def slot(self, name: str) -> Any:
        return self.tracker.get_slot(name)

    @property
    def form(self) -> Optional[str]:
        return self.tracker.active_loop_name


def responses(said: List[Dict[str, Any]]) -> List[str]:
    return [s["response"] for s in said]


def entity(name: str, value: str) -> Dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": 1}


def kind(value: str) -> Dict[str, Any]:
    return entity("ticket_kind", value)


def tickets(code: str, kind_: str) -> List[m.Ticket]:
    with session_scope() as s:
        rows = s.execute(select(m.Ticket).join(m.Customer).where(
            m.Customer.customer_code == code, m.Ticket.kind == kind_)
            .order_by(m.Ticket.id)).scalars().all()
        s.expunge_all()
        return list(rows)


def open_ticket(code: str, kind_: str, days_ago: int = 0, **kw) -> str:
    """A ticket opened `days_ago` days ago, still open."""
    from bot.crm.service import open_ticket as service_open_ticket

    ticket_id = service_open_ticket(code, kind_, f"Test {kind_}", "web", **kw).ticket_id
    with session_scope() as s:
        row = s.execute(select(m.Ticket).where(m.Ticket.ticket_id == ticket_id)).scalar_one()
        row.opened_at = row.opened_at - timedelta(days=days_ago)
    return ticket_id


# --- status of a request of the kind named ---------------------------------------------------

def status(code: str, text: str, kinds=(), language="it", persona="digital", ticket_id=None):
    from actions.tickets import ActionTicketStatus

    entities = [kind(k) for k in kinds] + ([entity("ticket_id", ticket_id)] if ticket_id else [])
    t = tracker(slots={"verified": True, "customer_code": code, "language": language,
                       "persona": persona}, text=text, intent="ticket_status", entities=entities)
    d = CollectingDispatcher()
    asyncio.run(ActionTicketStatus().run(d, t, domain().as_dict()))
    return d.messages


def test_asking_about_a_complaint_gives_the_open_complaints_only(seeded):
    complaint = tickets(LAURA, "complaint")[0].ticket_id
    callback = open_ticket(LAURA, "callback", days_ago=1, eta_days=1)
    said = status(LAURA, "a che punto è il mio reclamo?", ["complaint"])
    # an unanswered complaint says its deadline (tests/test_complaint_clock.py)
    assert [s["response"] for s in said] == ["utter_open_complaints", "utter_complaint_line"]
    assert said[1]["ticket_id"] == complaint and callback not in str(said)
    said = status(LAURA, "has my callback been scheduled?", ["callback"], language="en")
    assert [s["response"] for s in said] == ["utter_open_callbacks", "utter_ticket_line_eta"]
    assert said[1]["ticket_id"] == callback
    # a status question opens nothing
    assert len(tickets(LAURA, "complaint")) == 1 and len(tickets(LAURA, "callback")) == 1


def test_no_open_request_of_that_kind_says_so_and_lists_the_others(seeded):
    complaint = tickets(LAURA, "complaint")[0].ticket_id
    said = status(LAURA, "mi avete fissato la richiamata che ho chiesto ieri?", ["callback"])
    assert [s["response"] for s in said] == ["utter_no_open_callbacks",
                                             "utter_other_open_tickets", "utter_complaint_line"]
    assert said[2]["ticket_id"] == complaint
    said = status(MARIA, "any news on my complaint?", ["complaint"], language="en")
    assert [s["response"] for s in said] == ["utter_no_open_complaints"]
    # without a kind (or with a ticket number) everything works as before
    said = status(LAURA, "a che punto è la mia pratica?")
    assert said[0]["response"] == "utter_open_tickets" and said[1]["ticket_id"] == complaint
    said = status(LAURA, "pratica T-2000-000001?", ["complaint"], ticket_id="T-2000-000001")
    assert said[0]["response"] == "utter_ticket_not_yours"


# --- a new request like a recent one asks first ------------------------------------------

def test_a_complaint_like_one_opened_days_ago_asks_first_and_the_status_opens_nothing(seeded):
    recent = open_ticket(LAURA, "complaint", days_ago=3)
    c = Conversation(LAURA)
    said = c.say("voglio fare un reclamo", "file_complaint", "complaint_form",
                 entities=[kind("complaint")])
    assert responses(said) == ["utter_ask_similar_complaint"]
    assert recent in said[0]["text"] and "vuoi sapere a che punto è" in said[0]["text"]
    assert [b["payload"] for b in said[0]["buttons"]] == [
        '/ticket_status{"ticket_kind": "complaint"}', "/file_complaint"]
    assert c.slot("requested_slot") == "similar_ticket_choice"
    said = c.say('/ticket_status{"ticket_kind": "complaint"}', "ticket_status", "complaint_form",
                 "action_complaint_submit", entities=[kind("complaint")])
    assert c.form is None
    assert responses(said)[0] == "utter_open_complaints"
    assert recent in " ".join(s["text"] for s in said)
    assert len(tickets(LAURA, "complaint")) == 2  # the seeded one and the recent one
    assert c.slot("similar_ticket_choice") is None and c.slot("complaint_text") is None


def test_choosing_a_new_complaint_continues_the_request(seeded):
    open_ticket(LAURA, "complaint", days_ago=1)
    c = Conversation(LAURA)
    c.say("voglio fare un reclamo", "file_complaint", "complaint_form")
    said = c.say("no, ne voglio aprire uno nuovo", "file_complaint", "complaint_form")
    assert responses(said) == ["utter_ask_complaint_text"]
    text = "mi avete staccato la luce ieri sera senza nessun preavviso"
    said = c.say(text, "report_outage", "complaint_form", "action_complaint_submit")
    assert responses(said) == ["utter_complaint_opened"]
    assert tickets(LAURA, "complaint")[-1].description == text


def test_the_choice_typed_in_words_and_a_new_complaint_described_with_it(seeded):
    open_ticket(LAURA, "complaint", days_ago=2)
    c = Conversation(LAURA)
    c.say("reclamo", "file_complaint", "complaint_form")
    said = c.say("boh", "inform", "complaint_form")
    assert responses(said) == ["utter_similar_choice_not_understood",
                               "utter_ask_similar_complaint"]
    answer = "un altro: il tecnico non si è presentato all'appuntamento di lunedì"
    said = c.say(answer, "inform", "complaint_form", "action_complaint_submit")
    assert responses(said) == ["utter_complaint_opened"]  # the description is not asked for
    assert tickets(LAURA, "complaint")[-1].description == answer


def test_an_older_or_another_kind_of_request_does_not_ask(seeded):
    """Laura's complaint is 12 days old: a new complaint is asked for at once."""
    open_ticket(LAURA, "callback", days_ago=1)
    c = Conversation(LAURA)
    said = c.say("voglio fare un reclamo", "file_complaint", "complaint_form")
    assert responses(said) == ["utter_ask_complaint_text"]


def test_a_callback_like_one_asked_yesterday_asks_first(seeded):
    recent = open_ticket(JOHN, "callback", days_ago=1, eta_days=1)
    c = Conversation(JOHN)
    said = c.say("can someone call me back?", "request_callback", "callback_form")
    assert responses(said) == ["utter_ask_similar_callback"]
    assert recent in said[0]["text"] and "where it stands" in said[0]["text"]  # English
    said = c.say("has it been arranged?", "ticket_status", "callback_form",
                 "action_callback_submit")
    assert responses(said)[:2] == ["utter_open_callbacks", "utter_ticket_line_eta"]
    assert len(tickets(JOHN, "callback")) == 1
    # a new one after all: the usual questions follow
    c = Conversation(JOHN)
    c.say("can someone call me back?", "request_callback", "callback_form")
    said = c.say("a new one please", "request_callback", "callback_form")
    assert responses(said) == ["utter_ask_callback_phone"]


def test_another_request_instead_of_the_choice_is_answered(seeded):
    """The question about the open complaint does not trap the customer."""
    open_ticket(LAURA, "complaint", days_ago=1)
    c = Conversation(LAURA)
    c.say("voglio fare un reclamo", "file_complaint", "complaint_form")
    c.say("lascia stare, quanto devo pagare?", "check_bill", "complaint_form")
    assert c.form is None and c.slot("similar_ticket_choice") is None
    assert c.followups == ["action_check_bill"]
    assert len(tickets(LAURA, "complaint")) == 2


def test_a_status_question_while_describing_a_complaint_is_not_the_complaint(seeded):
    c = Conversation(MARIA)
    c.say("voglio fare un reclamo", "file_complaint", "complaint_form")
    c.say("a che punto è il mio reclamo?", "ticket_status", "complaint_form",
          entities=[kind("complaint")])
    assert c.form is None and c.followups == ["action_ticket_status"]
    assert tickets(MARIA, "complaint") == []


# --- what the customer already said is not asked again -------------------------------------

def test_a_complaint_described_in_the_request_is_not_asked_again(seeded):
    c = Conversation(MARIA)
    said = c.say(DESCRIBED, "file_complaint", "complaint_form", "action_complaint_submit",
                 entities=[kind("complaint")])
    assert responses(said) == ["utter_complaint_opened"]
    assert [t.description for t in tickets(MARIA, "complaint")] == [DESCRIBED]


def test_a_complaint_described_before_verification_survives_it(seeded):
    """Anonymous first: verification asks for codes (other messages), then the form starts."""
    c = Conversation(MARIA)
    c.say(DESCRIBED, "file_complaint", signed_in=False)
    c.say("C1000001", "inform", signed_in=False, entities=[entity("customer_code", MARIA)])
    said = c.say("483920", "inform", "complaint_form", "action_complaint_submit")
    assert responses(said) == ["utter_complaint_opened"]
    assert [t.description for t in tickets(MARIA, "complaint")] == [DESCRIBED]


@pytest.mark.parametrize("request_text", ["voglio fare un reclamo", "I want to file a complaint",
                                          "come si fa un reclamo formale?", "reclamo bolletta"])
def test_a_request_without_a_description_asks_for_it_and_keeps_the_answer(seeded, request_text):
    c = Conversation(MARIA)
    said = c.say(request_text, "file_complaint", "complaint_form")
    assert responses(said) == ["utter_ask_complaint_text"]  # no "too short" before asking
    answer = "mi avete addebitato due volte la stessa bolletta"
    said = c.say(answer, "file_complaint", "complaint_form", "action_complaint_submit")
    assert responses(said) == ["utter_complaint_opened"]
    assert [t.description for t in tickets(MARIA, "complaint")] == [answer]


def test_an_iban_in_the_request_is_not_asked_again(seeded):
    from bot.crm.card import read_identity_card

    c = Conversation(GIUSEPPE)
    said = c.say(f"vorrei la domiciliazione sul conto {IBAN}", "setup_direct_debit",
                 "direct_debit_form", "action_direct_debit_submit",
                 entities=[entity("iban", IBAN)])
    assert responses(said) == ["utter_direct_debit_done"]
    assert read_identity_card(GIUSEPPE).direct_debit_iban == IBAN
    # a wrong one is explained, then asked for
    c = Conversation(MARIA)
    said = c.say("domiciliazione su IT60X0542811101000000123457", "setup_direct_debit",
                 "direct_debit_form", entities=[entity("iban", "IT60X0542811101000000123457")])
    assert responses(said)[0] == "utter_iban_not_valid" and c.form == "direct_debit_form"


def test_callback_details_in_the_request_are_not_asked_again(seeded):
    c = Conversation(JOHN)
    said = c.say("can you call me back tomorrow morning on +39 333 1234567?",
                 "request_callback", "callback_form", "action_callback_submit",
                 entities=[entity("phone", "+39 333 1234567")])
    assert responses(said) == ["utter_callback_opened"]
    ticket = tickets(JOHN, "callback")[-1]
    assert (ticket.callback_phone, ticket.callback_slot) == ("+393331234567", "tomorrow morning")
    # only the time: the number is asked, then not the time
    c = Conversation(MARIA)
    said = c.say("richiamatemi dopo le 15", "request_callback", "callback_form")
    assert responses(said) == ["utter_ask_callback_phone"]
    said = c.say("sì", "affirm", "callback_form", "action_callback_submit")
    assert responses(said) == ["utter_callback_opened"]
    assert tickets(MARIA, "callback")[-1].callback_slot == "dopo le 15"
    # only the number: the time is asked
    c = Conversation(ANNA)
    said = c.say("chiamatemi al 347 5512098", "request_callback", "callback_form",
                 entities=[entity("phone", "347 5512098")])
    assert responses(said) == ["utter_ask_callback_slot"]
    # Maria asked for one a moment ago: asked first whether she wants its status
    c = Conversation(MARIA)
    said = c.say("chiamatemi al 347 5512098", "request_callback", "callback_form",
                 entities=[entity("phone", "347 5512098")])
    assert responses(said) == ["utter_ask_similar_callback"]


# --- small pieces ------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("chiamatemi domani mattina", "domani mattina"),
    ("potete chiamarmi al +39 347 1239876 oggi pomeriggio?", "oggi pomeriggio"),
    ("mi chiamate stasera dopo cena?", "stasera dopo cena"),
    ("sono al lavoro, chiamatemi dopo le 18 sul 338 2211900", "dopo le 18"),
    ("mi richiamate tra un'ora?", "tra un'ora"),
    ("can an operator call me at 3471234567 after 3pm", "after 3pm"),
    ("could you give me a ring between 9 and 11", "between 9 and 11"),
    ("richiamatemi al 3331234567", None), ("potete richiamarmi?", None),
    ("buonasera, mi richiamate?", None)])
def test_the_time_to_call_in_a_request(text, expected):
    from actions.callback import time_slot_in

    assert time_slot_in(text) == expected


@pytest.mark.parametrize("text,described", [
    (DESCRIBED, True), ("voglio fare un reclamo", False), ("I want to file a complaint", False),
    ("come si fa un reclamo?", False), ("intendo presentare un reclamo formale", False),
    ("complaint: you charged me twice for October", True),
    ("RECLAMO!!! mi avete staccato il gas anche se avevo pagato", True)])
def test_a_request_describes_a_problem_only_with_more_than_asking_words(text, described):
    from actions.complaints import describes_a_problem

    assert describes_a_problem(text) is described


@pytest.mark.parametrize("intent,text,choice", [
    ("ticket_status", "a che punto è?", "status"), ("file_complaint", "reclamo", "new"),
    ("inform", "uno nuovo", "new"), ("inform", "STATO", "status"),
    ("inform", "voglio sapere come va quello già aperto", "status"),
    ("inform", "another one please", "new"), ("affirm", "sì", None), ("inform", "boh", None)])
def test_the_answer_to_status_or_new(intent, text, choice):
    from actions.tickets import similar_choice

    assert similar_choice(intent, "file_complaint", text) == choice


# --- one register per persona --------------------------------------------------------------

OWN = ("complaints", "callback", "tickets", "direct_debit")
TU = re.compile(r"\b(ti|tu|te|tuo|tua|tuoi|tue|hai|vuoi|puoi|sei|scrivi|scrivimi|scrivilo|dimmi|"
                r"raccontami|controlla|preferisci|ricontrollalo|riscrivilo)\b", re.IGNORECASE)
LEI = re.compile(r"\b(Lei|Sua|Suo|Sue|Suoi|vuole|preferisce|scriva|controlli|dica|racconti|"
                 r"descriva|ricontrolli|riscriva)\b|(?<![.:!?] )(?<!^)\b(La|Le)\b")


def test_italian_replies_say_lei_to_seniors_and_businesses_and_tu_to_the_others():
    import yaml

    chooser = ResponseVariationFilter(domain().responses)
    for name in OWN:
        own = (yaml.safe_load(open(f"domain/{name}.yml")) or {}).get("responses") or {}
        for response in own:
            for persona in (None, "family", "digital", "senior", "business"):
                picked = chooser.responses_for_utter_action(
                    response, "rest", {"persona": persona, "language": "it"})
                assert len(picked) == 1, (response, persona)
                text = picked[0]["text"]
                if persona in ("senior", "business"):
                    assert not TU.search(text), (response, persona, text)
                else:
                    assert not LEI.search(text), (response, persona, text)
