"""Request and response bodies of the HTTP API (the OpenAPI document is built from these)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from producer.api.errors import redacted
from producer.fairshare import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY
from shared.ledger import JobState, JobStatus

SPEECH_PREFIX = "speech--"
"""Job ids of POST /v1/audio/speech start so; a book's never does (slugs hold no double dash)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


MAX_CAST_CHARS = 64 * 1024
"""A cast file maps a few dozen names to voices; anything longer is not one."""


class BookOptions(_Strict):
    """The options of `voxfarm submit`, under the same names."""

    voice: str | None = Field(default=None, max_length=80, description="voice id (default: the farm's voice)")
    engine: str | None = Field(default=None, max_length=32)
    chapters: str | None = Field(default=None, max_length=200, description="1-based selection, e.g. 1-3,5")
    include_matter: bool = False
    job: str | None = Field(default=None, max_length=60, description="a name for the job (scoped to your tenant)")
    no_titles: bool = False
    length_scale: float | None = Field(default=None, gt=0.1, le=5)
    noise_scale: float | None = Field(default=None, ge=0, le=2)
    noise_w: float | None = Field(default=None, ge=0, le=2)
    chapter_format: Literal["flac", "wav", "mp3", "opus"] | None = None
    book_format: Literal["m4b", "none"] | None = None
    loudness: float | None = Field(default=None, ge=-40, le=-5, description="LUFS")
    true_peak: float | None = Field(default=None, ge=-20, le=0, description="dBTP")
    subtitles: Literal["none", "srt", "vtt", "both"] | None = None
    subtitle_speakers: bool | None = Field(
        default=None, description="subtitle cues of attributed quotations name the speaker"
    )
    cast: str | None = Field(
        default=None,
        max_length=MAX_CAST_CHARS,
        description="a cast file's TOML text (narrator, dialogue, characters, languages), as `voxfarm submit --cast`",
    )
    priority: int = Field(default=DEFAULT_PRIORITY, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    lane: Literal["bulk", "interactive"] = "bulk"

    def planner_options(self, lexicon: Path | None = None, cast: Path | None = None) -> dict[str, Any]:
        """The argparse names `_plan_with_cover` reads (scheduling travels separately; the cast as a file)."""
        values = self.model_dump(exclude={"priority", "lane", "cast"})
        values["lexicon"] = lexicon
        values["cast"] = cast
        return values


class TextSubmission(BookOptions):
    """A book given inline instead of uploaded."""

    text: str = Field(min_length=1, description="the book: plain text, Markdown or HTML")
    format: Literal["txt", "md", "html"] = "txt"
    title: str | None = Field(
        default=None, max_length=200, description="the book's title, unless the text names one (front matter, <title>)"
    )


class Submitted(BaseModel):
    job: str
    segments_total: int
    segments_reused: int
    chapters: int
    completed: bool
    planning: bool = Field(
        default=False,
        description="a large book is planned by the control service: the job is 'planning' and its segment "
        "counts are 0 until then (GET /v1/jobs/{job} follows it)",
    )


class Failure(BaseModel):
    segment: int
    reason: str
    attempts: int | None = None


class ChapterOut(BaseModel):
    index: int
    title: str
    segments: int
    segments_done: int
    file: str | None = None
    duration_s: float | None = None


class JobOut(BaseModel):
    job: str
    title: str
    state: str
    tenant: str
    priority: int
    lane: str
    kind: Literal["book", "speech"] = Field(default="book", description="speech: made by /v1/audio/speech")
    voice: str = ""
    segments_total: int
    segments_done: int
    segments_reused: int
    segments_failed: int
    progress: float = Field(description="0 to 1")
    eta_s: float | None = None
    created_at: float
    updated_at: float
    finished_at: float
    failures: list[Failure] = Field(default_factory=list)
    error: str | None = Field(default=None, description="why a failed job failed as a whole (planning, assembly)")
    chapters: list[ChapterOut] | None = None
    files: dict[str, str] | None = None

    @classmethod
    def of(cls, status: JobStatus, eta_s: float | None = None) -> JobOut:
        failures = [
            Failure(segment=index, reason=redacted(str(f.get("reason", "?")))[:500], attempts=f.get("attempts"))
            for index, f in sorted(status.failed.items())[:100]
        ]
        error = status.meta.get("error") if status.state == JobState.FAILED else None
        return cls(
            job=status.job,
            title=status.title,
            state=status.state,
            tenant=status.meta.get("tenant", "default"),
            priority=int(status.meta.get("priority", 50)),
            lane=status.meta.get("lane", "bulk"),
            kind="speech" if status.job.startswith(SPEECH_PREFIX) else "book",
            voice=status.meta.get("voice", ""),
            segments_total=status.total,
            segments_done=status.done,
            segments_reused=status.reused,
            segments_failed=len(status.failed),
            progress=round(status.done / status.total, 4) if status.total else 0.0 if status.planning else 1.0,
            eta_s=eta_s,
            created_at=status.created_at,
            updated_at=status.updated_at,
            finished_at=status.finished_at,
            failures=failures,
            error=redacted(error) if error else None,
        )


class PriorityIn(_Strict):
    priority: int = Field(ge=MIN_PRIORITY, le=MAX_PRIORITY)


class TenantIn(_Strict):
    weight: float | None = Field(default=None, gt=0, le=1000)
    quota: int | None = Field(default=None, ge=0, description="most segments in flight; 0 removes the limit")


class SpeechIn(BaseModel):
    """OpenAI's request shape for POST /v1/audio/speech."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(max_length=64, description="tts-1, tts-1-hd, or a voxfarm engine id")
    input: str = Field(min_length=1)
    voice: str = Field(max_length=80, description="a voxfarm voice id; OpenAI's preset names use the farm's voice")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(default=None, max_length=4096, description="accepted for compatibility")


class ErrorBody(BaseModel):
    error: dict[str, str]
