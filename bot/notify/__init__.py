"""Messages to customers (one-time codes): by e-mail over SMTP, by SMS through a provider,
or, in the embedded demo, into the outbox table.

`OTP_DELIVERY` chooses: `outbox` (the embedded profile's default) keeps the messages in the
outbox table for `python -m bot outbox`; `real` (the production profile's default, and the
only choice there) sends e-mails with SMTP and SMS with `SMS_PROVIDER`. No mode writes a
message's body to a log: log lines carry the medium and the masked destination only.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from bot.notify.base import DeliveryError, Message, NotConfigured, Sender
from bot.notify.outbox import OutboxSender, record_sent
from bot.notify.sms import TwilioSms, sms_problems
from bot.notify.smtp import SmtpSender, smtp_problems
from bot.settings import Settings

__all__ = ["DeliveryError", "Message", "NotConfigured", "Sender", "deliver",
           "delivery_problems", "sender_for"]

log = logging.getLogger(__name__)
MODES = ("outbox", "real")


def _mode_problems(settings: Settings) -> list[str]:
    mode = settings.otp_delivery
    if mode not in MODES:
        return [f"OTP_DELIVERY={mode!r} is not one of {', '.join(MODES)}: one-time codes "
                f"cannot be sent"]
    if mode == "outbox" and settings.profile == "production":
        return ["OTP_DELIVERY=outbox in the production profile: one-time codes would only be "
                "written to the outbox table and never reach the customers; set "
                "OTP_DELIVERY=real (or leave it unset) and configure SMTP and SMS"]
    return []


def _medium_problems(settings: Settings, medium: str) -> list[str]:
    if medium == "email":
        return smtp_problems(settings.smtp_host, settings.smtp_security, settings.smtp_from,
                             settings.smtp_username, settings.smtp_password)
    return sms_problems(settings.sms_provider, settings.sms_twilio_account_sid,
                        settings.sms_twilio_auth_token, settings.sms_from,
                        settings.twilio_api_url)


def delivery_problems(settings: Settings) -> list[str]:
    """Why one-time codes cannot reach customers with these settings, one human-readable line
    per problem naming the environment variable to set (empty: ready). With
    `OTP_DELIVERY=outbox` in the embedded profile nothing is needed."""
    problems = _mode_problems(settings)
    if problems or settings.otp_delivery != "real":
        return problems
    return _medium_problems(settings, "email") + _medium_problems(settings, "sms")


def sender_for(medium: str, settings: Settings, session: Session | None = None) -> Sender:
    """The configured sender of `medium` ("email" or "sms"); `session`: the transaction the
    outbox rows join (else they get one of their own). Raises `NotConfigured`."""
    problems = _mode_problems(settings)
    if problems:
        raise NotConfigured(problems)
    if settings.otp_delivery == "outbox":
        return OutboxSender(session)
    problems = _medium_problems(settings, medium)
    if problems:
        raise NotConfigured(problems)
    if medium == "email":
        return SmtpSender.from_settings(settings)
    if medium == "sms":
        return TwilioSms.from_settings(settings)
    raise ValueError(f"unknown medium {medium!r}")


def deliver(message: Message, settings: Settings | None = None,
            session: Session | None = None) -> None:
    """Send `message` with the configured sender, or raise `DeliveryError` (the caller's
    transaction then rolls back and the customer is told to try again).

    Real sending happens at once, inside the caller's transaction: its audit row (no body) is
    flushed first, so a database error stops the message before it leaves; a message sent
    whose transaction then fails to commit is only a code that does not work."""
    if settings is None:
        from bot.settings import get_settings

        settings = get_settings()
    sender = sender_for(message.medium, settings, session)
    if isinstance(sender, OutboxSender):
        sender.send(message)
        log.info("%s to %s kept in the outbox table (OTP_DELIVERY=outbox)", message.medium,
                 message.masked_destination)
        return
    if session is not None:
        record_sent(session, message, sender.name)
        session.flush()
    try:
        sender.send(message)
    except DeliveryError as exc:
        log.warning("%s to %s not sent via %s: %s", message.medium,
                    message.masked_destination, sender.name, exc)
        raise
    if session is None:
        record_sent(None, message, sender.name)
    log.info("%s to %s sent via %s", message.medium, message.masked_destination, sender.name)
