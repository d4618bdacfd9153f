"""A submission before planning: the book as read and the options as given, storable as JSON.

`voxfarm plan`, `render` and `submit` (and the HTTP API) read the book and
check the options first: an unknown voice or an unreadable lexicon fails in
a second. Planning (normalising and phonemising every sentence) is the slow
part, about half a millisecond a sentence, so a large book is not planned
by the command: it stores this request and the control plane plans it
(``producer/deferred.py``). Both ways plan with ``check_request(...).plan()``
from the same request, and the job id is a digest of the request, so a
job's plan and id do not depend on where it was planned.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from producer.cast import CastFile
from producer.ingest import Book
from producer.ingest.model import Chapter
from producer.planner import PlanOptions, check_plannable, cover_path, default_params, plan_book
from shared.buckets import BucketPolicy
from shared.errors import BadInputError, NotFoundError
from shared.frontend.lexicon import Lexicon
from shared.keys import job_dir
from shared.names import check_job_id, slugify
from shared.qwen.voices import ResolvedVoice
from shared.schema import AssemblyOptions, JobPlan
from shared.settings import Settings
from shared.storage import Storage
from shared.voices import VoiceFiles, VoiceRegistry

REQUEST_FILE = "request.json"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChapterText(_Frozen):
    title: str
    paragraphs: list[str]
    instruct: str | None = None
    voice: str | None = None


class BookText(_Frozen):
    """A book as ingestion read it (its cover is stored apart, where the plan names it)."""

    title: str
    author: str | None
    language: str | None
    chapters: list[ChapterText]
    cover_type: str | None = None
    source_format: str = ""

    @classmethod
    def of(cls, book: Book) -> BookText:
        chapters = [
            ChapterText(title=c.title, paragraphs=c.paragraphs, instruct=c.instruct, voice=c.voice)
            for c in book.chapters
        ]
        return cls(
            title=book.title,
            author=book.author,
            language=book.language,
            chapters=chapters,
            cover_type=book.cover_type if book.cover else None,
            source_format=book.source_format,
        )

    def book(self) -> Book:
        chapters = [Chapter(c.title, list(c.paragraphs), c.instruct, c.voice) for c in self.chapters]
        return Book(
            self.title,
            self.author,
            self.language,
            chapters,
            cover_type=self.cover_type,
            source_format=self.source_format,
        )

    @property
    def chars(self) -> int:
        return sum(len(p) for chapter in self.chapters for p in chapter.paragraphs)


class PlanRequest(_Frozen):
    """Everything planning reads, fixed at submission (the farm's settings may change before it is planned)."""

    book: BookText
    voice: str
    engine: str
    cast: CastFile | None = None
    cast_where: str = "--cast"
    lexicon: str | None = None
    lexicon_where: str = "lexicon"
    length_scale: float | None = None
    noise_scale: float | None = None
    noise_w: float | None = None
    job: str | None = None
    speak_titles: bool = True
    assembly: AssemblyOptions | None = None
    bucket_edges: list[int]
    max_chars: int


@dataclass(frozen=True)
class Submission:
    """A checked request (its job id filled in), and the book and options that plan it."""

    request: PlanRequest
    book: Book
    options: PlanOptions
    cover: bytes | None

    @property
    def job(self) -> str:
        assert self.request.job is not None
        return self.request.job

    def plan(self) -> JobPlan:
        # The cover's place comes from the request: the control plane plans without the bytes, stored at submit.
        return plan_book(self.book, self.options).model_copy(update={"cover": self.plan_cover()})

    def plan_cover(self) -> str | None:
        """Where the plan says the cover is."""
        cover_type = self.request.book.cover_type
        return cover_path(self.job, cover_type) if cover_type else None

    def with_job(self, job: str) -> Submission:
        """The same submission under another id (the HTTP API scopes ids to the tenant)."""
        request = self.request.model_copy(update={"job": check_job_id(job)})
        return replace(self, request=request, options=replace(self.options, job=job))


def submission_from_args(args: argparse.Namespace, settings: Settings, storage: Storage | None) -> Submission:
    """The book read and every option checked: what can fail in a second, before any phonemising."""
    request, cover = request_from_args(args, settings)
    return check_request(request, settings, storage, cover)


def request_from_args(args: argparse.Namespace, settings: Settings) -> tuple[PlanRequest, bytes | None]:
    """Read the book and the files the command line names; the cover travels apart."""
    from producer.cast_command import cast_file_of
    from producer.ingest import load_book, select_chapters
    from producer.voice_sidecar import apply_sidecar

    cast_path: Path | None = getattr(args, "cast", None)
    cast = cast_file_of(cast_path, args.voice)
    lexicon = Lexicon.read_text(args.lexicon) if args.lexicon else None
    book = load_book(args.book, include_matter=args.include_matter, max_bytes=settings.max_source_bytes)
    book = apply_sidecar(book, args.book)
    if args.chapters is not None:
        book = replace(book, chapters=select_chapters(book.chapters, args.chapters))
    request = PlanRequest(
        book=BookText.of(book),
        voice=args.voice or settings.voice,
        engine=args.engine or "",
        cast=cast,
        cast_where=str(cast_path) if cast_path else "--cast",
        lexicon=lexicon,
        lexicon_where=str(args.lexicon) if args.lexicon else "lexicon",
        length_scale=args.length_scale,
        noise_scale=args.noise_scale,
        noise_w=args.noise_w,
        job=args.job,
        speak_titles=not args.no_titles,
        assembly=assembly_options(
            settings,
            chapter_format=getattr(args, "chapter_format", None),
            book_format=getattr(args, "book_format", None),
            loudness_target_lufs=getattr(args, "loudness", None),
            true_peak_dbtp=getattr(args, "true_peak", None),
            subtitles=getattr(args, "subtitles", None),
            subtitle_speakers=getattr(args, "subtitle_speakers", None),
        ),
        bucket_edges=list(settings.bucket_edges),
        max_chars=settings.max_book_chars,
    )
    return request, book.cover


def check_request(
    request: PlanRequest, settings: Settings, storage: Storage | None, cover: bytes | None = None
) -> Submission:
    """Resolve every voice and check the book's size and engine: all that can fail before phonemising."""
    from producer.cast_command import cast_of, with_overrides
    from producer.cast_qwen import QwenCastVoice
    from producer.qwen_voices import find_qwen_voice
    from shared.engines import engine_spec

    cast = cast_of(
        request.cast, request.cast_where, request.voice, request.engine or None, settings=settings, storage=storage
    )
    qwen = None if cast else find_qwen_voice(request.voice, request.engine or settings.engine, settings, storage)
    engine = qwen.spec.engine if qwen else request.engine or settings.submit_engine
    engine_spec(engine)
    if cast is not None:
        cast.check_engine(engine)
    book = request.book.book()
    voice: VoiceFiles | ResolvedVoice | None = None
    if cast is not None:
        cast = cast.for_book(book.language)
        narrator = cast.narrator
        voice = narrator.resolved if isinstance(narrator, QwenCastVoice) else narrator.files
    elif qwen is not None:
        voice = qwen.resolve(book.language)
    else:
        voice = VoiceRegistry(settings.voices_dir, storage, settings.effective_cache_dir).resolve(request.voice)
    params = cast.narrator.params if cast else default_params(voice)
    overrides = {"length_scale": request.length_scale, "noise_scale": request.noise_scale, "noise_w": request.noise_w}
    params = params.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    params = type(params).model_validate(params.model_dump())
    options = PlanOptions(
        engine=engine,
        voice=voice,
        params=params,
        policy=BucketPolicy.from_edges(request.bucket_edges),
        job=check_job_id(request.job) if request.job else request_job_id(request, engine, voice.checksum),
        max_chars=request.max_chars,
        speak_titles=request.speak_titles,
        lexicon=Lexicon.parse(request.lexicon, source=request.lexicon_where) if request.lexicon is not None else None,
        cast=with_overrides(cast, overrides),
        assembly=request.assembly,
    )
    check_plannable(book, options)
    return Submission(request.model_copy(update={"job": options.job}), replace(book, cover=cover), options, cover)


def assembly_options(settings: Settings, **overrides: Any) -> AssemblyOptions:
    """The assembly options the settings ask for; ``overrides`` (None = keep) come from the command line."""
    values: dict[str, Any] = {
        "sentence_pause_ms": settings.sentence_pause_ms,
        "paragraph_pause_ms": settings.paragraph_pause_ms,
        "chapter_pause_ms": settings.chapter_pause_ms,
        "chapter_lead_ms": settings.chapter_lead_ms,
        "chapter_format": settings.chapter_format,
        "book_format": settings.book_format,
        "loudness_target_lufs": settings.loudness_target_lufs,
        "true_peak_dbtp": settings.true_peak_dbtp,
        "subtitles": settings.subtitles,
        "bitrate_kbps": settings.audio_bitrate_kbps,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return AssemblyOptions(**values)
    except ValueError as exc:
        raise BadInputError(f"invalid assembly options: {exc}") from exc


def request_job_id(request: PlanRequest, engine: str, checksum: str) -> str:
    """Readable and deterministic: the same book, voice (``checksum``), engine and settings give the same job id.

    Left out: the assembly options (a job rendered again as MP3 instead of FLAC is the same job), where the
    cast and lexicon files were read from (their contents count), and whether the engine was named or the
    default (``engine`` is the one resolved).
    """
    request = request.model_copy(update={"engine": engine})
    document = request.model_dump_json(exclude={"assembly", "max_chars", "job", "cast_where", "lexicon_where"})
    digest = hashlib.sha256(f"{document}\0{checksum}".encode()).hexdigest()[:10]
    return f"{slugify(request.book.title, 40)}-{digest}"


def request_path(job: str) -> str:
    return f"{job_dir(job)}/{REQUEST_FILE}"


def store_request(storage: Storage, request: PlanRequest) -> None:
    assert request.job is not None, "a stored request names its job"
    storage.put_bytes(request_path(request.job), request.model_dump_json().encode(), "application/json")


def load_request(storage: Storage, job: str) -> PlanRequest:
    try:
        data = storage.get_bytes(request_path(job))
    except NotFoundError:
        raise NotFoundError(f"job {job} has no stored request; submit the book again") from None
    return PlanRequest.model_validate_json(data)
