"""One register per persona in every Italian reply, and numbers in the customer's locale.

Register: "Lei" for the `senior` and `business` personas, "tu" for the others (family, digital,
no persona). Every response of the domain is resolved the way Rasa chooses a variation
(rasa.core.nlg.generator.ResponseVariationFilter: every variation whose conditions all match
the slots; only when none does, the unconditioned ones; one of them at random), for each persona
with language=it and on every output channel a variation names. Every candidate text must be in
the persona's register: a reply chosen at random among candidates of both registers is exactly
the "Lei in one reply, tu in the next" a customer notices. Texts without a second person at all
("La bolletta è di 50 €") suit everyone.

The markers are words, not a grammar: the second-person forms the domain uses. Ambiguous words
are left out or narrowed ("consumi" is a noun, "usi" is formal too, "La" opens sentences as an
article, "controlli" is a noun, "si può" is impersonal), and the sanity test below proves the
markers tell the two registers apart on real sentences. Button titles are not checked: they
are menu labels ("Parla con una persona"), the same for every persona.

Every domain file is checked, whoever edits it.
"""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from rasa.core.nlg.generator import ResponseVariationFilter
from rasa.shared.core.domain import Domain

ROOT = Path(__file__).resolve().parent.parent
FORMAL_PERSONAS = ("senior", "business")
INFORMAL_PERSONAS = (None, "family", "digital")

_NOT_ENCLITIC = {"aperti", "riaperti", "coperti", "scoperti", "offerti", "sofferti", "esperti",
                 "certi", "incerti", "inserti", "concerti", "deserti", "inerti", "parti", "sorti",
                 "arti", "quarti", "scarti"}
INFORMAL = re.compile(
    r"\b(?:tu|ti|te|tuo|tua|tuoi|tue"
    r"|hai|sei|sai|vuoi|puoi|devi|preferisci|ricevi|trovi|paghi|senti|vedi"
    r"|scrivi|rispondi|scegli|controlla|ricontrolla|riprova|chiama|apri|chiudi|esci|accendi"
    r"|manda|invia|indica|dimmi|dimmelo|dicci|scrivimi|scrivimelo|scrivici|scrivilo|scrivila"
    r"|riscrivilo|riscrivila|ricontrollalo|ricontrollala|mandami|fammi|dammi|indicami|inviami"
    r"|raccontami|spiegami|contattaci|richiamaci"
    r"|\w+ndoti|\w{2,}(?:arti|erti|irti))\b"
    r"|\bscusa(?=\s*[,!]|\s+se\b)",
    re.IGNORECASE)
FORMAL = re.compile(
    r"\b(?:Lei|Suo|Sua|Suoi|Sue)\b"  # the capitalised pronouns
    r"|(?<=[a-zàèéìòù])(?:La|Le|Lo|Gli)\b"  # enclitic: aiutarLa, esserLe
    r"|(?<=[a-zàèéìòù,] )(?:La|Le)\b"  # mid-sentence: "un tecnico La chiamerà"
    r"|(?<!\b[Ss]i )\b(?:[Dd]esidera|[Pp]referisce|[Vv]uole|[Pp]uò|[Ss]criva|[Rr]icontrolli"
    r"|[Dd]ica|[Ss]celga|[Ii]ndichi|[Rr]isponda|[Aa]ttenda|[Rr]iprovi|[Cc]hiami|[Ss]cusi"
    r"|[Vv]erifichi)\b")
_VARIABLE = re.compile(r"\{\w+\}")


def informal_markers(text: str) -> list[str]:
    return [m.group(0) for m in INFORMAL.finditer(_VARIABLE.sub(" ", text))
            if m.group(0).lower() not in _NOT_ENCLITIC]


def formal_markers(text: str) -> list[str]:
    return [m.group(0) for m in FORMAL.finditer(_VARIABLE.sub(" ", text))]


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain"))


@pytest.fixture(scope="module")
def files() -> dict:
    """Response name -> the domain file that defines it."""
    out = {}
    for path in sorted((ROOT / "domain").glob("*.yml")):
        for name in (yaml.safe_load(path.read_text()) or {}).get("responses") or {}:
            out[name] = path.name
    return out


def slot_states(variations, persona):
    """Every combination of the slots the variations' conditions name, with persona and
    language fixed: the other slots take each value a condition names, or none."""
    conditions = [c for v in variations for c in v.get("condition") or []]
    others = sorted({c["name"] for c in conditions} - {"persona", "language"})
    values = []
    for name in others:
        named = [None]
        for c in conditions:
            if c["name"] == name and c["value"] not in named:
                named.append(c["value"])
        values.append(named)
    for combination in itertools.product(*values):
        yield {**dict(zip(others, combination)), "persona": persona, "language": "it"}


def candidates(domain, response, persona) -> list[str]:
    """Every text Rasa may send for `response` to an Italian customer with `persona`."""
    variations = domain.responses[response]
    chooser = ResponseVariationFilter(domain.responses)
    channels = {"rest"} | {v["channel"] for v in variations if v.get("channel")}
    texts = []
    for channel in sorted(channels):
        for state in slot_states(variations, persona):
            texts += [v.get("text") or "" for v in
                      chooser.responses_for_utter_action(response, channel, state)]
    return texts


def violations(domain, responses) -> list[tuple]:
    found = []
    for response in sorted(responses):
        for persona in FORMAL_PERSONAS + INFORMAL_PERSONAS:
            wrong = informal_markers if persona in FORMAL_PERSONAS else formal_markers
            for text in set(candidates(domain, response, persona)):
                if wrong(text):
                    found.append((response, persona, wrong(text), text))
    return found


def test_the_markers_tell_the_registers_apart():
    informal = ["Vuoi il link per pagare ora?", "Per sicurezza ti ho inviato un codice.",
                "Scrivimelo qui.", "Posso aiutarti?", "Controlla le cifre e riscrivila.",
                "Scusa, non ho capito.", "Se hai bisogno, sono qui.", "È la tua bolletta."]
    formal = ["Vuole il link per pagare ora?", "Un tecnico La chiamerà entro domani.",
              "Posso aiutarLa?", "C'è un guasto nella Sua zona.", "Se preferisce, me lo dica.",
              "Lei ha una bolletta da pagare.", "Mi scusi, non ho capito.",
              "Come posso esserLe utile?", "Desidera ricevere il link?", "Scelga qui sotto."]
    neutral = ["La bolletta luce è di 50 €.", "Le bollette più recenti sono due.",
               "Ho aperto la segnalazione: i tecnici sono esperti e certi dei tempi.",
               "Chiedo scusa per il disagio.", "Si può riprovare tra poco.",
               "Nessuna bolletta da pagare: è tutto in regola.",
               "L'ultima lettura è 1234 kWh, del {last_date}."]
    for text in informal:
        assert informal_markers(text) and not formal_markers(text), text
    for text in formal:
        assert formal_markers(text) and not informal_markers(text), text
    for text in neutral:
        assert not formal_markers(text) and not informal_markers(text), text


def test_the_resolution_catches_what_a_customer_would_see():
    """A tu default with no Lei variation, two matching variations of different registers (Rasa
    picks one at random), a channel-specific tu text: each is a violation; a complete response
    is not."""
    it = {"type": "slot", "name": "language", "value": "it"}

    def of(persona):
        return [{"type": "slot", "name": "persona", "value": persona}, it]

    class Responses:
        responses = {
            "utter_default_only": [{"text": "Vuoi il link?"}],
            "utter_random_mix": [{"text": "Vuoi il link?"},
                                 {"condition": of("senior"), "text": "Vuole il link?"},
                                 {"condition": [it], "text": "Vuoi proprio il link?"}],
            "utter_channel": [{"text": "Vuoi il link?"},
                              {"condition": of("senior"), "text": "Vuole il link?"},
                              {"condition": of("business"), "text": "Desidera il link?"},
                              {"channel": "whatsapp", "text": "Vuoi il link? Rispondi sì."}],
            "utter_complete": [{"text": "Vuoi il link?"},
                               {"condition": of("senior"), "text": "Vuole il link?"},
                               {"condition": of("business"), "text": "Desidera il link?"}],
        }

    found = {(r, p) for r, p, *_ in violations(Responses, Responses.responses)}
    assert found == {("utter_default_only", "senior"), ("utter_default_only", "business"),
                     ("utter_random_mix", "senior"), ("utter_random_mix", "business"),
                     ("utter_channel", "senior"), ("utter_channel", "business")}


def test_every_italian_reply_is_in_the_personas_register(domain, files):
    """Lei for senior and business, tu (or no second person) for everyone else."""
    assert len(domain.responses) > 100
    found = violations(domain, domain.responses)
    assert found == [], "\n".join(f"{files[r]} {r} [{p}] {m}: {t}" for r, p, m, t in found)


def test_the_registers_are_really_used(domain):
    """Not trivially passing: the formal personas get Lei in many replies, the others tu."""
    checked = list(domain.responses)
    for persona in FORMAL_PERSONAS:
        lei = [r for r in checked if any(formal_markers(t)
                                         for t in candidates(domain, r, persona))]
        assert len(lei) >= 30, (persona, len(lei))
    for persona in INFORMAL_PERSONAS:
        tu = [r for r in checked if any(informal_markers(t)
                                        for t in candidates(domain, r, persona))]
        assert len(tu) >= 30, (persona, len(tu))
    for response in checked:  # and every customer gets some text
        for persona in FORMAL_PERSONAS + INFORMAL_PERSONAS:
            assert candidates(domain, response, persona), (response, persona)


def test_vocabulary_words_suit_every_persona(domain):
    """The words put into sentences (bot.i18n.word) are chosen by language only."""
    from bot import i18n

    for response in i18n.vocabulary_responses():
        for variation in domain.responses[response]:
            text = variation.get("text") or ""
            assert not informal_markers(text) and not formal_markers(text), (response, text)


# --- numbers in the customer's locale ------------------------------------------------------

@pytest.mark.parametrize("value, italian, english", [
    (Decimal("94.0"), "94", "94"), (Decimal("94"), "94", "94"), (94.04, "94", "94"),
    (Decimal("12.5"), "12,5", "12.5"), (Decimal("12.46"), "12,5", "12.5"),
    (Decimal("0.05"), "0,1", "0.1"), (Decimal("-3"), "-3", "-3"),
    (Decimal("1234.5"), "1.234,5", "1,234.5"), (60, "60", "60"),
])
def test_percentages_in_the_customers_locale(value, italian, english):
    from bot import i18n

    assert i18n.percent(value, "it") == italian
    assert i18n.percent(value, "en") == english
    assert i18n.percent(value, None) == italian  # Italian by default


def test_numbers_money_and_months_in_the_customers_locale():
    from bot import i18n

    assert i18n.number(Decimal("4821.5"), "it") == "4.821,5"
    assert i18n.number(Decimal("4821.5"), "en") == "4,821.5"
    assert i18n.money(Decimal("94.00"), "it").replace("\xa0", " ") == "94,00 €"
    assert i18n.money(Decimal("94.00"), "en") == "€94.00"
    assert i18n.month_name(10, "it") == "ottobre" and i18n.month_name(10, "en") == "October"
    assert i18n.month_year(2025, 9, "it") == "settembre 2025"
    assert i18n.month_year(2025, 9, "en") == "September 2025"
