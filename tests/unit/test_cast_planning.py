"""Planning with a cast: voices per span, keys, pauses, languages, and cast files refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from producer.cast import Cast, CastFile, read_cast_file
from producer.ingest.model import Book, Chapter
from producer.planner import PlanOptions, default_params, plan_book
from shared.buckets import BucketPolicy
from shared.errors import BadInputError, UnknownVoiceError
from shared.presets import PresetRegistry
from shared.voices import DEFAULT_VOICE, VoiceRegistry, bundled_voice

NARRATION = "The bell rang twice. A tall man was shown into the sitting room."
DIALOGUE = "“Good morning,” said Holmes, “you have been in Afghanistan, I perceive.”"


def presets(folder: Path, **voices: dict[str, object]) -> PresetRegistry:
    for name, document in voices.items():
        (folder / f"{name}.json").write_text(json.dumps({"engine": "piper", "model": DEFAULT_VOICE, **document}))
    return PresetRegistry(VoiceRegistry(folder, None, None))


def book(*paragraphs: str, language: str | None = "en") -> Book:
    return Book("Test", None, language, [Chapter("One", list(paragraphs))], source_format="md")


def plan(test_book: Book, cast: Cast | None = None):  # type: ignore[no-untyped-def]
    voice = cast.narrator.files if cast else bundled_voice()
    params = cast.narrator.params if cast else default_params(voice)
    options = PlanOptions(
        engine="piper-onnx", voice=voice, params=params, policy=BucketPolicy(), speak_titles=False, cast=cast
    )
    return plan_book(test_book, options)


@pytest.fixture
def registry(tmp_path: Path) -> PresetRegistry:
    return presets(tmp_path, quick={"length_scale": 0.8}, holmes={"length_scale": 1.2, "noise_scale": 0.3})


def test_a_narrator_that_is_the_default_voice_keys_narration_as_a_job_without_a_cast(registry: PresetRegistry):
    cast = Cast.load(CastFile(narrator=DEFAULT_VOICE, dialogue="quick"), registry)
    with_cast, without = plan(book(NARRATION, DIALOGUE), cast), plan(book(NARRATION, DIALOGUE))
    assert [s.key for s in with_cast.segments[:2]] == [s.key for s in without.segments[:2]]
    assert with_cast.voice == DEFAULT_VOICE and with_cast.model == f"piper-onnx.{DEFAULT_VOICE}"


def test_each_quotation_goes_to_its_characters_voice_and_keys_include_the_voice(registry: PresetRegistry):
    cast = Cast.load(CastFile(dialogue="quick", characters={"Holmes": "holmes"}), registry)
    chapter = book(NARRATION, DIALOGUE, "“Who is he?” asked a voice from the hall.")
    planned = plan(chapter, cast)
    read = [(s.text, s.voice, s.kind, s.speaker) for s in planned.segments]
    assert read[2:5] == [
        ('"Good morning,"', "holmes", "quote", "Holmes"),
        ("said Holmes,", DEFAULT_VOICE, "narration", None),
        ('"you have been in Afghanistan, I perceive."', "holmes", "quote", "Holmes"),
    ]
    assert read[5][1:] == ("quick", "quote", None), "an unattributed quotation goes to the dialogue voice"
    assert set(planned.voices) == {DEFAULT_VOICE, "holmes", "quick"}
    assert planned.voices["holmes"].params.length_scale == 1.2
    assert {planned.weights_of(s) for s in planned.segments} == {DEFAULT_VOICE}, "one model: one set of queues"
    recast = plan(chapter, Cast.load(CastFile(dialogue="quick", characters={"Holmes": "quick"}), registry))
    changed = [s.index for s, r in zip(planned.segments, recast.segments, strict=True) if s.key != r.key]
    assert changed == [2, 4], "re-casting Holmes changes exactly his lines' keys"


def test_a_quotation_inside_a_sentence_adds_no_pause_and_a_finished_one_does(registry: PresetRegistry):
    cast = Cast.load(CastFile(dialogue="quick"), registry)
    planned = plan(book(DIALOGUE, "“It is late.” He left the room."), cast)
    flags = [(s.text, s.continues, s.paragraph_end) for s in planned.segments]
    assert flags == [
        ('"Good morning,"', True, False),
        ("said Holmes,", True, False),
        ('"you have been in Afghanistan, I perceive."', False, True),
        ('"It is late."', False, False),
        ("He left the room.", False, True),
    ]


CHINESE = "张三笑着说：“你来得正好，我们正要吃饭。”"


def test_a_passage_in_a_language_no_voice_speaks_is_reported_with_the_options():
    planned = plan(book(NARRATION, CHINESE))
    assert len(planned.notes) == 1
    note = planned.notes[0]
    assert "'zh'" in note and DEFAULT_VOICE in note and "voxfarm voices add" in note and "qwen3-tts" in note
    assert plan(book(NARRATION)).notes == []


def test_the_cast_maps_a_language_to_a_voice_that_speaks_it(tmp_path: Path):
    registry = presets(tmp_path, mandarin={"languages": ["zh"]})
    planned = plan(book(NARRATION, CHINESE), Cast.load(CastFile(languages={"zh": "mandarin"}), registry))
    assert {(s.language, s.voice) for s in planned.segments} == {("en", DEFAULT_VOICE), ("zh", "mandarin")}
    assert planned.notes == []


def test_a_cast_naming_an_unknown_voice_is_refused_with_the_role_and_the_name(registry: PresetRegistry):
    with pytest.raises(UnknownVoiceError, match=r"character 'Holmes' voice 'sherlock'"):
        Cast.load(CastFile(characters={"Holmes": "sherlock"}), registry)


def test_a_preset_whose_model_is_missing_is_refused_by_name(tmp_path: Path):
    registry = presets(tmp_path, ghost={"model": "no-such-model"})
    with pytest.raises(UnknownVoiceError, match=r"'ghost'.*'no-such-model' is missing"):
        Cast.load(CastFile(narrator="ghost"), registry)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("narrator = ", "not a TOML cast file"),
        ('narator = "x"', "narator"),
        ('[languages]\nchinese = "x"', "ISO 639"),
        ("min_confidence = 2", "min_confidence"),
    ],
)
def test_bad_cast_files_are_refused_with_what_is_wrong(tmp_path: Path, text: str, problem: str):
    path = tmp_path / "cast.toml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=problem):
        read_cast_file(path)


def test_markup_and_jsonl_voices_win_over_the_text(tmp_path: Path, registry: PresetRegistry):
    from producer.ingest import load_book

    cast = Cast.load(CastFile(dialogue="quick", characters={"Holmes": "holmes"}), registry)
    markdown = tmp_path / "marked.md"
    markdown.write_text(
        '# One\n\n“Hello,” said Watson. [“Indeed.”]{voice="Holmes"}\n\n'
        '<p data-voice="quick">The whole paragraph, read by a voice named in the markup.</p>\n'
    )
    planned = plan(load_book(markdown), cast)
    assert [(s.text, s.voice) for s in planned.segments] == [
        ('"Hello,"', "quick"),
        ("said Watson.", DEFAULT_VOICE),
        ('"Indeed."', "holmes"),
        ("The whole paragraph, read by a voice named in the markup.", "quick"),
    ]
    utterances = tmp_path / "lines.jsonl"
    utterances.write_text(
        '{"id": "a", "text": "Narrated line."}\n{"id": "b", "text": "Spoken line.", "voice": "holmes"}\n'
    )
    assert [s.voice for s in plan(load_book(utterances), cast).segments] == [DEFAULT_VOICE, "holmes"]
    assert [s.text for s in plan(load_book(markdown)).segments][-1].startswith("The whole paragraph"), (
        "without a cast the markup is not read aloud"
    )


def test_a_cast_runs_its_piper_voices_on_either_piper_engine_and_refuses_another(tmp_path: Path):
    from tests.support.tiny_voice import build_tiny_voice

    build_tiny_voice(tmp_path)
    registry = presets(tmp_path, ben={"model": "tiny-trio", "speaker": 1})
    cast = Cast.load(CastFile(characters={"Ben": "ben"}), registry)
    cast.check_engine("piper-onnx")
    cast.check_engine("piper-torch")  # multi-speaker voices too: piper-torch conditions on the speaker
    with pytest.raises(BadInputError, match="not qwen3-tts"):
        cast.check_engine("qwen3-tts")
