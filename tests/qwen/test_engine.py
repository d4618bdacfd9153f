"""The qwen3-tts engine in process, on tiny random-weight checkpoints: shapes, lengths, seeds, prompts.

Assertions are on what the engine promises (one generate call per batch,
per-item lengths, reproducible sampling, cached clone prompts, routing), not
on how the random weights sound.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.errors import BadInputError
from shared.frontend import create_frontend
from shared.qwen.store import ModelStore
from shared.qwen.voices import QwenVoiceRegistry, QwenVoiceSpec, clone_prompt_key
from shared.schema import VoiceConditioning
from shared.storage import LocalStorage
from tests.qwen.conftest import CHECKPOINTS, reference_wav
from tests.support.qwen_fixture import CODE_GROUPS, MAX_NEW_TOKENS, MIN_FRAMES, SPEAKERS
from workers.devices import open_device
from workers.engines import create_engine
from workers.engines.base import EngineRequest
from workers.engines.qwen3.engine import Qwen3TTSEngine
from workers.engines.qwen3.prompts import PromptStore

TEXTS = [
    "Yes.",
    "The lamp was lit at dusk, and the keeper climbed the stairs.",
    "By morning the sea was calm again.",
    "你好，世界。今天天气很好。",
]


def _engine(store: ModelStore, mode: str, prompts: PromptStore | None = None) -> Qwen3TTSEngine:
    engine = create_engine("qwen3-tts", store.resolve(CHECKPOINTS[mode]), open_device("cpu").backend, prompts=prompts)
    assert isinstance(engine, Qwen3TTSEngine)
    return engine


def _ids(engine: Qwen3TTSEngine, texts: list[str]) -> list[list[int]]:
    frontend = create_frontend("qwen3", {"tokenizer_dir": str(engine.files.path)}, max_tokens=128)
    return [frontend.ids(text) for text in texts]


def _key(n: int) -> str:
    """A content key; the seed comes from its first 16 hex digits."""
    return hashlib.sha256(str(n).encode()).hexdigest()


@pytest.fixture(scope="module")
def custom(local_models: ModelStore) -> Qwen3TTSEngine:
    return _engine(local_models, "custom_voice")


def test_the_engine_reports_its_mode_languages_speakers_and_24_khz(custom: Qwen3TTSEngine) -> None:
    described = custom.describe()

    assert described["mode"] == "custom_voice" and described["sample_rate"] == 24000 == custom.sample_rate
    assert described["speakers"] == sorted(SPEAKERS)
    assert {"auto", "chinese", "english"} <= set(described["languages"])
    assert "beijing_dialect" not in described["languages"]  # dialects are reached through their speakers


def test_a_batch_of_mixed_lengths_gives_each_item_its_own_length_in_whole_codec_frames(
    custom: Qwen3TTSEngine,
) -> None:
    ids = _ids(custom, TEXTS)
    requests = [EngineRequest(_key(i + 1), item) for i, item in enumerate(ids)]

    output = custom.synthesize(requests, 64)

    frames = [len(audio) / custom.samples_per_frame for audio in output.audio]
    assert len(output.audio) == len(TEXTS)
    assert all(f.is_integer() and 2 <= f <= custom.frame_cap(len(i)) for f, i in zip(frames, ids, strict=True))
    assert custom.frame_cap(len(ids[0])) == MIN_FRAMES and custom.frame_cap(200) == MAX_NEW_TOKENS
    assert len({len(a) for a in output.audio}) > 1, "items of different lengths came out the same length"
    assert output.useful_frames == sum(frames) and output.padded_frames == len(TEXTS) * max(frames)
    assert output.useful_tokens == sum(map(len, ids)) and set(output.stage_seconds) >= {"talker", "decoder"}
    assert all(a.dtype == np.float32 and np.isfinite(a).all() and np.abs(a).max() <= 1.0 for a in output.audio)


def test_sampling_is_seeded_per_item_so_an_item_is_the_same_whatever_shares_its_batch(
    custom: Qwen3TTSEngine,
) -> None:
    ids = _ids(custom, TEXTS)
    items = [custom._item(EngineRequest(_key(i + 7), item)) for i, item in enumerate(ids)]

    with torch.inference_mode():
        together = custom._generate(items)
        alone = custom._generate(items[1:2])
        again = custom._generate(items[1:2])
        reseeded = custom._generate([custom._item(EngineRequest(_key(99), ids[1]))])

    assert together[1].shape[1] == CODE_GROUPS
    assert torch.equal(alone[0], again[0]), "the same key gave different codes"
    assert torch.equal(together[1], alone[0]), "an item's codes depend on the rest of its batch"
    assert not torch.equal(reseeded[0][: alone[0].shape[0]], alone[0][: reseeded[0].shape[0]])


def test_speakers_instructions_and_languages_may_differ_inside_one_batch(custom: Qwen3TTSEngine) -> None:
    ids = _ids(custom, TEXTS[1:3])
    voicings = [
        VoiceConditioning(model="tiny-custom", mode="custom_voice", speaker="vivian", language="english"),
        VoiceConditioning(
            model="tiny-custom", mode="custom_voice", speaker="dylan", instruct="Whisper.", language="chinese"
        ),
    ]
    requests = [
        EngineRequest(_key(i + 1), item, conditioning=c) for i, (item, c) in enumerate(zip(ids, voicings, strict=True))
    ]

    output = custom.synthesize(requests, 64)

    assert len(output.audio) == 2 and all(len(a) > 0 for a in output.audio)


def test_a_segment_for_another_checkpoint_is_refused(custom: Qwen3TTSEngine) -> None:
    stray = VoiceConditioning(model="tiny-design", mode="voice_design", instruct="A calm voice.")

    with pytest.raises(BadInputError, match="routing"):
        custom.synthesize([EngineRequest(_key(1), [20, 21], conditioning=stray)], 16)


def test_voice_design_renders_a_batch_with_per_item_descriptions(local_models: ModelStore) -> None:
    engine = _engine(local_models, "voice_design")
    ids = _ids(engine, TEXTS[:3])
    voicings = [
        VoiceConditioning(model="tiny-design", mode="voice_design", instruct=text)
        for text in ("30岁女性，亲切自然，语速适中", "An old sailor, gravelly and slow.", "A bright child's voice.")
    ]

    output = engine.synthesize(
        [
            EngineRequest(_key(i + 1), item, conditioning=c)
            for i, (item, c) in enumerate(zip(ids, voicings, strict=True))
        ],
        64,
    )

    assert engine.mode == "voice_design" and [len(a) % engine.samples_per_frame for a in output.audio] == [0, 0, 0]


def test_a_clone_prompt_is_computed_once_and_every_other_engine_loads_it_from_storage(
    local_models: ModelStore, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "store")
    files = local_models.resolve("tiny-base")
    spec = QwenVoiceRegistry(storage=storage).publish(
        "sailor",
        QwenVoiceSpec(model="tiny-base", mode="voice_clone", ref_audio=f"voices/refs/{'0' * 64}.wav", ref_text="Ahoy."),
        reference_wav(),
    )
    key = clone_prompt_key(engine_version="1", model_checksum=files.checksum, spec=spec)
    voicing = VoiceConditioning(
        model="tiny-base", mode="voice_clone", prompt=key, ref_audio=spec.ref_audio, ref_text=spec.ref_text
    )
    first_store, second_store = PromptStore(storage, owner="first"), PromptStore(storage, owner="second")
    first, second = (
        _engine(local_models, "voice_clone", first_store),
        _engine(local_models, "voice_clone", second_store),
    )
    ids = _ids(first, TEXTS[1:3])
    requests = [EngineRequest(_key(i + 1), item, conditioning=voicing) for i, item in enumerate(ids)]

    one = first.synthesize(requests, 64)
    two = second.synthesize(requests, 64)
    first.synthesize(requests, 64)

    assert (first_store.computed, first_store.loaded) == (1, 0)
    assert (second_store.computed, second_store.loaded) == (0, 1)
    assert [p for p in storage.list("voices/prompts")] == [f"voices/prompts/{key[:2]}/{key}.npz"]
    assert [len(a) for a in one.audio] == [len(a) for a in two.audio]
    assert all(np.abs(a - b).max() < 1e-5 for a, b in zip(one.audio, two.audio, strict=True))


def test_a_clone_without_a_transcript_uses_the_speaker_embedding_only(local_models: ModelStore, tmp_path: Path) -> None:
    engine = _engine(local_models, "voice_clone", PromptStore(LocalStorage(tmp_path / "store")))

    prompt = engine.compute_prompt(reference_wav(), None)
    with_text = engine.compute_prompt(reference_wav(), "Ahoy there.")

    assert prompt.ref_code is None and prompt.speaker_embedding.shape == with_text.speaker_embedding.shape
    assert with_text.ref_code is not None and with_text.ref_code.shape[1] == CODE_GROUPS


def test_warm_up_touches_every_shape_for_a_couple_of_frames(custom: Qwen3TTSEngine) -> None:
    records = custom.warmup([(16, 1), (32, 3)])

    assert [(r.tokens, r.batch, r.frames) for r in records] == [(16, 1, 2), (32, 3, 2)]
    assert custom.synthesize([custom.canary_request()], 16).audio[0].size > 0
