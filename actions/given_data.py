"""A piece of data typed outside any form says which task it is for: an IBAN is a direct
debit, a new e-mail or mobile number a change of contact, a number with a meter (or right after
a reading) a meter reading. "my electricity meter says 41083", "IT84 N074 2185 ...", "no scusa
ho letto male, è 30498": the task starts with the value filled in, instead of "how can I help?"
or "I did not understand"."""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet

METER_WORDS = re.compile(
    r"\b(?:contator\w*|lettur\w*|autolettur\w*|letto|segna|meter|reading|reads|says|kwh|smc)\b",
    re.IGNORECASE)
READING_DONE = "action_meter_reading_submit"
# A number beside the meter itself, inside a bill question ("you keep estimating my usage; I
# went down to the meter and it says 4512, use that"): the customer is giving a reading.
THE_METER = re.compile(r"\b(?:contator[ei]|meter)\b", re.IGNORECASE)
# A meter that is not ours (the company supplies electricity and gas): a number beside it is no
# reading of ours ("il contatore dell'acqua segna 345, lo comunico a voi?").
OTHER_METER = re.compile(
    r"\b(?:acqua|idric\w*|water|condomin\w*|contabilizzat\w*|calorimetr\w*|ripartitor\w*)\b",
    re.IGNORECASE)
# A one-time code (bot.crm.service issues six digits).
ONE_TIME_CODE = re.compile(r"(?<![\d,.])\d{6}(?![\d,.])")
MONEY_AFTER = re.compile(r"^\s*(?:€|eur\w*)", re.IGNORECASE)
# A number the customer says they are writing or calling from, to introduce themselves ("ciao
# sono Anna, vi scrivo dal 333 ...", "I'm texting from +44 ..."): who they are, not a new contact.
WRITING_FROM = re.compile(
    r"\b(?:scriv\w*|chiam\w*|contatt\w*|writ\w*|text\w*|call\w*|messag\w*)\s+"
    r"(?:\w+\s+){0,3}?(?:dal|da|from)\s+(?:(?:il|mio|my|this|questo)\s+)*"
    r"(?:numero|number|cellulare|cell|mobile|telefono|phone)?\s*:?\s*$", re.IGNORECASE)
# ... unless the message says the number is new ("ho cambiato numero, vi scrivo dal 333 ...").
NEW_NUMBER = re.compile(r"\b(?:nuov\w*|new|cambiat\w*|changed|aggiorn\w*|updat\w*)\b",
                        re.IGNORECASE)


def _entity(tracker: Tracker, name: str) -> Optional[str]:
    values = [e.get("value") for e in tracker.latest_message.get("entities") or []
              if e.get("entity") == name and e.get("value")]
    return str(values[-1]) if values else None


def new_contact(tracker: Tracker) -> Optional[str]:
    """The e-mail address or mobile number the latest message gives as a contact, or None: not
    a number the customer only says they are writing from."""
    email = _entity(tracker, "email")
    if email:
        return email
    text = tracker.latest_message.get("text") or ""
    for entity in reversed(tracker.latest_message.get("entities") or []):
        if entity.get("entity") != "phone" or not entity.get("value"):
            continue
        start = entity.get("start")
        if (isinstance(start, int) and WRITING_FROM.search(text[:start])
                and not NEW_NUMBER.search(text)):
            continue
        return str(entity["value"])
    return None


def actions_of_last_turn(tracker: Tracker) -> List[str]:
    """The actions the bot ran between the customer's previous message and this one."""
    names: List[str] = []
    users = 0
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            users += 1
            if users == 2:
                break
        elif event.get("event") == "action" and users == 1:
            names.append(event.get("name"))
    return names


def offer_answered(tracker: Tracker) -> Optional[str]:
    """The offer the bot made just before the latest message (the `offer` slot itself is
    cleared as soon as the customer writes something that is not a yes or a no)."""
    seen_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            if seen_user:
                return None  # the offer was not made in the bot's last turn
            seen_user = True
        elif seen_user and event.get("event") == "slot" and event.get("name") == "offer":
            return event.get("value")
    return None


def code_for_paused_contact(tracker: Tracker) -> Optional[List[EventType]]:
    """A one-time code typed after another request answered while the contact change waited
    for it (the bot offered to go back to it): the change resumes with the code filled in."""
    paused = tracker.get_slot("paused_contact")
    if not isinstance(paused, dict) or offer_answered(tracker) != "update_contact":
        return None
    code = ONE_TIME_CODE.search(tracker.latest_message.get("text") or "")
    if code is None:
        return None
    return [SlotSet("new_contact", paused.get("new_contact")),
            SlotSet("contact_otp_to", paused.get("contact_otp_to")),
            SlotSet("contact_otp", code.group(0)), SlotSet("paused_contact", None),
            SlotSet("offer", None)]


def task_for_data(tracker: Tracker) -> Optional[Tuple[str, List[EventType]]]:
    """The skill intent the message's data is for and the slots it fills, or None."""
    resumed = code_for_paused_contact(tracker)
    if resumed is not None:
        return "update_contact", resumed
    iban = _entity(tracker, "iban")
    if iban:
        return "setup_direct_debit", [SlotSet("iban_input", iban)]
    contact = new_contact(tracker)
    if contact:
        return "update_contact", [SlotSet("new_contact", contact)]
    reading = _entity(tracker, "meter_reading")
    if reading is None:
        return None
    text = tracker.latest_message.get("text") or ""
    supply = _entity(tracker, "supply_type")
    after_reading = READING_DONE in actions_of_last_turn(tracker) or \
        tracker.get_slot("offer") == "submit_meter_reading"
    if not (METER_WORDS.search(text) or supply or after_reading):
        return None
    events: List[EventType] = [SlotSet("reading_value", reading)]
    if supply:
        events.append(SlotSet("supply_choice", supply))
    return "submit_meter_reading", events + [SlotSet("offer", None)]


def reading_beside_the_meter(tracker: Tracker) -> Optional[List[EventType]]:
    """The slots of a meter reading given inside another request (a bill question), or None:
    a number that is not money, in a message that speaks of the meter itself."""
    text = tracker.latest_message.get("text") or ""
    if not THE_METER.search(text):
        return None
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") != "meter_reading" or not entity.get("value"):
            continue
        end = entity.get("end")
        if isinstance(end, int) and MONEY_AFTER.match(text[end:]):
            continue
        events: List[EventType] = [SlotSet("reading_value", str(entity["value"]))]
        supply = _entity(tracker, "supply_type")
        if supply:
            events.append(SlotSet("supply_choice", supply))
        return events + [SlotSet("offer", None)]
    return None


def data_beyond_doubt(tracker: Tracker) -> bool:
    """Whether the message carries data that can only be for one of our tasks: an IBAN, an
    e-mail address or mobile number, or a number beside the meter itself ("con ISEE 9000"
    about the electricity bonus is not a reading)."""
    if _entity(tracker, "iban") or new_contact(tracker):
        return True
    text = tracker.latest_message.get("text") or ""
    return (bool(_entity(tracker, "meter_reading")) and bool(THE_METER.search(text))
            and not OTHER_METER.search(text))
