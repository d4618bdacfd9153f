"""Run `voxfarm bench` as a user does and read the JSON report it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_bench(
    out: Path, *args: str, timeout_s: float = 600.0
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The finished command and its report; fails the test with stderr's tail when the command fails."""
    result = subprocess.run(
        [sys.executable, "-m", "producer.cli", "bench", *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads(out.read_text())
