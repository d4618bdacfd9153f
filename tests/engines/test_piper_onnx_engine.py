"""The onnxruntime engine: loud about missing providers, per-item lengths out of a padded batch."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from engine_helpers import request

from shared.errors import DeviceError
from shared.voices import VoiceFiles
from workers.devices import backend_class, parse_device_spec
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
