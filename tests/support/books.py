"""Small books written at test time, so tests say exactly what they render."""

from __future__ import annotations

from pathlib import Path

THREE_CHAPTERS = """---
title: The Lighthouse Keepers
author: Test Author
language: en
---

# The Lighthouse Keepers

## The Storm

The wind rose in the evening. Waves broke over the rocks below the tower.

Anna climbed the stairs with a lamp in her hand.

## The Ship

A small ship appeared on the horizon. It was drifting toward the reef.

## The Morning

By morning the sea was calm again. Everyone on board was safe.
"""


def write_book(directory: Path, text: str = THREE_CHAPTERS, name: str = "lighthouse.md") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path
