"""Next best action: the single most useful thing to propose to a customer right now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from bot.crm.card import IdentityCard, InteractionView

READING_WINDOW_FIRST_DAY = 20  # the self-reading window runs from the 20th to the month's end
TICKET_NEWS_DAYS = 3


@dataclass(frozen=True)
class NextBestAction:
    kind: str  # outage | overdue_bill | ticket_news | reading_window | paperless
    params: dict


def reading_window_open(today: date) -> bool:
    return today.day >= READING_WINDOW_FIRST_DAY


def next_best_action(card: IdentityCard, now: datetime | None = None) -> NextBestAction | None:
    """Priority: outage > overdue bill > ticket news > reading window > paper bills."""
    now = now or datetime.now(timezone.utc)
    today = now.date()
    if card.outages:
        o = card.outages[0]
        return NextBestAction("outage", {"outage": o})
    overdue = [b for b in card.bills if b.is_overdue(today)]
    if overdue:
        return NextBestAction("overdue_bill", {"bill": overdue[0]})
    news = [t for t in card.open_tickets
            if t.updated_at and t.updated_at >= now - timedelta(days=TICKET_NEWS_DAYS)
            and t.updated_at > t.opened_at]
    if news:
        return NextBestAction("ticket_news", {"ticket": news[0]})
    if reading_window_open(today) and card.active_supplies:
        return NextBestAction("reading_window", {})
    if not card.paperless:
        return NextBestAction("paperless", {})
    return None


def unresolved_recent_contact(card: IdentityCard, channel: str,
                              now: datetime | None = None) -> InteractionView | None:
    """The newest unresolved contact on another channel in the last 7 days, if any."""
    now = now or datetime.now(timezone.utc)
    for i in card.interactions:
        if i.at < now - timedelta(days=7):
            break
        if i.channel != channel and i.outcome in ("handover", "abandoned"):
            return i
    return None
