"""Assembly: a finished job's segments become chapter files, an M4B, subtitles and a manifest.

One chapter at a time: its segments are fetched from storage (a few in
flight at once), laid end to end with the configured pauses into a
temporary file of float samples, levelled to the loudness target under the
true-peak ceiling (``producer.audiobook.loudness``), and written as the
chapter file. The levelled lossless chapters then make the M4B in one
ffmpeg run, with a chapter mark at each chapter's first sample. Memory
holds a chunk of one chapter at a time, never the book. Everything is
stored under ``jobs/<job>/``; the manifest is written last: its presence
means the job's output is complete.

How the book is assembled (pauses, formats, loudness, subtitles) is chosen
at submit time and kept in the plan; a plan without those options is
assembled with the control service's settings.
"""

from __future__ import annotations

import io
import logging
import math
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from producer.audiobook import ffmetadata, subtitles
from producer.audiobook.cover import Cover, prepare_cover
from producer.audiobook.ffmpeg import EncoderError, encode_lossy
from producer.audiobook.loudness import Leveller, LevelReport, LoudnessTarget
from producer.audiobook.m4b import BookInfo, build_m4b
from producer.audiobook.resample import resample
from producer.audiobook.voice_match import VoiceMatcher
from producer.submit import load_plan
from shared.errors import BadInputError, NotFoundError
from shared.keys import job_dir, manifest_path, segment_path
from shared.names import slugify
from shared.quality import QualityReport, report_from_comment, speech_bounds
from shared.schema import (
    AssemblyOptions,
    ChapterPlan,
    JobPlan,
    Manifest,
    ManifestChapter,
    SegmentPlan,
    SegmentVoice,
)
from shared.storage import Storage

log = logging.getLogger(__name__)

FETCH_THREADS = 8
MIME = {
    "flac": "audio/flac",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "m4b": "audio/mp4",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
}


@dataclass(frozen=True)
class Pauses:
    sentence_ms: int = 250
    paragraph_ms: int = 600
    chapter_ms: int = 1500


def chapter_file_name(chapter: ChapterPlan, extension: str = "flac") -> str:
    return f"{chapter.index + 1:03d}-{slugify(chapter.title, 48)}.{extension}"


def book_file_name(plan: JobPlan, extension: str = "m4b") -> str:
    return f"{slugify(plan.title, 60)}.{extension}"


def assemble_job(
    storage: Storage,
    job: str,
    *,
    pauses: Pauses,
    segments_reused: int = 0,
    options: AssemblyOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Assemble a finished job; the plan's own assembly options win over ``options`` and ``pauses``."""
    plan = load_plan(storage, job)
    chosen = plan.assembly or (options or AssemblyOptions()).model_copy(
        update={
            "sentence_pause_ms": pauses.sentence_ms,
            "paragraph_pause_ms": pauses.paragraph_ms,
            "chapter_pause_ms": pauses.chapter_ms,
        }
    )
    return _Assembly(storage, plan, chosen).run(segments_reused, progress)


@dataclass
class _ChapterOutput:
    manifest: ManifestChapter
    lossless: Path
    samples: int


@dataclass
class _Assembly:
    storage: Storage
    plan: JobPlan
    options: AssemblyOptions
    notes: list[str] = field(default_factory=list)
    segment_rates: dict[int, int] = field(default_factory=dict)
    """Each segment's own sample rate as stored, before it was brought to the job's."""

    @property
    def rate(self) -> int:
        return self.plan.sample_rate

    def run(self, segments_reused: int, progress: Callable[[int, int], None] | None) -> Manifest:
        plan, options = self.plan, self.options
        files: dict[str, str] = {}
        chapters: list[ManifestChapter] = []
        lossless: list[Path] = []
        offsets: list[int] = []
        position = 0
        with (
            tempfile.TemporaryDirectory(prefix="voxfarm-assemble-") as tmp,
            ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="voxfarm-fetch") as pool,
        ):
            work = Path(tmp)
            for chapter in plan.chapters:
                out = self._chapter(chapter, work, pool, start_samples=position)
                chapters.append(out.manifest)
                lossless.append(out.lossless)
                offsets.append(position)
                position += out.samples
                if progress:
                    progress(chapter.index + 1, len(plan.chapters))
            cover = self._cover(files)
            if options.book_format == "m4b":
                files["m4b"] = self._m4b(
                    chapters=chapters, lossless=lossless, offsets=offsets, total=position, cover=cover, work=work
                )
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
            duration_s=round(position / self.rate, 3),
            created_at=time.time(),
            segments_flagged=sum(len(c.quality) for c in chapters),
            loudness_target_lufs=options.loudness_target_lufs,
            true_peak_ceiling_dbtp=options.true_peak_dbtp,
            notes=[*self.plan.notes, *self.notes],
            cast={name: use.model_dump(mode="json") for name, use in plan.voices.items()},
        )
        self.storage.put_bytes(manifest_path(plan.job), manifest.model_dump_json(indent=2).encode(), "application/json")
        log.info(
            "assembled %s: %d chapters, %.0fs of audio, %d segments flagged",
            plan.job,
            len(chapters),
            manifest.duration_s,
            manifest.segments_flagged,
            extra={"job": plan.job},
        )
        return manifest

    # --- one chapter -------------------------------------------------------------
    def _gap_ms(self, chapter: ChapterPlan, position: int, segment: SegmentPlan) -> int:
        if position == len(chapter.segments) - 1:
            return self.options.chapter_pause_ms
        if segment.continues:
            return 0  # a quotation inside a sentence: the text has no pause there
        return self.options.paragraph_pause_ms if segment.paragraph_end else self.options.sentence_pause_ms

    def _chapter(
        self, chapter: ChapterPlan, work: Path, pool: ThreadPoolExecutor, *, start_samples: int
    ) -> _ChapterOutput:
        rate = self.rate
        raw_path = work / "chapter.f32"
        timings: list[subtitles.TimedText] = []
        flagged: list[dict[str, Any]] = []
        written = 0
        voices = VoiceMatcher(rate, self.plan.voice)
        with raw_path.open("wb") as raw:
            lead = _silence(self.options.chapter_lead_ms, rate)
            raw.write(lead.tobytes())
            written += len(lead)
            fetched = self._fetch(chapter.segments, pool)
            for position, (segment, samples, report) in enumerate(fetched):
                begin, end = speech_bounds(samples, rate)
                if end > begin:
                    timings.append(
                        subtitles.TimedText(
                            (written + begin) / rate, (written + end) / rate, segment.text, segment.speaker
                        )
                    )
                voices.add(self.plan.voice_of(segment), samples, written)
                if report is not None and not report.passed:
                    flagged.append(
                        {
                            "segment": segment.index,
                            "key": segment.key,
                            "attempts": report.attempts,
                            "findings": [f.as_dict() for f in report.findings],
                        }
                    )
                gap = _silence(self._gap_ms(chapter, position, segment), rate)
                raw.write(samples.tobytes())
                raw.write(gap.tobytes())
                written += len(samples) + len(gap)
        gains = voices.gains_db()
        voices.apply(raw_path, gains)
        source = np.memmap(raw_path, dtype=np.float32, mode="r") if written else np.zeros(0, dtype=np.float32)
        fmt = self.options.chapter_format
        lossless_format = "wav" if fmt == "wav" else "flac"
        lossless = work / f"chapter-{chapter.index:05d}.{lossless_format}"
        level = self._level(source, chapter, lossless, lossless_format, work)
        del source
        raw_path.unlink()
        name = chapter_file_name(chapter, fmt)
        folder = job_dir(self.plan.job)
        if fmt in ("mp3", "opus"):
            encoded = work / name
            encode_lossy(lossless, encoded, fmt, bitrate_kbps=self.options.bitrate_kbps, tags=self._tags(chapter))
            self.storage.put_file(f"{folder}/{name}", encoded, MIME[fmt])
            encoded.unlink()
        else:
            self.storage.put_file(f"{folder}/{name}", lossless, MIME[fmt])
        subtitle_files = self._subtitles(chapter, timings)
        if flagged:
            log.warning(
                "chapter %d of %s keeps %d segments that failed the quality gate",
                chapter.index + 1,
                self.plan.job,
                len(flagged),
                extra={"job": self.plan.job},
            )
        entry = ManifestChapter(
            index=chapter.index,
            title=chapter.title,
            file=name,
            duration_s=round(written / rate, 3),
            segments=len(chapter.segments),
            start_s=round(start_samples / rate, 3),
            keys=[s.key for s in chapter.segments],
            loudness_lufs=_rounded(level.output_lufs),
            true_peak_dbtp=_rounded(level.output_true_peak_dbtp),
            gain_db=_rounded(level.gain_db),
            limited_db=round(level.limited_db, 2),
            subtitles=subtitle_files,
            quality=flagged,
            voices=[self.plan_voice(segment) for segment in chapter.segments],
            voice_gains_db=gains,
        )
        return _ChapterOutput(entry, lossless, written)

    def _level(
        self, source: np.ndarray, chapter: ChapterPlan, target: Path, lossless_format: str, work: Path
    ) -> LevelReport:
        goal = LoudnessTarget(self.options.loudness_target_lufs, self.options.true_peak_dbtp)
        leveller = Leveller(source, self.rate, goal, scratch=work / "envelope.npy")
        leveller.measure()
        file_format = "WAV" if lossless_format == "wav" else "FLAC"
        with sf.SoundFile(target, "w", samplerate=self.rate, channels=1, format=file_format, subtype="PCM_16") as out:
            for key, value in self._tags(chapter).items():
                if value:
                    setattr(out, key, ffmetadata.clean_value(value))
            report = leveller.write(lambda block: out.write(np.clip(block, -1.0, 1.0)))
        del leveller
        (work / "envelope.npy").unlink(missing_ok=True)
        return report

    def plan_voice(self, segment: SegmentPlan) -> SegmentVoice:
        return SegmentVoice(
            voice=self.plan.voice_of(segment),
            kind=segment.kind,
            speaker=segment.speaker,
            language=segment.language,
            sample_rate=self.segment_rates.get(segment.index),
        )

    def _tags(self, chapter: ChapterPlan) -> dict[str, str | None]:
        return {
            "title": chapter.title,
            "album": self.plan.title,
            "artist": self.plan.author,
            "tracknumber": f"{chapter.index + 1}/{len(self.plan.chapters)}",
        }

    def _subtitles(self, chapter: ChapterPlan, timings: Sequence[subtitles.TimedText]) -> dict[str, str]:
        wanted = {"none": (), "srt": ("srt",), "vtt": ("vtt",), "both": ("srt", "vtt")}[self.options.subtitles]
        if not wanted:
            return {}
        cues = subtitles.cues(timings, speakers=self.options.subtitle_speakers)
        names: dict[str, str] = {}
        for kind in wanted:
            text = subtitles.to_srt(cues) if kind == "srt" else subtitles.to_vtt(cues)
            name = chapter_file_name(chapter, kind)
            self.storage.put_bytes(f"{job_dir(self.plan.job)}/{name}", text.encode("utf-8"), MIME[kind])
            names[kind] = name
        return names

    def _fetch(
        self, segments: Sequence[SegmentPlan], pool: ThreadPoolExecutor
    ) -> Iterator[tuple[SegmentPlan, np.ndarray, QualityReport | None]]:
        """Segments in order, with a few downloads running ahead."""
        pending: deque[tuple[SegmentPlan, Future[tuple[np.ndarray, QualityReport | None]]]] = deque()
        upcoming = iter(segments)
        for segment in upcoming:
            pending.append((segment, pool.submit(self._load, segment)))
            if len(pending) >= 2 * FETCH_THREADS:
                break
        while pending:
            segment, future = pending.popleft()
            following = next(upcoming, None)
            if following is not None:
                pending.append((following, pool.submit(self._load, following)))
            samples, report = future.result()
            yield segment, samples, report

    def _load(self, segment: SegmentPlan) -> tuple[np.ndarray, QualityReport | None]:
        try:
            data = self.storage.get_bytes(segment_path(self.plan.weights_of(segment), segment.key))
        except NotFoundError as exc:
            raise NotFoundError(
                f"segment {segment.index} of {self.plan.job} is missing from storage; "
                f"run `voxfarm resume {self.plan.job}`"
            ) from exc
        try:
            with sf.SoundFile(io.BytesIO(data)) as audio:
                rate, comment = audio.samplerate, audio.comment
                samples = audio.read(dtype="float32", always_2d=True).mean(axis=1).astype(np.float32)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise BadInputError(f"segment {segment.index} of {self.plan.job} is not readable audio: {exc}") from exc
        self.segment_rates[segment.index] = rate
        return resample(samples, rate, self.rate), report_from_comment(comment)

    # --- the whole book ------------------------------------------------------------
    def _cover(self, files: dict[str, str]) -> Cover | None:
        if not self.plan.cover:
            return None
        try:
            data = self.storage.get_bytes(self.plan.cover)
        except NotFoundError:
            self.notes.append("cover not embedded: the cover recorded in the plan is missing from storage")
            return None
        cover, note = prepare_cover(data)
        if note:
            self.notes.append(note)
        if cover is not None:
            name = f"cover.{cover.extension}"
            path = f"{job_dir(self.plan.job)}/{name}"
            if path != self.plan.cover:
                self.storage.put_bytes(path, cover.data, cover.mime)
            files["cover"] = name
        return cover

    def _m4b(
        self,
        *,
        chapters: Sequence[ManifestChapter],
        lossless: Sequence[Path],
        offsets: Sequence[int],
        total: int,
        cover: Cover | None,
        work: Path,
    ) -> str:
        rate = self.rate
        bounds = [*offsets, total]
        marks = [ffmetadata.ChapterMark(c.title, bounds[i], bounds[i + 1]) for i, c in enumerate(chapters)]
        info = BookInfo(self.plan.title, self.plan.author, self.plan.language, narrator=self.plan.voice)
        name = book_file_name(self.plan)
        target = work / name
        try:
            build_m4b(
                lossless, marks, info, target, bitrate_kbps=self.options.bitrate_kbps, cover=cover, ticks_per_s=rate
            )
        except EncoderError as exc:
            if cover is None:
                raise
            self.notes.append(f"cover not embedded: ffmpeg refused it ({exc})")
            build_m4b(
                lossless, marks, info, target, bitrate_kbps=self.options.bitrate_kbps, cover=None, ticks_per_s=rate
            )
        self.storage.put_file(f"{job_dir(self.plan.job)}/{name}", target, MIME["m4b"])
        return name


def _silence(milliseconds: int, sample_rate: int) -> np.ndarray:
    return np.zeros(round(sample_rate * milliseconds / 1000.0), dtype=np.float32)


def _rounded(value: float, digits: int = 2) -> float | None:
    return round(value, digits) if math.isfinite(value) else None
