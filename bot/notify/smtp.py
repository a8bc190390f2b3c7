"""E-mail over SMTP with the standard library: the company's mail relay or provider.

The connection is encrypted (STARTTLS on 587, or implicit TLS on 465) and the server's
certificate is verified; plain SMTP is accepted only towards a relay on this machine
(127.0.0.1 / localhost), because a one-time code read on the wire lets anyone verify as the
customer.
"""

from __future__ import annotations

import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from bot.notify.base import DeliveryError, Message, NotConfigured, Sender, scrub
from bot.settings import Settings

SECURITIES = ("starttls", "tls", "none")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def smtp_problems(host: str, security: str, sender: str, username: str,
                  password: str) -> list[str]:
    """What stops these SMTP settings from sending codes safely (empty: nothing)."""
    why = "one-time codes to e-mail addresses cannot be sent"
    problems = []
    if not host:
        problems.append(f"SMTP_HOST is not set: {why}")
    if not sender:
        problems.append(f"SMTP_FROM is not set (e.g. 'Luce Nord Energia "
                        f"<no-reply@lucenordenergia.it>'): {why}")
    elif "@" not in parseaddr(sender)[1]:
        problems.append(f"SMTP_FROM={sender!r} is not an e-mail address: {why}")
    if security not in SECURITIES:
        problems.append(f"SMTP_SECURITY={security!r} is not one of {', '.join(SECURITIES)}: "
                        f"{why}")
    elif security == "none" and host and host not in LOCAL_HOSTS:
        problems.append(f"SMTP_SECURITY=none is only allowed for a relay on this machine "
                        f"(127.0.0.1 or localhost), not {host}: codes would cross the network "
                        f"unencrypted; use starttls or tls")
    if username and not password:
        problems.append(f"SMTP_PASSWORD is not set (SMTP_USERNAME is): {why}")
    if password and not username:
        problems.append(f"SMTP_USERNAME is not set (SMTP_PASSWORD is): {why}")
    return problems


class SmtpSender(Sender):
    """Sends e-mails through one SMTP server; one connection per message (codes are rare)."""

    name = "smtp"

    def __init__(self, host: str, port: int, sender: str, *, security: str = "starttls",
                 username: str = "", password: str = "", timeout: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        problems = smtp_problems(host, security, sender, username, password)
        if problems:
            raise NotConfigured(problems)
        self.host, self.port, self.sender, self.security = host, port, sender, security
        self.username, self.password, self.timeout = username, password, timeout
        # the system's trusted CAs, hostname checked; tests pass a context trusting their CA
        self.ssl_context = ssl_context or ssl.create_default_context()

    @classmethod
    def from_settings(cls, settings: Settings) -> "SmtpSender":
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_from,
                   security=settings.smtp_security, username=settings.smtp_username,
                   password=settings.smtp_password, timeout=settings.smtp_timeout)

    def email(self, message: Message) -> EmailMessage:
        """The RFC 5322 message: plain text, UTF-8 (the Italian text has accents)."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.destination
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or None
        mail["Message-ID"] = make_msgid(domain=domain)
        mail.set_content(message.body)
        return mail

    def send(self, message: Message) -> None:
        if message.medium != "email":
            raise ValueError(f"{self.name} sends e-mails, not {message.medium}")
        try:  # a malformed address fails here, not half-way through the dialogue
            Address(addr_spec=message.destination)
            mail = self.email(message)
        except (ValueError, TypeError):
            raise DeliveryError(f"e-mail to {message.masked_destination} not sent: not a valid "
                                f"address") from None
        try:
            if self.security == "tls":
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                        context=self.ssl_context)
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with conn:
                conn.ehlo()
                if self.security == "starttls":
                    # never falls back to plain text: no STARTTLS offered is an error
                    conn.starttls(context=self.ssl_context)
                    conn.ehlo()
                if self.username:
                    conn.login(self.username, self.password)
                refused = conn.send_message(mail)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(scrub(
                f"e-mail to {message.masked_destination} not sent through {self.host}:"
                f"{self.port} ({self.security}): {type(exc).__name__}: {exc}", message)) from None
        if refused:
            raise DeliveryError(f"e-mail to {message.masked_destination} refused by "
                                f"{self.host}:{self.port}")
