"""The real stack for integration and security tests (fixtures registered by tests/conftest.py):
the Rasa server with the trained model, the action server, the desk, the demo site and the log
worker, on the embedded profile (SQLite) and on the production profile (PostgreSQL + Redis),
started by bot.launcher with the tests' own environment (fresh secrets, free ports, the
platforms' stand-ins, short handover timeouts)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot import event_relay
from bot.launcher import (
    Launcher,
    Ports,
    endpoints_file,
    environment,
    free_port,
    replicated_services,
    services,
)
from tests.conftest import create_pg_database, drop_pg_database, pg_url

ROOT = Path(__file__).resolve().parents[1]
# Fresh secrets for every run: the production stack refuses published or weak ones.
TOKEN_SECRET = secrets.token_urlsafe(48)
RASA_TOKEN = secrets.token_urlsafe(48)
ACTION_SERVER_TOKEN = secrets.token_urlsafe(48)
SECRET_KEY = secrets.token_urlsafe(48)
# The messaging channels' secrets (credentials.yml reads them from the environment).
CHANNEL_SECRETS = {
    "WHATSAPP_VERIFY_TOKEN": "whatsapp-verify-token",
    "WHATSAPP_APP_SECRET": "whatsapp-app-secret",
    "WHATSAPP_TOKEN": "whatsapp-access-token",
    "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
    "TELEGRAM_TOKEN": "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
    "TELEGRAM_BOT_NAME": "sportello_test_bot",
    "TELEGRAM_WEBHOOK_URL": "https://bot.lucenordenergia.example/webhooks/telegram/webhook",
    "TELEGRAM_SECRET_TOKEN": "telegram-secret-token",
    "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "TWILIO_AUTH_TOKEN": "twilio-auth-token",
    "TWILIO_NUMBER": "whatsapp:+14155238886",
    "TWILIO_WEBHOOK_URL": "https://bot.lucenordenergia.example/webhooks/twilio/webhook",
    "MESSENGER_VERIFY_TOKEN": "messenger-verify-token",
    "MESSENGER_APP_SECRET": "messenger-app-secret",
    "MESSENGER_PAGE_TOKEN": "messenger-page-token",
}
RATE_LIMIT = 30  # messages per sender per window on every public webhook
# Short handover timers: a test moves a handover back in time by these to see them fire.
AGENT_REPLY_TIMEOUT = 20  # seconds
HANDOVER_MAX_WAIT = 40
OTP_SENDS_PER_HOUR = 6


@dataclass
class Stack:
    profile: str
    rasa_url: str
    database_url: str
    var_dir: Path
    env: dict
    desk_url: str = ""
    site_url: str = ""
    launcher: Launcher = None  # its processes: actions, rasa, desk, site, worker
    mailbox: "Mailbox" = None
    platform: object = None

    def restart(self, name: str) -> None:
        """Stop one of the stack's processes and start it again, as an operator would."""
        self.launcher.restart(name)

    def process(self, name: str):
        """The running process (Popen) of one of the stack's services."""
        return self.launcher[name].proc

    def talk(self, sender: str, text: str, token: str | None = None) -> list[dict]:
        body = {"sender": sender, "message": text}
        if token:
            body["metadata"] = {"customer_token": token}
        r = httpx.post(f"{self.rasa_url}/webhooks/rest/webhook", json=body, timeout=60)
        r.raise_for_status()
        return r.json()

    def say(self, sender: str, text: str, token: str | None = None) -> str:
        """The bot's reply texts, joined, for assertions."""
        return "\n".join(m.get("text", "") for m in self.talk(sender, text, token))

    def tracker(self, sender: str) -> dict:
        from urllib.parse import quote

        r = httpx.get(f"{self.rasa_url}/conversations/{quote(sender, safe=':+@=~')}/tracker",
                      params={"token": RASA_TOKEN}, timeout=30)
        r.raise_for_status()
        return r.json()

    def code_sent_to(self, destination: str, timeout: float = 30) -> str:
        """The last one-time code delivered to `destination`: the outbox of the embedded demo,
        the real e-mail (SMTP server of the tests) or SMS (Twilio stand-in) in production."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self._last_message_to(destination)
            match = re.search(r"\b(\d{6})\b", body or "")
            if match:
                return match.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no one-time code reached {destination} in {timeout:.0f}s")

    def _last_message_to(self, destination: str) -> str | None:
        if self.profile == "embedded":
            from sqlalchemy import select

            from bot.persistence import tables
            from bot.persistence.db import session_scope

            with session_scope() as s:
                return s.execute(select(tables.OutboxMessage.body)
                                 .where(tables.OutboxMessage.destination == destination)
                                 .order_by(tables.OutboxMessage.id.desc())).scalars().first()
        if "@" in destination:
            return self.mailbox.last_to(destination)
        sms = self.platform.sent(lambda r: r.path.endswith("/Messages.json")
                                 and r.form().get("To") == destination)
        return sms[-1].form().get("Body") if sms else None


@pytest.fixture(scope="session")
def platform_api():
    """The messaging platforms' cloud APIs, played by a local server (platform_api.py)."""
    from tests.integration.platform_api import PlatformAPI

    api = PlatformAPI().start()
    yield api
    api.stop()


class Mailbox:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list = []
        mailbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                from email import message_from_bytes, policy

                mailbox.messages.append((list(envelope.rcpt_tos),
                                         message_from_bytes(envelope.content,
                                                            policy=policy.default)))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> "Mailbox":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def last_to(self, address: str) -> str | None:
        for rcpts, message in reversed(self.messages):
            if address in rcpts:
                return message.get_body(("plain",)).get_content()
        return None


@pytest.fixture(scope="session")
def mailbox():
    box = Mailbox().start()
    yield box
    box.stop()


@pytest.fixture(scope="session", params=["embedded", "production"])
def stack(request, model_path, tmp_path_factory, platform_api, mailbox):
    var_dir = tmp_path_factory.mktemp(f"stack-{request.param}")
    with running_stack(request.param, model_path, var_dir, platform_api, mailbox) as running:
        yield running


@contextmanager
def running_stack(profile: str, model_path: Path, var_dir: Path, platform_api, mailbox,
                  replicas: int = 0, extra_env: dict | None = None):
    """Every process of `profile` on the demo customers, on free ports; with `replicas`
    (production), that many Rasa servers and action servers behind HAProxy
    (bot.launcher.replicated_services), whose addresses are the stack's URLs."""
    from bot.crm.seed import seed_demo
    from bot.persistence import db
    from bot.persistence.db import migrate
    from bot.settings import reset_settings

    ports = Ports.free()
    env = environment({
        "SPORTELLO_PROFILE": profile,
        "SPORTELLO_VAR_DIR": str(var_dir),
        "CUSTOMER_TOKEN_SECRET": TOKEN_SECRET,
        "ACTION_SERVER_TOKEN": ACTION_SERVER_TOKEN,
        "SPORTELLO_SECRET_KEY": SECRET_KEY,
        **ports.env(),
        "DESK_HOURS": "mon-sun 00:00-24:00",
        "AGENT_REPLY_TIMEOUT_SECONDS": str(AGENT_REPLY_TIMEOUT),
        "HANDOVER_MAX_WAIT_SECONDS": str(HANDOVER_MAX_WAIT),
        "RASA_TOKEN": RASA_TOKEN,
        **CHANNEL_SECRETS,
        "WHATSAPP_API_URL": f"{platform_api.url}/v19.0",
        "TELEGRAM_API_URL": platform_api.url,
        "TWILIO_API_URL": platform_api.url,
        "MESSENGER_API_URL": f"{platform_api.url}/v19.0",
        "RATE_LIMIT_MESSAGES": str(RATE_LIMIT),
        "RATE_LIMIT_WINDOW_SECONDS": "60",
        # several tests verify the same demo customers within the hour
        "OTP_SENDS_PER_HOUR": str(OTP_SENDS_PER_HOUR),
        **(extra_env or {}),
    })
    databases = []
    if profile == "embedded":
        env["DATABASE_URL"] = f"sqlite:///{var_dir / 'sportello.db'}"
    else:
        crm_db, tracker_db, events_db = (create_pg_database(), create_pg_database(),
                                         create_pg_database())
        databases = [crm_db, tracker_db, events_db]
        env["DATABASE_URL"] = pg_url(crm_db)
        env.update({"PG_HOST": "127.0.0.1", "PG_PORT": "5432", "PG_USER": "postgres",
                    "PG_PASSWORD": "", "RASA_TRACKER_DB": tracker_db,
                    "RASA_EVENTS_DB": events_db,
                    "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379", "REDIS_DB": "7",
                    # RabbitMQ: an exchange and a queue of this stack's own
                    "RABBITMQ_EXCHANGE": f"sportello-test-{events_db}",
                    "RABBITMQ_QUEUE": f"sportello-test-{events_db}",
                    # pub/sub ignores the database: a channel of this stack's own
                    "SOCKETIO_REDIS_CHANNEL": f"sportello-test-{uuid.uuid4().hex[:8]}",
                    # one-time codes really delivered: e-mail to the tests' SMTP server, SMS
                    # to the Twilio stand-in
                    "OTP_DELIVERY": "real", "SMTP_HOST": "127.0.0.1",
                    "SMTP_PORT": str(mailbox.port), "SMTP_SECURITY": "none",
                    "SMTP_FROM": "Luce Nord Energia <no-reply@lucenordenergia.example>",
                    "SMS_PROVIDER": "twilio",
                    "SMS_TWILIO_ACCOUNT_SID": "AC" + "fedcba9876543210" * 2,
                    "SMS_TWILIO_AUTH_TOKEN": secrets.token_hex(16),
                    "SMS_FROM": "+14155550100"})
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_settings()
    db.get_engine.cache_clear()
    migrate()
    from bot.desk.demo import DEMO_USERS, seed_desk_users
    from tests.integration.desk_client import PASSWORDS

    if profile == "embedded":
        seed_demo()
        seed_desk_users()
    else:
        # Production refuses the demo seed and the published desk passwords: the same
        # customers are loaded as the operator's own data, the same users with new passwords.
        from bot.desk.auth import add_user

        seed_demo(mark=False)
        passwords = {}
        for username, _, role, name, skills, languages in DEMO_USERS:
            passwords[username] = secrets.token_urlsafe(16)
            add_user(username, passwords[username], role, name, skills, languages)
        PASSWORDS[ports.url("desk")] = passwords

    assert endpoints_file() == ("endpoints.production.yml" if profile == "production"
                                else "endpoints.yml")
    launcher = Launcher(env, replicated_services(model_path, ports, replicas, var_dir, var_dir)
                        if replicas else services(model_path, ports, log_dir=var_dir))
    try:
        launcher.start()
        yield Stack(profile, ports.url("rasa"), env["DATABASE_URL"], var_dir, env,
                    ports.url("desk"), ports.url("site"), launcher, mailbox, platform_api)
    finally:
        launcher.stop()
        db.get_engine.cache_clear()
        if databases:
            asyncio.run(event_relay.drop(env["RABBITMQ_EXCHANGE"], env["RABBITMQ_QUEUE"]))
        for name in databases:
            drop_pg_database(name)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_settings()


@pytest.fixture
def sender():
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def token():
    from bot.tokens import make_customer_token

    def make(code: str, minutes: int = 30) -> str:
        return make_customer_token(code, minutes, secret=TOKEN_SECRET)

    return make
