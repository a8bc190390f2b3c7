"""The handover actions against a real database (no Rasa server): business hours, nobody online,
queueing with position and wait, the written request offered instead."""

from __future__ import annotations

import asyncio

import pytest
from rasa_sdk.executor import CollectingDispatcher

from tests.test_actions import responses, tracker


@pytest.fixture
def history(demo_sqlite, monkeypatch):
    from bot.desk.demo import seed_desk_users
    from bot.settings import reset_settings

    seed_desk_users()  # on the demo data (tests/conftest.py)
    monkeypatch.setenv("DESK_HOURS", "mon-sun 00:00-24:00")
    reset_settings()
    return demo_sqlite


def _ask(slots: dict, text: str = "voglio un operatore") -> tuple[CollectingDispatcher, list]:
    from actions.handover import ActionRequestHuman

    d = CollectingDispatcher()
    t = tracker(slots={"verified": True, "customer_code": "C1000001", "language": "it",
                       **slots}, text=text, intent="request_human", sender="conv-h")
    return d, asyncio.run(ActionRequestHuman().run(d, t, {}))


def test_out_of_hours_offers_callback_or_written_request(history, monkeypatch):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from bot.handover.hours import DAYS
    from bot.settings import reset_settings

    tomorrow = (datetime.now(ZoneInfo("Europe/Rome")) + timedelta(days=1)).weekday()
    monkeypatch.setenv("DESK_HOURS", f"{DAYS[tomorrow]} 09:00-10:00")
    reset_settings()
    from bot.handover import service

    service.set_presence(_agent_id("giulia"), "online")  # online, but the chat is closed
    d, events = _ask({})
    assert responses(d) == ["utter_handover_closed", "utter_handover_alternatives"]
    assert {"event": "slot", "name": "offer", "value": "handover_ticket",
            "timestamp": None} in events
    assert not any(e.get("event") == "pause" for e in events)
    buttons = [b["payload"] for m in d.messages for b in m.get("buttons") or []]
    assert buttons == []  # buttons come from the domain response, not from code
    assert d.messages[0]["hours"].endswith("09:00-10:00")  # the hours are said


def test_nobody_online_offers_the_same(history):
    d, events = _ask({})
    assert responses(d) == ["utter_handover_no_agent", "utter_handover_alternatives"]
    assert not any(e.get("event") == "pause" for e in events)


def test_queued_with_position_and_wait_then_paused(history):
    from bot.handover import service

    agent = _agent_id("giulia")
    service.set_presence(agent, "online")
    d, events = _ask({"persona": "family"})
    assert responses(d) == ["utter_handover_queued"]
    assert d.messages[0]["position"] == 1 and d.messages[0]["minutes"] >= 1
    assert events[-1]["event"] == "pause"
    h = service.open_for_conversation("conv-h")
    assert h.customer_code == "C1000001" and h.reason == "request_human"
    assert '"Maria Rossi"' in h.context_pack


def test_gas_smell_comes_first_even_when_handing_over(history):
    d, _ = _ask({}, text="sento puzza di gas, siete dei ladri")
    assert responses(d)[0] == "utter_gas_emergency"


def test_context_pack_does_not_change_with_the_customer_data(history):
    from bot.crm.service import set_email
    from bot.handover import service

    service.set_presence(_agent_id("giulia"), "online")
    _ask({})
    before = service.open_for_conversation("conv-h").context_pack
    set_email("C1000001", "nuovo.indirizzo@example.org")
    assert service.open_for_conversation("conv-h").context_pack == before
    assert "nuovo.indirizzo" not in before


def _agent_id(username: str) -> int:
    from sqlalchemy import select

    from bot.handover.models import DeskUser
    from bot.persistence.db import session_scope

    with session_scope() as db:
        return db.execute(select(DeskUser.id).where(DeskUser.username == username)).scalar()
