"""The channels customers write on: one vocabulary for the actions, the log, the desk and the
customer history.

Rasa names an input channel after its connector (`rest`, `socketio`, `facebook`, `twilio`,
`cmdline`, ...); everything else in Sportello names the channel the customer used."""

from __future__ import annotations

# The customer history: the bot's channels and those of interactions imported from elsewhere.
HISTORY = ("web", "whatsapp", "telegram", "messenger", "phone", "email", "store")
# The conversation log: the bot's channels, and `shell` for a developer's terminal.
LOGGED = ("web", "whatsapp", "telegram", "messenger", "shell")
# Messaging apps: the sender id is the customer's account on the platform.
MESSAGING = frozenset({"whatsapp", "telegram", "messenger"})
# Rasa's input channel -> the conversation's channel.
OF_INPUT = {
    "rest": "web", "socketio": "web", "cmdline": "shell", "whatsapp": "whatsapp",
    "twilio": "whatsapp", "telegram": "telegram", "facebook": "messenger",
    "messenger": "messenger",
}


def logged_channel(input_channel: str | None) -> str:
    """The conversation's channel for Rasa's input channel (an unknown one keeps its name)."""
    name = input_channel or "rest"
    return OF_INPUT.get(name, name)


def history_channel(input_channel: str | None) -> str:
    """The customer history's channel: a developer's terminal or an unknown input counts as
    the web chat."""
    channel = logged_channel(input_channel)
    return channel if channel in HISTORY else "web"
