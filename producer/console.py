"""What the `voxfarm` commands print for scripts: one home for the JSON form of every `--json` output."""

from __future__ import annotations

import json
from typing import Any


def print_json(document: Any) -> None:
    """Indented, and not escaped to ASCII, so titles in any script stay readable."""
    print(json.dumps(document, indent=2, ensure_ascii=False))
