"""The conversation suite (tests/conversations/*.yml, README.md) on the real stack, embedded
profile: each conversation is one test case named by its id. A failure prints the transcript
with every failed check under its turn. Every turn must get a reply (never silent), facts are
read from the stack's database when the check runs, side effects are checked afterwards.

At the end, a summary per language (the benchmark's figures, bench/conversations.py) is written
to conversations-summary.json in the stack's var folder."""

from __future__ import annotations

import json

import pytest

from bot.persistence.db import session_scope
from tests.conversations.runner import (
    Responses,
    assign_customers,
    failure_counts,
    load_all,
    load_domain,
    run_conversation,
    summarise,
)

pytestmark = pytest.mark.integration

CONVERSATIONS = load_all()
RESPONSES = Responses(load_domain())
_ASSIGNMENT: dict = {}
# The share of conversations done with every check passed, per language: measured 0.966 (it)
# and 0.988 (en) on 2026-12-03 at 23:30 UTC (2 cores; 0.955 / 0.965 one run earlier), kept a
# few conversations below as the floor, since shared demo customers make a run differ from the
# next by one or two (bench/RESULTS.md, "Conversation suite"); raise it as the bot improves.
FLOOR = {"it": 0.93, "en": 0.93}
_RUN: dict = {"results": [], "var_dir": None}


def customer_of(conversation) -> str:
    """Chosen once for the whole suite, on the stack's database before any conversation ran
    (the same choice tests/conversations/test_format.py checks on the demo data)."""
    if not _ASSIGNMENT:
        with session_scope() as session:
            _ASSIGNMENT.update(assign_customers(CONVERSATIONS, session))
    return _ASSIGNMENT[conversation.id]


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    results = _RUN["results"]
    if not results or _RUN["var_dir"] is None:
        return
    data = {"by_language": summarise(results), "first_failures": failure_counts(results)}
    path = _RUN["var_dir"] / "conversations-summary.json"
    path.write_text(json.dumps(data, indent=2))
    print(f"\nconversation suite: {json.dumps(data['by_language'], indent=1)}\n({path})")


# the embedded profile only (the stack fixture's other profile is not started for these);
# one stack for all of them: the stack parameter is the same single value for every case
@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=[c.id for c in CONVERSATIONS])
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_conversation(stack, sender, token, conversation):
    customer = customer_of(conversation)
    # one-time codes are read from the embedded profile's outbox, only those sent since the
    # conversation began (Stack.code_sent_to would return an older code when none was sent)
    result = run_conversation(
        conversation, stack.talk, session_scope, token,
        customer=None if customer == "anonymous" else customer,
        sender=sender, responses=RESPONSES)
    _RUN["results"].append(result)
    _RUN["var_dir"] = stack.var_dir
    # Never silent, never a duplicate side effect, never a crash: for every conversation.
    assert not result.aborted and result.silent_turns == 0 and result.duplicate_tickets == 0, \
        result.report()
    if not result.passed:  # the task not done with the right facts: counted, shown, and
        print(result.report())  # held to the floor below (bench/RESULTS.md has the figures)


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_the_share_of_tasks_done_does_not_fall(stack):
    """Runs after every conversation above (pytest keeps the module's order). The target is
    95 % per language (issue 11); FLOOR is what the suite reached when it was last measured,
    so any regression fails here while the gap to the target stays visible in RESULTS.md."""
    results = _RUN["results"]
    assert len(results) == len(CONVERSATIONS), "run the whole conversation suite"
    summary = summarise(results)
    for language, figures in summary.items():
        assert figures["task_done_share"] >= FLOOR[language], (
            language, figures["task_done_share"], figures["failed"])

