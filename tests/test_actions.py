"""Custom actions against a real database (no Rasa server): identity, forms' validation."""

from __future__ import annotations

import asyncio
import re

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from bot.persistence import tables
from bot.persistence.db import session_scope


def tracker(slots=None, text="", intent="inform", channel="rest", sender="conv-1",
            metadata=None, entities=None) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 1.0},
              "entities": entities or [], "metadata": metadata or {}}
    events = [{"event": "user", "text": text, "input_channel": channel, "parse_data": latest,
               "metadata": metadata or {}}]
    return Tracker(sender, slots or {}, latest, events, False, None, {}, "action_listen")


@pytest.fixture
def seeded(demo_sqlite):
    return demo_sqlite  # the demo data (tests/conftest.py)


def test_a_one_time_code_verification_lapses_when_the_customer_is_idle(seeded, monkeypatch):
    """VERIFICATION_IDLE_MINUTES (30) without a message: anonymous again; a token identity
    needs the token on every message; a channel identity only counts on its channel."""
    from actions.conversation import ActionUpdateContext

    verified = {"customer_code": "C1000003", "verified": True, "auth_method": "otp"}

    def idle(minutes: float, slots=verified, channel="rest") -> Tracker:
        t = tracker(slots=slots, text="quanto devo pagare?", channel=channel)
        t.events = [{"event": "user", "text": "ok", "timestamp": 1_000_000.0},
                    {"event": "user", "text": "quanto devo pagare?",
                     "timestamp": 1_000_000.0 + minutes * 60}]
        return t

    def forgotten(t: Tracker) -> bool:
        events = asyncio.run(ActionUpdateContext().run(CollectingDispatcher(), t, {}))
        slots = {e["name"]: e["value"] for e in events}
        return slots.get("verified") is False and slots.get("customer_code", "x") is None

    assert not forgotten(idle(29))
    assert forgotten(idle(31))
    session_expired = idle(1)  # Rasa sends the current session: no earlier message in it
    session_expired.events = session_expired.events[-1:]
    assert forgotten(session_expired)
    assert forgotten(idle(1, {**verified, "auth_method": "token"}))  # no token this time
    assert forgotten(idle(1, {**verified, "auth_method": "channel"}))  # REST, not the app
    assert forgotten(idle(1, {**verified, "auth_method": None}))  # an identity nobody proved


def test_only_whatsapp_senders_are_messaging_identities():
    """An SMS sender through Twilio can be spoofed: never linked, never trusted."""
    from actions.common import linkable

    assert linkable(tracker(channel="twilio", sender="whatsapp:+393331234567"))
    assert not linkable(tracker(channel="twilio", sender="+393331234567"))
    assert linkable(tracker(channel="whatsapp", sender="393331234567"))
    assert not linkable(tracker(channel="rest", sender="393331234567"))


def responses(dispatcher: CollectingDispatcher) -> list[str]:
    return [m.get("response") for m in dispatcher.messages]


def test_update_context_trusts_tokens_not_typed_codes(seeded):
    from actions.conversation import ActionUpdateContext
    from bot.tokens import make_customer_token
    from connectors.identity import identify

    action = ActionUpdateContext()
    d = CollectingDispatcher()
    events = asyncio.run(action.run(d, tracker(text="sono C1000001",
                                               entities=[{"entity": "customer_code",
                                                          "value": "C1000001"}]), {}))
    assert not any(e["name"] == "verified" and e["value"] for e in events)
    events = asyncio.run(action.run(d, tracker(text="ciao", metadata=identify({
        "customer_token": make_customer_token("C1000004")})), {}))
    slots = {e["name"]: e["value"] for e in events}
    assert slots["customer_code"] == "C1000004" and slots["verified"] is True
    assert slots["language"] == "en" and slots["language_source"] == "profile"
    forged = make_customer_token("C1000004", secret="forged")
    events = asyncio.run(action.run(d, tracker(text="ciao",
                                               metadata=identify({"customer_token": forged}),
                                               slots={"auth_method": "token",
                                                      "customer_code": "C1000004",
                                                      "verified": True}), {}))
    slots = {e["name"]: e["value"] for e in events}
    assert slots["verified"] is False and slots["customer_code"] is None


def test_verification_on_a_messaging_channel_links_the_identity(seeded):
    from actions.identity import ValidateVerifyForm
    from bot.crm.service import customer_for_identity

    form = ValidateVerifyForm()
    d = CollectingDispatcher()
    t = tracker(text="C1000001", channel="telegram", sender="481516999")
    result = asyncio.run(form.validate_code_input("C1000001", d, t, {}))
    assert result["code_input"] == "C1000001" and "utter_otp_sent" in responses(d)
    with session_scope() as s:
        body = s.execute(select(tables.OutboxMessage.body)
                         .order_by(tables.OutboxMessage.id.desc())).scalar()
    code = re.search(r"\b\d{6}\b", body).group(0)
    t = tracker(text=code, channel="telegram", sender="481516999", slots={"code_input": "C1000001"})
    result = asyncio.run(form.validate_otp_input(code, d, t, {}))
    assert result["verified"] is True and result["customer_code"] == "C1000001"
    assert customer_for_identity("telegram", "481516999") == "C1000001"
    assert customer_for_identity("telegram", "someone-else") is None


def test_unknown_customer_code_gets_the_same_answer_and_no_message(seeded):
    from actions.identity import ValidateVerifyForm

    d = CollectingDispatcher()
    result = asyncio.run(ValidateVerifyForm().validate_code_input("C9999999", d, tracker(), {}))
    assert responses(d) == ["utter_otp_sent"] and result["code_input"] == "C9999999"
    with session_scope() as s:
        assert s.execute(select(tables.OutboxMessage)).first() is None


def test_meter_reading_form_explains_rejections(seeded):
    from actions.meter_reading import ValidateMeterReadingForm
    from bot.crm.card import read_identity_card

    card = read_identity_card("C1000001")
    supply = card.active_supplies[0]
    slots = {"verified": True, "customer_code": "C1000001", "supply_choice": supply.supply_id}
    form = ValidateMeterReadingForm()
    for value, response in [("dodici", "utter_reading_not_a_number"),
                            (str(int(supply.last_reading.value) - 1), "utter_reading_lower"),
                            ("99999999", "utter_reading_implausible")]:
        d = CollectingDispatcher()
        result = asyncio.run(form.validate_reading_value(value, d, tracker(slots=slots), {}))
        assert result == {"reading_value": None} and responses(d) == [response]


def test_contact_and_iban_validation():
    from actions.contact import parse_contact

    assert parse_contact("la mail è Mario.Rossi@Example.it") == ("email", "mario.rossi@example.it")
    assert parse_contact("347 765 4321") == ("phone", "+393477654321")
    assert parse_contact("pippo") is None
    assert parse_contact("mario@") is None


@pytest.fixture(scope="module")
def domain_dict():
    """The domain as Rasa sends it to the action server."""
    from rasa.shared.core.domain import Domain

    return Domain.load("domain").as_dict()


@pytest.mark.parametrize("lang, when, channel, topic", [
    ("it", "ieri", "su WhatsApp", "una bolletta"),
    ("en", "yesterday", "on WhatsApp", "a bill"),
])
def test_greeting_words_come_from_the_domain_vocabulary(seeded, domain_dict, lang, when, channel,
                                                        topic):
    from actions.conversation import ActionGreet

    d = CollectingDispatcher()
    slots = {"verified": True, "customer_code": "C1000006", "language": lang}
    asyncio.run(ActionGreet().run(d, tracker(slots=slots), domain_dict))
    recent = next(m for m in d.messages if m.get("response") == "utter_recent_contact")
    assert (recent["when"], recent["channel"], recent["topic"]) == (when, channel, topic)


def test_the_action_server_registers_every_custom_action_of_the_domain(domain_dict):
    """rasa-sdk registers every non-abstract Action subclass: none may fail to register, and
    every custom action the domain lists must be there."""
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("actions")
    custom = {a for a in domain_dict["actions"] if a.startswith(("action_", "validate_"))}
    assert custom - set(executor.actions) == set()
