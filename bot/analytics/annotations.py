"""Export of the CX leads' annotations as Rasa NLU training data.

A CX lead corrects the intent of a customer message in the review console
(`MessageAnnotation`). `export_yaml(language)` turns the annotated customer messages of one
language into Rasa 3.x NLU training data (`version: "3.1"`, one `- intent:` block per intent,
intents and examples sorted, duplicates removed), ready to be reviewed and added to `data/`.

The log keeps only masked texts (`bot.analytics.redact`): a label such as `[EMAIL]` stands where
personal data was. In the export each label becomes a fixed, plausible and fictional value
(`FICTIONAL_VALUES`), so the examples read like real messages without anyone's real data; the
IBAN and the tax code carry valid check characters, as real ones would.

Two further rules keep the file valid training data:
- whitespace (newlines too) is collapsed, control characters are dropped, and square brackets
  left in a text become parentheses, since Rasa reads `[text](entity)` as an entity annotation;
- a text annotated with different intents (a CX lead changed their mind, or two disagreed) is
  exported once, under the intent of its most recent annotation.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.analytics.models import ConversationMessage, MessageAnnotation
from bot.language import LANGUAGES


def _iban(country: str, bban: str) -> str:
    """An IBAN with correct check digits (ISO 13616, mod 97)."""
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


_CF_ODD = dict(zip(string.digits + string.ascii_uppercase,
                   [1, 0, 5, 7, 9, 13, 15, 17, 19, 21] +
                   [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16,
                    10, 22, 25, 24, 23]))


def _tax_code(first15: str) -> str:
    """An Italian tax code (codice fiscale) with its check letter."""
    total = 0
    for i, ch in enumerate(first15):
        if i % 2 == 0:  # 1st, 3rd, ... characters (odd positions, 1-based)
            total += _CF_ODD[ch]
        else:
            total += int(ch) if ch.isdigit() else ord(ch) - ord("A")
    return first15 + chr(ord("A") + total % 26)


# Fictional: example.com is reserved for documentation (RFC 2606), 333 0000000 is no one's
# number, ABI 00000 is no bank, the customer code is outside the demo ranges.
FICTIONAL_VALUES = {
    "[EMAIL]": "mario.rossi@example.com",
    "[PHONE]": "+39 333 0000000",
    "[IBAN]": _iban("IT", "X0000000000000000123456"),
    "[TAX_CODE]": _tax_code("RSSMRA80A01H501"),
    "[CUSTOMER_CODE]": "C1234567",
    "[ADDRESS]": "via Roma 1",
    "[NAME]": "Mario Rossi",
}

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_SIMPLE_INTENT = re.compile(r"^[A-Za-z0-9_\-]+$")


def training_text(masked: str) -> str:
    """A masked log text as a training example: labels filled in, one clean line."""
    text = masked or ""
    for label, value in FICTIONAL_VALUES.items():
        text = text.replace(label, value)
    text = _CONTROL.sub(" ", text)
    text = text.replace("[", "(").replace("]", ")")
    return " ".join(text.split())


def collect(language: str, db: Session | None = None) -> dict[str, list[str]]:
    """{intent: sorted unique examples} of the customer messages annotated in `language`."""
    if db is None:
        from bot.persistence.db import session_scope

        with session_scope() as session:
            return collect(language, session)
    rows = db.execute(
        select(MessageAnnotation.intent, ConversationMessage.text)
        .join(ConversationMessage, ConversationMessage.id == MessageAnnotation.message_id)
        .where(MessageAnnotation.language == language,
               ConversationMessage.sender == "customer")
        .order_by(MessageAnnotation.at, MessageAnnotation.id)).all()
    latest: dict[str, str] = {}  # example -> intent of its most recent annotation
    for intent, text in rows:
        example = training_text(text)
        if example and intent:
            latest[example] = intent
    by_intent: dict[str, set[str]] = defaultdict(set)
    for example, intent in latest.items():
        by_intent[intent].add(example)
    return {intent: sorted(by_intent[intent]) for intent in sorted(by_intent)}


def render(examples: dict[str, list[str]]) -> str:
    """Rasa 3.x NLU YAML of {intent: examples}."""
    lines = ['version: "3.1"']
    if not examples:
        lines.append("nlu: []")
        return "\n".join(lines) + "\n"
    lines.append("nlu:")
    for intent in sorted(examples):
        name = intent if _SIMPLE_INTENT.match(intent) else _quoted(intent)
        lines.append(f"- intent: {name}")
        lines.append("  examples: |")
        for example in examples[intent]:
            lines.append(f"    - {example}")
    return "\n".join(lines) + "\n"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def export_yaml(language: str, db: Session | None = None) -> str:
    """Rasa 3.x NLU training data of the customer messages annotated in `language`."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
    return render(collect(language, db))


def export_files(out_dir: Path, languages: Iterable[str] = LANGUAGES,
                 db: Session | None = None) -> list[tuple[Path, dict[str, int]]]:
    """Write `annotations_<language>.yml` for each language; [(path, {intent: count})]."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for language in languages:
        examples = collect(language, db)
        path = out_dir / f"annotations_{language}.yml"
        path.write_text(render(examples), encoding="utf-8")
        written.append((path, {intent: len(v) for intent, v in examples.items()}))
    return written
