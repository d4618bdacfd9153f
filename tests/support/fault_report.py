"""Figures of the fault-injection scenarios, for the README's results table.

Each scenario that runs to its checks records a row; with
VOXFARM_FAULT_REPORT=path the rows are written there as JSON when the
session ends (see tests/conftest.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS: list[dict[str, object]] = []


def record(**figures: object) -> None:
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].split(" ")[0]
    RESULTS.append({"scenario": test, **figures})


def write_report() -> None:
    target = os.environ.get("VOXFARM_FAULT_REPORT")
    if target and RESULTS:
        Path(target).write_text(json.dumps(RESULTS, indent=2))
