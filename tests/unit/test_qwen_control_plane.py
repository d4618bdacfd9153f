"""Qwen3-TTS on the control plane, in the core environment (no torch, transformers or qwen_tts needed).

Voice files, the model store and its manifests, the checkpoint's tokenizer
as the frontend, per-chapter instructions, the plan's queues and keys, and
the optional message fields that old messages do without.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from producer.ingest import Book, Chapter
from producer.planner import PlanOptions, plan_book
from producer.voice_sidecar import apply_sidecar, load_sidecar
from shared.buckets import BucketPolicy, queue_name
from shared.errors import BadInputError, StorageError
from shared.frontend import create_frontend
from shared.keys import content_key
from shared.qwen import qwen_language
from shared.qwen.store import TOKENIZER_FILES, ModelStore, write_manifest
from shared.qwen.voices import QwenVoiceRegistry, QwenVoiceSpec, clone_prompt_key, resolve_voice
from shared.schema import SegmentTask, SynthesisParams, VoiceConditioning
from shared.storage import LocalStorage
from tests.support.qwen_fixture import write_planning_checkpoint

REF = f"voices/refs/{'a' * 64}.wav"


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for name, mode in (("zh-custom", "custom_voice"), ("designer", "voice_design"), ("base", "voice_clone")):
        (root / name).mkdir(parents=True)
        write_planning_checkpoint(root / name, mode)
    return root


# --- voice files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"model": "m", "mode": "custom_voice"}, "needs a speaker"),
        ({"model": "m", "mode": "voice_design"}, "needs an instruct"),
        ({"model": "m", "mode": "voice_clone"}, "needs ref_audio"),
        ({"model": "m", "mode": "voice_design", "instruct": "calm", "speaker": "ryan"}, "speaker belongs"),
        ({"model": "m", "mode": "voice_clone", "ref_audio": REF, "instruct": "calm"}, "take no instruction"),
        ({"model": "m", "mode": "custom_voice", "speaker": "ryan", "ref_text": "hi"}, "belong to voice_clone"),
        ({"model": "../m", "mode": "custom_voice", "speaker": "ryan"}, "pattern"),
    ],
)
def test_a_voice_file_must_hold_what_its_mode_needs(document: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        QwenVoiceSpec.model_validate(document)


def test_a_voice_is_checked_against_its_checkpoint_before_anything_is_queued(models: Path) -> None:
    store = ModelStore(models_dir=models)
    custom = store.resolve("zh-custom")

    with pytest.raises(BadInputError, match="has no speaker 'nobody'"):
        QwenVoiceSpec(model="zh-custom", mode="custom_voice", speaker="nobody").check_against(custom)
    with pytest.raises(BadInputError, match="serves one mode"):
        QwenVoiceSpec(model="zh-custom", mode="voice_design", instruct="calm").check_against(custom)
    with pytest.raises(BadInputError, match="does not speak 'klingon'"):
        QwenVoiceSpec(model="zh-custom", mode="custom_voice", speaker="ryan", language="klingon").check_against(custom)
    assert custom.mode == "custom_voice" and custom.speakers == ["dylan", "ryan", "vivian"]
    assert custom.languages == ["auto", "chinese", "english", "japanese"] and custom.sample_rate == 24000


def test_voices_are_stored_as_json_files_and_reference_audio_by_its_content(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    registry = QwenVoiceRegistry(storage=storage)
    audio = b"RIFF....WAVEfmt fake"

    stored = registry.publish("sailor", QwenVoiceSpec(model="base", mode="voice_clone", ref_audio=REF), audio, ".wav")
    registry.publish("narrator", QwenVoiceSpec(model="zh-custom", mode="custom_voice", speaker="Vivian"))
    storage.put_bytes("voices/en_US-other.onnx.json", b'{"audio": {}, "phoneme_id_map": {}}')

    assert stored.ref_audio == f"voices/refs/{hashlib.sha256(audio).hexdigest()}.wav"
    assert storage.get_bytes(stored.ref_audio) == audio
    assert registry.find("sailor") == stored and registry.find("en_US-other") is None
    assert sorted(registry.available()) == ["narrator", "sailor"]
    assert json.loads(storage.get_bytes("voices/narrator.json"))["engine"] == "qwen3-tts"


def test_the_clone_prompt_key_follows_the_checkpoint_audio_and_transcript() -> None:
    spec = QwenVoiceSpec(model="base", mode="voice_clone", ref_audio=REF, ref_text="Ahoy.")
    key = clone_prompt_key(engine_version="1", model_checksum="c" * 64, spec=spec)

    assert key == clone_prompt_key(engine_version="1", model_checksum="c" * 64, spec=spec)
    assert key != clone_prompt_key(engine_version="1", model_checksum="d" * 64, spec=spec)
    assert key != clone_prompt_key(
        engine_version="1", model_checksum="c" * 64, spec=spec.model_copy(update={"ref_text": "Ahoy!"})
    )


# --- the model store -------------------------------------------------------------------------------


def test_a_published_checkpoint_downloads_once_verified_and_the_planner_gets_only_its_tokenizer(
    models: Path, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "store")
    manifest = ModelStore(storage=storage).publish(models / "zh-custom", "zh-custom")
    store = ModelStore(storage=storage, cache_dir=tmp_path / "cache")

    planning = store.resolve("zh-custom", only=TOKENIZER_FILES)
    weights_fetched_for_planning = (planning.path / "model.safetensors").exists()
    full = store.resolve("zh-custom")

    assert planning.checksum == full.checksum == manifest.checksum
    assert not weights_fetched_for_planning and (planning.path / "vocab.json").is_file()
    assert (full.path / "model.safetensors").read_bytes() == (models / "zh-custom" / "model.safetensors").read_bytes()
    assert store.available() == ["zh-custom"]
    assert json.loads(storage.get_bytes("models/zh-custom/manifest.json"))["checksum"] == manifest.checksum


def test_a_checkpoint_file_that_does_not_match_its_manifest_is_refused(models: Path, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    ModelStore(storage=storage).publish(models / "designer", "designer")
    storage.put_bytes("models/designer/model.safetensors", b"tampered")

    with pytest.raises(StorageError, match="checksum mismatch"):
        ModelStore(storage=storage, cache_dir=tmp_path / "cache").resolve("designer")

    write_manifest(models / "designer", "designer")
    (models / "designer" / "model.safetensors").write_bytes(b"changed after the manifest was written")
    with pytest.raises(BadInputError, match="does not match its manifest"):
        ModelStore(models_dir=models).resolve("designer")


def test_changing_any_file_of_a_checkpoint_changes_its_checksum(models: Path) -> None:
    store = ModelStore(models_dir=models)
    before = store.resolve("base").checksum
    (models / "base" / "generation_config.json").write_text('{"max_new_tokens": 100}')

    assert store.resolve("base").checksum != before


# --- frontend ----------------------------------------------------------------------------------


def test_the_frontend_tokenises_with_the_checkpoints_bpe_and_splits_chinese_sentences(models: Path) -> None:
    frontend = create_frontend("qwen3", {"tokenizer_dir": str(models / "zh-custom"), "language": "zh"}, max_tokens=64)

    segments = frontend.segment_paragraph("第3章开始了。天色渐暗，安娜提着灯！")

    assert [s.text for s in segments] == ["第三章开始了。", "天色渐暗，安娜提着灯！"]
    assert [len(s.ids) for s in segments] == [len("第三章开始了。".encode()), len("天色渐暗，安娜提着灯！".encode())]
    assert segments[-1].paragraph_end and not segments[0].paragraph_end
    # "assistant" is one token of this vocabulary: the template's words are merged as in Qwen's
    assert len(frontend.ids("assistant")) == 1  # type: ignore[attr-defined]


def test_a_sentence_longer_than_the_largest_bucket_is_split_at_clauses(models: Path) -> None:
    frontend = create_frontend("qwen3", {"tokenizer_dir": str(models / "designer")}, max_tokens=32)
    sentence = "The keeper climbed the stairs, lit the lamp, watched the ships, and wrote in his log until dawn."

    segments = frontend.segment_paragraph(sentence)

    assert len(segments) > 1 and all(len(s.ids) <= 32 for s in segments)
    assert " ".join(s.text for s in segments) == sentence


# --- per-chapter instructions ----------------------------------------------------------------------


def test_a_sidecar_sets_instructions_by_chapter_number_or_title_over_the_books_markup(tmp_path: Path) -> None:
    book_path = tmp_path / "story.md"
    (tmp_path / "story.voice.toml").write_text(
        'instruct = "Narration."\n[chapters]\n2 = "Dialogue, quicker."\n"The END" = "Slow, closing."\n'
    )
    chapters = [Chapter(t, ["text"], instruct="From front matter.") for t in ("One", "Two", "The End", "Four")]

    applied = apply_sidecar(Book("Story", None, "en", chapters), book_path)

    assert [c.instruct for c in applied.chapters] == [
        "Narration.",
        "Dialogue, quicker.",
        "Slow, closing.",
        "Narration.",
    ]
    assert apply_sidecar(Book("Story", None, "en", chapters), tmp_path / "other.md").chapters == chapters


def test_a_sidecar_with_unknown_keys_or_empty_instructions_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.voice.toml"
    bad.write_text('voice = "x"\n')
    with pytest.raises(BadInputError, match="unknown keys"):
        load_sidecar(bad)
    bad.write_text('[chapters]\n1 = ""\n')
    with pytest.raises(BadInputError, match="non-empty"):
        load_sidecar(bad)


# --- plans, keys, messages --------------------------------------------------------------------------


def _plan(models: Path, spec: QwenVoiceSpec, chapters: list[Chapter], language: str = "zh") -> object:
    model = ModelStore(models_dir=models).resolve(spec.model, only=TOKENIZER_FILES)
    voice = resolve_voice("v1", spec, model, book_language=language, engine_version="1")
    options = PlanOptions(engine="qwen3-tts", voice=voice, params=SynthesisParams(), policy=BucketPolicy((16, 32, 64)))
    return plan_book(Book("书", None, language, chapters), options)


def test_a_plan_queues_on_the_checkpoint_and_gives_each_chapter_its_instruction(models: Path) -> None:
    spec = QwenVoiceSpec(model="zh-custom", mode="custom_voice", speaker="Vivian", instruct="平静。")
    chapters = [Chapter("第一章", ["天色渐暗。"]), Chapter("第二章", ["你好！"], instruct="紧张。")]

    plan = _plan(models, spec, chapters)

    assert plan.model == "qwen3-tts.zh-custom" and queue_name(plan.model, 16) == "voxfarm.qwen3-tts.zh-custom.b16"
    assert plan.conditioning.language == "chinese" and plan.conditioning.speaker == "vivian"
    assert [plan.conditioning_of(c).instruct for c in plan.chapters] == ["平静。", "紧张。"]
    assert plan.chapters[0].conditioning is None  # the job's voicing, not repeated
    assert plan.sample_rate == 24000


def test_everything_that_changes_the_audio_changes_the_key(models: Path) -> None:
    spec = QwenVoiceSpec(model="designer", mode="voice_design", instruct="A calm voice.")
    base = _plan(models, spec, [Chapter("一", ["天色渐暗。"])]).segments[-1].key

    changed = [
        _plan(models, spec.model_copy(update={"instruct": "A loud voice."}), [Chapter("一", ["天色渐暗。"])]),
        _plan(models, spec, [Chapter("一", ["天色渐暗。"], instruct="Whisper.")]),
        _plan(models, spec.model_copy(update={"language": "english"}), [Chapter("一", ["天色渐暗。"])]),
    ]
    (models / "designer" / "vocab.json").write_text((models / "designer" / "vocab.json").read_text() + " ")
    changed.append(_plan(models, spec, [Chapter("一", ["天色渐暗。"])]))

    assert all(plan.segments[-1].key != base for plan in changed)


def test_piper_keys_are_unchanged_by_the_optional_conditioning() -> None:
    arguments = {
        "engine": "piper-onnx",
        "engine_version": "1",
        "voice": "en_US-joe-medium",
        "voice_checksum": "0" * 64,
        "text": "Hello.",
        "ids": [1, 2, 3],
        "params": SynthesisParams(),
        "sample_rate": 22050,
    }
    document = {**arguments, "params": SynthesisParams().model_dump(mode="json"), "encoding": "flac-pcm16"}
    expected = hashlib.sha256(
        json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()

    assert content_key(**arguments) == expected  # type: ignore[arg-type]


def test_messages_without_conditioning_still_validate_and_with_it_round_trip() -> None:
    old = {
        "job": "j1",
        "indexes": [0],
        "chapter": 0,
        "text": "Hello.",
        "ids": [1, 2],
        "voice": "en_US-joe-medium",
        "engine": "piper-onnx",
        "key": "a" * 64,
        "bucket": 32,
        "enqueued_at": 1.0,
    }
    voicing = VoiceConditioning(model="base", mode="voice_clone", prompt="b" * 64, ref_audio=REF, ref_text="Ahoy.")

    assert SegmentTask.model_validate(old).conditioning is None
    task = SegmentTask.model_validate({**old, "engine": "qwen3-tts", "conditioning": voicing.model_dump()})
    assert SegmentTask.model_validate_json(task.model_dump_json()).conditioning == voicing
    with pytest.raises(ValueError):
        VoiceConditioning(model="base", mode="voice_clone", ref_audio="../../etc/passwd")


@pytest.mark.parametrize(
    ("tag", "name"), [("zh-CN", "chinese"), ("en", "english"), ("pt_BR", "portuguese"), (None, "auto"), ("xx", "auto")]
)
def test_book_languages_map_to_qwen_language_names(tag: str | None, name: str) -> None:
    assert qwen_language(tag) == name


def test_the_control_plane_imports_no_model_runtime() -> None:
    assert "qwen_tts" not in sys.modules and "transformers" not in sys.modules
