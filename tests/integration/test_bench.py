"""`voxfarm bench` end to end on a small input: every figure of bench.schema.json is there and sane."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.conftest import CONTRACTS
from tests.support.bench import run_bench
from tests.support.books import write_book

SMALL = """---
title: Bench
author: Test
language: en
---

# Bench

## One

The boats came in late that evening, heavy with the day's catch.
Gulls followed them all the way from the open water.
On the quay the children counted the sails as they passed the lighthouse.
An old man mended a net beside the harbour wall, humming a song his father had taught him.
Before dawn the market filled with voices and the smell of bread.
"""


def test_bench_reports_padding_sweep_and_end_to_end_figures(tmp_path: Path) -> None:
    book = write_book(tmp_path, SMALL, "bench.md")
    result, report = run_bench(
        tmp_path / "bench.json",
        *("--book", str(book), "--sweep-edges", "32,64", "--sweep-sizes", "1,2", "--repeats", "1"),
        *("--min-seconds", "0.2", "--padding-batch", "4"),
    )
    jsonschema.validate(report, json.loads((CONTRACTS / "bench.schema.json").read_text()))

    padding = report["padding_efficiency"]
    assert 0 < padding["bucketed"] <= 1 and 0 < padding["fifo"] <= 1
    assert padding["by_batch"]["1"]["fifo"]["frames"] == 1.0  # one item per batch: nothing to pad
    assert padding["sample"]["whole_book"] and padding["sample"]["segments"] == padding["segments"] > 0
    assert {(row["bucket"], row["batch"]) for row in report["batch_sweep"]} == {(32, 1), (32, 2), (64, 1), (64, 2)}
    assert all(row["items_per_s"] > 0 and row["audio_s_per_s"] > 0 for row in report["batch_sweep"])
    e2e = report["e2e"]
    for figure in ("voxfarm_audio_s_per_s", "piper_cli_audio_s_per_s", "ideal_audio_s_per_s"):
        assert e2e[figure] > 0, figure
    assert abs(e2e["ratio"] - e2e["voxfarm_audio_s_per_s"] / e2e["piper_cli_audio_s_per_s"]) < 0.01
    assert abs(e2e["efficiency"] - e2e["voxfarm_audio_s_per_s"] / e2e["ideal_audio_s_per_s"]) < 0.01
    assert "(c) end to end" in result.stdout
