"""Demo desk users (listed in the README): one agent per skill, a CX lead and an admin."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.desk.auth import add_user
from bot.handover.models import DeskUser
from bot.persistence.db import session_scope

DEMO_USERS = [
    # username, password, role, display name, skills, languages
    ("giulia", "giulia-demo-pass", "agent", "Giulia (billing)", ["billing"], ["it", "en"]),
    ("marco", "marco-demo-pass", "agent", "Marco (technical)", ["technical"], ["it"]),
    ("sara", "sara-demo-pass", "agent", "Sara (commercial)", ["commercial"], ["it", "en"]),
    ("lucia", "lucia-demo-pass", "cx_lead", "Lucia (CX lead)", [], ["it", "en"]),
    ("admin", "admin-demo-pass", "admin", "Administrator", [], ["it", "en"]),
]


def seed_desk_users() -> int:
    for username, password, role, name, skills, languages in DEMO_USERS:
        add_user(username, password, role, name, skills, languages, replace=True)
    return len(DEMO_USERS)


def has_desk_users() -> bool:
    with session_scope() as db:
        return db.execute(select(func.count(DeskUser.id))).scalar_one() > 0
