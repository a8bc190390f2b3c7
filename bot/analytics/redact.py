"""Masking of personal data in the conversation log, before anything is stored.

What is masked, each replaced by a bracketed label that says what was there:
e-mail addresses `[EMAIL]`, IBANs `[IBAN]`, Italian tax codes `[TAX_CODE]`, customer codes
`[CUSTOMER_CODE]`, phone numbers `[PHONE]`, street addresses `[ADDRESS]` and names `[NAME]`.

Formatted values are found by a regular expression and then checked, so that the service's own
identifiers (POD `IT001E…`, 14-digit PDR, bill `B2026-0100001`, ticket `T-2026-000123`), meter
readings, order numbers, amounts and dates stay readable:
- tax codes: omocodic ones too (`RSSMRA8LA01H501U`) and written in groups (`RSS MRA 85A01
  H501U`); python-stdnum checks them, and one with a wrong check letter is masked only if it
  holds digits (a 16-letter word is not a tax code unless its check letter is right);
- IBANs: compact or grouped in any way with spaces or hyphens; the longest run of groups that
  python-stdnum validates is masked (the words after it stay), or failing that one with the
  shape of an IBAN (an Italian one with a mistyped check, groups of up to four);
- phone numbers: a run of digits with single separators (space . - /) and an optional +39,
  0039, (+39) or (020), which `phonenumbers` must find valid for Italy, the UK or the US (after
  a +: of a possible length); never a date, a 14-digit PDR written in one piece, or a number
  right after a word such as "lettura", "ordine", "PDR", "bolletta", "reading", "order";
- addresses: a street word or its abbreviation (via, viale, v.le, p.zza, c.so, largo, street …)
  with up to five name words and a house number (`Viale dei Mille, 5`, `Via Roma n. 12`), not
  when the words say it is no street ("via mail il 3", "in corso da 3 giorni") or the number is
  a date, a year, an amount or a quantity; "civico 3"; and in English the number first
  (`10 Downing Street`, `221B Baker Street`, `12 baker street`).
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
from typing import Any

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum.it import codicefiscale

from bot.crm import validation

# From the start of a run of name characters only, so that a long word is not scanned again and
# again.
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(\.[\w-]+)+", re.UNICODE)
# The shape of an IBAN, masked even with wrong check digits (a mistyped IBAN is still someone's):
# compact (IT60X0542811101000000123456) or in groups of up to four split by spaces or hyphens
# (IT60 X054 2811 ..., IT60-X054-...); a group is upper case or holds a digit, so that the
# words after an IBAN are not taken for it.
_IBAN_GROUP = r"(?:(?-i:[A-Z]{1,4})|(?=[A-Za-z]{0,3}\d)[A-Za-z0-9]{1,4})"
IBAN = re.compile(rf"\b[A-Z]{{2}}\d{{2}}(?:[A-Z0-9]{{11,30}}|(?:[ \-]{_IBAN_GROUP}){{3,8}})\b",
                  re.IGNORECASE)
# Any grouping (IT60X 05428 11101 000000123456, IT60-X054-...): a candidate for stdnum, which
# picks the part that is the IBAN; the groups after it are words and stay.
IBAN_CANDIDATE = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]*(?:[ \-][A-Z0-9]+){0,16}", re.IGNORECASE)
_ITALIAN_IBAN = re.compile(r"IT\d{2}[A-Z]\d{10}[A-Z0-9]{12}")
_IBAN_SEPARATOR = re.compile(r"([ \-])")
# Surname, name, birth date and place, check letter, with the usual spaces or hyphens between the
# groups (RSS MRA 85A01 H501U); digits may be replaced by letters L-V in an omocodic code.
_OMOCODIC_DIGIT = "[0-9LMNPQRSTUV]"
_CF_SEPARATOR = r"[ \-]?"
TAX_CODE = re.compile(
    rf"\b[A-Z]{{3}}{_CF_SEPARATOR}[A-Z]{{3}}{_CF_SEPARATOR}{_OMOCODIC_DIGIT}{{2}}[ABCDEHLMPRST]"
    rf"{_OMOCODIC_DIGIT}{{2}}{_CF_SEPARATOR}[A-Z]{_OMOCODIC_DIGIT}{{3}}[A-Z]\b", re.IGNORECASE)
CUSTOMER_CODE = re.compile(rf"\b{validation.CUSTOMER_CODE}\b", re.IGNORECASE)
# A candidate phone number: +39 / 0039 / (+39), an area code in brackets ((020)), then 6 to 17
# digits with single separators (347 111 2233, 347.111.2233, +39/347/1112233, 333-123 4567).
# Not inside a word or a number (B2026-0100001, T-2026-000123, IT001E12345678, 1.234.567,89);
# `phonenumbers` then decides (`_phone`).
PHONE = re.compile(
    r"(?<![\w+\-/])(?<!\d[.,])"
    r"(?:\+\s?\d{1,3}[ .\-/]?|\(\s*(?:\+|00)\d{1,3}\s*\)\s?)?(?:\(\d{1,5}\)\s?)?"
    r"\d(?:(?:\s?[.\-/]\s?|\s)?\d){5,16}(?![\w/]|[.,:]\d)")
# Numbers after these words are readings, orders, bills, supplies or codes, not phone numbers.
_NOT_A_PHONE_AFTER = re.compile(
    r"\b(?:lettur[ae]|autolettura|reading|ordine|order|pratica|ticket|fattur[ae]|bollett[ae]|"
    r"bill|invoice|pdr|pod|contatore|meter|matricola|importo|totale|amount|rif|ref|"
    r"riferimento|protocollo|codice|code|pin|otp|iban|conto|account|cap|postcode|zip)\b\W*"
    r"(?:(?:n|nr|num|numero|no|number|[eè]|e'|is|was|di|del|della|of|the)\b\W*){0,3}$",
    re.IGNORECASE)
_WHITESPACE = re.compile(r"(\s+)")
_MAX_PHONE_GROUPS = 6  # +39 347 11 22 333: a number written in more groups is a list of numbers
_NON_DIGIT = re.compile(r"\D")
# 01/11/2026, 1.11.26, 2026-11-01: a day and a month that exist.
_DAY, _MONTH = r"(?:0?[1-9]|[12]\d|3[01])", r"(?:0?[1-9]|1[0-2])"
DATE = re.compile(rf"(?<!\d)(?:\d{{4}}([-./]){_MONTH}\1{_DAY}"
                  rf"|{_DAY}([-./]){_MONTH}\2(?:\d{{4}}|\d{{2}}))(?!\d)")
STREET_WORDS = (r"via|viale|v\.\s?le|vle|piazza|piazzale|p\.?\s?zza|p\.?\s?za|p\.\s?le|"
                r"corso|c\.\s?so|largo|l\.\s?go|vicolo|v\.\s?lo|strada|str\.|contrada|c\.\s?da|"
                r"borgo|lungomare|lungotevere|lungarno|localit[aà]|loc\.|frazione|fraz\.|"
                r"salita|traversa|circonvallazione|street|st\.|road|rd\.|avenue|ave\.|lane|square")
# Words after "via", "corso", "largo" ... that say it is no street: "pagato via bonifico il 3",
# "in corso da 3 giorni", "via mail 2 volte".
_NOT_STREET_NAME = (
    r"e-?mail|mail|pec|posta|bonifico|bollettino|app|sms|whatsapp|telegram|telefono|cell|"
    r"cellulare|web|internet|sito|portale|chat|paypal|carta|anticipo|il|lo|gli|un|una|uno|da|"
    r"dal|dalla|dai|per|con|entro|fino|circa|ogni|tra|fra|ho|ha|hanno|sono|era|mi|ti|ci|si|ne|"
    r"non|che|ma|a|e|o|in|the|an|to|by|from|for|at|on|and|or|about")
_STREET_NAME_WORD = rf"(?!(?:{_NOT_STREET_NAME})(?![\w.'’]))[A-Za-zÀ-ÿ'’.]+"
# A house number (12, 10/B, n. 12, civico 3) that is not a year, a date, an amount or a quantity.
_HOUSE_NUMBER = (r"(?:(?:n|nr|num|numero|civico)\.?\s*|n°\s*)?"
                 r"(?!(?:19|20)\d\d\b)\d{1,4}[A-Za-z]?(?:\s?/\s?[A-Za-z0-9]{1,3})?\b")
_QUANTITIES = (r"%|€|\$|£|euro|eur|volt[ae]|giorn[oi]|gg|mes[ei]|ann[oi]|or[ae]|minut[oi]|"
               r"settiman[ae]|kwh|kw|smc|mc|m3|litri|bollett[ae]|fattur[ae]|pratich[ae]|rat[ae]|"
               r"times|days?|hours?|weeks?|months?|years?|mins?|minutes?|gennaio|febbraio|"
               r"marzo|aprile|maggio|giugno|luglio|agosto|settembre|ottobre|novembre|dicembre|"
               r"january|february|march|april|may|june|july|august|september|october|november|"
               r"december")
_NOT_AFTER_HOUSE_NUMBER = rf"(?![/.\-]\d{{1,4}}[/.\-]\d|[.,:]\d|\s*(?:{_QUANTITIES})(?!\w))"
ADDRESS = re.compile(
    rf"\b(?:{STREET_WORDS})\s+(?:{_STREET_NAME_WORD}(?:\s*,\s*|\s+)){{0,5}}?"
    rf"{_HOUSE_NUMBER}{_NOT_AFTER_HOUSE_NUMBER}", re.IGNORECASE)
CIVIC_NUMBER = re.compile(
    rf"\b(?:numero\s+civico|n\.?\s*civico|civico|civ\.)\s*{_HOUSE_NUMBER}{_NOT_AFTER_HOUSE_NUMBER}",
    re.IGNORECASE)
# 10 Downing Street, 221B Baker Street; in lower case only before an unmistakable street word,
# and not across the words of a sentence ("3 times on the road").
_ENGLISH_NOT_STREET_NAME = (r"the|a|an|on|in|at|to|of|for|by|from|and|or|my|your|our|is|are|was|"
                            r"times|days|hours|weeks|months|years|more|than|per|this|that")
ENGLISH_ADDRESS = re.compile(
    r"\b\d{1,5}[A-Za-z]?,?\s+(?:[A-Z][a-z'’]+\s+){1,3}"
    r"(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Square|Sq|Drive|Dr|Close|Way|Place|Gardens)\b"
    rf"|\b\d{{1,5}}[A-Za-z]?,?\s+(?:(?!(?i:{_ENGLISH_NOT_STREET_NAME})\b)[A-Za-z'’]+\s+){{1,3}}"
    r"(?i:street|st|road|rd|avenue|ave|lane)\b")
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
    if "@" in out:
        out = EMAIL.sub("[EMAIL]", out)
    out = TAX_CODE.sub(_tax_code, out)
    out = IBAN_CANDIDATE.sub(_iban, out)
    out = IBAN.sub("[IBAN]", out)
    out = CUSTOMER_CODE.sub("[CUSTOMER_CODE]", out)
    for pattern, label in known_patterns:  # then names and addresses, outside e-mails
        if label in ("[NAME]", "[ADDRESS]"):
            out = pattern.sub(label, out)
    out = PHONE.sub(_phone, out)  # before addresses: "via Roma 12 3471112233"
    out = ADDRESS.sub("[ADDRESS]", out)
    out = CIVIC_NUMBER.sub("[ADDRESS]", out)
    out = ENGLISH_ADDRESS.sub("[ADDRESS]", out)
    out = INTRODUCED_NAME.sub(_case_insensitive_name, out)
    out = SELF_INTRODUCTION.sub(_self_introduction, out)
    out = NAME_PAIR.sub(_name_pair, out)
    return out


def _tax_code(match: re.Match) -> str:
    """A valid tax code, or one with digits and a mistyped check letter; not a 16-letter word."""
    code = codicefiscale.compact(match.group(0))
    if codicefiscale.is_valid(code) or sum(c.isdigit() for c in code) >= 2:
        return "[TAX_CODE]"
    return match.group(0)


def _iban(match: re.Match) -> str:
    """The longest run of groups that is an IBAN: valid, else Italian-shaped, else IBAN-shaped."""
    parts = _IBAN_SEPARATOR.split(match.group(0))  # groups with the separators between them
    prefixes = ["".join(parts[:end]) for end in range(len(parts), 0, -2)]
    for looks_right in (_valid_iban, _mistyped_italian_iban, IBAN.fullmatch):
        for prefix in prefixes:
            if looks_right(prefix):
                return "[IBAN]" + match.group(0)[len(prefix):]
    return match.group(0)


def _valid_iban(value: str) -> bool:
    """stdnum's full check, after a cheap one of the length and the check digits (mod 97)."""
    number = _compact_iban(value)
    if not 15 <= len(number) <= 34 or not (number.isascii() and number.isalnum()):
        return False
    if int("".join(str(int(c, 36)) for c in number[4:] + number[:4])) % 97 != 1:
        return False
    return stdnum_iban.is_valid(number)


def _mistyped_italian_iban(value: str) -> bool:
    return bool(_ITALIAN_IBAN.fullmatch(_compact_iban(value)))


def _compact_iban(value: str) -> str:
    return value.replace(" ", "").replace("-", "").upper()


def _phone(match: re.Match) -> str:
    """The candidate with the phone numbers in it masked; readings, orders, PDRs stay."""
    if _NOT_A_PHONE_AFTER.search(match.string, max(0, match.start() - 40), match.start()):
        return match.group(0)
    return _mask_phones(match.group(0))


def _mask_phones(value: str) -> str:
    """Two numbers may be written one after the other: mask the longest phone at the start."""
    parts = _WHITESPACE.split(value)  # words with the spaces between them
    for end in range(min(len(parts), 2 * _MAX_PHONE_GROUPS - 1), 0, -2):
        prefix = "".join(parts[:end])
        if _is_phone(prefix):
            return "[PHONE]" + _mask_phones_after(value[len(prefix):])
    return parts[0] + _mask_phones_after(value[len(parts[0]):])


def _mask_phones_after(rest: str) -> str:
    body = rest.lstrip()
    return rest[:len(rest) - len(body)] + (_mask_phones(body) if body else "")


def _is_phone(value: str) -> bool:
    digits = _NON_DIGIT.sub("", value)
    if DATE.search(value) or not 8 <= len(digits) <= 17 or _is_pdr(value):
        return False
    if "+" in value:
        return _possible_international(digits)
    if digits.startswith("00"):  # 0039 06 12345678
        return _valid_international(digits[2:])
    return len(digits) <= 12 and _valid_national(digits)


def _is_pdr(value: str) -> bool:
    """14 digits written together are a gas supply's PDR (00881234567890), unless 0039 3..."""
    return value.isdigit() and len(value) == 14 and not value.startswith("0039")


def _possible_international(digits: str) -> bool:
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse("+" + digits, None))
    except phonenumbers.NumberParseException:
        return False


def _valid_international(digits: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + digits, None))
    except phonenumbers.NumberParseException:
        return False


def _valid_national(digits: str) -> bool:
    """Valid in Italy, or in the UK or the US for the customers who write in English."""
    for region in ("IT", "GB", "US"):
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(digits, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def redact_value(entity: str, value: Any) -> str:
    """An entity's value as the log keeps it: formatted personal values become their label."""
    labels = {"email": "[EMAIL]", "phone": "[PHONE]", "iban": "[IBAN]",
              "customer_code": "[CUSTOMER_CODE]"}
    if entity in labels:
        return labels[entity]
    return redact(str(value))
