"""The conversation file format (see README.md), as pydantic models: a file that does not fit
fails to load with the conversation and the field at fault, before any stack is started."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

import yaml
from pydantic import BaseModel, Extra, Field, ValidationError, conint, constr, root_validator

from tests.conversations.facts import FACTS, NEEDS_CUSTOMER, PARAMS

FOLDER = Path(__file__).resolve().parent
Lang = Literal["it", "en"]
SupplyKind = Literal["electricity", "gas"]
TicketKind = Literal["outage", "complaint", "request", "callback"]
# What a reply can ask for (recognised by the domain's responses, runner.ASKS).
Asked = Literal["supply", "reading", "iban", "contact", "otp", "customer_code", "complaint",
                "callback_phone", "callback_slot", "rating"]
Persona = Literal["family", "digital", "senior", "business"]
Aspect = Literal["email", "phone", "iban", "paperless", "readings", "tickets"]
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# {otp}: the one-time code just sent, read when the turn is sent; {code}: the customer code
# ({code_digits}: without its C, as a customer may mistype it)
BUILTIN_PLACEHOLDERS = {"otp", "code", "code_digits"}


class Strict(BaseModel):
    """Unknown keys are an error: a typo must not silently turn a check off."""

    class Config:
        extra = Extra.forbid


class FactRef(Strict):
    """A fact computed from the database (`fact` with its parameters) or a conversation
    variable computed when the conversation began (`var`)."""

    fact: Optional[str] = None
    var: Optional[str] = None
    supply: Optional[SupplyKind] = None
    month: Optional[conint(ge=1, le=12)] = None
    months_ago: Optional[conint(ge=0, le=12)] = None
    kind: Optional[TicketKind] = None
    plus: Optional[conint(ge=1, le=100000)] = None
    minus: Optional[conint(ge=1, le=100000)] = None

    @root_validator(skip_on_failure=True)
    def _one_source(cls, values: Dict[str, Any]) -> Dict[str, Any]:
        params = {k for k, v in values.items() if k not in ("fact", "var") and v is not None}
        if (values.get("fact") is None) == (values.get("var") is None):
            raise ValueError("give exactly one of `fact` and `var`")
        if values.get("var") is not None:
            if params:
                raise ValueError("a `var` takes no parameters")
            return values
        name = values["fact"]
        if name not in FACTS:
            raise ValueError(f"unknown fact {name!r}; known: {', '.join(sorted(FACTS))}")
        extra = params - PARAMS[name]
        if extra:
            raise ValueError(f"fact {name!r} takes no {sorted(extra)}")
        if values.get("month") is not None and values.get("months_ago") is not None:
            raise ValueError("give `month` or `months_ago`, not both")
        return values

    def params(self) -> Dict[str, Any]:
        return self.dict(exclude={"fact", "var"}, exclude_none=True)

    def label(self) -> str:
        if self.var:
            return f"var {self.var}"
        args = ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.fact}({args})"


def _one_key(values: Dict[str, Any], what: str) -> Dict[str, Any]:
    given = [k for k, v in values.items() if v is not None]
    if len(given) != 1:
        raise ValueError(f"each {what} item has exactly one check, found {given or 'none'}")
    return values


class Expect(Strict):
    """One check of the bot's replies to a turn (exactly one key per item)."""

    says: Optional[List[FactRef]] = None
    says_first: Optional[FactRef] = None
    says_any: Optional[List[Union[FactRef, constr(min_length=1)]]] = None
    not_says: Optional[List[Union[FactRef, constr(min_length=1)]]] = None
    asks_for: Optional[Asked] = None
    not_asks_for: Optional[Asked] = None
    offers: Optional[Literal["person"]] = None
    hands_over: Optional[bool] = None
    out_of_scope: Optional[bool] = None
    says_response: Optional[List[constr(regex=r"^utter_\w+$")]] = None
    language: Optional[Lang] = None

    @root_validator(pre=True)
    def _lists(cls, values: Dict[str, Any]) -> Dict[str, Any]:
        for key in ("says", "says_any", "not_says", "says_response"):
            if isinstance(values.get(key), (dict, str)):
                values[key] = [values[key]]
        return values

    @root_validator(skip_on_failure=True)
    def _single(cls, values: Dict[str, Any]) -> Dict[str, Any]:
        return _one_key(values, "expect")

    def refs(self) -> List[FactRef]:
        either = list(self.not_says or []) + list(self.says_any or [])
        found = list(self.says or []) + [r for r in either if isinstance(r, FactRef)]
        return found + ([self.says_first] if self.says_first else [])


class Turn(Strict):
    user: constr(min_length=1)
    expect: List[Expect] = Field(default_factory=list)
    reply_lang: Optional[Lang] = None  # the bot answers in this language from this turn on


class TicketCount(Strict):
    kind: Optional[TicketKind] = None
    count: conint(ge=0)


class ReadingStored(Strict):
    supply: Optional[SupplyKind] = None
    value: FactRef


class ContactIs(Strict):
    email: Optional[constr(min_length=3)] = None
    phone: Optional[constr(min_length=6)] = None

    @root_validator(skip_on_failure=True)
    def _single(cls, values: Dict[str, Any]) -> Dict[str, Any]:
        return _one_key(values, "contact_is")


class After(Strict):
    """One check of the database after the conversation (exactly one key per item)."""

    tickets_opened: Optional[Union[conint(ge=0), TicketCount]] = None
    reading_stored: Optional[ReadingStored] = None
    readings_stored: Optional[conint(ge=0)] = None
    contact_is: Optional[ContactIs] = None
    direct_debit_iban: Optional[constr(min_length=15)] = None
    paperless: Optional[bool] = None
    unchanged: Optional[List[Aspect]] = None
    no_duplicate_tickets: Optional[Literal[True]] = None  # always checked; allowed for clarity

    @root_validator(skip_on_failure=True)
    def _single(cls, values: Dict[str, Any]) -> Dict[str, Any]:
        return _one_key(values, "after")


class Requires(Strict):
    """What the conversation assumes about its customer; checked on the seeded database by
    test_format.py and again before the conversation runs."""

    language: Optional[Lang] = None
    persona: Optional[Union[Persona, List[Persona]]] = None  # one, or any of a list
    vip: Optional[bool] = None
    supplies: Optional[List[SupplyKind]] = None  # exactly these active supply types
    paperless: Optional[bool] = None
    email: Optional[bool] = None  # has an e-mail on file
    iban: Optional[bool] = None  # has direct debit
    open_bills: Optional[bool] = None
    open_tickets: Optional[List[TicketKind]] = None  # has an open ticket of each kind
    no_open_tickets: Optional[List[TicketKind]] = None  # has none of these kinds open
    # a known outage at one of their postcodes (true/false), or of this type at a supply of it
    outage: Optional[Union[bool, SupplyKind]] = None


class GivenTicket(Strict):
    kind: TicketKind
    status: Literal["open", "in_progress"] = "open"
    subject: constr(min_length=3)
    days_ago: conint(ge=0, le=60) = 1
    eta_days: Optional[conint(ge=0, le=60)] = None
    callback_slot: Optional[str] = None


class Given(Strict):
    """Data written to the history before the conversation (a call-back asked yesterday)."""

    ticket: GivenTicket


class Conversation(Strict):
    id: constr(regex=r"^[a-z0-9][a-z0-9-]*$")
    lang: Lang  # the language the customer writes, and the bot answers, in
    # a customer code, `pick` (a generated demo customer meeting `requires`, chosen when the
    # suite runs) or `anonymous` (nobody: no token, no code)
    customer: constr(regex=r"^(anonymous|pick|C\d{7})$")
    signed_in: bool = True  # arrives with a customer token (web widget, logged in)
    skills: List[constr(regex=r"^[a-z_]+$")] = Field(..., min_items=1)
    about: Optional[str] = None
    requires: Optional[Requires] = None
    given: List[Given] = Field(default_factory=list)
    vars: Dict[str, FactRef] = Field(default_factory=dict)
    turns: List[Turn] = Field(..., min_items=1)
    after: List[After] = Field(default_factory=list)
    file: str = ""  # set by the loader

    @root_validator(skip_on_failure=True)
    def _consistent(cls, values: Dict[str, Any]) -> Dict[str, Any]:
        anonymous = values["customer"] == "anonymous"
        names = set(values["vars"])
        for ref in values["vars"].values():
            if ref.var:
                raise ValueError("a variable is a `fact`, not another `var`")
        refs = list(values["vars"].values())
        for number, turn in enumerate(values["turns"], 1):
            for name in PLACEHOLDER.findall(turn.user):
                if name not in names | BUILTIN_PLACEHOLDERS:
                    raise ValueError(f"turn {number}: placeholder {{{name}}} is not in `vars`")
            for check in turn.expect:
                refs += check.refs()
        refs += [a.reading_stored.value for a in values["after"] if a.reading_stored]
        for ref in refs:
            if ref.var and ref.var not in names:
                raise ValueError(f"`var: {ref.var}` is not in `vars`")
            if anonymous and ref.fact and NEEDS_CUSTOMER[ref.fact]:
                raise ValueError(f"fact {ref.fact!r} needs a customer")
        if anonymous and (values["requires"] or values["given"]):
            raise ValueError("an anonymous conversation has no `requires` or `given`")
        typed = {n for t in values["turns"] for n in PLACEHOLDER.findall(t.user)}
        if anonymous and typed & {"code", "code_digits", "otp"}:
            raise ValueError("{code} needs a customer")
        needs_customer = [a for a in values["after"] if a.tickets_opened is None
                          and a.no_duplicate_tickets is None]
        if anonymous and needs_customer:
            raise ValueError("an anonymous conversation can only check tickets_opened after")
        return values

    def placeholders(self) -> set:
        return {n for t in self.turns for n in PLACEHOLDER.findall(t.user)}


class ConversationFileError(Exception):
    pass


def load_file(path: Path) -> List[Conversation]:
    """The conversations of one file; every problem is reported with the conversation's id."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(data, list):
        raise ConversationFileError(f"{path.name}: the file is a list of conversations")
    conversations, problems = [], []
    for index, item in enumerate(data):
        name = item.get("id", f"#{index}") if isinstance(item, dict) else f"#{index}"
        try:
            conversations.append(Conversation(**{**item, "file": path.name}))
        except (ValidationError, TypeError) as e:
            problems.append(f"{path.name} {name}: {e}")
    if problems:
        raise ConversationFileError("\n".join(problems))
    return conversations


def files(folder: Path = FOLDER) -> List[Path]:
    return sorted(folder.glob("*.yml"))


def load_all(folder: Path = FOLDER) -> List[Conversation]:
    """Every conversation of every file of the folder, in file order."""
    return [c for path in files(folder) for c in load_file(path)]
