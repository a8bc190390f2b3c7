"""Language detection for anonymous customers (bot.language)."""

import pytest

from bot.language import detect


@pytest.mark.parametrize("text,language", [
    ("hello, what can you do for me?", "en"), ("how much do I owe?", "en"), ("thanks", "en"),
    ("quanto devo pagare?", "it"), ("ciao", "it"), ("come posso pagare la bolletta?", "it"),
    ("ok", None), ("C1000001", None), ("", None), ("12345", None),
    # markup and scripts say nothing of the customer's language
    ('<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>', None),
    ("<b>ciao</b>, vorrei pagare la bolletta", "it"),
])
def test_detect(text, language):
    assert detect(text) == language
