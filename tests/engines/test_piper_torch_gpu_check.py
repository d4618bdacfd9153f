"""The prepared accelerator check runs end to end on the CPU (its dry run) and reports its figures."""

from __future__ import annotations

import json
from pathlib import Path

from workers.tools import gpu_check


def test_gpu_check_dry_run_on_the_cpu_writes_parity_and_sweep_figures(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"

    status = gpu_check.main(["--device", "cpu", "--quick", "--reps", "1", "--json", str(out)])

    report = json.loads(out.read_text())
    assert status == 0
    assert report["parity_ok"] is True and report["reproducible"] is True and report["complete"] is True
    assert {row["bucket"] for row in report["parity"]} == {32, 64}
    assert all(row["same_length"] and row["max_abs_diff"] < 1e-4 for row in report["parity"])
    assert [(row["bucket"], row["batch"]) for row in report["sweep"]] == [(32, 1), (32, 2), (64, 1), (64, 2)]
    assert all(row["audio_s_per_s"] > 0 and 0 < row["frame_fill"] <= 1 for row in report["sweep"])
    assert report["identity"]["torch"]
