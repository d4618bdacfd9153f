"""Synthesis messages exactly as kombu's Redis transport would push them, without Celery building each one.

Celery takes about half a millisecond to build a message (routing, queue
declarations, headers, two JSON passes, a copy of every entity), which held
admission under 2,000 segments a second. Every synthesis message on one
queue is the same envelope but for five things: its task id (also the root
id and the correlation id), its delivery tag, its ``kwargsrepr`` (in the
headers and the properties), and its body (base64 of the JSON
``[args, kwargs, embed]``). So Celery renders one envelope per queue, with
markers in those places, and each message fills them in: the bytes are the
ones ``app.send_task`` would have pushed with the same ids
(``tests/unit/test_envelopes.py`` compares them).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.messaging import Producer
from kombu.utils.json import dumps
from kombu.utils.uuid import uuid

from shared.celery_app import SYNTHESIZE_TASK
from shared.schema import SegmentTask

_ID, _TAG, _REPR = "@@voxfarm-id@@", "@@voxfarm-tag@@", "@@voxfarm-repr@@"
_BODY = "@@voxfarm-body@@"
_EMPTY_KWARGS = "[[], {}"
"""How the body of a message without arguments starts; what follows it is the embed (callbacks, chain...)."""


class MessageCapture:
    """Serialises Celery task messages to the bytes kombu's Redis transport would LPUSH, and keeps them."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.connection = app.connection_for_write()
        self.channel: Any = self.connection.default_channel
        self.delivery_tag: str | None = None
        """Set to give the next message this delivery tag instead of a fresh one."""
        self._captured: list[tuple[str, str]] = []
        channel = self.channel
        fresh_tag = channel._next_delivery_tag

        def _put(queue: str, message: dict[str, Any], **kwargs: Any) -> None:
            priority = channel._get_message_priority(message, reverse=False)
            self._captured.append((channel._q_for_pri(queue, priority), dumps(message)))

        def _next_delivery_tag() -> str:
            return self.delivery_tag or str(fresh_tag())

        channel._put = _put
        channel._next_delivery_tag = _next_delivery_tag
        self.producer = Producer(channel)

    def render(self, queue: str, kwargs: dict[str, Any], options: dict[str, str]) -> tuple[str, str]:
        """(the Redis list key, the envelope) of one synthesis message for ``queue``."""
        self.app.send_task(SYNTHESIZE_TASK, kwargs=kwargs, queue=queue, producer=self.producer, **options)
        return self._captured.pop()

    def close(self) -> None:
        self.connection.release()


@dataclass(frozen=True)
class _Template:
    key: str
    """The Redis list the message goes to."""
    text: str
    """The envelope as a format string: {id}, {tag}, {repr} and {body} in place of the markers."""
    embed: str
    """The end of the body after the kwargs: ``, {"callbacks": null, ...}]``."""


def json_text(value: str) -> str:
    """``value`` as it appears inside a JSON string (kombu's encoder escapes all but printable ASCII)."""
    return json.dumps(value)[1:-1]


def task_kwargs_json(tasks: Sequence[SegmentTask]) -> str:
    """The kwargs of a synthesis task carrying ``tasks`` (``segment``, or ``unit`` for several) as JSON.

    pydantic's serializer writes each task in a sixth of the time of ``model_dump`` and ``json.dumps``;
    what a worker decodes is the same.
    """
    if len(tasks) == 1:
        return f'{{"segment": {tasks[0].model_dump_json()}}}'
    return f'{{"unit": [{", ".join(task.model_dump_json() for task in tasks)}]}}'


class Envelopes:
    """Synthesis messages for the dispatcher: one Celery-rendered template per queue, filled in per message."""

    def __init__(self, app: Celery) -> None:
        self.capture = MessageCapture(app)
        self._templates: dict[str, _Template] = {}

    def _template(self, queue: str) -> _Template:
        template = self._templates.get(queue)
        if template is not None:
            return template
        self.capture.delivery_tag = _TAG
        try:
            options = {"argsrepr": "()", "kwargsrepr": _REPR, "task_id": _ID}
            key, payload = self.capture.render(queue, {}, options)
        finally:
            self.capture.delivery_tag = None
        message = json.loads(payload)
        body = base64.b64decode(message["body"]).decode()
        if not body.startswith(_EMPTY_KWARGS):
            raise AssertionError(f"unexpected Celery message body {body[:80]!r}")  # a Celery upgrade changed it
        message["body"] = _BODY
        text = dumps(message).replace("{", "{{").replace("}", "}}")
        for marker, field in ((_ID, "{id}"), (_TAG, "{tag}"), (_REPR, "{repr}"), (_BODY, "{body}")):
            text = text.replace(marker, field)
        template = _Template(key, text, body[len(_EMPTY_KWARGS) :])
        self._templates[queue] = template
        return template

    def render(
        self, queue: str, kwargs_json: str, kwargsrepr: str, *, task_id: str | None = None, tag: str | None = None
    ) -> tuple[str, str]:
        """(the Redis list key, the envelope) of a synthesis message whose kwargs serialise to ``kwargs_json``.

        With ``kombu.utils.json.dumps(kwargs)`` the bytes are those of ``send_task``; the dispatcher passes
        ``task_kwargs_json`` (the same values, spaced differently).
        """
        template = self._template(queue)
        body = base64.b64encode(f"[[], {kwargs_json}{template.embed}".encode()).decode()
        envelope = template.text.format(id=task_id or uuid(), tag=tag or uuid(), repr=json_text(kwargsrepr), body=body)
        return template.key, envelope

    def close(self) -> None:
        self.capture.close()
