"""Put back the messages a dead local process held, without waiting for the visibility timeout.

kombu's Redis transport keeps every delivered, unacknowledged message in one
hash and restores an entry only when it is older than the visibility timeout
(an hour by default), because on a shared broker it cannot tell a slow
consumer from a dead one. The embedded farm can: it owns its Redis and
every consumer of it, so when one of its processes dies it puts back the
unacknowledged messages of the queues that process consumed, through
kombu's own restore (the entry leaves the hash and returns to the head of
its queue in one transaction; an entry acknowledged meanwhile is skipped).
"""

from __future__ import annotations

import json

from shared.buckets import CONTROL_QUEUE
from shared.celery_app import create_app
from shared.settings import load_settings


def requeue_held(redis_url: str, *, control: bool) -> int:
    """Queue again every unacknowledged message of the control queue (``control``) or of the segment queues."""
    app = create_app(load_settings(redis_url=redis_url))
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        held = channel.client.hgetall(channel.unacked_key)
        put_back = 0
        for tag, entry in held.items():
            _message, _exchange, routing_key = json.loads(entry)
            if (routing_key == CONTROL_QUEUE) == control:
                channel.qos.restore_by_tag(tag)
                put_back += 1
        return put_back
