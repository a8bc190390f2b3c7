"""The identity card is read once per conversation turn, and read again after this process
writes to the database (bot/crm/card.py, bot/action_server.py)."""

from __future__ import annotations

import asyncio

import pytest

from bot.action_server import turn_of
from bot.crm import card as card_module
from bot.crm.card import TURN, load_identity_card
from bot.crm.service import set_email


@pytest.fixture
def reads(monkeypatch):
    """Counts the database reads of the identity card."""
    counted: list[str] = []
    original = card_module.read_identity_card

    def counting(code: str, *args, **kwargs):
        counted.append(code)
        return original(code, *args, **kwargs)

    monkeypatch.setattr(card_module, "read_identity_card", counting)
    monkeypatch.setattr(card_module, "_KEPT", type(card_module._KEPT)())
    return counted


def in_turn(turn, coroutine):
    async def run():
        TURN.set(turn)
        return await coroutine()
    return asyncio.run(run())


def test_a_turn_reads_the_card_once_until_this_process_writes(demo_database, reads):
    async def turn_with_a_change():
        first = await load_identity_card("C1000001")
        again = await load_identity_card("C1000001")
        assert again is first and reads == ["C1000001"]
        await asyncio.to_thread(set_email, "C1000001", "nuova.mail@example.it")
        changed = await load_identity_card("C1000001")
        assert changed.email == "nuova.mail@example.it" and len(reads) == 2
        other = await load_identity_card("C1000002")  # another customer: its own card
        assert other.customer_code == "C1000002" and len(reads) == 3
        return first

    first = in_turn(("conv-1", 1000.0), turn_with_a_change)
    assert first.email != "nuova.mail@example.it"
    # the next turn of the conversation, and another conversation, read again
    in_turn(("conv-1", 1001.5), lambda: load_identity_card("C1000001"))
    in_turn(("conv-2", 1000.0), lambda: load_identity_card("C1000001"))
    assert len(reads) == 5


def test_outside_a_turn_every_load_reads(demo_database, reads):
    async def twice():
        await load_identity_card("C1000001")
        await load_identity_card("C1000001")

    in_turn(None, twice)
    assert reads == ["C1000001", "C1000001"]


def test_the_turn_of_an_action_call_is_its_latest_user_message():
    events = [{"event": "action", "name": "action_session_start", "timestamp": 1.0},
              {"event": "user", "text": "ciao", "timestamp": 2.0},
              {"event": "bot", "text": "Ciao!", "timestamp": 2.5},
              {"event": "user", "text": "quanto devo pagare?", "timestamp": 3.25},
              {"event": "action", "name": "action_check_bill", "timestamp": 3.5}]
    assert turn_of({"tracker": {"sender_id": "s1", "events": events}}) == ("s1", 3.25)
    for body in ({"tracker": {"sender_id": "s1", "events": events[:1]}},  # no message yet
                 {"tracker": {"sender_id": 7, "events": events}}, {"tracker": "x"}, [],
                 {"tracker": {"sender_id": "s1", "events": [{"event": "user",
                                                             "timestamp": "soon"}]}}):
        assert turn_of(body) is None


def test_the_card_holds_the_newest_interactions_only(demo_database):
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import select

    from bot.crm import models as m
    from bot.crm.card import CARD_INTERACTIONS, read_identity_card
    from bot.persistence.db import session_scope

    now = datetime.now(timezone.utc).replace(microsecond=0)
    with session_scope() as s:
        customer = s.execute(select(m.Customer).where(
            m.Customer.customer_code == "C1000003")).scalar_one()
        for n in range(CARD_INTERACTIONS + 10):
            s.add(m.Interaction(customer_id=customer.id, at=now - timedelta(hours=n),
                                channel="web", topic=f"topic-{n}", outcome="resolved",
                                summary="", conversation_id=f"conv-{n}"))
    card = read_identity_card("C1000003")
    assert len(card.interactions) == CARD_INTERACTIONS
    assert [i.topic for i in card.interactions[:3]] == ["topic-0", "topic-1", "topic-2"]
    assert all(a.at >= b.at for a, b in zip(card.interactions, card.interactions[1:]))


def test_the_card_is_read_without_a_transaction_and_survives_lost_connections(
        demo_pg_template, monkeypatch, tmp_path):
    """On PostgreSQL the card's reads run in autocommit on connections lent without a ping
    (bot/persistence/readers.py); after PostgreSQL ended them (as a restart does),
    the first read fails on its dead connection and the action's load reads once more on a new
    one: the customer gets their card, not a technical error."""
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.exc import OperationalError

    from bot.persistence import db, readers
    from bot.settings import reset_settings
    from tests.conftest import (
        PG_ADMIN_URL,
        create_pg_database,
        drop_pg_database,
        pg_url,
        use_database,
    )

    name = create_pg_database(template=demo_pg_template)
    url = pg_url(name)
    use_database(monkeypatch, url, tmp_path / "var")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)

    def end_every_connection() -> None:
        with admin.connect() as c:
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = :name"), {"name": name})

    autocommit: list[bool] = []
    try:
        reader = readers.reader(db.get_engine(None))  # the engine of the settings' database
        assert reader is not db.get_engine(None) and reader.pool._pre_ping is False
        event.listen(reader, "before_cursor_execute", lambda conn, *_: autocommit.append(
            conn.connection.dbapi_connection.autocommit))
        card = card_module.read_identity_card("C1000001")
        assert card is not None and autocommit and all(autocommit)
        end_every_connection()
        with pytest.raises(OperationalError):  # the plain read, on a dead connection
            card_module.read_identity_card("C1000001")
        assert card_module.read_identity_card("C1000001") == card  # the pool has a new one
        end_every_connection()  # ... which dies too: the action's load reads once more
        assert asyncio.run(load_identity_card("C1000001")) == card
    finally:
        db.get_engine(None).dispose()  # the reader goes with it
        db.get_engine.cache_clear()
        admin.dispose()
        drop_pg_database(name)
        reset_settings()


@pytest.mark.parametrize("url,schema", [
    ("postgresql://u@127.0.0.1/db", "tenant_a"),  # Rasa sets the search path itself
    ("postgresql://u@127.0.0.1/db?options=-csearch_path%3Dtenant_a", None),
    ("sqlite:///x.db", None),
])
def test_no_twin_where_it_could_reach_other_tables(monkeypatch, url, schema):
    """A twin is made from the engine's URL alone: where the engine's connections get options
    from elsewhere (a PostgreSQL schema) or from the URL, reads and deletes use the engine."""
    from sqlalchemy import create_engine

    from bot.persistence import readers

    if schema:
        monkeypatch.setenv("POSTGRESQL_SCHEMA", schema)
    else:
        monkeypatch.delenv("POSTGRESQL_SCHEMA", raising=False)
    engine = create_engine(url, future=True)
    assert readers.reader(engine) is engine and readers.unsynced_writer(engine) is engine
    plain = create_engine("postgresql://u@127.0.0.1/db", future=True)
    monkeypatch.delenv("POSTGRESQL_SCHEMA", raising=False)
    assert readers.reader(plain) is not plain


def test_the_card_shows_the_outages_the_orm_query_finds(demo_database):
    """The card's outages (one query of plain columns) against `active_outages`, the ORM query
    the conversation suite checks facts with: the same outages with all their postcodes; a
    resolved one, one that ended long ago and one not started yet are left out."""
    from datetime import datetime, timedelta, timezone

    from bot.crm import models as m
    from bot.crm.card import active_outages, read_identity_card
    from bot.persistence.db import session_scope

    now = datetime.now(timezone.utc)
    home = read_identity_card("C1000001").active_supplies[0].postcode
    with session_scope() as s:
        for outage_id, start, end, resolved, codes in (
                ("T-ACTIVE-1", now - timedelta(hours=1), now + timedelta(hours=3), None,
                 [home, "99990", "99991"]),
                ("T-ACTIVE-2", now - timedelta(hours=2), now - timedelta(hours=1), None, [home]),
                ("T-RESOLVED", now - timedelta(hours=1), now + timedelta(hours=3),
                 now - timedelta(minutes=5), [home]),
                ("T-OLD", now - timedelta(days=3), now - timedelta(days=2), None, [home]),
                ("T-LATER", now + timedelta(hours=1), now + timedelta(hours=5), None, [home]),
                ("T-ELSEWHERE", now - timedelta(hours=1), now + timedelta(hours=3), None,
                 ["99992"])):
            s.add(m.Outage(outage_id=outage_id, type="electricity", started_at=start,
                           expected_end=end, description=f"test {outage_id}",
                           resolved_at=resolved,
                           postcodes=[m.OutagePostcode(postcode=c) for c in codes]))
    card = read_identity_card("C1000001", now)
    shown = {o.outage_id: o for o in card.outages}
    assert {"T-ACTIVE-1", "T-ACTIVE-2"} <= set(shown)
    assert not {"T-RESOLVED", "T-OLD", "T-LATER", "T-ELSEWHERE"} & set(shown)
    assert shown["T-ACTIVE-1"].postcodes == (home, "99990", "99991")
    with session_scope() as s:
        postcodes = {p.postcode for p in card.active_supplies}
        expected = {o.outage_id: (o.type, sorted(p.postcode for p in o.postcodes), o.started_at,
                                  o.expected_end, o.description)
                    for o in active_outages(s, postcodes, now)}
    assert {o.outage_id: (o.type, sorted(o.postcodes), o.started_at, o.expected_end,
                          o.description) for o in card.outages} == expected


def test_a_conversation_records_one_interaction_per_topic_and_updates_it(demo_database):
    """`record_interaction`, as the actions call it at every turn: the same conversation and
    topic update their record (a new summary, or the old one kept); another topic, or no
    conversation, adds one; an unknown customer is an error, and nothing is written."""
    from sqlalchemy.exc import NoResultFound

    from bot.crm.card import read_identity_card
    from bot.crm.service import record_interaction

    def mine(conversation):
        return [i for i in read_identity_card("C1000001").interactions
                if i.conversation_id == conversation]

    record_interaction("C1000001", "web", "check_bill", "resolved", "bill read", "conv-x")
    record_interaction("C1000001", "web", "check_bill", "handover", "", "conv-x")
    assert [(i.topic, i.outcome, i.summary) for i in mine("conv-x")] == [
        ("check_bill", "handover", "bill read")]
    record_interaction("C1000001", "web", "check_bill", "resolved", "read again", "conv-x")
    record_interaction("C1000001", "web", "outage", "resolved", "no outage", "conv-x")
    assert sorted((i.topic, i.outcome, i.summary) for i in mine("conv-x")) == [
        ("check_bill", "resolved", "read again"), ("outage", "resolved", "no outage")]
    before = len(read_identity_card("C1000001").interactions)
    record_interaction("C1000001", "phone", "check_bill", "resolved", "by phone")
    record_interaction("C1000001", "phone", "check_bill", "resolved", "by phone")
    assert len(read_identity_card("C1000001").interactions) == min(before + 2, 50)
    with pytest.raises(NoResultFound):
        record_interaction("C9999999", "web", "check_bill", "resolved", "", "conv-y")
    assert mine("conv-y") == []
