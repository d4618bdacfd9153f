"""End to end: a chapter on warm local workers against the `piper` CLI and the ideal, side by side."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from producer.embedded import local_farm
from producer.ingest import load_book
from producer.planner import PlanOptions, default_params, plan_book
from producer.submit import submit_plan
from shared.audio import decode_audio
from shared.buckets import BucketPolicy
from shared.celery_app import create_app
from shared.errors import FatalError
from shared.keys import segment_path
from shared.ledger import Ledger
from shared.schema import JobPlan
from shared.settings import load_settings
from shared.storage import open_storage
from shared.voices import VoiceFiles, bundled_voice
from workers.engines.base import EngineRequest


def chapter_text(plan: JobPlan, chapter: int) -> str:
    return "\n".join(segment.text for segment in plan.chapters[chapter].segments)


def piper_cli_run(voice: VoiceFiles, text_file: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and audio seconds of the piper command line on the chapter."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "piper",
            "-m",
            str(voice.model_path),
            "-c",
            str(voice.config_path),
            "-i",
            str(text_file),
            "-f",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    with wave.open(str(out)) as handle:
        audio = handle.getnframes() / handle.getframerate()
    return wall, audio


def single_thread_rate(voice: VoiceFiles, plan: JobPlan, chapter: int) -> tuple[float, float]:
    """The engine's own speed on one thread, one segment at a time: (wall seconds, audio seconds)."""
    from workers.engines.piper_onnx import PiperOnnxEngine

    engine = PiperOnnxEngine(voice, threads=1)
    segments = plan.chapters[chapter].segments
    engine.synthesize([EngineRequest(segments[0].key, segments[0].ids, plan.params)], len(segments[0].ids))
    started, audio = time.perf_counter(), 0.0
    for segment in segments:
        output = engine.synthesize([EngineRequest(segment.key, segment.ids, plan.params)], len(segment.ids))
        audio += len(output.audio[0]) / engine.sample_rate
    return time.perf_counter() - started, audio


@dataclass(frozen=True)
class FarmRun:
    rendered_s: float
    """From planning to every segment in storage: the render itself."""
    assembled_s: float
    """From planning to the levelled chapter file written (assembly has no counterpart in the piper CLI)."""
    speech_s: float


def farm_run(book: Path, chapter: int, workers: int, env: dict[str, str]) -> FarmRun:
    """Render one chapter on warm local workers, timed from planning to stored, and to assembled.

    The workers are started and warmed before the clock starts, as a farm is
    a standing service; planning (phonemes) and submission run in this
    process and are timed, as the piper CLI's phonemisation is. Each run
    gets fresh storage, so nothing is reused from an earlier run.
    """
    with temporary_dir() as store:
        run_env = {**env, "VOXFARM_STORAGE_URL": store.as_uri()}
        with local_farm(workers=workers, extra_env=run_env) as (redis_url, farm):
            farm.after_exit = _abandon_run
            settings = load_settings(redis_url=redis_url, storage_url=store.as_uri())
            storage = open_storage(store.as_uri())
            ledger = Ledger.from_url(redis_url)
            app = create_app(settings)
            voice = bundled_voice()
            started = time.perf_counter()
            plan = plan_book(
                load_book(book, chapters=str(chapter + 1)),
                PlanOptions("piper-onnx", voice, default_params(voice), BucketPolicy.from_edges(settings.bucket_edges)),
            )
            submit_plan(plan, storage=storage, ledger=ledger, app=app, replace=True)
            rendered = None
            while (state := ledger.status(plan.job).state) not in ("done", "failed"):
                if rendered is None and state == "assembling":
                    rendered = time.perf_counter() - started
                farm.check_alive()
                time.sleep(0.01)
            assembled = time.perf_counter() - started
        if state != "done":
            raise RuntimeError(f"the benchmark job ended {state}")
        speech = sum(len(decode_audio(storage.get_bytes(segment_path(plan.voice, s.key)))[0]) for s in plan.segments)
    return FarmRun(rendered or assembled, assembled, speech / plan.sample_rate)


def _abandon_run() -> None:
    """A local process died mid-run: its restart would be timed too, so the figure would mean nothing."""
    raise FatalError("a local worker died during the benchmark run; its figures would include the restart")


@dataclass
class E2E:
    voxfarm: list[float]
    piper: list[float]
    single: list[float]
    cores: int
    assembled: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, float | int]:
        voxfarm = statistics.median(self.voxfarm)
        piper = statistics.median(self.piper)
        single = statistics.median(self.single)
        ideal = self.cores * single
        return {
            "voxfarm_audio_s_per_s": round(voxfarm, 3),
            "piper_cli_audio_s_per_s": round(piper, 3),
            "single_thread_audio_s_per_s": round(single, 3),
            "ideal_audio_s_per_s": round(ideal, 3),
            "cores": self.cores,
            "ratio": round(voxfarm / piper, 3),
            "efficiency": round(voxfarm / ideal, 3),
            "voxfarm_assembled_audio_s_per_s": round(statistics.median(self.assembled), 3) if self.assembled else 0.0,
        }


@contextmanager
def temporary_dir() -> Iterator[Path]:
    """A work folder for one benchmark, removed afterwards: a run stores hundreds of megabytes of segments."""
    work = Path(tempfile.mkdtemp(prefix="voxfarm-bench-"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
