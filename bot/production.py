"""The production start-up check: no published secret, no demo, nothing left open.

Every process of the production profile (the runner, the Rasa server's channels, the action
server, the desk, the site) calls `enforce()` before it listens, so that no process of a
production deployment can be started with a default secret, the demo customers, the demo desk
users or the demo sign-in, and the operator is told exactly what to set.
`python -m bot check-production` lists the same problems without starting anything.
"""

from __future__ import annotations

import logging

from bot.keys import SECRETS, weakness
from bot.settings import Settings, get_settings

log = logging.getLogger(__name__)
DEMO_MARKER = "demo_data"  # a row in `counters`, written by the demo seed


class ProductionRefused(SystemExit):
    """Raised when the production profile is misconfigured: the message is printed and the
    process exits with status 1."""


def _secret_problems(s: Settings) -> list[str]:
    values = {"CUSTOMER_TOKEN_SECRET": s.customer_token_secret, "RASA_TOKEN": s.rasa_token,
              "ACTION_SERVER_TOKEN": s.action_server_token,
              "SPORTELLO_SECRET_KEY": s.secret_key}
    found = [w for name in SECRETS if (w := weakness(name, values[name]))]
    distinct = {v for v in values.values() if v}
    if len(distinct) < len([v for v in values.values() if v]):
        found.append("two of " + ", ".join(SECRETS) + " have the same value: each secret "
                     "must be different")
    return found


def _demo_problems() -> list[str]:
    """Demo customers (the demo seed's marker) and demo desk users (their published
    passwords) in the database."""
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError
    from sqlalchemy import select

    from bot.desk.demo import DEMO_USERS
    from bot.handover.models import DeskUser
    from bot.persistence import tables
    from bot.persistence.db import session_scope

    found = []
    hasher = PasswordHasher()
    with session_scope() as db:
        if db.get(tables.Counter, DEMO_MARKER) is not None:
            found.append("the database holds the demo customers (loaded by the demo seed): "
                         "production needs a database with the company's own data "
                         "(`python -m bot import-data`)")
        for username, password, *_ in DEMO_USERS:
            user = db.execute(select(DeskUser).where(DeskUser.username == username,
                                                     DeskUser.active.is_(True))).scalar()
            if user is None:
                continue
            try:
                hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                continue
            found.append(f"desk user {username!r} has the published demo password: change it "
                         f"(`python -m bot add-user {username} --replace ...`) or remove it")
    return found


def _loopback(host: str) -> bool:
    """RabbitMQ itself accepts its default account only from this machine (`loopback_users`)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def problems(settings: Settings | None = None, check_database: bool = True) -> list[str]:
    """Everything that stops this configuration from running in production."""
    s = settings or get_settings()
    found = _secret_problems(s)
    if s.demo:
        found.append("SPORTELLO_DEMO is on: the demo data, desk users and sign-in are for the "
                     "embedded profile only")
    if s.rabbitmq_password == "guest" and not _loopback(s.rabbitmq_host):
        found.append("RABBITMQ_PASSWORD is RabbitMQ's published default ('guest'): give the "
                     "event broker a user of its own (RABBITMQ_USER, RABBITMQ_PASSWORD)")
    if "*" in s.cors_origins:
        found.append("CORS_ORIGINS may not be '*': list the site's origins")
    try:
        from bot.notify import delivery_problems
    except ImportError:  # pragma: no cover - the delivery package is part of the product
        delivery_problems = None
    if delivery_problems is not None:
        found += delivery_problems(s)
    if check_database:
        try:
            found += _demo_problems()
        except Exception as exc:  # an unreachable database is a problem to report, too
            found.append(f"the customer database cannot be checked: {type(exc).__name__}")
    return found


def enforce(process: str, settings: Settings | None = None) -> None:
    """Refuse to start `process` in the production profile when anything is wrong."""
    s = settings or get_settings()
    if s.profile != "production":
        return
    found = problems(s)
    if found:
        message = (f"Sportello refuses to start the {process} in the production profile:\n"
                   + "\n".join(f"  - {p}" for p in found)
                   + "\nSet the secrets in the environment (`python -m bot secret` prints "
                     "fresh values); see the README's production section.")
        log.error(message)
        raise ProductionRefused(message)
