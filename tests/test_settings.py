"""bot/settings.py: one field per setting, defaults that follow the profile, and a clear stop
when the environment gets a setting wrong."""

from __future__ import annotations

import pytest

from bot.settings import get_settings, reset_settings

PRODUCTION_SECRETS = ("CUSTOMER_TOKEN_SECRET", "RASA_TOKEN", "ACTION_SERVER_TOKEN",
                      "SPORTELLO_SECRET_KEY")


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment for the settings: the variables read below are set or removed here,
    and a `.env` in the checkout is not read."""
    monkeypatch.setattr("bot.settings.load_dotenv", lambda *args, **kwargs: None)
    for name in ("SPORTELLO_PROFILE", "DATABASE_URL", "EVENTS_DATABASE_URL",
                 "TRACKER_DATABASE_URL", "REDIS_URL", "SOCKETIO_REDIS_URL", "CORS_ORIGINS",
                 "SITE_URL", "SPORTELLO_DEMO", "OTP_DELIVERY", "SMTP_PORT", "SMTP_SECURITY",
                 "PG_HOST", "PG_PORT", "PG_USER", "PG_PASSWORD", "RASA_EVENTS_DB",
                 "RASA_TRACKER_DB", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "TIMEZONE",
                 "RASA_URL", "DESK_HOURS",
                 *PRODUCTION_SECRETS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPORTELLO_VAR_DIR", str(tmp_path))
    reset_settings()
    yield monkeypatch
    reset_settings()


def test_embedded_defaults_follow_the_var_folder(env, tmp_path):
    s = get_settings()
    assert s.profile == "embedded" and s.demo is True
    assert s.database_url == f"sqlite:///{tmp_path / 'sportello.db'}"
    assert s.events_database_url == f"sqlite:///{tmp_path / 'rasa-events.db'}"
    assert s.tracker_database_url == f"sqlite:///{tmp_path / 'rasa-tracker.db'}"
    assert s.redis_url == "" and s.socketio_redis_url == ""
    assert s.otp_delivery == "outbox" and s.smtp_port == 587
    assert s.cors_origins == ("http://127.0.0.1:5007", "http://localhost:5007")
    # generated once and kept: a second read gives the same secrets
    first = (s.customer_token_secret, s.rasa_token, s.action_server_token, s.secret_key)
    assert all(len(value) >= 32 for value in first)
    reset_settings()
    s = get_settings()
    assert (s.customer_token_secret, s.rasa_token, s.action_server_token, s.secret_key) == first


def test_production_defaults_are_the_shared_engines(env):
    env.setenv("SPORTELLO_PROFILE", "production")
    env.setenv("PG_USER", "sportello")
    env.setenv("PG_PASSWORD", "pw")
    env.setenv("PG_HOST", "db.internal")
    env.setenv("REDIS_HOST", "cache.internal")
    env.setenv("SMTP_SECURITY", " TLS ")
    s = get_settings()
    assert s.demo is False and s.otp_delivery == "real" and s.smtp_security == "tls"
    assert s.smtp_port == 465
    assert s.events_database_url == "postgresql://sportello:pw@db.internal:5432/rasa_events"
    assert s.tracker_database_url == "postgresql://sportello:pw@db.internal:5432/rasa"
    assert s.redis_url == "redis://cache.internal:6379/0"
    assert s.socketio_redis_url == s.redis_url
    # production never generates secrets: unset ones stay empty (and the processes refuse them)
    assert (s.customer_token_secret, s.rasa_token, s.action_server_token, s.secret_key) == (
        "", "", "", "")


def test_empty_variables_count_as_unset_but_where_empty_means_none(env):
    env.setenv("SPORTELLO_PROFILE", "production")
    env.setenv("RASA_URL", "")
    env.setenv("SPORTELLO_DEMO", "")
    env.setenv("SOCKETIO_REDIS_URL", "")  # socket.io in process
    env.setenv("DESK_HOURS", "")  # no live chat hours
    s = get_settings()
    assert s.rasa_url == "http://127.0.0.1:5005" and s.demo is False
    assert s.redis_url == "redis://127.0.0.1:6379/0" and s.socketio_redis_url == ""
    assert s.desk_hours == ""


def test_cors_origins_are_a_comma_list_and_never_a_wildcard(env):
    env.setenv("CORS_ORIGINS", "https://www.example.it/, *, https://app.example.it")
    assert get_settings().cors_origins == ("https://www.example.it", "https://app.example.it")


@pytest.mark.parametrize("name, value", [("OTP_TTL_MINUTES", "ten"), ("SPORTELLO_DEMO", "maybe"),
                                         ("PG_PORT", "5432x")])
def test_a_wrong_value_stops_with_the_setting_named(env, name, value):
    env.setenv(name, value)
    field = "demo" if name == "SPORTELLO_DEMO" else name.lower()
    with pytest.raises(SystemExit, match=field):
        get_settings()
