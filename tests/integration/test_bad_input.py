"""Bad input never breaks a conversation: each message gets a sensible reply."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("text,expected", [
    ("", "vuoto"),
    ("   \n\t ", "vuoto"),
    ("bolletta " * 1250, None),
    ("😀😀😀🔥", None),
    ("Wie hoch ist meine Rechnung im Oktober, bitte?", None),
    ("<script>alert('x')</script><b>ciao</b>", None),
    ("/intent_that_does_not_exist", "non ho capito"),
    ("/check_bill{not json", None),
])
def test_bad_input_gets_a_sensible_reply(stack, sender, text, expected):
    messages = stack.talk(sender, text)
    assert messages, f"no reply to {text[:40]!r}"
    joined = " ".join(m.get("text", "") for m in messages)
    assert joined.strip()
    assert "Traceback" not in joined and "<script>" not in joined
    if expected:
        assert expected in joined
    # and the conversation goes on
    assert stack.say(sender, "grazie")
