"""The production lock store: Rasa's Redis ticket lock, each change of a lock one atomic step.

Rasa's `RedisLockStore` changes a conversation's lock by reading it, changing it in the Rasa
server's memory and writing it back: seven round trips to Redis a turn (a ticket: read, write;
the turn: read; the end of the turn: read, write, read, delete), each blocking the server's
event loop, and two Rasa servers taking a ticket for the same conversation at the same moment
can both read the lock before either writes it, so one ticket is lost and both handle the
conversation at once. Here taking a ticket, giving it back (deleting the lock when nobody else
holds one) and dropping expired tickets are each one Lua script that Redis runs atomically:
three round trips a turn, and no lost ticket whatever the number of replicas.

The lock keeps Rasa's key (`<prefix>:lock:<conversation id>`) and value (`TicketLock.dumps`),
and tickets expire on the reading process's clock as in Rasa: a server running Rasa's own
store, a test or an operator reading the key all see the same lock. Configured in
endpoints.production.yml (`type: bot.lock_store.AtomicRedisLockStore`).
"""

from __future__ import annotations

import time
from typing import Any, Optional, Text

from rasa.core.lock import NO_TICKET_ISSUED
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
  else
    redis.call('SET', KEYS[1], cjson.encode({conversation_id = ARGV[1], tickets = kept}))
  end
end
"""

# ARGV[3]: the ticket's lifetime; ARGV[4]: the number when no ticket is left. The new number.
ISSUE = _KEEP + """
local now = tonumber(ARGV[2])
local kept = alive(redis.call('GET', KEYS[1]), now, nil)
local number = tonumber(ARGV[4]) + 1
if #kept > 0 then
  number = cjson.decode(kept[#kept])['number'] + 1
end
table.insert(kept, cjson.encode({number = number, expires = now + tonumber(ARGV[3])}))
save(kept)
return number
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

    def _key(self, conversation_id: Text) -> str:
        return self.key_prefix + conversation_id

    def issue_ticket(self, conversation_id: Text,
                     lock_lifetime: float = LOCK_LIFETIME) -> int:
        """A ticket behind every ticket still valid (number 0 when there is none)."""
        try:
            return int(self._issue(keys=[self._key(conversation_id)],
                                   args=[conversation_id, repr(time.time()),
                                         repr(float(lock_lifetime)), NO_TICKET_ISSUED]))
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
