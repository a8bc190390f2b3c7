"""The self-care skills as the event stream shows them: which action serves each skill intent,
and the marker a skill puts on the reply that did its job.

One table for the actions (pending requests, accepted offers, tasks interrupted by another
request) and for the conversation log, which reads the tasks back from Rasa's events
(`bot.analytics.tasks`)."""

from __future__ import annotations

from typing import Dict, Optional

SKILL_ACTIONS: Dict[str, str] = {
    "check_bill": "action_check_bill",
    "explain_bill": "action_explain_bill",
    "pay_bill": "action_pay_bill",
    "submit_meter_reading": "meter_reading_form",
    "report_outage": "action_report_outage",
    "ticket_status": "action_ticket_status",
    "activate_ebill": "action_activate_ebill",
    "update_contact": "contact_form",
    "setup_direct_debit": "direct_debit_form",
    "contract_info": "action_contract_info",
    "file_complaint": "complaint_form",
    "request_callback": "callback_form",
    "move_home": "action_move_home",
    "request_human": "action_request_human",
    # not an intent: the written request offered when no agent is available
    "handover_ticket": "action_handover_ticket",
}
# The self-care tasks a customer asks the bot to do (not a person, not the written request).
TASK_SKILLS = tuple(intent for intent in SKILL_ACTIONS
                    if intent not in ("request_human", "handover_ticket"))
SKILL_OF_ACTION = {action: intent for intent, action in SKILL_ACTIONS.items()
                   if intent in TASK_SKILLS}

# The key, in a bot reply's metadata, of the marker saying which task that reply completed.
TASK_MARKER = "task"


def is_form(action: str) -> bool:
    return action.endswith("_form")


def intent_of_form(form: str) -> Optional[str]:
    """The skill intent a form serves (None for the verification form, which serves any)."""
    return next((intent for intent, action in SKILL_ACTIONS.items() if action == form), None)


def task_marker(skill: str, reference: Optional[str] = None) -> Dict[str, Dict[str, str]]:
    """Metadata for the reply with which `skill` did its job (the amount shown, the reading
    stored, the ticket opened); `reference` is the ticket id or bill number it was about."""
    marker = {"skill": skill, "outcome": "resolved"}
    if reference:
        marker["reference"] = reference
    return {TASK_MARKER: marker}
