"""The CX lead's complaint clocks (cx_lead and admin): `/console/complaints`.

- `GET /console/complaints`: the page (an HTML shell; `static/complaints.js` fills it).
- `GET /console/api/complaints?page=&per_page=`: the complaints waiting for an answer, the
  nearest deadline first (`bot.analytics.complaints.waiting_complaints`: days left, late, the
  indemnity owed so far, the subject masked), with the deadlines and indemnity in force. Bad
  input gets 400 with `{"error": "..."}`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sanic import Blueprint, Request, response

from bot.analytics.complaints import waiting_complaints
from bot.crm import complaint_clock
from bot.desk.pages import int_arg, login_required, page
from bot.persistence.db import run, session_scope
from bot.settings import get_settings, local_zone

complaints = Blueprint("complaints")
LEADS = ("cx_lead", "admin")


def rules() -> dict:
    """The deadlines (the answer's; a bill's correction per kind) and the base indemnity in
    force (the settings)."""
    return {"answer_days": complaint_clock.answer_days(),
            "correction_days": {kind: complaint_clock.correction_days(kind)
                                for kind in complaint_clock.KINDS
                                if kind != complaint_clock.GENERAL},
            "indemnity_eur": str(get_settings().complaint_indemnity_eur),
            "multipliers": list(complaint_clock.MULTIPLIERS)}


def _listing(page_number: int, per_page: int) -> dict:
    now = datetime.now(timezone.utc)
    with session_scope() as db:
        result = waiting_complaints(db, now.astimezone(local_zone()).date(), now, page_number,
                                    per_page)
    return {**result, "rules": rules()}


@complaints.get("/console/complaints")
@login_required(roles=LEADS, api=False)
async def complaints_page(request: Request) -> response.HTTPResponse:
    return page("console_complaints.html", login=request.ctx.login, page_name="complaints",
                rules=rules())


@complaints.get("/console/api/complaints")
@login_required(roles=LEADS)
async def complaints_api(request: Request) -> response.HTTPResponse:
    try:
        result = await run(_listing, int_arg(request, "page", 1),
                           int_arg(request, "per_page", 50))
    except ValueError as exc:
        return response.json({"error": str(exc)}, status=400)
    return response.json(result, headers={"Cache-Control": "no-store"})
