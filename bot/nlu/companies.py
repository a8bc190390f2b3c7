"""Other companies named in a message (energy suppliers, water utilities, telecom operators):
what the OtherCompanyGuard (bot/nlu/other_company.py) and the actions both need. Only Rasa's
constants are imported, so the action server does not load TensorFlow for it."""

from __future__ import annotations

import re
from typing import Optional, Text

from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME

from bot.stopwords import fold

OTHER_COMPANIES = (
    "enel", "enel energia", "servizio elettrico nazionale", "edison", "a2a", "eni",
    "eni plenitude", "plenitude", "hera", "iren", "acea", "sorgenia", "engie", "iberdrola",
    "eon", "illumia", "estra", "dolomiti energia", "axpo", "optima", "wekiwi",
    "octopus", "octopus energy", "enegan", "alperia", "agsm", "duferco", "pulsee", "nen",
    "e distribuzione", "edistribuzione", "italgas", "areti", "unareti", "acquedotto pugliese",
    "smat", "metropolitana milanese", "abbanoa", "publiacqua", "gori",
    "telecom italia", "vodafone", "windtre", "wind tre", "iliad", "fastweb", "tiscali",
    "ho mobile", "kena mobile", "poste mobile", "postemobile", "very mobile",
)
# Luce Nord, or "you", named beside the other company: the customer speaks of their own account
# with us ("sono passato da Enel a voi").
OURS = re.compile(r"\b(?:luce\s*nord|con voi|da voi|a voi|vostr[aoie]|with you|to you|from you)\b")
_NAMES = re.compile(
    r"\b(?:" + "|".join(sorted(map(re.escape, OTHER_COMPANIES), key=len, reverse=True)) + r")\b")
# Questions about an account: about another company's account they are not ours to answer.
ACCOUNT_INTENTS = frozenset({
    "check_bill", "explain_bill", "pay_bill", "contract_info", "activate_ebill", "ticket_status",
    DEFAULT_NLU_FALLBACK_INTENT_NAME,
})


def names_other_company(text: Optional[Text]) -> bool:
    """Whether the message names another company and not Luce Nord (or "you")."""
    folded = fold(text or "")
    return bool(_NAMES.search(folded)) and not OURS.search(folded)
