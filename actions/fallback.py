"""The dialogue policies' last resort: no customer message is left without a reply."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from actions.conversation import ActionDefaultFallback


def replied_since_customer(tracker: Tracker) -> bool:
    """Whether the bot has said anything since the customer's latest message."""
    for event in reversed(tracker.events):
        if event.get("event") == "bot":
            return True
        if event.get("event") == "user":
            return False
    return True  # no customer message at all: nothing to answer


class ActionCoreFallback(Action):
    """RulePolicy's `core_fallback_action_name` (config.yml): when no policy is confident of the
    next action. Said as "I did not understand" (with its hand-over rules) only if nothing was
    said since the customer's message; either way the bot then listens."""

    def name(self) -> Text:
        return "action_core_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        events: List[EventType] = []
        if not tracker.is_paused() and not replied_since_customer(tracker):
            events = list(await ActionDefaultFallback().run(dispatcher, tracker, domain))
        return events + [FollowupAction("action_listen")]
