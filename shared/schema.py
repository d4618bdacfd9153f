"""The messages and documents that cross process boundaries, validated at both ends.

Queue messages are JSON only (never pickle) and carry everything a worker
needs, so a worker never calls back to the producer. The job plan is written
to storage at submit time and is the durable record a resume or a lost
broker is recovered from.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import MessageError
from shared.names import ENGINE_ID_PATTERN, JOB_ID_PATTERN, KEY_PATTERN, VOICE_ID_PATTERN

SCHEMA_VERSION = 1
MAX_TEXT_CHARS = 4000
MAX_TOKENS = 4096
MAX_INDEXES = 10_000
MAX_INSTRUCT_CHARS = 2000

JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN)]
VoiceId = Annotated[str, Field(pattern=VOICE_ID_PATTERN)]
EngineId = Annotated[str, Field(pattern=ENGINE_ID_PATTERN)]
ContentKey = Annotated[str, Field(pattern=KEY_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SynthesisParams(_Strict):
    """Per-request synthesis settings; every field is part of the content key."""

    noise_scale: float = Field(default=0.667, ge=0.0, le=2.0)
    length_scale: float = Field(default=1.0, gt=0.05, le=5.0)
    noise_w: float = Field(default=0.8, ge=0.0, le=2.0)
    speaker: int | None = Field(default=None, ge=0, le=100_000)


class VoiceConditioning(_Strict):
    """How an instruction-following engine (Qwen3-TTS) voices a segment; every field enters the content key.

    It travels in each message, so a worker needs nothing but the message: the
    checkpoint that serves it (``model``, which also names the queues), the
    mode, and the speaker, instruction or clone reference. A clone's prompt is
    computed once per cluster from ``ref_audio`` + ``ref_text`` and cached in
    storage under ``prompt``, the key of those inputs.
    """

    model: VoiceId
    """The checkpoint, as named in the model store (``models/<model>/``)."""
    mode: Literal["custom_voice", "voice_design", "voice_clone"]
    language: str = Field(default="auto", pattern=r"^[a-z_]{2,40}$")
    speaker: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,80}$")
    instruct: str | None = Field(default=None, max_length=MAX_INSTRUCT_CHARS)
    prompt: ContentKey | None = None
    """Content key of the clone prompt (voice_clone only)."""
    ref_audio: str | None = Field(default=None, pattern=r"^voices/refs/[0-9a-f]{64}\.(wav|flac)$")
    ref_text: str | None = Field(default=None, max_length=MAX_INSTRUCT_CHARS)
    """Transcript of the reference audio; without it a clone uses the speaker embedding only."""


class SegmentTask(_Strict):
    """One segment to synthesise: the body of a message on a bucket queue."""

    v: Literal[1] = 1
    job: JobId
    indexes: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, max_length=MAX_INDEXES)
    chapter: int = Field(ge=0)
    text: str = Field(max_length=MAX_TEXT_CHARS)
    ids: list[Annotated[int, Field(ge=0, le=1_000_000)]] = Field(min_length=1, max_length=MAX_TOKENS)
    voice: VoiceId
    engine: EngineId
    params: SynthesisParams = SynthesisParams()
    key: ContentKey
    bucket: int = Field(gt=0, le=MAX_TOKENS)
    enqueued_at: float = Field(ge=0)
    priority: Literal["bulk", "interactive"] = "bulk"
    conditioning: VoiceConditioning | None = None
    """Set for instruction-following engines (qwen3-tts); Piper messages never carry it."""

    def check_bucket(self) -> None:
        if len(self.ids) > self.bucket:
            raise MessageError(
                f"segment {self.key[:12]} has {len(self.ids)} tokens, more than its bucket {self.bucket}"
            )


def parse_segment_task(payload: Any, max_bytes: int) -> SegmentTask:
    """Validate a message body received from the queue; any problem is a MessageError."""
    try:
        raw = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    except (TypeError, ValueError) as exc:
        raise MessageError(f"message is not JSON-serialisable: {exc}") from exc
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise MessageError(f"message of {size} bytes exceeds the limit of {max_bytes} bytes")
    try:
        task = SegmentTask.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise MessageError(f"invalid segment message: {where}: {first['msg']}") from exc
    task.check_bucket()
    return task


class SegmentPlan(_Strict):
    """One sentence-sized piece of a chapter, as planned at submit time."""

    index: int = Field(ge=0)
    text: str
    ids: list[int]
    key: ContentKey
    bucket: int
    paragraph_end: bool = False
    voice: VoiceId | None = None
    """The cast voice that reads it (a name in ``JobPlan.voices``); unset: the job's voice."""
    kind: Literal["narration", "quote"] | None = None
    speaker: str | None = Field(default=None, max_length=200)
    """The character a quotation was attributed to, if the text (or its markup) names one."""
    continues: bool = False
    """The sentence goes on in the next segment (a quotation inside narration): no pause is added."""
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")


class PlanVoice(_Strict):
    """One voice of a cast job: the model that speaks it and its settings (all in its segments' keys)."""

    model: VoiceId
    """What its messages name and its segments' folder in storage: a Piper voice's weights (which also
    name its queues), or a Qwen3-TTS voice's own id (its checkpoint, in ``conditioning``, names the queues)."""
    params: SynthesisParams
    languages: list[str] = Field(default_factory=list)
    engine: EngineId | None = None
    """The engine of a voice that does not run on the job's (a Qwen3-TTS voice in a Piper cast)."""
    conditioning: VoiceConditioning | None = None
    """A Qwen3-TTS voice's voicing (checkpoint, mode, speaker, instruction...) for every segment it reads."""
    sample_rate: int | None = Field(default=None, ge=8000)
    """The rate it renders at; assembly brings other rates to the job's."""


class ChapterPlan(_Strict):
    index: int = Field(ge=0)
    title: str
    chars: int = Field(ge=0)
    segments: list[SegmentPlan]
    conditioning: VoiceConditioning | None = None
    """This chapter's voicing where it differs from the job's (a per-chapter instruction)."""
    voicing: dict[str, VoiceConditioning] = Field(default_factory=dict)
    """A cast job: this chapter's voicing of each Qwen3-TTS voice whose voicing its instruction changes."""


class AssemblyOptions(_Strict):
    """How a job's segments become a book; chosen at submit time and kept in the plan."""

    sentence_pause_ms: int = Field(default=250, ge=0, le=60_000)
    paragraph_pause_ms: int = Field(default=600, ge=0, le=60_000)
    chapter_pause_ms: int = Field(default=1500, ge=0, le=60_000)
    chapter_lead_ms: int = Field(default=0, ge=0, le=60_000)
    chapter_format: Literal["flac", "wav", "mp3", "opus"] = "flac"
    book_format: Literal["m4b", "none"] = "m4b"
    loudness_target_lufs: float = Field(default=-18.0, ge=-40.0, le=-5.0)
    true_peak_dbtp: float = Field(default=-1.0, ge=-20.0, le=0.0)
    subtitles: Literal["none", "srt", "vtt", "both"] = "none"
    subtitle_speakers: bool = False
    """Cues of a quotation whose speaker is known open with the speaker's name."""
    bitrate_kbps: int = Field(default=64, ge=16, le=320)


class JobPlan(_Strict):
    """The durable record of a job: what to render and how to assemble it."""

    v: Literal[1] = 1
    job: JobId
    title: str
    author: str | None = None
    language: str | None = None
    voice: VoiceId
    engine: EngineId
    model: str
    sample_rate: int = Field(ge=8000)
    params: SynthesisParams
    created_at: float
    chapters: list[ChapterPlan]
    cover: str | None = Field(default=None, description="storage path of the cover image, if any")
    assembly: AssemblyOptions | None = Field(
        default=None, description="pauses, formats and loudness chosen at submit time; unset: the control's settings"
    )
    conditioning: VoiceConditioning | None = Field(
        default=None, description="the voicing of every segment (qwen3-tts), unless its chapter has its own"
    )
    voices: dict[str, PlanVoice] = Field(
        default_factory=dict, description="the cast: every voice a segment names; empty for a one-voice job"
    )
    notes: list[str] = Field(default_factory=list, description="what planning reports to people (languages...)")

    def conditioning_of(self, chapter: ChapterPlan) -> VoiceConditioning | None:
        return chapter.conditioning or self.conditioning

    def voice_of(self, segment: SegmentPlan) -> str:
        """The voice that reads a segment, as people name it."""
        return segment.voice or self.voice

    def weights_of(self, segment: SegmentPlan) -> str:
        """The voice id its message carries and its audio is stored under (a cast voice's model)."""
        use = self.voices.get(segment.voice) if segment.voice else None
        return use.model if use else self.voice

    def params_of(self, segment: SegmentPlan) -> SynthesisParams:
        use = self.voices.get(segment.voice) if segment.voice else None
        return use.params if use else self.params

    def engine_of(self, segment: SegmentPlan) -> str:
        use = self.voices.get(segment.voice) if segment.voice else None
        return use.engine if use and use.engine else self.engine

    def voicing_of(self, segment: SegmentPlan, chapter: ChapterPlan) -> VoiceConditioning | None:
        """A cast voice's own voicing (Qwen3-TTS), else the chapter's or the job's."""
        use = self.voices.get(segment.voice) if segment.voice else None
        if use is not None:
            return chapter.voicing.get(segment.voice or "", use.conditioning)
        return self.conditioning_of(chapter)

    def model_of(self, segment: SegmentPlan) -> str:
        """The model whose queues serve a segment: ``<engine>.<weights>`` for a cast voice."""
        return self.queue_model(self.weights_of(segment))

    def queue_model(self, weights: str) -> str:
        """The model whose queues serve messages for ``weights``: a cast voice's own model, else the job's.

        Every voice of a Qwen3-TTS checkpoint is served by that checkpoint's queues."""
        for use in self.voices.values():
            if use.model == weights:
                if use.conditioning is not None:
                    return f"{use.engine or self.engine}.{use.conditioning.model}"
                return f"{self.engine}.{weights}"
        return self.model

    @property
    def segments(self) -> list[SegmentPlan]:
        return [seg for chapter in self.chapters for seg in chapter.segments]

    @property
    def segments_total(self) -> int:
        return sum(len(chapter.segments) for chapter in self.chapters)


class SegmentVoice(BaseModel):
    """Who reads one segment of a chapter."""

    model_config = ConfigDict(extra="allow")

    voice: str
    kind: str | None = None
    speaker: str | None = None
    language: str | None = None
    sample_rate: int | None = None
    """The segment's rate as its voice rendered it; the chapter's audio is at the manifest's ``sample_rate``."""


class ManifestChapter(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int
    title: str
    file: str
    duration_s: float
    segments: int
    start_s: float = 0.0
    keys: list[str] = Field(default_factory=list)
    loudness_lufs: float | None = None
    """Integrated loudness of the written chapter (BS.1770), measured after normalisation."""
    true_peak_dbtp: float | None = None
    gain_db: float | None = None
    """Gain applied to reach the loudness target (before any peak limiting)."""
    limited_db: float = 0.0
    """Deepest gain reduction of the true-peak limiter; 0 when the peaks fitted under the ceiling."""
    subtitles: dict[str, str] = Field(default_factory=dict)
    """Subtitle format (srt, vtt) -> file name."""
    voices: list[SegmentVoice] = Field(default_factory=list)
    """The voice of every segment, in the order of ``keys``."""
    voice_gains_db: dict[str, float] = Field(default_factory=dict)
    """Gain applied to each voice to match the narrator's loudness before the chapter was levelled."""
    quality: list[dict[str, Any]] = Field(default_factory=list)
    """Segments kept after failing the quality gate: {segment, key, attempts, findings}."""


class Manifest(BaseModel):
    """manifest.json of a finished job (contract: manifest.schema.json)."""

    model_config = ConfigDict(extra="allow")

    job: str
    title: str
    author: str | None = None
    language: str | None = None
    voice: str
    engine: str
    sample_rate: int
    segments_total: int
    segments_reused: int
    chapters: list[ManifestChapter]
    files: dict[str, str] = Field(default_factory=dict)
    duration_s: float = 0.0
    created_at: float = 0.0
    segments_flagged: int = 0
    """Segments kept after failing the quality gate (details per chapter)."""
    loudness_target_lufs: float | None = None
    true_peak_ceiling_dbtp: float | None = None
    notes: list[str] = Field(default_factory=list)
    """What planning and assembly report to people: passages no voice of the job speaks, a cover not embedded."""
    cast: dict[str, Any] = Field(default_factory=dict)
    """The voices of a cast job (name -> model, settings, languages); empty for a one-voice job."""
