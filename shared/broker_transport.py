"""kombu's Redis transport, hardened against unreadable queue entries.

Anyone who can write to Redis can push bytes that are not a kombu message
into a queue list. Stock kombu pops the entry, fails to decode it and the
exception stops the worker's consumer: one LPUSH of garbage takes down every
worker on that queue. This transport moves such an entry to the dead-letter
list ``voxfarm.dead`` with the reason, and goes on consuming.

Only ``Channel._brpop_read`` is replaced (the path consumers take); it
mirrors kombu 5.5-5.7's method with the decode step guarded.
"""

from __future__ import annotations

import logging
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from shared.buckets import DEAD_LETTER_QUEUE
from shared.dead_letters import push_dead_letter

log = logging.getLogger(__name__)

_ENVELOPE_KEYS = ("body", "headers", "properties")


def readable_envelope(item: bytes | str) -> dict[str, Any] | None:
    """The decoded kombu envelope, or None when the entry is not one."""
    try:
        message = loads(bytes_to_str(item))
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    if not isinstance(message, dict) or not all(key in message for key in _ENVELOPE_KEYS):
        return None
    properties = message["properties"]
    if not isinstance(properties, dict) or not isinstance(message["headers"], dict):
        return None
    if "delivery_tag" not in properties or not isinstance(properties.get("delivery_info", {}), dict):
        return None
    return message


class Channel(kombu_redis.Channel):
    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            message = readable_envelope(item)
            if message is None:
                self._dead_letter(dest, item)
                raise Empty()
            self.connection._deliver(message, dest)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _dead_letter(self, queue: str, item: bytes | str) -> None:
        raw = item if isinstance(item, str) else item.decode("utf-8", "replace")
        log.error("moved an unreadable message from %s to %s", queue, DEAD_LETTER_QUEUE)
        try:
            with self.conn_or_acquire() as client:
                push_dead_letter(
                    client,
                    reason=f"unreadable broker message on {queue}: not a kombu JSON envelope",
                    segment=raw,
                    attempts=0,
                    worker="broker-transport",
                )
        except Exception:
            log.exception("could not dead-letter an unreadable message")


class Transport(kombu_redis.Transport):
    Channel = Channel
