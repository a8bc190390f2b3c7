"""Which action serves each skill intent: the table lives in `bot.skills`, shared with the
conversation log that reads the tasks back from Rasa's events."""

from __future__ import annotations

from bot.skills import SKILL_ACTIONS, intent_of_form, is_form

__all__ = ["SKILL_ACTIONS", "intent_of_form", "is_form"]
