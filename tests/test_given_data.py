"""Data typed outside any form starts the task it is for (actions/given_data.py), a rating
with a comment after the goodbye is the rating, the language asked for is the one after "in",
and a same-day correction of a meter reading replaces it: actions against a real database."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from tests.test_form_interruptions import ELECTRICITY_ONLY, domain, followup, slots_of


@pytest.fixture
def seeded(demo_sqlite):
    return demo_sqlite  # the demo data (tests/conftest.py)


def tracker(text: str, intent: str, entities=(), verified: bool = True, events=(),
            **slots) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.8},
              "entities": [{"entity": e, "value": v, "start": text.find(v)} for e, v in entities],
              "metadata": {}}
    values = {"verified": verified, "customer_code": ELECTRICITY_ONLY if verified else None,
              "language": "it", **slots}
    history = [*events, {"event": "user", "text": text, "parse_data": latest}]
    return Tracker("conv-data", values, latest, history, False, None, {}, "action_listen")


def run(action, t: Tracker):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, t, domain()))
    return events, [m.get("response") for m in dispatcher.messages]


@pytest.mark.parametrize("text,entities,form,slot", [
    ("domiciliazione sul conto it47 y031 1124 2035 6609 3441 321 grazie",
     [("iban", "it47 y031 1124 2035 6609 3441 321")], "direct_debit_form", "iban_input"),
    ("my new phone number is 333 909 1212", [("phone", "333 909 1212")], "contact_form",
     "new_contact"),
    ("my electricity meter says 41083", [("meter_reading", "41083")], "meter_reading_form",
     "reading_value"),
])
def test_data_outside_a_form_starts_its_task_with_the_value(seeded, text, entities, form, slot):
    from actions.conversation import ActionInform

    events, said = run(ActionInform(), tracker(text, "inform", entities))
    assert followup(events) == form and slots_of(events)[slot] == entities[0][1]
    assert said == []


def test_a_bare_number_is_no_reading_unless_a_meter_or_a_reading_was_just_mentioned(seeded):
    from actions.conversation import ActionInform

    events, said = run(ActionInform(), tracker("12", "inform", [("meter_reading", "12")]))
    assert said == ["utter_how_can_i_help"] and followup(events) is None
    after = [{"event": "user", "text": "vorrei dare la lettura"},
             {"event": "action", "name": "meter_reading_form"},
             {"event": "action", "name": "action_meter_reading_submit"},
             {"event": "action", "name": "action_listen"}]
    events, said = run(ActionInform(), tracker("no scusa ho letto male, è 30498", "inform",
                                               [("meter_reading", "30498")], events=after))
    assert followup(events) == "meter_reading_form"
    assert slots_of(events)["reading_value"] == "30498"


def test_an_anonymous_customer_verifies_first_and_the_task_follows(seeded):
    from actions.conversation import ActionInform

    events, said = run(ActionInform(), tracker(
        "IT84 N074 2185 7106 7748 3485 011", "inform",
        [("iban", "IT84 N074 2185 7106 7748 3485 011")], verified=False))
    assert followup(events) == "verify_form"
    assert slots_of(events)["pending_intent"] == "setup_direct_debit"
    assert slots_of(events)["iban_input"] == "IT84 N074 2185 7106 7748 3485 011"


def test_a_message_the_bot_did_not_understand_still_starts_the_task_its_data_is_for(seeded):
    from actions.conversation import ActionDefaultFallback

    text = "You keep estimating my gas usage. I went down to the meter and it says 4723."
    events, said = run(ActionDefaultFallback(), tracker(
        text, "nlu_fallback", [("meter_reading", "4723")], misunderstandings=0))
    assert followup(events) == "meter_reading_form" and said == []


def test_a_rating_with_a_comment_after_the_goodbye_is_the_rating(seeded):
    from actions.conversation import ActionDefaultFallback

    after_goodbye = [{"event": "user", "text": "arrivederci"},
                     {"event": "action", "name": "action_goodbye"},
                     {"event": "action", "name": "action_listen"}]
    events, said = run(ActionDefaultFallback(), tracker(
        "3, va bene ma io preferisco sempre il telefono", "nlu_fallback",
        [("rating", "3")], events=after_goodbye, persona="senior"))
    assert followup(events) == "action_give_feedback" and said == []


@pytest.mark.parametrize("text,named,wanted", [
    ("hi, can you write in English? my Italian is not great", ["English", "Italian"], "en"),
    ("non parlo bene l'italiano, scrivi in inglese", ["italiano", "inglese"], "en"),
    ("parliamo in italiano", ["italiano"], "it"),
])
def test_the_language_asked_for_is_the_one_after_in(text, named, wanted):
    from actions.conversation import wanted_language

    values = {"English": "en", "Italian": "it", "italiano": "it", "inglese": "en"}
    t = tracker(text, "change_language", [], verified=False)
    t.latest_message["entities"] = [
        {"entity": "language", "value": values[n], "start": text.find(n)} for n in named]
    assert wanted_language(t) == wanted


def test_a_same_day_correction_replaces_the_reading(seeded):
    from bot.crm.card import load_identity_card
    from bot.crm.service import store_reading

    card = asyncio.run(load_identity_card(ELECTRICITY_ONLY))
    supply = card.active_supplies[0]
    last = supply.last_reading.value
    before = len(supply.readings) if hasattr(supply, "readings") else None
    today = date(2030, 1, 1)
    assert store_reading(ELECTRICITY_ONLY, supply.supply_id, last + 10, "web", today).ok
    corrected = store_reading(ELECTRICITY_ONLY, supply.supply_id, last + 20, "web", today)
    assert corrected.ok
    card = asyncio.run(load_identity_card(ELECTRICITY_ONLY))
    again = card.active_supplies[0]
    assert again.last_reading.value == last + 20
    if before is not None:
        assert len(again.readings) == before + 1  # replaced, not added


def test_a_correction_classified_as_no_after_a_reading_is_the_new_reading(seeded):
    from actions.conversation import ActionDeny

    after = [{"event": "user", "text": "30488"},
             {"event": "action", "name": "action_meter_reading_submit"},
             {"event": "action", "name": "action_listen"}]
    events, said = run(ActionDeny(), tracker("no scusa ho letto male, è 30498", "deny",
                                             [("meter_reading", "30498")], events=after))
    assert followup(events) == "meter_reading_form" and said == []
    events, said = run(ActionDeny(), tracker("no grazie", "deny"))
    assert said == ["utter_ok_something_else"]


def test_a_customer_code_the_classifier_was_unsure_of_starts_verification(seeded):
    from actions.conversation import ActionDefaultFallback

    events, said = run(ActionDefaultFallback(), tracker(
        "C1000001", "nlu_fallback", [("customer_code", "C1000001")], verified=False,
        misunderstandings=0))
    assert followup(events) == "verify_form" and "utter_did_not_understand" not in said


def with_ends(t: Tracker) -> Tracker:
    for e in t.latest_message["entities"]:
        e["end"] = e["start"] + len(e["value"])
    return t


@pytest.mark.parametrize("action_name", ["ActionExplainBill", "ActionCheckBill"])
def test_a_reading_given_inside_a_bill_question_starts_the_reading(seeded, action_name):
    from actions import bills

    text = ("You keep estimating my gas usage and the bills are all over the place. I just went "
            "down to the meter and it says 4512. Please use that.")
    t = with_ends(tracker(text, "explain_bill", [("meter_reading", "4512"),
                                                 ("supply_type", "gas")]))
    events, said = run(getattr(bills, action_name)(), t)
    assert followup(events) == "meter_reading_form" and said == []
    assert slots_of(events)["reading_value"] == "4512"
    assert slots_of(events)["supply_choice"] == "gas"


@pytest.mark.parametrize("text,value", [
    ("perché la bolletta è di 120 euro?", "120"),  # no meter
    ("il contatore è nuovo, perché la bolletta è di 120 € se consumo poco?", "120"),  # money
])
def test_a_number_in_a_bill_question_is_not_a_reading_without_the_meter(seeded, text, value):
    from actions.bills import ActionExplainBill

    t = with_ends(tracker(text, "explain_bill", [("meter_reading", value)]))
    events, said = run(ActionExplainBill(), t)
    assert followup(events) is None and said


def test_data_classified_out_of_scope_starts_its_task(seeded):
    from actions.conversation import ActionOutOfScope

    t = tracker("cool. also my electricity meter says 41083", "out_of_scope",
                [("meter_reading", "41083"), ("supply_type", "electricity")])
    events, said = run(ActionOutOfScope(), t)
    assert followup(events) == "meter_reading_form" and said == []
    assert slots_of(events)["reading_value"] == "41083"


def test_another_companys_meter_stays_out_of_scope(seeded):
    from actions.conversation import ActionOutOfScope

    t = tracker("the Acea water meter says 412, is that a lot?", "out_of_scope",
                [("meter_reading", "412")])
    events, said = run(ActionOutOfScope(), t)
    assert followup(events) is None and said == ["utter_out_of_scope"]


def test_a_number_about_a_public_bonus_stays_out_of_scope(seeded):
    from actions.conversation import ActionOutOfScope

    t = tracker("come funziona il bonus sociale per la luce? con isee 9000 ne ho diritto?",
                "out_of_scope", [("meter_reading", "9000"), ("supply_type", "electricity")],
                verified=False)
    events, said = run(ActionOutOfScope(), t)
    assert followup(events) is None and said == ["utter_out_of_scope"]


def last_code_sent() -> str:
    import re

    from sqlalchemy import select

    from bot.persistence import tables
    from bot.persistence.db import session_scope

    with session_scope() as s:
        body = s.execute(select(tables.OutboxMessage.body)
                         .order_by(tables.OutboxMessage.id.desc())).scalars().first()
    return re.search(r"\b(\d{6})\b", body).group(1)


def test_a_code_typed_after_a_question_asked_while_it_was_awaited_confirms_the_change(seeded):
    """"my new phone number is 333 909 1212" -> code sent -> "wait, before that, how much is my
    bill?" (answered, the change offered again) -> "ok the code is N": the change is made."""
    from actions.contact import ActionContactSubmit, ValidateContactForm
    from actions.conversation import ActionInform
    from bot.crm.card import read_identity_card
    from tests.test_form_interruptions import in_form, validate

    sender = "conv-forms"  # the conversation of in_form, where the code was sent
    start = in_form("contact_form", None, "my new phone number is 333 909 1212", "update_contact",
                    new_contact="333 909 1212")
    events, _ = validate(ValidateContactForm(), start)
    checked = slots_of(events)
    assert checked["new_contact"] == "phone:+393339091212" and checked["contact_otp_to"]
    code = last_code_sent()
    question = in_form("contact_form", "contact_otp", "wait, before that, how much is my bill?",
                       "check_bill", confidence=0.88, new_contact=checked["new_contact"],
                       contact_otp_to=checked["contact_otp_to"])
    events, said = validate(ValidateContactForm(), question)
    assert followup(events) == "action_check_bill" and said == []
    paused = slots_of(events)["paused_contact"]
    assert paused == {"new_contact": "phone:+393339091212",
                      "contact_otp_to": checked["contact_otp_to"]}

    offered = [{"event": "slot", "name": "offer", "value": "update_contact"}]
    typed = tracker(f"ok the code is {code}", "inform", paused_contact=paused, events=offered)
    events, said = run(ActionInform(), typed)
    assert followup(events) == "contact_form" and said == []
    resumed = slots_of(events)
    assert resumed["contact_otp"] == code and resumed["paused_contact"] is None

    # the form activates with the restored slots: no new code, the typed one confirms
    values = {"verified": True, "customer_code": ELECTRICITY_ONLY, "language": "en",
              "requested_slot": None, **{k: resumed[k] for k in
                                         ("new_contact", "contact_otp_to", "contact_otp")}}
    latest = {"text": f"ok the code is {code}", "intent": {"name": "inform", "confidence": 0.98},
              "entities": [], "metadata": {}}
    history = [{"event": "user", "text": latest["text"], "parse_data": latest}] + [
        {"event": "slot", "name": k, "value": v} for k, v in values.items()
        if k in ("new_contact", "contact_otp")]
    activation = Tracker(sender, values, latest, history, False, None,
                         {"name": "contact_form", "is_interrupted": False}, "action_listen")
    events, said = validate(ValidateContactForm(), activation)
    assert slots_of(events)["contact_otp"] == "confirmed" and said == []
    assert last_code_sent() == code  # no second code was sent
    values.update(slots_of(events))
    done = Tracker(sender, values, latest, history, False, None, {}, "contact_form")
    asyncio.run(ActionContactSubmit().run(CollectingDispatcher(), done, domain()))
    assert read_identity_card(ELECTRICITY_ONLY).phone == "+393339091212"


def test_only_a_code_right_after_the_offer_resumes_a_change(seeded):
    from actions.given_data import code_for_paused_contact

    paused = {"new_contact": "phone:+393339091212", "contact_otp_to": "m***@example.it"}
    offered = [{"event": "slot", "name": "offer", "value": "update_contact"}]
    earlier = [*offered, {"event": "user", "text": "what's my tariff?"},
               {"event": "slot", "name": "offer", "value": None}]
    assert code_for_paused_contact(tracker("ok the code is 123456", "inform",
                                           paused_contact=paused, events=earlier)) is None
    assert code_for_paused_contact(tracker("ok thanks", "inform", paused_contact=paused,
                                           events=offered)) is None
    assert code_for_paused_contact(tracker("ok the code is 123456", "inform",
                                           paused_contact=paused, events=offered))


@pytest.mark.parametrize("text,number", [
    ("ciao sono Anna, vi scrivo dal 333 909 1212", "333 909 1212"),
    ("hi, I'm texting from +39 333 909 1212", "+39 333 909 1212"),
])
def test_the_number_a_customer_writes_from_is_no_new_contact(seeded, text, number):
    """A customer who says where they write from introduces themselves: no change of contact
    starts (the same number called "new" does, above)."""
    from actions.conversation import ActionInform

    events, said = run(ActionInform(), tracker(text, "inform", [("phone", number)]))
    assert followup(events) is None and "new_contact" not in slots_of(events)
    assert said == ["utter_how_can_i_help"]


def test_a_number_written_from_and_called_new_is_the_new_contact(seeded):
    from actions.conversation import ActionInform

    text = "ho cambiato numero, vi scrivo dal 333 909 1212"
    events, _ = run(ActionInform(), tracker(text, "inform", [("phone", "333 909 1212")]))
    assert followup(events) == "contact_form"
    assert slots_of(events)["new_contact"] == "333 909 1212"


def test_a_water_meters_number_stays_out_of_scope(seeded):
    from actions.conversation import ActionOutOfScope

    t = tracker("il contatore dell'acqua segna 345, lo devo comunicare a voi?", "out_of_scope",
                [("meter_reading", "345")])
    events, said = run(ActionOutOfScope(), t)
    assert followup(events) is None and said == ["utter_out_of_scope"]
