"""Side-by-side engine benchmark: onnxruntime, PyTorch eager and PyTorch compiled, one run.

    python -m workers.tools.bench_engines --json out.json [--device cpu] [--threads 1] [--batch 4]

Every engine synthesises the same sentences (CC0 text from H. G. Wells, The
Time Machine, Standard Ebooks), one at a time and in padded batches of
similar length, each item padded to its token bucket as the farm does. A
first untimed pass loads and warms every engine (compiles, for the compiled
one); then the timed passes are interleaved engine by engine, ``--repeat``
times, so a machine shared with other work slows them all alike. Figures:
audio seconds per wall second (higher is better) and the real-time factor
(wall / audio, lower is better). The best of the repeats is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shared.schema import SynthesisParams
from shared.voices import VoiceFiles, bundled_voice
from workers.engines import create_engine
from workers.engines.base import Engine, EngineRequest

#: Opening paragraphs of The Time Machine (H. G. Wells, 1895; Standard Ebooks edition, CC0).
SAMPLE_TEXT = (
    "The Time Traveller (for so it will be convenient to speak of him) was expounding a recondite matter to us. "
    "His grey eyes shone and twinkled, and his usually pale face was flushed and animated. The fire burned "
    "brightly, and the soft radiance of the incandescent lights in the lilies of silver caught the bubbles that "
    "flashed and passed in our glasses. Our chairs, being his patents, embraced and caressed us rather than "
    "submitted to be sat upon, and there was that luxurious after-dinner atmosphere when thought roams gracefully "
    "free of the trammels of precision. And he put it to us in this way, marking the points with a lean "
    "forefinger, as we sat and lazily admired his earnestness over this new paradox (as we thought it) and his "
    "fecundity. You must follow me carefully. I shall have to controvert one or two ideas that are almost "
    "universally accepted. The geometry, for instance, they taught you at school is founded on a misconception. "
    "Is not that rather a large thing to expect us to begin upon? said Filby, an argumentative person with red "
    "hair. I do not mean to ask you to accept anything without reasonable ground for it. You will soon admit as "
    "much as I need from you. You know of course that a mathematical line, a line of thickness nil, has no real "
    "existence. They taught you that? Neither has a mathematical plane. These things are mere abstractions. "
    "That is all right, said the Psychologist."
)
TOKEN_BUCKETS = (32, 64, 128, 256, 512)
ENGINE_VARIANTS: dict[str, tuple[str, bool | None]] = {
    "onnx": ("piper-onnx", None),
    "torch-eager": ("piper-torch", False),
    "torch-compiled": ("piper-torch", True),
}


def phoneme_ids(voice: VoiceFiles, text: str) -> list[list[int]]:
    """Token ids per sentence, the way the producer's Piper frontend makes them."""
    from piper import PiperVoice

    piper_voice = PiperVoice.load(voice.model_path, config_path=voice.config_path)
    return [piper_voice.phonemes_to_ids(sentence) for sentence in piper_voice.phonemize(text)]


def token_bucket(count: int) -> int:
    return next((edge for edge in TOKEN_BUCKETS if count <= edge), count)


def requests_for(ids: Sequence[Sequence[int]]) -> list[EngineRequest]:
    return [
        EngineRequest(key=hashlib.sha256(f"bench-{i}".encode()).hexdigest(), ids=list(x), params=SynthesisParams())
        for i, x in enumerate(ids)
    ]


def batches(requests: Sequence[EngineRequest], size: int) -> list[tuple[list[EngineRequest], int]]:
    """Requests grouped by token bucket, ``size`` at a time, each with the edge to pad to."""
    by_bucket: dict[int, list[EngineRequest]] = {}
    for request in sorted(requests, key=lambda r: len(r.ids)):
        by_bucket.setdefault(token_bucket(len(request.ids)), []).append(request)
    return [
        (group[start : start + size], edge)
        for edge, group in sorted(by_bucket.items())
        for start in range(0, len(group), size)
    ]


def timed_pass(engine: Engine, plan: Sequence[tuple[list[EngineRequest], int]]) -> tuple[float, float]:
    """Wall seconds and audio seconds for one pass over ``plan``."""
    started = time.perf_counter()
    samples = 0
    for group, edge in plan:
        samples += sum(len(audio) for audio in engine.synthesize(group, edge).audio)
    return time.perf_counter() - started, samples / engine.sample_rate


def run(
    *,
    device: str,
    threads: int,
    batch: int,
    variants: Sequence[str],
    repeat: int,
    limit: int | None,
    cache_dir: Path | None,
) -> dict[str, Any]:
    voice = bundled_voice()
    ids = phoneme_ids(voice, SAMPLE_TEXT)[:limit]
    requests = requests_for(ids)
    plans = {"batch1": batches(requests, 1), f"batch{batch}": batches(requests, batch)}
    engines: dict[str, Engine] = {}
    setup: dict[str, dict[str, float]] = {}
    from workers.devices import open_device

    backend = open_device(device).backend
    for variant in variants:
        name, compile_flag = ENGINE_VARIANTS[variant]
        started = time.perf_counter()
        options: dict[str, Any] = {"threads": threads}
        if name == "piper-torch":
            options.update(compile=compile_flag, cache_dir=cache_dir)
        engines[variant] = create_engine(name, voice, backend, **options)
        loaded = time.perf_counter() - started
        warm = sum(timed_pass(engines[variant], plan)[0] for plan in plans.values())
        setup[variant] = {"load_s": round(loaded, 3), "warm_pass_s": round(warm, 3)}
        _progress(f"{variant}: loaded in {loaded:.1f} s, warm pass {warm:.1f} s")

    best: dict[tuple[str, str], tuple[float, float]] = {}
    for round_index in range(repeat):
        for mode, plan in plans.items():
            for variant, engine in engines.items():
                wall, audio = timed_pass(engine, plan)
                if (variant, mode) not in best or wall < best[(variant, mode)][0]:
                    best[(variant, mode)] = (wall, audio)
                _progress(f"round {round_index + 1} {mode:>7} {variant:>15}: {wall:7.2f} s for {audio:6.1f} s audio")

    results = [
        {
            "engine": ENGINE_VARIANTS[variant][0],
            "variant": variant,
            "mode": mode,
            "batch": 1 if mode == "batch1" else batch,
            "wall_s": round(wall, 3),
            "audio_s": round(audio, 3),
            "audio_s_per_s": round(audio / wall, 3),
            "rtf": round(wall / audio, 4),
            **setup[variant],
        }
        for (variant, mode), (wall, audio) in best.items()
    ]
    import torch

    return {
        "device": device,
        "threads": threads,
        "sentences": len(requests),
        "tokens": [len(x) for x in ids],
        "repeat": repeat,
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "command": "python -m workers.tools.bench_engines " + " ".join(sys.argv[1:]),
        "results": results,
    }


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _progress(line: str, sink: Callable[[str], object] = print) -> None:
    sink(line)
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.tools.bench_engines", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per engine (one farm worker's share)")
    parser.add_argument("--batch", type=int, default=4, help="items per batch in the batched mode")
    parser.add_argument(
        "--engines", default=",".join(ENGINE_VARIANTS), help="comma-separated: onnx,torch-eager,torch-compiled"
    )
    parser.add_argument("--repeat", type=int, default=2, help="timed rounds; the best is reported")
    parser.add_argument("--sentences", type=int, default=None, help="use only the first N sentences")
    parser.add_argument("--cache-dir", type=Path, default=None, help="persistent compile cache for torch-compiled")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.engines.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(ENGINE_VARIANTS))
    if unknown:
        parser.error(f"unknown engine variant(s): {', '.join(unknown)}")
    report = run(
        device=args.device,
        threads=args.threads,
        batch=args.batch,
        variants=variants,
        repeat=args.repeat,
        limit=args.sentences,
        cache_dir=args.cache_dir,
    )
    print(f"{'variant':>15} {'mode':>7} {'audio s/s':>10} {'RTF':>8}")
    for row in report["results"]:
        print(f"{row['variant']:>15} {row['mode']:>7} {row['audio_s_per_s']:>10.3f} {row['rtf']:>8.4f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
