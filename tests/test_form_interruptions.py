"""Inside any form the customer can stop, say goodbye, ask something else or correct what
they just typed: the forms' validation against a real database (no Rasa server)."""

from __future__ import annotations

import asyncio
from functools import lru_cache

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

ELECTRICITY_ONLY = "C1000001"  # Maria: one supply
TWO_SUPPLIES = "C1000004"  # John: electricity and gas
FORM_SLOTS = {"reading_value", "supply_choice", "new_contact", "code_input", "otp_input",
              "complaint_text"}


@lru_cache(maxsize=1)
def domain() -> dict:
    from rasa.shared.core.domain import Domain

    return Domain.load("domain").as_dict()


@pytest.fixture
def seeded(demo_sqlite):
    return demo_sqlite  # the demo data (tests/conftest.py)


def in_form(form: str, asked: str | None, text: str, intent: str, confidence: float = 0.95,
            customer: str = ELECTRICITY_ONLY, entities=None, **slots) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": confidence},
              "entities": entities or [], "metadata": {}}
    values = {"verified": True, "customer_code": customer, "language": "it",
              "requested_slot": asked, **slots}
    events = [{"event": "user", "text": text, "input_channel": "rest", "parse_data": latest}]
    events += [{"event": "slot", "name": name, "value": value}  # as action_extract_slots does
               for name, value in slots.items() if name in FORM_SLOTS]
    return Tracker("conv-forms", values, latest, events, False, None,
                   {"name": form, "is_interrupted": False}, "action_listen")


def validate(action, tracker: Tracker):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, domain()))
    return events, [m.get("response") for m in dispatcher.messages]


def slots_of(events) -> dict:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def followup(events) -> str | None:
    return next((e["name"] for e in events if e.get("event") == "followup"), None)


def meter(text, intent, asked="reading_value", **kw):
    from actions.meter_reading import ValidateMeterReadingForm

    return validate(ValidateMeterReadingForm(),
                    in_form("meter_reading_form", asked, text, intent, **kw))


@pytest.mark.parametrize("text,intent", [
    ("annulla", "cancel"), ("lascia stare", "inform"), ("Never mind!", "deny"),
    ("ho cambiato idea, non voglio più farlo", "cancel"), ("forget it", "nlu_fallback")])
def test_stopping_a_form_ends_it_and_keeps_nothing(seeded, text, intent):
    events, said = meter(text, intent, reading_value=text)
    assert said == ["utter_form_cancelled"]
    slots = slots_of(events)
    assert slots["requested_slot"] is None and slots["reading_value"] is None
    assert followup(events) == "action_listen"  # not the form's submit action


@pytest.mark.parametrize("text", ["lascia stare, la faccio un altro giorno che adesso nn ho tempo",
                                  "never mind, I'll do it tomorrow", "Annulla. Non ho tempo"])
def test_a_stop_followed_by_a_reason_stops_the_form(seeded, text):
    """Longer than a stop phrase, and the classifier unsure (the NLU fallback)."""
    events, said = meter(text, "nlu_fallback", confidence=0.45, reading_value=text)
    assert said == ["utter_form_cancelled"] and followup(events) == "action_listen"


def test_a_stop_then_another_request_is_that_request(seeded):
    events, said = meter("lascia stare, quanto devo pagare?", "check_bill", confidence=1.0,
                         reading_value="lascia stare, quanto devo pagare?")
    assert followup(events) == "action_check_bill"


def test_a_remark_then_a_request_is_the_request(seeded):
    """"thanks, also can you tell me when my contract ends?" is ranked thank_you (0.55), then
    contract_info (0.37): the contract is what the customer asked."""
    from actions.meter_reading import ValidateMeterReadingForm

    text = "thanks, also can you tell me when my contract ends?"
    tracker = in_form("meter_reading_form", "reading_value", text, "thank_you", confidence=0.55,
                      reading_value=text)
    tracker.latest_message["intent_ranking"] = [
        {"name": "thank_you", "confidence": 0.55}, {"name": "contract_info", "confidence": 0.37},
        {"name": "move_home", "confidence": 0.01}]
    events, said = validate(ValidateMeterReadingForm(), tracker)
    assert followup(events) == "action_contract_info" and said == []
    tracker.latest_message["intent_ranking"][1]["confidence"] = 0.1  # a long shot: thanks only
    tracker.latest_message["text"] = "thanks, that's kind of you"  # and no question after it
    events, said = validate(ValidateMeterReadingForm(), tracker)
    assert said == ["utter_you_are_welcome"] and followup(events) is None


def test_goodbye_inside_a_form_ends_it_with_the_goodbye(seeded):
    events, said = meter("bye", "goodbye", reading_value="bye")
    assert followup(events) == "action_goodbye" and said == []
    assert slots_of(events)["requested_slot"] is None


@pytest.mark.parametrize("text,intent,ranking", [
    ("lascia stare, quanto devo pagare?", "check_bill", []),
    ("no wait, cancel that. how much is my bill?", "cancel",
     [{"name": "cancel", "confidence": 0.6}, {"name": "check_bill", "confidence": 0.35},
      {"name": "thank_you", "confidence": 0.02}]),
    ("anzi no, lascia perdere. quanto devo pagare?", "inform",
     [{"name": "inform", "confidence": 0.5}, {"name": "check_bill", "confidence": 0.4}])])
def test_a_stop_then_a_question_stops_the_task_and_answers(seeded, text, intent, ranking):
    """The customer said to leave it: the task ends (no offer to resume it) and the question
    that follows in the same message is answered."""
    from actions.meter_reading import ValidateMeterReadingForm

    tracker = in_form("meter_reading_form", "reading_value", text, intent, confidence=0.9,
                      reading_value=text)
    if ranking:
        tracker.latest_message["intent_ranking"] = ranking
        tracker.latest_message["intent"] = ranking[0]
    events, said = validate(ValidateMeterReadingForm(), tracker)
    assert said == ["utter_form_cancelled"]
    assert followup(events) == "action_check_bill"
    assert slots_of(events)["interrupted"] is None and slots_of(events)["requested_slot"] is None


@pytest.mark.parametrize("text", ["anzi no, lascia perdere, scrivo qui", "no wait, never mind",
                                  "ah no, annulla"])
def test_a_stop_after_a_filler_stops_the_task(seeded, text):
    events, said = meter(text, "inform", confidence=0.4, reading_value=text)
    assert said == ["utter_form_cancelled"] and followup(events) == "action_listen"


@pytest.mark.parametrize("text,intent,action", [
    ("thanks, also can you tell me when my contract ends?", "contract_info",
     "action_contract_info"),
    ("a proposito, sono senza luce da stamattina", "report_outage", "action_report_outage")])
def test_another_request_inside_a_form_is_answered_and_the_task_offered_again(
        seeded, text, intent, action):
    events, said = meter(text, intent, reading_value=text)
    assert said == []  # not "not a valid reading"
    assert followup(events) == action
    assert slots_of(events)["interrupted"] == "submit_meter_reading"
    assert slots_of(events)["requested_slot"] is None


def test_another_form_requested_inside_a_form_starts_it_without_a_resume_offer(seeded):
    from actions.contact import ValidateContactForm

    events, said = meter("devo cambiare la mail", "update_contact", reading_value="x")
    assert followup(events) == "contact_form" and slots_of(events)["interrupted"] is None
    events, said = validate(ValidateContactForm(), in_form(
        "contact_form", "new_contact", "a che punto è il mio reclamo?", "ticket_status",
        new_contact="a che punto è il mio reclamo?"))
    assert said == [] and followup(events) == "action_ticket_status"
    assert slots_of(events)["interrupted"] == "update_contact"


def test_a_correction_is_an_answer_whatever_its_intent(seeded):
    """'sorry, typo — it's N' once started the contact form: a number is a reading."""
    from bot.crm.card import load_identity_card

    card = asyncio.run(load_identity_card(ELECTRICITY_ONLY))
    last = card.active_supplies[0].last_reading.value
    value = int(last) + 57
    events, said = meter(f"sorry, typo — it's {value}", "update_contact",
                         reading_value=f"sorry, typo — it's {value}")  # from the text
    assert followup(events) is None
    assert float(slots_of(events)["reading_value"]) == value
    events, said = meter(f"sorry, typo — it's {value}", "update_contact",  # from the entity
                         entities=[{"entity": "meter_reading", "value": str(value)}],
                         reading_value=str(value))
    assert followup(events) is None
    assert float(slots_of(events)["reading_value"]) == value
    events, said = meter("no scusa è 12", "inform", reading_value="no scusa è 12")
    assert said == ["utter_reading_lower"] and followup(events) is None


def test_asides_are_answered_and_the_question_asked_again(seeded):
    events, said = meter("cosa sai fare?", "help", reading_value="cosa sai fare?")
    assert said == ["utter_help"] and followup(events) is None
    assert slots_of(events) == {"reading_value": None}  # the form asks for it again
    events, said = meter("grazie", "thank_you", reading_value="grazie")
    assert said == ["utter_you_are_welcome"]


def test_a_doubtful_message_is_validated_as_an_answer(seeded):
    events, said = meter("boh forse", "check_bill", confidence=0.4, reading_value="boh forse")
    assert said == ["utter_reading_not_a_number"] and followup(events) is None


def test_at_activation_the_request_itself_is_not_an_interruption(seeded):
    """The first validation runs on the message that started the form (requested_slot unset)."""
    events, said = meter("vorrei fare l'autolettura della luce", "submit_meter_reading",
                         asked=None, supply_choice="electricity")
    assert followup(events) is None and "utter_form_cancelled" not in said


def test_a_supply_named_in_the_request_is_resolved_for_a_customer_with_one_supply(seeded):
    """Once a silent turn: the supply word reached the reading question as if it were an id."""
    from actions.meter_reading import ActionAskReadingValue, ValidateMeterReadingForm

    tracker = in_form("meter_reading_form", "reading_value", "la lettura della luce",
                      "submit_meter_reading", supply_choice="electricity")
    dispatcher = CollectingDispatcher()
    asyncio.run(ActionAskReadingValue().run(dispatcher, tracker, domain()))
    assert [m["response"] for m in dispatcher.messages] == ["utter_ask_reading_value"]
    assert dispatcher.messages[0]["supply_id"].startswith("IT")
    # a supply the customer does not have is asked about, never swapped for another one
    form = ValidateMeterReadingForm()
    gas = in_form("meter_reading_form", None, "lettura del gas", "submit_meter_reading",
                  supply_choice="gas")
    slots = asyncio.run(form.required_slots(["supply_choice", "reading_value"],
                                            CollectingDispatcher(), gas, domain()))
    assert slots == ["supply_choice", "reading_value"]
    events, said = validate(form, in_form("meter_reading_form", "supply_choice", "gas",
                                          "inform", supply_choice="gas"))
    assert said == ["utter_supply_not_understood"] and slots_of(events)["supply_choice"] is None


def test_the_skill_answered_offers_the_interrupted_task_once(seeded):
    from actions.contract import ActionContractInfo

    tracker = in_form("", None, "quando scade il contratto?", "contract_info",
                      interrupted="submit_meter_reading")
    tracker.active_loop = {}
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionContractInfo().run(dispatcher, tracker, domain()))
    said = [m.get("response") for m in dispatcher.messages]
    assert said[-1] == "utter_resume_submit_meter_reading"
    assert slots_of(events)["offer"] == "submit_meter_reading"
    assert slots_of(events)["interrupted"] is None


def test_verification_keeps_a_new_request_for_afterwards_and_can_be_stopped(seeded):
    from actions.identity import ValidateVerifyForm

    events, said = validate(ValidateVerifyForm(), in_form(
        "verify_form", "code_input", "ma quanto devo pagare?", "check_bill",
        verified=False, customer_code=None, pending_intent="submit_meter_reading",
        code_input="ma quanto devo pagare?"))
    assert slots_of(events)["pending_intent"] == "check_bill" and followup(events) is None
    assert said == ["utter_after_verification"]
    events, said = validate(ValidateVerifyForm(), in_form(
        "verify_form", "otp_input", "lascia perdere", "cancel", verified=False,
        customer_code=None, pending_intent="check_bill", otp_input="lascia perdere"))
    assert said == ["utter_verification_stopped"]
    assert slots_of(events)["pending_intent"] is None and followup(events) == "action_listen"


def test_the_core_fallback_answers_only_a_message_left_without_reply():
    from actions.fallback import ActionCoreFallback

    def run(events):
        t = Tracker("c", {"language": "it", "misunderstandings": 0}, {"text": "mah"}, events,
                    False, None, {}, "action_listen")
        dispatcher = CollectingDispatcher()
        out = asyncio.run(ActionCoreFallback().run(dispatcher, t, domain()))
        return [m.get("response") for m in dispatcher.messages], out

    said, out = run([{"event": "user", "text": "mah"}])
    assert said == ["utter_did_not_understand"]
    assert out[-1] == {"event": "followup", "timestamp": None, "name": "action_listen"}
    said, out = run([{"event": "user", "text": "mah"}, {"event": "bot", "text": "Ciao"}])
    assert said == [] and out[-1]["name"] == "action_listen"


def test_an_angry_question_the_bot_can_answer_is_answered_before_the_person(seeded):
    """ "XKE LA BOLLETTA E COSI ALTA???" is frustrated (request_human), and understood as
    explain_bill: the explanation first, then the handover (here nobody is online)."""
    import actions.bills  # noqa: F401  (registers the bill skills)
    from actions.handover import ActionRequestHuman

    text = "XKE LA BOLLETTA E COSI ALTA??? nn e possibile"
    latest = {"text": text, "intent": {"name": "request_human", "confidence": 1.0},
              "entities": [], "metadata": {},
              "frustration": {"score": 0.9, "cues": ["caps"],
                              "understood": {"name": "explain_bill", "confidence": 0.93}}}
    tracker = Tracker("conv-angry", {"verified": True, "customer_code": ELECTRICITY_ONLY,
                                     "language": "it"}, latest,
                      [{"event": "user", "text": text, "parse_data": latest}], False, None, {},
                      "action_listen")
    dispatcher = CollectingDispatcher()
    asyncio.run(ActionRequestHuman().run(dispatcher, tracker, domain()))
    said = [m.get("response") for m in dispatcher.messages]
    assert said[0].startswith("utter_explain_bill"), said
    assert "utter_handover_no_agent" in said or "utter_handover_closed" in said
    latest["frustration"]["understood"]["confidence"] = 0.3  # not sure what was asked
    dispatcher = CollectingDispatcher()
    asyncio.run(ActionRequestHuman().run(dispatcher, tracker, domain()))
    assert not any(r.startswith("utter_explain_bill") for r in
                   [m.get("response") or "" for m in dispatcher.messages])


def test_stopping_verification_with_a_reason_that_sounds_like_a_request(seeded):
    """"never mind, I'll call you" is classified as a callback request: still a stop."""
    from actions.identity import ValidateVerifyForm

    events, said = validate(ValidateVerifyForm(), in_form(
        "verify_form", "code_input", "never mind, I'll call you", "request_callback",
        confidence=0.9, verified=False, customer_code=None, pending_intent="report_outage",
        code_input="never mind, I'll call you"))
    assert said == ["utter_verification_stopped"]
    assert slots_of(events)["pending_intent"] is None and followup(events) == "action_listen"


@pytest.mark.parametrize("text,intent", [
    ("no lascia perdere, non ne vale la pena", "cancel"),
    ("anzi no, lascia stare", "inform"),
    ("never mind", "complaint")])
def test_a_complaint_can_be_stopped_instead_of_described(seeded, text, intent):
    from actions.complaints import ValidateComplaintForm

    events, said = validate(ValidateComplaintForm(), in_form(
        "complaint_form", "complaint_text", text, intent, confidence=0.8, complaint_text=text))
    assert said == ["utter_form_cancelled"] and slots_of(events)["complaint_text"] is None


@pytest.mark.parametrize("text,intent", [
    ("il tecnico doveva venire martedi per la verifica del contatore e non si e presentato, "
     "ho preso un giorno di ferie apposta", "ticket_status"),
    ("basta, è la terza volta in un mese che mi staccate la luce senza nessun preavviso",
     "report_outage")])
def test_a_long_description_is_the_complaint_whatever_its_intent(seeded, text, intent):
    from actions.complaints import ValidateComplaintForm

    events, said = validate(ValidateComplaintForm(), in_form(
        "complaint_form", "complaint_text", text, intent, confidence=0.9, complaint_text=text))
    assert slots_of(events)["complaint_text"] == text and followup(events) is None


def test_asking_where_a_complaint_stands_instead_of_describing_one_is_the_status(seeded):
    from actions.complaints import ValidateComplaintForm

    text = "a che punto è il mio reclamo?"
    events, said = validate(ValidateComplaintForm(), in_form(
        "complaint_form", "complaint_text", text, "ticket_status", confidence=0.9,
        complaint_text=text))
    assert followup(events) == "action_ticket_status"


@pytest.mark.parametrize("text,intent", [("actually forget it, bye", "cancel"),
                                         ("lascia stare, ciao", "inform")])
def test_a_stop_that_says_goodbye_ends_the_task_with_the_goodbye(seeded, text, intent):
    events, said = meter(text, intent, reading_value=text)
    assert followup(events) == "action_goodbye" and said == []


@pytest.mark.parametrize("text,rest", [
    ("no wait, cancel that. how much is my bill?", "how much is my bill?"),
    ("anzi no, lascia perdere. Quando scade il contratto?", "Quando scade il contratto?"),
    ("lascia stare, quanto devo pagare?", "quanto devo pagare?"),
    ("annulla", ""), ("never mind!", ""),
    ("quanto devo pagare? annulla", ""),  # the stop does not open the message
    ("no, the reading is 4512", ""),
])
def test_what_follows_a_stop_is_cut_off_as_written(text, rest):
    from bot.stopwords import remainder_after_stop

    assert remainder_after_stop(text) == rest


def test_a_question_for_another_skill_under_the_digression_bar_is_that_request(seeded):
    """"thanks, also can you tell me when my contract ends?" ranked contract_info at 0.57: a
    question is never a meter reading."""
    text = "thanks, also can you tell me when my contract ends?"
    events, said = meter(text, "contract_info", confidence=0.57, reading_value=text)
    assert followup(events) == "action_contract_info" and said == []
    events, said = meter("16899 ok?", "contract_info", confidence=0.57, reading_value="16899",
                         entities=[{"entity": "meter_reading", "value": "16899"}])
    assert followup(events) != "action_contract_info"  # a value given is an answer


@pytest.mark.parametrize("intent,confidence", [("goodbye", 0.52), ("deny", 0.55),
                                               ("submit_meter_reading", 0.8)])
def test_leaving_to_read_the_meter_with_a_farewell_is_the_goodbye(seeded, intent, confidence):
    text = "ah no il contatore e in cantina, vado a vedere e vi riscrivo. ciao"
    events, said = meter(text, intent, confidence=confidence, reading_value=text)
    assert followup(events) == "action_goodbye" and said == []
