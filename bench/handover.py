"""Handover latency under N simultaneous handovers: customer → agent screen (the desk's
WebSocket push) and agent → customer (socket.io delivery), end to end on the real stack.

N customers on the socket.io channel ask for a person at the same time; N agents, each signed in
to the desk with its WebSocket open, claim one conversation each; then every pair exchanges
messages both ways and each message is timed from send to receipt."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import socketio
import websockets

from bench.common import ROOT, bench_env, percentiles, settings_of, stack
from bot.launcher import Ports, free_port

MESSAGES_EACH_WAY = 5


async def _login(client: httpx.AsyncClient, desk: str, username: str, password: str) -> dict:
    page = await client.get(f"{desk}/login")
    cookie = re.search(r"desk_login_csrf=([^;]+)", page.headers["set-cookie"]).group(1)
    form = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = await client.post(f"{desk}/login", headers={"Cookie": f"desk_login_csrf={cookie}"},
                          data={"username": username, "password": password, "csrf_token": form})
    session = re.search(r"desk_session=([^;]+)", r.headers["set-cookie"]).group(1)
    headers = {"Cookie": f"desk_session={session}"}
    page = await client.get(f"{desk}/desk", headers=headers)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    return {**headers, "X-CSRF-Token": csrf}


async def _pair(i: int, rasa: str, desk: str, password: str, start: asyncio.Event,
                to_agent: list, to_customer: list) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        headers = await _login(client, desk, f"bench{i}", password)
        await client.post(f"{desk}/api/presence", json={"presence": "online"}, headers=headers)
        host = desk.split("://", 1)[1]
        ws = await websockets.connect(f"ws://{host}/ws", extra_headers={
            "Cookie": headers["Cookie"], "Origin": desk})
        received_by_agent: dict[str, float] = {}

        async def agent_reader():
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("type") == "message" and msg.get("who") == "customer":
                    received_by_agent[msg["text"]] = time.perf_counter()

        reader = asyncio.create_task(agent_reader())
        sio = socketio.AsyncClient()
        received_by_customer: dict[str, float] = {}
        session = asyncio.get_running_loop().create_future()

        @sio.on("session_confirm")
        async def confirmed(data):
            if not session.done():
                session.set_result(data if isinstance(data, str) else data["session_id"])

        @sio.on("bot_uttered")
        async def bot(data):
            received_by_customer[data.get("text", "")] = time.perf_counter()

        await sio.connect(rasa, socketio_path="/socket.io", transports=["websocket"])
        await sio.emit("session_request", {"session_id": uuid.uuid4().hex})
        sid = await asyncio.wait_for(session, 30)  # the server-issued session
        conversation = sid.split(".")[0]  # its conversation id, as the desk shows it
        await start.wait()  # every customer asks at the same moment
        await sio.emit("user_uttered", {"message": "voglio parlare con un operatore",
                                        "session_id": sid})
        handover = None
        for _ in range(300):
            mine = (await client.get(f"{desk}/api/queue", headers=headers)).json()
            waiting = [h for h in mine["queue"] if h["conversation_id"] == conversation]
            if waiting:
                handover = waiting[0]["id"]
                break
            await asyncio.sleep(0.2)
        assert handover, "the handover never reached the queue"
        r = await client.post(f"{desk}/api/handovers/{handover}/claim", headers=headers)
        assert r.status_code == 200, r.text
        for k in range(MESSAGES_EACH_WAY):
            text = f"cliente {i}-{k}"
            sent = time.perf_counter()
            await sio.emit("user_uttered", {"message": text, "session_id": sid})
            while text not in received_by_agent:
                await asyncio.sleep(0.005)
            to_agent.append(received_by_agent[text] - sent)
            reply = f"operatore {i}-{k}"
            sent = time.perf_counter()
            r = await client.post(f"{desk}/api/handovers/{handover}/messages",
                                  json={"text": reply}, headers=headers)
            assert r.status_code == 200, r.text
            while reply not in received_by_customer:
                await asyncio.sleep(0.005)
            to_customer.append(received_by_customer[reply] - sent)
        await client.post(f"{desk}/api/handovers/{handover}/close", headers=headers)
        reader.cancel()
        await ws.close()
        await sio.disconnect()


async def _run(n: int, rasa: str, desk: str, password: str) -> dict:
    start = asyncio.Event()
    to_agent: list[float] = []
    to_customer: list[float] = []
    tasks = [asyncio.create_task(_pair(i, rasa, desk, password, start, to_agent, to_customer))
             for i in range(n)]
    await asyncio.sleep(3)  # everyone connected and signed in
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    return {"handovers": n, "seconds": round(time.perf_counter() - t0, 1),
            "customer_to_agent": percentiles(to_agent),
            "agent_to_customer": percentiles(to_customer)}


def bench_handover() -> dict:
    """One handover alone, then 20 at once, each on a fresh stack."""
    return {"runs": [bench_handovers(1), bench_handovers(20)]}


def bench_handovers(n: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="sportello-handover-"))
    var = work / "var"
    var.mkdir()
    ports = Ports(rasa=17005, actions=17055, desk=17006, site=free_port())
    env = bench_env(var, ports, DESK_HOURS="mon-sun 00:00-24:00", AGENT_MAX_CHATS="1")
    password = "bench-agent-password"
    subprocess.run([sys.executable, "-m", "bot", "seed-demo"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    for i in range(n):
        subprocess.run([sys.executable, "-m", "bot", "add-user", f"bench{i}", "--role", "agent",
                        "--skills", "billing,technical,commercial", "--languages", "it,en"],
                       cwd=ROOT, env={**env, "DESK_NEW_PASSWORD": password}, check=True,
                       capture_output=True)
    with settings_of(env), stack(env, ports, ("actions", "rasa", "desk"), work):
        return asyncio.run(_run(n, ports.url("rasa"), ports.url("desk"), password))


def bench_frustration() -> dict:
    import yaml

    from bot.handover.frustration import detect

    results = {}
    for name in ("frustration", "frustration_dev", "frustration_holdout"):
        data = yaml.safe_load((ROOT / "tests" / "data" / f"{name}.yml").read_text())
        tp = sum(detect(t).frustrated for t in data["frustrated"])
        fp = sum(detect(t).frustrated for t in data["not_frustrated"])
        fn = len(data["frustrated"]) - tp
        results[name] = {"messages": len(data["frustrated"]) + len(data["not_frustrated"]),
                         "frustrated": len(data["frustrated"]),
                         "precision": round(tp / max(tp + fp, 1), 3),
                         "recall": round(tp / max(tp + fn, 1), 3)}
    return results
