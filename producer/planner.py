"""Book -> job plan: chapters of sentence segments, each with its tokens, bucket and content key.

Planning runs on the control plane and never loads a model: the frontend
needs only the voice's config, the key needs the voice's checksum. A
Qwen3-TTS voice (``ResolvedVoice``) also gives each chapter its voicing
(speaker, instruction, clone prompt), which enters the keys and the messages.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from producer.cast import Cast
from producer.cast_plan import CastPlanner
from producer.ingest import Book
from producer.ingest.model import Chapter
from producer.languages import LanguageCheck
from producer.segments import SegmentVoice, keyed_segment
from shared.buckets import BucketPolicy, model_name
from shared.engines import engine_spec
from shared.errors import BadInputError, EmptyInputError
from shared.frontend import Frontend, create_frontend
from shared.frontend.dialogue import strip_voice_marks, voice_mark
from shared.frontend.lexicon import Lexicon
from shared.keys import job_dir
from shared.names import check_job_id, slugify
from shared.presets import model_params
from shared.qwen.voices import ResolvedVoice
from shared.schema import AssemblyOptions, ChapterPlan, JobPlan, SynthesisParams
from shared.voices import VoiceFiles


@dataclass(frozen=True)
class PlanOptions:
    engine: str
    voice: VoiceFiles | ResolvedVoice
    params: SynthesisParams
    policy: BucketPolicy
    job: str | None = None
    speak_titles: bool = True
    lexicon: Lexicon | None = None
    assembly: AssemblyOptions | None = None
    max_chars: int = 20_000_000
    """Refuse books longer than this before phonemising them (see Settings.max_book_chars)."""
    cast: Cast | None = None
    """Voices for narration, dialogue, characters and languages; ``voice`` and ``params`` are then the narrator's."""
    bench: bool = False
    """Planned by `voxfarm bench`, the one place a bench-only engine (the stand-in) may be used."""


def default_params(voice: VoiceFiles | ResolvedVoice) -> SynthesisParams:
    """The voice's own inference settings from its config (Qwen3-TTS samples with its checkpoint's settings)."""
    if isinstance(voice, ResolvedVoice):
        return SynthesisParams()
    return model_params(voice.config)


def make_frontend(options: PlanOptions) -> Frontend:
    spec = engine_spec(options.engine)
    return create_frontend(
        spec.frontend, options.voice.config, max_tokens=options.policy.largest, lexicon=options.lexicon
    )


def check_plannable(book: Book, options: PlanOptions) -> None:
    """What refuses a book before a sentence is phonemised: its size, and an engine that only benchmarks."""
    chars = sum(len(p) for chapter in book.chapters for p in chapter.paragraphs)
    if chars > options.max_chars:
        raise BadInputError(
            f"{book.title!r} has {chars:,} characters of text, over the {options.max_chars:,} one job takes "
            "(several times War and Peace); split it with --chapters, or raise VOXFARM_MAX_BOOK_CHARS"
        )
    spec = engine_spec(options.engine)
    if spec.bench_only and not options.bench:
        raise BadInputError(
            f"engine {spec.name} does not speak the text (it measures the farm's own cost): "
            "it runs only in `voxfarm bench --engine-standin`"
        )


def plan_book(book: Book, options: PlanOptions, frontend: Frontend | None = None) -> JobPlan:
    check_plannable(book, options)
    spec = engine_spec(options.engine)
    voice = options.voice
    checksum = voice.checksum
    # A cast's Qwen3-TTS voices carry their voicing per voice, never for the whole job.
    qwen = voice if isinstance(voice, ResolvedVoice) and options.cast is None else None
    job_conditioning = qwen.conditioning() if qwen else None
    chapters: list[ChapterPlan] = []
    index = 0
    cast = CastPlanner(options.cast, spec, options.policy, options.lexicon, book.language) if options.cast else None
    languages = LanguageCheck(voice, book.language)
    for chapter_index, chapter in enumerate(book.chapters):
        # Utterance lists (JSONL) title each "chapter" with its id: never read those aloud.
        speak_title = options.speak_titles and book.source_format != "jsonl" and chapter.title.strip()
        voicing = {}
        if cast is not None:
            title = chapter.title if speak_title else None
            segments = cast.chapter(chapter_paragraphs(chapter), index, title, chapter.instruct)
            conditioning, voicing = None, cast.voicing
        else:
            frontend = frontend or make_frontend(options)
            paragraphs = [strip_voice_marks(p) for p in chapter.paragraphs]
            if speak_title:
                paragraphs.insert(0, chapter.title)
            conditioning = qwen.conditioning(chapter.instruct) if qwen else None
            document = qwen.key_document(conditioning) if qwen and conditioning else None
            reader = SegmentVoice(spec, voice.id, checksum, options.params, voice.sample_rate, document)
            segments = [
                keyed_segment(piece, at, reader, options.policy, paragraph_end=piece.paragraph_end)
                for at, piece in enumerate(languages.segment_chapter(frontend, paragraphs), start=index)
            ]
        index += len(segments)
        if segments:
            chapters.append(
                ChapterPlan(
                    index=len(chapters),
                    title=chapter.title or f"Chapter {chapter_index + 1}",
                    chars=sum(len(p) for p in chapter.paragraphs),
                    segments=segments,
                    conditioning=conditioning if conditioning != job_conditioning else None,
                    voicing=voicing,
                )
            )
    if not chapters:
        raise EmptyInputError(f"{book.title!r} has no speakable text after normalisation")
    job = (
        check_job_id(options.job)
        if options.job
        else default_job_id(book.title, [s.key for c in chapters for s in c.segments])
    )
    narrator = options.cast.narrator if options.cast else None
    return JobPlan(
        job=job,
        title=book.title,
        author=book.author,
        language=book.language,
        voice=narrator.name if narrator else voice.id,
        engine=spec.name,
        model=narrator.queue_model(spec.name)
        if narrator
        else model_name(spec.name, qwen.model.name if qwen else voice.id),
        sample_rate=narrator.sample_rate if narrator else voice.sample_rate,
        params=narrator.params if narrator else options.params,
        voices=cast.plan_voices() if cast else {},
        notes=cast.notes() if cast else languages.notes(),
        created_at=time.time(),
        chapters=chapters,
        cover=cover_path(job, book.cover_type) if book.cover else None,
        assembly=options.assembly,
        conditioning=job_conditioning,
    )


def chapter_paragraphs(chapter: Chapter) -> list[str]:
    """A chapter whose source names its voice (a JSONL utterance's ``voice``) is marked up as such."""
    if chapter.voice:
        return [voice_mark(chapter.voice, p) for p in chapter.paragraphs]
    return list(chapter.paragraphs)


#: Cover types a book may declare -> the extension it is stored under (the bytes are checked at assembly).
COVER_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/svg+xml": "svg",
}


def cover_path(job: str, cover_type: str | None) -> str:
    """Where submit stores the book's cover: ``jobs/<job>/cover.<ext>``, read back by assembly."""
    extension = COVER_EXTENSIONS.get((cover_type or "").split(";")[0].strip().lower(), "img")
    return f"{job_dir(job)}/cover.{extension}"


def default_job_id(title: str, keys: Sequence[str]) -> str:
    """Readable and deterministic: the same book, voice and settings give the same job id."""
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:10]
    return f"{slugify(title, 40)}-{digest}"


def plan_summary(plan: JobPlan) -> dict[str, object]:
    """What `voxfarm plan --json` prints (contract: plan.schema.json)."""
    return {
        "job": plan.job,
        "title": plan.title,
        "author": plan.author,
        "language": plan.language,
        "voice": plan.voice,
        "engine": plan.engine,
        "segments_total": plan.segments_total,
        "chars_total": sum(c.chars for c in plan.chapters),
        "tokens_total": sum(len(s.ids) for s in plan.segments),
        "buckets": _bucket_counts(plan),
        "voices": dict(sorted(Counter(plan.voice_of(s) for s in plan.segments).items())),
        "notes": list(plan.notes),
        "chapters": [
            {"index": c.index, "title": c.title, "segments": len(c.segments), "chars": c.chars} for c in plan.chapters
        ],
    }


def _bucket_counts(plan: JobPlan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for segment in plan.segments:
        counts[str(segment.bucket)] = counts.get(str(segment.bucket), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: int(kv[0])))
