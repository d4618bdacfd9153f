"""Qwen3-TTS voices in a cast, on the control plane (core environment: no torch, transformers or qwen_tts).

A character read by a Qwen3-TTS voice must carry that engine and voicing in
its messages and route to its checkpoint's queues, keyed exactly as a
one-voice job of that voice; the Piper narration stays on the Piper queues.
A cast whose Qwen3-TTS voice or checkpoint is missing is refused by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from producer.cast import Cast, CastFile
from producer.cast_qwen import QwenCastVoice
from producer.ingest.model import Book, Chapter
from producer.planner import PlanOptions, plan_book
from producer.qwen_voices import find_qwen_voice
from producer.submit import segment_tasks, task_queue
from shared.buckets import BucketPolicy
from shared.errors import UnknownVoiceError
from shared.frontend.dialogue import voice_mark
from shared.presets import PresetRegistry
from shared.qwen.voices import QwenVoiceSpec
from shared.schema import JobPlan
from shared.settings import Settings
from shared.voices import DEFAULT_VOICE, VoiceRegistry
from tests.support.qwen_fixture import write_planning_checkpoint

CHAPTER = [
    "The bell rang twice.",
    "“You have been in Afghanistan, I perceive,” said Holmes.",
    "“你好，朋友。”",
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    voices, models = tmp_path / "voices", tmp_path / "models"
    voices.mkdir()
    (models / "tiny-custom").mkdir(parents=True)
    write_planning_checkpoint(models / "tiny-custom", "custom_voice")
    for name, speaker in (("vivian", "vivian"), ("ryan", "ryan")):
        spec = QwenVoiceSpec(model="tiny-custom", mode="custom_voice", speaker=speaker)
        (voices / f"{name}.json").write_text(spec.model_dump_json(exclude_none=True))
    (voices / "lost.json").write_text(
        QwenVoiceSpec(model="no-such-checkpoint", mode="custom_voice", speaker="ryan").model_dump_json()
    )
    return Settings(voices_dir=voices, models_dir=models, storage_url=None, cache_dir=tmp_path / "cache")


def load(settings: Settings, file: CastFile) -> Cast:
    presets = PresetRegistry(VoiceRegistry(settings.voices_dir, None, None))
    return Cast.load(file, presets, find_qwen=lambda name: find_qwen_voice(name, None, settings, None))


def plan(cast: Cast, language: str = "en", paragraphs: list[str] = CHAPTER) -> JobPlan:
    cast = cast.for_book(language)
    narrator = cast.narrator
    voice = narrator.resolved if isinstance(narrator, QwenCastVoice) else narrator.files
    book = Book("Visitor", None, language, [Chapter("One", paragraphs)], source_format="md")
    options = PlanOptions(
        engine="piper-onnx", voice=voice, params=narrator.params, policy=BucketPolicy(), speak_titles=False, cast=cast
    )
    return plan_book(book, options)


def test_a_character_read_by_a_qwen_voice_routes_to_its_checkpoint_and_narration_to_piper(settings: Settings):
    cast = load(settings, CastFile(narrator=DEFAULT_VOICE, characters={"Holmes": "vivian"}, languages={"zh": "ryan"}))
    planned = plan(cast)
    by_voice = {(s.voice, s.kind, s.language) for s in planned.segments}
    assert by_voice == {(DEFAULT_VOICE, "narration", "en"), ("vivian", "quote", "en"), ("ryan", "quote", "zh")}
    assert planned.engine == "piper-onnx" and planned.sample_rate == 22050 and planned.notes == []
    assert planned.voices["vivian"].engine == "qwen3-tts" and planned.voices["vivian"].sample_rate == 24000
    vivian = planned.voices["vivian"].conditioning
    ryan = planned.voices["ryan"].conditioning
    assert vivian is not None and (vivian.model, vivian.speaker, vivian.language) == (
        "tiny-custom",
        "vivian",
        "english",
    )
    assert ryan is not None and (ryan.speaker, ryan.language) == ("ryan", "chinese"), "mapped to zh: told chinese"

    groups = [[s] for s in planned.segments]
    for task in segment_tasks(planned, groups):
        queue = task_queue(planned, task)
        if task.voice in ("vivian", "ryan"):
            assert task.engine == "qwen3-tts" and task.conditioning == planned.voices[task.voice].conditioning
            assert queue == f"voxfarm.qwen3-tts.tiny-custom.b{task.bucket}", "both voices share the checkpoint's"
        else:
            assert task.engine == "piper-onnx" and task.conditioning is None
            assert queue == f"voxfarm.piper-onnx.{DEFAULT_VOICE}.b{task.bucket}"


def test_a_qwen_voice_in_a_cast_keys_its_lines_as_a_one_voice_job_of_that_voice(settings: Settings):
    cast = load(settings, CastFile(narrator="vivian"))
    planned = plan(cast)
    lookup = find_qwen_voice("vivian", "qwen3-tts", settings, None)
    assert lookup is not None
    alone = plan_book(
        Book("Visitor", None, "en", [Chapter("One", CHAPTER[:2])], source_format="md"),
        PlanOptions(
            engine="qwen3-tts",
            voice=lookup.resolve("en"),
            params=planned.params,
            policy=BucketPolicy(),
            speak_titles=False,
        ),
    )
    # The narrated sentence is one segment either way (a cast splits the quotation from "said Holmes").
    assert planned.segments[0].text == alone.segments[0].text == "The bell rang twice."
    assert planned.segments[0].key == alone.segments[0].key
    assert planned.conditioning is None and planned.model == "qwen3-tts.tiny-custom"
    assert planned.voice == "vivian" and planned.sample_rate == 24000


def test_a_cast_whose_qwen_voice_or_checkpoint_is_missing_is_refused_by_name(settings: Settings):
    with pytest.raises(UnknownVoiceError, match=r"character 'Holmes' voice 'lost'.*no-such-checkpoint"):
        load(settings, CastFile(characters={"Holmes": "lost"}))
    with pytest.raises(UnknownVoiceError, match=r"narrator voice 'nobody'"):
        load(settings, CastFile(narrator="nobody"))
    listed = json.loads((settings.voices_dir / "vivian.json").read_text())  # type: ignore[operator]
    assert listed["engine"] == "qwen3-tts", "the voice file is the one `voxfarm voices add --model` writes"


def test_markup_naming_a_qwen_voice_tells_it_the_books_language(settings: Settings):
    planned = plan(load(settings, CastFile()), "en", ["The bell rang.", voice_mark("ryan", "“Come in.”")])
    assert [s.voice for s in planned.segments] == [DEFAULT_VOICE, "ryan"]
    ryan = planned.voices["ryan"].conditioning
    assert ryan is not None and ryan.language == "english" and planned.voices["ryan"].engine == "qwen3-tts"


def test_a_chapters_instruction_voices_the_casts_qwen_voices_in_that_chapter_only(settings: Settings):
    cast = load(settings, CastFile(characters={"Holmes": "vivian"})).for_book("en")
    line = "“You have been in Afghanistan, I perceive,” said Holmes."
    chapters = [Chapter("One", [line]), Chapter("Two", [line], instruct="Tense, quick."), Chapter("Three", [line])]
    narrator = cast.narrator
    assert not isinstance(narrator, QwenCastVoice)
    options = PlanOptions(
        engine="piper-onnx",
        voice=narrator.files,
        params=narrator.params,
        policy=BucketPolicy(),
        speak_titles=False,
        cast=cast,
    )
    planned = plan_book(Book("Visitor", None, "en", chapters, source_format="md"), options)

    holmes = [next(s for s in c.segments if s.voice == "vivian") for c in planned.chapters]
    narration = [next(s for s in c.segments if s.voice == DEFAULT_VOICE) for c in planned.chapters]
    assert holmes[0].key == holmes[2].key != holmes[1].key, "the instruction enters the key of that chapter only"
    assert len({s.key for s in narration}) == 1, "Piper voices take no instruction"
    assert [c.voicing for c in planned.chapters][0::2] == [{}, {}]
    tasks = {t.chapter: t for t in segment_tasks(planned, [[s] for s in holmes])}
    assert tasks[1].conditioning is not None and tasks[1].conditioning.instruct == "Tense, quick."
    assert tasks[0].conditioning == tasks[2].conditioning == planned.voices["vivian"].conditioning
    assert tasks[0].conditioning is not None and tasks[0].conditioning.instruct is None
