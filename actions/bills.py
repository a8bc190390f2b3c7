"""Bills: what is due, why a bill is what it is, how to pay; for the latest bills or for the
period the customer names ("la bolletta di ottobre", "bill B2025-0100123")."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Dict, List, Optional, Sequence, Text

from babel.dates import get_month_names
from rasa_sdk import Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import DomainSkillAction, done, language_of, record
from actions.given_data import reading_beside_the_meter
from bot import i18n
from bot.crm.card import BillView, IdentityCard, SupplyView
from bot.settings import get_settings
from bot.skills import SKILL_ACTIONS

BILL_INTENTS = ("check_bill", "explain_bill", "pay_bill")
# How many bills an answer about an unknown period lists (newest first).
LISTED_BILLS = 6
# Bill numbers as printed on the bill (B2025-0100123) and as customers type them
# (b2025 0100123, 2025/0100123).
BILL_NUMBER = re.compile(r"(?<![\w/-])B?\s?(20\d{2})\s?[-/ ]?\s?(\d{7})(?![\w/-])", re.IGNORECASE)
YEAR = re.compile(r"(?<![\w/.,-])(20\d{2})(?![\w/.,-])")
# "may" is a month only where English uses it as one, not in "may I pay by card?".
MAY_AS_MONTH = re.compile(r"\b(in|of|for|from|since|until|the|my|last|this|early|late|mid)\s+may\b"
                          r"|\bmay(\s+20\d{2}|'s|\s+(bill|invoice|statement))\b", re.IGNORECASE)


def _month_words() -> Dict[str, int]:
    """Month names and abbreviations in both languages (Babel's, plus the ones customers type);
    typos are normalised by the NLU synonyms of data/nlu/*/bills.yml."""
    words: Dict[str, int] = {}
    for locale in ("it_IT", "en_GB", "en_US"):
        for width in ("wide", "abbreviated"):
            for number, name in get_month_names(width, "format", locale=locale).items():
                words[name.lower()] = number
    words.update({"sett": 9, "sep": 9, "sept": 9})
    return words


MONTH_WORDS = _month_words()


@dataclass(frozen=True)
class Period:
    """What the customer asked about: a month (of a year, when they said it) or a bill number."""

    month: Optional[int] = None
    year: Optional[int] = None
    number: Optional[str] = None


def normalise_bill_number(text: str) -> Optional[str]:
    """The bill number in `text` as the company writes it (B2025-0100123), or None."""
    match = BILL_NUMBER.search(text or "")
    return f"B{match.group(1)}-{match.group(2)}" if match else None


def parse_month(value: Any, text: Optional[str] = None) -> Optional[int]:
    """The month (1-12) of a `month` entity value; `text` is the message it came from, when at
    hand (then the English "may" counts only where it names the month)."""
    word = str(value or "").strip().lower().rstrip(".")
    if word.isdigit() and 1 <= int(word) <= 12:
        return int(word)
    month = MONTH_WORDS.get(word)
    if word == "may" and text is not None and not MAY_AS_MONTH.search(text):
        return None
    return month


def _entities(tracker: Tracker, name: str) -> List[Dict[str, Any]]:
    found = [e for e in tracker.latest_message.get("entities", []) if e.get("entity") == name]
    return sorted(found, key=lambda e: e.get("start") or 0)


def requested_period(tracker: Tracker) -> Optional[Period]:
    """The period of the customer's bill question, or None for "the latest bills".

    A bills question reads its own message only: the first month named ("perché ottobre è più
    alta di settembre?" is about October), a year next to it, a bill number. Otherwise the
    action runs for a question asked earlier (after the identity check, or an accepted offer),
    and the period comes from the slots that question filled."""
    message = tracker.latest_message or {}
    text = message.get("text") or ""
    if (message.get("intent") or {}).get("name") in BILL_INTENTS:
        numbers = [e.get("value") for e in _entities(tracker, "bill_number")]
        number = next((n for n in map(normalise_bill_number, numbers + [text]) if n), None)
        months = [parse_month(e.get("value"), text) for e in _entities(tracker, "month")]
        month = next((m for m in months if m), None)
        years = {int(y) for y in YEAR.findall(BILL_NUMBER.sub(" ", text))}
        year = years.pop() if month and len(years) == 1 else None
    else:
        number = normalise_bill_number(tracker.get_slot("bill_number") or "")
        month, year = parse_month(tracker.get_slot("bill_month")), None
    if number:
        return Period(number=number)
    if month:
        return Period(month=month, year=year)
    return None


def requested_supply(tracker: Tracker) -> Optional[str]:
    """The supply type a bills question names (electricity, gas), if any."""
    message = tracker.latest_message or {}
    if (message.get("intent") or {}).get("name") not in BILL_INTENTS:
        return None
    values = [e.get("value") for e in _entities(tracker, "supply_type")]
    return next((v for v in values if v in ("electricity", "gas")), None)


def month_of(bill: BillView) -> tuple[int, int]:
    """The (year, month) a bill is named after: the month its period covers most days of (its
    own month for a monthly bill; the later month on a tie)."""
    best, best_days = (bill.period_end.year, bill.period_end.month), 0
    year, month = bill.period_start.year, bill.period_start.month
    while (year, month) <= (bill.period_end.year, bill.period_end.month):
        days = _days_in(bill, year, month)
        if days >= best_days:
            best, best_days = (year, month), days
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return best


def _days_in(bill: BillView, year: int, month: int) -> int:
    first = date(year, month, 1)
    last = date(year, month, calendar.monthrange(year, month)[1])
    start, end = max(first, bill.period_start), min(last, bill.period_end)
    return (end - start).days + 1 if end >= start else 0


def covers_month(bill: BillView, year: int, month: int) -> bool:
    """Whether a bill is "the bill of" that month: its period covers more than half of the
    month's days. A monthly bill is the bill of its month; a bimonthly bill (September-October)
    is the bill of both months. The month a bill is issued or due in does not count: customers
    asking for "the October bill" are told the period of the bill they get, never another
    bill's answer without saying so."""
    return _days_in(bill, year, month) * 2 > calendar.monthrange(year, month)[1]


def select_bills(bills: Sequence[BillView], period: Period,
                 supply_type: Optional[str] = None) -> List[BillView]:
    """The customer's bills of `period` (newest first), one per supply; of `supply_type` only
    when the customer named one. Without a year, the most recent such month with a bill."""
    bills = [b for b in bills if supply_type in (None, b.supply_type)]
    if period.number:
        return [b for b in bills if b.number.upper() == period.number.upper()]
    matches = []
    for bill in bills:
        for year in sorted({bill.period_start.year, bill.period_end.year}):
            if (period.year in (None, year)) and covers_month(bill, year, period.month):
                matches.append((year, bill))
    if not matches:
        return []
    newest = max(year for year, _ in matches)
    return [bill for year, bill in matches if year == newest]


def bill_list(domain: Dict[Text, Any], card: IdentityCard, lang: str,
              limit: int = LISTED_BILLS) -> str:
    """The customer's latest bills, newest first, by month and number (and supply, when there
    are several): what an answer about an unknown period offers instead."""
    several = len({b.supply_id for b in card.bills}) > 1
    items = []
    for bill in card.bills[:limit]:
        name = i18n.month_year(*month_of(bill), lang)
        if several:
            name += f", {i18n.supply(domain, bill.supply_type, lang)}"
        items.append(f"{name} ({bill.number})")
    return "; ".join(items)


def period_name(period: Period, lang: str) -> str:
    if period.number:
        return period.number
    if period.year:
        return i18n.month_year(period.year, period.month, lang)
    return i18n.month_name(period.month, lang)


def due_values(domain: Dict[Text, Any], bill: BillView, lang: str, today: date) -> dict:
    """Amount, due date and the day count to it (family persona variations say them plainly):
    `days_left` to the due date (0 on the day), `days_overdue` past it, and `due_note`, the
    whole of it in words."""
    left = i18n.days_until(bill.due_date, today)
    return dict(amount=i18n.money(bill.amount_eur, lang), due_date=i18n.day(bill.due_date, lang),
                days_left=max(left, 0), days_overdue=max(-left, 0),
                due_note=i18n.due_note(domain, bill.due_date, not bill.open, today, lang))


def bill_values(domain: Dict[Text, Any], bill: BillView, lang: str, today: date) -> dict:
    """Everything a reply about one bill may say: number, supply, month, period, due values."""
    return dict(number=bill.number, supply=i18n.supply(domain, bill.supply_type, lang),
                month=i18n.month_year(*month_of(bill), lang),
                period=f"{i18n.day(bill.period_start, lang)} – {i18n.day(bill.period_end, lang)}",
                **due_values(domain, bill, lang, today))


def _bill_line(dispatcher: CollectingDispatcher, domain: Dict[Text, Any], bill: BillView,
               lang: str, today: date) -> None:
    dispatcher.utter_message(
        response="utter_bill_line_overdue" if bill.is_overdue(today) else "utter_bill_line",
        number=bill.number, supply=i18n.supply(domain, bill.supply_type, lang),
        **due_values(domain, bill, lang, today))


def _say_unknown_period(dispatcher: CollectingDispatcher, domain: Dict[Text, Any],
                        card: IdentityCard, period: Period, lang: str) -> None:
    """No bill of that period: say so and which bills there are; never another bill's answer."""
    if not card.bills:
        dispatcher.utter_message(response="utter_no_bills_at_all")
        return
    dispatcher.utter_message(
        response="utter_bill_number_unknown" if period.number else "utter_bill_period_unknown",
        period=period_name(period, lang), bills=bill_list(domain, card, lang))


def the_one(bills: Sequence[BillView]) -> Optional[str]:
    """The bill number an answer was about, when it was about one bill."""
    return bills[0].number if len(bills) == 1 else None


def _forget_period() -> List[EventType]:
    return [SlotSet("bill_month", None), SlotSet("bill_number", None)]


def _reading_instead(tracker: Tracker) -> List[EventType]:
    """A bill question with a reading beside the meter ("...the meter says 4512, use that") is
    the reading task: its events, or none."""
    reading = reading_beside_the_meter(tracker)
    if reading is None:
        return []
    return reading + [FollowupAction(SKILL_ACTIONS["submit_meter_reading"])]


class ActionCheckBill(DomainSkillAction):
    intent = "check_bill"

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard], domain: Dict[Text, Any]) -> List[EventType]:
        reading_task = _reading_instead(tracker)
        if reading_task:
            return reading_task
        lang = language_of(tracker)
        today = i18n.today()
        period = requested_period(tracker)
        if period:
            return await self.answer_period(dispatcher, tracker, card, domain, period)
        due = sorted(card.open_bills, key=lambda b: b.due_date)
        if not due:
            if card.bills:
                last = card.bills[0]
                dispatcher.utter_message(response="utter_no_bills_due", number=last.number,
                                         amount=i18n.money(last.amount_eur, lang))
            else:
                dispatcher.utter_message(response="utter_no_bills_at_all")
            await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher)
            return _forget_period()
        total = sum((b.amount_eur for b in due), Decimal(0))
        response = "utter_bills_due" if len(due) > 1 else "utter_one_bill_due"
        dispatcher.utter_message(response=response, count=len(due),
                                 total=i18n.money(total, lang))
        for bill in due:
            _bill_line(dispatcher, domain, bill, lang, today)
        dispatcher.utter_message(response="utter_offer_payment_link")
        await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher)
        return _forget_period() + [SlotSet("offer", "pay_bill")]

    async def answer_period(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                            card: IdentityCard, domain: Dict[Text, Any],
                            period: Period) -> List[EventType]:
        """The bills of the period asked about: amount, period and where each one stands; the
        payment link is offered for the unpaid ones (and the one bill is kept for it)."""
        lang = language_of(tracker)
        today = i18n.today()
        bills = select_bills(card.bills, period, requested_supply(tracker))
        events = _forget_period()
        if not bills:
            _say_unknown_period(dispatcher, domain, card, period, lang)
            await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher)
            return events
        for bill in bills:
            dispatcher.utter_message(response="utter_bill_of_period",
                                     **bill_values(domain, bill, lang, today))
        unpaid = [b for b in bills if b.open]
        if unpaid:
            dispatcher.utter_message(response="utter_offer_payment_link")
            events.append(SlotSet("offer", "pay_bill"))
            if len(unpaid) == 1:
                events.append(SlotSet("bill_number", unpaid[0].number))
        await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher,
                     reference=the_one(bills))
        return events


class ActionExplainBill(DomainSkillAction):
    intent = "explain_bill"

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard], domain: Dict[Text, Any]) -> List[EventType]:
        reading_task = _reading_instead(tracker)
        if reading_task:
            return reading_task
        lang = language_of(tracker)
        if not card.bills:
            dispatcher.utter_message(response="utter_no_bills_at_all")
            return _forget_period()
        period = requested_period(tracker)
        supply_type = requested_supply(tracker)
        if period:
            bills = select_bills(card.bills, period, supply_type)
            if not bills:
                _say_unknown_period(dispatcher, domain, card, period, lang)
                await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher)
                return _forget_period()
        else:  # the latest bill (of the supply named, if any)
            bills = [next((b for b in card.bills if supply_type in (None, b.supply_type)),
                          card.bills[0])]
        offer = None
        for bill in bills:
            if explain(dispatcher, domain, card, bill, lang):
                offer = "submit_meter_reading"
        await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher,
                     reference=the_one(bills))
        return _forget_period() + [SlotSet("offer", offer)]


def explain(dispatcher: CollectingDispatcher, domain: Dict[Text, Any], card: IdentityCard,
            bill: BillView, lang: str) -> bool:
    """Why `bill` is what it is, against the average of the (up to 11) bills of the same supply
    before it (higher, lower or in line: 15% either way); True when it rests on an estimated
    reading (and that was said)."""
    previous = [b for b in card.bills if b.supply_id == bill.supply_id
                and b.period_end < bill.period_end][:11]
    supply = card.supply(bill.supply_id)
    average = (sum((b.amount_eur for b in previous), Decimal(0)) / len(previous)
               if previous else bill.amount_eur)
    consumption, avg_consumption = _consumptions(supply, bill)
    params = dict(
        **bill_values(domain, bill, lang, i18n.today()),
        average=i18n.money(average.quantize(Decimal("0.01")), lang),
        consumption=i18n.number(consumption, lang),
        avg_consumption=i18n.number(avg_consumption, lang),
        unit=supply.unit if supply else "kWh",
        unit_price=i18n.money(supply.unit_price_eur, lang) if supply else "",
    )
    percent = ((bill.amount_eur / average - 1) * 100).quantize(Decimal("1"), ROUND_HALF_UP) \
        if average else Decimal(0)
    if percent >= 15:
        dispatcher.utter_message(response="utter_explain_bill_higher",
                                 percent=i18n.percent(percent, lang), **params)
    elif percent <= -15:  # well below the average (a summer gas bill): never "in line"
        dispatcher.utter_message(response="utter_explain_bill_lower",
                                 percent=i18n.percent(-percent, lang), **params)
    else:
        dispatcher.utter_message(response="utter_explain_bill_normal", **params)
    if bill.estimated:
        dispatcher.utter_message(response="utter_explain_bill_estimated")
    return bill.estimated


def _consumptions(supply: Optional[SupplyView], bill: BillView):
    """Consumption of the bill's period and the average monthly consumption before it."""
    if supply is None or len(supply.readings) < 2:
        return Decimal(0), Decimal(0)
    readings = [r for r in supply.readings if r.date <= bill.period_end]
    if len(readings) < 2:
        return Decimal(0), Decimal(0)
    last = readings[-1].value - readings[-2].value
    earlier = readings[:-1]
    avg = (((earlier[-1].value - earlier[0].value) / (len(earlier) - 1)) if len(earlier) > 1
           else last)
    return last.quantize(Decimal("1")), avg.quantize(Decimal("1"))


class ActionPayBill(DomainSkillAction):
    intent = "pay_bill"
    needs_identity = False

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     card: Optional[IdentityCard], domain: Dict[Text, Any]) -> List[EventType]:
        lang = language_of(tracker)
        if card is None:  # how to pay, in general: what an anonymous customer can be told
            dispatcher.utter_message(response="utter_pay_options")
            done(dispatcher, self.intent)
            return _forget_period()
        period = requested_period(tracker)
        if period:
            bills = select_bills(card.bills, period, requested_supply(tracker))
            if not bills:
                _say_unknown_period(dispatcher, domain, card, period, lang)
                await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher)
                return _forget_period()
            for bill in bills:
                if bill.open:
                    _pay_link(dispatcher, domain, bill, lang)
                else:
                    dispatcher.utter_message(response="utter_bill_already_paid",
                                             **bill_values(domain, bill, lang, i18n.today()))
            await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher,
                         reference=the_one(bills))
            return _forget_period()
        due = sorted(card.open_bills, key=lambda b: b.due_date)
        if not due:
            dispatcher.utter_message(response="utter_pay_nothing_due")
        for bill in due:
            _pay_link(dispatcher, domain, bill, lang)
        if not due:
            dispatcher.utter_message(response="utter_pay_options")
        await record(tracker, card, self.intent, "resolved", dispatcher=dispatcher)
        return _forget_period()


def _pay_link(dispatcher: CollectingDispatcher, domain: Dict[Text, Any], bill: BillView,
              lang: str) -> None:
    dispatcher.utter_message(response="utter_pay_link", number=bill.number,
                             link=get_settings().payment_base_url + bill.number,
                             **due_values(domain, bill, lang, i18n.today()))
