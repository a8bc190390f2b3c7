"""Listen (cx_lead and admin): what customers ask that the assistant cannot do yet.

- `GET /console/listen`: the page (an HTML shell; `static/listen.js` draws it from the JSON).
- `GET /console/api/topics?from=YYYY-MM-DD&to=YYYY-MM-DD&language=it`: `topics.report` for
  the period (Europe/Rome days, both included; by default the last 30 days up to today) and
  language (Italian by default), with the intents a topic can be labelled with.
- `POST /console/api/topics/<topic>/label` with `{"from", "to", "language", "label"}`: label
  the topic's messages of that period with an intent, `"missing skill"`, or `null` (clear);
  404 when the topic is not among the period's topics any more (the messages changed since
  the page was loaded), 400 on a bad label or period.

Topics are recomputed on every request (`bot.analytics.topics`): nothing to keep in step.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sanic import Blueprint, Request, response

from bot.analytics.models import MISSING_SKILL
from bot.analytics.queries.conversation import NotFound
from bot.analytics.queries.filters import domain_intents, parse_date
from bot.analytics.topic_labels import label_topic
from bot.analytics.topics import check_language, report
from bot.desk.dashboard import DEFAULT_DAYS, LEADS, today_in_rome
from bot.desk.pages import login_required, page
from bot.language import LANGUAGES
from bot.persistence.db import run, session_scope

listen = Blueprint("listen")
DEFAULT_LANGUAGE = LANGUAGES[0]


def period(values: dict[str, Any]) -> tuple[date, date, str]:
    """The period and language of a request's arguments or body; ValueError on bad input."""
    end_raw = str(values.get("to") or "").strip()
    end = parse_date("to", end_raw) if end_raw else today_in_rome()
    start_raw = str(values.get("from") or "").strip()
    start = parse_date("from", start_raw) if start_raw else end - timedelta(days=DEFAULT_DAYS - 1)
    language = str(values.get("language") or "").strip().lower() or DEFAULT_LANGUAGE
    return start, end, check_language(language)


def _report(start: date, end: date, language: str) -> dict:
    with session_scope() as db:
        result = report(db, start, end, language)
    result["intents"] = list(domain_intents())
    result["missing_skill"] = MISSING_SKILL
    return result


def _label(start: date, end: date, language: str, topic: str, label: str | None,
           user_id: int) -> dict:
    with session_scope() as db:
        return label_topic(db, start, end, language, topic, label, user_id)


@listen.get("/console/listen")
@login_required(roles=LEADS, api=False)
async def listen_page(request: Request) -> response.HTTPResponse:
    today = today_in_rome()
    return page("console_listen.html", login=request.ctx.login, page_name="listen",
                today=today.isoformat(),
                start=(today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
                languages=LANGUAGES)


@listen.get("/console/api/topics")
@login_required(roles=LEADS)
async def topics_api(request: Request) -> response.HTTPResponse:
    try:
        start, end, language = period({k: request.args.get(k) for k in request.args})
        result = await run(_report, start, end, language)
    except ValueError as exc:
        return response.json({"error": str(exc)}, status=400)
    return response.json(result)


@listen.post("/console/api/topics/<topic:str>/label")
@login_required(roles=LEADS)
async def label_api(request: Request, topic: str) -> response.HTTPResponse:
    body = request.json if request.body else {}
    if not isinstance(body, dict) or "label" not in body:
        return response.json({"error": "label: an intent, \"missing skill\" or null"},
                             status=400)
    try:
        start, end, language = period(body)
        done = await run(_label, start, end, language, topic, body["label"],
                         request.ctx.login.user_id)
    except NotFound as exc:
        return response.json({"error": str(exc)}, status=404)
    except ValueError as exc:
        return response.json({"error": str(exc)}, status=400)
    return response.json(done)
