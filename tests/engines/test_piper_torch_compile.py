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

from shared.errors import DeviceOutOfMemoryError
from shared.schema import SynthesisParams
from shared.voices import VoiceFiles
from workers.devices import DeviceBackend
from workers.engines.base import WarmupRecord
from workers.engines.piper_onnx import PiperOnnxEngine
from workers.engines.piper_torch import PiperTorchEngine
from workers.engines.piper_torch.frames import FRAME_STEP, STATIC_FRAME_BUCKETS

SHORT = "Mrs."  # 17 tokens, 60-90 frames: fits the 32-token, 128-frame shape
LONGER = "For this I had deprived myself of rest and health."  # 111 tokens, more frames than the largest bucket


@pytest.fixture(scope="module")
def compiled(
    voice: VoiceFiles, cpu: DeviceBackend, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PiperTorchEngine, list[WarmupRecord], Path]:
    cache_dir = tmp_path_factory.mktemp("compile-cache")
    engine = PiperTorchEngine(voice, cpu, compile=True, cache_dir=cache_dir, frame_buckets=(64, 128))
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


def test_static_frame_buckets_round_up_past_the_largest(voice: VoiceFiles, cpu: DeviceBackend) -> None:
    engine = PiperTorchEngine(voice, cpu, compile=False, frame_buckets=STATIC_FRAME_BUCKETS)
    largest = STATIC_FRAME_BUCKETS[-1]

    assert engine.frames_bucket(1) == STATIC_FRAME_BUCKETS[0]
    assert engine.frames_bucket(largest) == largest
    assert engine.frames_bucket(largest + 1) == 2 * largest


def test_symbolic_frame_buckets_are_steps_of_frame_step(torch_engine: PiperTorchEngine) -> None:
    assert torch_engine.frame_buckets is None
    assert torch_engine.frames_bucket(1) == FRAME_STEP
    assert torch_engine.frames_bucket(FRAME_STEP + 1) == 2 * FRAME_STEP
    assert torch_engine.frames_bucket(100 * FRAME_STEP) == 100 * FRAME_STEP


def test_frame_buckets_share_a_graph_and_never_compile_after_warmup(
    voice: VoiceFiles, cpu: DeviceBackend, phonemize: Callable[[str], list[int]]
) -> None:
    engine = PiperTorchEngine(voice, cpu, compile=True, threads=2)
    graphs_before = counters["stats"]["unique_graphs"]
    engine.warmup([(32, 1)], frame_buckets=[64, 80])
    graphs_after_warmup = counters["stats"]["unique_graphs"]
    short, longer = request(phonemize(SHORT), name="short"), request(phonemize("Very well, said he."), name="x")

    outputs = [engine.synthesize([item], pad_to=32) for item in (short, longer)]

    assert graphs_after_warmup - graphs_before == 2, "stage B compiled once per frame bucket"  # stage A + stage B
    assert counters["stats"]["unique_graphs"] == graphs_after_warmup, "a new frame count compiled after warm-up"
    assert [output.padded_frames for output in outputs] == [64, 128]
    eager = PiperTorchEngine(voice, cpu, compile=False)
    for item, output in zip((short, longer), outputs, strict=True):
        assert max_abs_diff(output.audio[0], eager.synthesize([item], pad_to=32).audio[0]) < 1e-4


def test_frame_sorted_decoding_renders_each_item_as_alone_and_pads_less(
    voice: VoiceFiles, cpu: DeviceBackend, phonemize: Callable[[str], list[int]]
) -> None:
    texts = ["Mrs.", "Very well, said he.", "Hello.", "The sun set over the hills.", "No.", "It was late."]
    items = [request(phonemize(text), name=text) for text in texts]
    plain = PiperTorchEngine(voice, cpu, compile=False)
    sorting = PiperTorchEngine(voice, cpu, compile=False)
    records = sorting.sort_by_frames({64: 2}, {64: 6})

    whole = plain.synthesize(items, pad_to=64)
    sorted_output = sorting.synthesize(items, pad_to=64)

    assert [(r.tokens, r.batch, r.frames) for r in records] == [(64, 6, None)]  # stage A warmed for the call
    assert sorted_output.useful_frames == whole.useful_frames
    assert sorted_output.padded_frames < whole.padded_frames
    assert [len(a) for a in sorted_output.audio] == [len(a) for a in whole.audio]
    for item, audio in zip(items, sorted_output.audio, strict=True):
        assert max_abs_diff(audio, plain.synthesize([item], pad_to=64).audio[0]) < 1e-4


def test_a_batch_is_padded_up_to_a_warmed_batch_size(
    voice: VoiceFiles, cpu: DeviceBackend, phonemize: Callable[[str], list[int]]
) -> None:
    engine = PiperTorchEngine(voice, cpu, compile=False)
    engine.warmup([(32, 3)], frame_buckets=[64])
    item = request(phonemize(SHORT))

    output = engine.synthesize([item], pad_to=32)

    assert output.padded_tokens == 3 * 32  # two filler rows ride along
    assert output.useful_tokens == len(item.ids)
    assert len(output.audio) == 1
    assert max_abs_diff(output.audio[0], engine.synthesize([item], pad_to=len(item.ids)).audio[0]) < 1e-4


def test_out_of_memory_in_a_frame_sorted_call_halves_the_decode_batches(
    voice: VoiceFiles, cpu: DeviceBackend, phonemize: Callable[[str], list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = PiperTorchEngine(voice, cpu, compile=False)
    engine.sort_by_frames({32: 4}, {32: 16})
    items = [request(phonemize("Hello."), name=str(i)) for i in range(8)]

    def no_memory(*_: object) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine, "_stage_b", no_memory)
    with pytest.raises(DeviceOutOfMemoryError):
        engine.synthesize(items, pad_to=32)
    monkeypatch.undo()

    output = engine.synthesize(items, pad_to=32)

    assert engine._decode_sizes[32] == 2
    assert len(output.audio) == len(items)
