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
from bot.persistence.db import session_scope
from bot.settings import get_settings
from tests.integration.desk_client import wait_log_caught_up
from tests.stack import ROOT

pytestmark = pytest.mark.integration

# Generated demo customers no other test uses (grep -rn C1000150 tests/): the stack is shared.
CODE = "C1000150"
CHANGED = "C1000318"  # changes e-mail, then is erased


def _rows(url: str, sender: str) -> int:
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as c:
            return int(c.execute(text("SELECT COUNT(*) FROM events WHERE sender_id = :s"),
                                 {"s": sender}).scalar_one())
    finally:
        engine.dispose()


def _scalar(url: str, sql: str, **params) -> int:
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as c:
            return int(c.execute(text(sql), params).scalar_one())
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
    # the log worker reads on (up to another customer's event, written after the
    # erasure): nothing comes back
    stack.talk(f"{sender}-after", "ciao")
    wait_log_caught_up()
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


def _left_of(senders: tuple[str, str], code: str, values: tuple[str, ...]) -> dict[str, int]:
    """Rows that hold either sender id, the customer code or any of the personal strings,
    per store and table (and lines of an old outbox log)."""
    settings = get_settings()
    params = {"a": senders[0], "b": senders[1], "code": code,
              **{f"v{i}": f"%{v}%" for i, v in enumerate((code,) + values)}}

    def like(*columns: str) -> str:
        return " OR ".join(f"{column} LIKE :v{i}" for column in columns
                           for i in range(len(values) + 1))

    left = {}
    for store, url in (("tracker", settings.tracker_database_url),
                       ("events", settings.events_database_url)):
        left[store] = _scalar(url, "SELECT COUNT(*) FROM events WHERE sender_id IN (:a, :b) "
                                   f"OR {like('data')}", **params)
    where = {  # table -> its sender id or personal columns
        "conversations": "sender_id IN (:a, :b) OR customer_code = :code",
        "conversation_messages": like("text", "entities"),
        "handovers": "conversation_id IN (:a, :b) OR customer_code = :code",
        "one_time_codes": "conversation_id IN (:a, :b)",
        "interactions": "conversation_id IN (:a, :b)",
        "tickets": "conversation_id IN (:a, :b)",
        "channel_options": "recipient IN (:a, :b)",
        "outbox": like("destination", "body"),
        "contact_history": like("value"),
        "customers": "customer_code = :code",
    }
    for table, condition in where.items():
        left[table] = _scalar(settings.database_url,
                              f"SELECT COUNT(*) FROM {table} WHERE {condition}", **params)
    log = settings.outbox_log  # no longer written; an old one is scrubbed too
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    left["outbox.log"] = sum(any(v in line for v in values) for line in lines)
    return left


def test_erasure_leaves_nothing_of_a_conversation_begun_anonymously(stack, sender, token):
    """The customer says who they are before verifying, is identified by the site's token,
    changes their e-mail (confirmed with a code sent to the old address); in another
    conversation they verify with a code sent to the new one. Erasure leaves nothing of
    either conversation, nor of the codes sent to either address."""
    from bot.crm.card import read_identity_card

    card = read_identity_card(CHANGED)
    old_email, phone_on_file = card.email, card.phone
    new_email = f"m.stefanelli.{sender[-6:]}@example.org"
    typed_phone = "3479081726"
    name = f"{card.first_name} {card.last_name}"
    other = f"{sender}-2"

    stack.talk(sender, f"ciao sono {name}, vi scrivo dal {typed_phone}")  # still anonymous
    t = token(CHANGED)
    assert "nuovo indirizzo" in stack.say(sender, "devo cambiare la mail", t)
    assert "codice di verifica" in stack.say(sender, new_email, t)
    stack.say(sender, stack.code_sent_to(old_email), t)
    assert read_identity_card(CHANGED).email == new_email
    assert "codice cliente" in stack.say(other, "quanto devo pagare?")
    assert "codice di verifica" in stack.say(other, CHANGED)
    stack.say(other, stack.code_sent_to(new_email))

    deadline = time.monotonic() + 20  # the desk reads the event stream into the log
    while _conversations(sender_id=sender) == 0 or _conversations(sender_id=other) == 0:
        assert time.monotonic() < deadline, "the desk never put the conversations in the log"
        time.sleep(0.3)
    values = (name, typed_phone, old_email, new_email, phone_on_file)
    before = _left_of((sender, other), CHANGED, values)
    # it was all there: the anonymous message in Rasa's stores, a code to each address
    for store in ("tracker", "events", "conversations", "one_time_codes", "contact_history",
                  "customers"):
        assert before[store] > 0, (store, before)
    settings = get_settings()
    assert _scalar(settings.tracker_database_url,
                   "SELECT COUNT(*) FROM events WHERE data LIKE :v", v=f"%{typed_phone}%") > 0
    for address in (old_email, new_email):
        assert _scalar(settings.database_url, "SELECT COUNT(*) FROM outbox "
                       "WHERE destination = :a", a=address) > 0, address

    done = subprocess.run([sys.executable, "-m", "bot", "erase-customer", CHANGED],
                          cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # the log worker reads on (up to another customer's event, written after the
    # erasure): nothing comes back
    stack.talk(f"{sender}-after", "ciao")
    wait_log_caught_up()
    after = _left_of((sender, other), CHANGED, values)
    assert all(n == 0 for n in after.values()), after
    for who in (sender, other):
        assert [e for e in stack.tracker(who)["events"] if e["event"] == "user"] == []
