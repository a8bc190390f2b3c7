"""The production lock store: Rasa's Redis ticket lock, each change of a lock one atomic step.

Rasa's `RedisLockStore` changes a conversation's lock by reading it, changing it in the Rasa
server's memory and writing it back: seven round trips to Redis a turn (a ticket: read, write;
the turn: read; the end of the turn: read, write, read, delete), each blocking the server's
event loop, and two Rasa servers taking a ticket for the same conversation at the same moment
can both read the lock before either writes it, so one ticket is lost and both handle the
conversation at once. Here taking a ticket, giving it back (deleting the lock when nobody else
holds one) and dropping expired tickets are each one Lua script that Redis runs atomically, and
taking a ticket also answers with the lock it leaves: a turn nobody is ahead of costs two round
trips, no lost ticket whatever the number of replicas. A turn's lock (`lock`) talks to Redis
through redis-py's asyncio client, so the event loop serves other customers meanwhile.

The lock keeps Rasa's key (`<prefix>:lock:<conversation id>`) and value (`TicketLock.dumps`),
and tickets expire on the reading process's clock as in Rasa: a server running Rasa's own
store, a test or an operator reading the key all see the same lock. Configured in
endpoints.production.yml (`type: bot.lock_store.AtomicRedisLockStore`).
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Optional, Text

from rasa.core.lock import NO_TICKET_ISSUED, TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

# Both scripts keep the tickets that have not expired (a ticket is kept as the JSON text Rasa
# writes for it); KEYS[1] is the lock's key, ARGV[1] the conversation id, ARGV[2] the time now.
_KEEP = """
local function alive(raw, now, drop)
  local kept = {}
  if raw then
    for _, text in ipairs(cjson.decode(raw)['tickets'] or {}) do
      local ticket = cjson.decode(text)
      if not (now > ticket['expires']) and ticket['number'] ~= drop then
        table.insert(kept, text)
      end
    end
  end
  return kept
end
local function save(kept)
  if #kept == 0 then
    redis.call('DEL', KEYS[1])
    return false
  end
  local raw = cjson.encode({conversation_id = ARGV[1], tickets = kept})
  redis.call('SET', KEYS[1], raw)
  return raw
end
"""

# ARGV[3]: the ticket's lifetime; ARGV[4]: the number when no ticket is left. The new number
# and the lock as it is now stored.
ISSUE = _KEEP + """
local now = tonumber(ARGV[2])
local kept = alive(redis.call('GET', KEYS[1]), now, nil)
local number = tonumber(ARGV[4]) + 1
if #kept > 0 then
  number = cjson.decode(kept[#kept])['number'] + 1
end
table.insert(kept, cjson.encode({number = number, expires = now + tonumber(ARGV[3])}))
return {number, save(kept)}
"""

# ARGV[3]: the ticket given back (none: only the expired tickets go). The lock is deleted when
# no ticket is left, as Rasa's `cleanup` does when nobody is waiting.
RELEASE = _KEEP + """
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 0
end
save(alive(raw, tonumber(ARGV[2]), tonumber(ARGV[3])))
return 1
"""


class AtomicRedisLockStore(RedisLockStore):
    """Rasa's `RedisLockStore`, with the changes of a lock made by Redis in one step each."""

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **kwargs: Any) -> None:
        """Built by Rasa from endpoints.yml (a custom store gets the endpoint's configuration),
        or with `RedisLockStore`'s own arguments."""
        if endpoint_config is not None:
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs}
        super().__init__(**kwargs)
        self._issue = self.red.register_script(ISSUE)
        self._release = self.red.register_script(RELEASE)
        self._asyncio_settings = _asyncio_settings(self.red)
        self._aio: tuple[Any, ...] | None = None

    def _key(self, conversation_id: Text) -> str:
        return self.key_prefix + conversation_id

    def issue_ticket(self, conversation_id: Text,
                     lock_lifetime: float = LOCK_LIFETIME) -> int:
        """A ticket behind every ticket still valid (number 0 when there is none)."""
        try:
            return int(self._issue(keys=[self._key(conversation_id)],
                                   args=[conversation_id, repr(time.time()),
                                         repr(float(lock_lifetime)), NO_TICKET_ISSUED])[0])
        except Exception as e:  # as Rasa's: the caller knows a LockError
            raise LockError(f"Error while acquiring lock. Error:\n{e}")

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        """Give the ticket back; the lock goes when no valid ticket is left in it."""
        self._release(keys=[self._key(conversation_id)],
                      args=[conversation_id, repr(time.time()), int(ticket_number)])

    def update_lock(self, conversation_id: Text) -> None:
        """Drop the expired tickets (while a turn waits for the ones before it)."""
        self._release(keys=[self._key(conversation_id)],
                      args=[conversation_id, repr(time.time()), ""])

    def _asyncio_client(self) -> tuple[Any, Any, Any]:
        """The asyncio client of the running event loop (its connections belong to that loop),
        with the same connection settings as Rasa's client, and the two scripts on it."""
        from redis import asyncio as aioredis

        loop = asyncio.get_running_loop()
        kept = self._aio
        if kept is None or kept[0] is not loop:
            client = aioredis.Redis(client_name=CLIENT_NAME, **self._asyncio_settings)
            # a pooled connection that Redis closed (a restart) is replaced when it is lent,
            # as redis-py's blocking client does (see `_ClosedAwareParser`)
            client.connection_pool.connection_kwargs["parser_class"] = _ClosedAwareParser
            kept = self._aio = (loop, client, client.register_script(ISSUE),
                                client.register_script(RELEASE))
        return kept[1], kept[2], kept[3]

    @asynccontextmanager
    async def lock(self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME,
                   wait_time_in_seconds: float = 1) -> AsyncIterator[TicketLock]:
        """Rasa's `LockStore.lock` (a ticket, a wait for its turn, the ticket given back at the
        end), without blocking the event loop, and without reading the lock again when taking
        the ticket showed that nobody is ahead."""
        client, issue, release = self._asyncio_client()
        key = self._key(conversation_id)
        # shielded: a turn cancelled while Redis issues its ticket (Sanic cancels the request of
        # a customer who went away) gives the ticket back once it is known
        issuing = asyncio.ensure_future(issue(keys=[key], args=[
            conversation_id, repr(time.time()), repr(float(lock_lifetime)), NO_TICKET_ISSUED]))
        try:
            number, raw = await asyncio.shield(issuing)
        except asyncio.CancelledError:
            issuing.add_done_callback(
                lambda done: _give_back(done, release, key, conversation_id))
            raise
        except Exception as e:  # as Rasa's: the caller knows a LockError
            raise LockError(f"Error while acquiring lock. Error:\n{e}")
        ticket = int(number)
        try:
            lock = TicketLock.from_dict(json.loads(raw))
            while lock.is_locked(ticket):
                await asyncio.sleep(wait_time_in_seconds)
                await release(keys=[key], args=[conversation_id, repr(time.time()), ""])
                raw = await client.get(key)
                if not raw:  # expired meanwhile, as in Rasa's `_acquire_lock`
                    raise LockError(f"Could not acquire lock for conversation_id "
                                    f"'{conversation_id}'.")
                lock = TicketLock.from_dict(json.loads(raw))
            yield lock
        finally:
            # to the end even when the turn is cancelled: a ticket left behind would hold the
            # conversation's next turns until it expires
            await asyncio.shield(release(keys=[key], args=[conversation_id, repr(time.time()),
                                                           ticket]))


CLIENT_NAME = "sportello-lock-store"  # as Redis's CLIENT LIST shows the asyncio connections


def _closed_aware_parser() -> type:
    from redis.asyncio.connection import PythonParser
    from redis.exceptions import ConnectionError as RedisConnectionError

    class ClosedAwareParser(PythonParser):
        """redis-py 4.6's asyncio `PythonParser` answers "nothing to read" for a connection the
        server has closed (the end of the stream reads as an empty byte string), so the pool
        lends it, and the next turn fails with "Connection closed by server" although Redis is
        back. Here the end of the stream is a `ConnectionError`, on which the pool reconnects
        before lending the connection (`ConnectionPool.get_connection`)."""

        async def can_read_destructive(self) -> bool:
            closed = RedisConnectionError("Connection closed by server.")
            if self._stream is not None and self._stream.at_eof() and not self._buffer:
                raise closed
            readable = await super().can_read_destructive()
            if readable == b"":  # its read(1) met the end of the stream
                raise closed
            return readable

    return ClosedAwareParser


_ClosedAwareParser = _closed_aware_parser()


# The settings of Rasa's client that redis-py's asyncio client knows too.
_ASYNCIO_SSL = ("ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_data",
                "ssl_check_hostname")


def _asyncio_settings(red: Any) -> dict[str, Any]:
    """The asyncio client's settings from Rasa's client; a setting only the blocking client
    knows (an encrypted key, a CA folder, OCSP) is refused when the store is made, not at the
    first turn."""
    import redis

    pool = red.connection_pool
    given = pool.connection_kwargs
    ssl = issubclass(pool.connection_class, redis.SSLConnection)
    unknown = sorted(k for k, v in given.items() if k.startswith("ssl_")
                     and k not in _ASYNCIO_SSL and v)
    if ssl and unknown:
        raise ValueError(f"the lock store's Redis settings {unknown} are not supported")
    settings = {k: given[k] for k in ("host", "port", "db", "username", "password",
                                      "socket_timeout") if k in given}
    if ssl:
        settings.update({k: given[k] for k in _ASYNCIO_SSL if k in given}, ssl=True)
    return settings


def _give_back(issued: "asyncio.Future[Any]", release: Any, key: str,
               conversation_id: str) -> None:
    """The ticket a cancelled turn was issued, given back as soon as its number is known."""
    if issued.cancelled() or issued.exception() is not None:
        return  # no ticket was stored, or the error is Redis's and the ticket expires
    task = asyncio.ensure_future(release(keys=[key], args=[
        conversation_id, repr(time.time()), int(issued.result()[0])]))
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
