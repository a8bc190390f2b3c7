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


# --- Italian and English formats customers really write (issue 10, item 8) -------------------

MASKED = [
    # tax codes: omocodic, grouped, lower case, a mistyped check letter
    ("buongiorno, il mio codice fiscale e RSSMRA8LA01H501U",
     "buongiorno, il mio codice fiscale e [TAX_CODE]"),
    ("codice fiscale: RSS MRA 85A01 H501U, grazie", "codice fiscale: [TAX_CODE], grazie"),
    ("cf RSSMRA 85A01 H501Z", "cf [TAX_CODE]"),
    ("il cf e' rss-mra-85a01-h501z", "il cf e' [TAX_CODE]"),
    ("cf rssmra85a01h501z x favore", "cf [TAX_CODE] x favore"),
    ("cf di mia moglie: VRDGLI90E45F205Q", "cf di mia moglie: [TAX_CODE]"),
    ("cf BNCLRA7PM5LL219M omocodico", "cf [TAX_CODE] omocodico"),
    ("my tax code is RSSMRA80A01H501U", "my tax code is [TAX_CODE]"),
    # IBANs in any grouping, the words after them kept
    ("vorrei domiciliare su IT60-X054-2811-1010-0000-0123-456", "vorrei domiciliare su [IBAN]"),
    ("iban: IT60 X054 2811 1010 0000 0123 456 intestato a me", "iban: [IBAN] intestato a me"),
    ("nuovo iban it60x0542811101000000123456 x favore", "nuovo iban [IBAN] x favore"),
    ("IBAN IT60X 05428 11101 000000123456", "IBAN [IBAN]"),
    ("iban sbagliato? IT61X0542811101000000123456", "iban sbagliato? [IBAN]"),
    ("please use GB82 WEST 1234 5698 7654 32 for the refund", "please use [IBAN] for the refund"),
    ("my IBAN is DE89-3704-0044-0532-0130-00", "my IBAN is [IBAN]"),
    # phone numbers
    ("mi potete richiamare al +39/347/1112233?", "mi potete richiamare al [PHONE]?"),
    ("cell +39 347 111 2233 dopo le 18", "cell [PHONE] dopo le 18"),
    ("il mio numero e 347.111.2233", "il mio numero e [PHONE]"),
    ("whatsapp (+39) 3471112233", "whatsapp [PHONE]"),
    ("tel. fisso 0039 06 12345678", "tel. fisso [PHONE]"),
    ("chiamare 3471112233 oppure 06 1234 5678", "chiamare [PHONE] oppure [PHONE]"),
    ("tel.3331234567", "tel.[PHONE]"),
    ("cellulare 347/1112233 grazie", "cellulare [PHONE] grazie"),
    ("you can reach me on 07911 123456", "you can reach me on [PHONE]"),
    ("call me at +44 20 7946 0958 after 5pm", "call me at [PHONE] after 5pm"),
    ("my cell is (415) 555-2671", "my cell is [PHONE]"),
    ("ring me on +1 415 555 2671", "ring me on [PHONE]"),
    ("hi, my phone is 020 7946 0958", "hi, my phone is [PHONE]"),
    # addresses
    ("la fornitura è in Viale dei Mille, 5 a Roma", "la fornitura è in [ADDRESS] a Roma"),
    ("abito in p.zza duomo 1", "abito in [ADDRESS]"),
    ("P.zza Duomo 1, Milano", "[ADDRESS], Milano"),
    ("Piazza della Repubblica 10/B, Firenze", "[ADDRESS], Firenze"),
    ("scala B, civico 3", "scala B, [ADDRESS]"),
    ("numero civico 15", "[ADDRESS]"),
    ("il contatore è in via roma n. 12", "il contatore è in [ADDRESS]"),
    ("C.so Vittorio Emanuele II 45, Torino", "[ADDRESS], Torino"),
    ("spedite a Via XX Settembre 21", "spedite a [ADDRESS]"),
    ("abito in via g. verdi 12/a", "abito in [ADDRESS]"),
    ("abito a milano in c.so buenos aires 33", "abito a milano in [ADDRESS]"),
    ("abito in v.le monza 120 int 4", "abito in [ADDRESS] int 4"),
    ("residenza: loc. santa maria 12", "residenza: [ADDRESS]"),
    ("un guasto in via garibaldi 14 da ieri", "un guasto in [ADDRESS] da ieri"),
    ("mi trovate in via roma 12 3471112233", "mi trovate in [ADDRESS] [PHONE]"),
    ("I live at 10 Downing Street, London", "I live at [ADDRESS], London"),
    ("send it to 221B Baker Street please", "send it to [ADDRESS] please"),
    ("new address: 42 elm road", "new address: [ADDRESS]"),
    ("i moved to 7 church lane last month", "i moved to [ADDRESS] last month"),
    ("my address is flat 2, 15 high street", "my address is flat 2, [ADDRESS]"),
    # customer codes stay what they are
    ("codice cliente C1000001, lettura 4521", "codice cliente [CUSTOMER_CODE], lettura 4521"),
]

UNTOUCHED = [
    # the service's own identifiers
    "POD IT001E12345678",
    "il pod e it001e00123456",
    "il mio pdr è 00881234567890",
    "PDR: 00881234567890",
    "00881234567890",
    "POD IT001E12345678 e PDR 00881234567890",
    "bolletta B2026-0100001 non pagata",
    "ticket T-2026-000123 ancora aperto",
    "la pratica T-2026-500001 e ferma",
    "your reference is T-2026-500123",
    "guasto O-2026-0042 in zona",
    # meter readings, orders, invoices
    "la lettura è 12345",
    "my meter reading 004521",
    "my reading is 004521 today",
    "lettura contatore 12345678 del 01/11/2026",
    "lettura 012345 del 1.11.2026",
    "autolettura 0012345 inviata",
    "matricola contatore 12345678",
    "ordine 123456789 non arrivato",
    "order 123456789 was cancelled",
    "la fattura n. 2026000123 non torna",
    # amounts and dates
    "ho pagato € 123,45 il 01/11/2026",
    "la bolletta è di 1.234,56 euro",
    "totale 12.345.678,90 euro",
    "scadenza 2026-11-01",
    "can I pay by 2026-11-01?",
    "I was charged twice on 01/11/2026",
    "bill B2026-0100001 of 1,234.56 EUR due 2026-11-01",
    "the bill for october was 123.45 pounds",
    "dal 01/10/2026 al 31/10/2026 ho consumato 245 kWh",
    "pagherò 120,00 € entro il 15/11",
    "consumo 1234 kWh nel 2025",
    # words after "via", "corso", "road" that are no address
    "ho pagato via bonifico il 01/11/2026",
    "inviato via mail 2 volte",
    "la pratica e in corso da 3 giorni",
    "nel corso del 2025 ho pagato 3 bollette",
    "via libera alla rateizzazione in 6 rate",
    "I paid 3 times on the road",
    "the street light is off",
    "pago 12 rate da 50 euro",
    "ho chiamato 3 volte il numero verde",
    # 16 letters or a tax code cut short are not tax codes
    "INTERNAZIONALIZZ",
    "RSSMRALLALMHLMNX",
    "ABCDEFGHIJKLMNOP",
    "cf RSSMRA80A01H501",
    "codice fiscale errato?",
    "grazie mille, buona giornata",
]


@pytest.mark.parametrize("text, expected", MASKED)
def test_italian_and_english_formats_are_masked(text, expected):
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent


@pytest.mark.parametrize("text", UNTOUCHED)
def test_identifiers_readings_amounts_and_dates_stay(text):
    assert redact(text) == text


def test_the_tables_are_large_enough():
    assert len(MASKED) + len(UNTOUCHED) >= 60
