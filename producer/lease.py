"""The dispatcher lease: one control replica dispatches at a time, fenced.

Acquiring the lease hands out a fencing token (a counter that only grows
while Redis keeps it). The lease value is ``<holder>|<token>``; every
dispatch write checks, inside the same Lua script that pushes the messages,
that the lease still holds exactly that value. A replica that was
partitioned away, paused or slow past its TTL therefore writes nothing,
even if it still believes it holds the lease. If Redis loses its data the
lease key goes with it, so the old value cannot match again.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field

import redis

from shared.redis_keys import SCHED_FENCE, SCHED_LEASE

#: KEYS: lease, fence. ARGV: holder, ttl_ms, current value ('' if none).
#: Returns the lease value now held by ``holder``, or '' when another holder has it.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current and current == ARGV[3] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return current
end
if current then return '' end
local token = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. '|' .. token
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""

#: KEYS: lease. ARGV: value. Deletes the lease only if it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class Lease:
    client: redis.Redis
    ttl_s: float
    holder: str = field(default_factory=lambda: f"control-{uuid.uuid4().hex[:12]}")
    value: str = ""
    """``<holder>|<token>`` while held, '' otherwise."""

    def __post_init__(self) -> None:
        self._acquire = self.client.register_script(_ACQUIRE)
        self._release = self.client.register_script(_RELEASE)

    @property
    def held(self) -> bool:
        return bool(self.value)

    @property
    def token(self) -> int:
        return int(self.value.rsplit("|", 1)[1]) if self.value else 0

    def renew(self) -> bool:
        """Take the lease if it is free, extend it if it is ours; False when another replica holds it."""
        raw = self._acquire(keys=[SCHED_LEASE, SCHED_FENCE], args=[self.holder, int(self.ttl_s * 1000), self.value])
        self.value = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        return self.held

    def release(self) -> None:
        if self.value:
            with contextlib.suppress(redis.RedisError):  # it expires on its own
                self._release(keys=[SCHED_LEASE], args=[self.value])
        self.value = ""

    def current_holder(self) -> str:
        raw = self.client.get(SCHED_LEASE)
        text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        return text.rsplit("|", 1)[0]
