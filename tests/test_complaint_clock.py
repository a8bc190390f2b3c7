"""Complaint clocks (ARERA's deadlines, issue 15): the kind of deadline, the last day, days left,
late or not with the indemnity, answered on time or not; stored with every complaint however it
is written (the bot, an import), the console's list by time left and the dashboard's figures,
on SQLite and PostgreSQL.

Dates are Europe/Rome calendar days. 2026-03-29 is the day summer time starts (its midnight
after is 22:00 UTC)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.crm import complaint_clock as cc, models as m
from bot.persistence.db import session_scope
from bot.settings import local_zone, reset_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "tests" / "data" / "example.json"
ROME = local_zone()


def rome(y: int, mo: int, d: int, h: int = 10, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=ROME)


def clock(kind: str, received: datetime, today: date, answered: datetime | None = None):
    return cc.clock_of(kind, received, None, answered, today)


@pytest.fixture
def settings(monkeypatch, tmp_path):
    """Sets settings from this test's environment (the others as they are, or the test
    database's; the embedded secrets under a folder of this test's)."""
    monkeypatch.setenv("SPORTELLO_VAR_DIR", str(tmp_path / "var"))

    def set_(**values):
        for name, value in values.items():
            monkeypatch.setenv(name.upper(), str(value))
        reset_settings()
    yield set_
    reset_settings()


# --- which deadline --------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind", [
    ("mi avete addebitato due volte la bolletta di ottobre", cc.DOUBLE_BILLING),
    ("Doppia fatturazione del mese di marzo", cc.DOUBLE_BILLING),
    ("ho pagato due volte la stessa fattura", cc.DOUBLE_BILLING),
    ("I was billed twice for March", cc.DOUBLE_BILLING),
    ("you charged me twice", cc.DOUBLE_BILLING),
    ("Reclamo per conguaglio non dovuto", cc.BILLING_CORRECTION),
    ("la bolletta è troppo alta rispetto ai miei consumi", cc.BILLING_CORRECTION),
    ("L'importo della fattura è sbagliato", cc.BILLING_CORRECTION),
    ("the amount on my bill is wrong", cc.BILLING_CORRECTION),
    ("mi avete staccato la luce ieri sera senza nessun preavviso", cc.GENERAL),
    ("la bolletta non mi è mai arrivata", cc.GENERAL),  # a bill, but nothing to correct
    ("il tecnico non si è presentato due volte", cc.GENERAL),  # twice, but no bill
    ("Your technician left the meter cover broken", cc.GENERAL),
    ("", cc.GENERAL),
])
def test_the_kind_of_deadline_comes_from_what_the_customer_wrote(text, kind):
    assert cc.kind_of(text) == kind


# --- the clock -------------------------------------------------------------------------------

def test_every_complaint_is_answered_in_30_days_and_a_bill_corrected_in_its_own():
    """The reasoned answer has one deadline for every complaint; a billing dispute also shows
    the days its bill's correction may take (60, or 15 for double billing)."""
    received = rome(2026, 3, 1, 23, 30)  # late evening in Rome: still 1 March
    clocks = {kind: clock(kind, received, date(2026, 3, 1)) for kind in cc.KINDS}
    assert {kind: c.last_day for kind, c in clocks.items()} == dict.fromkeys(
        cc.KINDS, date(2026, 3, 31))
    assert {kind: c.correction_due for kind, c in clocks.items()} == {
        cc.GENERAL: None, cc.BILLING_CORRECTION: date(2026, 4, 30),
        cc.DOUBLE_BILLING: date(2026, 3, 16)}
    # an unknown kind (a row written by hand) counts as general
    assert clock("other", received, date(2026, 3, 1)).last_day == date(2026, 3, 31)
    # the day is Rome's: 23:30 UTC on 28 February is already 1 March there
    utc = datetime(2026, 2, 28, 23, 30, tzinfo=timezone.utc)
    assert clock(cc.GENERAL, utc, date(2026, 3, 1)).received_on == date(2026, 3, 1)


def test_days_left_to_the_last_day_then_late():
    received = rome(2026, 3, 1)
    first = clock(cc.GENERAL, received, date(2026, 3, 1))
    assert (first.days_left, first.late, first.indemnity) == (30, False, Decimal("0.00"))
    last = clock(cc.GENERAL, received, date(2026, 3, 31))
    assert (last.days_left, last.late, last.indemnity) == (0, False, Decimal("0.00"))
    after = clock(cc.GENERAL, received, date(2026, 4, 1))
    assert (after.days_left, after.late, after.indemnity) == (-1, True, Decimal("30.00"))
    assert first.on_time is None and not first.answered


@pytest.mark.parametrize("days_taken, owed", [
    (30, "0.00"), (31, "30.00"), (60, "30.00"), (61, "60.00"), (90, "60.00"), (91, "90.00"),
    (400, "90.00")])
def test_the_indemnity_is_one_two_or_three_times_the_base(days_taken, owed):
    received = rome(2026, 1, 10)
    waiting = clock(cc.GENERAL, received, received.date() + timedelta(days=days_taken))
    assert waiting.days_taken == days_taken and waiting.indemnity == Decimal(owed)
    answered = clock(cc.GENERAL, received, date(2027, 6, 1),
                     answered=received + timedelta(days=days_taken))
    assert answered.indemnity == Decimal(owed) and answered.days_left is None
    assert answered.on_time is (days_taken <= 30) and answered.late is (days_taken > 30)


def test_a_billing_dispute_owes_on_the_answers_days():
    received = rome(2026, 5, 4)
    at = lambda days: clock(cc.DOUBLE_BILLING, received,  # noqa: E731
                            received.date() + timedelta(days=days)).indemnity
    assert [at(15), at(16), at(30), at(31), at(61), at(91)] == [
        Decimal(x) for x in ("0.00", "0.00", "0.00", "30.00", "60.00", "90.00")]


def test_answered_on_time_up_to_midnight_of_the_last_day_in_rome():
    """The last day is 2026-03-29, the day summer time starts: it ends at 22:00 UTC."""
    received = rome(2026, 2, 27)
    deadline = cc.deadline_instant(cc.last_day(received))
    assert cc.last_day(received) == date(2026, 3, 29)
    assert deadline == datetime(2026, 3, 29, 22, 0, tzinfo=timezone.utc)
    assert cc.day_of_deadline(deadline) == date(2026, 3, 29)
    just_in = clock(cc.GENERAL, received, date(2026, 4, 2), answered=rome(2026, 3, 29, 23, 59))
    just_late = clock(cc.GENERAL, received, date(2026, 4, 2), answered=rome(2026, 3, 30, 0, 1))
    assert (just_in.on_time, just_in.late, just_in.indemnity) == (True, False, Decimal("0.00"))
    assert (just_late.on_time, just_late.late, just_late.indemnity) == (
        False, True, Decimal("30.00"))
    # a stored deadline is read back as the same last day
    stored = cc.clock_of(cc.GENERAL, received, deadline, None, date(2026, 3, 29))
    assert stored.last_day == date(2026, 3, 29) and stored.days_left == 0


def test_the_deadlines_and_the_indemnity_are_settings(settings):
    settings(complaint_answer_days=20, complaint_billing_correction_days=90,
             complaint_double_billing_days=10, complaint_indemnity_eur="25")
    received = rome(2026, 3, 1)
    assert cc.last_day(received) == date(2026, 3, 21)
    assert [clock(k, received, date(2026, 3, 1)).correction_due for k in cc.KINDS] == [
        None, date(2026, 5, 30), date(2026, 3, 11)]
    assert [clock(cc.DOUBLE_BILLING, received, date(2026, 3, 1) + timedelta(days=d)).indemnity
            for d in (20, 21, 41, 61)] == [Decimal(x) for x in ("0.00", "25.00", "50.00", "75.00")]


@pytest.mark.parametrize("name, value", [("COMPLAINT_ANSWER_DAYS", "0"),
                                         ("COMPLAINT_DOUBLE_BILLING_DAYS", "-3"),
                                         ("COMPLAINT_INDEMNITY_EUR", "-1"),
                                         ("COMPLAINT_INDEMNITY_EUR", "25.005")])
def test_a_wrong_deadline_or_amount_stops_with_its_name(settings, name, value):
    from bot.settings import get_settings

    settings(**{name: value})
    with pytest.raises(SystemExit, match=name):
        get_settings()


# --- stored with every complaint ---------------------------------------------------------------

def _import(tmp_path: Path, tickets: list[dict]) -> None:
    from bot.crm.importer import import_file

    doc = json.loads(EXAMPLE.read_text())
    doc["customers"][0]["tickets"] = tickets
    path = tmp_path / "tickets.json"
    path.write_text(json.dumps(doc))
    import_file(path)


def _ticket(ticket_id: str) -> m.Ticket:
    with session_scope() as s:
        return s.execute(select(m.Ticket).where(m.Ticket.ticket_id == ticket_id)).scalar_one()


def complaint(ticket_id: str, subject: str, opened: str, status: str = "open",
              updated: str | None = None) -> dict:
    return {"ticket_id": ticket_id, "kind": "complaint", "status": status, "subject": subject,
            "channel": "web", "opened_at": opened, "updated_at": updated, "eta": None}


def test_a_complaint_filed_with_the_bot_gets_its_deadline_at_once(database):
    from bot.crm.importer import import_file
    from bot.crm.service import open_ticket

    import_file(EXAMPLE)
    opened = open_ticket("C1000001", "complaint", "Doppio addebito", "web",
                         description="mi avete addebitato due volte la bolletta di ottobre")
    today = datetime.now(ROME).date()
    assert opened.answer_by == today + timedelta(days=30) == opened.eta
    row = _ticket(opened.ticket_id)
    assert row.complaint_kind == cc.DOUBLE_BILLING
    assert row.answer_due_at == cc.deadline_instant(opened.answer_by)
    assert row.answered_at is None
    # other tickets have no clock
    callback = open_ticket("C1000001", "callback", "Richiamata", "web", eta_days=1)
    assert callback.answer_by is None and _ticket(callback.ticket_id).answer_due_at is None


def test_an_imported_complaint_gets_its_clock_and_its_answer_from_the_crm(database, tmp_path,
                                                                         settings):
    _import(tmp_path, [complaint("T-2026-000201", "Bolletta con importo errato",
                                 "2026-03-01T10:00:00+01:00")])
    row = _ticket("T-2026-000201")
    assert row.complaint_kind == cc.BILLING_CORRECTION
    assert row.answer_due_at == cc.deadline_instant(date(2026, 3, 31))
    # the settings changing later do not move a deadline already given...
    settings(complaint_answer_days=90)
    _import(tmp_path, [complaint("T-2026-000201", "Bolletta con importo errato",
                                 "2026-03-01T10:00:00+01:00", status="in_progress",
                                 updated="2026-03-20T09:00:00+01:00")])
    assert _ticket("T-2026-000201").answer_due_at == cc.deadline_instant(date(2026, 3, 31))
    assert _ticket("T-2026-000201").answered_at is None
    # ... the CRM correcting the day it arrived does (with the days in force)
    _import(tmp_path, [complaint("T-2026-000201", "Bolletta con importo errato",
                                 "2026-03-02T10:00:00+01:00", status="in_progress",
                                 updated="2026-03-20T09:00:00+01:00")])
    assert _ticket("T-2026-000201").answer_due_at == cc.deadline_instant(date(2026, 5, 31))
    # resolved: answered at the CRM's moment of the change, kept by later updates
    _import(tmp_path, [complaint("T-2026-000201", "Bolletta con importo errato",
                                 "2026-03-02T10:00:00+01:00", status="resolved",
                                 updated="2026-04-15T16:30:00+02:00")])
    answered = datetime(2026, 4, 15, 14, 30, tzinfo=timezone.utc)
    assert _ticket("T-2026-000201").answered_at == answered
    _import(tmp_path, [complaint("T-2026-000201", "Bolletta con importo errato",
                                 "2026-03-02T10:00:00+01:00", status="closed",
                                 updated="2026-05-20T16:30:00+02:00")])
    assert _ticket("T-2026-000201").answered_at == answered


def test_a_complaint_imported_answered_without_a_moment_is_not_answered_today(database, tmp_path):
    """A first import of old complaints already resolved, with no `updated_at`: the moment of
    the answer is unknown, so none is made up (they would all count as answered today, late);
    a re-import that changes nothing keeps it unknown; a later change of status is the answer."""
    old = complaint("T-2024-000001", "Nessuna risposta", "2024-02-01T10:00:00+01:00",
                    status="resolved")
    _import(tmp_path, [old])
    assert _ticket("T-2024-000001").answered_at is None
    _import(tmp_path, [old])
    assert _ticket("T-2024-000001").answered_at is None
    _import(tmp_path, [complaint("T-2024-000001", "Nessuna risposta", "2024-02-01T10:00:00+01:00",
                                 status="closed", updated="2024-02-20T09:00:00+01:00")])
    assert _ticket("T-2024-000001").answered_at == datetime(2024, 2, 20, 8, 0,
                                                            tzinfo=timezone.utc)


def test_the_console_masks_a_complaint_before_cutting_it():
    """A value cut in half no longer looks like itself: the whole description is masked first;
    a subject stored already cut loses its last, partial, word."""
    from bot.analytics.complaints import SUBJECT_CHARS, masked_subject
    from bot.crm import models as m

    maria = m.Customer(customer_code="C1000001", first_name="Maria", last_name="Rossi",
                       email="maria.rossi@example.it", phone="+393471112233")
    text = ("x" * (SUBJECT_CHARS - 30) + " scrivete a giuseppe.verdi1970@libero.it o al "
            "347 111 2233, codice fiscale RSSMRA85A01H501U")
    shown = masked_subject(m.Ticket(subject=text[:SUBJECT_CHARS], description=text), maria)
    assert len(shown) <= SUBJECT_CHARS + 1 and shown.endswith("…")
    assert "giuseppe" not in shown and "verdi" not in shown and "347" not in shown
    cut = masked_subject(m.Ticket(subject=text[:SUBJECT_CHARS], description=None), maria)
    assert "giuseppe" not in cut and "verdi" not in cut and "@li" not in cut


# --- the console's list and the dashboard's figures -----------------------------------------

TODAY = date(2026, 6, 10)
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=ROME)


@pytest.fixture
def complaints(database, tmp_path):
    """Maria's complaints on 2026-06-10: waiting (one late by 2 days, one late by 40 days, one
    due today, one with 20 days left), answered (on time, late, before the period), and a
    complaint resolved without an answer moment from before the clocks."""
    _import(tmp_path, [
        complaint("T-2026-000301", "Mi avete staccato la luce, scrivete a maria.rossi@example.it",
                  "2026-05-09T10:00:00+02:00"),  # general: last day 06-08, late by 2
        complaint("T-2026-000302", "Doppia fatturazione di aprile",
                  "2026-05-11T10:00:00+02:00"),  # double billing: last day 06-10
        complaint("T-2026-000303", "Il tecnico non è venuto", "2026-05-31T10:00:00+02:00"),
        complaint("T-2026-000304", "Il contatore fa rumore", "2026-04-01T10:00:00+02:00",
                  status="in_progress"),  # general: last day 05-01, late by 40 days
        complaint("T-2026-000305", "Risposta lenta", "2026-05-01T10:00:00+02:00",
                  status="resolved", updated="2026-05-31T23:30:00+02:00"),  # on time (day 30)
        complaint("T-2026-000306", "Doppio addebito sulla bolletta",
                  "2026-05-01T10:00:00+02:00", status="closed",
                  updated="2026-06-01T09:00:00+02:00"),  # double billing: 31 days of 30
        complaint("T-2026-000307", "Nessuna risposta", "2026-03-01T10:00:00+01:00",
                  status="closed", updated="2026-04-20T09:00:00+02:00"),  # answered in April
    ])
    return database


def test_the_console_lists_waiting_complaints_by_time_left(complaints):
    from bot.analytics.complaints import waiting_complaints

    with session_scope() as db:
        result = waiting_complaints(db, TODAY, NOW)
    rows = result["rows"]
    assert [r["ticket_id"] for r in rows] == ["T-2026-000304", "T-2026-000301",
                                              "T-2026-000302", "T-2026-000303"]
    assert [(r["days_left"], r["late"], r["indemnity_eur"]) for r in rows] == [
        (-40, True, "60.00"), (-2, True, "30.00"), (0, False, "0.00"), (20, False, "0.00")]
    assert [r["kind"] for r in rows] == [cc.GENERAL, cc.GENERAL, cc.DOUBLE_BILLING, cc.GENERAL]
    assert rows[1]["last_day"] == "2026-06-08" and rows[1]["received_on"] == "2026-05-09"
    assert rows[1]["correction_due"] is None and rows[2]["correction_due"] == "2026-05-26"
    assert (result["total"], result["late"], result["indemnity_owed_eur"]) == (4, 2, "90.00")
    # personal data in what the customer wrote is masked
    assert rows[1]["subject"] == "Mi avete staccato la luce, scrivete a [EMAIL]"
    assert "maria" not in json.dumps(result).lower()
    # pages
    with session_scope() as db:
        second = waiting_complaints(db, TODAY, NOW, page=2, per_page=3)
        assert [r["ticket_id"] for r in second["rows"]] == ["T-2026-000303"]
        assert second["pages"] == 2 and second["total"] == 4
        with pytest.raises(ValueError):
            waiting_complaints(db, TODAY, NOW, per_page=0)


def test_the_dashboard_counts_complaints_answered_on_time(complaints):
    from bot.analytics.complaints import answered_on_time, compare

    with session_scope() as db:
        may_june = answered_on_time(db, date(2026, 5, 11), date(2026, 6, 9))
        april = answered_on_time(db, date(2026, 4, 1), date(2026, 4, 30))
        both = compare(db, date(2026, 5, 11), date(2026, 6, 9))
        nothing = answered_on_time(db, date(2026, 1, 1), date(2026, 1, 31))
    # 305 answered on its 30th day (on time), 306 on its 31st (late, once the base)
    assert (may_june["answered"], may_june["on_time"], may_june["late"]) == (2, 1, 1)
    assert may_june["on_time_rate"] == 0.5 and may_june["indemnities_eur"] == "30.00"
    # 307 answered on its 50th day of 30: late, once the base
    assert (april["answered"], april["on_time"], april["indemnities_eur"]) == (1, 0, "30.00")
    assert both["current"] == may_june
    assert both["previous"]["from"] == "2026-04-11" and both["previous"]["answered"] == 1
    assert nothing["answered"] == 0 and nothing["on_time_rate"] is None


# --- the bot: the date when a complaint is filed, the days left in its status -----------------

def test_the_reply_to_a_complaint_gives_the_date_of_the_answer(seeded):
    """Italian through Rasa's own form machinery and response rendering; English from the
    action, with the date as the customer's locale writes it."""
    import asyncio

    from rasa_sdk.executor import CollectingDispatcher

    from actions.complaints import ActionComplaintSubmit
    from bot import i18n
    from tests.test_actions import tracker
    from tests.test_status_vs_new import MARIA, Conversation, responses, tickets

    today = datetime.now(ROME).date()
    c = Conversation(MARIA)
    c.say("voglio fare un reclamo", "file_complaint", "complaint_form")
    said = c.say("mi avete addebitato due volte la stessa bolletta", "file_complaint",
                 "complaint_form", "action_complaint_submit")
    assert responses(said) == ["utter_complaint_opened"]
    by = i18n.day(today + timedelta(days=30), "it")  # double billing: answered in 30 days too
    assert f"Ti risponderemo per iscritto entro il giorno {by}" in said[0]["text"]
    [ticket] = tickets(MARIA, "complaint")
    assert ticket.complaint_kind == cc.DOUBLE_BILLING and ticket.eta == today + timedelta(days=30)

    d = CollectingDispatcher()
    text = "Your technician left the meter cover broken after the visit on Monday"
    asyncio.run(ActionComplaintSubmit().run(d, tracker(slots={
        "customer_code": "C1000004", "verified": True, "language": "en",
        "complaint_text": text}), {}))
    [message] = d.messages
    assert message["response"] == "utter_complaint_opened"
    assert message["answer_by"] == i18n.day(today + timedelta(days=30), "en")  # general
    assert message["answer_by"] == (today + timedelta(days=30)).strftime("%-d %B %Y")


@pytest.fixture
def seeded(demo_sqlite):
    return demo_sqlite  # the demo data (tests/conftest.py)


def test_the_status_of_a_complaint_says_the_days_left_or_the_indemnity_owed(seeded):
    from bot import i18n
    from tests.test_status_vs_new import MARIA, open_ticket, status

    today = datetime.now(ROME).date()
    late = open_ticket(MARIA, "complaint", days_ago=65, description="Il contatore fa rumore")
    last = open_ticket(MARIA, "complaint", days_ago=30, description="Nessuno mi ha risposto")
    fresh = open_ticket(MARIA, "complaint", days_ago=2,
                        description="La bolletta di marzo ha un importo sbagliato")
    expected = open_ticket(MARIA, "complaint", days_ago=3, description="Lettura sbagliata")
    slipped = open_ticket(MARIA, "complaint", days_ago=10, description="Nessuna risposta")
    from sqlalchemy import update

    def noon(days_ago: int) -> datetime:  # whatever the hour and daylight saving time now
        return datetime.combine(today - timedelta(days=days_ago), datetime.min.time(),
                                ROME).replace(hour=12)

    with session_scope() as session:  # opened at noon; the dates expected to answer them by
        for ticket_id, days_ago, eta in ((late, 65, today - timedelta(days=40)),
                                         (last, 30, None), (fresh, 2, None),
                                         (expected, 3, today + timedelta(days=5)),
                                         (slipped, 10, today - timedelta(days=2))):
            session.execute(update(m.Ticket).where(m.Ticket.ticket_id == ticket_id).values(
                opened_at=noon(days_ago), eta=eta,
                answer_due_at=cc.deadline_instant(cc.last_day(noon(days_ago)))))
    said = {s["ticket_id"]: s for s in status(MARIA, "a che punto sono i miei reclami?",
                                              ["complaint"], persona="family")[1:]}
    assert {s["response"] for s in said.values()} == {"utter_complaint_line"}
    assert said[late]["answer"] == (
        f"risposta in ritardo (termine: {i18n.day(today - timedelta(days=35), 'it')}): "
        "potresti avere diritto a un indennizzo automatico, oggi di 60,00\xa0€, che verrebbe "
        "accreditato in bolletta")  # 65 > 2 x 30
    assert said[last]["answer"] == f"risposta entro oggi, {i18n.day(today, 'it')}"
    assert said[fresh]["answer"] == (  # a billing dispute: answered in 30 days too
        f"risposta entro il giorno {i18n.day(today + timedelta(days=28), 'it')}, "
        "giorni rimasti: 28")
    # the expected date first, then the deadline; a late one is late whatever was expected
    assert said[expected]["answer"] == (
        f"chiusura prevista il {i18n.day(today + timedelta(days=5), 'it')} (risposta entro il "
        f"giorno {i18n.day(today + timedelta(days=27), 'it')}, giorni rimasti: 27)")
    # an expected date already past is not announced: the deadline alone
    assert said[slipped]["answer"] == (
        f"risposta entro il giorno {i18n.day(today + timedelta(days=20), 'it')}, "
        "giorni rimasti: 20")
    english = {s["ticket_id"]: s for s in status(MARIA, "my complaints?", ["complaint"],
                                                 language="en", persona="family")[1:]}
    assert english[late]["answer"].startswith("answer overdue (deadline: ")
    assert "you may be entitled to an automatic compensation, €60.00 as of today" in english[
        late]["answer"]
    assert english[fresh]["answer"].endswith("days left: 28")
    assert english[expected]["answer"].startswith(
        f"expected by {i18n.day(today + timedelta(days=5), 'en')} (answer by ")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_before_the_clocks(request, monkeypatch, tmp_path):
    """A database migrated up to the revision before the complaint clocks."""
    from alembic import command

    from bot.persistence.db import alembic_config
    from tests.conftest import create_pg_database, drop_pg_database, pg_url, use_database

    if request.param == "sqlite":
        url, name = f"sqlite:///{tmp_path / 'old.db'}", None
    else:
        name = create_pg_database()
        url = pg_url(name)
    use_database(monkeypatch, url, tmp_path / "var")
    command.upgrade(alembic_config(url), "0009")
    yield url
    from bot.persistence import db

    db.get_engine(url).dispose()
    db.get_engine.cache_clear()
    if name:
        drop_pg_database(name)


def test_the_migration_gives_existing_complaints_the_30_days_they_were_promised(
        database_before_the_clocks):
    from sqlalchemy import create_engine, text

    from bot.persistence.db import migrate

    engine = create_engine(database_before_the_clocks, future=True)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO customers (id, customer_code, first_name, last_name, language, persona, "
            "vip, preferred_channel, paperless, created_at, updated_at) VALUES (1, 'C1000001', "
            "'Maria', 'Rossi', 'it', 'family', false, 'web', false, '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00')"))
        for tid, kind, status, opened, updated in [
                ("T-2026-000001", "complaint", "open", "2026-03-01 23:30:00", None),  # 2 March
                ("T-2026-000002", "complaint", "resolved", "2026-03-01 09:00:00",
                 "2026-03-20 10:00:00"),
                ("T-2026-000003", "request", "closed", "2026-03-01 09:00:00", None)]:
            conn.execute(text(
                "INSERT INTO tickets (customer_id, ticket_id, kind, status, subject, channel, "
                "opened_at, updated_at) VALUES (1, :tid, :kind, :status, 'Doppia fatturazione', "
                "'web', :opened, :updated)"),
                {"tid": tid, "kind": kind, "status": status, "opened": opened,
                 "updated": updated})
    engine.dispose()
    migrate(database_before_the_clocks)
    rows = {t.ticket_id: t for t in _all_tickets()}
    assert rows["T-2026-000001"].complaint_kind == cc.GENERAL  # whatever it says: 30 days
    assert rows["T-2026-000001"].answer_due_at == cc.deadline_instant(date(2026, 4, 1))
    assert rows["T-2026-000002"].answered_at == datetime(2026, 3, 20, 10, 0, tzinfo=timezone.utc)
    assert rows["T-2026-000003"].answer_due_at is None and rows["T-2026-000003"].answered_at is None


def _all_tickets() -> list[m.Ticket]:
    with session_scope() as s:
        return list(s.execute(select(m.Ticket)).scalars())
