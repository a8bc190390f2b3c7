"""A local stand-in for the messaging platforms' cloud APIs, speaking their documented wire
format: Meta's Graph API (WhatsApp Cloud API `/{version}/{phone-number-id}/messages`), the
Telegram Bot API (`/bot{token}/{method}`), Messenger's Send API (`/{version}/me/messages`) and
Twilio's REST API
(`/2010-04-01/Accounts/{sid}/Messages.json`). It records every request (method, path,
headers, raw body) so tests can check exactly what the connectors sent."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    def data(self) -> dict:
        """The JSON object of the body, or {} for any other body (forms, empty)."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def form(self) -> dict:
        return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(self.body.decode()).items()}


class PlatformAPI:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with api.lock:
                    api.requests.append(Recorded("POST", self.path, dict(self.headers), body))
                status, answer = api.answer(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "PlatformAPI":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, body: bytes) -> tuple[int, dict]:
        n = next(self.ids)
        path = path.split("?", 1)[0]
        if re.fullmatch(r"/v[\d.]+/me/messages", path):  # Messenger Send API
            sent = json.loads(body)
            return 200, {"recipient_id": sent.get("recipient", {}).get("id"),
                         "message_id": f"m_mock{n}"}
        if re.fullmatch(r"/v[\d.]+/\w+/messages", path):  # WhatsApp Cloud API
            to = json.loads(body).get("to")
            return 200, {"messaging_product": "whatsapp",
                         "contacts": [{"input": to, "wa_id": to}],
                         "messages": [{"id": f"wamid.mock{n}"}]}
        match = re.fullmatch(r"/bot[^/]+/(\w+)", path)  # Telegram Bot API
        if match:
            sent = json.loads(body) if body else {}
            return 200, {"ok": True, "result": {
                "message_id": n, "date": int(time.time()), "text": sent.get("text", ""),
                "chat": {"id": sent.get("chat_id"), "type": "private"}}}
        match = re.fullmatch(r"/2010-04-01/Accounts/(\w+)/Messages\.json", path)  # Twilio
        if match:
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            return 201, {"sid": f"SM{n:032d}", "account_sid": match.group(1), "to": form.get("To"),
                         "from": form.get("From"), "body": form.get("Body"), "status": "queued"}
        return 404, {"error": {"message": f"unknown path {path}"}}

    def sent(self, predicate) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if predicate(r)]

    def wait_for(self, predicate, count: int = 1, timeout: float = 60) -> list[Recorded]:
        """The recorded requests matching `predicate`, once there are `count` of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.sent(predicate)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(f"expected {count} request(s), got {len(self.sent(predicate))}")
