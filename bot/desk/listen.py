"""Listen (cx_lead and admin): what customers ask that the assistant cannot do yet.

- `GET /console/listen`: the page (an HTML shell; `static/listen.js` draws it from the JSON).
- `GET /console/api/topics?from=YYYY-MM-DD&to=YYYY-MM-DD&language=it`: `topics.report` for
  the period (Europe/Rome days, both included; by default the last 30 days up to today) and
  language (Italian by default), with the intents a topic can be labelled with.
- `POST /console/api/topics/<topic>/label` with `{"from", "to", "language", "label"}`: label
  the topic's messages of that period with an intent, `"missing skill"`, or `null` (clear);
  404 when the topic is not among the period's topics any more (the messages changed since
  the page was loaded), 400 on a bad label or period.

Topics are recomputed on every request (`bot.analytics.topics`): nothing to keep in step. One
computation at a time per process, with the database session closed while it groups.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Callable

from sanic import Blueprint, Request, response

from bot.analytics.models import MISSING_SKILL
from bot.analytics.queries.conversation import NotFound
from bot.analytics.queries.filters import domain_intents, parse_date
from bot.analytics.topic_labels import check_label, label_messages
from bot.analytics.topics import check_language, listened, members, summary
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
    with session_scope() as db:  # read, and the connection back to the pool before grouping
        messages = listened(db, start, end, language)
    result = summary(messages, start, end, language)
    result["intents"] = list(domain_intents())
    result["missing_skill"] = MISSING_SKILL
    return result


def _label(start: date, end: date, language: str, topic: str, label: str | None,
           user_id: int) -> dict:
    label = check_label(label)
    with session_scope() as db:
        messages = listened(db, start, end, language)
    found = members(messages, language, topic)
    with session_scope() as db:
        return label_messages(db, topic, found, label, user_id)


async def _one_at_a_time(fn: Callable[..., dict], *args: Any) -> dict:
    """`fn` in a worker thread, one Listen computation at a time in this process: grouping a
    long period takes seconds to a minute, and the desk's agents share the worker threads."""
    async with _grouping():
        return await run(fn, *args)


@lru_cache(maxsize=None)
def _lock_for(loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
    return asyncio.Lock()


def _grouping() -> asyncio.Lock:
    return _lock_for(asyncio.get_running_loop())


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
        result = await _one_at_a_time(_report, start, end, language)
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
        done = await _one_at_a_time(_label, start, end, language, topic, body["label"],
                                    request.ctx.login.user_id)
    except NotFound as exc:
        return response.json({"error": str(exc)}, status=404)
    except ValueError as exc:
        return response.json({"error": str(exc)}, status=400)
    return response.json(done)
