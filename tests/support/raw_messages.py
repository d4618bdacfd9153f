"""Build broker messages by hand, the way a hostile or broken client could push them into Redis."""

from __future__ import annotations

import base64
import json
import pickle
import uuid
from typing import Any

import redis

from shared.celery_app import SYNTHESIZE_TASK


def envelope(
    body: bytes,
    *,
    queue: str,
    content_type: str = "application/json",
    task: str = SYNTHESIZE_TASK,
    headers: dict[str, Any] | None = None,
) -> bytes:
    """A kombu/Celery (protocol 2) message as the Redis transport stores it in a queue list."""
    task_id = str(uuid.uuid4())
    document = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8" if content_type == "application/json" else "binary",
        "content-type": content_type,
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "root_id": task_id,
            "parent_id": None,
            "retries": 0,
            "eta": None,
            "expires": None,
            "group": None,
            "argsrepr": "",
            "kwargsrepr": "",
            "origin": "hostile@test",
            **(headers or {}),
        },
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_tag": str(uuid.uuid4()),
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
        },
    }
    return json.dumps(document).encode()


def tampered(raw: bytes, part: str, field: str, value: Any) -> bytes:
    """``raw`` (an ``envelope``) with one field of its ``part`` ("properties", "headers" or "" for the top) changed."""
    document = json.loads(raw)
    (document[part] if part else document)[field] = value
    return json.dumps(document).encode()


def celery_body(kwargs: dict[str, Any], args: list[Any] | None = None) -> bytes:
    return json.dumps(
        [args or [], kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    ).encode()


def push(client: redis.Redis, queue: str, raw: bytes) -> None:
    client.lpush(queue, raw)


class Exploit:
    """Unpickling this runs a shell command: what pickle would let an attacker do on a worker."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


def pickle_body(marker: str) -> bytes:
    return pickle.dumps(([], {"segment": Exploit(marker)}, {}))
