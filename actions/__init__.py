"""Sportello's custom actions, one module per skill (rasa-sdk loads the whole package)."""

from actions import (  # noqa: F401
    bills,
    callback,
    complaints,
    contact,
    contract,
    conversation,
    direct_debit,
    handover,
    identity,
    meter_reading,
    moving,
    outages,
    paperless,
    tickets,
)
