"""Identity: one-time codes for anonymous customers, and no way to see another customer's data."""

from __future__ import annotations

import pytest

from bot import i18n
from bot.crm.card import read_identity_card

pytestmark = pytest.mark.integration


def private_facts(code: str) -> list[str]:
    card = read_identity_card(code)
    facts = [card.last_name, *(s.supply_id for s in card.supplies),
             *(b.number for b in card.bills), *(t.ticket_id for t in card.tickets)]
    facts += [i18n.money(b.amount_eur, "it") for b in card.open_bills]
    return [f for f in facts if f]


def test_the_verification_prompt_fits_any_request(stack, sender):
    """Asked to file a complaint, an anonymous customer is told why they are asked who they
    are, in words that fit a complaint as well as a bill (not "information on the contract")."""
    reply = stack.say(sender, "ciao, voglio fare un reclamo")
    assert "verificare l'identità del titolare" in reply and "codice cliente" in reply
    assert "informazioni" not in reply


def test_anonymous_customer_verifies_with_a_one_time_code(stack, sender):
    reply = stack.say(sender, "quanto devo pagare?")
    assert "codice cliente" in reply
    reply = stack.say(sender, "C1000001")
    assert "codice di verifica" in reply
    on_file = read_identity_card("C1000001").email  # another test may have changed it
    code = stack.code_sent_to(on_file)
    reply = stack.say(sender, code)
    bill = [b for b in read_identity_card("C1000001").open_bills][0]
    assert "Maria" in reply and bill.number in reply


def test_code_in_the_first_message_sends_the_one_time_code_at_once(stack, sender):
    reply = stack.say(sender, "che tariffa ho? il mio codice è C1000003")
    assert "codice di verifica" in reply
    reply = stack.say(sender, stack.code_sent_to("laura.conti@example.it"))
    assert read_identity_card("C1000003").supplies[0].supply_id in reply


def test_three_wrong_codes_lock_the_sender_not_the_customer(stack, sender):
    stack.say(sender, "a che punto è la mia pratica?")
    stack.say(sender, "C1000006")
    assert "Tentativi rimasti: 2" in stack.say(sender, "111111")
    assert "Tentativi rimasti: 1" in stack.say(sender, "222222")
    reply = stack.say(sender, "333333")
    assert "bloccata" in reply
    # that conversation stays locked, even for a new code...
    stack.say(sender, "a che punto è la mia pratica?")
    assert "bloccata" in stack.say(sender, "C1000006")
    # ...but the customer, writing from their own conversation, still verifies
    own = f"{sender}-own"
    stack.say(own, "stato pratica")
    reply = stack.say(own, "C1000006")
    assert "codice di verifica" in reply and "bloccata" not in reply
    on_file = read_identity_card("C1000006")
    reply = stack.say(own, stack.code_sent_to(on_file.email or on_file.phone))
    assert "Anna" in reply


def test_messaging_identity_is_linked_after_verification(stack, platform_api, sender):
    """A Telegram chat that verifies with a one-time code is linked to the customer; a web
    (REST) sender that verifies the same way is not: a browser's sender id is not an
    identity."""
    from sqlalchemy import func, select

    from bot.crm import models as m
    from bot.crm.service import customer_for_identity
    from bot.persistence.db import session_scope
    from tests.integration.test_messaging import plain_customer, tg_message, tg_post, tg_sent

    first = plain_customer(set())  # test_messaging's
    on_telegram = read_identity_card(plain_customer({first}))
    on_the_web = read_identity_card(plain_customer({first, on_telegram.customer_code}))
    chat = int(sender[-8:], 16)  # a Telegram chat of this test's own

    def telegram(text: str) -> str:
        before = len(tg_sent(platform_api, chat))
        assert tg_post(stack, tg_message(chat, text)).status_code == 200
        return "\n".join(m["text"] for m in tg_sent(platform_api, chat)[before:])

    assert customer_for_identity("telegram", str(chat)) is None
    assert "codice cliente" in telegram("quanto devo pagare?")
    assert "codice di verifica" in telegram(on_telegram.customer_code)
    assert on_telegram.first_name in telegram(stack.code_sent_to(on_telegram.email))
    assert customer_for_identity("telegram", str(chat)) == on_telegram.customer_code
    # a web sender verifies the same way, and is not linked to anyone
    assert "codice cliente" in stack.say(sender, "quanto devo pagare?")
    assert "codice di verifica" in stack.say(sender, on_the_web.customer_code)
    assert on_the_web.first_name in stack.say(sender, stack.code_sent_to(on_the_web.email))
    with session_scope() as db:
        links = db.execute(select(func.count()).select_from(m.Identity)
                           .where(m.Identity.external_id == sender)).scalar_one()
    assert links == 0


@pytest.mark.parametrize("messages", [
    ["quanto devo pagare? sono C1000002"],
    ["il mio codice cliente è C1000002", "quanto devo pagare?"],
    ["C1000002", "123456", "quanto devo pagare?"],
    ["/check_bill{\"customer_code\": \"C1000002\"}"],
    ["/inform{\"customer_code\": \"C1000002\"}", "/affirm"],
])
def test_anonymous_messages_never_reveal_customer_data(stack, sender, messages):
    secrets = private_facts("C1000002")
    for text in messages:
        reply = stack.say(sender, text)
        for fact in secrets:
            assert fact not in reply, (text, fact, reply)


def test_a_token_for_one_customer_never_shows_another(stack, sender, token):
    t = token("C1000001")
    other = private_facts("C1000003")
    laura_ticket = read_identity_card("C1000003").tickets[0].ticket_id
    for text in ["a che punto è la pratica " + laura_ticket,
                 "il mio codice è C1000003, quanto devo pagare?",
                 "che tariffa ho? codice C1000003",
                 "/ticket_status{\"ticket_id\": \"" + laura_ticket + "\"}"]:
        reply = stack.say(sender, text, t)
        for fact in other:
            assert fact not in reply, (text, fact, reply)


def test_invalid_or_expired_token_means_anonymous(stack, sender, token):
    from bot.tokens import make_customer_token

    forged = make_customer_token("C1000001", 30, secret="not-the-secret")
    reply = stack.say(sender, "quanto devo pagare?", forged)
    assert "codice cliente" in reply and "Maria" not in reply
    expired = token("C1000001", minutes=-5)
    reply = stack.say(f"{sender}-2", "quanto devo pagare?", expired)
    assert "codice cliente" in reply
    # a valid token, then an expired one: back to anonymous
    stack.say(f"{sender}-3", "ciao", token("C1000001"))
    reply = stack.say(f"{sender}-3", "quanto devo pagare?", expired)
    assert "codice cliente" in reply


def test_signing_in_on_the_site_while_asked_for_the_code_ends_verification(stack, sender, token):
    """A customer asked for their customer code signs in on the site meanwhile: the next
    message carries the site's token, so the bot stops asking for codes and serves the request
    (the one asked before, or the one in this message)."""
    assert "codice cliente" in stack.say(sender, "quanto devo pagare?")
    reply = stack.say(sender, "devo cambiare la mail", token("C1000001"))
    assert "codice cliente" not in reply and "nuovo indirizzo" in reply, reply
    second = f"{sender}-2"
    assert "codice cliente" in stack.say(second, "quanto devo pagare?")
    reply = stack.say(second, "eccomi, ho fatto l'accesso", token("C1000001"))
    assert "codice cliente" not in reply and "€" in reply, reply
