"""Planning with a cast: each span of a paragraph becomes segments read by the voice the cast gives it.

A quotation inside a narrated sentence is its own segment, marked
``continues`` when the sentence goes on after it, so assembly adds no pause
the text did not have. Each voice phonemises with its own model's config and
keys its segments with its own model, checksum and settings: a narrator
that is the bundled voice with its own settings keys every segment exactly
as a job without a cast does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from producer.cast import Cast, CastVoice
from producer.cast_qwen import QwenCastVoice
from producer.segments import SegmentVoice, keyed_segment
from shared.buckets import BucketPolicy
from shared.engines import EngineSpec, engine_spec
from shared.frontend import Frontend, create_frontend
from shared.frontend.dialogue import Span, mark_dialogue
from shared.frontend.lexicon import Lexicon
from shared.presets import passage_language, unspoken_note
from shared.schema import PlanVoice, SegmentPlan, VoiceConditioning

_SENTENCE_END = ".!?…。！？；"
_CLOSERS = "\"'”’»)]}」』）"
_OPENERS = "\"'“‘«([{「『（—―– "


def ends_sentence(text: str, following: str | None) -> bool:
    """Whether a span closes its sentence: final punctuation, and no lowercase continuation after it."""
    if following is None:
        return True
    last = text.rstrip().rstrip(_CLOSERS).rstrip()[-1:]
    if last not in _SENTENCE_END:
        return False
    first = following.lstrip(_OPENERS)[:1]
    return not first.islower()


@dataclass
class CastPlanner:
    """Segments of a cast job, and what it used: voices, and languages no voice spoke."""

    cast: Cast
    engine: EngineSpec
    policy: BucketPolicy
    lexicon: Lexicon | None = None
    book_language: str | None = None
    frontends: dict[tuple[str, str], Frontend] = field(default_factory=dict)
    used: dict[str, CastVoice] = field(default_factory=dict)
    unspoken: Counter[tuple[str, str]] = field(default_factory=Counter)
    voicing: dict[str, VoiceConditioning] = field(default_factory=dict)
    """This chapter's voicing of the Qwen3-TTS voices it uses, where its instruction changes it."""
    instruct: str | None = None

    def spec(self, voice: CastVoice) -> EngineSpec:
        """The job's Piper engine, or the engine of a voice that runs on its own (Qwen3-TTS)."""
        return engine_spec(voice.engine) if voice.engine else self.engine

    def frontend(self, voice: CastVoice) -> Frontend:
        kind = self.spec(voice).frontend
        if (kind, voice.model) not in self.frontends:
            self.frontends[(kind, voice.model)] = create_frontend(
                kind, voice.config, max_tokens=self.policy.largest, lexicon=self.lexicon
            )
        return self.frontends[(kind, voice.model)]

    def chapter(
        self,
        paragraphs: Sequence[str],
        first_index: int,
        speak_title: str | None = None,
        instruct: str | None = None,
    ) -> list[SegmentPlan]:
        """A chapter's segments, numbered from ``first_index``; a spoken title is narration.

        ``instruct`` is the chapter's voice instruction (a sidecar's): the Qwen3-TTS voices of the cast
        read the chapter with it, as a one-voice job of each would; ``voicing`` then holds theirs."""
        self.voicing, self.instruct = {}, instruct
        marked = mark_dialogue(paragraphs)
        if speak_title:
            marked.insert(0, [Span(speak_title, "narration")])
        segments: list[SegmentPlan] = []
        for spans in marked:
            for position, span in enumerate(spans):
                following = spans[position + 1].text if position + 1 < len(spans) else None
                segments.extend(self._span(span, following, first_index + len(segments)))
        return segments

    def _span(self, span: Span, following: str | None, first_index: int) -> list[SegmentPlan]:
        language = passage_language(span.text, self.book_language)
        choice = self.cast.choose(span, language)
        voice = choice.voice
        self.used[voice.name] = voice
        pieces = self.frontend(voice).segment_paragraph(span.text)
        if choice.unspoken:
            self.unspoken[(choice.unspoken, voice.name)] += len(pieces)
        spec = self.spec(voice)
        document = voice.key_document
        if isinstance(voice, QwenCastVoice) and self.instruct:
            voicing = voice.chapter_conditioning(self.instruct)
            if voicing != voice.conditioning:
                self.voicing[voice.name] = voicing
                document = voice.resolved.key_document(voicing)
        reader = SegmentVoice(spec, voice.model, voice.checksum, voice.params, voice.sample_rate, document)
        segments = []
        for offset, piece in enumerate(pieces):
            last = offset == len(pieces) - 1
            segments.append(
                keyed_segment(
                    piece,
                    first_index + offset,
                    reader,
                    self.policy,
                    paragraph_end=last and following is None,
                    voice=voice.name,
                    kind=span.kind,
                    speaker=span.speaker if span.kind == "quote" else None,
                    continues=last and not ends_sentence(span.text, following),
                    language=language,
                )
            )
        return segments

    def plan_voices(self) -> dict[str, PlanVoice]:
        return {
            name: PlanVoice(
                model=voice.model,
                params=voice.params,
                languages=list(voice.languages),
                engine=voice.engine,
                conditioning=voice.conditioning,
                sample_rate=voice.sample_rate,
            )
            for name, voice in sorted(self.used.items())
        }

    def notes(self) -> list[str]:
        by_language: dict[str, dict[str, int]] = {}
        for (language, voice), count in self.unspoken.items():
            by_language.setdefault(language, {})[voice] = count
        speakers = {
            language: sorted(n for n, v in self.cast.voices.items() if language in v.languages)
            for language in by_language
        }
        return [
            unspoken_note(language, voices, sum(voices.values()), speakers[language])
            for language, voices in sorted(by_language.items())
        ]
