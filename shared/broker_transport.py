"""kombu's Redis transport, hardened against unreadable queue entries.

Anyone who can write to Redis can push bytes that are not a kombu message
into a queue list. Stock kombu pops the entry, fails to decode it and the
exception stops the worker's consumer: one LPUSH of garbage takes down every
worker on that queue. This transport moves such an entry to the dead-letter
list ``voxfarm.dead`` with the reason, and goes on consuming.

An entry is read only if it is a kombu envelope whose body decodes and
whose Celery headers have the types Celery parses without checking
(``readable_envelope``); anything that still fails while it is delivered is
acknowledged and dead-lettered the same way, so no entry can stop a
consumer, and none can come back to stop the next one.

Only ``Channel._brpop_read`` is replaced (the path consumers take); it
mirrors kombu 5.5-5.7's method with the decode and delivery steps guarded.
"""

from __future__ import annotations

import base64
import binascii
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
    """The decoded kombu envelope, or None when the entry is not one Celery can take apart."""
    try:
        message = loads(bytes_to_str(item))
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    if not isinstance(message, dict) or not all(key in message for key in _ENVELOPE_KEYS):
        return None
    properties, headers = message["properties"], message["headers"]
    if not isinstance(properties, dict) or not isinstance(headers, dict):
        return None
    if not isinstance(properties.get("delivery_tag"), str) or not isinstance(properties.get("delivery_info", {}), dict):
        return None
    if not _body_decodes(message["body"], properties.get("body_encoding")) or not _celery_headers(headers):
        return None
    return message


def _body_decodes(body: Any, encoding: Any) -> bool:
    if encoding is None:
        return isinstance(body, str)
    if encoding != "base64" or not isinstance(body, str):
        return False
    try:
        base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _celery_headers(headers: dict[str, Any]) -> bool:
    """The header fields Celery's worker reads with no check of their type (a task message's, when present)."""
    if "task" not in headers:
        return True  # not a Celery task message: kombu's own consumers read it
    if not isinstance(headers["task"], str) or not isinstance(headers.get("id"), str):
        return False
    if not isinstance(headers.get("retries", 0), int) or isinstance(headers.get("retries"), bool):
        return False
    timelimit = headers.get("timelimit")
    if timelimit is not None and not (
        isinstance(timelimit, list | tuple)
        and len(timelimit) == 2
        and all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in timelimit)
    ):
        return False
    if not all(headers.get(name) is None or isinstance(headers[name], str) for name in ("eta", "expires")):
        return False
    return (headers.get("stamped_headers") is None or isinstance(headers["stamped_headers"], list)) and (
        headers.get("stamps") is None or isinstance(headers["stamps"], dict)
    )


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
                self._dead_letter(dest, item, "not a kombu JSON envelope with a readable body and Celery headers")
                raise Empty()
            try:
                self.connection._deliver(message, dest)
            except Exception as exc:  # noqa: BLE001 - whatever the entry is, it must not stop the consumer
                # Acknowledged, so that it does not come back to stop the next consumer too.
                self.qos.ack(message["properties"]["delivery_tag"])
                self._dead_letter(dest, item, f"delivery failed: {type(exc).__name__}: {exc}")
                raise Empty() from None
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _dead_letter(self, queue: str, item: bytes | str, why: str) -> None:
        raw = item if isinstance(item, str) else item.decode("utf-8", "replace")
        log.error("moved an unreadable message from %s to %s: %s", queue, DEAD_LETTER_QUEUE, why)
        try:
            with self.conn_or_acquire() as client:
                push_dead_letter(
                    client,
                    reason=f"unreadable broker message on {queue}: {why}",
                    segment=raw,
                    attempts=0,
                    worker="broker-transport",
                )
        except Exception:
            log.exception("could not dead-letter an unreadable message")


class Transport(kombu_redis.Transport):
    Channel = Channel
