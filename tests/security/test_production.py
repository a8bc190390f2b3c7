"""Production refuses to start with published secrets, demo data, demo desk users or the demo
switch, and says exactly what to set (issue 10, item 4). Every process is started for real."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import httpx
import pytest

from bot.keys import SECRETS
from bot.launcher import free_port, with_channel_defaults
from tests.stack import ROOT

PUBLISHED = {"CUSTOMER_TOKEN_SECRET": "dev-only-customer-token-secret-change-me",
             "RASA_TOKEN": "dev-only-rasa-token", "ACTION_SERVER_TOKEN": "change-me",
             "SPORTELLO_SECRET_KEY": "secret"}


def strong() -> dict[str, str]:
    return {name: secrets.token_urlsafe(48) for name in SECRETS}


def production_env(tmp_path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in SECRETS and not k.startswith(("SMTP_", "SMS_", "OTP_", "SPORTELLO_"))}
    env.update({"SPORTELLO_PROFILE": "production", "SPORTELLO_VAR_DIR": str(tmp_path / "var"),
                "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT),
                # real delivery of one-time codes configured, so that only what each test
                # leaves out is missing
                "SMTP_HOST": "127.0.0.1", "SMTP_PORT": "2525", "SMTP_SECURITY": "none",
                "SMTP_FROM": "no-reply@lucenordenergia.example", "SMS_PROVIDER": "twilio",
                "SMS_TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
                "SMS_TWILIO_AUTH_TOKEN": secrets.token_hex(16), "SMS_FROM": "+14155550100"})
    env.update(extra)
    return env


def run_bot(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def empty_db(tmp_path):
    """An empty, migrated customer database (what an operator starts from)."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    env = production_env(tmp_path, url, **strong())
    assert run_bot(env, "migrate").returncode == 0
    return url


def test_missing_secrets_are_each_named(tmp_path, empty_db):
    result = run_bot(production_env(tmp_path, empty_db), "check-production")
    assert result.returncode == 1
    for name in SECRETS:
        assert f"{name} is not set" in result.stdout, result.stdout


def test_published_and_weak_secrets_are_refused(tmp_path, empty_db):
    env = production_env(tmp_path, empty_db, **PUBLISHED)
    result = run_bot(env, "check-production")
    assert result.returncode == 1
    for name in SECRETS:
        assert name in result.stdout
    weak = production_env(tmp_path, empty_db, **{**strong(), "RASA_TOKEN": "short-token"})
    assert "RASA_TOKEN is too short" in run_bot(weak, "check-production").stdout
    same = secrets.token_urlsafe(48)
    shared = production_env(tmp_path, empty_db, **{n: same for n in SECRETS})
    assert "same value" in run_bot(shared, "check-production").stdout


def test_rabbitmq_default_account_is_refused_beyond_this_machine(tmp_path, empty_db):
    remote = production_env(tmp_path, empty_db, **strong(), RABBITMQ_HOST="rabbitmq.internal")
    result = run_bot(remote, "check-production")
    assert result.returncode == 1
    assert "RABBITMQ_PASSWORD is RabbitMQ's published default" in result.stdout
    own = production_env(tmp_path, empty_db, **strong(), RABBITMQ_HOST="rabbitmq.internal",
                         RABBITMQ_USER="sportello", RABBITMQ_PASSWORD=secrets.token_urlsafe(24))
    assert run_bot(own, "check-production").returncode == 0
    # on this machine, RabbitMQ itself accepts the default account (its `loopback_users`)
    local = production_env(tmp_path, empty_db, **strong(), RABBITMQ_HOST="127.0.0.1")
    assert run_bot(local, "check-production").returncode == 0


def test_a_proper_configuration_passes(tmp_path, empty_db):
    result = run_bot(production_env(tmp_path, empty_db, **strong()), "check-production")
    assert result.returncode == 0, result.stdout
    assert "ready for production" in result.stdout


@pytest.mark.parametrize("command", [["actions"], ["desk"], ["site"]])
def test_every_process_refuses_to_start_with_default_secrets(tmp_path, empty_db, command):
    port = free_port()
    result = run_bot(production_env(tmp_path, empty_db), *command, "--port", str(port))
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "refuses to start" in out and "CUSTOMER_TOKEN_SECRET is not set" in out
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_the_rasa_server_refuses_to_start_with_default_secrets(tmp_path, empty_db, model_path):
    env = production_env(tmp_path, empty_db, **PUBLISHED)
    env.update({"PG_HOST": "127.0.0.1", "PG_PORT": "5432", "PG_USER": "postgres",
                "PG_PASSWORD": "", "RASA_TRACKER_DB": "postgres", "RASA_EVENTS_DB": "postgres",
                "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379", "REDIS_DB": "7",
                "RABBITMQ_HOST": "127.0.0.1", "RABBITMQ_PORT": "5672", "RABBITMQ_USER": "guest",
                "RABBITMQ_PASSWORD": "guest", "RABBITMQ_EXCHANGE": "sportello-test-refused",
                "RABBITMQ_QUEUE": "sportello-test-refused",
                "ACTION_SERVER_URL": "http://127.0.0.1:1/webhook"})
    with_channel_defaults(env)
    result = subprocess.run(
        [sys.executable, "-m", "rasa", "run", "--model", str(model_path), "--port",
         str(free_port()), "--endpoints", "endpoints.production.yml", "--credentials",
         "credentials.yml", "--enable-api", "--auth-token", PUBLISHED["RASA_TOKEN"]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "refuses to start the Rasa server" in out and "RASA_TOKEN" in out


def test_demo_data_and_demo_desk_users_are_refused(tmp_path, empty_db):
    env = production_env(tmp_path, empty_db, **strong())
    assert run_bot(env, "seed-demo").returncode == 0  # the demo seed, by mistake
    result = run_bot(env, "check-production")
    assert result.returncode == 1
    assert "demo customers" in result.stdout
    for username in ("giulia", "marco", "sara", "lucia", "admin"):
        assert f"desk user {username!r} has the published demo password" in result.stdout


def test_the_demo_switch_is_refused(tmp_path, empty_db):
    env = production_env(tmp_path, empty_db, **strong(), SPORTELLO_DEMO="1")
    result = run_bot(env, "check-production")
    assert result.returncode == 1 and "SPORTELLO_DEMO" in result.stdout


def test_no_demo_sign_in_in_production(stack):
    r = httpx.post(f"{stack.site_url}/demo-login", json={"customer_code": "C1000001"},
                   timeout=10)
    if stack.profile == "production":
        assert r.status_code == 404 and "token" not in r.text
    else:
        assert r.status_code == 200 and r.json()["token"]
