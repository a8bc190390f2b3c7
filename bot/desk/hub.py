"""The desk's open WebSockets (`/ws`), per signed-in user, and what is pushed to them: queue
changes to everybody, a customer's messages and a conversation taken away to its agent.

Each desk process has its own hub and pushes to the browsers connected to it; what every desk
must see (the queue) they each read from the database (`bot.desk.live`)."""

from __future__ import annotations

import json
from typing import Any


class Hub:
    """Open WebSockets per desk user, and what is pushed to them."""

    def __init__(self) -> None:
        self.sockets: dict[int, set] = {}

    def add(self, user_id: int, ws: Any) -> None:
        self.sockets.setdefault(user_id, set()).add(ws)

    def remove(self, user_id: int, ws: Any) -> bool:
        """True when that was the user's last open page."""
        self.sockets.get(user_id, set()).discard(ws)
        return not self.sockets.get(user_id)

    async def send(self, user_id: int, message: dict) -> None:
        data = json.dumps(message, default=str)
        for ws in list(self.sockets.get(user_id, ())):
            try:
                await ws.send(data)
            except Exception:  # a closed page; its handler removes it
                pass

    async def broadcast(self, message: dict) -> None:
        for user_id in list(self.sockets):
            await self.send(user_id, message)
