"""Rasa calls the action server without the domain (`enable_selective_domain`): the action server
gives every action the running model's domain, read once from `domain/`."""

from __future__ import annotations

import json

import httpx

from bot.action_server import model_domain
from tests.stack import RASA_TOKEN


def rasa_domain(stack) -> dict:
    return httpx.get(f"{stack.rasa_url}/domain", params={"token": RASA_TOKEN}, timeout=30,
                     headers={"Accept": "application/json"}).json()


def test_the_action_servers_domain_is_the_running_models(stack):
    assert json.loads(json.dumps(model_domain())) == rasa_domain(stack)


def test_an_action_called_without_the_domain_answers_as_with_it(stack, sender):
    stack.say(sender, "ciao")
    call = {"next_action": "action_greet", "sender_id": sender, "tracker": stack.tracker(sender),
            "version": "3.6.21"}
    headers = {"Authorization": f"Bearer {stack.env['ACTION_SERVER_TOKEN']}"}
    url = stack.env["ACTION_SERVER_URL"]
    without = httpx.post(url, json=call, headers=headers, timeout=30)
    with_it = httpx.post(url, json={**call, "domain": rasa_domain(stack)}, headers=headers,
                         timeout=30)
    assert without.status_code == with_it.status_code == 200, without.text
    assert without.json()["responses"] and without.json() == with_it.json()
