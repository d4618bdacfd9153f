"""The `voxfarm bench` run: padding efficiency, batch sweep and end to end, in that order, into one report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producer.bench.e2e import E2E, chapter_text, farm_run, piper_cli_run, single_thread_rate, temporary_dir
from producer.bench.padding import Item, bucketed_padding, fifo_padding
from producer.bench.report import machine
from producer.bench.sentences import SAMPLE_SEED, SAMPLE_SEGMENTS, measure_frames, sample_segments
from producer.bench.sweep import batch_sweep
from producer.embedded import worker_count
from producer.ingest import load_book
from producer.planner import PlanOptions, default_params, plan_book
from shared.buckets import BucketPolicy
from shared.schema import SynthesisParams
from shared.settings import Settings, load_settings
from shared.voices import VoiceFiles, bundled_voice


@dataclass(frozen=True)
class BenchOptions:
    book: Path
    chapter: int
    """0-based chapter rendered end to end (the sample's chapter X by default)."""
    padding_book: Path
    sweep_edges: tuple[int, ...]
    sweep_sizes: tuple[int, ...]
    padding_batch: int = 16
    padding_sample: int = SAMPLE_SEGMENTS
    """Segments whose frames are measured (0: every segment of the book)."""
    padding_seed: int = SAMPLE_SEED
    repeats: int = 1
    workers: int | None = None
    min_seconds: float = 0.5
    skip_e2e: bool = False


def run_bench(options: BenchOptions) -> dict[str, Any]:
    from workers.engines.piper_onnx import PiperOnnxEngine

    settings = load_settings()
    voice = bundled_voice()
    policy = BucketPolicy.from_edges(settings.bucket_edges)
    params = default_params(voice)
    report: dict[str, Any] = {"machine": machine()}

    # (a) padding efficiency over a real book's sentences
    report["padding_efficiency"] = padding_efficiency(options, settings, voice, params, policy)

    # (b) batch sweep on this device
    engine = PiperOnnxEngine(voice, threads=settings.ort_threads)
    report["batch_sweep"] = batch_sweep(engine, options.sweep_edges, options.sweep_sizes, options.min_seconds)
    engine.close()

    # (c) end to end, side by side, repeated
    if not options.skip_e2e:
        report["e2e"] = end_to_end(options, voice, params, policy)
    else:
        report["e2e"] = {
            "voxfarm_audio_s_per_s": 0.0,
            "piper_cli_audio_s_per_s": 0.0,
            "ideal_audio_s_per_s": 0.0,
            "ratio": 0.0,
            "efficiency": 0.0,
            "skipped": True,
        }
    return report


def padding_efficiency(
    options: BenchOptions, settings: Settings, voice: VoiceFiles, params: SynthesisParams, policy: BucketPolicy
) -> dict[str, Any]:
    """Bucketed against FIFO padding on a seeded sample of the book's segments, at the chosen batch and at one."""
    from workers.engines.piper_torch.frames import STATIC_FRAME_BUCKETS

    padding_plan = plan_book(load_book(options.padding_book), PlanOptions("piper-onnx", voice, params, policy))
    sample = sample_segments(len(padding_plan.segments), options.padding_sample, options.padding_seed)
    segments = [padding_plan.segments[i] for i in sample.indices]
    frames = measure_frames(voice, [s.ids for s in segments], params)
    items = [Item(len(s.ids), f) for s, f in zip(segments, frames, strict=True)]

    # On a CPU the tuned size is one item (warm-up's 'auto'): report it beside the accelerator-typical batch.
    # A worker sorts by frames only where it batches (warm-up: batch sizes above one).
    rows = {}
    for batch in sorted({options.padding_batch, 1}):
        sort = settings.frame_sort_batches if batch > 1 else 1
        static = bucketed_padding(items, batch, policy.edges, STATIC_FRAME_BUCKETS, sort)
        rows[str(batch)] = {
            "bucketed": bucketed_padding(items, batch, policy.edges, None, sort).as_dict(),
            "bucketed_static_frames": static.as_dict(),
            "bucketed_unsorted": bucketed_padding(items, batch, policy.edges, None).as_dict(),
            "fifo": fifo_padding(items, batch).as_dict(),
        }
    headline = rows[str(options.padding_batch)]
    return {
        "bucketed": headline["bucketed"]["frames"],
        "fifo": headline["fifo"]["frames"],
        "batch": options.padding_batch,
        "segments": len(items),
        "book": options.padding_book.name,
        "sample": sample.as_dict(),
        "frame_sort_batches": settings.frame_sort_batches,
        "by_batch": rows,
    }


def end_to_end(
    options: BenchOptions, voice: VoiceFiles, params: SynthesisParams, policy: BucketPolicy
) -> dict[str, Any]:
    """The chapter through the piper CLI, one engine thread and the local farm, ``repeats`` times interleaved."""
    plan = plan_book(load_book(options.book), PlanOptions("piper-onnx", voice, params, policy))
    with temporary_dir() as work:
        text_file = work / "chapter.txt"
        text_file.write_text(chapter_text(plan, options.chapter), encoding="utf-8")
        cores = options.workers or worker_count()
        result = E2E([], [], [], cores)
        # Chapter files only: the piper CLI writes one WAV and no audiobook.
        env = {"VOXFARM_BATCH_TUNING": "auto", "VOXFARM_BOOK_FORMAT": "none", "XDG_CACHE_HOME": str(work / "cache")}
        for _ in range(options.repeats):
            wall, audio = piper_cli_run(voice, text_file, work / "piper.wav")
            result.piper.append(audio / wall)
            wall, audio = single_thread_rate(voice, plan, options.chapter)
            result.single.append(audio / wall)
            run = farm_run(options.book, options.chapter, cores, env)
            result.voxfarm.append(run.speech_s / run.rendered_s)
            result.assembled.append(run.speech_s / run.assembled_s)
    return {**result.as_dict(), "chapter": plan.chapters[options.chapter].title, "repeats": options.repeats}
