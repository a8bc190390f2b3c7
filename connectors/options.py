"""One way to show a reply's buttons on every channel, and to read the customer's choice.

Each output channel says what it can show (`Limits`); `layout` picks the richest form that
fits: native buttons, a list, or numbered text ("1. …\\n2. …") for channels or replies beyond
those limits. Whatever the form, the options are remembered for the recipient (shared
database, `bot.channel_state`), and `choose` turns the next message — "2", or an option's
title — into that option's payload. Skills never know which form was used.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from bot.channel_state import remember_options, take_options
from bot.persistence.db import run

log = logging.getLogger(__name__)

NUMBER = re.compile(r"^\s*(\d{1,2})\s*[.)]?\s*$")


@dataclass(frozen=True)
class Limits:
    """What a channel can show natively; 0 means "not at all"."""

    max_buttons: int = 0
    max_button_title: int = 0
    max_rows: int = 0
    max_row_title: int = 0
    max_body: int = 0


TEXT_ONLY = Limits()


@dataclass(frozen=True)
class Layout:
    kind: str  # "buttons", "list" or "text"
    text: str
    options: list[dict]


def clean(buttons: Optional[Iterable[Any]]) -> list[dict]:
    """Rasa's buttons as [{title, payload}], dropping anything without both."""
    options = []
    for b in buttons or []:
        if isinstance(b, dict) and b.get("title") and b.get("payload"):
            options.append({"title": str(b["title"]), "payload": str(b["payload"])})
    return options


def numbered(text: str, options: list[dict]) -> str:
    lines = [f"{i}. {o['title']}" for i, o in enumerate(options, 1)]
    return "\n".join([text.rstrip(), ""] + lines) if text.strip() else "\n".join(lines)


def layout(text: str, buttons: Optional[Iterable[Any]], limits: Limits) -> Layout:
    options = clean(buttons)
    titles = [o["title"] for o in options]
    unique = len(set(titles)) == len(titles)
    fits_body = not limits.max_body or len(text) <= limits.max_body
    if (options and unique and fits_body and len(options) <= limits.max_buttons
            and all(len(t) <= limits.max_button_title for t in titles)):
        return Layout("buttons", text, options)
    if (options and unique and fits_body and len(options) <= limits.max_rows
            and all(len(t) <= limits.max_row_title for t in titles)):
        return Layout("list", text, options)
    if options:
        return Layout("text", numbered(text, options), options)
    return Layout("text", text, [])


async def remember(channel: str, recipient: str, options: list[dict]) -> None:
    """Remember the options sent to the recipient (never fails the reply)."""
    if not options:
        return
    try:
        await run(remember_options, channel, recipient, options)
    except Exception:
        log.exception("could not remember the options sent on %s", channel)


async def choose(channel: str, sender: str, text: str) -> str:
    """The payload of the option the customer picked by number or title, else the text.

    The options answer only the message right after them: they are forgotten here."""
    try:
        options = await run(take_options, channel, sender)
    except Exception:
        log.exception("could not read the options sent on %s", channel)
        return text
    if not options or not isinstance(text, str):
        return text
    match = NUMBER.match(text)
    if match and 1 <= int(match.group(1)) <= len(options):
        return options[int(match.group(1)) - 1]["payload"]
    wanted = text.strip().casefold()
    for o in options:
        if o["title"].strip().casefold() == wanted or o["payload"] == text.strip():
            return o["payload"]
    return text


class OptionsOutput:
    """Mixin for output channels: buttons and quick replies go through `layout`, are remembered
    for the recipient, and reach `send_layout`, which the channel implements."""

    limits: Limits = TEXT_ONLY

    async def send_layout(self, recipient_id: str, plan: Layout) -> None:
        raise NotImplementedError

    async def send_text_with_buttons(self, recipient_id: str, text: str, buttons: list,
                                     **kwargs: Any) -> None:
        plan = layout(text or "", buttons, self.limits)
        await remember(self.name(), recipient_id, plan.options)
        await self.send_layout(recipient_id, plan)

    async def send_quick_replies(self, recipient_id: str, text: str, quick_replies: list,
                                 **kwargs: Any) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)
