"""The dispatcher's messages are the ones Celery would push, built without Celery per message.

kombu's Redis channel needs a server to exist (it pings on creation), so
these tests take the Redis fixture; nothing is written to it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kombu.utils.json import dumps

from producer.envelopes import Envelopes, MessageCapture, task_kwargs_json
from shared.buckets import interactive_queue_name, queue_name
from shared.celery_app import create_app
from shared.schema import SegmentTask, SynthesisParams
from shared.settings import load_settings

QUEUES = [queue_name("piper-onnx", 64), queue_name("piper-onnx", 128), interactive_queue_name("piper-onnx")]


def task(index: int, text: str = 'Café "au lait" — 你好, it\'s {braced} \\ here.') -> SegmentTask:
    return SegmentTask(
        job="book-1",
        indexes=[index, index + 7],
        chapter=2,
        text=text,
        ids=[1, 0, 120, 39, 25, 2],
        voice="en_US-joe-medium",
        engine="piper-onnx",
        params=SynthesisParams(noise_scale=0.0, length_scale=1.1),
        key="ab" * 32,
        bucket=64,
        enqueued_at=1_700_000_000.125,
    )


def kwargsrepr(index: int) -> str:
    return f"{{'segment': 'book-1#{index}'}}"


@pytest.fixture
def app(redis_url: str) -> Any:
    return create_app(load_settings(redis_url=redis_url))


def send_task_message(capture: MessageCapture, queue: str, kwargs: dict[str, Any], repr_: str, **ids: str) -> Any:
    """What ``app.send_task`` pushes for these kwargs (with the given task id and delivery tag, if any)."""
    capture.delivery_tag = ids.get("tag")
    options = {"argsrepr": "()", "kwargsrepr": repr_}
    if "task_id" in ids:
        options["task_id"] = ids["task_id"]
    return capture.render(queue, kwargs, options)


@pytest.mark.parametrize("queue", QUEUES)
def test_a_templated_message_is_byte_for_byte_what_send_task_pushes(app: Any, queue: str) -> None:
    capture, envelopes = MessageCapture(app), Envelopes(app)
    for index in (3, 4):  # the second one reuses the queue's template
        kwargs = {"segment": task(index).model_dump(mode="json")}
        ids = {"task_id": f"00000000-0000-4000-8000-00000000000{index}", "tag": f"tag-{index}"}

        expected = send_task_message(capture, queue, kwargs, kwargsrepr(index), **ids)
        got = envelopes.render(queue, dumps(kwargs), kwargsrepr(index), task_id=ids["task_id"], tag=ids["tag"])

        assert got == expected


def test_messages_differ_from_send_tasks_only_in_their_fresh_ids(app: Any) -> None:
    capture, envelopes = MessageCapture(app), Envelopes(app)
    queue = QUEUES[0]
    kwargs = {"segment": task(5).model_dump(mode="json")}

    key, ours = envelopes.render(queue, task_kwargs_json([task(5)]), kwargsrepr(5))
    celery_key, theirs = send_task_message(capture, queue, kwargs, kwargsrepr(5))

    assert key == celery_key
    ours_msg, theirs_msg = json.loads(ours), json.loads(theirs)
    fresh = ("id", "root_id"), ("correlation_id", "delivery_tag")
    for section, names in zip(("headers", "properties"), fresh, strict=True):
        assert ours_msg[section][names[0]] != theirs_msg[section][names[0]]
        for name in names:
            ours_msg[section].pop(name), theirs_msg[section].pop(name)
    ours_body = json.loads(base64.b64decode(ours_msg.pop("body")))
    theirs_body = json.loads(base64.b64decode(theirs_msg.pop("body")))
    assert ours_body == theirs_body == [[], kwargs, theirs_body[2]]
    assert ours_msg == theirs_msg


def test_a_unit_carries_every_task_as_send_task_would() -> None:
    tasks = [task(1), task(2, "Second."), task(3, "Third.")]

    assert json.loads(task_kwargs_json(tasks)) == {"unit": [t.model_dump(mode="json") for t in tasks]}
    assert json.loads(task_kwargs_json(tasks[:1])) == {"segment": tasks[0].model_dump(mode="json")}
