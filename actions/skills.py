"""Which action serves each skill intent: one table for pending requests, accepted offers and
tasks interrupted by another request."""

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


def is_form(action: str) -> bool:
    return action.endswith("_form")


def intent_of_form(form: str) -> Optional[str]:
    """The skill intent a form serves (None for the verification form, which serves any)."""
    return next((intent for intent, action in SKILL_ACTIONS.items() if action == form), None)
