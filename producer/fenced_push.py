"""The dispatcher's only write to the queues: fenced, atomic, in one Lua script.

Messages come serialised exactly as kombu would push them
(``producer/envelopes.py``), and one script checks that the lease still holds the dispatcher's
``<holder>|<token>``, skips jobs that are no longer queued or rendering
(paused or cancelled since the cycle read them), pushes the rest, records
their indexes as sent in the ledger, moves ``queued`` jobs to ``rendering``
and counts the dispatched audio seconds per tenant and priority. A replica
that lost its lease writes nothing at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from shared.errors import BrokerError
from shared.redis_keys import SCHED_DISPATCHED, SCHED_LEASE, job_key

#: KEYS: lease, dispatched, then meta/sent per job, then the queues.
#: ARGV: lease value, now, jobs, records, then one payload per message. Records is JSON:
#: ``{"fields": [stat field...], "m": [[queue#, job#, field#, seconds, head, [indexes...]]...]}``, one entry per
#: payload (head 1: next to be taken, RPUSH; 0: last, LPUSH). One JSON argument instead of seven or more per
#: message: redis-py packs every argument in Python, and that, not Redis, was the cost of a large push.
#: Returns the number of messages pushed, or -1 when the lease is not (or no longer) ours.
PUSH_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local now, njobs = ARGV[2], tonumber(ARGV[3])
local records = cjson.decode(ARGV[4])
local allowed = {}
for j = 1, njobs do
  local state = redis.call('HGET', KEYS[2 + 2 * j - 1], 'state')
  allowed[j] = (state == 'queued' or state == 'rendering')
end
local pushed, seconds = 0, {}
for m, r in ipairs(records['m']) do
  local q, j, f, s, head, indexes = r[1], r[2], r[3], r[4], r[5], r[6]
  if allowed[j] then
    if head == 1 then
      redis.call('RPUSH', KEYS[2 + 2 * njobs + q], ARGV[4 + m])
    else
      redis.call('LPUSH', KEYS[2 + 2 * njobs + q], ARGV[4 + m])
    end
    for first = 1, #indexes, 500 do  -- unpack takes a few thousand values at most
      local sent = {}
      for k = first, math.min(first + 499, #indexes) do
        sent[#sent + 1] = indexes[k]
        sent[#sent + 1] = now
      end
      redis.call('HSET', KEYS[2 + 2 * j], unpack(sent))
    end
    seconds[f] = (seconds[f] or 0) + s
    pushed = pushed + 1
  end
end
for f, s in pairs(seconds) do
  redis.call('HINCRBYFLOAT', KEYS[2], records['fields'][f], string.format('%.3f', s))
end
for j = 1, njobs do
  if allowed[j] and redis.call('HGET', KEYS[2 + 2 * j - 1], 'state') == 'queued' then
    redis.call('HSET', KEYS[2 + 2 * j - 1], 'state', 'rendering', 'updated_at', now)
  end
end
return pushed
"""

CHUNK = 1000
"""Messages per script call: a whole book in one call would hold Redis for a second."""


@dataclass(frozen=True)
class Outgoing:
    """One message ready to push."""

    job: str
    queue_key: str
    payload: str
    indexes: Sequence[int]
    stat_field: str
    seconds: float
    key: str = ""
    """Content key of the first segment (for the logs)."""
    head: bool = False
    """Put at the head of the queue (taken next): a new job's first segment, so its first audio comes soon."""


class FencedPush:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._script = client.register_script(PUSH_SCRIPT)

    def push(self, lease_value: str, outgoing: Sequence[Outgoing], now: float) -> int:
        """Push every message whose job may still be dispatched; -1 when fenced out.

        Large pushes go in chunks, each one atomic and fenced: a replica fenced out after some chunks has
        pushed those (and recorded them as sent) and nothing after.
        """
        pushed = 0
        for start in range(0, len(outgoing), CHUNK):
            count = self._push_chunk(lease_value, outgoing[start : start + CHUNK], now)
            if count < 0:
                return -1
            pushed += count
        return pushed

    def _push_chunk(self, lease_value: str, outgoing: Sequence[Outgoing], now: float) -> int:
        jobs: dict[str, int] = {}
        queues: dict[str, int] = {}
        fields: dict[str, int] = {}
        records: list[tuple[int, int, int, float, int, Sequence[int]]] = []
        for message in outgoing:
            j = jobs.setdefault(message.job, len(jobs) + 1)
            q = queues.setdefault(message.queue_key, len(queues) + 1)
            f = fields.setdefault(message.stat_field, len(fields) + 1)
            records.append((q, j, f, round(message.seconds, 3), 1 if message.head else 0, message.indexes))
        keys = [SCHED_LEASE, SCHED_DISPATCHED]
        for job in jobs:
            keys += [job_key(job, "meta"), job_key(job, "sent")]
        keys += list(queues)
        table = json.dumps({"fields": list(fields), "m": records}, separators=(",", ":"))
        args: list[str | int] = [lease_value, repr(now), len(jobs), table, *(m.payload for m in outgoing)]
        try:
            return int(self._script(keys=keys, args=args))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot dispatch: {exc}") from exc
