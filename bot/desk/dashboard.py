"""The CX lead's KPI dashboard (cx_lead and admin): `/console/dashboard`.

- `GET /console/dashboard`: the page (an HTML shell; `static/dashboard.js` draws it with
  Chart.js from the JSON below).
- `GET /console/api/kpis?from=YYYY-MM-DD&to=YYYY-MM-DD&channel=&language=&persona=&stage=&by=`:
  `bot.analytics.kpis.compare` for the period (Europe/Rome days, both included; by default the
  last 30 days up to today) and the previous period of the same length, plus the filters'
  options and the KPI definitions, and the complaints answered on time in both periods
  (`bot.analytics.complaints.compare`: the period only, whatever the filters). Bad input gets
  400 with `{"error": "..."}`.
- `GET /console/vendor/chart.umd.js`: Chart.js's UMD build, from `web/node_modules` (installed
  by the set-up with `npm ci` in `web/`, pinned in `web/package-lock.json`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sanic import Blueprint, Request, response

from bot.analytics import complaints, kpis
from bot.analytics.models import STAGE_LABELS, STAGES
from bot.analytics.queries.filters import parse_date
from bot.crm.models import PERSONAS
from bot.desk.pages import login_required, page
from bot.language import LANGUAGES
from bot.persistence.db import run, session_scope
from bot.settings import ROOT, local_zone

dashboard = Blueprint("dashboard")
LEADS = ("cx_lead", "admin")
CHART_JS = ROOT / "web" / "node_modules" / "chart.js" / "dist" / "chart.umd.js"
DEFAULT_DAYS = 30

DEFINITIONS = {
    "conversations": "Conversation sessions with at least one customer message that started "
                     "in the period (Europe/Rome days).",
    "containment_rate": "Share of conversations the bot handled alone: no handover, and not "
                        "abandoned.",
    "tasks": "Self-care tasks the bot attempted in the period's conversations (a bill shown, a "
             "reading stored, a ticket opened...).",
    "resolution_rate": "Share of tasks resolved: the skill did its job and recorded it (not just "
                       "no handover).",
    "confirmed_resolution_rate": "Share of tasks resolved and confirmed by the customer: thanks, "
                                 "nothing else after \"anything else?\", or a CSAT of 4 or 5.",
    "assumed_resolution_rate": "Share of tasks resolved without a confirmation (confirmed + "
                               "assumed = resolution rate); no good direction of its own.",
    "net_resolution_rate": "Share of tasks resolved and not withdrawn: the same customer did not "
                           "come back about the same skill, ticket or bill within the recontact "
                           "window, on any channel (imported phone and e-mail contacts "
                           "included). Anonymous customers are matched only within their own "
                           "conversation id.",
    "conversation_resolution_rate": "Share of the conversations with a task in which every task "
                                    "was resolved.",
    "silent_failure_rate": "Share of conversations with a silent failure: a customer message "
                           "the bot left without a reply, an error reply, or a reply from "
                           "another skill than the one asked for.",
    "handover_rate": "Share of conversations that reached a person's queue, or where the "
                     "customer asked for a person and was offered a callback or a ticket.",
    "fallback_rate": "Customer messages the bot did not understand (nlu_fallback) over all "
                     "customer messages to the bot.",
    "abandonment_rate": "Share of conversations that ended (idle, or a new session) while a "
                        "form was open or right after a message the bot did not understand.",
    "csat_average": "Average rating (1-5) of the conversations with a rating.",
    "csat_response_rate": "Share of conversations with a rating.",
    "wait_p50": "Median time from the handover to a person taking it (or the customer giving "
                "up), nearest-rank.",
    "wait_p90": "90th percentile (nearest-rank) of the handover wait.",
    "handling_p50": "Median time from a person taking the conversation to closing it, "
                    "nearest-rank.",
    "handling_p90": "90th percentile (nearest-rank) of the handling time.",
}
COMPLAINT_DEFINITION = (
    "Written complaints answered in the period (the day their status first became resolved or "
    "closed, Europe/Rome) before their regulatory deadline ended, over all complaints answered "
    "in the period; indemnities: the automatic indemnities owed for the late ones. The "
    "channel, language, persona and stage filters do not apply.")


def today_in_rome() -> date:
    return datetime.now(local_zone()).date()


def _date(request: Request, name: str, default: date) -> date:
    raw = (request.args.get(name) or "").strip()
    return parse_date(name, raw) if raw else default


def parse(request: Request) -> tuple[date, date, dict[str, str], str | None]:
    """The period, filters and break-down of a request; ValueError with a message on bad input."""
    end = _date(request, "to", today_in_rome())
    start = _date(request, "from", end - timedelta(days=DEFAULT_DAYS - 1))
    kpis.check_period(start, end)
    filters = kpis.check_filters({name: (request.args.get(name) or "").strip()
                                  for name in kpis.FILTERS})
    by = kpis.check_by((request.args.get("by") or "").strip() or None)
    return start, end, filters, by


def _report(start: date, end: date, filters: dict, by: str | None) -> dict:
    with session_scope() as db:
        result = kpis.compare(db, start, end, filters, by)
        channels = kpis.known_channels(db)
        result["complaints"] = complaints.compare(db, start, end)
    result["options"] = {
        "channels": channels, "languages": list(LANGUAGES), "personas": list(PERSONAS),
        "stages": [{"key": s, "label": STAGE_LABELS[s]} for s in STAGES],
        "breakdowns": list(kpis.BREAKDOWNS)}
    result["definitions"] = {**DEFINITIONS, "complaints_on_time": COMPLAINT_DEFINITION}
    result["min_intent_conversations"] = kpis.MIN_INTENT_CONVERSATIONS
    return result


@dashboard.get("/console/dashboard")
@login_required(roles=LEADS, api=False)
async def dashboard_page(request: Request) -> response.HTTPResponse:
    resp = page("console_dashboard.html", login=request.ctx.login,
                today=today_in_rome().isoformat(),
                start=(today_in_rome() - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
                personas=PERSONAS, stages=[(s, STAGE_LABELS[s]) for s in STAGES],
                languages=LANGUAGES)
    return resp  # CSP and the other security headers: the desk's middleware (bot.desk.pages)


@dashboard.get("/console/api/kpis")
@login_required(roles=LEADS)
async def kpis_api(request: Request) -> response.HTTPResponse:
    try:
        start, end, filters, by = parse(request)
    except ValueError as exc:
        return response.json({"error": str(exc)}, status=400)
    result = await run(_report, start, end, filters, by)
    return response.json(result, headers={"Cache-Control": "no-store"})


@dashboard.get("/console/vendor/chart.umd.js")
@login_required(roles=LEADS, api=False)
async def chart_js(request: Request) -> response.HTTPResponse:
    if not CHART_JS.exists():
        return response.text("Chart.js is not installed: run `make setup` (npm ci in web/, "
                             f"expected {CHART_JS.relative_to(ROOT)})", status=503)
    return await response.file(CHART_JS, mime_type="application/javascript",
                               headers={"Cache-Control": "private, max-age=3600"})
