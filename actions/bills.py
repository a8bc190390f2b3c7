"""Bills: what is due, why the last bill is what it is, how to pay."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from rasa_sdk.events import SlotSet

from actions.common import DomainSkillAction, language_of, record
from bot import i18n
from bot.settings import get_settings


def due_values(domain, bill, lang, today) -> dict:
    """Amount, due date and the day count to it (family persona variations say them plainly):
    `days_left` to the due date (0 on the day), `days_overdue` past it, and `due_note`, the
    whole of it in words."""
    left = i18n.days_until(bill.due_date, today)
    return dict(amount=i18n.money(bill.amount_eur, lang), due_date=i18n.day(bill.due_date, lang),
                days_left=max(left, 0), days_overdue=max(-left, 0),
                due_note=i18n.due_note(domain, bill.due_date, not bill.open, today, lang))


def _bill_line(dispatcher, domain, bill, lang, today) -> None:
    dispatcher.utter_message(
        response="utter_bill_line_overdue" if bill.is_overdue(today) else "utter_bill_line",
        number=bill.number, supply=i18n.supply(domain, bill.supply_type, lang),
        **due_values(domain, bill, lang, today))


class ActionCheckBill(DomainSkillAction):
    intent = "check_bill"

    async def answer(self, dispatcher, tracker, card, domain):
        lang = language_of(tracker)
        today = i18n.today()
        due = sorted(card.open_bills, key=lambda b: b.due_date)
        if not due:
            if card.bills:
                last = card.bills[0]
                dispatcher.utter_message(response="utter_no_bills_due", number=last.number,
                                         amount=i18n.money(last.amount_eur, lang))
            else:
                dispatcher.utter_message(response="utter_no_bills_at_all")
            await record(tracker, card, self.intent, "resolved")
            return []
        total = sum((b.amount_eur for b in due), Decimal(0))
        dispatcher.utter_message(response="utter_bills_due" if len(due) > 1 else "utter_one_bill_due",
                                 count=len(due), total=i18n.money(total, lang))
        for bill in due:
            _bill_line(dispatcher, domain, bill, lang, today)
        dispatcher.utter_message(response="utter_offer_payment_link")
        await record(tracker, card, self.intent, "resolved")
        return [SlotSet("offer", "pay_bill")]


class ActionExplainBill(DomainSkillAction):
    intent = "explain_bill"

    async def answer(self, dispatcher, tracker, card, domain):
        lang = language_of(tracker)
        if not card.bills:
            dispatcher.utter_message(response="utter_no_bills_at_all")
            return []
        last = card.bills[0]
        previous = [b for b in card.bills[1:] if b.supply_id == last.supply_id][:11]
        supply = card.supply(last.supply_id)
        average = (sum((b.amount_eur for b in previous), Decimal(0)) / len(previous)
                   if previous else last.amount_eur)
        consumption, avg_consumption = _consumptions(supply, last)
        params = dict(
            supply=i18n.supply(domain, last.supply_type, lang), number=last.number,
            period=f"{i18n.day(last.period_start, lang)} – {i18n.day(last.period_end, lang)}",
            **due_values(domain, last, lang, i18n.today()),
            average=i18n.money(average.quantize(Decimal("0.01")), lang),
            consumption=i18n.number(consumption, lang),
            avg_consumption=i18n.number(avg_consumption, lang),
            unit=supply.unit if supply else "kWh",
            unit_price=i18n.money(supply.unit_price_eur, lang) if supply else "",
        )
        percent = ((last.amount_eur / average - 1) * 100).quantize(Decimal("1"), ROUND_HALF_UP) \
            if average else Decimal(0)
        if percent >= 15:
            dispatcher.utter_message(response="utter_explain_bill_higher", percent=percent,
                                     **params)
        else:
            dispatcher.utter_message(response="utter_explain_bill_normal", **params)
        offer = None
        if last.estimated:
            dispatcher.utter_message(response="utter_explain_bill_estimated")
            offer = "submit_meter_reading"
        await record(tracker, card, self.intent, "resolved")
        return [SlotSet("offer", offer)]


def _consumptions(supply, bill):
    """Consumption of the bill's period and the average monthly consumption before it."""
    if supply is None or len(supply.readings) < 2:
        return Decimal(0), Decimal(0)
    readings = [r for r in supply.readings if r.date <= bill.period_end]
    if len(readings) < 2:
        return Decimal(0), Decimal(0)
    last = readings[-1].value - readings[-2].value
    earlier = readings[:-1]
    avg = ((earlier[-1].value - earlier[0].value) / (len(earlier) - 1)) if len(earlier) > 1 else last
    return last.quantize(Decimal("1")), avg.quantize(Decimal("1"))


class ActionPayBill(DomainSkillAction):
    intent = "pay_bill"
    needs_identity = False

    async def answer(self, dispatcher, tracker, card, domain):
        lang = language_of(tracker)
        if card is None:
            dispatcher.utter_message(response="utter_pay_options")
            return []
        due = sorted(card.open_bills, key=lambda b: b.due_date)
        if not due:
            dispatcher.utter_message(response="utter_pay_nothing_due")
        for bill in due:
            dispatcher.utter_message(response="utter_pay_link", number=bill.number,
                                     link=get_settings().payment_base_url + bill.number,
                                     **due_values(domain, bill, lang, i18n.today()))
        if not due:
            dispatcher.utter_message(response="utter_pay_options")
        await record(tracker, card, self.intent, "resolved")
        return []
