"""A short, prepared accelerator check of piper-torch: parity with onnxruntime, then a batch-size sweep.

    python -m workers.tools.gpu_check --device cuda:0 --json out.json [--budget-s 420]
    python -m workers.tools.gpu_check --device cpu --quick --json out.json     # dry run anywhere

1. The card: identity, runtime versions, memory, and the smoke test.
2. Parity: sentences in every token bucket (32..512) synthesised with noise
   off on the card (fp32, TF32 off) against onnxruntime on the CPU: same
   sample count, max abs difference below 1e-4.
3. Reproducibility: one noisy segment twice, bit-identical.
4. Sweep (eager): for each bucket, batch sizes 1, 2, 4, ... 64: audio
   seconds per wall second, padding, peak memory; an OOM ends that bucket.
5. Compiled points (``--compiled``, e.g. ``128x1,128x16``): warm-up time
   (compile) and steady throughput against eager for the same shape.

Token ids come from ``deploy/gpu/sentences.json`` (made here by
``--write-ids``, so the card's machine needs no espeak). Every step checks
the time budget and stops cleanly, writing what it has.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import DeviceOutOfMemoryError
from shared.schema import SynthesisParams
from shared.voices import VoiceFiles, bundled_voice
from workers.devices.base import DeviceBackend
from workers.engines.base import EngineRequest

DEFAULT_IDS = Path(__file__).resolve().parents[2] / "deploy" / "gpu" / "sentences.json"
BUCKETS = (32, 64, 128, 256, 512)
BATCHES = (1, 2, 4, 8, 16, 32, 64)
NOISE_OFF = SynthesisParams(noise_scale=0.0, noise_w=0.0)
PARITY_ATOL = 1e-4
#: Short lines for the smallest bucket (The Time Machine, Frankenstein, Sherlock Holmes; CC0 editions).
SHORT_TEXTS = ("Oh!", "Mrs.", "Beautiful!", "He was at work again.", "I passed the night wretchedly.")


def write_ids(path: Path, voice: VoiceFiles) -> None:
    """Phonemize the sample sentences here (piper-tts + espeak) and store their ids per bucket."""
    from piper import PiperVoice

    from workers.tools.bench_engines import SAMPLE_TEXT

    piper_voice = PiperVoice.load(voice.model_path, config_path=voice.config_path)
    sentences = [*SHORT_TEXTS, *(s.strip() + "." for s in SAMPLE_TEXT.split(". ") if s.strip())]
    items: list[dict[str, Any]] = []
    joined: list[str] = []
    for text in sentences:
        phonemes = [p for i, s in enumerate(piper_voice.phonemize(text)) for p in ([" "] if i else []) + s]
        items.append({"text": text, "ids": piper_voice.phonemes_to_ids(phonemes)})
        joined.append(text)
        long_text = " ".join(joined)
        long_phonemes = [p for i, s in enumerate(piper_voice.phonemize(long_text)) for p in ([" "] if i else []) + s]
        long_ids = piper_voice.phonemes_to_ids(long_phonemes)
        if 256 < len(long_ids) <= 512:
            items.append({"text": long_text, "ids": long_ids})
            joined = []
        elif len(long_ids) > 512:
            joined = [text]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"voice": voice.id, "sentences": items}, ensure_ascii=False, indent=1) + "\n")


def by_bucket(items: Sequence[dict[str, Any]]) -> dict[int, list[list[int]]]:
    grouped: dict[int, list[list[int]]] = {edge: [] for edge in BUCKETS}
    for item in items:
        ids = list(item["ids"])
        edge = next((e for e in BUCKETS if len(ids) <= e), None)
        if edge is not None:
            grouped[edge].append(ids)
    return grouped


def make_requests(pool: Sequence[list[int]], count: int, params: SynthesisParams, tag: str) -> list[EngineRequest]:
    """``count`` requests cycling through ``pool``, each with its own content key."""
    return [
        EngineRequest(key=hashlib.sha256(f"{tag}-{i}".encode()).hexdigest(), ids=pool[i % len(pool)], params=params)
        for i in range(count)
    ]


class Budget:
    def __init__(self, seconds: float) -> None:
        self.started = time.perf_counter()
        self.seconds = seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.seconds - self.elapsed()


def check(args: argparse.Namespace) -> dict[str, Any]:
    from workers.devices import open_device
    from workers.engines.piper_onnx import PiperOnnxEngine
    from workers.engines.piper_torch import PiperTorchEngine

    budget = Budget(args.budget_s)
    voice = _voice(args.voice_dir)
    report: dict[str, Any] = {"device": args.device, "budget_s": args.budget_s, "complete": False}
    backend = open_device(args.device).backend  # runs the smoke test
    identity = backend.identity()
    report["identity"] = {"name": identity.name, **identity.runtime}
    groups = by_bucket(json.loads(args.ids.read_text())["sentences"])
    buckets = BUCKETS[:2] if args.quick else BUCKETS
    batches = BATCHES[:2] if args.quick else BATCHES

    engine = PiperTorchEngine(voice, backend, compile=False, precision="fp32")
    reference = PiperOnnxEngine(voice, threads=4)
    parity = []
    for edge in buckets:
        for ids in groups[edge][:2]:
            item = make_requests([ids], 1, NOISE_OFF, f"parity-{edge}")[0]
            expected = reference.synthesize([item], len(ids)).audio[0]
            actual = engine.synthesize([item], edge).audio[0]
            same_length = actual.shape == expected.shape
            diff = float(np.abs(actual - expected).max()) if same_length else None
            parity.append({"bucket": edge, "tokens": len(ids), "same_length": same_length, "max_abs_diff": diff})
            _say(f"parity b{edge} {len(ids)} tokens: same length {same_length}, max abs diff {diff}")
    report["parity"] = parity
    report["parity_ok"] = all(p["max_abs_diff"] is not None and p["max_abs_diff"] < PARITY_ATOL for p in parity)
    noisy = make_requests([groups[buckets[-1]][0]], 1, SynthesisParams(), "repro")
    report["reproducible"] = bool(
        np.array_equal(engine.synthesize(noisy, 0).audio[0], engine.synthesize(noisy, 0).audio[0])
    )

    report["sweep"] = sweep(
        engine=engine, backend=backend, groups=groups, buckets=buckets, batches=batches, budget=budget, reps=args.reps
    )
    if args.compiled and budget.left() > 60:
        report["compiled"] = compiled_points(voice, backend, args, groups, budget)
    report["memory"] = vars(backend.memory())
    report["elapsed_s"] = round(budget.elapsed(), 1)
    report["complete"] = budget.left() > 0
    return report


def sweep(
    *,
    engine: Any,
    backend: Any,
    groups: dict[int, list[list[int]]],
    buckets: Sequence[int],
    batches: Sequence[int],
    budget: Budget,
    reps: int,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for edge in buckets:
        for size in batches:
            if budget.left() < 30:
                _say("time budget spent; sweep stopped")
                return rows
            requests = make_requests(groups[edge], size, SynthesisParams(), f"sweep-{edge}")
            row: dict[str, Any] = {"bucket": edge, "batch": size}
            try:
                engine.synthesize(requests, edge)  # first run: allocator and kernel selection
                backend.reset_peak_memory()
                row.update(_time(engine, backend, requests, edge, reps))
                row["peak_bytes"] = backend.memory().peak_bytes
            except DeviceOutOfMemoryError as exc:
                row["oom"] = str(exc)[:200]
                rows.append(row)
                _say(f"sweep b{edge} x{size}: out of memory")
                break
            rows.append(row)
            _say(f"sweep b{edge} x{size}: {row['audio_s_per_s']:.1f} audio s/s, frame fill {row['frame_fill']:.2f}")
    return rows


def compiled_points(
    voice: VoiceFiles,
    backend: DeviceBackend,
    args: argparse.Namespace,
    groups: dict[int, list[list[int]]],
    budget: Budget,
) -> list[dict[str, Any]]:
    from workers.engines.piper_torch import PiperTorchEngine

    engine = PiperTorchEngine(voice, backend, compile=True, cache_dir=args.cache_dir, precision=args.precision)
    results = []
    for point in args.compiled.split(","):
        if budget.left() < 90:
            _say("time budget spent; compiled points stopped")
            break
        edge, size = (int(part) for part in point.lower().split("x"))
        requests = make_requests(groups[edge], size, SynthesisParams(), f"compiled-{edge}")
        started = time.perf_counter()
        first = engine.synthesize(requests, edge)  # compiles this (batch, tokens) and (batch, frames) shape
        compile_s = time.perf_counter() - started
        timing = _time(engine, engine.backend, requests, edge, args.reps)
        results.append(
            {
                "bucket": edge,
                "batch": size,
                "frames": first.padded_frames // size,
                "first_s": round(compile_s, 2),
                **timing,
            }
        )
        _say(f"compiled b{edge} x{size}: first call {compile_s:.1f} s, {timing['audio_s_per_s']:.1f} audio s/s")
    return results


def _time(engine: Any, backend: Any, requests: list[EngineRequest], edge: int, reps: int) -> dict[str, Any]:
    backend.synchronize()
    started = time.perf_counter()
    samples = 0
    output = None
    for _ in range(reps):
        output = engine.synthesize(requests, edge)
        samples += sum(len(a) for a in output.audio)
    backend.synchronize()
    wall = (time.perf_counter() - started) / reps
    audio = samples / reps / engine.sample_rate
    assert output is not None
    return {
        "wall_s": round(wall, 4),
        "audio_s": round(audio, 2),
        "audio_s_per_s": round(audio / wall, 2),
        "rtf": round(wall / audio, 5),
        "frame_fill": round(output.useful_frames / max(output.padded_frames, 1), 3),
        "stage_s": {k: round(v, 4) for k, v in output.stage_seconds.items()},
    }


def _voice(directory: Path | None) -> VoiceFiles:
    if directory is None:
        return bundled_voice()
    return VoiceFiles("en_US-joe-medium", directory / "en_US-joe-medium.onnx", directory / "en_US-joe-medium.onnx.json")


def _say(line: str) -> None:
    print(line)
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.tools.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--ids", type=Path, default=DEFAULT_IDS, help="token ids per sentence (see --write-ids)")
    parser.add_argument("--write-ids", action="store_true", help="phonemize the sample text into --ids and exit")
    parser.add_argument("--voice-dir", type=Path, default=None, help="folder with en_US-joe-medium.onnx(.json)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting new steps after this long")
    parser.add_argument("--reps", type=int, default=3, help="timed runs per sweep point")
    parser.add_argument(
        "--compiled",
        default=None,
        help="BUCKETxBATCH points to compile, comma-separated ('' for none; default 128x1,128x16, none with --quick)",
    )
    parser.add_argument("--precision", default="fp32", help="precision of the compiled points")
    parser.add_argument("--cache-dir", type=Path, default=None, help="persistent compile cache")
    parser.add_argument("--quick", action="store_true", help="two buckets, batch 1 and 2: a dry run")
    args = parser.parse_args(argv)
    if args.compiled is None:
        args.compiled = "" if args.quick else "128x1,128x16"
    if args.write_ids:
        write_ids(args.ids, _voice(args.voice_dir))
        return 0
    report = check(args)
    text = json.dumps(report, indent=2, default=str)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(json.dumps({k: report.get(k) for k in ("parity_ok", "reproducible", "complete", "elapsed_s")}))
    return 0 if report["parity_ok"] and report["reproducible"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
