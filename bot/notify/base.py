"""What every way of sending a message to a customer has in common.

A message may carry a secret (a one-time code): its body is never logged, never put in an
error message and never shown by `repr`; its destination only appears masked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from bot.masks import mask_email, mask_phone

MEDIUMS = ("email", "sms")


@dataclass(frozen=True)
class Message:
    """One message to one customer: an e-mail address or an E.164 phone number."""

    medium: str  # "email" | "sms"
    destination: str = field(repr=False)
    subject: str
    body: str = field(repr=False)  # may hold a one-time code

    def __post_init__(self) -> None:
        if self.medium not in MEDIUMS:
            raise ValueError(f"unknown medium {self.medium!r} (one of {', '.join(MEDIUMS)})")

    @property
    def masked_destination(self) -> str:
        """The destination as it may appear in logs and errors."""
        if self.medium == "email":
            return mask_email(self.destination)
        return mask_phone(self.destination)

    def __repr__(self) -> str:  # tracebacks and logs never show the address or the code
        return f"Message(medium={self.medium!r}, to={self.masked_destination!r}, " \
               f"subject={self.subject!r})"


class DeliveryError(RuntimeError):
    """The message was not sent; the caller tells the customer to try again later.
    Its text names the destination masked only and never contains the body."""


class NotConfigured(DeliveryError):
    """Real delivery is selected but its settings are missing or unsafe."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Sender(ABC):
    """One way of delivering messages (the outbox table, SMTP, an SMS provider)."""

    name: str = "sender"

    @abstractmethod
    def send(self, message: Message) -> None:
        """Deliver `message` or raise `DeliveryError`; returning means it was accepted."""


def scrub(text: str, message: Message) -> str:
    """`text` (a server's or provider's error) without the clear destination or the body:
    errors end up in logs."""
    if message.destination:
        text = text.replace(message.destination, message.masked_destination)
    if message.body:
        text = text.replace(message.body, "[body]")
    return text
