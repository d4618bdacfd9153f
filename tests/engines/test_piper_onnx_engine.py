"""The onnxruntime engine: loud about missing providers, per-item lengths out of a padded batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import request

from shared.errors import DeviceError
from shared.schema import SynthesisParams
from shared.voices import VoiceFiles
from tests.support.tiny_voice import build_tiny_voice
from workers.devices import backend_class, parse_device_spec
from workers.engines.base import EngineRequest
from workers.engines.piper_onnx import PiperOnnxEngine


@pytest.mark.parametrize(("device", "message"), [("cuda:0", "not installed"), ("mlu:0", "use piper-torch")])
def test_a_provider_that_is_not_there_is_a_device_error_not_a_cpu_fallback(
    device: str, message: str, voice: VoiceFiles
) -> None:
    with pytest.raises(DeviceError, match=message):
        spec = parse_device_spec(device)
        PiperOnnxEngine(voice, backend_class(spec.family)(spec.index))  # not opened: no such card here


def test_padded_batch_items_keep_their_own_lengths(
    onnx_engine: PiperOnnxEngine, phonemize: Callable[[str], list[int]]
) -> None:
    items = [request(phonemize(text), name=text) for text in ("He was at work again.", "Then I noted the clock.")]

    batched = onnx_engine.synthesize(items, pad_to=64)

    for item, audio in zip(items, batched.audio, strict=True):
        assert len(audio) == len(onnx_engine.synthesize([item], pad_to=len(item.ids)).audio[0])
    assert onnx_engine.provider == "CPUExecutionProvider"


def test_a_multi_speaker_voice_speaks_each_items_own_speaker_in_one_batch(
    tmp_path: Path, phonemize: Callable[[str], list[int]]
) -> None:
    model = build_tiny_voice(tmp_path)
    engine = PiperOnnxEngine(VoiceFiles("tiny-trio", model, model.with_name(model.name + ".json")))
    ids = phonemize("He was at work again.")
    quiet = SynthesisParams(noise_scale=0.0, noise_w=0.0)
    items = [EngineRequest("0" * 64, ids, quiet.model_copy(update={"speaker": speaker})) for speaker in (0, 2, 0, 1)]

    batched = engine.synthesize(items, pad_to=64).audio

    alone = {s: engine.synthesize([items[i]], 64).audio[0] for i, s in ((0, 0), (1, 2), (3, 1))}
    for item, audio in zip(items, batched, strict=True):
        assert np.allclose(audio, alone[item.params.speaker or 0], atol=1e-5)
    assert not np.allclose(alone[0], alone[1], atol=1e-3) and not np.allclose(alone[0], alone[2], atol=1e-3)
