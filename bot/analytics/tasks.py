"""Self-care tasks and silent failures, read from Rasa's events as the conversation log is built
(`bot.analytics.ingest`). Definitions in the README ("Resolution and silent failures").

A task opens when the bot is asked for a skill (`bot.skills.TASK_SKILLS`): a customer message
with that intent while no form is open, or the skill's action or form starting (an accepted
offer, a request the bot hands to another skill, a task resumed after an interruption). It is

- `resolved` when a bot reply carries the skill's marker (`bot.skills.task_marker`: the skill did
  its job and recorded it), **confirmed** when the customer then thanks, says there is nothing
  else after "anything else?", or rates the conversation `CONFIRMING_CSAT` or more;
- `handed_over` when the conversation goes to a person (or to a callback or ticket offer) while
  it is not resolved;
- `not_resolved` otherwise, with the strongest reason it met (`NOT_RESOLVED_REASONS`).

Silent failures are flagged on the transcript line that shows them: a customer message the bot
left without a reply (the next customer message came, or the conversation ended, first), an
error reply, a customer message answered by another skill than the one meant (the customer
at once rephrases to another skill while the task is not resolved, or says "no, I meant...").

Everything is derived from the stored records (the conversation, its lines and tasks), never
from memory, so a batch boundary of the event stream between two events changes nothing.
"""

from __future__ import annotations

import re
from datetime import datetime

from bot.analytics.models import (
    NOT_RESOLVED_REASONS,
    Conversation,
    ConversationMessage,
    ConversationTask,
)
from bot.skills import SKILL_OF_ACTION, TASK_MARKER, TASK_SKILLS
from bot.stopwords import fold

# Replies that tell the customer something went wrong on our side.
ERROR_RESPONSES = frozenset({"utter_technical_problem"})
# The bot asking whether there is anything else: a "no" or a goodbye after it confirms.
ANYTHING_ELSE_RESPONSES = frozenset({"utter_ok_something_else"})
THANKS_INTENTS = frozenset({"thank_you"})
NOTHING_ELSE_INTENTS = frozenset({"deny", "goodbye"})
CONFIRMING_CSAT = 4
# "no, I meant...": the customer says the bot answered another request than theirs (folded
# text, bot.stopwords.fold). Only at the start of the message, and "intendevo" / "volevo" only
# after a "no": "non volevo disturbare, grazie" and "intendevo anche chiederti del gas" are not
# corrections.
CORRECTION = re.compile(
    r"^(?:(?:ma|scusa|scusi|sorry|but|oh)\s+){0,2}"
    r"(?:no\s+(?:io\s+)?(?:intendevo|volevo|chiedevo|parlavo|i meant|i mean|i wanted|i want"
    r"|i was asking)"
    r"|non intendevo|non ho chiesto|non e quello|non era quello|i meant|not what i (?:asked|meant"
    r"|wanted)|that s not what i|i didn t ask|i did not ask)\b")


def corrects(text: str) -> bool:
    """Whether a message says the bot took it for another request ("no, intendevo...")."""
    return bool(CORRECTION.search(fold(text)))


def resolution_of(tasks: list[ConversationTask]) -> str | None:
    """A conversation's resolution from its tasks: not resolved if any task was not, else
    handed over if any was, else resolved; None without a task."""
    if not tasks:
        return None
    outcomes = {t.outcome for t in tasks}
    for outcome in ("not_resolved", "handed_over"):
        if outcome in outcomes:
            return outcome
    return "resolved"


def _rank(reason: str | None) -> int:
    return NOT_RESOLVED_REASONS.index(reason) if reason in NOT_RESOLVED_REASONS else \
        len(NOT_RESOLVED_REASONS)


class TaskLog:
    """The tasks and silent failures of one conversation, moved on by its events."""

    def __init__(self, conv: Conversation) -> None:
        self.conv = conv

    # ---- reading the records -------------------------------------------------------------------

    def current(self) -> ConversationTask | None:
        """The task the latest events concerned (ties: the newer one)."""
        tasks = list(self.conv.tasks)
        if not tasks:
            return None
        return max(enumerate(tasks), key=lambda it: (it[1].last_at, it[0]))[1]

    def _open_task(self, skill: str) -> ConversationTask | None:
        """The newest task of `skill` still under way (not resolved, not handed over)."""
        for task in reversed(list(self.conv.tasks)):
            if task.skill == skill and task.outcome == "not_resolved" \
                    and task.reason != "wrong_skill":
                return task
        return None

    def _lines_before(self, line: ConversationMessage | None):
        lines = list(self.conv.messages)
        if line is not None and lines and lines[-1] is line:
            lines.pop()
        return reversed(lines)

    def awaiting(self, before: ConversationMessage | None = None) -> ConversationMessage | None:
        """The customer's message to the bot that nothing answered yet (no bot or agent line,
        no handover, after it), if any."""
        for line in self._lines_before(before):
            if line.sender == "customer":
                return None if line.handover else line
            if line.sender in ("bot", "agent", "event"):
                return None
        return None

    def _previous(self, sender: str, before: ConversationMessage) -> ConversationMessage | None:
        for line in self._lines_before(before):
            if line.sender == sender and not line.handover:
                return line
        return None

    # ---- changing them ---------------------------------------------------------------------

    def flag(self, line: ConversationMessage, failure: str) -> None:
        if line.failure is None:
            line.failure = failure
            self.conv.failures = (self.conv.failures or 0) + 1

    @staticmethod
    def fail(task: ConversationTask | None, reason: str) -> None:
        """A reason against a task under way, kept if it is stronger than the one it has."""
        if task is not None and task.outcome == "not_resolved" \
                and _rank(reason) < _rank(task.reason):
            task.reason = reason

    def open(self, skill: str, when: datetime) -> ConversationTask:
        """The task of `skill`: the one still under way (the same request again, or resumed),
        or a new one."""
        task = self._open_task(skill)
        if task is None:
            task = ConversationTask(skill=skill, started_at=when, last_at=when,
                                    outcome="not_resolved", reason="unfinished",
                                    confirmed=False, turns=0, replied=False)
            self.conv.tasks.append(task)
        task.last_at = max(task.last_at, when)
        return task

    def confirm(self, by: str) -> None:
        for task in self.conv.tasks:
            if task.outcome == "resolved" and not task.confirmed:
                task.confirmed, task.confirmed_by = True, by

    # ---- events ----------------------------------------------------------------------------

    def on_customer(self, line: ConversationMessage, intent: str, text: str,
                    when: datetime) -> None:
        """A customer message to the bot (not to a person)."""
        unanswered = self.awaiting(before=line)
        task = self.current()
        if unanswered is not None:
            self.flag(unanswered, "silent_turn")
            self.fail(task, "silent_turn")
        if task is not None:
            self._check_wrong_skill(task, line, intent, text)
            task.turns += 1
        if intent in THANKS_INTENTS:
            self.confirm("thanks")
        elif intent in NOTHING_ELSE_INTENTS:
            said = self._previous("bot", line)
            if said is not None and said.response in ANYTHING_ELSE_RESPONSES:
                self.confirm("nothing_else")
        if intent in TASK_SKILLS and not self.conv.active_loop:
            self.open(intent, when)

    def _check_wrong_skill(self, task: ConversationTask, line: ConversationMessage,
                           intent: str, text: str) -> None:
        """The message right after the skill's first answer says it was the wrong skill."""
        if task.turns or not task.replied or task.outcome == "handed_over":
            return
        asked = self._previous("customer", line)
        if asked is None or asked.intent != task.skill:
            return
        rephrased = intent in TASK_SKILLS and intent != task.skill \
            and task.outcome != "resolved"
        if rephrased or corrects(text):
            task.outcome, task.reason = "not_resolved", "wrong_skill"
            self.flag(asked, "wrong_skill")

    def on_reply(self, line: ConversationMessage, metadata: dict, when: datetime) -> None:
        """A bot reply (not an agent's)."""
        line.response = str(metadata.get("utter_action") or "")[:64] or None
        task = self.current()
        if task is not None:
            task.replied = True
        if line.response in ERROR_RESPONSES:
            self.flag(line, "error_reply")
            self.fail(task, "error_reply")
        marker = metadata.get(TASK_MARKER)
        if isinstance(marker, dict) and marker.get("skill") in TASK_SKILLS:
            self._resolve(marker, when)

    def _resolve(self, marker: dict, when: datetime) -> None:
        skill = marker["skill"]
        current = self.current()
        task = current if current is not None and current.skill == skill \
            and current.reason != "wrong_skill" else self.open(skill, when)
        if task.outcome == "handed_over":
            return
        task.outcome, task.reason, task.ended_at = "resolved", None, when
        task.replied = True
        task.last_at = max(task.last_at, when)
        reference = marker.get("reference")
        if reference:
            task.reference = str(reference)[:32]

    def on_action(self, name: str, when: datetime) -> None:
        """A skill's action or form runs: its task, or the bot's own routing of the request
        just made (a bill question with a meter reading in it goes to the reading form)."""
        skill = SKILL_OF_ACTION.get(name)
        if skill is None:
            return
        task = self.current()
        if task is not None and task.skill == skill:
            task.last_at = max(task.last_at, when)
            return
        if task is not None and task.outcome == "not_resolved" and not task.replied \
                and not task.turns and self._open_task(skill) is None:
            task.skill = skill  # nothing said yet: the request went to another skill
            task.last_at = max(task.last_at, when)
            return
        self.open(skill, when)

    def on_form(self, previous: str | None, name: str | None) -> None:
        """A form closed: its task, unless the submit action now marks it done, was given up."""
        if previous and not name:
            skill = SKILL_OF_ACTION.get(previous)
            if skill is not None:
                self.fail(self._open_task(skill), "form_cancelled")

    def on_handover(self, when: datetime) -> None:
        task = self.current()
        if task is not None and task.outcome == "not_resolved" and task.reason != "wrong_skill":
            task.outcome, task.reason, task.ended_at = "handed_over", None, when

    def on_rating(self, rating: int) -> None:
        if rating >= CONFIRMING_CSAT:
            self.confirm("csat")

    def finish(self, when: datetime) -> None:
        """The conversation ended: a last message left unanswered is a silent turn; the task
        under way ends on a misunderstanding or an open form, if nothing stronger."""
        task = self.current()
        unanswered = self.awaiting()
        if unanswered is not None:
            self.flag(unanswered, "silent_turn")
            self.fail(task, "silent_turn")
        if self.conv.last_was_fallback:
            self.fail(task, "fallback_end")
        elif self.conv.active_loop:
            self.fail(task, "form_abandoned")
        for t in self.conv.tasks:
            if t.ended_at is None:
                t.ended_at = when
        self.refresh()

    def refresh(self) -> None:
        self.conv.resolution = resolution_of(list(self.conv.tasks))
