"""Erasure against the real stack, on both profiles: a customer talks to the bot over REST, the
desk puts the conversation in the log, `python -m bot erase-customer` (a separate process, as an
operator runs it) leaves nothing of them in Rasa's tracker store, the event stream, the log or
the customer history."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, func, select, text

from bot.analytics.models import Conversation, ErasureRecord
from bot.crm import models as m
from bot.crm.db import session_scope
from bot.settings import get_settings
from tests.stack import ROOT

pytestmark = pytest.mark.integration

# A generated demo customer no other test uses (grep -rn C1000150 tests/): the stack is shared.
CODE = "C1000150"


def _rows(url: str, sender: str) -> int:
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as c:
            return int(c.execute(text("SELECT COUNT(*) FROM events WHERE sender_id = :s"),
                                 {"s": sender}).scalar_one())
    finally:
        engine.dispose()


def _conversations(**where) -> int:
    with session_scope() as db:
        query = select(func.count()).select_from(Conversation)
        for column, value in where.items():
            query = query.where(getattr(Conversation, column) == value)
        return db.execute(query).scalar_one()


def test_erase_customer_leaves_nothing_in_any_store(stack, sender, token):
    with session_scope() as db:
        customer = db.execute(select(m.Customer).where(m.Customer.customer_code == CODE)
                              ).scalar_one()
        assert customer.email or customer.phone
    # an anonymous session first, then identified by the site's token
    stack.talk(sender, "ciao")
    stack.talk(sender, "quanto devo pagare?", token(CODE))
    stack.talk(sender, "grazie", token(CODE))
    user_events = [e for e in stack.tracker(sender)["events"] if e["event"] == "user"]
    assert len(user_events) == 3
    settings = get_settings()
    assert _rows(settings.tracker_database_url, sender) > 0
    assert _rows(settings.events_database_url, sender) > 0

    deadline = time.monotonic() + 20  # the desk reads the event stream into the log
    while _conversations(customer_code=CODE) == 0:
        assert time.monotonic() < deadline, "the desk never put the conversation in the log"
        time.sleep(0.3)
    assert _conversations(sender_id=sender) >= 1

    done = subprocess.run([sys.executable, "-m", "bot", "erase-customer", CODE,
                           "--reference", "GDPR-REQ-7", "--by", "dpo"],
                          cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"erased {CODE}" in done.stdout

    tracker = stack.tracker(sender)
    assert [e for e in tracker["events"] if e["event"] == "user"] == []
    assert tracker["slots"].get("customer_code") in (None, "")
    assert _rows(settings.tracker_database_url, sender) == 0
    assert _rows(settings.events_database_url, sender) == 0
    time.sleep(2)  # the desk goes on reading the stream: nothing comes back
    assert _conversations(sender_id=sender) == 0
    assert _conversations(customer_code=CODE) == 0
    with session_scope() as db:
        assert db.execute(select(m.Customer).where(m.Customer.customer_code == CODE)
                          ).scalar_one_or_none() is None
        record = db.execute(select(ErasureRecord).where(
            ErasureRecord.reference == "GDPR-REQ-7")).scalar_one()
        assert record.kind == "customer" and record.requested_by == "dpo"
        assert record.conversations >= 1 and record.tracker_events > 0
        assert record.history_rows > 0

    # a second run finds nothing and changes nothing
    again = subprocess.run([sys.executable, "-m", "bot", "erase-customer", CODE],
                           cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "no such customer" in again.stderr
