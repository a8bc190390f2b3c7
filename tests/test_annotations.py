"""The export of annotated customer messages as Rasa NLU training data (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader
from rasa.shared.nlu.training_data.loading import load_data

from bot.analytics import annotations
from bot.analytics.models import Conversation, ConversationMessage, MessageAnnotation
from bot.analytics.redact import IBAN, LABELS, TAX_CODE
from bot.persistence.db import session_scope

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


def _conversation(db, sender: str, language: str, lines: list[tuple[str, str, str | None]]):
    """lines: (sender, masked text, annotated intent or None)."""
    conv = Conversation(sender_id=sender, session_start=T0.timestamp(), started_at=T0,
                        last_event_at=T0, language=language, channel="web")
    db.add(conv)
    db.flush()
    for i, (who, text, intent) in enumerate(lines):
        msg = ConversationMessage(conversation_id=conv.id, at=T0 + timedelta(seconds=i),
                                  sender=who, text=text, intent="nlu_fallback")
        db.add(msg)
        db.flush()
        if intent:
            db.add(MessageAnnotation(message_id=msg.id, intent=intent, language=language,
                                     at=T0 + timedelta(minutes=i)))
    db.flush()


def _seed(db):
    _conversation(db, "it-1", "it", [
        ("customer", "la mia mail è [EMAIL], mandatemi la bolletta", "activate_ebill"),
        ("bot", "Certo, [NAME]!", "greet"),  # a bot line is never training data
        ("customer", "voglio pagare la bolletta", "pay_bill"),
        ("customer", "voglio   pagare la\nbolletta", "pay_bill"),  # the same, once clean
        ("customer", "addebito sul conto [IBAN] per [NAME]", "setup_direct_debit"),
        ("customer", "abito in [ADDRESS], il mio codice è [CUSTOMER_CODE]", "move_home"),
        ("customer", "chiamatemi al [PHONE], codice fiscale [TAX_CODE]", "request_callback"),
        ("customer", "non annotated", None),
    ])
    _conversation(db, "en-1", "en", [
        ("customer", "my email is [EMAIL]", "update_contact"),
        ("customer", "call me [maybe](soon)", "request_callback"),
    ])


def test_export_is_rasa_training_data_with_fictional_values(database):
    with session_scope() as db:
        _seed(db)
    with session_scope() as db:
        text = annotations.export_yaml("it", db)
    assert text.startswith('version: "3.1"\nnlu:\n')
    for label in LABELS:
        assert label not in text
    data = RasaYAMLReader().reads(text)
    got = sorted((m.get("intent"), m.get("text")) for m in data.training_examples)
    v = annotations.FICTIONAL_VALUES
    assert got == sorted([
        ("activate_ebill", f"la mia mail è {v['[EMAIL]']}, mandatemi la bolletta"),
        ("pay_bill", "voglio pagare la bolletta"),
        ("setup_direct_debit", f"addebito sul conto {v['[IBAN]']} per Mario Rossi"),
        ("move_home", "abito in via Roma 1, il mio codice è C1234567"),
        ("request_callback", f"chiamatemi al +39 333 0000000, codice fiscale {v['[TAX_CODE]']}"),
    ])
    # one block per intent, in order; examples sorted
    intents = re.findall(r"^- intent: (\S+)$", text, re.M)
    assert intents == sorted(intents) == sorted(set(intents))
    assert all(not m.get("entities") for m in data.training_examples)


def test_export_file_loads_with_rasa_loader(database, tmp_path):
    with session_scope() as db:
        _seed(db)
    written = annotations.export_files(tmp_path / "out")
    assert [p.name for p, _ in written] == ["annotations_it.yml", "annotations_en.yml"]
    counts = dict((p.name, c) for p, c in written)
    assert counts["annotations_it.yml"] == {"activate_ebill": 1, "move_home": 1, "pay_bill": 1,
                                            "request_callback": 1, "setup_direct_debit": 1}
    assert counts["annotations_en.yml"] == {"request_callback": 1, "update_contact": 1}
    en = load_data(str(tmp_path / "out" / "annotations_en.yml"))
    texts = {m.get("text"): m.get("intent") for m in en.training_examples}
    # brackets in a customer's own text must not turn into an entity annotation
    assert texts == {"my email is mario.rossi@example.com": "update_contact",
                     "call me (maybe)(soon)": "request_callback"}
    assert not any(m.get("entities") for m in en.training_examples)


def test_latest_annotation_wins_and_language_filter(database):
    with session_scope() as db:
        _conversation(db, "s", "it", [("customer", "bolletta", "check_bill"),
                                      ("customer", "bolletta", "explain_bill")])
        _conversation(db, "e", "en", [("customer", "bolletta", "pay_bill")])
    with session_scope() as db:
        it = annotations.collect("it", db)
        en = annotations.collect("en", db)
    assert it == {"explain_bill": ["bolletta"]}
    assert en == {"pay_bill": ["bolletta"]}


def test_empty_export_is_valid(database):
    text = annotations.export_yaml("en")
    assert RasaYAMLReader().reads(text).training_examples == []


def test_fictional_values_look_real():
    v = annotations.FICTIONAL_VALUES
    iban = v["[IBAN]"]
    assert IBAN.fullmatch(iban) and len(iban) == 27
    rearranged = iban[4:] + iban[:4]
    assert int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1
    assert TAX_CODE.fullmatch(v["[TAX_CODE]"])
    assert v["[TAX_CODE]"] == "RSSMRA80A01H501U"  # the check letter of the well-known example
    assert v["[EMAIL]"].endswith("@example.com")


def test_cli_writes_both_languages(database, tmp_path, capsys):
    from bot.__main__ import main

    with session_scope() as db:
        _seed(db)
    assert main(["export-annotations", "--out", str(tmp_path / "x")]) == 0
    out = capsys.readouterr().out
    assert "annotations_it.yml" in out and "annotations_en.yml" in out
    assert "pay_bill: 1" in out
    assert (tmp_path / "x" / "annotations_it.yml").exists()
    assert main(["export-annotations", "--out", str(tmp_path / "y"), "--language", "en"]) == 0
    assert [p.name for p in (tmp_path / "y").iterdir()] == ["annotations_en.yml"]
