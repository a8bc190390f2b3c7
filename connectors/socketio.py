"""The socket.io channel of the web widget, able to push across Rasa processes.

Rasa's own `socketio` channel builds its `AsyncServer` with the default in-process client
manager: a message sent by one Rasa process (an agent's reply through the HTTP API, with
`output_channel=latest`) reaches only the browsers connected to that same process. This channel
keeps Rasa's events (`session_request` / `session_confirm`, `user_uttered` / `bot_uttered`),
session persistence (each browser joins the room named after its session id, which is the
conversation id) and metadata (`customData`), and uses python-socketio's `AsyncRedisManager`
when `SOCKETIO_REDIS_URL` is set (the production profile sets it): every emit goes through
Redis and is delivered by whichever process holds the browser's connection.

Incoming text is normalised by `connectors.text.normalise`, as on every channel; a sender over
the rate limit (`bot.ratelimit`) is dropped, and socket.io packets are limited to
`MAX_REQUEST_BYTES`.

Note: Rasa 3.6 and this channel call `sio.enter_room` without `await`; it is synchronous in
python-socketio 5.9 (pinned), a coroutine from 5.10 on.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Awaitable, Callable, Dict, Optional, Text

import socketio
from rasa.core.channels.channel import UserMessage, decode_bearer_token
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request

from bot.ratelimit import allowed
from bot.settings import get_settings
from connectors.text import normalise

logger = logging.getLogger(__name__)


def client_manager(redis_url: str | None, channel: str) -> Optional[socketio.AsyncManager]:
    """A Redis manager when a URL is configured; None means python-socketio's in-process one.

    Every Rasa process of one site must use the same pub/sub `channel`
    (`SOCKETIO_REDIS_CHANNEL`); Redis pub/sub ignores the database number."""
    if not redis_url:
        return None
    return socketio.AsyncRedisManager(redis_url, channel=channel)


class RedisSocketIOInput(SocketIOInput):
    """Rasa's socket.io channel with an optional Redis client manager."""

    @classmethod
    def name(cls) -> Text:
        return "socketio"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        settings = get_settings()
        redis_url = settings.socketio_redis_url
        # cors_allowed_origins=[]: python-socketio leaves CORS to Sanic (Rasa's --cors).
        sio = socketio.AsyncServer(async_mode="sanic", cors_allowed_origins=[],
                                   max_http_buffer_size=settings.max_request_bytes,
                                   client_manager=client_manager(
                                       redis_url, settings.socketio_redis_channel))
        bp = SocketBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)
        self.sio = sio  # used by get_output_channel (agent replies, output_channel=latest)
        logger.info("socket.io client manager: %s",
                    "Redis" if redis_url else "in process")

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> response.HTTPResponse:
            return response.json({"status": "ok"})

        @sio.on("connect", namespace=self.namespace)
        async def connect(sid: Text, environ: Dict, auth: Optional[Dict]) -> bool:
            if not self.jwt_key:
                return True
            token = auth.get("token") if isinstance(auth, dict) else None
            return bool(token and decode_bearer_token(token, self.jwt_key, self.jwt_algorithm))

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: Text, data: Optional[Dict]) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id")
            if not isinstance(session_id, str) or not session_id or len(session_id) > 128:
                session_id = uuid.uuid4().hex
            if self.session_persistence:
                sio.enter_room(sid, session_id, namespace=self.namespace)  # sync in 5.9
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: Text, data: Dict) -> None:
            data = data if isinstance(data, dict) else {}
            if self.session_persistence:
                sender_id = data.get("session_id")
                if not isinstance(sender_id, str) or not sender_id:
                    logger.warning("socket.io message without a session_id ignored")
                    return
            else:
                sender_id = sid
            if not await allowed(self.name(), sender_id):  # a flood is dropped (and logged)
                return
            metadata = data.get(self.metadata_key) or {}
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except ValueError:
                    metadata = {}
            metadata = dict(metadata) if isinstance(metadata, dict) else {}
            text, flags = normalise(data.get("message"))
            metadata.update(flags)
            output = SocketIOOutput(sio, self.bot_message_evt)
            await on_new_message(UserMessage(text, output, sender_id,
                                             input_channel=self.name(), metadata=metadata))

        return bp
