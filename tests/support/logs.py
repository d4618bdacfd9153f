"""Read the JSON log lines voxfarm processes write (VOXFARM_LOG_FORMAT=json)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

JSON_LOGS = {"VOXFARM_LOG_FORMAT": "json"}


def records(text: str) -> list[dict[str, Any]]:
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            found.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by SIGKILL
    return found


def stored_keys(texts: Iterable[str], status: str = "rendered") -> list[str]:
    """Content keys of segments a worker synthesised and stored, one entry per store."""
    return [
        r["key"]
        for text in texts
        for r in records(text)
        if r.get("msg") == "segment stored" and r.get("status") == status
    ]


def batches(text: str) -> list[dict[str, Any]]:
    return [r["batch"] for r in records(text) if r.get("msg") == "batch done"]
