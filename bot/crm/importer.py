"""Import of the customer-history format (`../shared/customer-data.md`).

The whole file is validated first; an invalid file changes nothing and every problem is
reported with its JSON path. A valid file is upserted by natural keys in one transaction.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from bot import channels
from bot.crm import models as m, validation
from bot.language import LANGUAGES
from bot.persistence.types import Base

Check = Callable[[Any], str | None]


def _enum(values: tuple[str, ...]) -> Check:
    def check(v: Any) -> str | None:
        return None if v in values else f"must be one of {', '.join(values)}"

    return check


def _string(pattern: str | None = None, what: str = "") -> Check:
    rx = re.compile(pattern) if pattern else None

    def check(v: Any) -> str | None:
        if not isinstance(v, str) or not v.strip():
            return "not a non-empty string"
        if rx and not rx.fullmatch(v):
            return f"not a valid {what}"
        return None

    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "not a boolean (true/false)"


def _date(v: Any) -> str | None:
    if not isinstance(v, str):
        return "not a date"
    try:
        date.fromisoformat(v)
    except ValueError:
        return "not a date"
    return None


def _datetime(v: Any) -> str | None:
    if not isinstance(v, str):
        return "not a date-time"
    try:
        parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return "not a date-time"
    if parsed.tzinfo is None:
        return "a date-time needs a UTC offset (e.g. +01:00)"
    return None


def _decimal(places: int) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return "amounts are decimal strings (e.g. \"84.20\"), not numbers"
        try:
            d = Decimal(v)
        except InvalidOperation:
            return "not a decimal number"
        if not d.is_finite() or d < 0:
            return "not a non-negative decimal number"
        if -d.as_tuple().exponent > places:
            return f"more than {places} decimal places"
        return None

    return check


def _email(v: Any) -> str | None:
    from bot.crm.validation import is_valid_email

    return None if isinstance(v, str) and is_valid_email(v) else "not a valid e-mail address"


def _phone(v: Any) -> str | None:
    if isinstance(v, str) and re.fullmatch(r"\+[1-9]\d{6,14}", v):
        return None
    return "not a phone number in E.164 form (e.g. +393331234567)"


TAX_CODE = re.compile(
    r"[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]"
    r"|\d{11}"
)


def _tax_code(v: Any) -> str | None:
    """The shape of a codice fiscale (or a company's 11 digits). The check character is not
    enforced: CRM exports carry legacy codes whose check character a person cannot fix."""
    return None if isinstance(v, str) and TAX_CODE.fullmatch(v) else "not a valid tax code"


def _iban(v: Any) -> str | None:
    from stdnum import iban

    return None if isinstance(v, str) and iban.is_valid(v) else "not a valid IBAN"


def _list_of_strings(pattern: str, what: str) -> Check:
    inner = _string(pattern, what)

    def check(v: Any) -> str | None:
        if not isinstance(v, list) or not v:
            return "not a non-empty list"
        for item in v:
            problem = inner(item)
            if problem:
                return f"contains {item!r}: {problem}"
        return None

    return check


POSTCODE = r"\d{5}"
CHANNEL = _enum(channels.HISTORY)


@dataclass
class Spec:
    fields: dict[str, Check]
    nullable: set[str] = field(default_factory=set)
    children: dict[str, "Spec"] = field(default_factory=dict)


IDENTITY = Spec({"channel": CHANNEL, "external_id": _string(), "verified": _bool})
READING = Spec(
    {"date": _date, "value": _decimal(3), "source": _enum(m.READING_SOURCES)}
)
SUPPLY = Spec(
    {
        "supply_id": _string(r"IT\d{3}E\d{8}|\d{14}", "POD (IT001E12345678) or PDR (14 digits)"),
        "type": _enum(m.SUPPLY_TYPES),
        "address": _string(),
        "city": _string(),
        "postcode": _string(POSTCODE, "postcode (5 digits)"),
        "tariff": _string(),
        "unit_price_eur": _decimal(4),
        "status": _enum(m.SUPPLY_STATUSES),
        "start_date": _date,
        "end_date": _date,
    },
    nullable={"end_date"},
    children={"readings": READING},
)
BILL = Spec(
    {
        "number": _string(),
        "supply_id": _string(),
        "period_start": _date,
        "period_end": _date,
        "issue_date": _date,
        "due_date": _date,
        "amount_eur": _decimal(2),
        "status": _enum(m.BILL_STATUSES),
        "estimated": _bool,
    }
)
TICKET = Spec(
    {
        "ticket_id": _string(r"T-\d{4}-\d{6}", "ticket id (T-2026-000123)"),
        "kind": _enum(m.TICKET_KINDS),
        "status": _enum(m.TICKET_STATUSES),
        "subject": _string(),
        "channel": CHANNEL,
        "opened_at": _datetime,
        "updated_at": _datetime,
        "eta": _date,
    },
    nullable={"updated_at", "eta"},
)
INTERACTION = Spec(
    {
        "at": _datetime,
        "channel": CHANNEL,
        "topic": lambda v: None
        if isinstance(v, str) and re.fullmatch(r"[a-z_]+", v)
        else "not an intent name",
        "outcome": _enum(m.OUTCOMES),
        "summary": lambda v: None if isinstance(v, str) else "not a string",
    }
)
CUSTOMER = Spec(
    {
        "customer_code": _string(validation.CUSTOMER_CODE,
                                 "customer code (C followed by 7 digits)"),
        "first_name": _string(),
        "last_name": _string(),
        "language": _enum(LANGUAGES),
        "persona": _enum(m.PERSONAS),
        "vip": _bool,
        "email": _email,
        "phone": _phone,
        "tax_code": _tax_code,
        "preferred_channel": CHANNEL,
        "paperless": _bool,
        "direct_debit_iban": _iban,
    },
    nullable={"email", "phone", "tax_code", "direct_debit_iban"},
    children={
        "identities": IDENTITY,
        "supplies": SUPPLY,
        "bills": BILL,
        "tickets": TICKET,
        "interactions": INTERACTION,
    },
)
OUTAGE = Spec(
    {
        "outage_id": _string(),
        "type": _enum(m.SUPPLY_TYPES),
        "postcodes": _list_of_strings(POSTCODE, "postcode (5 digits)"),
        "started_at": _datetime,
        "expected_end": _datetime,
        "description": _string(),
    }
)


class ImportError_(Exception):
    """Raised with the full list of problems of an invalid file."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


def _check_object(obj: Any, spec: Spec, path: str, problems: list[str]) -> None:
    if not isinstance(obj, dict):
        problems.append(f"{path}: not an object")
        return
    for key in obj:
        if key not in spec.fields and key not in spec.children:
            problems.append(f"{path}.{key}: unknown field")
    for key, check in spec.fields.items():
        if key not in obj:
            problems.append(f"{path}.{key}: missing")
            continue
        value = obj[key]
        if value is None:
            if key not in spec.nullable:
                problems.append(f"{path}.{key}: must not be null")
            continue
        problem = check(value)
        if problem:
            problems.append(f"{path}.{key}: {problem}")
    for key, child in spec.children.items():
        if key not in obj:
            problems.append(f"{path}.{key}: missing")
            continue
        items = obj[key]
        if not isinstance(items, list):
            problems.append(f"{path}.{key}: not a list")
            continue
        for i, item in enumerate(items):
            _check_object(item, child, f"{path}.{key}[{i}]", problems)


def _duplicates(values: list[tuple[str, Any]], what: str, problems: list[str]) -> None:
    seen: dict[Any, str] = {}
    for path, value in values:
        if value in seen:
            problems.append(f"{path}: duplicate {what} (first at {seen[value]})")
        else:
            seen[value] = path


def validate(data: Any) -> list[str]:
    """Every problem of the document, each prefixed with its JSON path; empty when valid."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return ["$: the document must be a JSON object with customers and outages"]
    for key in data:
        if key not in ("customers", "outages"):
            problems.append(f"{key}: unknown field")
    for key, spec in (("customers", CUSTOMER), ("outages", OUTAGE)):
        items = data.get(key)
        if items is None:
            problems.append(f"{key}: missing")
            continue
        if not isinstance(items, list):
            problems.append(f"{key}: not a list")
            continue
        for i, item in enumerate(items):
            _check_object(item, spec, f"{key}[{i}]", problems)

    customers = [c for c in data.get("customers") or [] if isinstance(c, dict)]
    codes, supply_ids, bill_numbers, ticket_ids, identities = [], [], [], [], []
    for i, c in enumerate(data.get("customers") or []):
        if not isinstance(c, dict):
            continue
        codes.append((f"customers[{i}].customer_code", c.get("customer_code")))
        own_supplies = set()
        for j, s in enumerate(c.get("supplies") or []):
            if isinstance(s, dict):
                supply_ids.append((f"customers[{i}].supplies[{j}].supply_id", s.get("supply_id")))
                own_supplies.add(s.get("supply_id"))
                if isinstance(s.get("start_date"), str) and isinstance(s.get("end_date"), str):
                    if not _date(s["start_date"]) and not _date(s["end_date"]):
                        if s["end_date"] < s["start_date"]:
                            problems.append(
                                f"customers[{i}].supplies[{j}].end_date: before start_date"
                            )
        for j, b in enumerate(c.get("bills") or []):
            if isinstance(b, dict):
                bill_numbers.append((f"customers[{i}].bills[{j}].number", b.get("number")))
                if b.get("supply_id") not in own_supplies and isinstance(b.get("supply_id"), str):
                    problems.append(
                        f"customers[{i}].bills[{j}].supply_id: not one of this customer's supplies"
                    )
        for j, t in enumerate(c.get("tickets") or []):
            if isinstance(t, dict):
                ticket_ids.append((f"customers[{i}].tickets[{j}].ticket_id", t.get("ticket_id")))
        for j, ident in enumerate(c.get("identities") or []):
            if isinstance(ident, dict):
                identities.append(
                    (
                        f"customers[{i}].identities[{j}]",
                        (ident.get("channel"), ident.get("external_id")),
                    )
                )
    del customers
    _duplicates(codes, "customer_code", problems)
    _duplicates(supply_ids, "supply_id", problems)
    _duplicates(bill_numbers, "bill number", problems)
    _duplicates(ticket_ids, "ticket_id", problems)
    _duplicates(identities, "identity (channel, external_id)", problems)
    outage_ids = [
        (f"outages[{i}].outage_id", o.get("outage_id"))
        for i, o in enumerate(data.get("outages") or [])
        if isinstance(o, dict)
    ]
    _duplicates(outage_ids, "outage_id", problems)
    return problems


def _dt(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v.replace("Z", "+00:00")) if v else None


def _d(v: str | None) -> date | None:
    return date.fromisoformat(v) if v else None


def _upsert(session: Session, model: type[Base], key: dict, values: dict):
    obj = session.execute(select(model).filter_by(**key)).scalar_one_or_none()
    return _put(session, model, obj, key, values)


def _put(session: Session, model: type[Base], obj: Base | None, key: dict, values: dict):
    """Update `obj` with `values`, or add a new row with `key` and `values` if it is None."""
    if obj is None:
        obj = model(**key, **values)
        session.add(obj)
    else:
        for k, v in values.items():
            setattr(obj, k, v)
    return obj


class _Rows(dict):
    """The rows of one kind that an import may update, read in one query for a whole customer
    instead of one per row (a demo seed is ~8,500 rows). Rows added during the import are
    kept too, so that a key given twice updates the first one, as a query would find it."""

    def __init__(self, session: Session, model: type[Base], where: ColumnElement,
                 key: Callable[[Any], Any]) -> None:
        super().__init__((key(o), o) for o in session.execute(select(model).where(where))
                         .scalars())
        self.session, self.model = session, model

    def put(self, found_by: Any, key: dict, values: dict) -> Base:
        obj = self[found_by] = _put(self.session, self.model, self.get(found_by), key, values)
        return obj


@dataclass
class ImportReport:
    customers: int = 0
    supplies: int = 0
    bills: int = 0
    tickets: int = 0
    interactions_added: int = 0
    outages: int = 0


def apply(session: Session, data: dict) -> ImportReport:
    """Upsert a validated document. Call `validate` first."""
    report = ImportReport()
    for c in data["customers"]:
        found = session.execute(select(m.Customer).where(
            m.Customer.customer_code == c["customer_code"])).scalar_one_or_none()
        # the contacts before this import: a changed one goes to the contact history
        before = (found.email, found.phone) if found is not None else None
        customer = _put(
            session,
            m.Customer,
            found,
            {"customer_code": c["customer_code"]},
            {
                "first_name": c["first_name"],
                "last_name": c["last_name"],
                "language": c["language"],
                "persona": c["persona"],
                "vip": c["vip"],
                "email": c["email"],
                "phone": c["phone"],
                "tax_code": c["tax_code"],
                "preferred_channel": c["preferred_channel"],
                "paperless": c["paperless"],
                "direct_debit_iban": c["direct_debit_iban"],
            },
        )
        session.flush()
        for kind, previous in zip(m.CONTACT_KINDS, before or (None, None)):
            m.note_contact(session, customer.id, kind, previous, c[kind])
        report.customers += 1
        identities = _Rows(session, m.Identity, m.Identity.external_id.in_(
            [i["external_id"] for i in c["identities"]]), lambda o: (o.channel, o.external_id))
        for ident in c["identities"]:
            identities.put(
                (ident["channel"], ident["external_id"]),
                {"channel": ident["channel"], "external_id": ident["external_id"]},
                {"customer_id": customer.id, "verified": ident["verified"]},
            )
        existing_supplies = _Rows(session, m.Supply, m.Supply.supply_id.in_(
            [s["supply_id"] for s in c["supplies"]]), lambda o: o.supply_id)
        supplies: dict[str, m.Supply] = {}
        for s in c["supplies"]:
            supply = existing_supplies.put(
                s["supply_id"],
                {"supply_id": s["supply_id"]},
                {
                    "customer_id": customer.id,
                    "type": s["type"],
                    "address": s["address"],
                    "city": s["city"],
                    "postcode": s["postcode"],
                    "tariff": s["tariff"],
                    "unit_price_eur": Decimal(s["unit_price_eur"]),
                    "status": s["status"],
                    "start_date": _d(s["start_date"]),
                    "end_date": _d(s["end_date"]),
                },
            )
            session.flush()
            supplies[s["supply_id"]] = supply
            report.supplies += 1
            readings = _Rows(session, m.Reading, m.Reading.supply_pk == supply.id,
                             lambda o: (o.date, o.source))
            for r in s["readings"]:
                readings.put(
                    (_d(r["date"]), r["source"]),
                    {"supply_pk": supply.id, "date": _d(r["date"]), "source": r["source"]},
                    {"value": Decimal(r["value"])},
                )
        bills = _Rows(session, m.Bill, m.Bill.number.in_([b["number"] for b in c["bills"]]),
                      lambda o: o.number)
        for b in c["bills"]:
            bills.put(
                b["number"],
                {"number": b["number"]},
                {
                    "customer_id": customer.id,
                    "supply_pk": supplies[b["supply_id"]].id,
                    "period_start": _d(b["period_start"]),
                    "period_end": _d(b["period_end"]),
                    "issue_date": _d(b["issue_date"]),
                    "due_date": _d(b["due_date"]),
                    "amount_eur": Decimal(b["amount_eur"]),
                    "status": b["status"],
                    "estimated": b["estimated"],
                },
            )
            report.bills += 1
        tickets = _Rows(session, m.Ticket, m.Ticket.ticket_id.in_(
            [t["ticket_id"] for t in c["tickets"]]), lambda o: o.ticket_id)
        for t in c["tickets"]:
            tickets.put(
                t["ticket_id"],
                {"ticket_id": t["ticket_id"]},
                {
                    "customer_id": customer.id,
                    "kind": t["kind"],
                    "status": t["status"],
                    "subject": t["subject"],
                    "channel": t["channel"],
                    "opened_at": _dt(t["opened_at"]),
                    "updated_at": _dt(t["updated_at"]),
                    "eta": _d(t["eta"]),
                },
            )
            report.tickets += 1
        session.flush()
        # times are read back timezone-aware (UTCDateTime), so they compare as instants
        interactions = {tuple(row) for row in session.execute(
            select(m.Interaction.at, m.Interaction.channel, m.Interaction.topic)
            .where(m.Interaction.customer_id == customer.id))}
        for it in c["interactions"]:
            at = _dt(it["at"])
            if (at, it["channel"], it["topic"]) not in interactions:
                interactions.add((at, it["channel"], it["topic"]))
                session.add(
                    m.Interaction(
                        customer_id=customer.id,
                        at=at,
                        channel=it["channel"],
                        topic=it["topic"],
                        outcome=it["outcome"],
                        summary=it["summary"],
                    )
                )
                report.interactions_added += 1
    for o in data["outages"]:
        outage = _upsert(
            session,
            m.Outage,
            {"outage_id": o["outage_id"]},
            {
                "type": o["type"],
                "started_at": _dt(o["started_at"]),
                "expected_end": _dt(o["expected_end"]),
                "description": o["description"],
            },
        )
        wanted = set(o["postcodes"])
        outage.postcodes = [p for p in outage.postcodes if p.postcode in wanted] + [
            m.OutagePostcode(postcode=p)
            for p in sorted(wanted - {p.postcode for p in outage.postcodes})
        ]
        report.outages += 1
    session.flush()
    return report


def load_file(path: Path) -> tuple[Any, list[str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"$: cannot read {path}: {exc}"]
    try:
        return json.loads(text), []
    except json.JSONDecodeError as exc:
        return None, [f"$: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"]


def import_file(path: Path, url: str | None = None) -> ImportReport:
    """Validate the whole file, then upsert it in one transaction; raise with every problem."""
    from bot.persistence.db import session_scope

    data, problems = load_file(path)
    if not problems:
        problems = validate(data)
    if problems:
        raise ImportError_(problems)
    with session_scope(url) as session:
        return apply(session, data)
