"""The review console's conversation pages (cx_lead and admin): the filtered list, one
conversation's transcript with tags, notes, the reviewed flag and intent annotations, a
customer's conversations across channels, the exports, and the audited reveal of personal data
(admin only).

The pages are HTML shells; their data comes from the JSON API under `/console/api/` (the
browser sends the session's CSRF token in `X-CSRF-Token` on every change). Everything served
is the masked conversation log (`bot.analytics.queries`), except the reveal, which reads the
raw tracker from Rasa and writes a `RevealAudit` row first (with the admin's reason, required).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable

from sanic import Blueprint, Request, response
from sqlalchemy.orm import Session

from bot.analytics import queries as q
from bot.desk.pages import int_arg, login_required, page
from bot.desk.rasa_api import RasaError
from bot.language import LANGUAGES
from bot.persistence.db import run, session_scope
from bot.settings import local_zone

log = logging.getLogger(__name__)
console = Blueprint("console")
LEADS = ("cx_lead", "admin")


def _in_db(fn: Callable, *args: Any) -> Any:
    with session_scope() as db:
        return fn(db, *args)


async def db_call(fn: Callable, *args: Any) -> Any:
    """`fn(db, *args)` in a worker thread, in one transaction."""
    return await run(_in_db, fn, *args)


def _error(message: str, status: int = 400) -> response.HTTPResponse:
    return response.json({"error": message}, status=status)


def _body(request: Request) -> dict:
    body = request.json if request.body else {}
    return body if isinstance(body, dict) else {}


def _download(text: str, filename: str, content_type: str) -> response.HTTPResponse:
    return response.text(text, content_type=content_type, headers={
        "Content-Disposition": f"attachment; filename=\"{filename}\"",
        "Cache-Control": "no-store"})


def _stamp() -> str:
    return datetime.now(local_zone()).strftime("%Y%m%d-%H%M")


# ---- pages ---------------------------------------------------------------------------------


def _args(request: Request) -> dict[str, str]:
    return {k: request.args.get(k) or "" for k in request.args}


@console.get("/console")
@login_required(roles=LEADS, api=False)
async def list_page(request: Request) -> response.HTTPResponse:
    return page("console_list.html", login=request.ctx.login, options=q.options(),
                args=_args(request), page_name="list")


def _exists(db: Session, cid: int) -> bool:
    from bot.analytics.models import Conversation

    return db.get(Conversation, cid) is not None


@console.get("/console/conversations/<cid:int>")
@login_required(roles=LEADS, api=False)
async def conversation_page(request: Request, cid: int) -> response.HTTPResponse:
    if not await db_call(_exists, cid):
        return page("console_missing.html", status=404, login=request.ctx.login,
                    what=f"conversation {cid}", page_name="missing")
    return page("console_conversation.html", login=request.ctx.login, options=q.options(),
                conversation_id=cid, page_name="conversation")


@console.get("/console/customers/<code>")
@login_required(roles=LEADS, api=False)
async def customer_page(request: Request, code: str) -> response.HTTPResponse:
    code = code.upper()
    if not q.CUSTOMER_CODE.fullmatch(code):
        return page("console_missing.html", status=404, login=request.ctx.login,
                    what="that customer code (C followed by 7 digits)",
                    page_name="missing")
    return page("console_customer.html", login=request.ctx.login, customer_code=code,
                page_name="customer")


# ---- the list and its exports --------------------------------------------------------------


@console.get("/console/api/options")
@login_required(roles=LEADS)
async def options_api(request: Request) -> response.HTTPResponse:
    return response.json(q.options())


@console.get("/console/api/conversations")
@login_required(roles=LEADS)
async def conversations_api(request: Request) -> response.HTTPResponse:
    try:
        filters = q.Filters.from_args(request.args)
        sort = request.args.get("sort") or "-started_at"
        page = await db_call(q.list_conversations, filters, sort, int_arg(request, "page", 1),
                             int_arg(request, "per_page", 50))
    except ValueError as exc:
        return _error(str(exc))
    return response.json({**page.as_dict(), "sort": sort, "filters": filters.to_args()})


@console.get("/console/api/conversations.csv")
@login_required(roles=LEADS)
async def conversations_csv(request: Request) -> response.HTTPResponse:
    return await _export_list(request, q.export_list_csv, "csv", "text/csv; charset=utf-8")


@console.get("/console/api/conversations.json")
@login_required(roles=LEADS)
async def conversations_json(request: Request) -> response.HTTPResponse:
    return await _export_list(request, q.export_list_json, "json",
                              "application/json; charset=utf-8")


async def _export_list(request: Request, export: Callable[..., str], extension: str,
                       content_type: str) -> response.HTTPResponse:
    """The filtered list as a download (the filters and sort of the list page)."""
    try:
        filters = q.Filters.from_args(request.args)
        text = await db_call(export, filters, request.args.get("sort") or "-started_at")
    except ValueError as exc:
        return _error(str(exc))
    return _download(text, f"conversations-{_stamp()}.{extension}", content_type)


# ---- one conversation ----------------------------------------------------------------------


@console.get("/console/api/conversations/<cid:int>")
@login_required(roles=LEADS)
async def conversation_api(request: Request, cid: int) -> response.HTTPResponse:
    record = await db_call(q.get_conversation, cid)
    if record is None:
        return _error("no such conversation", 404)
    return response.json(record)


@console.get("/console/api/conversations/<cid:int>/export.json")
@login_required(roles=LEADS)
async def conversation_json(request: Request, cid: int) -> response.HTTPResponse:
    return await _export_one(cid, q.export_conversation_json, "json",
                             "application/json; charset=utf-8")


@console.get("/console/api/conversations/<cid:int>/export.csv")
@login_required(roles=LEADS)
async def conversation_csv(request: Request, cid: int) -> response.HTTPResponse:
    return await _export_one(cid, q.export_conversation_csv, "csv", "text/csv; charset=utf-8")


async def _export_one(cid: int, export: Callable[..., str], extension: str,
                      content_type: str) -> response.HTTPResponse:
    """One conversation as a download; 404 for an unknown id."""
    try:
        text = await db_call(export, cid)
    except q.NotFound:
        return _error("no such conversation", 404)
    return _download(text, f"conversation-{cid}.{extension}", content_type)


async def _change(fn: Callable, *args: Any) -> response.HTTPResponse | Any:
    """Run a change; its result, or the error response (400 bad value, 404 unknown id)."""
    try:
        return await db_call(fn, *args)
    except q.NotFound as exc:
        return _error(str(exc), 404)
    except ValueError as exc:
        return _error(str(exc))


@console.post("/console/api/conversations/<cid:int>/tags")
@login_required(roles=LEADS)
async def add_tag(request: Request, cid: int) -> response.HTTPResponse:
    tags = await _change(q.add_tag, cid, _body(request).get("tag"), request.ctx.login.user_id)
    return tags if isinstance(tags, response.HTTPResponse) else response.json({"tags": tags})


@console.post("/console/api/conversations/<cid:int>/tags/delete")
@login_required(roles=LEADS)
async def remove_tag(request: Request, cid: int) -> response.HTTPResponse:
    tags = await _change(q.remove_tag, cid, _body(request).get("tag"))
    return tags if isinstance(tags, response.HTTPResponse) else response.json({"tags": tags})


@console.post("/console/api/conversations/<cid:int>/notes")
@login_required(roles=LEADS)
async def add_note(request: Request, cid: int) -> response.HTTPResponse:
    login = request.ctx.login
    note = await _change(q.add_note, cid, _body(request).get("text"), login.display_name,
                         login.user_id)
    return note if isinstance(note, response.HTTPResponse) else response.json({"note": note})


@console.post("/console/api/conversations/<cid:int>/reviewed")
@login_required(roles=LEADS)
async def set_reviewed(request: Request, cid: int) -> response.HTTPResponse:
    value = _body(request).get("reviewed")
    if not isinstance(value, bool):
        return _error("reviewed: true or false")
    done = await _change(q.set_reviewed, cid, value, request.ctx.login.user_id)
    return done if isinstance(done, response.HTTPResponse) else response.json({"reviewed": done})


@console.post("/console/api/conversations/<cid:int>/messages/<mid:int>/annotation")
@login_required(roles=LEADS)
async def annotate(request: Request, cid: int, mid: int) -> response.HTTPResponse:
    done = await _change(q.annotate, cid, mid, _body(request).get("intent"),
                         request.ctx.login.user_id)
    return done if isinstance(done, response.HTTPResponse) else response.json(
        {"annotation": done})


@console.delete("/console/api/conversations/<cid:int>/messages/<mid:int>/annotation")
@login_required(roles=LEADS)
async def remove_annotation(request: Request, cid: int, mid: int) -> response.HTTPResponse:
    done = await _change(q.remove_annotation, cid, mid)
    return done if isinstance(done, response.HTTPResponse) else response.json({"removed": done})


@console.post("/console/api/conversations/<cid:int>/reveal")
@login_required(roles=("admin",))
async def reveal(request: Request, cid: int) -> response.HTTPResponse:
    """The session's transcript unmasked, from Rasa's tracker; audited. The reason is
    required (400 without one) and the audit row is written before anything is read."""
    login = request.ctx.login
    try:
        sender, start, end = await db_call(q.reveal_window, cid)
    except q.NotFound:
        return _error("no such conversation", 404)
    audit = await _change(q.record_reveal, cid, login.user_id, login.username,
                          str(_body(request).get("reason") or ""))
    if isinstance(audit, response.HTTPResponse):  # no reason, or the conversation went away
        return audit
    try:
        tracker = await request.app.ctx.rasa.tracker(sender)  # escaped by RasaAPI
    except RasaError as exc:
        log.error("reveal of conversation %s: %s", cid, exc)
        return _error("the Rasa server could not give the conversation; try again", 502)
    lines = q.reveal_lines(tracker.get("events") or [], start, end)
    log.info("conversation %s revealed to %s (audit %s)", cid, login.username, audit)
    return response.json({"conversation_id": cid, "lines": lines, "audit_id": audit},
                         headers={"Cache-Control": "no-store"})


# ---- annotations for the NLU training data -------------------------------------------------


@console.get("/console/api/annotations.yml")
@login_required(roles=LEADS)
async def annotations_yml(request: Request) -> response.HTTPResponse:
    language = (request.args.get("language") or "").strip().lower()
    if language not in LANGUAGES:
        return _error(f"language: one of {', '.join(LANGUAGES)}")
    from bot.analytics.annotations import export_yaml

    text = await run(export_yaml, language)
    return _download(text, f"annotations-{language}.yml", "application/x-yaml; charset=utf-8")
