"""The conversation suite without a stack: every file fits the format, the suite is as large and
as balanced as promised, every canonical intent is covered in both languages, and every fact and
assumption holds on the demo data (bot.crm.seed), so that a failure on the stack is the bot's."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from bot import i18n
from tests.conversations import facts as f
from tests.conversations.runner import (
    ASKS,
    HANDOVER,
    NAMED,
    RESERVED,
    apply_given,
    assign_customers,
    effective_requires,
    load_domain,
    mutations,
    snapshot,
    unmet_requirements,
)
from tests.conversations.schema import (
    Conversation,
    ConversationFileError,
    files,
    load_all,
    load_file,
)

CONVERSATIONS = load_all()
BY_ID = {c.id: c for c in CONVERSATIONS}


def canonical_intents() -> list[str]:
    """The intents of ../shared/intents.md (the public interface), as the NLU tests list them
    (tests/test_nlu.py; `cancel` is Sportello's own addition, not in that table)."""
    from tests.test_nlu import INTENTS

    return sorted(INTENTS - {"cancel"})


# --- the files -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", files(), ids=lambda p: p.name)
def test_every_file_fits_the_format(path):
    assert load_file(path)


def test_a_typo_in_a_check_is_refused(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("- id: x\n  lang: it\n  customer: C1000001\n  skills: [greet]\n"
                   "  turns:\n    - user: ciao\n      expect:\n        - say: {fact: first_name}\n")
    with pytest.raises(ConversationFileError, match="say"):
        load_file(bad)


def test_an_unknown_fact_or_parameter_is_refused():
    base = {"id": "x", "lang": "it", "customer": "C1000001", "skills": ["check_bill"]}
    with pytest.raises(ValueError, match="unknown fact"):
        Conversation(**base, turns=[{"user": "x", "expect": [{"says": {"fact": "bill_amout"}}]}])
    with pytest.raises(ValueError, match="takes no"):
        Conversation(**base, turns=[{"user": "x", "expect": [
            {"says": {"fact": "tariff", "month": 3}}]}])
    with pytest.raises(ValueError, match="placeholder"):
        Conversation(**base, turns=[{"user": "la lettura e {lettura}"}])


def test_ids_are_unique():
    counts = Counter(c.id for c in CONVERSATIONS)
    assert [i for i, n in counts.items() if n > 1] == []


def test_at_least_150_conversations():
    assert len(CONVERSATIONS) >= 150


def test_about_half_in_each_language():
    share = sum(c.lang == "it" for c in CONVERSATIONS) / len(CONVERSATIONS)
    assert 0.4 <= share <= 0.6, f"Italian share {share:.2f}"


def test_multi_turn_conversations_are_the_rule():
    multi = sum(len(c.turns) > 1 for c in CONVERSATIONS)
    assert multi / len(CONVERSATIONS) >= 0.5


def test_every_canonical_intent_is_covered_in_both_languages():
    intents = canonical_intents()
    assert len(intents) >= 25
    for lang in ("it", "en"):
        tagged = {s for c in CONVERSATIONS if c.lang == lang for s in c.skills}
        assert set(intents) - tagged == set(), lang


def test_skills_are_canonical_intents():
    intents = set(canonical_intents())
    unknown = {(c.id, s) for c in CONVERSATIONS for s in c.skills if s not in intents}
    assert unknown == set()


def test_domain_responses_named_by_checks_exist():
    responses = load_domain()["responses"]
    named = {n for names in ASKS.values() for n in names} | set(HANDOVER)
    named |= {n for c in CONVERSATIONS for t in c.turns for e in t.expect
              for n in e.says_response or []}
    assert named - set(responses) == set()
    assert any("out_of_scope" in n for n in responses)


def test_named_demo_customers_are_only_read():
    """The demo customers other tests rely on (tests/integration, tests/security) are read and
    get readings, but no tickets, codes, contact, IBAN or paperless changes from the suite."""
    for c in CONVERSATIONS:
        if c.customer in NAMED:
            assert mutations(c) - {"ticket:outage"} == set(), c.id
            if "report_outage" in c.skills:  # a known outage at his address: no ticket
                assert c.customer == "C1000002" and any(
                    a.tickets_opened == 0 for a in c.after), c.id
        assert c.customer not in RESERVED, c.id


def test_conversations_are_written_from_the_customer_side():
    """Realistic writing: the suite has typos, abbreviations, capitals and data in messages."""
    text = "\n".join(t.user for c in CONVERSATIONS for t in c.turns)
    for marker in (" nn ", " xke ", " cmq ", "PLZ", "AIUTO", "{otp}", "IT30S", "@example", "{"):
        assert marker.lower() in text.lower(), marker
    assert sum(len(t.user) > 90 for c in CONVERSATIONS for t in c.turns) >= 30


# --- the facts and assumptions on the demo data --------------------------------------------

def _session(url: str) -> Session:
    from bot.persistence.db import get_sessionmaker

    return get_sessionmaker(url)()


def _refs(c: Conversation):
    for t in c.turns:
        for e in t.expect:
            yield from e.refs()
    for a in c.after:
        if a.reading_stored:
            yield a.reading_stored.value


@pytest.fixture(scope="module")
def assignment(demo_db):
    """Who each conversation is about on the demo data (as the stack run chooses)."""
    session = _session(demo_db)
    try:
        return assign_customers(CONVERSATIONS, session)
    finally:
        session.close()


def test_every_conversation_gets_a_customer(assignment):
    """Every `pick` finds a generated customer that fits and is free; none is a named one."""
    assert set(assignment) == set(BY_ID)
    for c in CONVERSATIONS:
        if c.customer == "pick":
            assert assignment[c.id] not in NAMED | RESERVED


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=lambda c: c.id)
def test_assumptions_and_facts_hold_on_the_demo_data(demo_db, assignment, conversation):
    """What the conversation assumes of its customer is true, and every fact it names can be
    computed before it runs (facts about tickets it opens are checked on the stack only)."""
    session = _session(demo_db)
    customer = assignment[conversation.id]
    customer = None if customer == "anonymous" else customer
    try:
        if customer:
            assert unmet_requirements(session, customer, effective_requires(conversation)) == []
            apply_given(session, conversation, customer)
        ctx = f.FactContext(session, customer, conversation.lang, "format-test",
                            frozenset(snapshot(session, customer, "format-test").tickets),
                            load_domain())
        for name, ref in conversation.vars.items():
            value = f.compute(ref.fact, ctx, ref.params())
            assert value.typed(conversation.lang).strip(), name
        for ref in _refs(conversation):
            if ref.fact and ref.fact != "new_ticket_id":
                assert f.compute(ref.fact, ctx, ref.params()).said(ctx.lang, ctx.domain)
    finally:
        session.rollback()
        session.close()


def test_readings_agree_with_the_bots_check(demo_db, assignment):
    """`next_reading` is accepted by bot.crm.service.check_reading, `typo_reading` is refused
    as implausible and `lower_reading` as lower, for every supply the suite reads."""
    from bot.crm.service import check_reading

    session = _session(demo_db)
    try:
        for c in CONVERSATIONS:
            for ref in c.vars.values():
                if not ref.fact.endswith("_reading") or ref.fact == "last_reading":
                    continue
                ctx = f.FactContext(session, assignment[c.id], c.lang)
                value = f.compute(ref.fact, ctx, ref.params()).raw
                supply = f.active_supply(ctx, ref.supply).supply_id
                check = check_reading(assignment[c.id], supply, Decimal(value))
                wanted = {"next_reading": "", "typo_reading": "implausible",
                          "lower_reading": "lower"}[ref.fact]
                assert check.problem == wanted, (c.id, ref.fact, value, check)
    finally:
        session.close()


def test_next_reading_stays_plausible_after_a_reading_today(demo_db):
    """After a self-reading today only a day's consumption is plausible: the fact follows."""
    from bot.crm.service import check_reading, store_reading

    session = _session(demo_db)
    ctx = f.FactContext(session, "C1000006", "it")
    first = f.next_reading(ctx, plus=500).raw
    session.close()
    from bot.crm.card import read_identity_card

    [supply] = [s.supply_id for s in read_identity_card("C1000006").supplies]
    assert store_reading("C1000006", supply, Decimal(first), "web").ok
    session = _session(demo_db)
    second = f.next_reading(f.FactContext(session, "C1000006", "it"), plus=500).raw
    session.close()
    assert second > first and check_reading("C1000006", supply, Decimal(second)).ok


def test_facts_match_the_identity_card(demo_db):
    """Sensible values, formatted the way the actions format them."""
    from bot.crm.card import read_identity_card

    session = _session(demo_db)
    try:
        def said(customer, name, lang="it", **params):
            ctx = f.FactContext(session, customer, lang, domain=load_domain())
            return f.compute(name, ctx, params).said(lang, ctx.domain)

        maria = read_identity_card("C1000001")
        overdue = sorted(maria.open_bills, key=lambda b: b.due_date)[0]
        assert said("C1000001", "open_bill_amount") == i18n.money(overdue.amount_eur, "it")
        assert said("C1000001", "open_bill_due_date") == i18n.day(overdue.due_date, "it")
        assert said("C1000001", "open_bill_number") == overdue.number
        assert said("C1000001", "email_masked") == "m***@example.it"
        assert said("C1000001", "supply_code").startswith("IT001E")
        assert said("C1000001", "payment_link").endswith(overdue.number)

        john = read_identity_card("C1000004")
        gas = next(s for s in john.supplies if s.type == "gas")
        assert said("C1000004", "tariff", "en", supply="gas") == gas.tariff
        assert said("C1000004", "supply_code", "en", supply="gas") == gas.supply_id
        assert said("C1000004", "open_bills_total", "en").startswith("€")
        october = next(b for b in john.bills if b.supply_type == "electricity"
                       and b.period_start.month == 10)
        assert (said("C1000004", "bill_amount", "en", supply="electricity", month=10)
                == i18n.money(october.amount_eur, "en"))
        with pytest.raises(f.FactError, match="which supply"):
            said("C1000004", "bill_amount", "en", month=10)

        giuseppe = read_identity_card("C1000002")
        assert said("C1000002", "outage_end") == i18n.moment(giuseppe.outages[0].expected_end, "it")
        assert said("C1000002", "ticket_id", kind="outage") == giuseppe.open_tickets[0].ticket_id
        assert said("C1000002", "bill_amount") == i18n.money(giuseppe.bills[0].amount_eur, "it")
        with pytest.raises(f.FactError):
            said("C1000002", "open_bill_amount")

        laura = read_identity_card("C1000003")
        complaint = laura.open_tickets[0]
        assert said("C1000003", "ticket_id", kind="complaint") == complaint.ticket_id
        assert said("C1000003", "ticket_eta", kind="complaint") == i18n.day(complaint.eta, "it")
        assert said("C1000003", "ticket_status", kind="complaint") == "in lavorazione"

        last_month = f._month_start(f.FactContext(session, None).today, 1)
        assert said(None, "month_name", months_ago=1) == i18n.day(last_month, "it").split()[1]
        assert said(None, "gas_emergency_number") == "800 900 999"
    finally:
        session.close()


def test_money_and_numbers_are_typed_as_customers_type_them():
    assert f.Value(Decimal("71.60"), "money").typed("it") == "71,60"
    assert f.Value(Decimal("71.60"), "money").typed("en") == "71.60"
    assert f.Value(Decimal("30443"), "number").typed("it") == "30443"
    assert f.Value(Decimal("30443"), "number").said("it") == "30.443"
    assert f.Value(datetime(2026, 12, 4, 12, tzinfo=timezone.utc), "moment").said("it") == \
        "4 dicembre, 13:00"
