"""The context pack an agent receives with a handover: who the customer is, what happened in
the conversation, why a person is needed, and a short summary. Frozen when the handover is
created, so it stays the same whatever happens to the customer's data later."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from bot.crm.card import IdentityCard
from bot.masks import mask_email, mask_iban, mask_phone

REASONS = {
    "request_human": "the customer asked for a person",
    "misunderstanding": "the bot did not understand the customer",
    "frustration": "the customer sounds frustrated or angry",
    "move_home": "moving home needs a sales advisor",
    "complaint": "the customer wants to talk about a complaint",
    "vip": "business/VIP customer the bot could not help",
    "feedback": "the customer was unhappy with the conversation",
}
LAST_INTERACTIONS = 8


def _iso(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def card_view(card: IdentityCard | None, today: date) -> dict[str, Any] | None:
    if card is None:
        return None
    return {
        "customer_code": card.customer_code,
        "name": f"{card.first_name} {card.last_name}",
        "language": card.language,
        "persona": card.persona,
        "vip": card.vip,
        "email": mask_email(card.email) if card.email else None,
        "phone": mask_phone(card.phone) if card.phone else None,
        "preferred_channel": card.preferred_channel,
        "paperless": card.paperless,
        "direct_debit": mask_iban(card.direct_debit_iban) if card.direct_debit_iban else None,
        "supplies": [{"supply_id": s.supply_id, "type": s.type, "address": s.address,
                      "city": s.city, "postcode": s.postcode, "tariff": s.tariff,
                      "status": s.status} for s in card.supplies],
        "unpaid_bills": [{"number": b.number, "supply_type": b.supply_type,
                          "amount_eur": str(b.amount_eur), "due_date": _iso(b.due_date),
                          "overdue": b.is_overdue(today), "estimated": b.estimated}
                         for b in card.open_bills],
        "open_tickets": [{"ticket_id": t.ticket_id, "kind": t.kind, "status": t.status,
                          "subject": t.subject, "opened_at": _iso(t.opened_at),
                          "eta": _iso(t.eta)} for t in card.open_tickets],
        "last_interactions": [{"at": _iso(i.at), "channel": i.channel, "topic": i.topic,
                               "outcome": i.outcome, "summary": i.summary}
                              for i in card.interactions[:LAST_INTERACTIONS]],
        "active_outages": [{"outage_id": o.outage_id, "type": o.type,
                            "expected_end": _iso(o.expected_end), "description": o.description}
                           for o in card.outages],
    }


def transcript(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Customer and bot messages, with what the bot understood and how sure it was."""
    lines = []
    for e in events:
        when = datetime.fromtimestamp(e.get("timestamp") or 0, timezone.utc).isoformat()
        if e.get("event") == "user":
            parse = e.get("parse_data") or {}
            intent = parse.get("intent") or {}
            lines.append({"who": "customer", "at": when, "text": e.get("text") or "",
                          "intent": intent.get("name"),
                          "confidence": round(float(intent.get("confidence") or 0), 3),
                          "entities": [{"entity": x.get("entity"), "value": x.get("value")}
                                       for x in parse.get("entities") or []]})
        elif e.get("event") == "bot" and (e.get("text") or (e.get("data") or {}).get("buttons")):
            who = "agent" if (e.get("metadata") or {}).get("agent") else "bot"
            lines.append({"who": who, "at": when, "text": e.get("text") or "",
                          "agent": (e.get("metadata") or {}).get("agent")})
    return lines


def intents_of(events: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for line in transcript(events):
        name = line.get("intent")
        if line["who"] == "customer" and name and name not in seen:
            seen.append(name)
    return seen


def summary(card: IdentityCard | None, reason: str, intents: list[str], language: str,
            channel: str, fallbacks: int, today: date) -> str:
    who = (f"{card.first_name} {card.last_name} ({card.customer_code}, {card.persona}"
           f"{', VIP' if card.vip else ''})" if card else "An unidentified customer")
    parts = [f"{who} writing in {'Italian' if language == 'it' else 'English'} on {channel}."]
    topics = [i for i in intents if i not in ("greet", "affirm", "deny", "thank_you",
                                              "nlu_fallback", "inform", "request_human")]
    if topics:
        parts.append("Asked about: " + ", ".join(t.replace("_", " ") for t in topics) + ".")
    parts.append("Handover: " + REASONS.get(reason, reason) + ".")
    if fallbacks:
        parts.append(f"The bot did not understand {fallbacks} message(s).")
    if card is not None:
        overdue = [b for b in card.open_bills if b.is_overdue(today)]
        if overdue:
            parts.append(f"{len(overdue)} overdue bill(s).")
        if card.open_tickets:
            parts.append(f"{len(card.open_tickets)} open ticket(s).")
        if card.outages:
            parts.append("An outage is active at their address.")
    return " ".join(parts)


def build(card: IdentityCard | None, events: list[dict[str, Any]], reason: str, language: str,
          channel: str, skill: str, today: date) -> tuple[dict[str, Any], str]:
    lines = transcript(events)
    intents = intents_of(events)
    fallbacks = sum(1 for line in lines if line.get("intent") == "nlu_fallback")
    text = summary(card, reason, intents, language, channel, fallbacks, today)
    pack = {"card": card_view(card, today), "transcript": lines, "intents": intents,
            "reason": reason, "reason_text": REASONS.get(reason, reason), "skill": skill,
            "language": language, "channel": channel, "summary": text}
    return pack, text
