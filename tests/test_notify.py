"""One-time codes really reach the customer (bot.notify): e-mail through a real SMTP server
(aiosmtpd: plain to localhost, STARTTLS with login, implicit TLS), SMS through a local server
speaking Twilio's Messages API; no code in any file of the var folder, nor in the outbox table
of the production profile; `delivery_problems` names every missing variable."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import ipaddress
import json
import logging
import re
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import func, select

from bot.crm import models as m
from bot.persistence import tables
from bot.persistence.db import session_scope

SMTP_FROM = "Luce Nord Energia <no-reply@lucenordenergia.example>"
SUBJECT = "Codice di verifica / Verification code"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "sms-twilio-auth-token"
SMS_FROM = "+390212345678"
# Every variable bot.notify reads: the developer's environment must not leak into the tests.
NOTIFY_ENV = ("OTP_DELIVERY", "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD",
              "SMTP_SECURITY", "SMTP_FROM", "SMTP_TIMEOUT", "SMS_PROVIDER",
              "SMS_TWILIO_ACCOUNT_SID", "SMS_TWILIO_AUTH_TOKEN", "SMS_FROM", "TWILIO_API_URL",
              "SPORTELLO_PROFILE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in NOTIFY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTP_SENDS_PER_HOUR", "100")  # several codes per test
    yield
    from bot.settings import reset_settings

    reset_settings()


def configure(monkeypatch, **env: str):
    """Set these environment variables and read the settings again."""
    from bot.settings import get_settings, reset_settings

    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    reset_settings()
    return get_settings()


def production(monkeypatch, **env: str):
    secrets = {name: f"{name.lower()}-" + "x" * 40 for name in (
        "CUSTOMER_TOKEN_SECRET", "RASA_TOKEN", "ACTION_SERVER_TOKEN", "SPORTELLO_SECRET_KEY")}
    return configure(monkeypatch, SPORTELLO_PROFILE="production", **secrets, **env)


def seeded() -> None:
    """The demo's Maria Rossi (C1000001, e-mail on file) and its first customer with only a
    phone; the other demo customers would only make the tests slower."""
    from bot.crm.importer import apply
    from bot.crm.seed import build_document

    document = build_document()
    phone_only = next(c for c in document["customers"] if not c.get("email") and c.get("phone"))
    maria = next(c for c in document["customers"] if c["customer_code"] == "C1000001")
    with session_scope() as s:
        apply(s, {"customers": [maria, phone_only], "outages": []})


def phone_only_customer() -> tuple[str, str]:
    with session_scope() as s:
        return s.execute(select(m.Customer.customer_code, m.Customer.phone)
                         .where(m.Customer.email.is_(None), m.Customer.phone.is_not(None))
                         .order_by(m.Customer.customer_code)).first()


def codes_stored(conversation_id: str) -> int:
    with session_scope() as s:
        return s.execute(select(func.count()).select_from(m.OneTimeCode)
                         .where(m.OneTimeCode.conversation_id == conversation_id)).scalar_one()


def code_in(text: str) -> str:
    return re.search(r"\b(\d{6})\b", text).group(1)


def outbox_bodies() -> list[str]:
    with session_scope() as s:
        return s.execute(select(tables.OutboxMessage.body)
                         .order_by(tables.OutboxMessage.id)).scalars().all()


def assert_nowhere_in_var_dir(code: str) -> None:
    """No file of the var folder (logs, secrets, anything) holds the code."""
    from bot.settings import get_settings

    var_dir = get_settings().var_dir
    assert not get_settings().outbox_log.exists()
    for path in var_dir.rglob("*") if var_dir.exists() else ():
        if path.is_file():
            assert code.encode() not in path.read_bytes(), path


def assert_not_logged(caplog, *secrets: str) -> None:
    """Sportello's log lines (not the test SMTP server's) hold neither the code nor the
    clear destination."""
    for record in caplog.records:
        if record.name.startswith("mail."):
            continue
        text = record.getMessage()
        for secret in secrets:
            assert secret not in text, (secret, text)


# --- a real SMTP server --------------------------------------------------------------------

class Inbox:
    """aiosmtpd handler: keeps every message received, and whether it came over TLS."""

    def __init__(self) -> None:
        self.envelopes: list = []
        self.tls: list[bool] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.tls.append(bool(session.ssl)  # after STARTTLS; implicit TLS: the transport
                        or server.transport.get_extra_info("ssl_object") is not None)
        return "250 Message accepted for delivery"

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (b"sportello", b"smtp-password")
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 / 535

    def only_message(self):
        assert len(self.envelopes) == 1, self.envelopes
        envelope = self.envelopes[0]
        return envelope, email.message_from_bytes(envelope.content, policy=email.policy.default)


def smtp_server(**kwargs) -> tuple[Controller, Inbox, int]:
    inbox = Inbox()
    port = free_port()
    if "authenticator" in kwargs:
        kwargs["authenticator"] = inbox.authenticator
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, inbox, port


@pytest.fixture
def smtp():
    controller, inbox, port = smtp_server()
    inbox.port = port
    yield inbox
    controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def server_context(certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


def smtp_env(port: int, **more: str) -> dict:
    return {"OTP_DELIVERY": "real", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
            "SMTP_SECURITY": "none", "SMTP_FROM": SMTP_FROM, **more}


def test_code_by_email_through_a_real_smtp_server(database, smtp, monkeypatch, caplog):
    from bot.crm.service import check_otp, issue_otp

    caplog.set_level(logging.DEBUG)
    seeded()
    configure(monkeypatch, **smtp_env(smtp.port))
    issued = issue_otp("C1000001", "conv-mail")
    assert issued.sent and issued.masked_destination == "m***@example.it"
    envelope, mail = smtp.only_message()
    assert envelope.mail_from == "no-reply@lucenordenergia.example"
    assert envelope.rcpt_tos == ["maria.rossi@example.it"]
    assert mail["To"] == "maria.rossi@example.it"
    assert mail["From"] == SMTP_FROM
    assert mail["Subject"] == SUBJECT
    assert mail["Message-ID"].endswith("@lucenordenergia.example>") and mail["Date"]
    text = mail.get_body(("plain",)).get_content()
    code = code_in(text)
    assert f"il tuo codice di verifica è {code}" in text and f"code is {code}" in text
    assert not check_otp("C1000001", "conv-mail", "000000" if code != "000000" else "111111").ok
    assert check_otp("C1000001", "conv-mail", code).ok
    # the outbox table keeps an audit row without the code; no file of the var folder has it
    assert outbox_bodies() == ["[sent via smtp; the content is not stored]"]
    assert_nowhere_in_var_dir(code)
    assert_not_logged(caplog, code, "maria.rossi@example.it")
    assert any("m***@example.it" in r.getMessage() and "smtp" in r.getMessage()
               for r in caplog.records)


def test_starttls_and_login_through_the_settings(sqlite_db, certificate, monkeypatch):
    """SMTP_SECURITY=starttls (the default) with SMTP_USERNAME/SMTP_PASSWORD: the server's
    certificate is verified (trusted here through SSL_CERT_FILE) and AUTH happens inside TLS."""
    from bot.crm.service import check_otp, issue_otp

    seeded()
    controller, inbox, port = smtp_server(
        tls_context=server_context(certificate), require_starttls=True, authenticator=True,
        auth_required=True)
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        configure(monkeypatch, OTP_DELIVERY="real", SMTP_HOST="localhost", SMTP_PORT=port,
                  SMTP_FROM=SMTP_FROM, SMTP_USERNAME="sportello", SMTP_PASSWORD="smtp-password")
        assert issue_otp("C1000001", "conv-tls").sent
        envelope, mail = inbox.only_message()
        assert inbox.tls == [True] and inbox.logins == [(b"sportello", b"smtp-password")]
        assert mail["To"] == "maria.rossi@example.it" and mail["Subject"] == SUBJECT
        assert check_otp("C1000001", "conv-tls", code_in(mail.get_body().get_content())).ok

        # a wrong password: the code is not issued, and the error says why without secrets
        from bot.notify import DeliveryError

        configure(monkeypatch, SMTP_PASSWORD="wrong")
        with pytest.raises(DeliveryError) as err:
            issue_otp("C1000001", "conv-tls-2")
        assert "SMTPAuthenticationError" in str(err.value) and "m***@example.it" in str(err.value)
        assert "maria.rossi" not in str(err.value) and "wrong" not in str(err.value)
        assert len(inbox.envelopes) == 1
        assert codes_stored("conv-tls-2") == 0  # the transaction rolled back
    finally:
        controller.stop()


def test_implicit_tls_and_an_untrusted_certificate(certificate):
    from bot.notify import DeliveryError, Message
    from bot.notify.smtp import SmtpSender

    controller, inbox, port = smtp_server(ssl_context=server_context(certificate))
    try:
        trusting = ssl.create_default_context(cafile=str(certificate[0]))
        message = Message("email", "giuseppe.bianchi@example.it", SUBJECT, "codice 424242")
        SmtpSender("127.0.0.1", port, SMTP_FROM, security="tls",
                   ssl_context=trusting).send(message)
        _, mail = inbox.only_message()
        assert inbox.tls == [True] and mail["To"] == "giuseppe.bianchi@example.it"
        assert "424242" in mail.get_body().get_content()
        with pytest.raises(DeliveryError) as err:  # the system's CAs do not know this server
            SmtpSender("127.0.0.1", port, SMTP_FROM, security="tls").send(message)
        assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
        assert "424242" not in str(err.value) and "giuseppe.bianchi" not in str(err.value)
    finally:
        controller.stop()


def test_starttls_never_falls_back_to_plain_text(smtp):
    from bot.notify import DeliveryError, Message
    from bot.notify.smtp import SmtpSender

    sender = SmtpSender("127.0.0.1", smtp.port, SMTP_FROM, security="starttls")
    with pytest.raises(DeliveryError) as err:  # this server offers no STARTTLS
        sender.send(Message("email", "a@example.it", SUBJECT, "codice 424242"))
    assert "STARTTLS" in str(err.value) and smtp.envelopes == []


def test_plain_smtp_only_to_this_machine():
    from bot.notify import NotConfigured
    from bot.notify.smtp import SmtpSender

    with pytest.raises(NotConfigured) as err:
        SmtpSender("smtp.example.com", 25, SMTP_FROM, security="none")
    assert "SMTP_SECURITY=none" in str(err.value)
    SmtpSender("localhost", 25, SMTP_FROM, security="none")  # a local relay is fine


# --- SMS: a local server speaking Twilio's Messages API ------------------------------------

class TwilioAPI:
    """Records every request; answers 201 with a message resource, or `self.error`."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.error: tuple[int, dict] | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.requests.append({"method": "POST", "path": self.path,
                                     "headers": dict(self.headers), "body": body})
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                status, answer = api.error or (201, {
                    "sid": "SM" + "f" * 32, "account_sid": ACCOUNT_SID, "to": form.get("To"),
                    "from": form.get("From"), "body": form.get("Body"), "status": "queued"})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def twilio():
    api = TwilioAPI()
    yield api
    api.stop()


def sms_env(twilio: TwilioAPI, **more: str) -> dict:
    return {"OTP_DELIVERY": "real", "TWILIO_API_URL": twilio.url,
            "SMS_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "SMS_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "SMS_FROM": SMS_FROM, **more}


def test_code_by_sms_through_twilio_messages_api(sqlite_db, twilio, monkeypatch, caplog):
    from bot.crm.service import check_otp, issue_otp

    caplog.set_level(logging.DEBUG)
    seeded()
    customer, phone = phone_only_customer()
    configure(monkeypatch, **sms_env(twilio))
    issued = issue_otp(customer, "conv-sms")
    assert issued.sent and issued.masked_destination == f"{phone[:3]}******{phone[-3:]}"
    [request] = twilio.requests
    assert request["method"] == "POST"
    assert request["path"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    basic = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request["headers"]["Authorization"] == f"Basic {basic}"
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request["body"].decode(), strict_parsing=True)
    assert set(form) == {"To", "From", "Body"}
    assert form["To"] == [phone] and form["From"] == [SMS_FROM]
    code = code_in(form["Body"][0])
    assert check_otp(customer, "conv-sms", code).ok
    assert outbox_bodies() == ["[sent via twilio; the content is not stored]"]
    assert_nowhere_in_var_dir(code)
    assert_not_logged(caplog, code, phone)


def test_twilio_error_is_raised_clearly_and_no_code_is_stored(sqlite_db, twilio, monkeypatch):
    from bot.crm.service import issue_otp
    from bot.notify import DeliveryError

    seeded()
    customer, phone = phone_only_customer()
    configure(monkeypatch, **sms_env(twilio))
    twilio.error = (400, {"code": 21211, "message": f"The 'To' number {phone} is not a valid "
                                                    f"phone number.",
                          "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})
    with pytest.raises(DeliveryError) as err:
        issue_otp(customer, "conv-sms-error")
    text = str(err.value)
    assert "HTTP 400" in text and "Twilio error 21211" in text and "not a valid phone" in text
    assert phone not in text and f"{phone[:3]}******{phone[-3:]}" in text
    assert len(twilio.requests) == 1
    assert outbox_bodies() == []  # the transaction rolled back: no code, no audit row
    assert codes_stored("conv-sms-error") == 0
    twilio.error = (503, {"code": 20503, "message": "Service Unavailable"})
    with pytest.raises(DeliveryError, match="HTTP 503"):
        issue_otp(customer, "conv-sms-error")
    twilio.stop()
    with pytest.raises(DeliveryError, match="Twilio unreachable"):
        issue_otp(customer, "conv-sms-error")


def test_messaging_service_sid_is_sent_instead_of_from(twilio):
    from bot.notify import Message
    from bot.notify.sms import TwilioSms

    service = "MG" + "0123456789abcdef" * 2
    TwilioSms(twilio.url, ACCOUNT_SID, AUTH_TOKEN, service).send(
        Message("sms", "+393331234567", SUBJECT, "codice 424242"))
    form = parse_qs(twilio.requests[0]["body"].decode())
    assert form == {"To": ["+393331234567"], "MessagingServiceSid": [service],
                    "Body": ["codice 424242"]}


# --- what is kept where, per profile and mode ----------------------------------------------

def test_embedded_outbox_keeps_the_code_in_the_table_only(sqlite_db, monkeypatch, capsys):
    from bot.__main__ import main
    from bot.crm.service import check_otp, issue_otp

    seeded()
    settings = configure(monkeypatch)
    assert settings.profile == "embedded" and settings.otp_delivery == "outbox"
    assert issue_otp("C1000001", "conv-demo").sent
    [body] = outbox_bodies()
    code = code_in(body)
    assert check_otp("C1000001", "conv-demo", code).ok
    assert_nowhere_in_var_dir(code)
    assert main(["outbox"]) == 0  # the demo reads the code from the table
    out = capsys.readouterr().out
    assert "maria.rossi@example.it" in out and code in out


def test_production_keeps_no_code_in_the_outbox_table(database, smtp, monkeypatch, capsys):
    from bot.__main__ import main
    from bot.crm.service import check_otp, issue_otp

    seeded()
    monkeypatch.delenv("OTP_DELIVERY", raising=False)  # whatever an earlier test left there
    settings = production(monkeypatch, **{k: v for k, v in smtp_env(smtp.port).items()
                                          if k != "OTP_DELIVERY"})
    assert settings.otp_delivery == "real"  # the production default
    for conversation in ("conv-p1", "conv-p2"):
        assert issue_otp("C1000001", conversation).sent
    codes = [code_in(email.message_from_bytes(env.content, policy=email.policy.default)
                     .get_body().get_content()) for env in smtp.envelopes]
    assert len(codes) == 2
    with session_scope() as s:
        rows = s.execute(select(tables.OutboxMessage)).scalars().all()
    assert len(rows) == 2
    for row in rows:
        assert row.destination == "maria.rossi@example.it" and row.subject == SUBJECT
        assert not re.search(r"\d{6}", row.body) and all(c not in row.body for c in codes)
    for code in codes:
        assert_nowhere_in_var_dir(code)
    assert check_otp("C1000001", "conv-p2", codes[1]).ok
    assert main(["outbox"]) == 2
    assert "only works in the embedded profile" in capsys.readouterr().err


def test_production_refuses_the_outbox(sqlite_db, monkeypatch):
    from bot.crm.service import issue_otp
    from bot.notify import NotConfigured, delivery_problems

    seeded()
    settings = production(monkeypatch, OTP_DELIVERY="outbox")
    [problem] = delivery_problems(settings)
    assert problem.startswith("OTP_DELIVERY=outbox in the production profile")
    with pytest.raises(NotConfigured):
        issue_otp("C1000001", "conv-x")
    assert outbox_bodies() == []


def test_real_delivery_not_configured_issues_no_code(sqlite_db, monkeypatch):
    from bot.crm.service import issue_otp
    from bot.notify import NotConfigured

    seeded()
    configure(monkeypatch, OTP_DELIVERY="real")
    with pytest.raises(NotConfigured) as err:
        issue_otp("C1000001", "conv-y")
    assert "SMTP_HOST is not set" in str(err.value)
    assert outbox_bodies() == [] and codes_stored("conv-y") == 0


# --- delivery_problems ---------------------------------------------------------------------

def test_delivery_problems_name_each_missing_variable(monkeypatch):
    from bot.notify import delivery_problems

    assert delivery_problems(configure(monkeypatch)) == []  # embedded demo: the outbox
    problems = delivery_problems(production(monkeypatch))
    assert "SMTP_HOST is not set: one-time codes to e-mail addresses cannot be sent" in problems
    for name in ("SMTP_HOST", "SMTP_FROM", "SMS_TWILIO_ACCOUNT_SID", "SMS_TWILIO_AUTH_TOKEN",
                 "SMS_FROM"):
        assert sum(p.startswith(f"{name} is not set") for p in problems) == 1, (name, problems)
    assert len(problems) == 5
    assert all(p.endswith("cannot be sent") for p in problems)

    ready = {"SMTP_HOST": "smtp.lucenordenergia.example", "SMTP_FROM": SMTP_FROM,
             "SMTP_USERNAME": "sportello", "SMTP_PASSWORD": "pw",
             "SMS_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "SMS_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
             "SMS_FROM": SMS_FROM}
    settings = production(monkeypatch, **ready)
    assert delivery_problems(settings) == []
    assert (settings.smtp_port, settings.smtp_security, settings.sms_provider) == (
        587, "starttls", "twilio")
    assert production(monkeypatch, SMTP_SECURITY="tls").smtp_port == 465

    def problems_with(**env):
        defaults = {"SMTP_SECURITY": "starttls", "SMS_PROVIDER": "twilio",
                    "TWILIO_API_URL": "https://api.twilio.com", "OTP_DELIVERY": "real"}
        return delivery_problems(production(monkeypatch, **{**ready, **defaults, **env}))

    monkeypatch.delenv("SMTP_PASSWORD")
    [problem] = delivery_problems(production(monkeypatch, SMTP_SECURITY="starttls"))
    assert problem.startswith("SMTP_PASSWORD is not set (SMTP_USERNAME is)")
    assert problems_with(SMTP_SECURITY="none")[0].startswith("SMTP_SECURITY=none is only allowed")
    assert problems_with(SMTP_SECURITY="ssl")[0].startswith("SMTP_SECURITY='ssl' is not one of")
    assert problems_with(SMS_FROM="0212345678")[0].startswith("SMS_FROM='0212345678' is neither")
    assert problems_with(SMS_PROVIDER="vonage")[0].startswith("SMS_PROVIDER='vonage' is not "
                                                              "supported")
    assert problems_with(TWILIO_API_URL="http://twilio.example")[0].startswith(
        "TWILIO_API_URL='http://twilio.example' is not https")
    assert problems_with(OTP_DELIVERY="carrier-pigeon")[0].startswith(
        "OTP_DELIVERY='carrier-pigeon' is not one of outbox, real")


def test_messages_never_show_their_body():
    from bot.notify import Message

    message = Message("sms", "+393331234567", SUBJECT, "codice 424242")
    assert "424242" not in repr(message) and "+393331234567" not in repr(message)
    with pytest.raises(ValueError):
        Message("fax", "x", SUBJECT, "body")


def test_outbox_rows_count_is_unchanged_by_failed_sends(sqlite_db, monkeypatch):
    """A send that fails after the audit row was flushed leaves no row behind."""
    from bot.crm.service import issue_otp
    from bot.notify import DeliveryError

    seeded()
    configure(monkeypatch, **smtp_env(free_port()))  # nobody listens there
    with pytest.raises(DeliveryError, match="ConnectionRefusedError"):
        issue_otp("C1000001", "conv-z")
    with session_scope() as s:
        assert s.execute(select(func.count()).select_from(tables.OutboxMessage)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(m.OneTimeCode)).scalar_one() == 0
