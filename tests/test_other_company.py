"""bot/nlu/other_company.py: a question about another company's account is out of scope."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.companies import names_other_company
from bot.nlu.other_company import OtherCompanyGuard


@pytest.mark.parametrize("text", [
    "my friend is with Edison and their bill is way higher than mine, why is that?",
    "la bolletta di mia madre con ENEL è altissima, perché?",
    "quando scade il contratto con A2A?", "my Vodafone invoice is wrong",
    "Eni Plenitude mi ha mandato una bolletta doppia", "la bolletta dell'acquedotto pugliese",
])
def test_names_another_company(text):
    assert names_other_company(text)


@pytest.mark.parametrize("text", [
    "why is my bill so high?", "perché la bolletta è così alta?", "",
    "sono passato da Enel a voi, perché la prima bolletta è così alta?",
    "I switched from Edison to Luce Nord, when is my first bill due?",
    "Hi, I'm Tim, how much is my bill?", "sky high bill this month!",
    "la bolletta e on line?", "generico enelx",
])
def test_does_not_name_another_company(text):
    assert not names_other_company(text)


def message(text: str, intent: str, confidence: float = 0.9) -> Message:
    ranking = [{"name": intent, "confidence": confidence}]
    return Message(data={"text": text, "intent": ranking[0], "intent_ranking": list(ranking)})


@pytest.mark.parametrize("intent", ["explain_bill", "check_bill", "contract_info", "nlu_fallback"])
def test_an_account_question_about_another_company_is_out_of_scope(intent):
    [out] = OtherCompanyGuard().process([message("my friend is with Edison, why is their bill "
                                                 "higher than mine?", intent)])
    assert out.get("intent") == {"name": "out_of_scope", "confidence": 1.0}
    assert [r["name"] for r in out.get("intent_ranking")] == ["out_of_scope", intent]


@pytest.mark.parametrize("text,intent", [
    ("why is my bill so high?", "explain_bill"),  # no other company
    ("Enel cut my power, no electricity since this morning", "report_outage"),  # not an account
    ("voglio parlare con un operatore, ero con Enel", "request_human"),
    ("/explain_bill", "explain_bill"),  # a button payload
])
def test_other_messages_keep_their_intent(text, intent):
    [out] = OtherCompanyGuard().process([message(text, intent)])
    assert out.get("intent") == {"name": intent, "confidence": 0.9}
