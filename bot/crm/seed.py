"""Deterministic demo data: named demo customers plus a few hundred generated ones.

The data is built as an import document (the public format of `customer-data.md`) and loaded
through the importer, so the demo exercises the same path as a company's real data.
Dates are relative to the day it runs; for a given day the output is always the same.
Whatever the hour of that day, the dates hold together as a customer would expect them to (the
tests in tests/test_seed_dates.py check it): a bill is issued after its period ends and due
after it is issued; readings, contacts and ticket updates are in the past, before midnight; an
open ticket's expected date and an outage's expected end are ahead.
"""

from __future__ import annotations

import random
import re
import unicodedata
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from faker import Faker

from bot.settings import local_zone

SEED = 20261123

CITIES = [
    ("Milano", ["20121", "20122", "20123", "20135", "20146"]),
    ("Torino", ["10121", "10128", "10138"]),
    ("Bergamo", ["24121", "24122"]),
    ("Brescia", ["25121", "25124"]),
    ("Como", ["22100"]),
    ("Monza", ["20900"]),
    ("Verona", ["37121", "37131"]),
    ("Bologna", ["40121", "40133"]),
    ("Padova", ["35121"]),
    ("Varese", ["21100"]),
]
TARIFFS = {
    "electricity": [("Luce Casa Fissa", "0.1240"), ("Luce Flex Digitale", "0.1175"),
                    ("Luce Business Plus", "0.1390")],
    "gas": [("Gas Casa Fissa", "0.8900"), ("Gas Flex Digitale", "0.8450"),
            ("Gas Business Plus", "0.9600")],
}
FIXED_FEE = Decimal("9.50")
# A bill is issued ISSUE_LAG days after its period ends and is due PAYMENT_TERM days later.
ISSUE_LAG = 5
PAYMENT_TERM = 20
# The latest bill of a supply, by how it stands: days from today to its issue and due dates
# (the demo's overdue bill is 10 days late, its unpaid ones are due in 14 days).
LATEST_BILL = {"overdue": (-30, -10), "unpaid": (-6, 14), "unpaid_high": (-6, 14)}
MOBILE_PREFIXES = ["320", "328", "333", "338", "340", "347", "349", "366", "380", "392"]
TOPICS = ["check_bill", "explain_bill", "pay_bill", "submit_meter_reading", "report_outage",
          "ticket_status", "contract_info", "update_contact", "request_callback"]
TOPIC_SUMMARY = {
    "check_bill": "Chiedeva l'importo da pagare",
    "explain_bill": "Chiedeva perché la bolletta era più alta",
    "pay_bill": "Chiedeva come pagare la bolletta",
    "submit_meter_reading": "Ha comunicato l'autolettura",
    "report_outage": "Segnalava un guasto",
    "ticket_status": "Chiedeva lo stato di una pratica",
    "contract_info": "Chiedeva informazioni sulla tariffa",
    "update_contact": "Ha aggiornato i recapiti",
    "request_callback": "Ha chiesto di essere richiamato",
}

# The named demo customers (see the README): code → what makes each one interesting.
DEMO = {
    "C1000001": "family, Italian, overdue bill, paper bills",
    "C1000002": "senior, Italian, active power outage at home and an open outage ticket",
    "C1000003": "digital, Italian, paperless, news on an open complaint, two supplies",
    "C1000004": "English-speaking, electricity and gas (asks which supply for readings)",
    "C1000005": "business, VIP, unpaid bill, two supplies",
    "C1000006": "family, unresolved WhatsApp contact yesterday about a bill",
}


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds")


class _Builder:
    def __init__(self, today: date, seed: int):
        self.today = today
        self.rng = random.Random(seed)
        self.fake = Faker("it_IT")
        self.fake.seed_instance(seed)
        self.pod_counter = 10000000
        self.pdr_counter = 3000000000000
        self.bill_counter = 100000
        self.ticket_counter = 100

    def at(self, days_ago: int, hour: int = 10, minute: int = 0) -> datetime:
        day = self.today - timedelta(days=days_ago)
        return datetime.combine(day, time(hour, minute), local_zone())

    def phone(self) -> str:
        return "+39" + self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(10**7):07d}"

    def supply(self, kind: str, city: str, postcode: str, business: bool, digital: bool) -> dict:
        if kind == "electricity":
            self.pod_counter += self.rng.randrange(1, 997)
            supply_id = f"IT001E{self.pod_counter:08d}"
        else:
            self.pdr_counter += self.rng.randrange(1, 99991)
            supply_id = f"{self.pdr_counter:014d}"
        tariff, price = TARIFFS[kind][2 if business else (1 if digital else 0)]
        # at least 450 days ago: before the first of the 12 monthly bills' periods
        start = self.today - timedelta(days=self.rng.randrange(450, 3050))
        return {
            "supply_id": supply_id,
            "type": kind,
            "address": self.fake.street_address(),
            "city": city,
            "postcode": postcode,
            "tariff": tariff,
            "unit_price_eur": price,
            "status": "active",
            "start_date": start.isoformat(),
            "end_date": None,
            "readings": [],
        }

    def latest_bill_dates(self, unpaid_last: str) -> tuple[date, date]:
        """Issue and due date of a supply's latest bill: the regular ones of the latest month
        already billed, or those LATEST_BILL sets for an unpaid or overdue one."""
        if unpaid_last in LATEST_BILL:
            issue_in, due_in = LATEST_BILL[unpaid_last]
            return self.today + timedelta(days=issue_in), self.today + timedelta(days=due_in)
        month_end = self.today.replace(day=1) - timedelta(days=1)
        if month_end + timedelta(days=ISSUE_LAG) > self.today:  # not issued yet
            month_end = month_end.replace(day=1) - timedelta(days=1)
        issue = month_end + timedelta(days=ISSUE_LAG)
        return issue, issue + timedelta(days=PAYMENT_TERM)

    def history(self, supply: dict, bills: list, business: bool, unpaid_last: str) -> None:
        """12 monthly readings and bills for a supply; the latest bill is `unpaid_last`, the
        bill of the latest month that ended at least ISSUE_LAG days before it was issued."""
        kind = supply["type"]
        value = Decimal(self.rng.randrange(2000, 40000))
        price = Decimal(supply["unit_price_eur"])
        last_issue, last_due = self.latest_bill_dates(unpaid_last)
        last_end = last_issue - timedelta(days=ISSUE_LAG)
        if (last_end + timedelta(days=1)).day != 1:  # the period ends on a month's last day
            last_end = last_end.replace(day=1) - timedelta(days=1)
        first_month = last_end.replace(day=1)
        months = []
        m = first_month
        for _ in range(12):
            months.append(m)
            m = (m - timedelta(days=1)).replace(day=1)
        months.reverse()
        for i, month_start in enumerate(months):
            next_month = (month_start + timedelta(days=32)).replace(day=1)
            period_end = next_month - timedelta(days=1)
            winter = month_start.month in (11, 12, 1, 2, 3)
            if kind == "electricity":
                use = Decimal(self.rng.randrange(150, 330) * (4 if business else 1))
            else:  # both drawn whatever the season: which months are in winter depends on
                # today's date, and a different number of draws would change every customer
                # generated after this one (the demo population, from one day to the next)
                cold, mild = self.rng.randrange(60, 160), self.rng.randrange(10, 40)
                use = Decimal(cold if winter else mild)
                use *= 3 if business else 1
            estimated = self.rng.random() < 0.2
            if i == len(months) - 1 and unpaid_last in ("overdue", "unpaid_high"):
                use *= Decimal("1.6")  # the last bill is noticeably higher
                estimated = True
            value += use
            supply["readings"].append(
                {"date": period_end.isoformat(), "value": str(value),
                 "source": "estimated" if estimated else "actual"}
            )
            issue = period_end + timedelta(days=ISSUE_LAG)
            due = issue + timedelta(days=PAYMENT_TERM)
            status = "paid"
            if i == len(months) - 1:
                issue, due = last_issue, last_due
                status = {"overdue": "overdue", "unpaid": "unpaid",
                          "unpaid_high": "unpaid"}.get(unpaid_last, "paid")
            self.bill_counter += 1
            bills.append({
                "number": f"B{period_end.year}-{self.bill_counter:07d}",
                "supply_id": supply["supply_id"],
                "period_start": month_start.isoformat(),
                "period_end": period_end.isoformat(),
                "issue_date": issue.isoformat(),
                "due_date": due.isoformat(),
                "amount_eur": _money(use * price + FIXED_FEE),
                "status": status,
                "estimated": estimated,
            })

    def ticket(self, kind: str, status: str, subject: str, channel: str, days_ago: int,
               updated_days_ago: int | None, eta_days: int | None,
               opened: tuple[int, int] = (9, 15), updated: tuple[int, int] = (11, 0)) -> dict:
        """A ticket opened `days_ago` (at `opened`, hour and minute), last updated
        `updated_days_ago` (at `updated`), expected to be done in `eta_days`."""
        self.ticket_counter += 1
        opened_at = self.at(days_ago, *opened)
        return {
            "ticket_id": f"T-{opened_at.year}-{self.ticket_counter:06d}",  # the year it opened
            "kind": kind,
            "status": status,
            "subject": subject,
            "channel": channel,
            "opened_at": _iso(opened_at),
            "updated_at": _iso(self.at(updated_days_ago, *updated))
            if updated_days_ago is not None else None,
            "eta": ((self.today + timedelta(days=eta_days)).isoformat()
                    if eta_days is not None else None),
        }

    def customer(self, code: str, persona: str, *, first: str | None = None,
                 last: str | None = None, language: str = "it", vip: bool = False,
                 paperless: bool | None = None, kinds: tuple[str, ...] = ("electricity",),
                 city_postcode: tuple[str, str] | None = None, unpaid_last: str = "paid",
                 company: str | None = None) -> dict:
        fake = self.fake
        female = self.rng.random() < 0.5
        first = first or (fake.first_name_female() if female else fake.first_name_male())
        last = last or fake.last_name()
        if city_postcode is None:
            city, postcodes = self.rng.choice(CITIES)
            city_postcode = (city, self.rng.choice(postcodes))
        digital = persona == "digital"
        business = persona == "business"
        if paperless is None:
            paperless = digital or self.rng.random() < (0.1 if persona == "senior" else 0.45)
        email_user = unicodedata.normalize("NFKD", f"{first}.{last}".lower())
        email_user = re.sub(r"[^a-z.]", "", email_user.encode("ascii", "ignore").decode())
        email = f"{email_user}@{self.rng.choice(['example.it', 'example.com', 'posta.example.it'])}"
        if persona == "senior" and self.rng.random() < 0.4:
            email = None
        phone = self.phone()
        tax_code = fake.ssn()
        iban = fake.iban() if (digital or business or self.rng.random() < 0.35) else None
        preferred = {"digital": "whatsapp", "senior": "phone", "business": "email",
                     "family": self.rng.choice(["web", "whatsapp", "email"])}[persona]
        customer = {
            "customer_code": code,
            "first_name": company or first,
            "last_name": last if company is None else f"({first} {last})",
            "language": language,
            "persona": persona,
            "vip": vip,
            "email": email,
            "phone": phone,
            "tax_code": tax_code if company is None else None,
            "preferred_channel": preferred,
            "paperless": paperless if email else False,
            "direct_debit_iban": iban,
            "identities": [],
            "supplies": [],
            "bills": [],
            "tickets": [],
            "interactions": [],
        }
        if persona in ("digital", "family") and self.rng.random() < 0.5:
            customer["identities"].append(
                {"channel": "whatsapp", "external_id": phone, "verified": True}
            )
        for i, kind in enumerate(kinds):
            supply = self.supply(kind, city_postcode[0], city_postcode[1], business, digital)
            customer["supplies"].append(supply)
            self.history(supply, customer["bills"], business, unpaid_last if i == 0 else "paid")
        for _ in range(self.rng.randrange(0, 4)):
            topic = self.rng.choice(TOPICS)
            days = self.rng.randrange(8, 180)
            customer["interactions"].append({
                "at": _iso(self.at(days, self.rng.randrange(8, 20), self.rng.randrange(60))),
                "channel": self.rng.choice(
                    ["web", "whatsapp", "phone", "email", "store", "telegram"]),
                "topic": topic,
                "outcome": self.rng.choice(["resolved", "resolved", "resolved", "handover"]),
                "summary": TOPIC_SUMMARY[topic],
            })
        if self.rng.random() < 0.15:
            customer["tickets"].append(self.ticket(
                "request", "closed", "Richiesta duplicato bolletta", "email",
                self.rng.randrange(60, 300), self.rng.randrange(30, 59), None))
        return customer


# English customers added after the generated ones: every persona with each kind of supply,
# with the latest bill overdue, unpaid and paid.
ENGLISH_SET = [(persona, kinds, unpaid) for unpaid in ("overdue", "unpaid", "paid")
               for persona in ("family", "digital", "senior", "business")
               for kinds in (("electricity",), ("gas",), ("electricity", "gas"))]


def build_document(today: date | None = None, seed: int = SEED, generated: int = 220) -> dict:
    """The demo data as an import document."""
    today = today or datetime.now(local_zone()).date()
    b = _Builder(today, seed)
    customers = []

    maria = b.customer("C1000001", "family", first="Maria", last="Rossi", paperless=False,
                       city_postcode=("Milano", "20146"), unpaid_last="overdue")
    maria["email"] = "maria.rossi@example.it"
    customers.append(maria)

    giuseppe = b.customer("C1000002", "senior", first="Giuseppe", last="Bianchi",
                          paperless=False, city_postcode=("Bergamo", "24121"))
    giuseppe["email"] = "giuseppe.bianchi@example.it"
    # the outage at his postcode began last night (see `outages` below): he phoned at once
    giuseppe["tickets"].append(b.ticket("outage", "in_progress", "Interruzione di corrente in casa",
                                        "phone", 1, 1, 1, opened=(22, 40), updated=(23, 5)))
    customers.append(giuseppe)

    laura = b.customer("C1000003", "digital", first="Laura", last="Conti", paperless=True,
                       kinds=("electricity", "gas"), city_postcode=("Torino", "10128"))
    laura["email"] = "laura.conti@example.it"
    laura["tickets"].append(b.ticket("complaint", "in_progress",
                                     "Reclamo per conguaglio non dovuto", "web", 12, 1, 5))
    laura["identities"] = [{"channel": "telegram", "external_id": "481516234", "verified": True}]
    customers.append(laura)

    john = b.customer("C1000004", "digital", first="John", last="Smith", language="en",
                      paperless=True, kinds=("electricity", "gas"),
                      city_postcode=("Milano", "20135"), unpaid_last="unpaid")
    john["email"] = "john.smith@example.com"
    john["tax_code"] = None
    customers.append(john)

    esposito = b.customer("C1000005", "business", first="Marco", last="Esposito", vip=True,
                          paperless=True, kinds=("electricity", "gas"),
                          city_postcode=("Brescia", "25124"), unpaid_last="unpaid_high",
                          company="Ferramenta Esposito Srl")
    esposito["email"] = "amministrazione@ferramenta-esposito.example.it"
    customers.append(esposito)

    anna = b.customer("C1000006", "family", first="Anna", last="Ferrari", paperless=False,
                      city_postcode=("Verona", "37121"), unpaid_last="unpaid_high")
    anna["email"] = "anna.ferrari@example.it"
    anna["identities"] = [{"channel": "whatsapp", "external_id": anna["phone"], "verified": True}]
    anna["interactions"].append({
        "at": _iso(b.at(1, 18, 2)), "channel": "whatsapp", "topic": "check_bill",
        "outcome": "abandoned", "summary": "Chiedeva chiarimenti sull'importo dell'ultima bolletta",
    })
    customers.append(anna)

    personas = ["family"] * 40 + ["digital"] * 25 + ["senior"] * 20 + ["business"] * 15
    for i in range(generated):
        persona = b.rng.choice(personas)
        kinds = b.rng.choice([("electricity",), ("electricity",), ("gas",), ("electricity", "gas")])
        unpaid = b.rng.choice(["paid"] * 6 + ["unpaid", "overdue", "unpaid_high"])
        c = b.customer(f"C{1000100 + i:07d}", persona,
                       language="en" if b.rng.random() < 0.08 else "it",
                       vip=persona == "business" and b.rng.random() < 0.5, kinds=kinds,
                       unpaid_last=unpaid,
                       company=f"{b.fake.last_name()} {b.rng.choice(['Srl', 'Snc', 'Sas'])}"
                       if persona == "business" else None)
        if b.rng.random() < 0.1:
            c["tickets"].append(b.ticket(
                b.rng.choice(["request", "complaint"]), b.rng.choice(["open", "in_progress"]),
                b.rng.choice(["Verifica consumi", "Rimborso deposito cauzionale",
                              "Errore nei dati anagrafici"]),
                b.rng.choice(["web", "phone", "email"]), b.rng.randrange(2, 20),
                b.rng.randrange(1, 3), b.rng.randrange(2, 15)))
        customers.append(c)

    # English speakers are few among the generated customers, and the conversation suite picks
    # among them by persona, supply, bills and tickets: these cover every combination. Each
    # draws from its own sequence, so the ones above are left as they are.
    for j, (persona, kinds, unpaid) in enumerate(ENGLISH_SET):
        b.rng = random.Random(seed * 1_000_003 + j)
        b.fake.seed_instance(seed * 1_000_003 + j)
        where = None
        if j % 3 == 1:  # at the postcodes of the demo's outages (below)
            where = ("Torino", "10121") if "gas" in kinds else ("Bergamo", "24121")
        c = b.customer(f"C{1000100 + generated + j:07d}", persona, language="en",
                       city_postcode=where, kinds=kinds, unpaid_last=unpaid,
                       company=f"{b.fake.last_name()} Ltd" if persona == "business" else None)
        if j % 2 == 0:  # a complaint open
            c["tickets"].append(b.ticket("complaint", "in_progress", "Reclamo sull'importo",
                                         "email", b.rng.randrange(2, 20), 1, None))
        elif j % 4 == 1:  # a request open
            c["tickets"].append(b.ticket("request", "open", "Verifica consumi", "web",
                                         b.rng.randrange(2, 20), 1, b.rng.randrange(2, 15)))
        customers.append(c)

    began = b.at(1, 22, 15)  # last night: in the past whatever the hour the demo starts
    outages = [
        {"outage_id": f"O-{began.year}-0042", "type": "electricity",
         "postcodes": ["24121", "24122"],
         "started_at": _iso(began),
         "expected_end": _iso(b.at(-1, 13, 0)),
         "description": "Guasto alla cabina secondaria"},
        {"outage_id": f"O-{began.year}-0043", "type": "gas", "postcodes": ["10121"],
         "started_at": _iso(began),
         "expected_end": _iso(b.at(-1, 6, 0)),
         "description": "Lavori urgenti sulla rete di distribuzione"},
    ]
    return {"customers": customers, "outages": outages}


def seed_demo(url: str | None = None, today: date | None = None, mark: bool = True) -> int:
    """Load the demo data; returns the number of customers.

    The data is marked as the demo's (a `counters` row, `bot.production.DEMO_MARKER`), so that
    the production profile refuses to start on it. `mark=False` loads the same records as an
    ordinary import (the production-profile tests use them as the operator's own data)."""
    from bot.crm.importer import apply, validate
    from bot.persistence.db import session_scope
    from bot.persistence.tables import Counter

    document = build_document(today)
    problems = validate(document)
    if problems:  # a bug in this module, never the user's fault
        raise RuntimeError("demo data invalid: " + "; ".join(problems[:5]))
    with session_scope(url) as session:
        apply(session, document)
        if mark and session.get(Counter, "demo_data") is None:
            session.add(Counter(name="demo_data", value=1))
    return len(document["customers"])


def is_empty(url: str | None = None) -> bool:
    from sqlalchemy import func, select

    from bot.crm.models import Customer
    from bot.persistence.db import session_scope

    with session_scope(url) as session:
        return session.execute(select(func.count(Customer.id))).scalar_one() == 0


__all__ = ["build_document", "seed_demo", "is_empty", "DEMO"]
