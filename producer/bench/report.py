"""The table `voxfarm bench` prints, and the machine the figures were measured on."""

from __future__ import annotations

import os
import platform
from typing import Any


def machine() -> dict[str, Any]:
    from workers.devices.cpu import cpu_model

    return {
        "cpu": cpu_model() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
    }


def _padding_heading(pad: dict[str, Any]) -> str:
    sample = pad.get("sample")
    if sample is None or sample["whole_book"]:
        return f"(a) padding efficiency, {pad['segments']} segments of {pad['book']} (useful / computed)"
    return (
        f"(a) padding efficiency, {pad['segments']} of {sample['book_segments']} segments of {pad['book']}, "
        f"runs of {sample['run_length']} sampled with seed {sample['seed']} (useful / computed)"
    )


def format_table(report: dict[str, Any]) -> str:
    lines = []
    pad = report["padding_efficiency"]
    lines.append(_padding_heading(pad))
    lines.append(
        f"    {'batch':>5}  {'bucketed frames':>15}  {'static frames':>13}  {'unsorted frames':>15}  "
        f"{'fifo frames':>11}  {'bucketed tokens':>15}  {'fifo tokens':>11}"
    )
    for batch, row in pad["by_batch"].items():
        lines.append(
            f"    {batch:>5}  {row['bucketed']['frames']:>15.3f}  {row['bucketed_static_frames']['frames']:>13.3f}  "
            f"{row['bucketed_unsorted']['frames']:>15.3f}  {row['fifo']['frames']:>11.3f}  "
            f"{row['bucketed']['tokens']:>15.3f}  {row['fifo']['tokens']:>11.3f}"
        )
    lines.append("(b) batch sweep on this device")
    lines.append(
        f"    {'engine':>10}  {'bucket':>6}  {'batch':>5}  {'items/s':>8}  {'audio s/s':>9}  "
        f"{'latency s':>9}  {'vs batch 1':>10}"
    )
    for row in report["batch_sweep"]:
        lines.append(
            f"    {row['engine']:>10}  {row['bucket']:>6}  {row['batch']:>5}  {row['items_per_s']:>8.2f}  "
            f"{row['audio_s_per_s']:>9.2f}  {row['latency_s']:>9.4f}  {row['speedup_vs_batch1']:>10.2f}"
        )
    e2e = report["e2e"]
    if not e2e.get("skipped"):
        lines.append(
            f"(c) end to end, chapter {e2e['chapter']!r}, median of {e2e['repeats']} (audio seconds per wall second)"
        )
        lines.append(
            f"    voxfarm {e2e['voxfarm_audio_s_per_s']:.2f}   piper CLI {e2e['piper_cli_audio_s_per_s']:.2f}"
            f"   ideal {e2e['ideal_audio_s_per_s']:.2f} ({e2e['cores']} x "
            f"{e2e['single_thread_audio_s_per_s']:.2f})"
        )
        lines.append(
            f"    ratio voxfarm / piper CLI {e2e['ratio']:.3f}   efficiency voxfarm / ideal {e2e['efficiency']:.3f}"
        )
    return "\n".join(lines)
