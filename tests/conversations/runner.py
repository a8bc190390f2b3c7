"""Runs one conversation of the suite against a bot and checks it: replies, facts, side effects.

Pure functions around three things the caller gives: `talk(sender, text, token) -> replies`
(tests/stack.py's Stack.talk, or the benchmark's client), a factory of SQLAlchemy sessions on
the stack's database, and `token_for(customer_code)` for signed-in customers. Nothing here starts
a process; tests/conversations/test_conversations.py and bench/conversations.py do.

A reply is recognised by facts from the database (tests/conversations/facts.py) and by the
response texts of the domain the bot runs with (read at run time, so a reworded response is
still recognised), never by a sentence copied into the test.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm import models as m
from bot.crm.validation import normalise_iban, normalise_phone
from bot.persistence import tables
from tests.conversations.facts import FactContext, FactError, Value, compute, customer_row
from tests.conversations.schema import (
    PLACEHOLDER,
    Conversation,
    Expect,
    FactRef,
    Requires,
    load_all,
)

ROOT = Path(__file__).resolve().parents[2]
Talk = Callable[[str, str, Optional[str]], List[Dict[str, Any]]]
Sessions = Callable[[], AbstractContextManager]  # e.g. bot.persistence.db.session_scope

# What a reply asks for: the responses that ask it (Rasa's utter_ask_<slot> and the like).
ASKS: Dict[str, Tuple[str, ...]] = {
    "supply": ("utter_ask_supply_choice",),
    "reading": ("utter_ask_reading_value",),
    "iban": ("utter_ask_iban_input", "utter_direct_debit_current"),
    "contact": ("utter_ask_new_contact",),
    "otp": ("utter_ask_contact_otp", "utter_ask_otp_input", "utter_otp_sent"),
    "customer_code": ("utter_ask_code_input",),
    "complaint": ("utter_ask_complaint_text", "utter_complaint_too_short"),
    "callback_phone": ("utter_ask_callback_phone", "utter_ask_callback_phone_none"),
    "callback_slot": ("utter_ask_callback_slot",),
    "rating": ("utter_goodbye", "utter_ask_feedback"),
}
# A reply that puts the customer through to a person, or says honestly that nobody is free
# and offers a call-back or a written request instead (the tests' desk has nobody online).
HANDOVER = ("utter_handover_queued", "utter_handover_no_agent", "utter_handover_closed",
            "utter_handover_alternatives", "utter_misunderstood_handover")
PERSON = re.compile(r"\b(person[ae]?|operator[ei]|operatrice|agents?|human|umano|consulente|"
                    r"advisor|customer care|servizio clienti)\b")
# Out of scope, when no response of the domain matches: the reply says it cannot do it and
# names what the company does (electricity and gas).
OUR_TRADE = re.compile(r"\b(luce e (il )?gas|elettricita e (il )?gas|energia elettrica e (il )?gas"
                       r"|electricity and gas|power and gas|energy and gas)\b")
CANNOT = re.compile(r"\b(non (posso|riesco|e qualcosa|mi occupo|gestisco|trattiamo|forniamo|"
                    r"offriamo|fa parte|e un servizio)|(can ?not|can't|don't|do not|isn't|is not|"
                    r"not something|only|solo|soltanto|unicamente))\b")


# --- text ----------------------------------------------------------------------------------

def plain(text: str) -> str:
    """Whitespace of every kind as one space (Babel puts no-break spaces in amounts)."""
    return re.sub(r"\s+", " ", (text or "").replace("\u00a0", " ").replace("\u202f", " ")).strip()


def folded(text: str) -> str:
    """Lower case, accents removed, apostrophes straight: for meaning checks on wording."""
    text = unicodedata.normalize("NFKD", plain(text).lower().replace("’", "'"))
    return "".join(c for c in text if not unicodedata.combining(c))


def reply_texts(replies: Sequence[Mapping[str, Any]]) -> List[str]:
    return [plain(r.get("text") or "") for r in replies if (r.get("text") or "").strip()]


def is_silent(replies: Sequence[Mapping[str, Any]]) -> bool:
    """No text, buttons, image or custom payload at all."""
    return not any((r.get("text") or "").strip() or r.get("buttons") or r.get("image")
                   or r.get("custom") or r.get("attachment") for r in replies)


# --- the domain's responses ----------------------------------------------------------------

@lru_cache(maxsize=2)
def load_domain(root: Path = ROOT) -> Dict[str, Any]:
    """The responses of every domain file (the bot's texts, in both languages), read once per
    process (the bot under test reads them once too)."""
    responses: Dict[str, Any] = {}
    for path in sorted((root / "domain").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        responses.update(data.get("responses") or {})
    return {"responses": responses}


def template_pattern(text: str) -> re.Pattern:
    """A response text as a regex: each {variable} matches anything, spacing is free."""
    parts = PLACEHOLDER.split(plain(text))
    literal = [re.sub(r"\\ ", r"\\s+", re.escape(p)) for p in parts[0::2]]
    return re.compile(".+?".join(literal), re.IGNORECASE | re.DOTALL)


class Responses:
    """The domain's response texts as patterns, to recognise which response a message is."""

    def __init__(self, domain: Mapping[str, Any]):
        self.domain = domain
        self.patterns: Dict[str, List[re.Pattern]] = {
            name: [template_pattern(v["text"]) for v in variations or [] if v.get("text")]
            for name, variations in (domain.get("responses") or {}).items()}

    def match(self, texts: Iterable[str], names: Iterable[str]) -> bool:
        """Whether a bot message is one of these responses (any variation, any language)."""
        patterns = [p for name in names for p in self.patterns.get(name, [])]
        return any(p.search(t) for t in texts for p in patterns)

    def out_of_scope(self, texts: List[str]) -> bool:
        """An honest "not something I can do here": a response of the domain meant for it, or
        a reply that says it cannot and that the company supplies electricity and gas."""
        if self.match(texts, [n for n in self.patterns if "out_of_scope" in n]):
            return True
        joined = folded(" ".join(texts))
        return bool(OUR_TRADE.search(joined) and CANNOT.search(joined))


# --- the history before and after ----------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """What a conversation may change, read before and after it."""

    tickets: Dict[str, Tuple[str, str]]  # ticket id -> (kind, status)
    readings: Dict[Tuple[str, str, str], Tuple[Decimal, Optional[datetime]]]
    email: Optional[str] = None
    phone: Optional[str] = None
    iban: Optional[str] = None
    paperless: Optional[bool] = None
    outbox_id: int = 0

    def open_kinds(self) -> set:
        return {kind for kind, status in self.tickets.values() if status in ("open", "in_progress")}


def snapshot(session: Session, customer: Optional[str], sender: str) -> Snapshot:
    outbox = session.execute(select(func.max(tables.OutboxMessage.id))).scalar() or 0
    rows = session.execute(select(m.Ticket).where(m.Ticket.conversation_id == sender)).scalars()
    tickets = {t.ticket_id: (t.kind, t.status) for t in rows}
    if not customer:
        return Snapshot(tickets, {}, outbox_id=outbox)
    c = session.execute(select(m.Customer).where(m.Customer.customer_code == customer)).scalar_one()
    tickets.update({t.ticket_id: (t.kind, t.status) for t in c.tickets})
    readings = {(s.supply_id, r.date.isoformat(), r.source): (r.value, r.received_at)
                for s in c.supplies for r in s.readings}
    return Snapshot(tickets, readings, c.email, c.phone, c.direct_debit_iban, c.paperless, outbox)


def changed(before: Snapshot, after: Snapshot, aspect: str) -> bool:
    if aspect == "tickets":
        return set(after.tickets) != set(before.tickets)
    if aspect == "readings":
        return after.readings != before.readings
    return getattr(before, aspect) != getattr(after, aspect)


def new_ticket_kinds(before: Snapshot, after: Snapshot) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for ticket_id, (kind, _) in after.tickets.items():
        if ticket_id not in before.tickets:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def duplicate_tickets(before: Snapshot, after: Snapshot, expected: Mapping[str, int]) -> int:
    """Tickets that duplicate one opened earlier in the conversation, or one already open when
    it began (unless the conversation expects a new one of that kind)."""
    extra = 0
    for kind, count in new_ticket_kinds(before, after).items():
        extra += count - 1
        if kind in before.open_kinds() and not expected.get(kind):
            extra += 1
    return extra


def has_open_handover(session: Session, sender: str) -> bool:
    """The conversation waits for, or is with, an agent: the bot is silent then."""
    from bot.handover.models import OPEN_STATES, Handover

    return session.execute(select(Handover.id).where(
        Handover.conversation_id == sender, Handover.state.in_(OPEN_STATES))).first() is not None


def any_handover(session: Session, sender: str) -> bool:
    from bot.handover.models import Handover

    return session.execute(select(Handover.id).where(
        Handover.conversation_id == sender)).first() is not None


# --- which customer a conversation is about ------------------------------------------------

# Demo customers other tests read or change (tests/integration, tests/security): conversations
# name them explicitly, read them and store readings, but never pick them, and the format tests
# check that they open no tickets and change no contact, IBAN or paperless setting of theirs.
NAMED = frozenset(f"C100000{i}" for i in range(1, 7))
RESERVED = frozenset({"C1000100", "C1000150", "C1000318"})  # erased or linked by other tests


def customer_profiles(session: Session, codes: Optional[Iterable[str]] = None,
                      now: Optional[datetime] = None) -> Dict[str, Dict[str, Any]]:
    """What `Requires` can ask of each customer, read in a few queries."""
    from sqlalchemy.orm import selectinload

    from bot.crm.card import active_outages

    query = select(m.Customer).options(selectinload(m.Customer.supplies),
                                       selectinload(m.Customer.bills),
                                       selectinload(m.Customer.tickets))
    if codes is not None:
        query = query.where(m.Customer.customer_code.in_(list(codes)))
    customers = session.execute(query).scalars().all()
    postcodes = {s.postcode for c in customers for s in c.supplies}
    outages = [(o.type, {p.postcode for p in o.postcodes})
               for o in active_outages(session, postcodes, now or datetime.now(timezone.utc))]
    profiles = {}
    for c in customers:
        active = [s for s in c.supplies if s.status == "active"]
        profiles[c.customer_code] = {
            "language": c.language, "persona": c.persona, "vip": c.vip,
            "supplies": sorted({s.type for s in active}), "paperless": c.paperless,
            "email": bool(c.email), "iban": bool(c.direct_debit_iban),
            "open_bills": any(b.status in ("unpaid", "overdue") for b in c.bills),
            "open_kinds": {t.kind for t in c.tickets if t.status in ("open", "in_progress")},
            "outages": {kind for kind, codes_ in outages for s in active
                        if s.type == kind and s.postcode in codes_},
            "any_outage": any(s.postcode in codes_ for _, codes_ in outages for s in active),
        }
    return profiles


def unmet(code: str, profile: Mapping[str, Any], req: Requires) -> List[str]:
    """What the customer lacks of what the conversation assumes (empty when all is there)."""
    problems = []
    for key, wanted in req.dict(exclude_none=True).items():
        if key == "open_tickets":
            missing = set(wanted) - profile["open_kinds"]
            if missing:
                problems.append(f"{code} has no open ticket of kind {sorted(missing)}")
        elif key == "no_open_tickets":
            present = set(wanted) & profile["open_kinds"]
            if present:
                problems.append(f"{code} has open tickets of kind {sorted(present)}")
        elif key == "supplies":
            if sorted(set(wanted)) != profile["supplies"]:
                problems.append(f"{code} supplies {profile['supplies']}, not {sorted(wanted)}")
        elif key == "persona":
            allowed = [wanted] if isinstance(wanted, str) else wanted
            if profile["persona"] not in allowed:
                problems.append(f"{code} persona is {profile['persona']!r}, not {wanted!r}")
        elif key == "outage":
            outages = profile["outages"]
            has = profile["any_outage"] if isinstance(wanted, bool) else wanted in outages
            if has != bool(wanted):
                problems.append(f"{code} known outages {sorted(outages)}, wanted {wanted!r}")
        elif profile[key] != wanted:
            problems.append(f"{code} {key} is {profile[key]!r}, not {wanted!r}")
    return problems


def unmet_requirements(session: Session, customer: str, req: Requires,
                       now: Optional[datetime] = None) -> List[str]:
    profile = customer_profiles(session, [customer], now).get(customer)
    if profile is None:
        return [f"no customer {customer}"]
    return unmet(customer, profile, req)


def mutations(conversation: Conversation) -> set:
    """What the conversation may change in the history, by aspect (readings and interactions
    are left out: every fact about them is relative). A signed-in outage report may open a
    fault ticket whatever the conversation checks, so it counts as one."""
    found = set()
    for a in conversation.after:
        t = a.tickets_opened
        if t is not None and not isinstance(t, int) and t.kind and t.count:
            found.add(f"ticket:{t.kind}")
        if a.contact_is:
            found.add("contact")
        if a.direct_debit_iban:
            found.add("iban")
        if a.paperless and not (conversation.requires and conversation.requires.paperless):
            found.add("paperless")  # switched on (not: already on)
    found |= {f"ticket:{g.ticket.kind}" for g in conversation.given}
    if "report_outage" in conversation.skills and conversation.customer != "anonymous":
        found.add("ticket:outage")
    if "{otp}" in " ".join(t.user for t in conversation.turns):
        found.add("otp")
    return found


def depends_on(req: Requires) -> set:
    """The aspects (as in `mutations`) a conversation's assumptions are about. Changes only
    ever add (an e-mail, an IBAN, paperless on), so only assuming their absence depends."""
    found = {aspect for aspect, key in (("paperless", "paperless"), ("iban", "iban"),
                                        ("contact", "email"))
             if getattr(req, key) is False}
    return found | {f"ticket:{k}" for k in (req.open_tickets or []) + (req.no_open_tickets or [])}


def effective_requires(conversation: Conversation) -> Requires:
    """`requires` with the defaults of a picked customer: the conversation's language, a
    family or digital persona and no VIP handling, unless the file says otherwise."""
    req = conversation.requires or Requires()
    if conversation.customer != "pick":
        return req
    defaults = {"language": conversation.lang}
    if req.persona is None:
        defaults.update(persona=["family", "digital"], vip=False)
    return req.copy(update={k: v for k, v in defaults.items() if getattr(req, k) is None})


class AssignmentError(Exception):
    pass


MAX_CODES = 2  # one-time codes sent to one customer by the suite (limited per hour)


def assign_customers(conversations: Sequence[Conversation], session: Session,
                     now: Optional[datetime] = None) -> Dict[str, str]:
    """The customer of every conversation: its own code, or for `customer: pick` a generated
    demo customer that meets its (effective) `requires`. Two conversations share a customer
    only if neither changes what the other changes or assumes; read-only ones share freely,
    the least used customer first. Deterministic for a given database, so the format tests
    check the very choice the stack run makes."""
    profiles = customer_profiles(session, now=now)
    candidates = sorted(c for c in profiles if c not in NAMED | RESERVED)
    used: Dict[str, int] = {}
    changed: Dict[str, set] = {}
    assumed: Dict[str, set] = {}
    codes: Dict[str, int] = {}
    chosen: Dict[str, str] = {}
    for conv in conversations:
        if conv.customer != "pick":
            chosen[conv.id] = conv.customer
            continue
        req = effective_requires(conv)
        changes = mutations(conv) - {"otp"}
        needs = depends_on(req) - changes
        otp = "otp" in mutations(conv)

        def free(code: str) -> bool:
            return (not changes & (changed.get(code, set()) | assumed.get(code, set()))
                    and not needs & changed.get(code, set())
                    and codes.get(code, 0) + otp <= MAX_CODES
                    and not unmet(code, profiles[code], req))

        options = [c for c in candidates if free(c)]
        if not options:
            raise AssignmentError(f"{conv.id}: no free demo customer meets {req}")
        code = min(options, key=lambda c: (used.get(c, 0), c))
        used[code] = used.get(code, 0) + 1
        changed.setdefault(code, set()).update(changes)
        assumed.setdefault(code, set()).update(needs)
        codes[code] = codes.get(code, 0) + otp
        chosen[conv.id] = code
    return chosen


def apply_given(session: Session, conversation: Conversation, customer: str,
                now: Optional[datetime] = None) -> List[str]:
    """Write the conversation's `given` records; returns the ticket ids created."""
    from datetime import timedelta

    from bot.crm.service import _next_ticket_id

    now = now or datetime.now(timezone.utc)
    created = []
    c = customer_row(FactContext(session, customer))
    for item in conversation.given:
        t = item.ticket
        opened = now - timedelta(days=t.days_ago, hours=2)
        ticket_id = _next_ticket_id(session, now.year)
        session.add(m.Ticket(
            customer_id=c.id, ticket_id=ticket_id, kind=t.kind, status=t.status,
            subject=t.subject, channel="web", opened_at=opened, updated_at=opened,
            eta=(now + timedelta(days=t.eta_days)).date() if t.eta_days is not None else None,
            description=t.subject, callback_phone=c.phone if t.kind == "callback" else None,
            callback_slot=t.callback_slot, conversation_id=f"given-{uuid.uuid4().hex[:8]}"))
        created.append(ticket_id)
    session.flush()
    return created


# --- results -------------------------------------------------------------------------------

@dataclass
class Failure:
    turn: Optional[int]  # 1-based; None for checks after the conversation
    check: str
    detail: str

    def __str__(self) -> str:
        where = {None: "after", 0: "before"}.get(self.turn, f"turn {self.turn}")
        return f"{where}: {self.check}: {self.detail}"


@dataclass
class Exchange:
    user: str
    replies: List[str]
    silent: bool = False
    with_agent: bool = False


@dataclass
class Result:
    conversation: Conversation
    sender: str
    exchanges: List[Exchange] = field(default_factory=list)
    failures: List[Failure] = field(default_factory=list)
    silent_turns: int = 0
    duplicate_tickets: int = 0
    aborted: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures

    def fail(self, turn: Optional[int], check: str, detail: str) -> None:
        self.failures.append(Failure(turn, check, detail))

    def report(self) -> str:
        """The transcript with every failed check under its turn, for a test failure."""
        c = self.conversation
        lines = [f"{c.id} ({c.file}, {c.lang}, {c.customer}, sender {self.sender})"]
        lines += [f"  ✗ {f}" for f in self.failures if f.turn == 0]
        for number, ex in enumerate(self.exchanges, 1):
            lines.append(f"  [{number}] customer: {ex.user}")
            lines += [f"       bot: {r}" for r in ex.replies] or ["       bot: (silent)"]
            lines += [f"       ✗ {f.check}: {f.detail}" for f in self.failures if f.turn == number]
        lines += [f"  ✗ {f}" for f in self.failures if f.turn is None]
        return "\n".join(lines)


# --- checks --------------------------------------------------------------------------------

@dataclass
class Run:
    """One conversation being run: where its facts come from and what it said so far."""

    conversation: Conversation
    sessions: Sessions
    sender: str
    responses: Responses
    lang: str
    customer: Optional[str] = None
    tickets_before: frozenset = frozenset()
    variables: Dict[str, Value] = field(default_factory=dict)

    @property
    def domain(self) -> Mapping[str, Any]:
        return self.responses.domain

    def context(self, session: Session) -> FactContext:
        return FactContext(session, self.customer, self.lang, self.sender, self.tickets_before,
                           self.domain)

    def value(self, session: Session, ref: FactRef) -> Value:
        if ref.var:
            return self.variables[ref.var]
        return compute(ref.fact, self.context(session), ref.params())

    def said(self, session: Session, ref: FactRef) -> str:
        return plain(self.value(session, ref).said(self.lang, self.domain))


def contains(texts: List[str], wanted: str) -> bool:
    return folded(wanted) in folded(" \n ".join(texts))


def check_turn(run: Run, session: Session, expect: Expect, texts: List[str],
               result: Result, turn: int) -> None:
    """One expectation on one turn's replies; a miss is added to `result`."""
    name = next(k for k, v in expect.dict().items() if v is not None)
    responses = run.responses
    try:
        if expect.says is not None:
            for ref in expect.says:
                wanted = run.said(session, ref)
                if not contains(texts, wanted):
                    result.fail(turn, "says", f"{ref.label()} = {wanted!r} not in the reply")
        elif expect.says_first is not None:
            wanted = run.said(session, expect.says_first)
            if not texts or not contains(texts[:1], wanted):
                result.fail(turn, "says_first", f"{wanted!r} not in the first message")
        elif expect.says_any is not None:
            wanted = [run.said(session, w) if isinstance(w, FactRef) else w
                      for w in expect.says_any]
            if not any(contains(texts, w) for w in wanted):
                result.fail(turn, "says_any", f"none of {wanted} in the reply")
        elif expect.not_says is not None:
            for item in expect.not_says:
                wanted = run.said(session, item) if isinstance(item, FactRef) else item
                if contains(texts, wanted):
                    result.fail(turn, "not_says", f"{wanted!r} is in the reply")
        elif expect.asks_for is not None:
            if not responses.match(texts, ASKS[expect.asks_for]):
                result.fail(turn, "asks_for", f"the reply does not ask for {expect.asks_for}")
        elif expect.not_asks_for is not None:
            if responses.match(texts, ASKS[expect.not_asks_for]):
                result.fail(turn, "not_asks_for", f"the reply asks for {expect.not_asks_for} "
                            "again")
        elif expect.offers is not None:
            if not PERSON.search(folded(" ".join(texts))):
                result.fail(turn, "offers", "the reply offers no person")
        elif expect.hands_over is not None:
            done = (responses.match(texts, HANDOVER)
                    or any_handover(session, run.sender))
            if done != expect.hands_over:
                result.fail(turn, "hands_over", "handed over" if done else "not handed over")
        elif expect.out_of_scope is not None:
            said = responses.out_of_scope(texts)
            if said != expect.out_of_scope:
                result.fail(turn, "out_of_scope", "answered as out of scope" if said
                            else "not answered as out of scope")
        elif expect.says_response is not None:
            if not responses.match(texts, expect.says_response):
                result.fail(turn, "says_response", f"none of {expect.says_response}")
        elif expect.language is not None:
            from bot.language import detect

            found = detect(" ".join(texts))
            if found != expect.language:
                result.fail(turn, "language", f"the reply is in {found}, not {expect.language}")
    except FactError as e:
        result.fail(turn, name, f"fact not available: {e}")


def expected_kinds(conversation: Conversation) -> Dict[str, int]:
    kinds: Dict[str, int] = {}
    for a in conversation.after:
        t = a.tickets_opened
        if t is not None and not isinstance(t, int) and t.kind:
            kinds[t.kind] = t.count
    return kinds


def check_after(run: Run, session: Session, before: Snapshot, after: Snapshot,
                result: Result) -> None:
    """The database checks of `after:` and the implicit no-duplicate rule."""
    conv = run.conversation
    opened = new_ticket_kinds(before, after)
    for a in conv.after:
        try:
            _check_after_item(run, session, a, before, after, opened, result)
        except FactError as e:
            result.fail(None, "after", f"fact not available: {e}")
    result.duplicate_tickets = duplicate_tickets(before, after, expected_kinds(conv))
    if result.duplicate_tickets:
        result.fail(None, "no_duplicate_tickets",
                    f"{result.duplicate_tickets} duplicate ticket(s); opened {opened}")


def _check_after_item(run: Run, session: Session, a, before: Snapshot, after: Snapshot,
                      opened: Dict[str, int], result: Result) -> None:
    if a.tickets_opened is not None:
        t = a.tickets_opened
        kind, count = (None, t) if isinstance(t, int) else (t.kind, t.count)
        got = sum(opened.values()) if kind is None else opened.get(kind, 0)
        if got != count:
            result.fail(None, "tickets_opened", f"{got} {kind or ''} ticket(s) opened, "
                        f"expected {count}; opened {opened}")
    elif a.reading_stored is not None:
        supply = _supply_id(run, session, a.reading_stored.supply)
        wanted = Decimal(run.value(session, a.reading_stored.value).raw)
        stored = [(key, value) for key, value in after.readings.items()
                  if key[0] == supply and key[2] == "self" and before.readings.get(key) != value]
        if not any(value[0] == wanted for _, value in stored):
            got = [str(v[0]) for _, v in stored] or "nothing"
            result.fail(None, "reading_stored", f"{supply}: expected {wanted}, stored {got}")
    elif a.readings_stored is not None:
        got = sum(1 for k, v in after.readings.items() if before.readings.get(k) != v)
        if got != a.readings_stored:
            result.fail(None, "readings_stored", f"{got} stored, expected {a.readings_stored}")
    elif a.contact_is is not None:
        if a.contact_is.email:
            if (after.email or "").lower() != a.contact_is.email.lower():
                result.fail(None, "contact_is", f"e-mail is {after.email!r}")
        elif after.phone != normalise_phone(a.contact_is.phone):
            result.fail(None, "contact_is", f"phone is {after.phone!r}")
    elif a.direct_debit_iban is not None:
        if after.iban != normalise_iban(a.direct_debit_iban):
            result.fail(None, "direct_debit_iban", f"IBAN on file is {after.iban!r}")
    elif a.paperless is not None:
        if after.paperless != a.paperless:
            result.fail(None, "paperless", f"paperless is {after.paperless}")
    elif a.unchanged is not None:
        for aspect in a.unchanged:
            if changed(before, after, aspect):
                result.fail(None, "unchanged", f"{aspect} changed")


def _supply_id(run: Run, session: Session, kind: Optional[str]) -> str:
    from tests.conversations.facts import active_supply

    return active_supply(run.context(session), kind).supply_id


# --- running -------------------------------------------------------------------------------

def one_time_code(session: Session, customer: str, since_id: int) -> Optional[str]:
    """The newest one-time code sent to the customer's contact since the conversation began
    (the embedded profile's outbox)."""
    c = customer_row(FactContext(session, customer))
    destination = c.email or c.phone
    body = session.execute(
        select(tables.OutboxMessage.body).where(tables.OutboxMessage.destination == destination,
                                           tables.OutboxMessage.id > since_id)
        .order_by(tables.OutboxMessage.id.desc())).scalars().first()
    found = re.search(r"\b(\d{6})\b", body or "")
    return found.group(1) if found else None


def render(text: str, run: Run, otp: Optional[str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == "otp":
            return otp or "000000"
        if name in ("code", "code_digits"):
            return (run.customer or "")[1 if name == "code_digits" else 0:]
        return run.variables[name].typed(run.lang)

    return PLACEHOLDER.sub(value, text)


def run_conversation(conversation: Conversation, talk: Talk, sessions: Sessions,
                     token_for: Callable[[str], str], customer: Optional[str] = None,
                     sender: Optional[str] = None,
                     responses: Optional[Responses] = None,
                     code_for: Optional[Callable[[str], str]] = None) -> Result:
    """Play the customer's side of `conversation` and check every reply and the history.

    `customer` is the customer code a `customer: pick` conversation was given (see
    `assign_customers`). `code_for(customer_code)` gives the one-time code just sent (default:
    read from the embedded profile's outbox). Every turn must get a reply unless the
    conversation is with an agent (the "never silent" invariant)."""
    sender = sender or f"conv-{uuid.uuid4().hex[:12]}"
    responses = responses or Responses(load_domain())
    result = Result(conversation, sender)
    if conversation.customer != "pick":
        customer = None if conversation.customer == "anonymous" else conversation.customer
    if conversation.customer == "pick" and not customer:
        raise ValueError(f"{conversation.id}: a `pick` conversation needs its customer")
    token = token_for(customer) if customer and conversation.signed_in else None
    run = Run(conversation, sessions, sender, responses, conversation.lang, customer)
    with sessions() as session:
        if not _prepare(run, session, customer, result):
            return result
        before = snapshot(session, customer, sender)
        run.tickets_before = frozenset(before.tickets)
    for number, turn in enumerate(conversation.turns, 1):
        if turn.reply_lang:
            run.lang = turn.reply_lang
        otp = None
        if "{otp}" in turn.user and customer:
            with sessions() as session:
                otp = (code_for(customer) if code_for
                       else one_time_code(session, customer, before.outbox_id))
            if otp is None:
                result.fail(number, "otp", "no one-time code was sent")
        text = render(turn.user, run, otp)
        replies = talk(sender, text, token)
        texts = reply_texts(replies)
        with sessions() as session:
            paused = has_open_handover(session, sender)
            exchange = Exchange(text, texts, is_silent(replies), paused)
            result.exchanges.append(exchange)
            if exchange.silent and not paused:
                result.silent_turns += 1
                result.fail(number, "never_silent", "no reply")
            for expect in turn.expect:
                check_turn(run, session, expect, texts, result, number)
    with sessions() as session:
        after = snapshot(session, customer, sender)
        check_after(run, session, before, after, result)
    return result


def _prepare(run: Run, session: Session, customer: Optional[str], result: Result) -> bool:
    """Check the customer is as assumed, write `given`, compute the variables; False (and a
    failure) when the conversation cannot run."""
    conv = run.conversation
    if customer and (conv.requires or conv.customer == "pick"):
        for problem in unmet_requirements(session, customer, effective_requires(conv)):
            result.fail(0, "requires", problem)
    if customer and conv.given:
        apply_given(session, conv, customer)
    for name, ref in conv.vars.items():
        try:
            run.variables[name] = run.value(session, ref)
        except FactError as e:
            result.fail(0, "vars", f"{name}: {e}")
    if result.failures:
        result.aborted = True
        return False
    return True


# --- summaries -----------------------------------------------------------------------------

def summarise(results: Iterable[Result]) -> Dict[str, Any]:
    """Per language: conversations, share done with the right facts (every check passed),
    silent turns, duplicate side effects; and the ids that failed."""
    by_lang: Dict[str, Dict[str, Any]] = {}
    for r in results:
        s = by_lang.setdefault(r.conversation.lang, {
            "conversations": 0, "passed": 0, "turns": 0, "silent_turns": 0,
            "conversations_with_silent_turns": 0, "duplicate_tickets": 0,
            "conversations_with_duplicates": 0, "failed": []})
        s["conversations"] += 1
        s["turns"] += len(r.exchanges)
        s["passed"] += r.passed
        s["silent_turns"] += r.silent_turns
        s["conversations_with_silent_turns"] += bool(r.silent_turns)
        s["duplicate_tickets"] += r.duplicate_tickets
        s["conversations_with_duplicates"] += bool(r.duplicate_tickets)
        if not r.passed:
            s["failed"].append(r.conversation.id)
    for s in by_lang.values():
        s["task_done_share"] = round(s["passed"] / s["conversations"], 3)
    return by_lang


def failure_counts(results: Iterable[Result]) -> Dict[str, int]:
    """How often each kind of check failed (the first failure of each conversation)."""
    counts: Dict[str, int] = {}
    for r in results:
        if r.failures:
            counts[r.failures[0].check] = counts.get(r.failures[0].check, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


__all__ = ["load_all", "load_domain", "Responses", "run_conversation", "assign_customers",
           "summarise", "failure_counts", "Result", "Failure", "snapshot", "unmet_requirements",
           "apply_given", "mutations", "NAMED", "RESERVED"]
