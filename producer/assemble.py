"""Assembly: a finished job's segments become one audio file per chapter and a manifest.

Chapters are written incrementally to a temporary file (an hour of audio is
hundreds of megabytes as float samples), then stored next to the manifest
under ``jobs/<job>/``. The manifest is written last: its presence means the
job's output is complete.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from shared.audio import decode_audio, silence
from shared.errors import BadInputError, NotFoundError
from shared.keys import job_dir, manifest_path, plan_path, segment_path
from shared.names import slugify
from shared.schema import ChapterPlan, JobPlan, Manifest, ManifestChapter
from shared.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pauses:
    sentence_ms: int = 250
    paragraph_ms: int = 600
    chapter_ms: int = 1500


def load_plan(storage: Storage, job: str) -> JobPlan:
    try:
        raw = storage.get_bytes(plan_path(job))
    except NotFoundError as exc:
        raise NotFoundError(f"job {job!r} has no plan in {storage.describe()}; was it submitted there?") from exc
    return JobPlan.model_validate_json(raw)


def chapter_file_name(chapter: ChapterPlan, extension: str = "flac") -> str:
    return f"{chapter.index + 1:03d}-{slugify(chapter.title, 48)}.{extension}"


def assemble_job(
    storage: Storage,
    job: str,
    *,
    pauses: Pauses,
    segments_reused: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    plan = load_plan(storage, job)
    chapters: list[ManifestChapter] = []
    files: dict[str, str] = {}
    offset = 0.0
    with tempfile.TemporaryDirectory(prefix="voxfarm-assemble-") as tmp:
        for chapter in plan.chapters:
            name = chapter_file_name(chapter)
            local = Path(tmp) / name
            duration = _write_chapter(storage, plan, chapter, local, pauses)
            storage.put_file(f"{job_dir(job)}/{name}", local, "audio/flac")
            local.unlink()
            chapters.append(
                ManifestChapter(
                    index=chapter.index,
                    title=chapter.title,
                    file=name,
                    duration_s=round(duration, 3),
                    segments=len(chapter.segments),
                    start_s=round(offset, 3),
                    keys=[s.key for s in chapter.segments],
                )
            )
            offset += duration
            if progress:
                progress(chapter.index + 1, len(plan.chapters))
    manifest = Manifest(
        job=plan.job,
        title=plan.title,
        author=plan.author,
        language=plan.language,
        voice=plan.voice,
        engine=plan.engine,
        sample_rate=plan.sample_rate,
        segments_total=plan.segments_total,
        segments_reused=segments_reused,
        chapters=chapters,
        files=files,
        duration_s=round(offset, 3),
        created_at=time.time(),
    )
    storage.put_bytes(manifest_path(job), manifest.model_dump_json(indent=2).encode(), "application/json")
    log.info("assembled %s: %d chapters, %.0fs of audio", job, len(chapters), offset, extra={"job": job})
    return manifest


def _write_chapter(storage: Storage, plan: JobPlan, chapter: ChapterPlan, target: Path, pauses: Pauses) -> float:
    rate = plan.sample_rate
    written = 0
    with sf.SoundFile(target, "w", samplerate=rate, channels=1, format="FLAC", subtype="PCM_16") as out:
        for position, segment in enumerate(chapter.segments):
            try:
                data = storage.get_bytes(segment_path(plan.voice, segment.key))
            except NotFoundError as exc:
                raise NotFoundError(
                    f"segment {segment.index} of {plan.job} is missing from storage; run `voxfarm resume {plan.job}`"
                ) from exc
            samples, segment_rate = decode_audio(data)
            if segment_rate != rate:
                raise BadInputError(f"segment {segment.index} has {segment_rate} Hz audio, the job expects {rate} Hz")
            last = position == len(chapter.segments) - 1
            gap = pauses.chapter_ms if last else pauses.paragraph_ms if segment.paragraph_end else pauses.sentence_ms
            block = np.concatenate([samples, silence(gap, rate)])
            out.write(block)
            written += len(block)
    return written / rate
