"""The dead-letter queue ``voxfarm.dead``: segments given up on, with the reason.

Entries are plain JSON documents on a Redis list, readable with LRANGE and
by ``voxfarm status``; the segment body is kept so it can be re-enqueued.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from shared.buckets import DEAD_LETTER_QUEUE

MAX_ENTRIES = 100_000


def push_dead_letter(client: redis.Redis, *, reason: str, segment: Any, attempts: int, worker: str) -> None:
    """Record a segment that will not be retried; the list is capped so hostile input cannot fill Redis."""
    if isinstance(segment, dict):
        body: Any = segment
    else:
        text = segment if isinstance(segment, str) else repr(segment)
        body = {"unparsed": text[:2000]}
    entry = {"reason": reason[:1000], "attempts": attempts, "worker": worker, "at": time.time(), "segment": body}
    encoded = json.dumps(entry, default=str)[: 256 * 1024]
    pipe = client.pipeline()
    pipe.lpush(DEAD_LETTER_QUEUE, encoded)
    pipe.ltrim(DEAD_LETTER_QUEUE, 0, MAX_ENTRIES - 1)
    pipe.execute()


def list_dead_letters(client: redis.Redis, limit: int = 100) -> list[dict[str, Any]]:
    entries = []
    for raw in client.lrange(DEAD_LETTER_QUEUE, 0, limit - 1):
        try:
            entries.append(json.loads(raw))
        except ValueError:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            entries.append({"reason": "unreadable entry", "raw": text[:200]})
    return entries
