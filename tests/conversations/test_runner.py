"""The runner itself, with a scripted bot on the demo data (no stack): the right reply passes;
a wrong fact, a silent turn, a duplicate ticket, a question asked again are each reported at
their turn; a reworded out-of-scope reply is still recognised; one-time codes come from the
outbox."""

from __future__ import annotations

import uuid
from decimal import Decimal

from bot import i18n
from bot.crm.card import read_identity_card
from bot.persistence.db import session_scope
from tests.conversations.runner import Responses, load_domain, run_conversation, summarise
from tests.conversations.schema import Conversation

RESPONSES = Responses(load_domain())


def conversation(**fields) -> Conversation:
    base = {"id": "runner-test", "lang": "it", "customer": "C1000001", "skills": ["check_bill"]}
    return Conversation(**{**base, **fields})


def scripted(*turns):
    """A bot that answers turn N with `turns[N]`: a text, a list of texts, or a function of
    (sender, text) returning texts (to do what the real bot does to the history)."""
    queue = list(turns)
    heard = []

    def talk(sender, text, token):
        heard.append((text, token))
        answer = queue.pop(0)
        if callable(answer):
            answer = answer(sender, text)
        answer = [answer] if isinstance(answer, str) else answer
        return [{"recipient_id": sender, "text": t} for t in answer]

    talk.heard = heard
    return talk


def run(conv, talk, customer=None):
    return run_conversation(conv, talk, session_scope, lambda code: f"token-{code}",
                            customer=customer, responses=RESPONSES)


def test_the_right_facts_pass_and_the_token_goes_with_every_message(demo_db):
    bill = sorted(read_identity_card("C1000001").open_bills, key=lambda b: b.due_date)[0]
    amount, due = i18n.money(bill.amount_eur, "it"), i18n.day(bill.due_date, "it")
    conv = conversation(turns=[
        {"user": "quanto devo pagare?", "expect": [
            {"says": [{"fact": "open_bill_amount"}, {"fact": "open_bill_due_date"}]}]},
        {"user": "grazie"}])
    talk = scripted([f"Hai una bolletta da pagare: {amount}.", f"• {bill.number}: scadenza {due}"],
                    "Prego!")
    result = run(conv, talk)
    assert result.passed, result.report()
    assert [token for _, token in talk.heard] == ["token-C1000001"] * 2


def test_a_wrong_fact_fails_at_its_turn(demo_db):
    card = read_identity_card("C1000006")
    october = next(b for b in card.bills if b.period_start.month == 10)
    other = next(b for b in card.bills if b.amount_eur != october.amount_eur)
    conv = conversation(customer="C1000006", skills=["explain_bill"], turns=[
        {"user": "XKE LA BOLLETTA DI OTTOBRE E COSI ALTA???", "expect": [
            {"says": {"fact": "bill_amount", "month": 10}}]}])
    result = run(conv, scripted(f"L'ultima bolletta è di {i18n.money(other.amount_eur, 'it')}."))
    assert not result.passed
    assert [(f.turn, f.check) for f in result.failures] == [(1, "says")]
    assert i18n.money(october.amount_eur, "it").replace("\xa0", " ") in result.report()


def test_a_silent_turn_fails_unless_with_an_agent(demo_db):
    conv = conversation(turns=[{"user": "ciao"}, {"user": "ci sei?"}])
    result = run(conv, scripted("Ciao Maria!", []))
    assert result.silent_turns == 1
    assert [(f.turn, f.check) for f in result.failures] == [(2, "never_silent")]
    assert "(silent)" in result.report()


def test_asked_again_and_out_of_scope_are_recognised_by_the_domain_texts(demo_db):
    conv = conversation(customer="anonymous", skills=["out_of_scope"], turns=[
        {"user": "la bolletta dell'acqua?", "expect": [{"out_of_scope": True}]},
        {"user": "IT60X0542811101000000123456", "expect": [{"not_asks_for": "iban"}]}])
    reworded = "Questo non è qualcosa che posso fare qui: Luce Nord Energia fornisce luce e gas."
    iban_question = "Scrivimi l'IBAN del conto su cui addebitare le bollette (intestato a te)."
    result = run(conv, scripted(reworded, iban_question))
    assert [(f.turn, f.check) for f in result.failures] == [(2, "not_asks_for")]
    assert RESPONSES.out_of_scope(["Sorry, that's not something I can do here: Luce Nord "
                                   "Energia supplies electricity and gas."])
    assert not RESPONSES.out_of_scope(["L'ultima bolletta luce è di 44,47 €."])


def test_a_second_ticket_of_the_same_kind_is_a_duplicate(demo_db):
    from bot.crm.service import open_ticket

    def opens(sender, text):
        t = open_ticket("C1000103", "outage", "Guasto", "web", conversation_id=sender)
        return f"Ho aperto la segnalazione {t.ticket_id}."

    conv = conversation(customer="pick", skills=["report_outage"], turns=[
        {"user": "non ho corrente", "expect": [{"says": {"fact": "new_ticket_id",
                                                         "kind": "outage"}}]},
        {"user": "novita?"}],
        after=[{"tickets_opened": {"kind": "outage", "count": 1}}])
    result = run(conv, scripted(opens, opens), customer="C1000103")
    assert result.duplicate_tickets == 1
    assert {f.check for f in result.failures} == {"tickets_opened", "no_duplicate_tickets"}


def test_readings_and_one_time_codes(demo_db):
    """{otp} is the code the bot just sent (read from the outbox); the reading computed when
    the conversation began is the one checked in the history afterwards."""
    from bot.crm.service import issue_otp, store_reading

    card = read_identity_card("C1000006")
    supply = card.active_supplies[0].supply_id
    sent = {}

    def sends_code(sender, text):
        assert text == "C1000006"
        assert issue_otp("C1000006", sender).sent
        return "Ti ho inviato un codice di verifica di 6 cifre. Scrivimelo qui."

    def checks_code(sender, text):
        with session_scope() as s:
            from tests.conversations.runner import one_time_code

            sent["code"] = one_time_code(s, "C1000006", 0)
        assert text == sent["code"]
        return "Grazie Anna, ti ho riconosciuto. Qual è la lettura?"

    def stores(sender, text):
        store_reading("C1000006", supply, Decimal(text), "web")
        return f"Ho registrato la lettura {i18n.number(Decimal(text), 'it')} kWh."

    conv = conversation(customer="C1000006", signed_in=False, skills=["submit_meter_reading"],
                        vars={"lettura": {"fact": "next_reading", "plus": 30}},
                        turns=[{"user": "{code}"}, {"user": "{otp}"},
                               {"user": "{lettura}", "expect": [{"says": {"var": "lettura"}}]}],
                        after=[{"reading_stored": {"value": {"var": "lettura"}}},
                               {"tickets_opened": 0}])
    talk = scripted(sends_code, checks_code, stores)
    result = run(conv, talk)
    assert result.passed, result.report()
    assert [token for _, token in talk.heard] == [None] * 3  # not signed in


def test_summary_per_language(demo_db):
    ok = run(conversation(id="a", turns=[{"user": "ciao"}]), scripted("Ciao!"))
    silent = run(conversation(id="b", lang="en", customer="C1000004", turns=[{"user": "hi"}]),
                 scripted([]))
    summary = summarise([ok, silent])
    assert summary["it"]["task_done_share"] == 1.0 and summary["it"]["silent_turns"] == 0
    assert summary["en"]["task_done_share"] == 0.0 and summary["en"]["failed"] == ["b"]
    assert summary["en"]["silent_turns"] == 1


def test_a_missing_assumption_stops_before_talking(demo_db):
    conv = conversation(requires={"paperless": True}, turns=[{"user": "ciao"}])
    talk = scripted("Ciao!")
    result = run(conv, talk)
    assert result.aborted and talk.heard == []
    assert result.failures[0].check == "requires"


def test_given_tickets_are_there_before_the_first_message(demo_db):
    sender = f"given-{uuid.uuid4().hex[:6]}"
    conv = conversation(customer="pick", skills=["ticket_status"],
                        given=[{"ticket": {"kind": "callback", "subject": "Richiamata"}}],
                        turns=[{"user": "mi avete richiamato?", "expect": [
                            {"says": {"fact": "ticket_id", "kind": "callback"}}]}],
                        after=[{"tickets_opened": 0}])

    def status(sender_, text):
        tid = next(t.ticket_id for t in read_identity_card("C1000110").open_tickets
                   if t.kind == "callback")
        return f"• {tid}: aperta"

    result = run_conversation(conv, scripted(status), session_scope, lambda c: "t",
                              customer="C1000110", sender=sender, responses=RESPONSES)
    assert result.passed, result.report()


def test_benchmark_section_reports_per_language(demo_db):
    """bench/conversations.py writes what the suite measured, per language, with the machine."""
    from bench.conversations import figures, section

    ok = run(conversation(id="a", turns=[{"user": "ciao"}]), scripted("Ciao!"))
    failed = run(conversation(id="b", lang="en", customer="C1000004", turns=[{"user": "hi"}]),
                 scripted([]))
    lines = "\n".join(section({"conversations": figures([ok, failed], 3.2, "2 cores", "m")}))
    assert "2 cores" in lines and "| it | 1 | 100.0% (1) | 0 | 0 |" in lines
    assert "| en | 1 | 0.0% (0) | 1 | 0 |" in lines and "`b`" in lines
    assert "not measured yet" in section({})[0]
