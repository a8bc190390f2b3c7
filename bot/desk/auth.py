"""Desk users, passwords (argon2) and login sessions (random token in a cookie, hash in the DB)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from bot.handover.models import ROLES, SKILLS, DeskSession, DeskUser
from bot.handover.service import now
from bot.language import LANGUAGES
from bot.persistence.db import session_scope
from bot.settings import get_settings

_hasher = PasswordHasher()
# Verifying against this keeps the time of a login with an unknown user like a wrong password.
_DUMMY = _hasher.hash("not-a-password")
MIN_PASSWORD = 8


class UserError(ValueError):
    pass


@dataclass(frozen=True)
class Login:
    user_id: int
    username: str
    display_name: str
    role: str
    skills: tuple[str, ...]
    languages: tuple[str, ...]
    csrf_token: str


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(username: str, password: str, role: str, display_name: str | None = None,
             skills: list[str] | None = None, languages: list[str] | None = None,
             replace: bool = False) -> int:
    problems = []
    if not username or not username.replace(".", "").replace("_", "").replace("-", "").isalnum():
        problems.append("username: letters, digits, '.', '_' and '-' only")
    if role not in ROLES:
        problems.append(f"role: one of {', '.join(ROLES)}")
    if len(password or "") < MIN_PASSWORD:
        problems.append(f"password: at least {MIN_PASSWORD} characters")
    skills = skills or []
    languages = languages or ["it"]
    for s in skills:
        if s not in SKILLS:
            problems.append(f"skill {s!r}: one of {', '.join(SKILLS)}")
    for lang in languages:
        if lang not in LANGUAGES:
            problems.append(f"language {lang!r}: one of {', '.join(LANGUAGES)}")
    if role == "agent" and not skills:
        problems.append("an agent needs at least one skill")
    if problems:
        raise UserError("; ".join(problems))
    with session_scope() as db:
        user = db.execute(select(DeskUser).where(DeskUser.username == username)).scalars().first()
        if user is not None and not replace:
            raise UserError(f"user {username!r} already exists")
        if user is None:
            user = DeskUser(username=username)
            db.add(user)
        user.display_name = display_name or username
        user.password_hash = _hasher.hash(password)
        user.role, user.skills, user.languages = role, ",".join(skills), ",".join(languages)
        user.active = True
        db.flush()
        return user.id


def authenticate(username: str, password: str) -> int | None:
    with session_scope() as db:
        user = db.execute(select(DeskUser).where(DeskUser.username == username,
                                                 DeskUser.active.is_(True))).scalars().first()
        stored = user.password_hash if user else _DUMMY
        try:
            _hasher.verify(stored, password or "")
        except (VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if _hasher.check_needs_rehash(stored):
            user.password_hash = _hasher.hash(password)
        return user.id


def start_session(user_id: int) -> tuple[str, str]:
    """A new login: returns (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    at = now()
    with session_scope() as db:
        db.execute(delete(DeskSession).where(DeskSession.expires_at < at))
        db.add(DeskSession(token_hash=_token_hash(token), user_id=user_id, csrf_token=csrf,
                           created_at=at,
                           expires_at=at + timedelta(hours=get_settings().desk_session_hours)))
    return token, csrf


def session_login(token: str | None) -> Login | None:
    if not token:
        return None
    with session_scope() as db:
        row = db.get(DeskSession, _token_hash(token))
        if row is None or row.expires_at < now() or not row.user.active:
            return None
        u = row.user
        return Login(u.id, u.username, u.display_name, u.role, tuple(u.skill_list),
                     tuple(u.language_list), row.csrf_token)


def end_session(token: str | None) -> None:
    if token:
        with session_scope() as db:
            db.execute(delete(DeskSession).where(DeskSession.token_hash == _token_hash(token)))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected, given)
