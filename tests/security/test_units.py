"""The security building blocks on their own: secrets, web sessions, token metadata, one-time
code limits (on SQLite and PostgreSQL), log masking and the var folder's permissions."""

from __future__ import annotations

import json
import logging
import os
import stat
import warnings
from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest

from bot.keys import SECRETS, embedded_secrets, weakness


@pytest.fixture
def demo_db(demo_database):
    return demo_database  # the demo data on each backend (tests/conftest.py)


# --- secrets -------------------------------------------------------------------------------

def test_embedded_secrets_are_generated_once_private_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SPORTELLO_PROFILE", "embedded")
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    first = embedded_secrets(tmp_path)
    assert set(first) == set(SECRETS)
    assert all(weakness(n, v) is None for n, v in first.items())
    assert len(set(first.values())) == len(SECRETS)
    path = tmp_path / "secrets.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert embedded_secrets(tmp_path) == first  # the next process gets the same ones
    monkeypatch.setenv("RASA_TOKEN", "from-the-environment-" + "x1y2z3" * 5)
    assert embedded_secrets(tmp_path)["RASA_TOKEN"].startswith("from-the-environment-")


def test_processes_starting_together_agree_on_one_set_of_secrets(tmp_path, monkeypatch):
    """Threads here and other processes generating the secrets at the same moment: one set."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    code = ("import json, sys; from pathlib import Path; from bot.keys import embedded_secrets; "
            "print(json.dumps(embedded_secrets(Path(sys.argv[1]))))")
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    others = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env,
                               stdout=subprocess.PIPE, text=True) for _ in range(3)]
    with ThreadPoolExecutor(8) as pool:
        here = list(pool.map(lambda _: embedded_secrets(tmp_path), range(8)))
    there = [json.loads(p.communicate(timeout=60)[0]) for p in others]
    assert all(p.returncode == 0 for p in others)
    assert all(s == here[0] for s in here + there)


def test_no_public_default_remains(monkeypatch, tmp_path):
    from bot.settings import get_settings, reset_settings

    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPORTELLO_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SPORTELLO_PROFILE", "embedded")
    reset_settings()
    try:
        s = get_settings()
        for value in (s.customer_token_secret, s.rasa_token, s.action_server_token,
                      s.secret_key):
            assert not value.startswith("dev-only") and len(value) >= 32
        assert "*" not in s.cors_origins
    finally:
        reset_settings()


@pytest.mark.parametrize("value, problem", [
    (None, "is not set"), ("", "is not set"), ("dev-only-rasa-token", "published"),
    ("integration-rasa-token", "published"), ("abc123", "too short"),
    ("a" * 40, "repetitive"),
])
def test_weak_secrets_are_named(value, problem):
    assert problem in weakness("RASA_TOKEN", value)


# --- web sessions and token metadata -------------------------------------------------------

def test_web_sessions_are_signed_by_the_server():
    from bot import web_session

    session = web_session.issue()
    conversation = web_session.conversation_of(session)
    assert conversation and session.startswith(conversation + ".")
    for forged in (conversation, conversation + ".", conversation + ".0" * 16,
                   "other." + session.split(".")[1], session + "x", None, 7, "a" * 200):
        assert web_session.conversation_of(forged) is None


def test_the_token_is_replaced_by_the_customer_it_proves():
    from bot.tokens import make_customer_token
    from connectors.identity import identify

    token = make_customer_token("C1000001", 5)
    assert token
    assert identify({"customer_token": token, "x": 1}) == {"customer": {"code": "C1000001"},
                                                           "x": 1}
    assert identify({"customer_token": "forged"}) == {"customer": {"invalid": True}}
    # a client cannot choose the customer
    assert identify({"customer": {"code": "C1000002"}}) == {}
    assert identify("not a dict") == {}


@pytest.mark.parametrize("sender, ok", [
    ("maria-123", True), ("393331234567", True), ("whatsapp:+393331234567", True),
    (393331234567, True), ("a" * 128, True), ("x/tracker/events?x=", False),
    ("../etc", False), ("a" * 129, False), ("", False), (None, False), ("a b", False),
    ("é", False), (True, False),
])
def test_sender_ids_of_a_safe_alphabet_only(sender, ok):
    from connectors.identity import safe_sender

    assert (safe_sender(sender) is not None) is ok


# --- one-time codes ------------------------------------------------------------------------

def _code_sent(customer: str) -> str:
    import re

    from sqlalchemy import select

    from bot.crm.card import read_identity_card
    from bot.persistence import tables
    from bot.persistence.db import session_scope

    card = read_identity_card(customer)
    with session_scope() as s:
        body = s.execute(select(tables.OutboxMessage.body).where(
            tables.OutboxMessage.destination == (card.email or card.phone))
            .order_by(tables.OutboxMessage.id.desc())).scalars().first()
    return re.search(r"\b(\d{6})\b", body).group(1)


def test_sends_are_limited_per_customer_and_answered_alike(demo_db, monkeypatch):
    from bot.crm.service import issue_otp
    from bot.settings import get_settings

    limit = get_settings().otp_sends_per_hour
    sent = [issue_otp("C1000003", f"flood-{i}") for i in range(limit + 2)]
    assert [r.sent for r in sent] == [True] * limit + [False, False]
    assert all(r.limited for r in sent[limit:])
    unknown = [issue_otp("C9999990", f"probe-{i}") for i in range(limit + 2)]
    assert [r.limited for r in unknown] == [r.limited for r in sent]


def test_sends_are_limited_per_destination(demo_db):
    from bot.crm.card import read_identity_card
    from bot.crm.service import issue_otp, set_email
    from bot.settings import get_settings

    limit = get_settings().otp_sends_per_hour
    shared = read_identity_card("C1000003").email
    set_email("C1000006", shared)  # two customers, one address
    for i in range(limit):
        assert issue_otp("C1000003" if i % 2 else "C1000006", f"s-{i}").sent
    assert issue_otp("C1000006", "s-last").limited


def test_wrong_codes_lock_the_sender_progressively_not_the_customer(demo_db, monkeypatch):
    from bot.crm import service
    from bot.crm.service import check_otp, issue_otp

    issue_otp("C1000003", "attacker")
    results = [check_otp("C1000003", "attacker", "000000") for _ in range(3)]
    first_lock = results[-1].locked_until
    assert first_lock and not results[0].locked_until
    assert check_otp("C1000003", "attacker", "000000").locked_until == first_lock
    # the customer, in their own conversation, still verifies
    issue_otp("C1000003", "customer")
    assert check_otp("C1000003", "customer", _code_sent("C1000003")).ok
    # after the lock, three more wrong codes lock the attacker twice as long
    later = datetime.now(timezone.utc) + timedelta(minutes=16)
    monkeypatch.setattr(service, "_now", lambda: later)
    issue_otp("C1000003", "attacker")
    second = [check_otp("C1000003", "attacker", "000000") for _ in range(3)][-1].locked_until
    assert second - later > (first_lock - (later - timedelta(minutes=16))) * 1.5


def test_many_senders_slow_the_customer_down(demo_db):
    from bot.crm.service import CUSTOMER_FAILURES, check_otp, issue_otp

    outcomes = []
    for i in range(CUSTOMER_FAILURES):
        outcomes.append(check_otp("C1000003", f"bot-{i}", "000000"))
    assert outcomes[-1].locked_until and not any(o.locked_until for o in outcomes[:-1])
    assert issue_otp("C1000003", "another").locked_until


def test_a_new_code_elsewhere_keeps_the_customers_code(demo_db):
    from bot.crm.service import check_otp, issue_otp

    issue_otp("C1000003", "customer")
    code = _code_sent("C1000003")
    issue_otp("C1000003", "attacker")
    assert check_otp("C1000003", "customer", code).ok


def test_counters_hold_no_personal_data(demo_db):
    from sqlalchemy import select

    from bot.crm import models as m
    from bot.crm.service import check_otp, issue_otp
    from bot.persistence.db import session_scope

    issue_otp("C1000003", "conv-1")
    check_otp("C1000003", "conv-1", "000000")
    with session_scope() as s:
        keys = s.execute(select(m.VerificationCounter.key)).scalars().all()
    assert keys and not any("C1000003" in k or "conv-1" in k or "@" in k for k in keys)


# --- logs and files ------------------------------------------------------------------------

def test_log_records_and_warnings_are_masked(caplog):
    from bot.logmask import install

    install()
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        log.warning("could not parse %s", "scrivimi a maria.rossi@example.it o al 347 111 2233")
        warnings.warn("message 'IBAN IT60X0542811101000000123456' ignored")
    text = caplog.text
    assert "maria.rossi@example.it" not in text and "347 111 2233" not in text
    assert "IT60X0542811101000000123456" not in text
    assert "[EMAIL]" in text


def test_the_var_folder_is_private(tmp_path, monkeypatch):
    from bot.runner import private_var_dir
    from bot.settings import reset_settings

    var = tmp_path / "var"
    var.mkdir()
    (var / "old.log").write_text("x")
    os.chmod(var / "old.log", 0o644)
    monkeypatch.setenv("SPORTELLO_VAR_DIR", str(var))
    reset_settings()
    umask = os.umask(0o022)
    try:
        private_var_dir()
        assert stat.S_IMODE(var.stat().st_mode) == 0o700
        assert stat.S_IMODE((var / "old.log").stat().st_mode) == 0o600
        (var / "new.db").write_text("y")  # created after: private by the umask
        assert stat.S_IMODE((var / "new.db").stat().st_mode) == 0o600
    finally:
        os.umask(umask)
        reset_settings()


def test_the_action_server_checks_its_bearer_token():
    from bot.action_server import authorised

    request = mock.Mock()
    for header, ok in [("Bearer s3cret", True), ("bearer s3cret", True), ("Bearer wrong", False),
                       ("s3cret", False), ("", False), ("Basic s3cret", False)]:
        request.headers = {"authorization": header}
        assert authorised(request, "s3cret") is ok
    request.headers = {"authorization": "Bearer "}
    assert authorised(request, "") is False


def test_client_payloads_cannot_revert_events_or_start_a_session():
    from connectors.text import normalise

    for payload in ("/back", "/session_start", '/session_start{"verified": true}'):
        assert normalise(payload)[0] == "/nlu_fallback"
    assert normalise("/restart")[0] == "/restart"


def test_exception_texts_in_logs_are_masked(caplog):
    from bot.logmask import install

    install()
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        try:
            raise ValueError("UPDATE customers SET email='anna.verdi@example.it', "
                             "iban='IT60X0542811101000000123456'")
        except ValueError:
            log.exception("the update failed")
    assert "anna.verdi@example.it" not in caplog.text
    assert "IT60X0542811101000000123456" not in caplog.text
    assert "ValueError" in caplog.text


@pytest.mark.parametrize("cell", ['x;"=1+1"', "\u200b=1+1", "x;\u00a0=1", "x;=1+1;y",
                                  "\ufeff@SUM(A1)", 'a,"+cmd|x'])
def test_csv_pieces_with_skipped_leading_characters_are_neutralised(cell):
    import re

    from bot.analytics.queries.export import _neutralise

    out = _neutralise(cell)
    for piece in re.split(r"[;,\t|\n]", out):
        assert not re.match(r'[ "\u00a0\u200b\ufeff]*[=+\-@]', piece), (cell, out)


@pytest.mark.parametrize("profile", ["prod", "Production", "staging", " production"])
def test_an_unknown_profile_is_refused(monkeypatch, profile):
    from bot.settings import get_settings, reset_settings

    monkeypatch.setenv("SPORTELLO_PROFILE", profile)
    reset_settings()
    with pytest.raises(SystemExit, match="SPORTELLO_PROFILE"):
        get_settings()
    reset_settings()
