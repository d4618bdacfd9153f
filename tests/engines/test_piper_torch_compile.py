"""The compiled path: whole-graph stages, warm-up per shape, a persistent cache, no recompiles.

Compiling on two CPU cores costs about a minute per stage, so one engine is
compiled for one small shape (32 tokens, batch 1, 128 frames) and shared.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from engine_helpers import max_abs_diff, request
from torch._dynamo.utils import counters

from shared.schema import SynthesisParams
from shared.voices import VoiceFiles
from workers.engines.base import WarmupRecord
from workers.engines.piper_onnx import PiperOnnxEngine
from workers.engines.piper_torch import PiperTorchEngine

SHORT = "Mrs."  # 17 tokens, 60-90 frames: fits the 32-token, 128-frame shape
LONGER = "For this I had deprived myself of rest and health."  # 111 tokens, more frames than the largest bucket


@pytest.fixture(scope="module")
def compiled(
    voice: VoiceFiles, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PiperTorchEngine, list[WarmupRecord], Path]:
    cache_dir = tmp_path_factory.mktemp("compile-cache")
    engine = PiperTorchEngine(voice, "cpu", compile=True, cache_dir=cache_dir, frame_buckets=(64, 128))
    records = engine.warmup([(32, 1)], frame_buckets=[128])
    return engine, records, cache_dir


@pytest.mark.parametrize("stage", ["duration", "audio"])
def test_each_stage_is_one_graph_without_breaks(stage: str, torch_engine: PiperTorchEngine) -> None:
    inputs_a, inputs_b = torch_engine.stage_inputs(tokens=32, batch=2, frames=64)
    module, inputs = (torch_engine.stages[0], inputs_a) if stage == "duration" else (torch_engine.stages[1], inputs_b)

    with torch.inference_mode():
        explanation = torch._dynamo.explain(module)(*inputs)

    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_warmup_compiles_and_times_each_shape_with_a_persistent_cache(
    compiled: tuple[PiperTorchEngine, list[WarmupRecord], Path],
) -> None:
    engine, records, cache_dir = compiled

    assert [(r.tokens, r.batch, r.frames) for r in records] == [(32, 1, 128)]
    record = records[0]
    assert record.first_s > record.steady_s  # the first call paid for compiling
    assert record.eager_s is not None
    assert engine.compiled  # asked for explicitly: kept even where it does not pay
    assert any((cache_dir / "inductor").rglob("*")), "the compile cache directory stayed empty"


def test_compiled_output_matches_eager_and_scales_never_recompile(
    compiled: tuple[PiperTorchEngine, list[WarmupRecord], Path],
    torch_engine: PiperTorchEngine,
    phonemize: Callable[[str], list[int]],
) -> None:
    engine, _, _ = compiled
    ids = phonemize(SHORT)
    plain = request(ids, SynthesisParams(), name="short")
    varied = request(ids, SynthesisParams(noise_scale=0.3, length_scale=1.2, noise_w=0.5), name="short-varied")
    graphs_before = counters["stats"]["unique_graphs"]

    first = engine.synthesize([plain], pad_to=32)
    second = engine.synthesize([varied], pad_to=32)

    assert counters["stats"]["unique_graphs"] == graphs_before, "a scale or noise change recompiled a stage"
    assert first.padded_frames == second.padded_frames == 128
    assert max_abs_diff(first.audio[0], torch_engine.synthesize([plain], pad_to=32).audio[0]) < 1e-4
    assert max_abs_diff(second.audio[0], torch_engine.synthesize([varied], pad_to=32).audio[0]) < 1e-4


def test_frames_past_the_largest_bucket_are_rendered_whole(
    compiled: tuple[PiperTorchEngine, list[WarmupRecord], Path],
    onnx_engine: PiperOnnxEngine,
    phonemize: Callable[[str], list[int]],
) -> None:
    engine, _, _ = compiled
    item = request(phonemize(LONGER))

    output = engine.synthesize([item], pad_to=128)
    expected = onnx_engine.synthesize([item], pad_to=128).audio[0]

    assert output.useful_frames > engine.frame_buckets[-1]
    assert output.padded_frames % engine.frame_buckets[-1] == 0
    assert max_abs_diff(output.audio[0], expected) < 1e-4


def test_frame_bucket_rounds_up_past_the_largest(torch_engine: PiperTorchEngine) -> None:
    largest = torch_engine.frame_buckets[-1]

    assert torch_engine.frames_bucket(1) == torch_engine.frame_buckets[0]
    assert torch_engine.frames_bucket(largest) == largest
    assert torch_engine.frames_bucket(largest + 1) == 2 * largest


def test_a_batch_is_padded_up_to_a_warmed_batch_size(voice: VoiceFiles, phonemize: Callable[[str], list[int]]) -> None:
    engine = PiperTorchEngine(voice, "cpu", compile=False)
    engine.warmup([(32, 3)], frame_buckets=[64])
    item = request(phonemize(SHORT))

    output = engine.synthesize([item], pad_to=32)

    assert output.padded_tokens == 3 * 32  # two filler rows ride along
    assert output.useful_tokens == len(item.ids)
    assert len(output.audio) == 1
    assert max_abs_diff(output.audio[0], engine.synthesize([item], pad_to=len(item.ids)).audio[0]) < 1e-4
