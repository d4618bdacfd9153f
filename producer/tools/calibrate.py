"""Measure what the quality gate and the leveller see on real sentences (the figures in docs/audiobook.md).

    python -m producer.tools.calibrate BOOK.epub [BOOK.epub ...] [--per-book 60] [--seed 1]

Draws sentences at random from each book, synthesises them one by one with
the default voice on the CPU (piper-onnx, the voice's own noise settings),
and prints the distribution of every measure the gate checks, how many takes
the default limits would fail, and what levelling the takes (joined by
250 ms pauses) to -18 LUFS under -1 dBTP does.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from producer.audiobook.loudness import Leveller, LoudnessTarget, integrated_loudness, true_peak_dbtp

SHORT = ["No.", "Yes!", "Oh!", "A", "Go.", "Hm.", "Chapter one.", "Letter one", "Epilogue"]


def _percentiles(values: Sequence[float]) -> str:
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    low, p1, mid, p99, high = np.percentile(data, [0, 1, 50, 99, 100])
    return f"min {low:8.3f}  p1 {p1:8.3f}  median {mid:8.3f}  p99 {p99:8.3f}  max {high:8.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    from producer.ingest import load_book
    from producer.planner import PlanOptions, default_params, plan_book
    from shared.buckets import BucketPolicy
    from shared.frontend import create_frontend
    from shared.quality import check_segment
    from shared.voices import bundled_voice
    from workers.engines.base import EngineRequest
    from workers.engines.piper_onnx import PiperOnnxEngine

    parser = argparse.ArgumentParser(prog="python -m producer.tools.calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("books", nargs="+", type=Path)
    parser.add_argument("--per-book", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    voice = bundled_voice()
    params = default_params(voice)
    options = PlanOptions("piper-onnx", voice, params, BucketPolicy.from_edges([32, 64, 128, 256, 512]))
    texts: list[tuple[str, list[int]]] = []
    for path in args.books:
        segments = plan_book(load_book(path), options).segments
        picked = random.Random(args.seed).sample(segments, min(args.per_book, len(segments)))
        texts += [(s.text, list(s.ids)) for s in picked]
    frontend = create_frontend("piper", voice.config, max_tokens=512)
    texts += [(t, list(p.ids)) for t in SHORT for p in frontend.segment_chapter([t])]

    engine = PiperOnnxEngine(voice)
    rate = engine.sample_rate
    measures: dict[str, list[float]] = {}
    failed: list[str] = []
    joined: list[np.ndarray] = []
    started = time.perf_counter()
    for text, ids in texts:
        audio = engine.synthesize([EngineRequest("0" * 64, ids, params)], 512).audio[0]
        report = check_segment(audio, rate, tokens=len(ids), length_scale=params.length_scale)
        for name, value in report.measures.items():
            scale = 1000.0 if name == "s_per_token" else 1.0
            measures.setdefault(name.replace("s_per_token", "ms_per_token"), []).append(value * scale)
        measures.setdefault("true_peak_dbtp", []).append(true_peak_dbtp(audio))
        if len(audio) >= rate // 2:
            measures.setdefault("loudness_lufs", []).append(integrated_loudness(audio, rate))
        if not report.passed:
            failed.append(f"{text[:60]!r}: {report.summary()}")
        joined += [audio, np.zeros(rate // 4, dtype=np.float32)]
    engine.close()
    print(
        f"{len(texts)} takes ({len(texts) - len(SHORT)} corpus sentences, {len(SHORT)} short utterances), "
        f"synthesised in {time.perf_counter() - started:.0f}s"
    )
    for name in sorted(measures):
        print(f"  {name:20s} {_percentiles(measures[name])}")
    print(f"  failing the default limits: {len(failed)}")
    for line in failed:
        print(f"    {line}")

    speech = np.concatenate(joined)
    leveller = Leveller(speech, rate, LoudnessTarget(-18.0, -1.0))
    leveller.measure()
    started = time.perf_counter()
    levelled = leveller.write(lambda block: None)
    print(
        f"levelling {len(speech) / rate:.0f}s of the takes to -18 LUFS / -1 dBTP: "
        f"input {levelled.input_lufs:.2f} LUFS {levelled.input_true_peak_dbtp:.2f} dBTP; "
        f"gain {levelled.gain_db:.2f} dB, limiter up to {levelled.limited_db:.2f} dB; "
        f"output {levelled.output_lufs:.2f} LUFS {levelled.output_true_peak_dbtp:.2f} dBTP "
        f"({time.perf_counter() - started:.1f}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
