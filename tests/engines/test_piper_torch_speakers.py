"""piper-torch speaks each speaker of a multi-speaker voice as onnxruntime does.

The voice is a tiny three-speaker Piper VITS built by the test (random weights, exported to ONNX as
Piper exports its voices) with the stochastic duration predictor most Piper voices have. A
multi-speaker VITS feeds the speaker's embedding (``emb_g``) to its duration predictor, every
coupling layer of its flow and its vocoder: leave any of them out and the audio differs.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import max_abs_diff

from shared.errors import BadInputError
from shared.schema import SynthesisParams
from shared.voices import VoiceFiles
from tests.support.tiny_voice import SPEAKERS, build_tiny_voice
from workers.devices import DeviceBackend
from workers.engines.base import EngineRequest
from workers.engines.piper_onnx import PiperOnnxEngine
from workers.engines.piper_torch import PiperTorchEngine

PARITY_ATOL = 1e-4
QUIET = SynthesisParams(noise_scale=0.0, noise_w=0.0)
#: Token ids of the bundled voice's alphabet (the tiny voice shares its config): a short and a longer item.
SHORT = [1, 0, 20, 0, 30, 0, 40, 0, 2]
LONG = [1, 0, 20, 0, 30, 0, 40, 0, 50, 0, 25, 0, 61, 0, 17, 0, 33, 0, 2]


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> VoiceFiles:
    model = build_tiny_voice(tmp_path_factory.mktemp("trio"), stochastic_duration=True)
    return VoiceFiles("tiny-trio", model, model.with_name(model.name + ".json"))


@pytest.fixture(scope="module")
def engines(trio: VoiceFiles, cpu: DeviceBackend) -> tuple[PiperOnnxEngine, PiperTorchEngine]:
    return PiperOnnxEngine(trio, cpu, threads=1), PiperTorchEngine(trio, cpu, compile=False)


def item(ids: list[int], speaker: int) -> EngineRequest:
    return EngineRequest(f"{speaker + 1:064x}", ids, QUIET.model_copy(update={"speaker": speaker}))


@pytest.mark.parametrize("speaker", sorted(SPEAKERS.values()))
def test_each_speaker_matches_onnxruntime_with_noise_off(
    speaker: int, engines: tuple[PiperOnnxEngine, PiperTorchEngine]
) -> None:
    onnx_engine, torch_engine = engines
    for ids in (SHORT, LONG):
        expected = onnx_engine.synthesize([item(ids, speaker)], pad_to=len(ids)).audio[0]
        actual = torch_engine.synthesize([item(ids, speaker)], pad_to=32).audio[0]
        assert actual.shape == expected.shape
        assert max_abs_diff(actual, expected) < PARITY_ATOL


def test_a_batch_of_mixed_speakers_gives_each_item_its_own_speaker(
    engines: tuple[PiperOnnxEngine, PiperTorchEngine],
) -> None:
    onnx_engine, torch_engine = engines
    items = [item(LONG, 2), item(SHORT, 0), item(LONG, 1), item(SHORT, 2)]
    batched = torch_engine.synthesize(items, pad_to=32).audio
    for request, audio in zip(items, batched, strict=True):
        expected = onnx_engine.synthesize([request], pad_to=len(request.ids)).audio[0]
        assert audio.shape == expected.shape and max_abs_diff(audio, expected) < PARITY_ATOL
    by_speaker = {s: torch_engine.synthesize([item(LONG, s)], pad_to=32).audio[0] for s in SPEAKERS.values()}
    assert not np.allclose(by_speaker[0], by_speaker[1], atol=1e-4)
    assert not np.allclose(by_speaker[1], by_speaker[2], atol=1e-4)


def test_a_speaker_the_voice_does_not_have_is_refused(engines: tuple[PiperOnnxEngine, PiperTorchEngine]) -> None:
    with pytest.raises(BadInputError, match="speaker 3; voice tiny-trio has 3"):
        engines[1].synthesize([item(SHORT, 3)], pad_to=32)


@pytest.mark.parametrize("stage", [0, 1])
def test_the_speaker_conditioned_stages_are_each_one_graph(
    stage: int, engines: tuple[PiperOnnxEngine, PiperTorchEngine]
) -> None:
    import torch

    torch_engine = engines[1]
    inputs = torch_engine.stage_inputs(tokens=32, batch=2, frames=64)[stage]
    with torch.inference_mode():
        explanation = torch._dynamo.explain(torch_engine.stages[stage])(*inputs)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
