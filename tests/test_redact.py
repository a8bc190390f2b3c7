"""Masking of personal data before the conversation log stores it (bot.analytics.redact)."""

from __future__ import annotations

import pytest

from bot.analytics.redact import Known, redact, redact_value


@pytest.mark.parametrize("text, expected", [
    ("la mia mail è mario.rossi@example.it", "la mia mail è [EMAIL]"),
    ("my new email is A.B+x@mail.co.uk.", "my new email is [EMAIL]."),
    ("IBAN IT60X0542811101000000123456 grazie", "IBAN [IBAN] grazie"),
    ("iban it60 x054 2811 1010 0000 0123 456", "iban [IBAN]"),
    ("DE89370400440532013000 is my account", "[IBAN] is my account"),
    ("codice fiscale RSSMRA80A01H501U", "codice fiscale [TAX_CODE]"),
    ("il mio codice è C1000001", "il mio codice è [CUSTOMER_CODE]"),
    ("chiamatemi al +39 333 1234567", "chiamatemi al [PHONE]"),
    ("oppure 333-123 4567 o 0039 02 12345678", "oppure [PHONE] o [PHONE]"),
    ("call me on (020) 7946 0958", "call me on [PHONE]"),
    ("abito in via Giuseppe Verdi 12 a Milano", "abito in [ADDRESS] a Milano"),
    ("piazza del Duomo 1/A, Firenze", "[ADDRESS], Firenze"),
    ("I live at 12 Baker Street", "I live at [ADDRESS]"),
    ("mi chiamo Giovanni Esposito", "mi chiamo [NAME]"),
    ("My name is John Smith, hi", "My name is [NAME], hi"),
    # someone the log knows nothing of: a first name from the name lists and a surname
    ("ciao, sono Maria Rossi", "ciao, sono [NAME]"),
    ("sono maria rossi e ho un problema", "sono [NAME] e ho un problema"),
    ("scrivo per conto di Giulia Verdi, mia madre", "scrivo per conto di [NAME], mia madre"),
    ("I'm john smith, my bill is high", "I'm [NAME], my bill is high"),
    ("Hi, I'm Tom", "Hi, I'm [NAME]"),
    ("la bolletta è di Bill Johnson", "la bolletta è di [NAME]"),
])
def test_personal_data_is_replaced_by_its_label(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "la pratica T-2026-000123 è aperta",
    "POD IT001E12345678, PDR 12345678901234",
    "la lettura è 4821,5 del 01/12/2026 (2026-12-01), bolletta di 123,45 euro",
    "ho pagato 1.234,56 € il 3 marzo",
    "sono senza luce da stamattina",
    "sono stanco, sono felice, sono io, sono il titolare",
    "la mia bolletta, Mia Energia",  # first names that are everyday words
    "Bill Payment failed",
    "I'm fine, I am Sportello's customer",
    "Buongiorno Sportello, Enel Energia",
])
def test_what_is_not_personal_stays(text):
    assert redact(text) == text


def test_the_known_customer_is_masked_wherever_named():
    known = Known(names=("Maria Rossi", "Rossi Maria", "Maria", "Rossi"),
                  addresses=("Via Roma 5",),
                  values=(("maria.r@example.it", "[EMAIL]"), ("+393331112222", "[PHONE]")))
    assert redact("Ciao Maria! La fornitura di via roma 5 è attiva, sig.ra ROSSI", known) == \
        "Ciao [NAME]! La fornitura di [ADDRESS] è attiva, sig.ra [NAME]"
    assert redact("scrivo io, Maria Rossi, al +393331112222", known) == \
        "scrivo io, [NAME], al [PHONE]"
    # an e-mail made of the name is an e-mail, not a name
    assert redact("scrivetemi a maria.rossi@gmail.com", known) == "scrivetemi a [EMAIL]"
    # whole words only: "Mariangela" is someone else's name, not a part of "Maria"
    assert redact("Mariangela", known) == "Mariangela"


def test_masking_is_idempotent_and_handles_nothing():
    once = redact("mi chiamo Luca Neri, luca@example.it, +39 333 1234567, C1000002")
    assert redact(once) == once
    assert redact(None) == "" and redact("") == ""


def test_entity_values():
    assert redact_value("email", "a@b.it") == "[EMAIL]"
    assert redact_value("customer_code", "C1000001") == "[CUSTOMER_CODE]"
    assert redact_value("iban", "IT60X0542811101000000123456") == "[IBAN]"
    assert redact_value("supply_type", "electricity") == "electricity"
