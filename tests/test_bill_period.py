"""Bill questions about a period: a month ("la bolletta di ottobre") or a bill number selects that
bill in explain_bill, check_bill and pay_bill; a period without a bill says which bills there
are, never another bill's answer. Actions run against the seeded demo database."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import pytest
import ujson
from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa_sdk.executor import CollectingDispatcher

from actions.bills import (
    ActionCheckBill,
    ActionExplainBill,
    ActionPayBill,
    Period,
    covers_month,
    month_of,
    normalise_bill_number,
    parse_month,
    select_bills,
)
from bot import i18n
from bot.crm.card import BillView, read_identity_card
from tests.conftest import use_database
from tests.test_actions import tracker

MONTHS_IT = ["gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto",
             "settembre", "ottobre", "novembre", "dicembre"]
MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December"]


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load("domain")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """The demo data, seeded once for this module (the answers only read it)."""
    from bot.crm.seed import seed_demo
    from bot.persistence.db import get_engine, migrate
    from bot.settings import reset_settings

    tmp = tmp_path_factory.mktemp("bills")
    url = f"sqlite:///{tmp / 'crm.db'}"
    with pytest.MonkeyPatch.context() as mp:
        use_database(mp, url, tmp / "var")
        migrate(url)
        seed_demo()
        yield url
        get_engine(url).dispose()
    reset_settings()
    get_engine.cache_clear()


def bill(number, start, end, supply="S1", kind="electricity", status="paid") -> BillView:
    return BillView(number, supply, kind, start, end, end, end, Decimal("10"), status, False)


def ask(action, code, text, intent, *, month=None, number=None, supply=None, language="it",
        persona=None, slots=None, domain=None):
    """Run `action` for the customer's message (its entities as the NLU gives them)."""
    entities = []
    if month:
        entities.append({"entity": "month", "value": month,
                         "start": text.lower().find(month.lower())})
    if number:
        entities.append({"entity": "bill_number", "value": number, "start": text.find(number)})
    if supply:
        entities.append({"entity": "supply_type", "value": supply, "start": 0})
    t = tracker(slots={"verified": True, "customer_code": code, "language": language,
                       "persona": persona, **(slots or {})},
                text=text, intent=intent, entities=entities)
    d = CollectingDispatcher()
    events = asyncio.run(action.run(d, t, domain.as_dict()))
    return d.messages, {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def render(domain, messages, persona=None, language="it") -> list[str]:
    """The texts as Rasa writes them, after the values travelled as JSON (as from the action
    server: a Decimal would arrive as a float)."""
    nlg = TemplatedNaturalLanguageGenerator(domain.responses)
    out = []
    for m in ujson.loads(ujson.dumps(messages)):
        values = {k: v for k, v in m.items() if k not in ("response", "text", "buttons",
                                                          "elements", "custom", "template",
                                                          "image", "attachment")}
        text = nlg.generate_from_slots(m["response"], {"persona": persona, "language": language},
                                       "rest", **values)["text"]
        assert "{" not in text, text  # every variable of the text was given
        out.append(text)
    return out


def responses(messages) -> list[str]:
    return [m["response"] for m in messages]


# --- reading the period -------------------------------------------------------------------

@pytest.mark.parametrize("value, month", [
    ("ottobre", 10), ("OTTOBRE", 10), ("ott.", 10), ("Sept", 9), ("sep", 9), ("settembre", 9),
    ("august", 8), ("dic", 12), ("gen", 1), ("giugno", 6), ("12", 12), ("boh", None), ("", None),
])
def test_month_values_in_both_languages(value, month):
    assert parse_month(value) == month


def test_may_is_a_month_only_where_it_names_one():
    assert parse_month("may", "how may I pay the bill?") is None
    assert parse_month("May", "May I pay by card?") is None
    assert parse_month("may", "how much was my May bill?") == 5
    assert parse_month("may", "what did I pay in may") == 5
    assert parse_month("maggio", "la bolletta di maggio") == 5


@pytest.mark.parametrize("text, number", [
    ("la bolletta B2025-0100123 è pagata?", "B2025-0100123"),
    ("bolletta b2025 0100123", "B2025-0100123"),
    ("fattura 2025/0100123 quanto è", "B2025-0100123"),
    ("B20250100123", "B2025-0100123"),
    ("il mio iban è IT60X0542811101000000123456", None),
    ("chiamatemi al 3331234567", None),
    ("quanto devo pagare?", None),
])
def test_bill_numbers_as_customers_type_them(text, number):
    assert normalise_bill_number(text) == number


def test_a_bill_is_the_bill_of_the_month_its_period_covers_most_of():
    october = bill("B1", date(2025, 10, 1), date(2025, 10, 31))
    assert covers_month(october, 2025, 10) and not covers_month(october, 2025, 11)
    assert month_of(october) == (2025, 10)
    two_months = bill("B2", date(2025, 9, 1), date(2025, 10, 31))
    assert covers_month(two_months, 2025, 9) and covers_month(two_months, 2025, 10)
    straddling = bill("B3", date(2025, 12, 20), date(2026, 1, 19))  # 12 days Dec, 19 days Jan
    assert not covers_month(straddling, 2025, 12) and covers_month(straddling, 2026, 1)
    assert month_of(straddling) == (2026, 1)


def test_without_a_year_the_most_recent_month_and_every_supply_of_it():
    bills = [bill("E-2025-10", date(2025, 10, 1), date(2025, 10, 31)),
             bill("G-2025-10", date(2025, 10, 1), date(2025, 10, 31), "S2", "gas"),
             bill("E-2024-10", date(2024, 10, 1), date(2024, 10, 31)),
             bill("E-2025-09", date(2025, 9, 1), date(2025, 9, 30))]
    assert [b.number for b in select_bills(bills, Period(month=10))] == ["E-2025-10", "G-2025-10"]
    assert [b.number for b in select_bills(bills, Period(month=10), "gas")] == ["G-2025-10"]
    assert [b.number for b in select_bills(bills, Period(month=10, year=2024))] == ["E-2024-10"]
    assert select_bills(bills, Period(month=3)) == []
    assert [b.number for b in select_bills(bills, Period(number="e-2025-09"))] == ["E-2025-09"]


# --- the actions, on the demo data ---------------------------------------------------------

def older_bill(code, kind=None):
    """A paid bill of the customer that is not the latest: the answer must be about it."""
    card = read_identity_card(code)
    return next(b for b in card.bills[3:] if kind in (None, b.supply_type))


@pytest.mark.parametrize("persona", [None, "family", "digital", "senior", "business"])
def test_explain_bill_of_a_month_explains_that_bill(seeded, domain, persona):
    b = older_bill("C1000001")
    year, month = month_of(b)
    text = f"perché la bolletta di {MONTHS_IT[month - 1]} è così cara?"
    messages, slots = ask(ActionExplainBill(), "C1000001", text, "explain_bill",
                          month=MONTHS_IT[month - 1], persona=persona, domain=domain)
    explained = [m for m in messages if m["response"].startswith("utter_explain_bill_")
                 and m["response"] != "utter_explain_bill_estimated"]
    assert [m["number"] for m in explained] == [b.number]
    latest = read_identity_card("C1000001").bills[0]
    rendered = " ".join(render(domain, messages, persona))
    assert latest.number not in rendered and i18n.money(b.amount_eur, "it") in rendered
    assert i18n.month_year(year, month, "it") in rendered or b.number in rendered
    assert "{" not in rendered
    assert slots["bill_month"] is None and slots["bill_number"] is None  # used, then forgotten


def test_explain_bill_answers_for_each_supply_of_that_month(seeded, domain):
    card = read_identity_card("C1000005")  # business customer, electricity and gas
    gas = older_bill("C1000005", "gas")
    year, month = month_of(gas)
    both = select_bills(card.bills, Period(month=month, year=year))
    assert {b.supply_type for b in both} == {"electricity", "gas"}
    text = f"XKE LA BOLLETTA DI {MONTHS_IT[month - 1].upper()} E COSI ALTA??? nn e possibile"
    messages, _ = ask(ActionExplainBill(), "C1000005", text, "explain_bill",
                      month=MONTHS_IT[month - 1].upper(), domain=domain, persona="business")
    numbers = [m["number"] for m in messages if "number" in m]
    assert sorted(numbers) == sorted(b.number for b in both)
    # ...or only the supply the customer names
    name = MONTHS_IT[month - 1]
    messages, _ = ask(ActionExplainBill(), "C1000005", f"bolletta del gas di {name}",
                      "explain_bill", month=name, supply="gas", domain=domain)
    assert [m["number"] for m in messages if "number" in m] == [gas.number]


def test_the_percentage_is_written_the_customers_way(seeded, domain):
    """Anna's latest bill is well above her average: "+N%" with no ".0", in both languages."""
    for language in ("it", "en"):
        messages, _ = ask(ActionExplainBill(), "C1000006", "why is the bill so high?",
                          "explain_bill", language=language, persona="digital", domain=domain)
        higher = next(m for m in messages if m["response"] == "utter_explain_bill_higher")
        assert isinstance(higher["percent"], str) and higher["percent"].isdigit()
        text = render(domain, [higher], "digital", language)[0]
        assert f"+{higher['percent']}%" in text and ".0%" not in text, text


def test_check_bill_of_a_month_says_where_that_bill_stands(seeded, domain):
    b = older_bill("C1000001")
    year, month = month_of(b)
    name = MONTHS_IT[month - 1]
    messages, slots = ask(ActionCheckBill(), "C1000001", f"quanto era la bolletta di {name}?",
                          "check_bill", month=name, persona="family", domain=domain)
    assert responses(messages) == ["utter_bill_of_period"]
    text = render(domain, messages, "family")[0]
    assert b.number in text and i18n.money(b.amount_eur, "it") in text and "già pagata" in text
    assert i18n.month_year(year, month, "it") in text
    assert "offer" not in slots or slots["offer"] is None
    # the unpaid (overdue) bill's month: the payment link is offered for that bill
    overdue = next(b for b in read_identity_card("C1000001").bills if b.open)
    name = MONTHS_IT[month_of(overdue)[1] - 1]
    messages, slots = ask(ActionCheckBill(), "C1000001", f"la bolletta {name} l'ho pagata?",
                          "check_bill", month=name, persona="family", domain=domain)
    assert responses(messages) == ["utter_bill_of_period", "utter_offer_payment_link"]
    assert "giorni di ritardo: 10" in render(domain, messages, "family")[0]
    assert slots["offer"] == "pay_bill" and slots["bill_number"] == overdue.number


def test_pay_bill_of_a_month_in_english(seeded, domain):
    """John's latest bill is unpaid; an older one is paid."""
    card = read_identity_card("C1000004")
    unpaid = next(b for b in card.bills if b.open)
    month = MONTHS_EN[month_of(unpaid)[1] - 1]
    messages, _ = ask(ActionPayBill(), "C1000004", f"how do I pay the {month} bill?", "pay_bill",
                      month=month.lower(), language="en", persona="digital", domain=domain)
    links = [m for m in messages if m["response"] == "utter_pay_link"]
    assert [m["number"] for m in links] == [unpaid.number]
    paid = older_bill("C1000004", unpaid.supply_type)
    month = MONTHS_EN[month_of(paid)[1] - 1]
    messages, _ = ask(ActionPayBill(), "C1000004", f"how do I pay the {month} bill?", "pay_bill",
                      month=month, language="en", persona="digital", domain=domain)
    paid_now = [b for b in select_bills(card.bills, Period(month=month_of(paid)[1]))]
    assert all(not b.open for b in paid_now)
    assert responses(messages) == ["utter_bill_already_paid"] * len(paid_now)
    text = " ".join(render(domain, messages, "digital", "en"))
    assert paid.number in text and "already paid" in text


def test_a_bill_number_selects_that_bill(seeded, domain):
    b = older_bill("C1000003")
    typed = b.number.replace("B", "").replace("-", "/")  # "2025/0100123"
    messages, _ = ask(ActionCheckBill(), "C1000003", f"la fattura {typed} quanto era?",
                      "check_bill", domain=domain, persona="digital")
    assert [m["number"] for m in messages] == [b.number]


def test_an_unknown_period_says_which_bills_there_are(seeded, domain):
    card = read_identity_card("C1000001")
    messages, _ = ask(ActionExplainBill(), "C1000001", "la bolletta di ottobre 2019 perché è alta?",
                      "explain_bill", month="ottobre", domain=domain)
    assert responses(messages) == ["utter_bill_period_unknown"]
    text = render(domain, messages)[0]
    assert "ottobre 2019" in text
    listed = [b.number for b in card.bills if b.number in text]
    assert listed == [b.number for b in card.bills[:6]]  # newest first, at most 6
    assert text.index(card.bills[0].number) < text.index(card.bills[1].number)
    assert i18n.month_year(*month_of(card.bills[0]), "it") in text


def test_another_customers_bill_number_is_unknown_and_reveals_nothing(seeded, domain):
    other = read_identity_card("C1000005").bills[0]
    for action, intent in [(ActionCheckBill(), "check_bill"), (ActionPayBill(), "pay_bill"),
                           (ActionExplainBill(), "explain_bill")]:
        messages, _ = ask(action, "C1000001", f"bolletta {other.number}", intent,
                          number=other.number, domain=domain)
        assert responses(messages) == ["utter_bill_number_unknown"]
        text = render(domain, messages)[0]
        assert i18n.money(other.amount_eur, "it") not in text


def test_a_period_asked_before_the_identity_check_is_answered_after_it(seeded, domain):
    """The question filled bill_month; the action runs after the one-time code (intent
    inform) and answers for that month, then forgets it."""
    b = older_bill("C1000006")
    name = MONTHS_IT[month_of(b)[1] - 1]
    messages, slots = ask(ActionCheckBill(), "C1000006", "123456", "inform",
                          slots={"bill_month": name}, domain=domain)
    assert [m["number"] for m in messages if m["response"] == "utter_bill_of_period"] == [b.number]
    assert slots["bill_month"] is None
    # a new bills question without a month is about the latest bills, whatever was kept
    messages, _ = ask(ActionCheckBill(), "C1000006", "quanto devo pagare?", "check_bill",
                      slots={"bill_month": name}, domain=domain)
    assert "utter_bill_of_period" not in responses(messages)


def test_may_i_pay_is_not_a_question_about_may(seeded, domain):
    messages, _ = ask(ActionPayBill(), "C1000004", "may I pay by card?", "pay_bill", month="may",
                      language="en", domain=domain)
    unpaid = [b.number for b in read_identity_card("C1000004").open_bills]
    assert [m["number"] for m in messages if m["response"] == "utter_pay_link"] == unpaid


def test_a_bill_well_below_the_average_is_not_called_in_line(seeded, domain):
    """A summer gas bill against winter ones: "N% in meno della media", never "in linea"."""
    def lower_bill():
        for code in ("C1000003", "C1000004", "C1000005"):  # customers with gas
            card = read_identity_card(code)
            for b in card.bills:
                before = [p.amount_eur for p in card.bills
                          if p.supply_id == b.supply_id and p.period_end < b.period_end][:11]
                if before and b.amount_eur < sum(before) / len(before) * Decimal("0.8"):
                    return code, b
        pytest.fail("no bill well below its average in the demo data")

    code, b = lower_bill()
    messages, _ = ask(ActionExplainBill(), code, f"bolletta {b.number} perché?", "explain_bill",
                      number=b.number, domain=domain)
    assert responses(messages)[0] == "utter_explain_bill_lower"
    text = render(domain, messages)[0]
    assert "in meno della media" in text and b.number in text and "in linea" not in text
