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

Sessions are issued by the server (`bot.web_session`): a browser that sends a session the
server did not sign gets a new one, and the conversation id (the room, the tracker's sender id)
is the unsigned part, so knowing a conversation id does not let a client join it or write in
it. The customer token in `customData` is replaced by the customer it proves
(`connectors.identity`).

Note: Rasa 3.6 and this channel call `sio.enter_room` without `await`; it is synchronous in
python-socketio 5.9 (pinned), a coroutine from 5.10 on.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text

import socketio
from rasa.core.channels.channel import UserMessage, decode_bearer_token
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request

from bot import web_session
from bot.ratelimit import allowed
from bot.settings import get_settings
from connectors.identity import identify
from connectors.outage import guarded
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
            conversation_id = web_session.conversation_of(session_id)
            if conversation_id is None:  # new, or not one this server issued
                session_id = web_session.issue()
                conversation_id = web_session.conversation_of(session_id)
            sio.enter_room(sid, conversation_id, namespace=self.namespace)  # sync in 5.9
            await sio.save_session(sid, {"conversation_id": conversation_id},
                                   namespace=self.namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: Text, data: Dict) -> None:
            data = data if isinstance(data, dict) else {}
            # The conversation of this connection's confirmed session; a message naming
            # another session is refused.
            session = await sio.get_session(sid, namespace=self.namespace)
            sender_id = session.get("conversation_id") if isinstance(session, dict) else None
            if sender_id is None or web_session.conversation_of(
                    data.get("session_id")) != sender_id:
                logger.warning("socket.io message without this connection's session ignored")
                await sio.emit("session_error", {"error": "request a session first"},
                               room=sid, namespace=self.namespace)
                return
            if not await allowed(self.name(), sender_id):  # a flood is dropped (and logged)
                return
            metadata = data.get(self.metadata_key) or {}
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except ValueError:
                    metadata = {}
            metadata = identify(metadata)
            text, flags = normalise(data.get("message"))
            metadata.update(flags)
            output = SocketIOOutput(sio, self.bot_message_evt)
            await guarded(on_new_message)(UserMessage(text, output, sender_id,
                                             input_channel=self.name(), metadata=metadata))

        return bp
