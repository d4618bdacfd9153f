"""`voxfarm bench --admission` on a small book against a real S3 server: every segment counted, memory bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_bench_admission_submits_admits_and_measures_a_synthetic_book(s3_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "admission.json"
    env = {key: value for key, value in os.environ.items() if key != "VOXFARM_REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "producer.cli", "bench", "--admission", "--segments", "400", "--json", str(out)],
        env={**env, **s3_env},
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())["admission"]
    assert figures["segments"] == figures["submit_registered"] == figures["whole_book_admitted"] == 400
    assert figures["storage"].startswith(s3_env["VOXFARM_STORAGE_URL"])
    assert figures["windowed_first_cycle"] > 0 and figures["steady_admitted"] > 0
    assert figures["redis_windowed_mb"] < figures["redis_whole_book_mb"]
    assert all(figures[name] > 0 for name in ("plan_s", "submit_s", "whole_book_segments_per_s"))
    assert figures["submit_command_s"] > 0 and figures["planning_cycles"] > 0
    assert "admission, whole book in one cycle" in result.stdout
