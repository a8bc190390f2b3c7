"""Masking of personal data in the conversation log, before anything is stored.

What is masked, each replaced by a bracketed label that says what was there:
e-mail addresses `[EMAIL]`, IBANs `[IBAN]`, Italian tax codes `[TAX_CODE]`, customer codes
`[CUSTOMER_CODE]`, phone numbers `[PHONE]`, street addresses `[ADDRESS]` and names `[NAME]`.
Names and addresses are found three ways: the identified customer's own name, company name and
supply addresses from the customer history (`Known`); the phrases people introduce them with
("mi chiamo …", "my name is …", "abito in via …", "via Roma 12"); and, for anyone else (an
anonymous customer, a relative, a neighbour), a first name from Faker's Italian and English
name lists followed by a surname, or after "sono" / "I'm" ("sono Maria Rossi", "per conto di
Giulia Verdi", "I'm john smith"). First names that are also everyday words ("Mia", "Stella",
"Bill", "June") count only when a surname follows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", re.UNICODE)
# Compact (IT60X0542811101000000123456) or in groups of four (IT60 X054 2811 ...); a spaced
# group is upper case or holds a digit, so that the words after an IBAN are not taken for it.
_IBAN_GROUP = r"(?:(?-i:[A-Z]{1,4})|(?=[A-Za-z]{0,3}\d)[A-Za-z0-9]{1,4})"
IBAN = re.compile(rf"\b[A-Z]{{2}}\d{{2}}(?:[A-Z0-9]{{11,30}}|(?: {_IBAN_GROUP}){{3,8}})\b",
                  re.IGNORECASE)
TAX_CODE = re.compile(r"\b[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]\b", re.IGNORECASE)
CUSTOMER_CODE = re.compile(r"\bC\d{7}\b", re.IGNORECASE)
# +39 333 1234567, 333-123 4567, 0039 02 1234567, (02) 12345678: 8 to 15 digits in all
# (13 without an international prefix, so a 14-digit PDR is not taken for a phone).
PHONE = re.compile(r"(?<![\w+\-/])(?:\+|00)?(?:\(\d{2,5}\)\s?)?\d(?:[ .\-]?\d){6,14}(?![\w/])")
DATE = re.compile(r"\d{1,4}[-.]\d{1,2}[-.]\d{1,4}")
STREET_WORDS = (r"via|viale|v\.le|piazza|p\.za|piazzale|corso|c\.so|largo|vicolo|strada|"
                r"contrada|borgo|lungomare|lungotevere|localit[aà]|street|st\.|road|rd\.|"
                r"avenue|ave\.|lane|square")
ADDRESS = re.compile(
    rf"\b(?:{STREET_WORDS})\s+(?:[A-Za-zÀ-ÿ'’.]+\s+){{0,4}}?\d+[A-Za-z]?(?:/[A-Za-z0-9]+)?\b",
    re.IGNORECASE)
ENGLISH_ADDRESS = re.compile(
    r"\b\d+[A-Za-z]?,?\s+(?:[A-Z][a-z'’]+\s+){1,3}"
    r"(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Square|Sq|Drive|Dr|Close|Way|Place|Gardens)\b")
_NAME = r"[A-ZÀ-Ý][a-zà-ÿ'’]+(?:\s+[A-ZÀ-Ý][a-zà-ÿ'’]+){0,2}"
INTRODUCED_NAME = re.compile(
    rf"(\b(?:mi chiamo|il mio nome [eè]|sono il signor|sono la signora|my name is|"
    rf"this is|name'?s)\s+)({_NAME})", re.IGNORECASE)
# First names that are also everyday words (Italian or English): a name only before a surname.
COMMON_WORDS = frozenset((
    "mia", "stella", "bill", "june", "april", "may", "will", "mark", "grant", "rose", "grace",
    "joy", "hope", "faith", "dawn", "summer", "art", "guy", "august", "ray", "rich", "dean",
    "penny", "ivy", "holly", "amber", "ruby", "jade", "pearl", "crystal", "angel", "chance",
    "king", "major", "miles", "price", "ben", "cole", "tim", "sole", "luce", "rosa", "felice",
    "serena", "bianca", "gioia", "fortunato", "pace", "speranza", "vittoria", "celeste",
    "flora", "marina", "franco", "fiore", "leone", "beata", "benedetta", "sky", "don", "gay",
    "lee", "sue", "pat", "carol", "sandy", "rusty", "frank", "earnest", "ernesto", "noel",
    "violet", "iris", "jasmine", "olive", "reed", "wade", "gene", "lance", "bob", "jack",
    "sunny", "patience", "unity", "ebony", "misty", "destiny", "brook", "chase", "hunter",
))
_WORD = r"[A-Za-zÀ-ÿ'’]+"
_CAPITALISED = r"[A-ZÀ-Ý][a-zà-ÿ'’]+"
# A capitalised word followed by one or two more: checked against the name lists.
NAME_PAIR = re.compile(rf"\b({_CAPITALISED})((?:\s+{_CAPITALISED}){{1,2}})\b")
# "sono Maria", "I'm john smith": a word (any case) after the phrase, and up to two more.
SELF_INTRODUCTION = re.compile(
    rf"(\b(?:sono|io sono|I'?m|I am)\s+)({_WORD})((?:\s+{_WORD}){{0,2}})", re.IGNORECASE)


@lru_cache(maxsize=1)
def _name_lists() -> tuple[frozenset, frozenset]:
    """First names and surnames (lower case) from Faker's it_IT, en_US and en_GB lists."""
    from faker.providers.person.en_GB import Provider as EnGB
    from faker.providers.person.en_US import Provider as EnUS
    from faker.providers.person.it_IT import Provider as ItIT

    first, last = set(), set()
    for provider in (ItIT, EnUS, EnGB):
        for attr in ("first_names_male", "first_names_female", "first_names"):
            first |= {n.lower() for n in getattr(provider, attr, ())}
        last |= {n.lower() for n in provider.last_names}
    return frozenset(first), frozenset(last)


def _name_pair(match: re.Match) -> str:
    first, last = _name_lists()
    given, rest = match.group(1), match.group(2)
    if given.lower() not in first:
        return match.group(0)
    following = rest.split()
    if given.lower() in COMMON_WORDS and following[0].lower() not in last:
        return match.group(0)  # "Stella Polare", "Bill Payment": words, not a person
    return "[NAME]"


def _self_introduction(match: re.Match) -> str:
    first, last = _name_lists()
    intro, given, rest = match.group(1), match.group(2), match.group(3)
    if given.lower() not in first or given.lower() in COMMON_WORDS:
        return match.group(0)
    # the surname: the next word if it is on the surname list or capitalised, and so on
    kept = []
    words = rest.split()
    for word in words:
        if word.lower() in last or (word[:1].isupper() and word[1:].islower()):
            kept.append(word)
        else:
            break
    tail = rest
    for word in kept:
        tail = tail[tail.index(word) + len(word):]
    return intro + "[NAME]" + tail


LABELS = ("[EMAIL]", "[IBAN]", "[TAX_CODE]", "[CUSTOMER_CODE]", "[PHONE]", "[ADDRESS]",
          "[NAME]")


@dataclass(frozen=True)
class Known:
    """What the customer history knows of the conversation's customer, to be masked too."""

    names: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    values: tuple[tuple[str, str], ...] = field(default=())  # (value on file, its label)

    def patterns(self) -> list[tuple[re.Pattern, str]]:
        out = []
        for value, label in ([(a, "[ADDRESS]") for a in self.addresses]
                             + [(n, "[NAME]") for n in self.names]
                             + list(self.values)):
            value = (value or "").strip()
            if len(value) >= 3:
                out.append((re.compile(rf"(?<!\w){re.escape(value)}(?!\w)", re.IGNORECASE),
                            label))
        return out


def _case_insensitive_name(match: re.Match) -> str:
    return match.group(1) + "[NAME]"


def redact(text: str | None, known: Known | None = None) -> str:
    """`text` with personal data replaced by labels. Idempotent."""
    if not text:
        return ""
    out = text
    known_patterns = known.patterns() if known else []
    for pattern, label in known_patterns:  # the values on file first (e-mail, phone, ...)
        if label not in ("[NAME]", "[ADDRESS]"):
            out = pattern.sub(label, out)
    out = EMAIL.sub("[EMAIL]", out)
    out = TAX_CODE.sub("[TAX_CODE]", out)
    out = IBAN.sub("[IBAN]", out)
    out = CUSTOMER_CODE.sub("[CUSTOMER_CODE]", out)
    for pattern, label in known_patterns:  # then names and addresses, outside e-mails
        if label in ("[NAME]", "[ADDRESS]"):
            out = pattern.sub(label, out)
    out = ADDRESS.sub("[ADDRESS]", out)
    out = ENGLISH_ADDRESS.sub("[ADDRESS]", out)
    out = PHONE.sub(_phone, out)
    out = INTRODUCED_NAME.sub(_case_insensitive_name, out)
    out = SELF_INTRODUCTION.sub(_self_introduction, out)
    out = NAME_PAIR.sub(_name_pair, out)
    return out


def _phone(match: re.Match) -> str:
    value = match.group(0)
    digits = re.sub(r"\D", "", value)
    international = value.startswith(("+", "00"))
    if DATE.fullmatch(value) or not 8 <= len(digits) <= (15 if international else 13):
        return value
    return "[PHONE]"


def redact_value(entity: str, value) -> str:
    """An entity's value as the log keeps it: formatted personal values become their label."""
    labels = {"email": "[EMAIL]", "phone": "[PHONE]", "iban": "[IBAN]",
              "customer_code": "[CUSTOMER_CODE]"}
    if entity in labels:
        return labels[entity]
    return redact(str(value))
